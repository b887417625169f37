//! The order list read model: one row per order with its folded state, indexed for the lists
//! each role sees (a resident's own, a volunteer's offers and tasks, a station head's subtree).

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use diandan_workflows::order::{self, OrderChange, OrderState};

use super::directory::NodePaths;
use super::{Applied, Cached, Folds, Projection};
use crate::views::rfc3339;
use crate::{AppError, Result};

pub struct OrdersProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    station_path TEXT NOT NULL,
    requester_id TEXT NOT NULL,
    assignee_id TEXT,
    accepted_by TEXT,
    placed_at TEXT NOT NULL,
    revision INTEGER NOT NULL,
    state_json TEXT NOT NULL,
    extension_pending INTEGER NOT NULL DEFAULT 0
);
-- Who else an order belongs to: claimants of an open claim, followers of a merged duplicate.
CREATE TABLE IF NOT EXISTS order_people (
    person_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    PRIMARY KEY (person_id, kind, order_id)
);
CREATE INDEX IF NOT EXISTS order_people_order ON order_people (order_id);
";

/// The condition of an order a team is working on (its open load): one text for the partial
/// index below and the query that reads it (`dispatching::OPEN_LOAD`), since SQLite uses a
/// partial index only for a query whose WHERE names the index's condition.
macro_rules! open_status {
    () => {
        "status IN ('dispatched', 'accepted', 'in_service', 'served')"
    };
}
pub(crate) use open_status;

/// 待办 (the station's queue): to triage, to dispatch (again, after a decline), waiting to be
/// accepted, or an extension request to decide. One text for the partial index and the query.
macro_rules! waiting_status {
    () => {
        "(status IN ('placed', 'triaged', 'dispatched') OR extension_pending = 1)"
    };
}

/// Open to volunteers' claims (认领): one text for the partial index and the query.
macro_rules! published_status {
    () => {
        "status = 'published'"
    };
}

/// The lists' indexes (the projection writes by `order_id` only).
const QUERY_INDEXES: &str = concat!(
    "
CREATE INDEX IF NOT EXISTS orders_requester ON orders (requester_id, placed_at);
CREATE INDEX IF NOT EXISTS orders_path ON orders (station_path, status);
CREATE INDEX IF NOT EXISTS orders_station_placed ON orders (station_path, placed_at);
CREATE INDEX IF NOT EXISTS orders_assignee ON orders (assignee_id, status);
CREATE INDEX IF NOT EXISTS orders_accepted_by ON orders (accepted_by, placed_at);
CREATE INDEX IF NOT EXISTS orders_assignee_placed ON orders (assignee_id, placed_at);
-- The open orders of each team, for dispatch suggestions' load: only open orders are in it.
CREATE INDEX IF NOT EXISTS orders_open_assignee ON orders (assignee_id, status)
    WHERE ",
    open_status!(),
    ";
-- A station's queue and the orders open to claims, each a few rows however many orders a
-- station has had: a list of either reads only these, not every order of the subtree.
CREATE INDEX IF NOT EXISTS orders_waiting ON orders (station_path, placed_at)
    WHERE ",
    waiting_status!(),
    ";
CREATE INDEX IF NOT EXISTS orders_published ON orders (station_path, placed_at)
    WHERE ",
    published_status!(),
    ";
"
);

impl Projection for OrdersProjection {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn query_indexes(&self) -> &'static str {
        QUERY_INDEXES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["orders", "order_people"]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()> {
        self.apply_all(tx, std::slice::from_ref(event))
    }

