//! Catch-up-then-live subscriptions to the global log, for any backend that can read the log
//! by position and publish its committed head.
//!
//! A backend hands [`follow_log`] a way to read the log and a [`watch`] receiver on which its
//! writer publishes the position of the last committed event *after* the commit. The feed
//! reads in batches until a read comes back empty, then sleeps on the watch until the head
//! passes what it has delivered. Because the head is published only after the data is
//! readable, nothing is missed; because the feed always reads `position >= next` where `next`
//! is one past the last position it delivered, nothing is delivered twice.
//!
//! This module owns no storage and must not assume anything about how positions are
//! allocated beyond "strictly increasing in commit order".

use std::collections::VecDeque;
use std::future::Future;

use tokio::sync::watch;

use crate::{RecordedEvent, Result, Subscription};

/// How many events a subscription reads per round trip while catching up.
pub const CATCH_UP_BATCH: usize = 512;

/// A feed of every event with position `>= from`, in order: first those already stored, then
/// new ones as `head` announces them.
///
/// `read_all(from, max)` must behave like [`crate::EventStore::read_all`]. `head` must carry
/// the position of the last committed event and be updated only after that event is readable.
///
/// The feed ends after yielding the first read error (resubscribe from the last position you
/// processed, plus one), and ends quietly when the sender of `head` is dropped (the store was
/// closed) and everything it committed has been delivered.
pub fn follow_log<R, F>(read_all: R, head: watch::Receiver<u64>, from: u64) -> Subscription
where
    R: Fn(u64, usize) -> F + Send + 'static,
    F: Future<Output = Result<Vec<RecordedEvent>>> + Send + 'static,
{
    let feed = Feed {
        read_all,
        head,
        next: from.max(1),
        buffered: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(feed, Feed::next_event))
}

struct Feed<R> {
    read_all: R,
    head: watch::Receiver<u64>,
    /// The position the next read starts at: one past the last event buffered.
    next: u64,
    buffered: VecDeque<RecordedEvent>,
    finished: bool,
}

impl<R, F> Feed<R>
where
    R: Fn(u64, usize) -> F + Send + 'static,
    F: Future<Output = Result<Vec<RecordedEvent>>> + Send + 'static,
{
    async fn next_event(mut self) -> Option<(Result<RecordedEvent>, Self)> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Some((Ok(event), self));
            }
            if self.finished {
                return None;
            }
            match (self.read_all)(self.next, CATCH_UP_BATCH).await {
                Err(error) => {
                    self.finished = true;
                    return Some((Err(error), self));
                }
                Ok(events) => match events.last() {
                    Some(last) => {
                        self.next = last.position + 1;
                        self.buffered.extend(events);
                    }
                    None => {
                        // Caught up. `wait_for` looks at the current value first, so a commit
                        // published between the read and this line is not slept through.
                        let next = self.next;
                        if self.head.wait_for(|head| *head >= next).await.is_err() {
                            // The store closed, and its last published head is below `next`:
                            // everything it committed has been delivered.
                            self.finished = true;
                        }
                    }
                },
            }
        }
    }
}
