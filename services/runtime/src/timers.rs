//! The timer runner: fires deadlines (时限) when they come due, exactly once.
//!
//! Deadlines are in the log (the `clocks` of the change that starts them), so the pending ones
//! are a projection
//! (`timers` in the read model) and survive any restart. The runner polls the earliest, and for
//! each fires a system command whose id is derived from the order, the deadline, its `due_at`
//! and the phase: after a crash between firing and the projection catching up, firing again is
//! answered as a duplicate, never applied twice. A timer for an order that already moved on is
//! recorded as ignored by the domain.
//!
//! When a deadline whose definition says `on_expiry = { fire = [...] }` goes red, the runner
//! then sends those commands as the system (e.g. a default five-star review and closing).

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use time::OffsetDateTime;

use diandan_workflows::definition::OnExpiry;
use diandan_workflows::order::{Action, TimerPhase};

use crate::projections::{due_timers, due_timers_of, next_timer_ms, DueTimer};
use crate::{App, RequestContext, Result};

/// Longest sleep between looks at the timers table when nothing wakes the runner earlier: a
/// new event projected in this process wakes it at once; one projected by another process
/// (`diandan serve projections`) is seen within this.
pub const MAX_IDLE: Duration = Duration::from_secs(1);

/// How soon a round that fired nothing of what was due looks again.
const RETRY_AFTER: Duration = Duration::from_millis(20);

/// Timers fired per round.
const BATCH: usize = 256;

