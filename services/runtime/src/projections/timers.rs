//! Pending timers: one row per running deadline, keyed by when it next goes off (yellow at
//! `warn_at`, then red at `due_at`). The timer runner polls the earliest rows; a million
//! pending deadlines are a million rows and one index, not a million sleeping tasks.

use rusqlite::{params, Connection, Transaction};
use time::OffsetDateTime;

use diandan_workflows::order::{OrderChange, TimerPhase};

use super::{Applied, Cached, Projection};
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
CREATE INDEX IF NOT EXISTS timers_next ON timers (next_fire_ms);
";

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

    fn tables(&self) -> &'static [&'static str] {
        &["timers"]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()> {
        let Some(order_id) = event.stream.strip_prefix("order-") else {
            return Ok(());
        };
        if !event.event_type.starts_with("Deadline") && event.event_type != "ExtensionApproved" {
            return Ok(());
        }
        match &event.order()?.change {
            OrderChange::DeadlineScheduled { timer } | OrderChange::ExtensionApproved { timer } => {
                tx.execute_cached(
                    "INSERT OR REPLACE INTO timers (order_id, deadline, due_at_ms, next_phase, next_fire_ms)
                     VALUES (?1, ?2, ?3, 'warn', ?4)",
                    params![order_id, timer.deadline, millis(timer.due_at), millis(timer.warn_at)],
                )?;
            }
            OrderChange::DeadlineWarned { deadline } => {
                tx.execute_cached(
                    "UPDATE timers SET next_phase = 'due', next_fire_ms = due_at_ms
                     WHERE order_id = ?1 AND deadline = ?2",
                    params![order_id, deadline],
                )?;
            }
            OrderChange::DeadlineOverdue { deadline, .. }
            | OrderChange::DeadlineCleared { deadline } => {
                tx.execute_cached(
                    "DELETE FROM timers WHERE order_id = ?1 AND deadline = ?2",
                    params![order_id, deadline],
                )?;
            }
            _ => {}
        }
        Ok(())
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
