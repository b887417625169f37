//! Catch-up-then-live feeds of the global log, on KurrentDB's filtered `$all` subscriptions.
//!
//! The server does the catching up: a subscription to `$all` from a log position first
//! replays what is stored after it, then delivers new events as they commit, in log order.
//! What this module adds is the translation of store positions: a subscription can only start
//! *after* an event, so one that must start *at* an event (an odd position, see `position`)
//! reads that event first and subscribes after it. The feed ends after its first error;
//! subscribers resubscribe from the last position they processed.

use diandan_store::{RecordedEvent, Result, Subscription};
use kurrentdb::{StreamPosition, SubscribeToAllOptions};

use crate::failure::store_error;
use crate::position::{LogStart, Origin};
use crate::store::{
    at_log, log_position, original_event, recorded, visible_events, KurrentDbStore,
};

/// Every event with position `>= from`: first those stored, then new ones as they commit.
pub fn subscribe(store: KurrentDbStore, from: u64) -> Subscription {
    let follower = Follower {
        store,
        from,
        origin: None,
        live: None,
        pending: None,
        finished: false,
    };
    Box::pin(futures::stream::unfold(
        follower,
        |mut follower| async move {
            let item = follower.next().await?;
            Some((item, follower))
        },
    ))
}

/// One subscriber's place in the log.
struct Follower {
    store: KurrentDbStore,
    /// The first position the subscriber wants.
    from: u64,
    /// Known once the log shows an event.
    origin: Option<Origin>,
    /// The server subscription, once opened.
    live: Option<kurrentdb::Subscription>,
    /// An event read before the subscription opened, to deliver first.
    pending: Option<RecordedEvent>,
    /// Set after an error: the feed is over.
    finished: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<RecordedEvent>> {
        if self.finished {
            return None;
        }
        let next = self.advance().await;
        self.finished = next.is_err();
        Some(next)
    }

    async fn advance(&mut self) -> Result<RecordedEvent> {
        if self.live.is_none() {
            self.open().await?;
        }
        if let Some(event) = self.pending.take() {
            return Ok(event);
        }
        let live = self.live.as_mut().expect("opened above");
        loop {
            let resolved = live
                .next()
                .await
                .map_err(|e| store_error("following $all", &e))?;
            let Some(event) = original_event(resolved) else {
                continue;
            };
            let origin = match self.origin {
                Some(origin) => origin,
                None => {
                    let origin = self.store.require_origin().await?;
                    self.origin = Some(origin);
                    origin
                }
            };
            let event = recorded(origin, event)?;
            if event.position >= self.from {
                return Ok(event);
            }
        }
    }

    async fn open(&mut self) -> Result<()> {
        self.origin = self.store.origin().await?;
        let start = match self.origin {
            Some(origin) => origin.start_of(self.from),
            // Nothing stored yet: whatever comes is at or after any position handed out.
            None => LogStart::Beginning,
        };
        let position = match start {
            LogStart::Beginning => StreamPosition::Start,
            LogStart::After(log) => StreamPosition::Position(at_log(log)),
            LogStart::Beyond => StreamPosition::End,
            LogStart::At(log) => {
                let first = self
                    .store
                    .read_all_raw(StreamPosition::Position(at_log(log)), 1)
                    .await?
                    .into_iter()
                    .next();
                match (first, self.origin) {
                    (Some(first), Some(origin)) => {
                        let after = log_position(&first)?;
                        let first = recorded(origin, first)?;
                        if first.position >= self.from {
                            self.pending = Some(first);
                        }
                        StreamPosition::Position(at_log(after))
                    }
                    // No event at or after `from` (not a position this store handed out):
                    // the whole log, filtered by position, is the one safe start.
                    _ => StreamPosition::Start,
                }
            }
        };
        let options = SubscribeToAllOptions::default()
            .position(position)
            .filter(visible_events())
            .requires_leader(true);
        self.live = Some(self.store.client().subscribe_to_all(&options).await);
        Ok(())
    }
}