/// Orders whose timers fire at once within a round: their appends share the store's group
/// commits, so a working day's first minute (when the calendar lines many deadlines up) drains
/// in a fraction of the time one-by-one firing takes.
const FIRE_CONCURRENCY: usize = 32;

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl App {
    /// Fires one timer (and its expiry commands); returns the last position written.
    async fn fire_timer(&self, timer: &DueTimer) -> Result<u64> {
        let due_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(timer.due_at_ms) * 1_000_000)
                .map_err(|e| crate::AppError::Storage(e.to_string()))?;
        let id = format!(
            "timer/{}/{}/{}/{}",
            timer.order_id,
            timer.deadline,
            timer.due_at_ms,
            timer.phase.as_str()
        );
        let ctx = RequestContext::system(id.clone());
        let action = Action::FireTimer {
            deadline: timer.deadline.clone(),
            phase: timer.phase,
            due_at,
        };
        let outcome = self.execute(&ctx, &timer.order_id, action, None).await?;
        let mut position = outcome.position;
        if timer.phase != TimerPhase::Due || outcome.duplicate {
            return Ok(position);
        }
        let definition = self.definition_for(&outcome.state)?;
        let Some(OnExpiry::Fire { commands, args }) = definition
            .deadline(&timer.deadline)
            .map(|d| d.on_expiry.clone())
        else {
            return Ok(position);
        };
        for command in commands {
            let action = match command.as_str() {
                "review" => Action::Review {
                    rating: args.get("rating").and_then(|v| v.as_u64()).unwrap_or(5) as u32,
                    comment: args
                        .get("comment")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                },
                "close" => Action::Close,
                // 接单超时改派: the next candidate by the dispatch rules, not the team that let
                // it lapse; escalates up the tree when the level has no other.
                "dispatch" => {
                    let current: Vec<String> = outcome
                        .state
                        .assignee
                        .iter()
                        .map(|a| a.team_id.clone())
                        .collect();
                    match self.suggest_teams_excluding(&outcome.state, current).await {
                        Ok(suggestions) => {
                            let top = suggestions.top();
                            Action::Dispatch {
                                assignee: top.assignee(),
                                reason: format!("接单超时，自动改派：{}", top.reason),
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, order = %timer.order_id, "no other team to re-dispatch to; supervised instead");
                            continue;
                        }
                    }
                }
                other => {
                    tracing::warn!(
                        command = other,
                        "expiry command not supported by the timer runner"
                    );
                    continue;
                }
            };
            let ctx = RequestContext::system(format!("{id}/{command}"));
            match self.execute(&ctx, &timer.order_id, action, None).await {
                Ok(outcome) => position = outcome.position,
                Err(e) => {
                    tracing::warn!(error = %e, order = %timer.order_id, command, "expiry command refused")
                }
            }
        }
        Ok(position)
    }

    /// Fires a round of due timers, [`FIRE_CONCURRENCY`] orders at once; one order's timers
    /// one after another, earliest first (they are appends to the same stream). Returns the
    /// last position written (0: none).
    async fn fire_round(&self, due: Vec<DueTimer>) -> u64 {
        let mut orders: Vec<Vec<DueTimer>> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for timer in due {
            let at = *index.entry(timer.order_id.clone()).or_insert_with(|| {
                orders.push(Vec::new());
                orders.len() - 1
            });
            orders[at].push(timer);
        }
        let fire_order = |timers: Vec<DueTimer>| {
            let app = self.clone();
            async move {
                let mut wrote = 0;
                for timer in &timers {
                    match app.fire_timer(timer).await {
                        Ok(position) => wrote = wrote.max(position),
                        Err(e) => {
                            tracing::warn!(error = %e, order = %timer.order_id, "timer not fired; will retry")
                        }
                    }
                }
                wrote
            }
        };
        futures::stream::iter(orders)
            .map(fire_order)
            .buffer_unordered(FIRE_CONCURRENCY)
            .fold(0, |a, b| async move { a.max(b) })
            .await
    }

    /// Fires one order's timers due by `now_ms`, each at the time it came due (in this task:
    /// the demo's replay of history runs the timers of each order it replays). Returns the
    /// last position written (0: none).
    pub async fn fire_due_timers_of(&self, order_id: &str, now_ms: i64) -> Result<u64> {
        let mut wrote = 0;
        // A fired timer may schedule the next phase (yellow → red): look again until none.
        for _ in 0..8 {
            let id = order_id.to_owned();
            let due = self
                .read
                .query(move |c| due_timers_of(c, &id, now_ms))
                .await?;
            if due.is_empty() {
                break;
            }
            for timer in &due {
                let at = OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(timer.fire_at_ms) * 1_000_000,
                )
                .map_err(|e| crate::AppError::Storage(e.to_string()))?;
                wrote = wrote.max(crate::clock::at(at, self.fire_timer(timer)).await?);
            }
            self.read.wait_for(wrote, Duration::from_secs(5)).await;
        }
        Ok(wrote)
    }

    /// Runs the timers until `shutdown` resolves, looking at least every `max_idle`.
    pub async fn run_timers(
        &self,
        max_idle: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        let mut projected = self.read.subscribe_position();
        loop {
            // Held while the demo replays history (its timers fire in their own time); a
            // shutdown meanwhile is not kept waiting.
            let hold = futures::select! {
                _ = shutdown => return,
                hold = self.timer_hold.clone().read_owned().fuse() => hold,
            };
            let now = millis(self.clock.now());
            let due = self.read.query(move |c| due_timers(c, now, BATCH)).await;
            let (had_due, wrote) = match due {
                Ok(due) => (!due.is_empty(), self.fire_round(due).await),
                Err(e) => {
                    tracing::warn!(error = %e, "reading timers failed");
                    (true, 0)
                }
            };
            drop(hold);
            if wrote > 0 {
                // Let the projection take the fired timers off the table before looking again.
                self.read.wait_for(wrote, Duration::from_secs(5)).await;
                continue;
            }
            let next = self.read.query(next_timer_ms).await.ok().flatten();
            let now = millis(self.clock.now());
            let idle = match next {
                // Wake when it comes due, to the millisecond.
                Some(n) if n > now => Duration::from_millis((n - now) as u64),
                // Due, yet this round fired nothing: its firing fails; look again shortly.
                Some(_) if had_due => RETRY_AFTER,
                // It came due since the look: at once.
                Some(_) => Duration::ZERO,
                None => max_idle,
            }
            .min(max_idle);
            futures::select! {
                _ = shutdown => return,
                _ = tokio::time::sleep(idle).fuse() => {}
                _ = projected.changed().fuse() => {}
            }
        }
    }
}
