//! Station statistics: one fact row per order (when it was placed, dispatched, accepted,
//! completed; its rating and service time), summed over a subtree at query time so every level
//! — station, institute, centre — is the same query with a shorter path prefix.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::{OffsetDateTime, UtcOffset};

use diandan_proto::v1 as pb;
use diandan_workflows::order::OrderChange;

use super::directory::NodePaths;
use super::{Applied, Cached, Folds, Projection};
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
    activity INTEGER NOT NULL DEFAULT 0,
    -- The team the order is assigned to now (as `orders.assignee_id`): read with the
    -- dispatch time from one index, without the order's row.
    team_id TEXT
);
-- Who holds a seat of an open claim: active volunteers count claimants too.
CREATE TABLE IF NOT EXISTS claimant_facts (
    order_id TEXT NOT NULL,
    volunteer_id TEXT NOT NULL,
    PRIMARY KEY (order_id, volunteer_id)
);
";

/// The statistics queries' indexes (the projection writes by `order_id` only).
const QUERY_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS order_facts_path ON order_facts (station_path, day);
CREATE INDEX IF NOT EXISTS order_facts_placed ON order_facts (placed_ms, order_id);
-- Orders by when they were first dispatched, with their team, for dispatch suggestions'
-- recent assignments (`dispatching::RECENT_LOAD`, from this index alone).
CREATE INDEX IF NOT EXISTS order_facts_dispatched ON order_facts (dispatched_ms, team_id)
    WHERE dispatched_ms IS NOT NULL;
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

    fn query_indexes(&self) -> &'static str {
        QUERY_INDEXES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["order_facts", "claimant_facts"]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()> {
        self.apply_all(tx, std::slice::from_ref(event))
    }

    /// Folds each order's events of the batch into its fact row in memory and writes the row
    /// once (as the order list does): a completed order's dozen updates become one write.
    fn apply_all(&self, tx: &Transaction<'_>, events: &[Applied<'_>]) -> Result<()> {
        // Per order: its fact row (none: never placed), and whether this batch placed it.
        let mut folded: Folds<&str, (Option<Fact>, bool)> = Folds::new();
        let mut paths = NodePaths::new();
        for event in events {
            let Some(order_id) = event.stream.strip_prefix("order-") else {
                continue;
            };
            let decoded = event.order()?;
            let (fact, placed) = folded.entry(order_id, || {
                // A stream that starts in this batch has no row yet: nothing to look up.
                if event.revision == 0 {
                    Ok((None, false))
                } else {
                    Ok((Fact::load(tx, order_id)?, false))
                }
            })?;
            let change = &decoded.change;
            match change {
                OrderChange::OrderPlaced {
                    station_id,
                    category,
                    workflow,
                    activity,
                    ..
                } => {
                    *fact = Some(Fact::placed(
                        paths.get(tx, station_id)?,
                        category.code(),
                        decoded.at,
                        &workflow.name,
                        *activity,
                    ));
                    *placed = true;
                }
                // Who holds a seat: written as it comes (a side table, rarely touched).
                OrderChange::Claimed { volunteer_id, .. } => {
                    tx.execute_cached(
                        "INSERT OR IGNORE INTO claimant_facts (order_id, volunteer_id) VALUES (?1, ?2)",
                        params![order_id, volunteer_id],
                    )?;
                }
                OrderChange::Unclaimed { volunteer_id, .. } => {
                    tx.execute_cached(
                        "DELETE FROM claimant_facts WHERE order_id = ?1 AND volunteer_id = ?2",
                        params![order_id, volunteer_id],
                    )?;
                }
                _ => {}
            }
            // Facts of an order with no row (never placed) are dropped, as an UPDATE would.
            if let Some(fact) = fact {
                fact.evolve(change, millis(decoded.at));
            }
        }
        for (order_id, (fact, placed)) in folded.entries() {
            if let Some(fact) = fact {
                fact.write(tx, order_id, *placed)?;
            }
        }
        Ok(())
    }
}

/// One order's row of `order_facts` while a batch is folded into it.
#[derive(Debug, Clone, PartialEq)]
struct Fact {
    station_path: String,
    category: String,
    day: String,
    outcome: String,
    placed_ms: i64,
    dispatched_ms: Option<i64>,
    accepted_ms: Option<i64>,
    completed_ms: Option<i64>,
    rating: Option<i64>,
    service_minutes: i64,
    warned: i64,
    overdue: i64,
    volunteer_id: Option<String>,
    workflow: String,
    claims: i64,
    reworks: i64,
    activity: bool,
    team_id: Option<String>,
}

