//! Reads served from the read model, scoped to what the caller may see.

use std::time::Duration;

use diandan_proto::v1 as pb;
use diandan_workflows::permissions::Scope;

use crate::projections::{
    list_orders, station_stats, OrderFilter, OrderScope, StatsQuery, Statuses,
};
use crate::{App, AppError, RequestContext, Result};

/// A page of orders and the read model position it reflects (a list's or a queue's answer).
#[derive(Debug, Clone, Default)]
pub struct OrderPage {
    pub orders: Vec<pb::OrderView>,
    /// The read model's checkpoint: every event up to here is reflected.
    pub position: u64,
}

/// How long a read waits for the read model to reach a `min_position` before answering
/// 503 (the read model lags; retry) — never stale data under a 200.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// Default page size of lists.
pub const DEFAULT_LIMIT: u32 = 50;
use diandan_workflows::validate::MAX_PAGE_SIZE as MAX_LIMIT;

/// Each id once, sorted.
pub(crate) fn distinct(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

pub fn page_size(limit: u32) -> Result<u32> {
    match limit {
        0 => Ok(DEFAULT_LIMIT),
        1..=MAX_LIMIT => Ok(limit),
        _ => Err(AppError::invalid(
            "limit",
            format!("每页最多 {MAX_LIMIT} 条"),
        )),
    }
}

impl App {
    /// Waits until the read model reflects `min_position` (0: no wait); returns its position.
    ///
    /// A position the log has not reached (no command ever answered it) is refused at once;
    /// one the log holds but the read model has not applied within
    /// [`READ_YOUR_WRITES_TIMEOUT`] is [`AppError::Lagging`].
    pub async fn catch_up(&self, min_position: u64) -> Result<u64> {
        let now = self.read.position();
        if min_position <= now {
            return Ok(now);
        }
        let head = self.store.head_position().await?;
        if min_position > head {
            return Err(AppError::PositionNotReached(format!(
                "事件日志尚未写到位置 {min_position}（当前位置 {head}），请使用命令应答中的 position"
            )));
        }
        let reached = self
            .read
            .wait_for(min_position, READ_YOUR_WRITES_TIMEOUT)
            .await;
        if reached < min_position {
            return Err(AppError::Lagging(format!(
                "读模型尚未更新到位置 {min_position}（当前 {reached}），请稍后重试"
            )));
        }
        Ok(reached)
    }

    /// The subtree a staff caller is responsible for, as a path prefix; `node_id` narrows it.
    pub(crate) async fn staff_subtree(
        &self,
        ctx: &RequestContext,
        node_id: Option<&str>,
    ) -> Result<String> {
        if ctx.scope == Scope::All && node_id.is_none_or(str::is_empty) {
            return Ok("/".into());
        }
        let node = match node_id.filter(|n| !n.is_empty()) {
            Some(n) => {
                // The node is the resource the path names: unknown → 404, not a bad field.
                if self.directory.node(n).await?.is_none() {
                    return Err(AppError::NotFound(format!("组织节点「{n}」不存在")));
                }
                self.directory.require_scope(ctx, n).await?;
                n
            }
            None => ctx
                .claims
                .node
                .as_deref()
                .ok_or_else(|| AppError::Forbidden("当前账号没有负责的组织节点".into()))?,
        };
        self.directory.path(node).await
    }

    /// The caller's orders: a resident's own, a volunteer's offers and tasks, a head's subtree.
    pub async fn my_orders(
        &self,
        ctx: &RequestContext,
        status: &str,
        limit: u32,
        min_position: u64,
    ) -> Result<OrderPage> {
        let scope = match ctx.scope {
            Scope::Own => OrderScope::Requester(ctx.claims.sub.clone()),
            // Each team once (a log written before teams were checked for repeats may hold
            // one twice): every id is a term of the list's SQL.
            Scope::Team => OrderScope::Volunteer {
                id: ctx.claims.sub.clone(),
                team_ids: distinct(
                    self.directory
                        .volunteer(&ctx.claims.sub)
                        .await?
                        .map(|v| v.team_ids.clone())
                        .unwrap_or_default(),
                ),
                led_team_ids: distinct(self.directory.led_teams(&ctx.claims.sub).await?),
            },
            Scope::Subtree => OrderScope::Subtree(self.staff_subtree(ctx, None).await?),
            Scope::All => OrderScope::Subtree("/".into()),
            Scope::Public => return Err(AppError::Unauthenticated("请先登录".into())),
        };
        let statuses = if status.is_empty() {
            Statuses::Any
        } else {
            let status_known = diandan_workflows::order::Status::parse(status)
                .is_some_and(|s| s != diandan_workflows::order::Status::New);
            if !status_known {
                return Err(AppError::invalid(
                    "status",
                    format!("未知的订单状态「{status}」"),
                ));
            }
            Statuses::Only(vec![status.to_owned()])
        };
        let filter = OrderFilter {
            scope,
            statuses,
            limit: page_size(limit)?,
            oldest_first: false,
        };
        self.list(ctx, filter, min_position, crate::access::purpose::LIST)
            .await
    }

    /// 待办: orders of a subtree waiting for the station (triage, dispatch, acceptance, an
    /// extension to decide), oldest first.
    pub async fn station_queue(
        &self,
        ctx: &RequestContext,
        node_id: &str,
        limit: u32,
        min_position: u64,
    ) -> Result<OrderPage> {
        let path = self.staff_subtree(ctx, Some(node_id)).await?;
        let filter = OrderFilter {
            scope: OrderScope::Subtree(path),
            statuses: Statuses::Waiting,
            limit: page_size(limit)?,
            oldest_first: true,
        };
        self.list(ctx, filter, min_position, crate::access::purpose::QUEUE)
            .await
    }

    async fn list(
        &self,
        ctx: &RequestContext,
        filter: OrderFilter,
        min_position: u64,
        purpose: &str,
    ) -> Result<OrderPage> {
        let position = self.catch_up(min_position).await?;
        let rows = self.read.query(move |c| list_orders(c, &filter)).await?;
        let (states, revisions): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
        let mut orders: Vec<pb::OrderView> = states
            .iter()
            .zip(revisions)
            .map(|(state, revision)| {
                let mut view = crate::views::order_view(state, revision);
                self.label_deadlines(&mut view, state);
                view
            })
            .collect();
        self.open_personal_data(&mut orders).await?;
        self.reveal_phones(ctx, &mut orders, &states, purpose)
            .await?;
        Ok(OrderPage { orders, position })
    }

    /// Statistics of a subtree.
    pub async fn stats(
        &self,
        ctx: &RequestContext,
        request: pb::StationStatsRequest,
    ) -> Result<pb::StationStatsResponse> {
        for (field, day) in [("from_day", &request.from_day), ("to_day", &request.to_day)] {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            if !day.is_empty() && time::Date::parse(day, &format).is_err() {
                return Err(AppError::invalid(field, "日期格式须为 YYYY-MM-DD"));
            }
        }
        let path = self.staff_subtree(ctx, Some(&request.node_id)).await?;
        let position = self.catch_up(request.min_position).await?;
        let node_id = if request.node_id.is_empty() {
            ctx.claims.node.clone().unwrap_or_default()
        } else {
            request.node_id.clone()
        };
        let query = StatsQuery {
            node_id,
            path,
            from_day: Some(request.from_day).filter(|d| !d.is_empty()),
            to_day: Some(request.to_day).filter(|d| !d.is_empty()),
        };
        let mut report = self.read.query(move |c| station_stats(c, &query)).await?;
        report.position = position;
        Ok(report)
    }
}

impl App {
    /// Org nodes of a subtree (everyone may read the tree: residents pick their station).
    pub async fn org_tree(
        &self,
        node_id: &str,
        min_position: u64,
    ) -> Result<pb::GetOrgTreeResponse> {
        let path = if node_id.is_empty() {
            "/".to_owned()
        } else {
            self.directory.path(node_id).await?
        };
        self.catch_up(min_position).await?;
        let nodes = self
            .read
            .query(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, name, level, parent_id, lat, lng, address FROM org_nodes
                     WHERE path >= ?1 AND path < ?2 ORDER BY path",
                )?;
                let rows =
                    stmt.query_map(rusqlite::params![path, format!("{path}\u{10FFFF}")], |r| {
                        let lat: Option<f64> = r.get(4)?;
                        let lng: Option<f64> = r.get(5)?;
                        Ok(pb::OrgNode {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            level: r.get(2)?,
                            parent_id: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                            location: lat.zip(lng).map(|(lat, lng)| pb::Location {
                                lat,
                                lng,
                                address: r
                                    .get::<_, Option<String>>(6)
                                    .ok()
                                    .flatten()
                                    .unwrap_or_default(),
                            }),
                        })
                    })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        Ok(pb::GetOrgTreeResponse { nodes })
    }

    /// Teams and helper units registered at a node or below.
    pub async fn teams(&self, node_id: &str, min_position: u64) -> Result<pb::ListTeamsResponse> {
        let path = if node_id.is_empty() {
            "/".to_owned()
        } else {
            self.directory.path(node_id).await?
        };
        self.catch_up(min_position).await?;
        let teams = self
            .read
            .query(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, name, kind, node_id, skills, leader_id FROM teams
                     WHERE path >= ?1 AND path < ?2 ORDER BY path, id",
                )?;
                let rows =
                    stmt.query_map(rusqlite::params![path, format!("{path}\u{10FFFF}")], |r| {
                        let skills: String = r.get(4)?;
                        Ok(pb::Team {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            kind: r.get(2)?,
                            node_id: r.get(3)?,
                            skills: serde_json::from_str(&skills).unwrap_or_default(),
                            leader_id: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                        })
                    })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        Ok(pb::ListTeamsResponse { teams })
    }

    /// Volunteers in teams of a node or below (the caller's node by default).
    pub async fn volunteers(
        &self,
        ctx: &RequestContext,
        node_id: &str,
        include_inactive: bool,
        min_position: u64,
    ) -> Result<pb::ListVolunteersResponse> {
        let path = self.staff_subtree(ctx, Some(node_id)).await?;
        self.catch_up(min_position).await?;
        let volunteers = self
            .read
            .query(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT v.id, v.name, v.phone_masked, v.skills, v.active,
                            (SELECT group_concat(team_id, ',') FROM
                               (SELECT team_id FROM memberships WHERE volunteer_id = v.id
                                ORDER BY team_id))
                     FROM volunteers v
                     WHERE v.id IN (SELECT m.volunteer_id FROM memberships m
                                    JOIN teams t ON t.id = m.team_id
                                    WHERE t.path >= ?1 AND t.path < ?2)
                       AND (?3 OR v.active = 1)
                     ORDER BY v.id",
                )?;
                let rows = stmt.query_map(
                    rusqlite::params![path, format!("{path}\u{10FFFF}"), include_inactive],
                    |r| {
                        let skills: String = r.get(3)?;
                        let teams: Option<String> = r.get(5)?;
                        Ok(pb::VolunteerEntry {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            phone_masked: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                            skills: serde_json::from_str(&skills).unwrap_or_default(),
                            active: r.get::<_, i64>(4)? != 0,
                            team_ids: teams
                                .map(|t| t.split(',').map(str::to_owned).collect())
                                .unwrap_or_default(),
                        })
                    },
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        Ok(pb::ListVolunteersResponse { volunteers })
    }
}
