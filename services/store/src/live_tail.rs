//! The last events a store committed, kept in memory for whoever follows the head.
//!
//! In one process, the projections, the notification outbox and the ledger runner each read
//! every event shortly after it is committed. Read from the file, that is a query on a blocking
//! thread per reader per commit (and one more that finds nothing new), on connections whose
//! page caches every commit invalidates. The writer already holds those events when it
//! commits, so it keeps the most recent [`LIVE_TAIL_EVENTS`] here and readers that ask for
//! positions inside that window get copies of them instead.
//!
//! The rules that keep this equal to the file:
//! - the writer pushes a batch only after its `COMMIT` returned, and before it publishes the
//!   new head or answers any append, so nobody can know of a position the tail is missing;
//! - positions in the tail are contiguous: a batch that does not continue it starts it over;
//! - after a failed batch the writer empties it (the file may hold more, or less, than the
//!   writer meant), and reads go to the file until new commits fill it again;
//! - a read that starts before the tail's first position is not served here at all.
//!
//! The tail also remembers the last committed revision of each stream it saw committed, so a
//! reader that folded a stream up to its end (the order cache, the directory's volunteers) and
//! asks for what came after learns "nothing" without a query. A stream it does not remember
//! (never written by this process, or forgotten) is read from the file. That rests on the
//! store's rule of one writer per file: a revision this process committed last is the stream's
//! last, since nobody else appends to it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::RecordedEvent;

/// How many of the last committed events are kept (about 4 MB of typical order events).
pub(crate) const LIVE_TAIL_EVENTS: usize = 4096;
/// How many streams' last revisions are remembered; all are forgotten when more are written.
const KNOWN_STREAMS: usize = 1 << 16;

/// The window of last committed events, shared by a store's writer and its readers.
#[derive(Default)]
pub(crate) struct LiveTail {
    events: Mutex<VecDeque<Arc<RecordedEvent>>>,
    /// The last committed revision of streams written since the store opened.
    revisions: Mutex<HashMap<String, u64>>,
}

impl LiveTail {
    /// Adds the events of one committed batch, in position order.
    pub(crate) fn push(&self, committed: Vec<RecordedEvent>) {
        {
            let mut revisions = lock(&self.revisions);
            if revisions.len() + committed.len() > KNOWN_STREAMS {
                revisions.clear();
            }
            for event in &committed {
                match revisions.get_mut(event.stream.as_str()) {
                    Some(revision) => *revision = event.revision,
                    None => {
                        revisions.insert(event.stream.clone(), event.revision);
                    }
                }
            }
        }
        let mut events = lock(&self.events);
        if let (Some(last), Some(first)) = (events.back(), committed.first()) {
            if last.position + 1 != first.position {
                events.clear();
            }
        }
        events.extend(committed.into_iter().map(Arc::new));
        let excess = events.len().saturating_sub(LIVE_TAIL_EVENTS);
        events.drain(..excess);
    }

    /// Forgets everything (after a failed batch).
    pub(crate) fn clear(&self) {
        lock(&self.events).clear();
        lock(&self.revisions).clear();
    }

    /// True when `stream` is known to have no event at revision `from` or later: its last
    /// committed revision is remembered and lower.
    pub(crate) fn nothing_from(&self, stream: &str, from: u64) -> bool {
        lock(&self.revisions)
            .get(stream)
            .is_some_and(|last| *last < from)
    }

    /// Up to `max` events from position `from` on, if the window covers `from`: every event
    /// committed at or after `from` (none when `from` is past the last one). `None` when
    /// `from` is before the window or the window is empty: read the file.
    pub(crate) fn read(&self, from: u64, max: usize) -> Option<Vec<RecordedEvent>> {
        let picked: Vec<Arc<RecordedEvent>> = {
            let events = lock(&self.events);
            let first = events.front()?.position;
            let skip = usize::try_from(from.checked_sub(first)?).unwrap_or(usize::MAX);
            let skip = skip.min(events.len());
            events.range(skip..).take(max).cloned().collect()
        };
        // Copied outside the lock: the writer never waits on a reader's copying.
        Some(
            picked
                .iter()
                .map(|event| RecordedEvent::clone(event))
                .collect(),
        )
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: u64) -> RecordedEvent {
        RecordedEvent {
            event_id: uuid::Uuid::from_u128(position.into()),
            stream: format!("s{}", position % 3),
            revision: position / 3,
            position,
            event_type: "Happened".into(),
            data: position.to_string().into_bytes(),
            metadata: b"{}".to_vec(),
            recorded_at_ms: 1,
            hash: [position as u8; 32],
        }
    }

    fn batch(positions: std::ops::RangeInclusive<u64>) -> Vec<RecordedEvent> {
        positions.map(event).collect()
    }

    fn read(tail: &LiveTail, from: u64, max: usize) -> Option<Vec<u64>> {
        tail.read(from, max)
            .map(|events| events.iter().map(|e| e.position).collect())
    }

    #[test]
    fn serves_only_the_window_it_holds() {
        let tail = LiveTail::default();
        assert_eq!(
            read(&tail, 1, 10),
            None,
            "an empty tail sends reads to the file"
        );
        tail.push(batch(5..=7));
        tail.push(batch(8..=9));
        assert_eq!(read(&tail, 4, 10), None, "before the window");
        assert_eq!(read(&tail, 0, 10), None);
        assert_eq!(read(&tail, 5, 10), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(read(&tail, 7, 2), Some(vec![7, 8]));
        assert_eq!(read(&tail, 9, 0), Some(vec![]));
        assert_eq!(read(&tail, 10, 10), Some(vec![]), "caught up");
        assert_eq!(read(&tail, u64::MAX, 10), Some(vec![]));
        assert_eq!(
            tail.read(6, 1).unwrap()[0],
            event(6),
            "the events themselves"
        );

        // Streams s0, s1, s2 got revisions up to 3, 2, 2 (position p is s{p%3} revision p/3).
        assert!(tail.nothing_from("s0", 4));
        assert!(!tail.nothing_from("s0", 3));
        assert!(tail.nothing_from("s2", 3) && !tail.nothing_from("s2", 2));
        assert!(
            !tail.nothing_from("elsewhere", 100),
            "unknown streams are read"
        );
        tail.clear();
        assert!(!tail.nothing_from("s0", 4));
    }

    #[test]
    fn keeps_the_last_events_and_starts_over_on_a_gap() {
        let tail = LiveTail::default();
        let last = LIVE_TAIL_EVENTS as u64 + 100;
        for start in (1..=last).step_by(50) {
            tail.push(batch(start..=(start + 49).min(last)));
        }
        let first = last - LIVE_TAIL_EVENTS as u64 + 1;
        assert_eq!(read(&tail, first - 1, 1), None);
        assert_eq!(read(&tail, first, 1), Some(vec![first]));
        assert_eq!(
            read(&tail, first, usize::MAX).map(|p| p.len()),
            Some(LIVE_TAIL_EVENTS)
        );

        // Positions the file took back (a failed batch) or skipped: the window starts over.
        tail.push(batch(last + 5..=last + 6));
        assert_eq!(read(&tail, last, 10), None);
        assert_eq!(read(&tail, last + 5, 10), Some(vec![last + 5, last + 6]));
        tail.clear();
        assert_eq!(read(&tail, last + 5, 10), None);
    }
}