impl Fact {
    fn placed(
        station_path: String,
        category: &str,
        at: OffsetDateTime,
        workflow: &str,
        activity: bool,
    ) -> Fact {
        Fact {
            station_path,
            category: category.to_owned(),
            day: local_day(at),
            outcome: "open".to_owned(),
            placed_ms: millis(at),
            dispatched_ms: None,
            accepted_ms: None,
            completed_ms: None,
            rating: None,
            service_minutes: 0,
            warned: 0,
            overdue: 0,
            volunteer_id: None,
            workflow: workflow.to_owned(),
            claims: 0,
            reworks: 0,
            activity,
            team_id: None,
        }
    }

    fn load(tx: &Transaction<'_>, order_id: &str) -> Result<Option<Fact>> {
        Ok(tx
            .query_row_cached(
                "SELECT station_path, category, day, outcome, placed_ms, dispatched_ms,
                        accepted_ms, completed_ms, rating, service_minutes, warned, overdue,
                        volunteer_id, workflow, claims, reworks, activity, team_id
                 FROM order_facts WHERE order_id = ?1",
                [order_id],
                |r| {
                    Ok(Fact {
                        station_path: r.get(0)?,
                        category: r.get(1)?,
                        day: r.get(2)?,
                        outcome: r.get(3)?,
                        placed_ms: r.get(4)?,
                        dispatched_ms: r.get(5)?,
                        accepted_ms: r.get(6)?,
                        completed_ms: r.get(7)?,
                        rating: r.get(8)?,
                        service_minutes: r.get(9)?,
                        warned: r.get(10)?,
                        overdue: r.get(11)?,
                        volunteer_id: r.get(12)?,
                        workflow: r.get(13)?,
                        claims: r.get(14)?,
                        reworks: r.get(15)?,
                        activity: r.get(16)?,
                        team_id: r.get(17)?,
                    })
                },
            )
            .optional()?)
    }

