//! Station statistics: one fact row per order (when it was placed, dispatched, accepted,
//! completed; its rating and service time), summed over a subtree at query time so every level
//! — station, institute, centre — is the same query with a shorter path prefix.

use rusqlite::{params, Connection, Transaction};
use time::{OffsetDateTime, UtcOffset};

use diandan_proto::v1 as pb;
use diandan_workflows::order::OrderChange;

use super::directory::node_path;
use super::{Applied, Cached, Projection};
use crate::Result;

pub struct StatsProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS order_facts (
    order_id TEXT PRIMARY KEY,
    station_path TEXT NOT NULL,
    category TEXT NOT NULL,
    day TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'open',
    placed_ms INTEGER NOT NULL,
    dispatched_ms INTEGER,
    accepted_ms INTEGER,
    completed_ms INTEGER,
    rating INTEGER,
    service_minutes INTEGER NOT NULL DEFAULT 0,
    warned INTEGER NOT NULL DEFAULT 0,
    overdue INTEGER NOT NULL DEFAULT 0,
    volunteer_id TEXT,
    workflow TEXT NOT NULL DEFAULT 'dispatched-order',
    claims INTEGER NOT NULL DEFAULT 0,
    reworks INTEGER NOT NULL DEFAULT 0,
    activity INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS order_facts_path ON order_facts (station_path, day);
CREATE INDEX IF NOT EXISTS order_facts_placed ON order_facts (placed_ms, order_id);
-- Who holds a seat of an open claim: active volunteers count claimants too.
CREATE TABLE IF NOT EXISTS claimant_facts (
    order_id TEXT NOT NULL,
    volunteer_id TEXT NOT NULL,
    PRIMARY KEY (order_id, volunteer_id)
);
";

/// China Standard Time: statistics are by the local day.
const CST: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+8 is a valid offset"),
};

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The local (CST) day of a time, `YYYY-MM-DD`.
pub fn local_day(t: OffsetDateTime) -> String {
    let d = t.to_offset(CST).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

impl Projection for StatsProjection {
    fn name(&self) -> &'static str {
        "stats"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["order_facts", "claimant_facts"]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()> {
        let Some(order_id) = event.stream.strip_prefix("order-") else {
            return Ok(());
        };
        let decoded = event.order()?;
        let at = millis(decoded.at);
        let set = |sql: &str, value: rusqlite::types::Value| -> Result<()> {
            tx.execute_cached(sql, params![order_id, value])?;
            Ok(())
        };
        match &decoded.change {
            OrderChange::OrderPlaced {
                station_id,
                category,
                workflow,
                activity,
                ..
            } => {
                tx.execute_cached(
                    "INSERT OR REPLACE INTO order_facts (order_id, station_path, category, day, placed_ms, workflow, activity)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        order_id,
                        node_path(tx, station_id)?,
                        category.code(),
                        local_day(decoded.at),
                        at,
                        workflow.name,
                        activity
                    ],
                )?;
            }
            OrderChange::OrderDispatched { .. } => set(
                "UPDATE order_facts SET dispatched_ms = COALESCE(dispatched_ms, ?2) WHERE order_id = ?1",
                at.into(),
            )?,
            OrderChange::OrderAccepted { volunteer_id, .. } => {
                tx.execute_cached(
                    "UPDATE order_facts SET accepted_ms = COALESCE(accepted_ms, ?2),
                            volunteer_id = ?3 WHERE order_id = ?1",
                    params![order_id, at, volunteer_id],
                )?;
            }
            OrderChange::VolunteerCheckedOut {
                service_minutes, ..
            } => set(
                // Each claimant of an activity, and each round of a reworked order, adds.
                "UPDATE order_facts SET service_minutes = service_minutes + ?2 WHERE order_id = ?1",
                i64::from(*service_minutes).into(),
            )?,
            OrderChange::OrderCompleted { .. } => set(
                "UPDATE order_facts SET completed_ms = ?2 WHERE order_id = ?1",
                at.into(),
            )?,
            OrderChange::OrderReviewed { rating, .. } => set(
                "UPDATE order_facts SET rating = ?2 WHERE order_id = ?1",
                i64::from(*rating).into(),
            )?,
            OrderChange::OrderRejected { .. } => set(
                "UPDATE order_facts SET outcome = ?2 WHERE order_id = ?1",
                "rejected".to_owned().into(),
            )?,
            OrderChange::OrderCancelled { .. } => set(
                "UPDATE order_facts SET outcome = ?2 WHERE order_id = ?1",
                "cancelled".to_owned().into(),
            )?,
            OrderChange::OrderMerged { .. } => set(
                "UPDATE order_facts SET outcome = ?2 WHERE order_id = ?1",
                "merged".to_owned().into(),
            )?,
            OrderChange::Claimed { volunteer_id, .. } => {
                // The first claim is when a volunteer took it up, like an accept.
                tx.execute_cached(
                    "UPDATE order_facts SET claims = claims + 1,
                            accepted_ms = COALESCE(accepted_ms, ?2) WHERE order_id = ?1",
                    params![order_id, at],
                )?;
                tx.execute_cached(
                    "INSERT OR IGNORE INTO claimant_facts (order_id, volunteer_id) VALUES (?1, ?2)",
                    params![order_id, volunteer_id],
                )?;
            }
            OrderChange::OrderReworked { .. } => set(
                "UPDATE order_facts SET reworks = reworks + ?2 WHERE order_id = ?1",
                1i64.into(),
            )?,
            OrderChange::Unclaimed { volunteer_id, .. } => {
                tx.execute_cached(
                    "UPDATE order_facts SET claims = claims - 1 WHERE order_id = ?1",
                    params![order_id],
                )?;
                tx.execute_cached(
                    "DELETE FROM claimant_facts WHERE order_id = ?1 AND volunteer_id = ?2",
                    params![order_id, volunteer_id],
                )?;
            }
            OrderChange::DeadlineWarned { .. } => set(
                "UPDATE order_facts SET warned = ?2 WHERE order_id = ?1",
                1i64.into(),
            )?,
            OrderChange::DeadlineOverdue { .. } => set(
                "UPDATE order_facts SET overdue = ?2 WHERE order_id = ?1",
                1i64.into(),
            )?,
            OrderChange::OrderTriaged
            | OrderChange::OrderDeclined { .. }
            | OrderChange::VolunteerCheckedIn { .. }
            | OrderChange::OrderClosed
            | OrderChange::DeadlineScheduled { .. }
            | OrderChange::DeadlineCleared { .. }
            | OrderChange::TimerIgnored { .. }
            | OrderChange::ExtensionRequested { .. }
            | OrderChange::ExtensionApproved { .. }
            | OrderChange::ExtensionDenied { .. }
            | OrderChange::FollowUpRecorded { .. }
            | OrderChange::DuplicateMerged { .. } => {}
        }
        Ok(())
    }
}