    /// Folds each order's events of the batch in memory and writes its row once: an order's
    /// state is read, parsed and serialised once per batch, not once per event.
    fn apply_all(&self, tx: &Transaction<'_>, events: &[Applied<'_>]) -> Result<()> {
        let mut folded: Folds<&str, Folded> = Folds::new();
        let mut paths = NodePaths::new();
        for event in events {
            let Some(order_id) = event.stream.strip_prefix("order-") else {
                continue;
            };
            let decoded = event.order()?;
            let order = folded.entry(order_id, || {
                // A stream that starts in this batch has no row yet: nothing to look up.
                if event.revision == 0 {
                    Ok(Folded::new(order_id, OrderState::default()))
                } else {
                    Folded::load(tx, order_id)
                }
            })?;
            if let OrderChange::OrderPlaced { station_id, .. } = &decoded.change {
                order.station_path = Some(paths.get(tx, station_id)?);
            }
            order.people_changed |= matches!(
                decoded.change,
                OrderChange::Claimed { .. }
                    | OrderChange::Unclaimed { .. }
                    | OrderChange::DuplicateMerged { .. }
            );
            order.state = order::evolve(std::mem::take(&mut order.state), decoded);
            order.revision = event.revision;
        }
        for (_, order) in folded.entries() {
            order.write(tx)?;
        }
        Ok(())
    }
}

/// One order's row while a batch is folded into it.
struct Folded {
    order_id: String,
    state: OrderState,
    /// Set by the batch's `OrderPlaced` (the row keeps its path otherwise).
    station_path: Option<String>,
    revision: u64,
    /// Claimants or followers changed: `order_people` is written again.
    people_changed: bool,
}

impl Folded {
    fn load(tx: &Transaction<'_>, order_id: &str) -> Result<Folded> {
        let previous: Option<String> = tx
            .query_row_cached(
                "SELECT state_json FROM orders WHERE order_id = ?1",
                [order_id],
                |r| r.get(0),
            )
            .optional()?;
        let state = match previous {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| AppError::Storage(format!("order {order_id} state: {e}")))?,
            None => OrderState::default(),
        };
        Ok(Folded::new(order_id, state))
    }

    fn new(order_id: &str, state: OrderState) -> Folded {
        Folded {
            order_id: order_id.to_owned(),
            state,
            station_path: None,
            revision: 0,
            people_changed: false,
        }
    }

    fn write(&self, tx: &Transaction<'_>) -> Result<()> {
        let (order_id, state) = (&self.order_id, &self.state);
        let json = serde_json::to_string(state).expect("state serializes");
        let assignee = state.assignee.as_ref().map(|a| a.team_id.clone());
        let accepted_by = state.accepted_by.as_ref().map(|(v, _)| v.clone());
        let extension_pending = state
            .deadlines
            .values()
            .any(|d| d.extension_requested.is_some());
        tx.execute_cached(
            "INSERT INTO orders (order_id, status, station_path, requester_id, assignee_id,
                                 accepted_by, placed_at, revision, state_json, extension_pending)
             VALUES (?1, ?2, COALESCE(?3, '/'), ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(order_id) DO UPDATE SET
                 status = excluded.status,
                 station_path = COALESCE(?3, station_path),
                 assignee_id = excluded.assignee_id,
                 accepted_by = excluded.accepted_by,
                 revision = excluded.revision,
                 state_json = excluded.state_json,
                 extension_pending = excluded.extension_pending",
            params![
                order_id,
                state.status.as_str(),
                self.station_path,
                state.requester_id,
                assignee,
                accepted_by,
                rfc3339(state.placed_at),
                self.revision,
                json,
                extension_pending
            ],
        )?;
        if self.people_changed {
            tx.execute_cached("DELETE FROM order_people WHERE order_id = ?1", [order_id])?;
            let people = state
                .claims
                .keys()
                .map(|v| (v, "claimant"))
                .chain(state.followers.iter().map(|f| (f, "follower")));
            for (person, kind) in people {
                tx.execute_cached(
                    "INSERT OR IGNORE INTO order_people (person_id, kind, order_id) VALUES (?1, ?2, ?3)",
                    params![person, kind, order_id],
                )?;
            }
        }
        Ok(())
    }
}