    /// What one event changes of the row (`at`: its business time, in ms).
    fn evolve(&mut self, change: &OrderChange, at: i64) {
        match change {
            OrderChange::OrderDispatched { assignee, .. } => {
                self.dispatched_ms.get_or_insert(at);
                self.team_id = Some(assignee.team_id.clone());
            }
            OrderChange::OrderAccepted { volunteer_id, .. } => {
                self.accepted_ms.get_or_insert(at);
                self.volunteer_id = Some(volunteer_id.clone());
            }
            // Each claimant of an activity, and each round of a reworked order, adds.
            OrderChange::VolunteerCheckedOut {
                service_minutes, ..
            } => self.service_minutes += i64::from(*service_minutes),
            OrderChange::OrderCompleted { .. } => self.completed_ms = Some(at),
            OrderChange::OrderReviewed { rating, .. } => self.rating = Some(i64::from(*rating)),
            OrderChange::OrderRejected { .. } => self.outcome = "rejected".to_owned(),
            OrderChange::OrderCancelled { .. } => self.outcome = "cancelled".to_owned(),
            OrderChange::OrderMerged { .. } => self.outcome = "merged".to_owned(),
            // The first claim is when a volunteer took it up, like an accept.
            OrderChange::Claimed { .. } => {
                self.claims += 1;
                self.accepted_ms.get_or_insert(at);
            }
            OrderChange::OrderReworked { assignee, .. } => {
                self.reworks += 1;
                self.team_id = Some(assignee.team_id.clone());
            }
            OrderChange::OrderDeclined { .. } => self.team_id = None,
            OrderChange::Unclaimed { .. } => self.claims -= 1,
            OrderChange::DeadlineWarned { .. } => self.warned = 1,
            OrderChange::DeadlineOverdue { .. } => self.overdue = 1,
            OrderChange::OrderPlaced { .. }
            | OrderChange::OrderTriaged
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
    }

    /// Writes the row: whole when the order was placed in this batch, else only what events
    /// after a placement change (the indexed columns stay as they are).
    fn write(&self, tx: &Transaction<'_>, order_id: &str, placed: bool) -> Result<()> {
        if placed {
            tx.execute_cached(
                "INSERT OR REPLACE INTO order_facts (order_id, station_path, category, day,
                     outcome, placed_ms, dispatched_ms, accepted_ms, completed_ms, rating,
                     service_minutes, warned, overdue, volunteer_id, workflow, claims, reworks,
                     activity, team_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         ?17, ?18, ?19)",
                params![
                    order_id,
                    self.station_path,
                    self.category,
                    self.day,
                    self.outcome,
                    self.placed_ms,
                    self.dispatched_ms,
                    self.accepted_ms,
                    self.completed_ms,
                    self.rating,
                    self.service_minutes,
                    self.warned,
                    self.overdue,
                    self.volunteer_id,
                    self.workflow,
                    self.claims,
                    self.reworks,
                    self.activity,
                    self.team_id
                ],
            )?;
        } else {
            tx.execute_cached(
                "UPDATE order_facts SET outcome = ?2, dispatched_ms = ?3, accepted_ms = ?4,
                     completed_ms = ?5, rating = ?6, service_minutes = ?7, warned = ?8,
                     overdue = ?9, volunteer_id = ?10, claims = ?11, reworks = ?12, team_id = ?13
                 WHERE order_id = ?1",
                params![
                    order_id,
                    self.outcome,
                    self.dispatched_ms,
                    self.accepted_ms,
                    self.completed_ms,
                    self.rating,
                    self.service_minutes,
                    self.warned,
                    self.overdue,
                    self.volunteer_id,
                    self.claims,
                    self.reworks,
                    self.team_id
                ],
            )?;
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

/// The facts of a subtree's days, by the nodes of the subtree: for each, one seek of
/// `order_facts_path` to its first day (`station_path = ? AND day >= ?`). A range of paths
/// with the days as a filter read every fact the subtree ever had to keep a month of them
/// (a station's year of 111,000 orders: 110,000 index entries for 9,000 facts).
macro_rules! subtree_days {
    ($facts:literal) => {
        concat!(
            $facts,
            ".station_path IN (SELECT path FROM org_nodes WHERE path >= ?1 AND path < ?2) AND ",
            $facts,
            ".day >= ?3 AND ",
            $facts,
            ".day <= ?4"
        )
    };
}

/// The facts a subtree's statistics sum (`?1..?2` the subtree's paths, `?3..=?4` its days).
const FACTS: &str = concat!(
    "SELECT category, day, outcome, placed_ms, dispatched_ms, accepted_ms, completed_ms,
            rating, service_minutes, warned, overdue, volunteer_id, workflow, claims, reworks,
            activity
     FROM order_facts f
     WHERE ",
    subtree_days!("f")
);

/// The claimants of those facts' orders (open claims count their volunteers as active).
const CLAIMANTS: &str = concat!(
    "SELECT DISTINCT c.volunteer_id FROM claimant_facts c JOIN order_facts f USING (order_id)
     WHERE ",
    subtree_days!("f")
);

/// The credited service of a subtree's stations over its days, each station one seek of
/// `ledger_services_station` to its days: the `credited_at` range is the day condition made
/// readable by the index (a time of day `d` sorts between `d` and `d~`); the day condition
/// itself stays, the meaning.
const CREDITED: &str = "SELECT COALESCE(SUM(s.minutes), 0), COALESCE(SUM(s.minutes * 100 / 60), 0)
     FROM ledger_services s INDEXED BY ledger_services_station
     WHERE s.station_id IN (SELECT id FROM org_nodes WHERE path >= ?1 AND path < ?2)
       AND s.credited_at >= ?3 AND s.credited_at < ?4 || '~'
       AND s.pending = 0 AND s.rejected = 0
       AND substr(s.credited_at, 1, 10) >= ?3 AND substr(s.credited_at, 1, 10) <= ?4";

/// Sums the facts of a subtree.
pub fn station_stats(conn: &Connection, query: &StatsQuery) -> Result<pb::StationStatsResponse> {
    let mut stmt = conn.prepare_cached(FACTS)?;
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
    let mut claimants = conn.prepare_cached(CLAIMANTS)?;
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
    let (minutes, points): (i64, i64) =
        conn.query_row(CREDITED, params![query.path, end, from, to], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
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
    fn a_subtrees_days_are_read_station_by_station() {
        for (sql, index) in [
            (
                FACTS,
                "order_facts_path (station_path=? AND day>? AND day<?)",
            ),
            (
                CLAIMANTS,
                "order_facts_path (station_path=? AND day>? AND day<?)",
            ),
            (
                CREDITED,
                "ledger_services_station (station_id=? AND credited_at>? AND credited_at<?)",
            ),
        ] {
            let plan = crate::projections::query_plan(sql);
            assert!(plan.iter().any(|s| s.contains(index)), "{index}: {plan:?}");
            assert!(!plan.iter().any(|s| s.starts_with("SCAN")), "{plan:?}");
        }
    }

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
