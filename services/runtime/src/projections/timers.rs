//! Pending timers: one row per running deadline, keyed by when it next goes off (yellow at
//! `warn_at`, then red at `due_at`). The timer runner polls the earliest rows; a million
//! pending deadlines are a million rows and one index, not a million sleeping tasks.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::OffsetDateTime;

use diandan_workflows::definition::Timer as Clock;
use diandan_workflows::order::{OrderChange, TimerPhase};

use super::{Applied, Cached, FastSet, Folds, Projection};
use crate::Result;

pub struct TimersProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS timers (
    order_id TEXT NOT NULL,
    deadline TEXT NOT NULL,
    due_at_ms INTEGER NOT NULL,
    next_phase TEXT NOT NULL,
    next_fire_ms INTEGER NOT NULL,
    PRIMARY KEY (order_id, deadline)
);
";

/// The timer runner's index (the projection writes by `(order_id, deadline)` only).
const QUERY_INDEXES: &str = "CREATE INDEX IF NOT EXISTS timers_next ON timers (next_fire_ms);";

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Projection for TimersProjection {
    fn name(&self) -> &'static str {
        "timers"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn query_indexes(&self) -> &'static str {
        QUERY_INDEXES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["timers"]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()> {
        self.apply_all(tx, std::slice::from_ref(event))
    }

    /// Folds the batch's deadline changes per (order, deadline) in memory and writes each
    /// timer's outcome once: a deadline scheduled and cleared within one batch (most are, at a
    /// rebuild) costs one lookup, not an insert and a delete.
    fn apply_all(&self, tx: &Transaction<'_>, events: &[Applied<'_>]) -> Result<()> {
        let mut folded: Folds<(&str, &str), Timer> = Folds::new();
        // Orders whose streams start in this batch: none of their timers has a row yet.
        let mut new_orders: FastSet<&str> = FastSet::default();
        for event in events {
            let Some(order_id) = event.stream.strip_prefix("order-") else {
                continue;
            };
            if event.revision == 0 {
                new_orders.insert(order_id);
            }
            let decoded = event.order()?;
            let own = match &decoded.change {
                OrderChange::DeadlineScheduled { timer }
                | OrderChange::ExtensionApproved { timer } => Some(Effect::Start(timer)),
                OrderChange::DeadlineWarned { deadline } => Some(Effect::Warn(deadline)),
                OrderChange::DeadlineOverdue { deadline, .. }
                | OrderChange::DeadlineCleared { deadline } => Some(Effect::Stop(deadline)),
                _ => None,
            };
            // The change's own, then the clocks it stops and starts.
            let effects = own
                .into_iter()
                .chain(decoded.clocks.stopped.iter().map(|d| Effect::Stop(d)))
                .chain(decoded.clocks.started.iter().map(Effect::Start));
            for effect in effects {
                let key = (order_id, effect.deadline());
                let timer = folded.entry(key, || Ok(Timer::Unread))?;
                match effect {
                    Effect::Start(t) => {
                        *timer = Timer::Pending(Row {
                            due_at_ms: millis(t.due_at),
                            next_phase: "warn".to_owned(),
                            next_fire_ms: millis(t.warn_at),
                        });
                    }
                    Effect::Warn(_) => {
                        if let Timer::Unread = timer {
                            *timer = if new_orders.contains(order_id) {
                                Timer::Absent
                            } else {
                                Timer::load(tx, key)?
                            };
                        }
                        if let Timer::Pending(row) | Timer::Stored(row) = timer {
                            *timer = Timer::Pending(Row {
                                due_at_ms: row.due_at_ms,
                                next_phase: "due".to_owned(),
                                next_fire_ms: row.due_at_ms,
                            });
                        }
                    }
                    Effect::Stop(_) => *timer = Timer::Gone,
                }
            }
        }
        for ((order_id, deadline), timer) in folded.entries() {
            match timer {
                Timer::Pending(row) => {
                    tx.execute_cached(
                        "INSERT OR REPLACE INTO timers (order_id, deadline, due_at_ms, next_phase, next_fire_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![order_id, deadline, row.due_at_ms, row.next_phase, row.next_fire_ms],
                    )?;
                }
                Timer::Gone if !new_orders.contains(order_id) => {
                    tx.execute_cached(
                        "DELETE FROM timers WHERE order_id = ?1 AND deadline = ?2",
                        params![order_id, deadline],
                    )?;
                }
                // Read and left as it was (a warning for a timer that is not there), or gone
                // before it was ever written.
                Timer::Unread | Timer::Stored(_) | Timer::Absent | Timer::Gone => {}
            }
        }
        Ok(())
    }
}

