//! 审计 — the auditor's workbench: finished orders of a subtree searched by station, category,
//! dates, rating and volunteer, a page at a time, or all of them exported in chunks.
//!
//! Reads the `order_facts` (statistics) and `orders` (list) read models together, newest
//! first, walking the `(placed_ms, order_id)` index from a keyset cursor (`placed_ms.order_id`),
//! so a page or an export chunk costs the same at row 10 as at row 1,000,000 (nothing is
//! sorted) and an export holds one chunk in memory at a time.
//! Rows carry no contact data: an audit needs what happened, not whom to call.

use std::collections::HashMap;

use rusqlite::{params_from_iter, Connection};
use time::OffsetDateTime;

use diandan_proto::v1 as pb;
use diandan_workflows::order::{OrderState, Status};
use diandan_workflows::Category;

use crate::views::rfc3339;
use crate::{App, AppError, RequestContext, Result};

/// Rows per export chunk (one gRPC message, one read transaction).
pub const EXPORT_CHUNK: u32 = 500;

/// Statuses an audit lists when the filter names none: the order's work is done.
const FINISHED: [&str; 3] = ["completed", "reviewed", "closed"];

/// A checked audit filter over a subtree path.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub path: String,
    pub category: Option<String>,
    pub from_day: Option<String>,
    pub to_day: Option<String>,
    pub min_rating: u32,
    pub max_rating: u32,
    pub volunteer_id: Option<String>,
    pub statuses: Vec<String>,
}

/// Where a page starts: after this (placed_ms, order_id), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub placed_ms: i64,
    pub order_id: String,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Option<Cursor>> {
        if text.is_empty() {
            return Ok(None);
        }
        let invalid = || AppError::invalid("after", "翻页游标无效，请使用上一页返回的 next_after");
        let (ms, id) = text.split_once('.').ok_or_else(invalid)?;
        let placed_ms = ms.parse().map_err(|_| invalid())?;
        if id.is_empty() || id.len() > 64 {
            return Err(invalid());
        }
        Ok(Some(Cursor {
            placed_ms,
            order_id: id.to_owned(),
        }))
    }

    pub fn format(&self) -> String {
        format!("{}.{}", self.placed_ms, self.order_id)
    }
}

/// One row before names are filled in.
pub struct RawRow {
    pub placed_ms: i64,
    pub row: pb::AuditRow,
}

fn ms_rfc3339(ms: Option<i64>) -> String {
    rfc3339(
        ms.and_then(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        }),
    )
}