/// A statistics query over a subtree.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    pub node_id: String,
    /// `/…/` path prefix of the node.
    pub path: String,
    pub from_day: Option<String>,
    pub to_day: Option<String>,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Sums the facts of a subtree.
pub fn station_stats(conn: &Connection, query: &StatsQuery) -> Result<pb::StationStatsResponse> {
    let mut stmt = conn.prepare_cached(
        "SELECT category, day, outcome, placed_ms, dispatched_ms, accepted_ms, completed_ms,
                rating, service_minutes, warned, overdue, volunteer_id, workflow, claims, reworks,
                activity
         FROM order_facts
         WHERE station_path >= ?1 AND station_path < ?2 AND day >= ?3 AND day <= ?4",
    )?;
    let rows = stmt.query_map(
        params![
            query.path,
            format!("{}\u{10FFFF}", query.path),
            query.from_day.clone().unwrap_or_default(),
            query.to_day.clone().unwrap_or_else(|| "9999-12-31".into()),
        ],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, Option<String>>(11)?,
                (
                    r.get::<_, String>(12)?,
                    r.get::<_, i64>(13)?,
                    r.get::<_, i64>(14)?,
                    r.get::<_, bool>(15)?,
                ),
            ))
        },
    )?;
    let mut report = pb::StationStatsResponse {
        node_id: query.node_id.clone(),
        ..Default::default()
    };
    let (mut to_dispatch, mut to_accept, mut to_complete) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ratings, mut satisfied, mut minutes) = (0u64, 0u64, 0i64);
    let mut rating_sum = 0i64;
    let mut by_category = std::collections::BTreeMap::<String, (u64, u64)>::new();
    let mut by_day = std::collections::BTreeMap::<String, (u64, u64, u64)>::new();
    let mut volunteers = std::collections::HashSet::<String>::new();
    let mut on_time = 0u64;
    let minutes_between = |from: i64, to: i64| (to - from) as f64 / 60_000.0;
    for row in rows {
        let (
            category,
            day,
            outcome,
            placed,
            dispatched,
            accepted,
            completed,
            rating,
            served,
            warned,
            overdue,
            volunteer,
            (workflow, claims, reworks, activity),
        ) = row?;
        if workflow == diandan_workflows::claim::WORKFLOW {
            report.claim_orders += 1;
            report.activities += u64::from(activity);
            report.claims += u64::try_from(claims).unwrap_or(0);
        }
        report.reworked += u64::from(reworks > 0);
        report.overdue_yellow += u64::from(warned > 0 && overdue == 0);
        report.overdue_red += u64::from(overdue > 0);
        report.received += 1;
        let category = by_category.entry(category).or_default();
        let day = by_day.entry(day).or_default();
        category.0 += 1;
        day.0 += 1;
        match outcome.as_str() {
            "rejected" => report.rejected += 1,
            "cancelled" => report.cancelled += 1,
            "merged" => report.merged += 1,
            _ => {}
        }
        if let Some(v) = volunteer {
            volunteers.insert(v);
        }
        if overdue > 0 && completed.is_none() && outcome == "open" {
            report.open_overdue += 1;
        }
        if let Some(d) = dispatched {
            report.dispatched += 1;
            day.2 += 1;
            to_dispatch.push(minutes_between(placed, d));
        }
        if let Some(a) = accepted {
            report.accepted += 1;
            to_accept.push(minutes_between(dispatched.unwrap_or(placed), a));
        }
        if let Some(c) = completed {
            report.completed += 1;
            category.1 += 1;
            day.1 += 1;
            on_time += u64::from(overdue == 0);
            to_complete.push(minutes_between(placed, c));
        }
        if let Some(r) = rating {
            ratings += 1;
            rating_sum += r;
            if r >= 4 {
                satisfied += 1;
            }
        }
        minutes += served;
    }
    report.reviewed = ratings;
    report.median_minutes_to_dispatch = median(to_dispatch);
    report.median_minutes_to_accept = median(to_accept);
    report.median_minutes_to_complete = median(to_complete);
    if ratings > 0 {
        report.satisfaction_rate = satisfied as f64 / ratings as f64;
        report.average_rating = rating_sum as f64 / ratings as f64;
    }
    report.volunteer_hours = minutes as f64 / 60.0;
    // Claimants of the range's open claims are active too.
    let mut claimants = conn.prepare_cached(
        "SELECT DISTINCT c.volunteer_id FROM claimant_facts c JOIN order_facts f USING (order_id)
         WHERE f.station_path >= ?1 AND f.station_path < ?2 AND f.day >= ?3 AND f.day <= ?4",
    )?;
    let rows = claimants.query_map(
        params![
            query.path,
            format!("{}\u{10FFFF}", query.path),
            query.from_day.clone().unwrap_or_default(),
            query.to_day.clone().unwrap_or_else(|| "9999-12-31".into()),
        ],
        |r| r.get::<_, String>(0),
    )?;
    for volunteer in rows {
        volunteers.insert(volunteer?);
    }
    report.active_volunteers = volunteers.len() as u64;
    if report.completed > 0 {
        report.on_time_rate = on_time as f64 / report.completed as f64;
    }
    report.by_category = by_category
        .into_iter()
        .map(|(category, (received, completed))| pb::CategoryCount {
            category,
            received,
            completed,
        })
        .collect();
    report.by_day = by_day
        .into_iter()
        .map(|(day, (received, completed, dispatched))| pb::DayCount {
            day,
            received,
            completed,
            dispatched,
        })
        .collect();
    ledger_stats(conn, query, &mut report)?;
    Ok(report)
}

