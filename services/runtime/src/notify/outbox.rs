//! The outbox: who must be told about which event, and whether they were.
//!
//! Rows are keyed by (event id, recipient) and written with the outbox's checkpoint in one
//! transaction, so each event yields its notifications exactly once, and re-reading events
//! (a restart, a replay from 0) adds nothing: nothing is sent twice. A row is marked sent after
//! the notifier succeeded; a crash between those two moments is the one case that re-sends.
//! The outbox lives in its own file (`outbox.db`): it is a record of effects, not a read model,
//! so `projections rebuild` leaves it alone.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

use futures::FutureExt;
use rusqlite::{params, Connection, OptionalExtension};

use diandan_store::RecordedEvent;
use diandan_workflows::order::{OrderChange, OrderState};

use super::{Notification, Notifier, NotifyError};
use crate::commands::decode_order_event;
use crate::{App, AppError, Result};

/// Attempts before a notification is given up (each retried with growing delay).
pub const MAX_ATTEMPTS: u32 = 8;
/// Notifications sent per round. Their outcomes are recorded together after the round's
/// sends, so a crash in the middle of a round sends at most this many a second time (delivery
/// is at least once either way).
const SEND_BATCH: usize = 16;

/// A notification's id, what sending it came to, and its attempts before this one.
type Settled = (String, std::result::Result<(), NotifyError>, u32);