/// What an event does to one of its order's timers.
enum Effect<'e> {
    /// A clock starts (or restarts, or runs to an approved extension): yellow is next.
    Start(&'e Clock),
    /// Yellow went off: red is next.
    Warn(&'e str),
    /// The clock stopped, or red went off: nothing more fires.
    Stop(&'e str),
}

impl<'e> Effect<'e> {
    fn deadline(&self) -> &'e str {
        match self {
            Effect::Start(clock) => &clock.deadline,
            Effect::Warn(deadline) | Effect::Stop(deadline) => deadline,
        }
    }
}

/// A timer's row, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    due_at_ms: i64,
    next_phase: String,
    next_fire_ms: i64,
}

/// One (order, deadline) while a batch is folded: what the batch leaves of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    /// Not looked up (no event of the batch needed the stored row).
    Unread,
    /// Looked up: as stored, unchanged so far.
    Stored(Row),
    /// Looked up: there is none, and nothing made one.
    Absent,
    /// To be written as this.
    Pending(Row),
    /// To be deleted (overdue or cleared).
    Gone,
}

impl Timer {
    fn load(tx: &Transaction<'_>, (order_id, deadline): (&str, &str)) -> Result<Timer> {
        let row = tx
            .query_row_cached(
                "SELECT due_at_ms, next_phase, next_fire_ms FROM timers
                 WHERE order_id = ?1 AND deadline = ?2",
                params![order_id, deadline],
                |r| {
                    Ok(Row {
                        due_at_ms: r.get(0)?,
                        next_phase: r.get(1)?,
                        next_fire_ms: r.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(row.map_or(Timer::Absent, Timer::Stored))
    }
}

/// A timer that should go off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub order_id: String,
    pub deadline: String,
    pub phase: TimerPhase,
    pub due_at_ms: i64,
    pub fire_at_ms: i64,
}

/// Timers due at or before `now_ms`, earliest first.
pub fn due_timers(conn: &Connection, now_ms: i64, limit: usize) -> Result<Vec<DueTimer>> {
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, deadline, next_phase, due_at_ms, next_fire_ms FROM timers
         WHERE next_fire_ms <= ?1 ORDER BY next_fire_ms LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
        let phase: String = r.get(2)?;
        Ok(DueTimer {
            order_id: r.get(0)?,
            deadline: r.get(1)?,
            phase: if phase == "warn" {
                TimerPhase::Warn
            } else {
                TimerPhase::Due
            },
            due_at_ms: r.get(3)?,
            fire_at_ms: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One order's timers due at or before `now_ms`, earliest first.
pub fn due_timers_of(conn: &Connection, order_id: &str, now_ms: i64) -> Result<Vec<DueTimer>> {
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, deadline, next_phase, due_at_ms, next_fire_ms FROM timers
         WHERE order_id = ?1 AND next_fire_ms <= ?2 ORDER BY next_fire_ms",
    )?;
    let rows = stmt.query_map(params![order_id, now_ms], |r| {
        let phase: String = r.get(2)?;
        Ok(DueTimer {
            order_id: r.get(0)?,
            deadline: r.get(1)?,
            phase: if phase == "warn" {
                TimerPhase::Warn
            } else {
                TimerPhase::Due
            },
            due_at_ms: r.get(3)?,
            fire_at_ms: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// When the next timer goes off, if any is pending.
pub fn next_timer_ms(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row("SELECT MIN(next_fire_ms) FROM timers", [], |r| r.get(0))?)
}