/// Whose orders to list.
#[derive(Debug, Clone)]
pub enum OrderScope {
    /// A resident's own orders.
    Requester(String),
    /// Offered to one of these teams (status dispatched), or accepted by this volunteer, or
    /// (a team leader) assigned to a team they lead, whatever its status.
    Volunteer {
        id: String,
        team_ids: Vec<String>,
        led_team_ids: Vec<String>,
    },
    /// Every order of a subtree (a `/…/` path prefix).
    Subtree(String),
    /// Published open claims of stations below any of these `/…/` paths (a volunteer's
    /// teams' nodes: the station lineage).
    Claimable(Vec<String>),
}

/// A list query.
#[derive(Debug, Clone)]
pub struct OrderFilter {
    pub scope: OrderScope,
    pub statuses: Statuses,
    pub limit: u32,
    /// Oldest first (a queue) instead of newest first.
    pub oldest_first: bool,
}

/// Which statuses a list keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statuses {
    Any,
    /// Only these.
    Only(Vec<String>),
    /// The station's queue (待办), through its partial index.
    Waiting,
}

/// Most branches a list is read in: past them (a centre of hundreds of stations) one condition
/// over them all is read instead, sorted whole — SQLite takes at most 500 terms in a compound
/// query, and a page from each of hundreds of branches is no cheaper than the sort.
const MAX_BRANCHES: usize = 64;

/// A list query's SQL and its arguments.
///
/// A scope of several kinds of orders (a resident's own and those they follow; a volunteer's
/// accepted, claimed and offered ones) is read branch by branch, each through its own index in
/// list order and cut at the page size, and only those pages merged: one `OR` over them all
/// made SQLite collect every matching order, whole, to sort it (a resident with 22,000 orders
/// waited 110 ms for a page of 20).
///
/// A subtree is read the same way, a branch per station of `stations` (those with orders, in
/// [`stations_with_orders`]), each in list order through `orders_station_placed`: a range of
/// paths cannot be read in `placed_at` order, so the whole subtree was sorted for one page
/// (350 ms for a station head's page of a station with 106,000 orders).
fn list_sql(filter: &OrderFilter, stations: &[String]) -> (String, Vec<String>) {
    let order = if filter.oldest_first {
        " ORDER BY placed_at ASC, order_id"
    } else {
        " ORDER BY placed_at DESC, order_id"
    };
    let most = diandan_workflows::validate::MAX_PAGE_SIZE;
    let page = format!("{order} LIMIT {}", filter.limit.clamp(1, most));
    let (status, status_args) = match &filter.statuses {
        Statuses::Any => (String::new(), Vec::new()),
        Statuses::Only(statuses) => (
            format!(" AND status IN ({})", vec!["?"; statuses.len()].join(",")),
            statuses.clone(),
        ),
        Statuses::Waiting => (concat!(" AND ", waiting_status!()).to_owned(), Vec::new()),
    };
    let mut branches = scope_branches(&filter.scope, stations);
    if branches.len() > MAX_BRANCHES {
        let (conditions, merged): (Vec<String>, Vec<Vec<String>>) = branches
            .into_iter()
            .map(|(condition, args)| (format!("({condition})"), args))
            .unzip();
        branches = vec![(format!("({})", conditions.join(" OR ")), merged.concat())];
    }
    let mut args = Vec::new();
    let sql = match branches.as_slice() {
        [] => format!("SELECT state_json, revision FROM orders WHERE 0{page}"),
        [(condition, branch_args)] => {
            args.extend(branch_args.iter().cloned());
            args.extend(status_args);
            format!("SELECT state_json, revision FROM orders WHERE {condition}{status}{page}")
        }
        several => {
            let pages: Vec<String> = several
                .iter()
                .map(|(condition, branch_args)| {
                    args.extend(branch_args.iter().cloned());
                    args.extend(status_args.iter().cloned());
                    format!(
                        "SELECT order_id FROM (SELECT order_id FROM orders WHERE {condition}{status}{page})"
                    )
                })
                .collect();
            format!(
                "SELECT state_json, revision FROM orders WHERE order_id IN ({}){page}",
                pages.join(" UNION ALL ")
            )
        }
    };
    (sql, args)
}