/// A page of the search, newest first.
pub fn search(
    conn: &Connection,
    query: &AuditQuery,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Vec<RawRow>> {
    let mut sql = String::from(
        "SELECT f.order_id, f.category, o.status, f.placed_ms, f.dispatched_ms, f.accepted_ms,
                f.completed_ms, o.assignee_id, o.accepted_by, f.rating, f.service_minutes,
                f.overdue, o.state_json
         FROM order_facts f INDEXED BY order_facts_placed
         JOIN orders o ON o.order_id = f.order_id
         WHERE f.station_path >= ? AND f.station_path < ?",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![
        query.path.clone().into(),
        format!("{}\u{10FFFF}", query.path).into(),
    ];
    let mut push = |clause: &str, value: rusqlite::types::Value| {
        sql.push_str(clause);
        args.push(value);
    };
    if let Some(category) = &query.category {
        push(" AND f.category = ?", category.clone().into());
    }
    if let Some(day) = &query.from_day {
        push(" AND f.day >= ?", day.clone().into());
    }
    if let Some(day) = &query.to_day {
        push(" AND f.day <= ?", day.clone().into());
    }
    if query.min_rating > 0 {
        push(" AND f.rating >= ?", i64::from(query.min_rating).into());
    }
    if query.max_rating > 0 {
        push(" AND f.rating <= ?", i64::from(query.max_rating).into());
    }
    if let Some(volunteer) = &query.volunteer_id {
        push(" AND f.volunteer_id = ?", volunteer.clone().into());
    }
    if let Some(cursor) = after {
        push(
            " AND (f.placed_ms, f.order_id) < (?",
            cursor.placed_ms.into(),
        );
        push(", ?)", cursor.order_id.clone().into());
    }
    sql.push_str(" AND o.status IN (");
    sql.push_str(&vec!["?"; query.statuses.len()].join(","));
    sql.push(')');
    args.extend(query.statuses.iter().map(|s| s.clone().into()));
    sql.push_str(&format!(
        " ORDER BY f.placed_ms DESC, f.order_id DESC LIMIT {}",
        limit.max(1)
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<i64>>(6)?,
            r.get::<_, Option<String>>(7)?,
            r.get::<_, Option<String>>(8)?,
            r.get::<_, Option<i64>>(9)?,
            r.get::<_, i64>(10)?,
            r.get::<_, i64>(11)?,
            r.get::<_, String>(12)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (
            order_id,
            category,
            status,
            placed_ms,
            dispatched,
            accepted,
            completed,
            team,
            volunteer,
            rating,
            minutes,
            overdue,
            json,
        ) = row?;
        let state: OrderState = serde_json::from_str(&json)
            .map_err(|e| AppError::Storage(format!("order {order_id} state: {e}")))?;
        out.push(RawRow {
            placed_ms,
            row: pb::AuditRow {
                order_id,
                station_id: state.station_id,
                station_name: String::new(),
                category,
                status,
                placed_at: ms_rfc3339(Some(placed_ms)),
                dispatched_at: ms_rfc3339(dispatched),
                accepted_at: ms_rfc3339(accepted),
                completed_at: ms_rfc3339(completed),
                team_id: team.unwrap_or_default(),
                team_name: String::new(),
                volunteer_id: volunteer.unwrap_or_default(),
                rating: rating.unwrap_or(0) as u32,
                review_comment: state.review_comment,
                service_minutes: minutes.max(0) as u32,
                on_time: completed.is_some() && overdue == 0,
                description: state.description,
            },
        });
    }
    Ok(out)
}

/// Station and team names, looked up once per id for a whole export.
#[derive(Default)]
pub struct Names {
    stations: HashMap<String, String>,
    teams: HashMap<String, String>,
}

impl App {
    /// Checks an audit filter and resolves its subtree (refused outside the caller's).
    pub async fn audit_query(
        &self,
        ctx: &RequestContext,
        filter: Option<pb::AuditFilter>,
    ) -> Result<AuditQuery> {
        let filter = filter.unwrap_or_default();
        let day_format = time::macros::format_description!("[year]-[month]-[day]");
        for (field, day) in [("from_day", &filter.from_day), ("to_day", &filter.to_day)] {
            if !day.is_empty() && time::Date::parse(day, &day_format).is_err() {
                return Err(AppError::invalid(field, "日期格式须为 YYYY-MM-DD"));
            }
        }
        for (field, rating) in [
            ("min_rating", filter.min_rating),
            ("max_rating", filter.max_rating),
        ] {
            if rating > 5 {
                return Err(AppError::invalid(field, "评分须在 1–5 之间（0 表示不限）"));
            }
        }
        if !filter.category.is_empty() && Category::parse(&filter.category).is_none() {
            return Err(AppError::invalid(
                "category",
                format!("未知的服务类别「{}」", filter.category),
            ));
        }
        let statuses = if filter.status.is_empty() {
            FINISHED.iter().map(|s| (*s).to_owned()).collect()
        } else {
            match Status::parse(&filter.status) {
                Some(s) if s != Status::New => vec![filter.status.clone()],
                _ => {
                    return Err(AppError::invalid(
                        "status",
                        format!("未知的订单状态「{}」", filter.status),
                    ))
                }
            }
        };
        // (An empty range — from after to, min above max — simply matches nothing.)
        if !filter.volunteer_id.is_empty() {
            diandan_workflows::validate::id("volunteer_id", &filter.volunteer_id)?;
        }
        let path = self
            .staff_subtree(ctx, Some(filter.node_id.as_str()))
            .await?;
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        Ok(AuditQuery {
            path,
            category: some(filter.category),
            from_day: some(filter.from_day),
            to_day: some(filter.to_day),
            min_rating: filter.min_rating,
            max_rating: filter.max_rating,
            volunteer_id: some(filter.volunteer_id),
            statuses,
        })
    }

    /// Fills in station and team names.
    pub async fn name_rows(&self, names: &mut Names, rows: &mut [pb::AuditRow]) -> Result<()> {
        for row in rows {
            if !names.stations.contains_key(&row.station_id) {
                let name = self
                    .directory
                    .node(&row.station_id)
                    .await?
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                names.stations.insert(row.station_id.clone(), name);
            }
            if !row.team_id.is_empty() && !names.teams.contains_key(&row.team_id) {
                let name = self
                    .directory
                    .team(&row.team_id)
                    .await?
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                names.teams.insert(row.team_id.clone(), name);
            }
            row.station_name = names.stations[&row.station_id].clone();
            if let Some(name) = names.teams.get(&row.team_id) {
                row.team_name = name.clone();
            }
        }
        Ok(())
    }

    /// One page of an audit search.
    pub async fn audit_page(
        &self,
        query: AuditQuery,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<(Vec<pb::AuditRow>, Option<Cursor>)> {
        let rows = self
            .read
            .query(move |c| search(c, &query, after.as_ref(), limit))
            .await?;
        let next = if rows.len() as u32 == limit {
            rows.last().map(|r| Cursor {
                placed_ms: r.placed_ms,
                order_id: r.row.order_id.clone(),
            })
        } else {
            None
        };
        Ok((rows.into_iter().map(|r| r.row).collect(), next))
    }
}
