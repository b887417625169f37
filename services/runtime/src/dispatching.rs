//! Dispatch suggestions (派单建议): the pure dispatch rules
//! ([`diandan_workflows::dispatch_rules`]) fed with the directory and the teams' current load
//! from the read model.

use time::OffsetDateTime;

use diandan_workflows::dispatch_rules::{
    DispatchIndex, DispatchRequest, GeoPoint, OrgNode, Suggestions, TeamProfile,
};
use diandan_workflows::order::{OrderState, TeamKind};
use diandan_workflows::{Category, OrgLevel};

use crate::projections::open_status;
use crate::{App, AppError, Result};

/// Open orders a team takes at once when it declared nothing (the directory has no field yet).
pub const DEFAULT_TEAM_CAPACITY: u32 = 10;

/// The fairness window: dispatches in the last 7 days count against a team.
const RECENT_MS: i64 = 7 * 24 * 3600 * 1000;

/// Each team's open orders. Read through the partial index `orders_open_assignee`, whose
/// condition is this one's ([`open_status`]): the open orders only, however many closed ones
/// the year has (it read every assigned order before, at each suggestion).
const OPEN_LOAD: &str = concat!(
    "SELECT assignee_id, COUNT(*) FROM orders WHERE ",
    open_status!(),
    " AND assignee_id IS NOT NULL GROUP BY assignee_id"
);

/// Each team's orders first dispatched in the window `?1..=?2`, by the team they are assigned
/// to now: from `order_facts_dispatched` alone (dispatch time and team), without a lookup of
/// each order (at 22,000 dispatches in the window that join took 100 ms a suggestion). The
/// window ends now: a suggestion made at a simulated time (the demo's replay) does not count
/// dispatches after it.
const RECENT_LOAD: &str = "SELECT team_id, COUNT(*) FROM order_facts
     WHERE dispatched_ms BETWEEN ?1 AND ?2 AND team_id IS NOT NULL
     GROUP BY team_id";

fn index_from(conn: &rusqlite::Connection, now_ms: i64) -> Result<DispatchIndex> {
    let mut index = DispatchIndex::new();
    // Parents before children: the index learns the tree top-down.
    let mut nodes = conn.prepare(
        "SELECT id, name, level, parent_id, lat, lng FROM org_nodes ORDER BY length(path), path",
    )?;
    let rows = nodes.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<f64>>(4)?,
            r.get::<_, Option<f64>>(5)?,
        ))
    })?;
    for row in rows {
        let (id, name, level, parent_id, lat, lng) = row?;
        let Some(level) = OrgLevel::parse(&level) else {
            continue;
        };
        let location = lat.zip(lng).map(|(lat, lng)| GeoPoint { lat, lng });
        if let Err(e) = index.add_node(OrgNode {
            id,
            name,
            level,
            parent_id,
            location,
        }) {
            tracing::warn!(error = %e, "directory node skipped by the dispatch index");
        }
    }
    let load = |sql: &str,
                params: &[&dyn rusqlite::ToSql]|
     -> Result<std::collections::HashMap<String, u32>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    let open = load(OPEN_LOAD, &[])?;
    let recent = load(RECENT_LOAD, &[&(now_ms - RECENT_MS), &now_ms])?;
    let mut teams = conn.prepare("SELECT id, name, kind, node_id, skills FROM teams")?;
    let rows = teams.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    for row in rows {
        let (team_id, name, kind, node_id, skills) = row?;
        let skills: Vec<Category> = serde_json::from_str(&skills).unwrap_or_default();
        let profile = TeamProfile {
            open_load: open.get(&team_id).copied().unwrap_or(0),
            recent_assignments: recent.get(&team_id).copied().unwrap_or(0),
            team_id,
            name,
            kind: TeamKind::parse(&kind).unwrap_or(TeamKind::Team),
            node_id,
            skills,
            location: None,
            capacity: DEFAULT_TEAM_CAPACITY,
            availability: Vec::new(),
        };
        if let Err(e) = index.add_team(profile) {
            tracing::warn!(error = %e, "team skipped by the dispatch index");
        }
    }
    Ok(index)
}

impl App {
    /// Ranked teams for an order, escalating up the tree when a level has none.
    pub async fn suggest_teams(&self, order: &OrderState) -> Result<Suggestions> {
        self.suggest_teams_excluding(order, Vec::new()).await
    }

    /// [`suggest_teams`](Self::suggest_teams) without `excluded` teams (e.g. the one that let
    /// the order time out).
    pub async fn suggest_teams_excluding(
        &self,
        order: &OrderState,
        excluded: Vec<String>,
    ) -> Result<Suggestions> {
        let category = order
            .category
            .ok_or_else(|| AppError::NotFound("订单不存在".into()))?;
        let request = DispatchRequest {
            category,
            station_id: order.station_id.clone(),
            location: order.location.as_ref().map(|l| GeoPoint {
                lat: l.lat,
                lng: l.lng,
            }),
            urgent: false,
            at: self.clock.now(),
        };
        let now_ms = (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
        let _ = OffsetDateTime::UNIX_EPOCH;
        self.read
            .query(move |c| {
                let index = index_from(c, now_ms)?;
                let excluded: Vec<&str> = excluded.iter().map(String::as_str).collect();
                index
                    .suggest_excluding(&request, &excluded)
                    .map_err(|e| AppError::Conflict {
                        field: Some("team_id"),
                        message: e.to_string(),
                    })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sql: &str) -> Vec<String> {
        crate::projections::query_plan(sql)
    }

    /// A suggestion's load figures read the open orders and the window's dispatches through
    /// their indexes, never a whole table: a year of closed orders must not slow the 派单
    /// drawer (each suggestion scanned every order before, and the demo's replay spent half
    /// its time there).
    #[test]
    fn load_figures_read_indexes_not_every_order() {
        let open = plan(OPEN_LOAD);
        assert!(
            open.iter()
                .any(|step| step.contains("orders_open_assignee")),
            "{open:?}"
        );
        let recent = plan(RECENT_LOAD);
        let window = "COVERING INDEX order_facts_dispatched (dispatched_ms>? AND dispatched_ms<?)";
        assert!(
            recent.iter().any(|step| step.contains(window)),
            "the window's dispatches, bounded at both ends: {recent:?}"
        );
        for step in open.iter().chain(&recent) {
            assert!(!step.starts_with("SCAN"), "a whole table is read: {step}");
        }
    }
}
