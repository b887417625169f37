//! 志愿时长、积分与爱心超市 as read models: each volunteer's services and balances, the love
//! supermarket's shelves and its redemptions. Fed from the ledger's own streams
//! (`hours-<volunteer>`, `points-<volunteer>`, `shop-item-<item>`, `redemption-<id>`); the
//! streams stay the truth — every balance here is the sum of its stream's entries.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;

use diandan_store::RecordedEvent;
use diandan_workflows::ledger::hours::HoursEvent;
use diandan_workflows::ledger::points::PointsEvent;
use diandan_workflows::ledger::shop::{ItemEvent, RedemptionEvent};

use super::{Applied, Cached, Projection};
use crate::{AppError, Result};

pub struct LedgerProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledger_services (
    volunteer_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    station_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    minutes INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    far_m INTEGER NOT NULL,
    credited_at TEXT NOT NULL,
    PRIMARY KEY (volunteer_id, order_id)
);
CREATE INDEX IF NOT EXISTS ledger_services_pending ON ledger_services (pending, station_id);
CREATE TABLE IF NOT EXISTS ledger_accounts (
    volunteer_id TEXT PRIMARY KEY,
    by_hand_minutes INTEGER NOT NULL DEFAULT 0,
    available INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0,
    spent INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS shop_items (
    item_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    name TEXT NOT NULL,
    centipoints INTEGER NOT NULL,
    stock INTEGER NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0,
    handed_over INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS redemptions (
    redemption_id TEXT PRIMARY KEY,
    volunteer_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    centipoints INTEGER NOT NULL,
    status TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    reserved_at_ms INTEGER NOT NULL
);
-- Points held and stock reserved for a redemption, until spent, handed over or released: a
-- reservation interrupted before its redemption was recorded is found here and undone.
CREATE TABLE IF NOT EXISTS ledger_holds (
    redemption_id TEXT PRIMARY KEY,
    volunteer_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shop_reservations (
    redemption_id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS redemptions_volunteer ON redemptions (volunteer_id);
CREATE INDEX IF NOT EXISTS redemptions_open ON redemptions (status, expires_at_ms);
";

/// Indexes only queries read (a rebuild builds them once its tables are loaded).
const QUERY_INDEXES: &str = "
-- A subtree's credited service over a range of days (the statistics), station by station.
CREATE INDEX IF NOT EXISTS ledger_services_station ON ledger_services (station_id, credited_at);
";

fn decode<T: DeserializeOwned>(event: &RecordedEvent) -> Result<T> {
    serde_json::from_slice(&event.data)
        .map_err(|e| AppError::Storage(format!("event {} payload: {e}", event.position)))
}

/// How long a redemption's one-time code lives (`diandan_workflows::ledger::shop`).
const REDEMPTION_CODE_LIFETIME_MS: i64 =
    diandan_workflows::ledger::shop::CODE_LIFETIME.whole_milliseconds() as i64;

fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn account(tx: &Transaction<'_>, volunteer_id: &str) -> Result<()> {
    tx.execute_cached(
        "INSERT OR IGNORE INTO ledger_accounts (volunteer_id) VALUES (?1)",
        [volunteer_id],
    )?;
    Ok(())
}

impl Projection for LedgerProjection {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn query_indexes(&self) -> &'static str {
        QUERY_INDEXES
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "ledger_services",
            "ledger_accounts",
            "shop_items",
            "redemptions",
            "ledger_holds",
            "shop_reservations",
        ]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()> {
        if let Some(volunteer) = event.stream.strip_prefix("hours-") {
            apply_hours(tx, volunteer, &decode(event)?)
        } else if let Some(volunteer) = event.stream.strip_prefix("points-") {
            apply_points(tx, volunteer, &decode(event)?, event.recorded_at_ms)
        } else if let Some(item) = event.stream.strip_prefix("shop-item-") {
            apply_item(tx, item, &decode(event)?, event.recorded_at_ms)
        } else if let Some(id) = event.stream.strip_prefix("redemption-") {
            apply_redemption(tx, id, &decode(event)?, event.recorded_at_ms)
        } else {
            Ok(())
        }
    }
}

fn apply_hours(tx: &Transaction<'_>, volunteer: &str, event: &HoursEvent) -> Result<()> {
    account(tx, volunteer)?;
    match event {
        HoursEvent::HoursCredited {
            order_id,
            minutes,
            far_m,
            station_id,
            team_id,
            at,
        } => {
            // In China Standard Time, so that its first ten characters are the day.
            let at = at
                .to_offset(diandan_workflows::calendar::CHINA_STANDARD_TIME)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            tx.execute_cached(
                "INSERT OR IGNORE INTO ledger_services
                 (volunteer_id, order_id, station_id, team_id, minutes, pending, rejected, far_m, credited_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)",
                params![
                    volunteer,
                    order_id,
                    station_id,
                    team_id,
                    minutes,
                    far_m.is_some(),
                    far_m.unwrap_or(0),
                    at
                ],
            )?;
        }
        HoursEvent::HoursConfirmed { order_id, .. } => {
            tx.execute_cached(
                "UPDATE ledger_services SET pending = 0 WHERE volunteer_id = ?1 AND order_id = ?2",
                params![volunteer, order_id],
            )?;
        }
        HoursEvent::HoursRejected { order_id, .. } => {
            tx.execute_cached(
                "UPDATE ledger_services SET pending = 0, rejected = 1
                 WHERE volunteer_id = ?1 AND order_id = ?2",
                params![volunteer, order_id],
            )?;
        }
        HoursEvent::HoursCorrected {
            order_id,
            delta_minutes,
            ..
        } => {
            tx.execute_cached(
                "UPDATE ledger_services SET minutes = minutes + ?3
                 WHERE volunteer_id = ?1 AND order_id = ?2",
                params![volunteer, order_id, delta_minutes],
            )?;
        }
        HoursEvent::HoursAddedByHand { minutes, .. } => {
            tx.execute_cached(
                "UPDATE ledger_accounts SET by_hand_minutes = by_hand_minutes + ?2
                 WHERE volunteer_id = ?1",
                params![volunteer, minutes],
            )?;
        }
    }
    Ok(())
}

fn apply_points(
    tx: &Transaction<'_>,
    volunteer: &str,
    event: &PointsEvent,
    recorded_at_ms: i64,
) -> Result<()> {
    account(tx, volunteer)?;
    match event {
        PointsEvent::PointsHeld { redemption_id, .. } => {
            tx.execute_cached(
                "INSERT OR REPLACE INTO ledger_holds (redemption_id, volunteer_id, at_ms)
                 VALUES (?1, ?2, ?3)",
                params![redemption_id, volunteer, recorded_at_ms],
            )?;
        }
        PointsEvent::PointsReleased { redemption_id, .. }
        | PointsEvent::PointsSpent { redemption_id, .. } => {
            tx.execute_cached(
                "DELETE FROM ledger_holds WHERE redemption_id = ?1",
                [redemption_id],
            )?;
        }
        _ => {}
    }
    // The volunteer's two accounts as the entry posts them; the counter-accounts (issued,
    // spent, expired) are the other side of the same entry.
    let (available, held) = event
        .entry()
        .postings
        .iter()
        .fold((0, 0), |(a, h), posting| match &posting.account {
            diandan_workflows::ledger::points::Account::Available(_) => (a + posting.amount, h),
            diandan_workflows::ledger::points::Account::Held(_) => (a, h + posting.amount),
            _ => (a, h),
        });
    let (spent, expired) = match event {
        PointsEvent::PointsSpent { points, .. } => (*points, 0),
        PointsEvent::PointsExpired { points, .. } => (0, *points),
        _ => (0, 0),
    };
    tx.execute_cached(
        "UPDATE ledger_accounts SET available = available + ?2, held = held + ?3,
             spent = spent + ?4, expired = expired + ?5
         WHERE volunteer_id = ?1",
        params![volunteer, available, held, spent, expired],
    )?;
    Ok(())
}

fn apply_item(
    tx: &Transaction<'_>,
    item_id: &str,
    event: &ItemEvent,
    recorded_at_ms: i64,
) -> Result<()> {
    match event {
        ItemEvent::StockReserved { redemption_id, .. } => {
            tx.execute_cached(
                "INSERT OR REPLACE INTO shop_reservations (redemption_id, item_id, at_ms)
                 VALUES (?1, ?2, ?3)",
                params![redemption_id, item_id, recorded_at_ms],
            )?;
        }
        ItemEvent::StockReleased { redemption_id, .. }
        | ItemEvent::StockHandedOver { redemption_id, .. } => {
            tx.execute_cached(
                "DELETE FROM shop_reservations WHERE redemption_id = ?1",
                [redemption_id],
            )?;
        }
        _ => {}
    }
    let (stock, reserved, handed_over): (i64, i64, i64) = match event {
        ItemEvent::ItemListed {
            node_id,
            name,
            points,
            stock,
            ..
        } => {
            tx.execute_cached(
                "INSERT OR IGNORE INTO shop_items (item_id, node_id, name, centipoints, stock)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![item_id, node_id, name, points, stock],
            )?;
            return Ok(());
        }
        ItemEvent::ItemRestocked { quantity, .. } => (i64::from(*quantity), 0, 0),
        ItemEvent::StockReserved { quantity, .. } => {
            (-i64::from(*quantity), i64::from(*quantity), 0)
        }
        ItemEvent::StockReleased { quantity, .. } => {
            (i64::from(*quantity), -i64::from(*quantity), 0)
        }
        ItemEvent::StockHandedOver { quantity, .. } => {
            (0, -i64::from(*quantity), i64::from(*quantity))
        }
    };
    tx.execute_cached(
        "UPDATE shop_items SET stock = stock + ?2, reserved = reserved + ?3,
             handed_over = handed_over + ?4
         WHERE item_id = ?1",
        params![item_id, stock, reserved, handed_over],
    )?;
    Ok(())
}

fn apply_redemption(
    tx: &Transaction<'_>,
    id: &str,
    event: &RedemptionEvent,
    recorded_at_ms: i64,
) -> Result<()> {
    match event {
        RedemptionEvent::RedemptionReserved {
            volunteer_id,
            item_id,
            quantity,
            points,
            expires_at,
            ..
        } => {
            // Reserved when its code's lifetime began (the business time, as replayed history
            // has it), not when the row was written.
            let reserved_at = millis(*expires_at) - REDEMPTION_CODE_LIFETIME_MS;
            tx.execute_cached(
                "INSERT OR IGNORE INTO redemptions
                 (redemption_id, volunteer_id, item_id, quantity, centipoints, status, expires_at_ms, reserved_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'reserved', ?6, ?7)",
                params![
                    id,
                    volunteer_id,
                    item_id,
                    quantity,
                    points,
                    millis(*expires_at),
                    reserved_at.min(recorded_at_ms)
                ],
            )?;
        }
        RedemptionEvent::RedemptionHandedOver { .. } => {
            tx.execute_cached(
                "UPDATE redemptions SET status = 'handed_over' WHERE redemption_id = ?1",
                [id],
            )?;
        }
        RedemptionEvent::RedemptionCancelled { .. } => {
            tx.execute_cached(
                "UPDATE redemptions SET status = 'cancelled' WHERE redemption_id = ?1",
                [id],
            )?;
        }
    }
    Ok(())
}

/// One service row, as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub volunteer_id: String,
    pub order_id: String,
    pub station_id: String,
    pub team_id: String,
    pub minutes: i64,
    pub pending: bool,
    pub rejected: bool,
    pub far_m: u32,
    pub credited_at: String,
}

const SERVICE_COLUMNS: &str =
    "volunteer_id, order_id, station_id, team_id, minutes, pending, rejected, far_m, credited_at";

fn service_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ServiceRow> {
    Ok(ServiceRow {
        volunteer_id: r.get(0)?,
        order_id: r.get(1)?,
        station_id: r.get(2)?,
        team_id: r.get(3)?,
        minutes: r.get(4)?,
        pending: r.get(5)?,
        rejected: r.get(6)?,
        far_m: r.get(7)?,
        credited_at: r.get(8)?,
    })
}

/// A volunteer's services, newest first.
pub fn services_of(c: &Connection, volunteer_id: &str) -> Result<Vec<ServiceRow>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SERVICE_COLUMNS} FROM ledger_services WHERE volunteer_id = ?1
         ORDER BY credited_at DESC, order_id LIMIT 500"
    ))?;
    let rows = stmt.query_map([volunteer_id], service_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Services waiting for the station head, at stations within the subtree at `path`.
pub fn pending_services(c: &Connection, path: &str) -> Result<Vec<ServiceRow>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SERVICE_COLUMNS} FROM ledger_services
         WHERE pending = 1 AND station_id IN
             (SELECT id FROM org_nodes WHERE substr(path, 1, length(?1)) = ?1)
         ORDER BY credited_at, volunteer_id LIMIT 500"
    ))?;
    let rows = stmt.query_map([path], service_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A volunteer's balances: (by-hand minutes, available, held, spent, expired).
pub fn balances_of(c: &Connection, volunteer_id: &str) -> Result<(i64, i64, i64, i64, i64)> {
    Ok(c.query_row(
        "SELECT by_hand_minutes, available, held, spent, expired FROM ledger_accounts
         WHERE volunteer_id = ?1",
        [volunteer_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
    .optional()?
    .unwrap_or_default())
}

/// One place in a ranking: (id, name, credited minutes, services).
pub type Ranked = (String, String, i64, u32);

/// Volunteers of the teams in the subtree at `path` by credited minutes (service confirmed
/// and corrected, plus hours added by hand), most first.
pub fn rank_volunteers(c: &Connection, path: &str, limit: u32) -> Result<Vec<Ranked>> {
    let mut stmt = c.prepare_cached(
        "SELECT v.id, v.name,
                COALESCE((SELECT SUM(minutes) FROM ledger_services s
                          WHERE s.volunteer_id = v.id AND s.pending = 0 AND s.rejected = 0), 0)
                + COALESCE((SELECT by_hand_minutes FROM ledger_accounts a
                            WHERE a.volunteer_id = v.id), 0) AS credited,
                (SELECT COUNT(*) FROM ledger_services s
                 WHERE s.volunteer_id = v.id AND s.pending = 0 AND s.rejected = 0) AS services
         FROM volunteers v
         WHERE EXISTS (SELECT 1 FROM memberships m JOIN teams t ON t.id = m.team_id
                       WHERE m.volunteer_id = v.id AND substr(t.path, 1, length(?1)) = ?1)
         ORDER BY credited DESC, v.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![path, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Teams in the subtree at `path` by the minutes their volunteers served for them.
pub fn rank_teams(c: &Connection, path: &str, limit: u32) -> Result<Vec<Ranked>> {
    let mut stmt = c.prepare_cached(
        "SELECT t.id, t.name,
                COALESCE(SUM(CASE WHEN s.pending = 0 AND s.rejected = 0 THEN s.minutes END), 0)
                    AS credited,
                COUNT(CASE WHEN s.pending = 0 AND s.rejected = 0 THEN 1 END) AS services
         FROM teams t LEFT JOIN ledger_services s ON s.team_id = t.id
         WHERE substr(t.path, 1, length(?1)) = ?1
         GROUP BY t.id ORDER BY credited DESC, t.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![path, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// An item on a shelf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub item_id: String,
    pub node_id: String,
    pub name: String,
    pub centipoints: i64,
    pub stock: u32,
    pub reserved: u32,
    pub handed_over: u32,
}

/// The shelves of these nodes, cheapest first.
pub fn items_at(c: &Connection, node_ids: &[String]) -> Result<Vec<ItemRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT item_id, node_id, name, centipoints, stock, reserved, handed_over
         FROM shop_items WHERE node_id IN (SELECT value FROM json_each(?1))
         ORDER BY centipoints, item_id LIMIT 500",
    )?;
    let ids = serde_json::to_string(node_ids).expect("ids serialize");
    let rows = stmt.query_map([ids], |r| {
        Ok(ItemRow {
            item_id: r.get(0)?,
            node_id: r.get(1)?,
            name: r.get(2)?,
            centipoints: r.get(3)?,
            stock: r.get(4)?,
            reserved: r.get(5)?,
            handed_over: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A volunteer's redemptions, newest first: (id, item, item name, quantity, centipoints,
/// status, expires_at_ms, reserved_at_ms).
pub type RedemptionRow = (String, String, String, u32, i64, String, i64, i64);

pub fn redemptions_of(c: &Connection, volunteer_id: &str) -> Result<Vec<RedemptionRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT r.redemption_id, r.item_id, COALESCE(i.name, ''), r.quantity, r.centipoints,
                r.status, r.expires_at_ms, r.reserved_at_ms
         FROM redemptions r LEFT JOIN shop_items i ON i.item_id = r.item_id
         WHERE r.volunteer_id = ?1 ORDER BY r.reserved_at_ms DESC, r.redemption_id LIMIT 200",
    )?;
    let rows = stmt.query_map([volunteer_id], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Reservations whose code lapsed by `now_ms` (the runner cancels them).
pub fn lapsed_redemptions(c: &Connection, now_ms: i64, limit: usize) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached(
        "SELECT redemption_id FROM redemptions WHERE status = 'reserved' AND expires_at_ms < ?1
         ORDER BY expires_at_ms LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, limit as i64], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every volunteer with points to spend (the year-end job's list).
pub fn point_holders(c: &Connection) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached(
        "SELECT volunteer_id FROM ledger_accounts WHERE available > 0 ORDER BY volunteer_id",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// An interrupted reservation: (redemption id, the volunteer whose points it held, the item
/// whose stock it reserved).
pub type Orphan = (String, Option<String>, Option<String>);

/// Points held or stock reserved before `before_ms` for a redemption that was never recorded
/// (a reservation interrupted between its steps): (redemption id, volunteer, item).
pub fn orphaned_holds(c: &Connection, before_ms: i64) -> Result<Vec<Orphan>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, MAX(volunteer_id), MAX(item_id) FROM (
             SELECT redemption_id AS id, volunteer_id, NULL AS item_id, at_ms FROM ledger_holds
             UNION ALL
             SELECT redemption_id, NULL, item_id, at_ms FROM shop_reservations)
         WHERE id NOT IN (SELECT redemption_id FROM redemptions)
         GROUP BY id HAVING MAX(at_ms) < ?1 LIMIT 100",
    )?;
    let rows = stmt.query_map([before_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The volunteers with the most points to spend, most first: (volunteer, available).
pub fn richest(c: &Connection, limit: u32) -> Result<Vec<(String, i64)>> {
    let mut stmt = c.prepare_cached(
        "SELECT volunteer_id, available FROM ledger_accounts WHERE available > 0
         ORDER BY available DESC, volunteer_id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many services are credited (the demo waits for the ledger to settle).
pub fn credited_services(c: &Connection) -> Result<u64> {
    Ok(c.query_row("SELECT COUNT(*) FROM ledger_services", [], |r| r.get(0))?)
}