/// The ledger's part of the statistics: credited service and points by the station served,
/// redemptions by the shop's node — read from the ledger's read model (`projections::ledger`).
fn ledger_stats(
    conn: &Connection,
    query: &StatsQuery,
    report: &mut pb::StationStatsResponse,
) -> Result<()> {
    let from = query.from_day.clone().unwrap_or_default();
    let to = query.to_day.clone().unwrap_or_else(|| "9999-12-31".into());
    let end = format!("{}\u{10FFFF}", query.path);
    let (minutes, points): (i64, i64) = conn.query_row(
        "SELECT COALESCE(SUM(s.minutes), 0), COALESCE(SUM(s.minutes * 100 / 60), 0)
         FROM ledger_services s JOIN org_nodes n ON n.id = s.station_id
         WHERE n.path >= ?1 AND n.path < ?2 AND s.pending = 0 AND s.rejected = 0
           AND substr(s.credited_at, 1, 10) >= ?3 AND substr(s.credited_at, 1, 10) <= ?4",
        params![query.path, end, from, to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    report.credited_minutes = minutes;
    report.points_issued_centipoints = points;
    // Days of redemptions in China Standard Time, from the reservation's commit time.
    let (reserved, handed_over): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(r.status = 'handed_over'), 0)
         FROM redemptions r JOIN shop_items i ON i.item_id = r.item_id
              JOIN org_nodes n ON n.id = i.node_id
         WHERE n.path >= ?1 AND n.path < ?2
           AND date((r.reserved_at_ms + 8 * 3600000) / 1000, 'unixepoch') >= ?3
           AND date((r.reserved_at_ms + 8 * 3600000) / 1000, 'unixepoch') <= ?4",
        params![query.path, end, from, to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    report.redemptions = reserved as u64;
    report.redemptions_handed_over = handed_over as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn local_day_is_china_standard_time() {
        let late_utc = time::macros::datetime!(2026-11-21 17:30 UTC);
        assert_eq!(local_day(late_utc), "2026-11-22");
    }
}