/// The orders of a scope as conditions (with their arguments), any of which an order meets;
/// a subtree's are its `stations`.
fn scope_branches(scope: &OrderScope, stations: &[String]) -> Vec<(String, Vec<String>)> {
    let people = |kind: &str| {
        format!(
            "order_id IN (SELECT order_id FROM order_people WHERE person_id = ? AND kind = '{kind}')"
        )
    };
    let within = |path: &str| vec![path.to_owned(), format!("{path}\u{10FFFF}")];
    let any_of = |ids: &[String]| vec!["?"; ids.len()].join(",");
    match scope {
        OrderScope::Requester(id) => vec![
            ("requester_id = ?".into(), vec![id.clone()]),
            (people("follower"), vec![id.clone()]),
        ],
        OrderScope::Volunteer {
            id,
            team_ids,
            led_team_ids,
        } => {
            let mut branches = vec![
                ("accepted_by = ?".into(), vec![id.clone()]),
                (people("claimant"), vec![id.clone()]),
            ];
            if !team_ids.is_empty() {
                branches.push((
                    format!(
                        "status = 'dispatched' AND assignee_id IN ({})",
                        any_of(team_ids)
                    ),
                    team_ids.clone(),
                ));
            }
            // A team leader's teams, each in list order (an `IN` over several is not).
            branches.extend(
                led_team_ids
                    .iter()
                    .map(|team| ("assignee_id = ?".to_owned(), vec![team.clone()])),
            );
            branches
        }
        OrderScope::Subtree(path) if stations.len() > MAX_BRANCHES => vec![(
            "station_path >= ? AND station_path < ?".into(),
            within(path),
        )],
        OrderScope::Subtree(_) => stations
            .iter()
            .map(|path| ("station_path = ?".to_owned(), vec![path.clone()]))
            .collect(),
        OrderScope::Claimable(paths) => paths
            .iter()
            .map(|path| {
                (
                    concat!(
                        published_status!(),
                        " AND station_path >= ? AND station_path < ?"
                    )
                    .to_owned(),
                    within(path),
                )
            })
            .collect(),
    }
}

/// Runs a list query: each order's state and revision (views are made, and numbers shown, by
/// the caller under [`phone_access`](crate::views::phone_access)).
pub fn list_orders(conn: &Connection, filter: &OrderFilter) -> Result<Vec<(OrderState, u64)>> {
    // One snapshot for the subtree's stations and their orders.
    let tx = conn.unchecked_transaction()?;
    let stations = match &filter.scope {
        OrderScope::Subtree(path) => stations_with_orders(&tx, path)?,
        _ => Vec::new(),
    };
    let (sql, args) = list_sql(filter, &stations);
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
    })?;
    let mut orders = Vec::new();
    for row in rows {
        let (json, revision) = row?;
        let state: OrderState = serde_json::from_str(&json)
            .map_err(|e| AppError::Storage(format!("order state: {e}")))?;
        orders.push((state, revision));
    }
    Ok(orders)
}

/// The distinct station paths of the orders in the subtree `?1..?2`, each found by one index
/// seek from the one before (a loose index scan), not by reading every order's entry.
const STATIONS_WITH_ORDERS: &str = "WITH RECURSIVE stations(path) AS (
        SELECT MIN(station_path) FROM orders WHERE station_path >= ?1 AND station_path < ?2
        UNION ALL
        SELECT (SELECT MIN(station_path) FROM orders
                WHERE station_path > stations.path AND station_path < ?2)
        FROM stations WHERE stations.path IS NOT NULL
    )
    SELECT path FROM stations WHERE path IS NOT NULL";

