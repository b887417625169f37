//! Global positions: how KurrentDB's log positions become the store's `u64` positions.
//!
//! Every event in KurrentDB's `$all` sits at a *log position*: the byte offset of its record in
//! the transaction log. (Its "commit" and "prepare" positions are both that offset for events
//! written by one append, the only kind of write since explicit transactions went away.) Log
//! positions strictly increase in commit order, but they start wherever the server's own
//! system events leave off and jump by each record's size.
//!
//! The store's position of an event at log position `L` is
//!
//! ```text
//! position = 2 × (L − origin) + 1
//! ```
//!
//! where `origin` is the log position of the first event the store shows (its [`Origin`]).
//! So the first event is at position 1, positions strictly increase in commit order and are
//! stable, **but are not contiguous** (they jump by twice each record's size).
//!
//! Odd positions name events; the even position after an event names the gap just after it.
//! That is what lets a reader resume from `last + 1` — the way every consumer of the global log
//! resumes — although KurrentDB can only start reading `$all` at an event's exact log
//! position: `p` odd starts *at* log position `origin + (p − 1) / 2`, `p` even starts *after*
//! log position `origin + (p − 2) / 2`. A position that is neither an event's nor one past
//! an event's does not name a place in the log; the server answers it with an error.

/// The log position of the first event the store shows: its position 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin(pub u64);

/// The largest log position KurrentDB can name (its positions are signed 64-bit on the server).
const MAX_LOG_POSITION: u64 = i64::MAX as u64;

/// Where, in KurrentDB's log, a read of the global log from some position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStart {
    /// From the first event.
    Beginning,
    /// From the event at this log position, inclusive.
    At(u64),
    /// From the event after the one at this log position.
    After(u64),
    /// Beyond any position the log can reach: nothing is there, nothing will be.
    Beyond,
}

impl Origin {
    /// The store position of the event at `log_position`; `None` before the origin.
    pub fn position_of(self, log_position: u64) -> Option<u64> {
        log_position
            .checked_sub(self.0)?
            .checked_mul(2)?
            .checked_add(1)
    }

    /// Where a read of every event at store position `>= from` starts.
    pub fn start_of(self, from: u64) -> LogStart {
        if from <= 1 {
            return LogStart::Beginning;
        }
        let (offset, inclusive) = if from % 2 == 1 {
            ((from - 1) / 2, true)
        } else {
            ((from - 2) / 2, false)
        };
        match self.0.checked_add(offset) {
            Some(log) if log <= MAX_LOG_POSITION && inclusive => LogStart::At(log),
            Some(log) if log <= MAX_LOG_POSITION => LogStart::After(log),
            _ => LogStart::Beyond,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_position_one() {
        let origin = Origin(4_096);
        assert_eq!(origin.position_of(4_096), Some(1));
        assert_eq!(origin.position_of(4_096 + 150), Some(301));
        assert_eq!(origin.position_of(4_000), None, "before the origin");
        assert_eq!(Origin(0).position_of(0), Some(1));
    }

    #[test]
    fn positions_keep_the_log_order() {
        let origin = Origin(10_000);
        let logs = [10_000, 10_137, 10_290, 11_002, 1 << 40];
        let positions: Vec<u64> = logs
            .iter()
            .map(|l| origin.position_of(*l).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        assert!(
            positions.iter().all(|p| p % 2 == 1),
            "events are at odd positions"
        );
    }

    #[test]
    fn an_events_position_starts_at_it_and_the_next_one_after_it() {
        let origin = Origin(10_000);
        for log in [10_137, 10_290, 1 << 40] {
            let position = origin.position_of(log).unwrap();
            assert_eq!(origin.start_of(position), LogStart::At(log));
            assert_eq!(origin.start_of(position + 1), LogStart::After(log));
        }
        // The first event is where the log begins.
        assert_eq!(origin.start_of(1), LogStart::Beginning);
        assert_eq!(origin.start_of(2), LogStart::After(10_000));
    }

    #[test]
    fn the_start_is_the_beginning() {
        let origin = Origin(10_000);
        assert_eq!(origin.start_of(0), LogStart::Beginning);
        assert_eq!(origin.start_of(1), LogStart::Beginning);
    }

    #[test]
    fn positions_past_the_log_are_beyond() {
        assert_eq!(Origin(10_000).start_of(u64::MAX), LogStart::Beyond);
        assert_eq!(Origin(u64::MAX - 1).start_of(5), LogStart::Beyond);
        let last = Origin(0).position_of(MAX_LOG_POSITION).unwrap();
        assert_eq!(Origin(0).start_of(last), LogStart::At(MAX_LOG_POSITION));
    }
}