/// Where notifications wait to be sent.
#[derive(Clone)]
pub struct Outbox {
    conn: Arc<Mutex<Connection>>,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Outbox {
    /// Opens (creating if need be) the file at `path`; processes starting together set it up
    /// one after another.
    pub fn open(path: &Path) -> Result<Outbox> {
        crate::sqlite_file::initialize(path, || Self::open_unlocked(path))
    }

    fn open_unlocked(path: &Path) -> Result<Outbox> {
        let conn = crate::sqlite_file::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS outbox_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 0), position INTEGER NOT NULL);
             INSERT OR IGNORE INTO outbox_checkpoint (id, position) VALUES (0, 0);
             CREATE TABLE IF NOT EXISTS outbox (
                 id TEXT PRIMARY KEY,
                 recipient TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 order_id TEXT NOT NULL,
                 text TEXT NOT NULL,
                 status TEXT NOT NULL DEFAULT 'pending',
                 attempts INTEGER NOT NULL DEFAULT 0,
                 next_attempt_ms INTEGER NOT NULL,
                 last_error TEXT,
                 sent_ms INTEGER
             );
             CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, next_attempt_ms);",
        )?;
        Ok(Outbox {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock().expect("outbox poisoned")))
            .await
            .map_err(|e| AppError::Storage(e.to_string()))?
    }

    pub async fn checkpoint(&self) -> Result<u64> {
        self.with(|c| Ok(c.query_row("SELECT position FROM outbox_checkpoint", [], |r| r.get(0))?))
            .await
    }

    /// Rewinds the checkpoint (a replay): events are read again, but add nothing already there.
    pub async fn rewind(&self, position: u64) -> Result<()> {
        self.with(move |c| {
            c.execute("UPDATE outbox_checkpoint SET position = ?1", [position])?;
            Ok(())
        })
        .await
    }

    /// Records the notifications of a batch of events and advances the checkpoint, atomically.
    async fn record(&self, notifications: Vec<Notification>, position: u64) -> Result<()> {
        self.with(move |c| {
            let tx = c.transaction()?;
            for n in notifications {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO outbox (id, recipient, kind, order_id, text, next_attempt_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![n.id, n.recipient, n.kind, n.order_id, n.text, now_ms()])?;
            }
            tx.prepare_cached("UPDATE outbox_checkpoint SET position = MAX(position, ?1)")?
                .execute([position])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn pending(&self, limit: usize) -> Result<Vec<(Notification, u32)>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, recipient, kind, order_id, text, attempts FROM outbox
                 WHERE status = 'pending' AND next_attempt_ms <= ?1
                 ORDER BY next_attempt_ms LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms(), limit as i64], |r| {
                Ok((
                    Notification {
                        id: r.get(0)?,
                        recipient: r.get(1)?,
                        kind: r.get(2)?,
                        order_id: r.get(3)?,
                        text: r.get(4)?,
                    },
                    r.get::<_, u32>(5)?,
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Records what became of the notifications of one round (id, outcome, attempts before),
    /// in one transaction: one sync for the round, not one per notification.
    async fn settle(&self, outcomes: Vec<Settled>) -> Result<()> {
        self.with(move |c| {
            let tx = c.transaction()?;
            for (id, outcome, attempts) in outcomes {
                match outcome {
                    Ok(()) => tx
                        .prepare_cached(
                            "UPDATE outbox SET status = 'sent', sent_ms = ?2, attempts = ?3 WHERE id = ?1",
                        )?
                        .execute(params![id, now_ms(), attempts + 1])?,
                    Err(NotifyError::Temporary(e)) if attempts + 1 < MAX_ATTEMPTS => {
                        let delay = 500i64 << attempts.min(10);
                        tx.prepare_cached(
                            "UPDATE outbox SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4 WHERE id = ?1",
                        )?
                        .execute(params![id, attempts + 1, now_ms() + delay, e])?
                    }
                    Err(e) => tx
                        .prepare_cached(
                            "UPDATE outbox SET status = 'failed', attempts = ?2, last_error = ?3 WHERE id = ?1",
                        )?
                        .execute(params![id, attempts + 1, e.to_string()])?,
                };
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// (status, count) of every row, for tests and the console.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// A row's status, if it exists.
    pub async fn status(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_owned();
        self.with(move |c| {
            Ok(
                c.query_row("SELECT status FROM outbox WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
        .await
    }
}

/// Events older than this when the outbox first sees them notify no one.
pub const STALE_AFTER: time::Duration = time::Duration::hours(24);

/// Who hears about an event, and what they read. `order` is the order's current state (for the
/// requester and station); recipients of staff notices are station inboxes (`station:<id>`).
pub fn notifications_for(
    event: &RecordedEvent,
    change: &OrderChange,
    order: &OrderState,
    deadline_label: &dyn Fn(&str) -> String,
) -> Vec<Notification> {
    let order_id = order.order_id.clone();
    let station = format!("station:{}", order.station_id);
    let mut out = Vec::new();
    let mut push = |recipient: String, kind: &str, text: String| {
        out.push(Notification {
            id: format!("{}/{recipient}", event.event_id),
            recipient,
            kind: kind.to_owned(),
            order_id: order_id.clone(),
            text,
        });
    };
    match change {
        OrderChange::OrderPlaced { description, .. } => push(
            station,
            "order_placed",
            format!(
                "新订单待审核：{}",
                description.chars().take(30).collect::<String>()
            ),
        ),
        OrderChange::OrderDispatched { assignee, .. } => push(
            format!("team:{}", assignee.team_id),
            "order_dispatched",
            "有新的派单，请及时接单".into(),
        ),
        OrderChange::OrderAccepted { .. } => push(
            order.requester_id.clone(),
            "order_accepted",
            "您的订单已有志愿者接单".into(),
        ),
        OrderChange::OrderCompleted { .. } => {
            // Everyone who reported it reviews it: the requester and the merged duplicates'.
            for who in std::iter::once(&order.requester_id).chain(&order.followers) {
                push(
                    who.clone(),
                    "order_completed",
                    "服务已办结，请您评价".into(),
                );
            }
        }
        OrderChange::OrderReviewed {
            rating,
            by_default: false,
            ..
        } if *rating <= 2 => push(
            station,
            "follow_up",
            format!("收到 {rating} 星差评，请安排回访或返工"),
        ),
        // The claims, rework and merges of the open-claim and v2 workflows.
        OrderChange::Claimed { filled, .. } => {
            if *filled {
                push(
                    station,
                    "order_full",
                    format!(
                        "认领已满员（{} 人）：{}",
                        order.required_volunteers,
                        order.description.chars().take(30).collect::<String>()
                    ),
                );
            }
            if !order.activity {
                push(
                    order.requester_id.clone(),
                    "order_claimed",
                    "您的心愿已有志愿者认领".into(),
                );
            }
        }
        OrderChange::OrderReworked { assignee, reason } => push(
            format!("team:{}", assignee.team_id),
            "order_reworked",
            format!("返工：{}", reason.chars().take(30).collect::<String>()),
        ),
        OrderChange::OrderMerged { .. } => push(
            order.requester_id.clone(),
            "order_merged",
            "您反映的问题已与他人反映的同一问题合并办理，可在原订单中查看进度并评价".into(),
        ),
        OrderChange::DeadlineWarned { deadline } => push(
            station,
            "deadline_warned",
            format!("催办：订单的{}时限已过 80%", deadline_label(deadline)),
        ),
        OrderChange::DeadlineOverdue { deadline, action } => push(
            station,
            "deadline_overdue",
            format!(
                "督办：订单的{}时限已超时，{action}",
                deadline_label(deadline)
            ),
        ),
        _ => {}
    }
    out
}

impl App {
    /// Where a notification for `recipient` goes: a WeChat account's openid (the id of its
    /// subscription messages); inboxes (`station:…`, `team:…`) and other ids as they are.
    /// The notification's id keeps the account id, so it stays stable.
    async fn address_of(&self, recipient: &str) -> Result<String> {
        if !recipient.starts_with("wx-") {
            return Ok(recipient.to_owned());
        }
        let (account, _) = self.account(recipient).await?;
        Ok(match account.credential {
            Some(diandan_workflows::account::Credential::Wechat { openid, .. }) => openid,
            _ => recipient.to_owned(),
        })
    }

    /// Fills the outbox from the log and sends what is pending, until `shutdown` resolves.
    pub async fn run_outbox(
        &self,
        outbox: Outbox,
        notifier: Arc<dyn Notifier>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        loop {
            // Busy or not, a stop request ends the loop between rounds.
            if (&mut shutdown).now_or_never().is_some() {
                return;
            }
            let worked = match self.outbox_round(&outbox, notifier.as_ref()).await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox round failed; retrying");
                    false
                }
            };
            if !worked {
                futures::select! {
                    _ = shutdown => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)).fuse() => {}
                }
            }
        }
    }

    /// One round: record new events' notifications, then send what is due. True if it did anything.
    pub async fn outbox_round(&self, outbox: &Outbox, notifier: &dyn Notifier) -> Result<bool> {
        let from = outbox.checkpoint().await? + 1;
        let events = self.store.read_all(from, 256).await?;
        let mut worked = !events.is_empty();
        if let Some(last) = events.last().map(|e| e.position) {
            let mut notifications = Vec::new();
            // Each order's state as it is now, loaded once per round.
            let mut orders: HashMap<&str, OrderState> = HashMap::with_capacity(events.len());
            for event in &events {
                let Some(order_id) = event.stream.strip_prefix("order-") else {
                    continue;
                };
                let decoded = decode_order_event(event)?;
                // News a day old is not news: history replayed into the log (the demo's year,
                // an import) is never sent to anyone.
                if decoded.at < OffsetDateTime::now_utc() - STALE_AFTER {
                    continue;
                }
                let change = decoded.change;
                let order = match orders.entry(order_id) {
                    Entry::Occupied(kept) => kept.into_mut(),
                    Entry::Vacant(slot) => slot.insert(self.load_order(order_id).await?.state),
                };
                let order = &*order;
                let definition = self.definition_for(order).ok();
                let label = |name: &str| {
                    definition
                        .and_then(|d| d.deadline(name))
                        .map_or_else(|| name.to_owned(), |d| d.label.clone())
                };
                notifications.extend(notifications_for(event, &change, order, &label));
            }
            for notification in &mut notifications {
                notification.recipient = self.address_of(&notification.recipient).await?;
            }
            outbox.record(notifications, last).await?;
        }
        let mut settled = Vec::new();
        for (notification, attempts) in outbox.pending(SEND_BATCH).await? {
            worked = true;
            let outcome = notifier.send(&notification).await;
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, id = %notification.id, "notification not sent");
            }
            settled.push((notification.id, outcome, attempts));
        }
        if !settled.is_empty() {
            outbox.settle(settled).await?;
        }
        Ok(worked)
    }
}