/// The distinct station paths of the orders in a subtree ([`STATIONS_WITH_ORDERS`]).
fn stations_with_orders(conn: &Connection, subtree: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(STATIONS_WITH_ORDERS)?;
    let rows = stmt.query_map(params![subtree, format!("{subtree}\u{10FFFF}")], |r| {
        r.get::<_, String>(0)
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(scope: OrderScope, statuses: Statuses) -> OrderFilter {
        OrderFilter {
            scope,
            statuses,
            limit: 50,
            oldest_first: true,
        }
    }

    /// A station's queue and the volunteers' claimable list read their few rows through a
    /// partial index, never every order of the subtree: a year of closed orders must not slow
    /// the console's 待办 board or the mini-program's 可认领 list (at 22,000 orders they took
    /// 24 ms and 22 ms, a table scan and a lookup per order; `diandan bench`, reads at scale).
    /// A list of several kinds of orders reads a page of each, not all of them.
    #[test]
    fn the_queue_and_the_claimable_list_read_only_their_rows() {
        let paths = |n: usize| (0..n).map(|i| format!("/c/s{i}/")).collect::<Vec<_>>();
        let stations = paths(3);
        let cases = [
            (
                filter(OrderScope::Subtree("/c/".into()), Statuses::Waiting),
                "orders_waiting",
            ),
            (
                filter(OrderScope::Claimable(paths(1)), Statuses::Any),
                "orders_published",
            ),
            (
                filter(OrderScope::Claimable(paths(3)), Statuses::Any),
                "orders_published",
            ),
            // A head's page of a subtree: each station's orders in list order.
            (
                filter(OrderScope::Subtree("/c/".into()), Statuses::Any),
                "orders_station_placed",
            ),
            // A volunteer's (and team leader's) page.
            (
                filter(
                    OrderScope::Volunteer {
                        id: "v-1".into(),
                        team_ids: vec!["t-1".into()],
                        led_team_ids: vec!["t-2".into(), "t-3".into()],
                    },
                    Statuses::Any,
                ),
                "orders_assignee_placed",
            ),
            // A resident's page: their orders in list order, not all of them sorted.
            (
                filter(OrderScope::Requester("r-1".into()), Statuses::Any),
                "orders_requester",
            ),
        ];
        for (filter, index) in cases {
            let (sql, _) = list_sql(&filter, &stations);
            let plan = crate::projections::query_plan(&sql);
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{index} not used by {sql}: {plan:?}"
            );
            for step in &plan {
                // Scanning a branch's page (a subquery's few rows) is fine; a table is not.
                let table_scan = step.starts_with("SCAN") && !step.starts_with("SCAN (subquery");
                assert!(!table_scan, "a whole table is read: {step}");
                // One OR over the branches gathers every order of each to sort them.
                assert!(!step.contains("MULTI-INDEX OR"), "{step} in {sql}");
            }
        }
        // A subtree's stations: a seek each, through the same index.
        for step in crate::projections::query_plan(STATIONS_WITH_ORDERS) {
            assert!(!step.starts_with("SCAN orders"), "{step}");
            if step.contains("orders") {
                assert!(step.contains("orders_station_placed"), "{step}");
            }
        }
        // No team at any node: nothing to read at all.
        let (sql, _) = list_sql(
            &filter(OrderScope::Claimable(Vec::new()), Statuses::Any),
            &[],
        );
        assert!(sql.contains("WHERE 0"), "{sql}");
    }

    /// The ids of the orders a list gives, in its order.
    fn listed(read: &crate::projections::ReadModel, filter: &OrderFilter) -> Vec<String> {
        read.with_writer(|c| list_orders(c, filter))
            .unwrap()
            .into_iter()
            .map(|(state, _)| state.order_id)
            .collect()
    }

    /// An order row of the list test.
    struct Row {
        id: String,
        status: &'static str,
        path: &'static str,
        requester: &'static str,
        assignee: Option<&'static str>,
        accepted_by: Option<&'static str>,
        placed_at: String,
        pending: bool,
    }

    /// Whether the order at an index is in a scope.
    type InScope<'a> = Box<dyn Fn(usize) -> bool + 'a>;
    /// Whether a status (and a pending extension) is kept.
    type StatusKept = fn(&str, bool) -> bool;

    /// Every list, read branch by branch, holds the orders one filter over all of them would
    /// give, in the same order: checked against a plain filter over varied rows.
    #[test]
    fn lists_read_by_branches_equal_one_filter_over_every_order() {
        let dir = tempfile::tempdir().unwrap();
        let read = crate::projections::ReadModel::open(&dir.path().join("read.db")).unwrap();
        let stations = ["/c/a/", "/c/a/x/", "/c/b/", "/d/e/", "/"];
        let statuses = [
            "placed",
            "triaged",
            "dispatched",
            "accepted",
            "closed",
            "published",
        ];
        let people = ["r-1", "r-2", "v-1", "v-2"];
        let teams = ["t-1", "t-2", "t-3"];
        let mut rows: Vec<Row> = Vec::new();
        for i in 0..240usize {
            let pick = |n: usize, salt: usize| (i * 7 + salt * 13 + i / 5) % n;
            rows.push(Row {
                id: format!("o-{i:03}"),
                status: statuses[pick(statuses.len(), 1)],
                path: stations[pick(stations.len(), 2)],
                requester: people[pick(2, 3)],
                assignee: (pick(4, 4) > 0).then(|| teams[pick(teams.len(), 5)]),
                accepted_by: (pick(3, 6) == 0).then(|| people[2 + pick(2, 7)]),
                // Ties on purpose: order_id breaks them.
                placed_at: format!("2026-11-{:02}T08:00:00Z", 1 + pick(20, 8)),
                pending: pick(9, 9) == 0,
            });
        }
        read.with_writer(|c| {
            for r in &rows {
                let state = OrderState {
                    order_id: r.id.clone(),
                    ..OrderState::default()
                };
                c.execute(
                    "INSERT INTO orders (order_id, status, station_path, requester_id, assignee_id,
                         accepted_by, placed_at, revision, state_json, extension_pending)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9)",
                    params![
                        r.id,
                        r.status,
                        r.path,
                        r.requester,
                        r.assignee,
                        r.accepted_by,
                        r.placed_at,
                        serde_json::to_string(&state).unwrap(),
                        r.pending
                    ],
                )?;
            }
            for (i, r) in rows
                .iter()
                .enumerate()
                .filter(|(i, _)| i.is_multiple_of(11))
            {
                let (person, kind) = if i.is_multiple_of(2) {
                    ("r-2", "follower")
                } else {
                    ("v-1", "claimant")
                };
                c.execute(
                    "INSERT INTO order_people (person_id, kind, order_id) VALUES (?1, ?2, ?3)",
                    params![person, kind, r.id],
                )?;
            }
            Ok(())
        })
        .unwrap();
        let followed = |person: &str, kind: &str, i: usize| {
            i.is_multiple_of(11)
                && i.is_multiple_of(2) == (kind == "follower")
                && person == if kind == "follower" { "r-2" } else { "v-1" }
        };
        let scopes: Vec<(OrderScope, InScope)> = vec![
            (
                OrderScope::Requester("r-2".into()),
                Box::new(|i| rows[i].requester == "r-2" || followed("r-2", "follower", i)),
            ),
            (
                OrderScope::Volunteer {
                    id: "v-1".into(),
                    team_ids: vec!["t-1".into(), "t-2".into()],
                    led_team_ids: vec!["t-3".into()],
                },
                Box::new(|i| {
                    let r = &rows[i];
                    r.accepted_by == Some("v-1")
                        || followed("v-1", "claimant", i)
                        || (r.status == "dispatched" && matches!(r.assignee, Some("t-1" | "t-2")))
                        || r.assignee == Some("t-3")
                }),
            ),
            (
                OrderScope::Subtree("/c/".into()),
                Box::new(|i| rows[i].path.starts_with("/c/")),
            ),
            (OrderScope::Subtree("/".into()), Box::new(|_| true)),
            (OrderScope::Subtree("/z/".into()), Box::new(|_| false)),
            (
                OrderScope::Claimable(vec!["/c/a/".into(), "/d/".into()]),
                Box::new(|i| {
                    let r = &rows[i];
                    r.status == "published"
                        && (r.path.starts_with("/c/a/") || r.path.starts_with("/d/"))
                }),
            ),
        ];
        let kept: [(Statuses, StatusKept); 3] = [
            (Statuses::Any, |_, _| true),
            (
                Statuses::Only(vec!["closed".into(), "placed".into()]),
                |s, _| s == "closed" || s == "placed",
            ),
            (Statuses::Waiting, |s, pending| {
                matches!(s, "placed" | "triaged" | "dispatched") || pending
            }),
        ];
        for (scope, in_scope) in &scopes {
            for (statuses, status_kept) in &kept {
                for (limit, oldest_first) in [(7, false), (7, true), (500, false)] {
                    let filter = OrderFilter {
                        scope: scope.clone(),
                        statuses: statuses.clone(),
                        limit,
                        oldest_first,
                    };
                    let listed = listed(&read, &filter);
                    let mut expected: Vec<&Row> = rows
                        .iter()
                        .enumerate()
                        .filter(|&(i, r)| in_scope(i) && status_kept(r.status, r.pending))
                        .map(|(_, r)| r)
                        .collect();
                    expected.sort_by(|a, b| {
                        let by_time = if oldest_first {
                            a.placed_at.cmp(&b.placed_at)
                        } else {
                            b.placed_at.cmp(&a.placed_at)
                        };
                        by_time.then_with(|| a.id.cmp(&b.id))
                    });
                    let expected: Vec<String> = expected
                        .iter()
                        .take(limit as usize)
                        .map(|r| r.id.clone())
                        .collect();
                    assert_eq!(listed, expected, "{filter:?}");
                }
            }
        }
    }

    /// A subtree of more stations than a list reads branch by branch (a centre of hundreds)
    /// is read in one range, and gives the same page.
    #[test]
    fn a_subtree_of_hundreds_of_stations_is_listed_too() {
        let dir = tempfile::tempdir().unwrap();
        let read = crate::projections::ReadModel::open(&dir.path().join("read.db")).unwrap();
        let stations = 600;
        read.with_writer(|c| {
            for i in 0..stations {
                let state = OrderState {
                    order_id: format!("o-{i:03}"),
                    ..OrderState::default()
                };
                c.execute(
                    "INSERT INTO orders (order_id, status, station_path, requester_id,
                         placed_at, revision, state_json)
                     VALUES (?1, ?2, ?3, 'r-1', ?4, 1, ?5)",
                    params![
                        state.order_id,
                        if i % 100 == 0 { "published" } else { "placed" },
                        format!("/c/s{i:03}/"),
                        format!("2026-11-01T08:{:02}:{:02}Z", i / 60, i % 60),
                        serde_json::to_string(&state).unwrap()
                    ],
                )?;
            }
            Ok(())
        })
        .unwrap();
        for statuses in [Statuses::Any, Statuses::Waiting] {
            let filter = OrderFilter {
                scope: OrderScope::Subtree("/c/".into()),
                statuses,
                limit: 3,
                oldest_first: false,
            };
            assert_eq!(
                listed(&read, &filter),
                ["o-599", "o-598", "o-597"],
                "{filter:?}"
            );
        }
        // More branches than that of any other scope: one condition over them all.
        let claimable = OrderFilter {
            scope: OrderScope::Claimable((0..70).map(|i| format!("/c/s{i:03}/")).collect()),
            statuses: Statuses::Any,
            limit: 3,
            oldest_first: false,
        };
        assert_eq!(listed(&read, &claimable), ["o-000"]);
    }
}
