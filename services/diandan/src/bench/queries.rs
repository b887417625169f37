//! Part of scenario 4: the reads the console and the mini-program make, timed over HTTP on the
//! cold-start store (its read model holds every cloned order) against the flows' own store (a
//! few hundred orders), each by the `diandan up` it starts. A read that stays as fast on the
//! large store reads through an index; one that slows in proportion to the orders reads them
//! all — the defect the dispatch suggestions had until 2026-12-02, which no other scenario saw.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use diandan_workflows::Role;

use super::flows;
use super::http::Child;
use crate::demo::token;

/// Timed calls of each read per store (after one untimed call).
pub(super) const CALLS: usize = 25;

/// One read, on both stores.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRow {
    /// What the caller sees it as (the console's or the mini-program's words).
    pub name: String,
    /// The request, with `{order}` for the fresh order the stores each got.
    pub request: String,
    pub small_p50_ms: f64,
    pub large_p50_ms: f64,
    /// Large ÷ small (p50).
    pub ratio: f64,
}

/// The reads on both stores.
#[derive(Debug, Clone, Serialize)]
pub struct QueriesReport {
    /// Orders in each store's read model.
    pub small_orders: u64,
    pub large_orders: u64,
    pub rows: Vec<QueryRow>,
}

impl QueriesReport {
    /// The read that slowed most from the small store to the large one.
    pub fn worst(&self) -> Option<&QueryRow> {
        self.rows.iter().max_by(|a, b| a.ratio.total_cmp(&b.ratio))
    }
}

/// The reads, as (name, role of the caller, request). Every caller is of the bench district's
/// station (车站路) or above it; `{order}` is an order placed and triaged just before, waiting
/// for dispatch; `{today}` is today in China Standard Time.
const READS: [(&str, Role, &str); 11] = [
    ("居民：我的订单", Role::Resident, "/orders"),
    ("站长：全部订单", Role::StationHead, "/orders"),
    (
        "站长：待办队列",
        Role::StationHead,
        "/nodes/chezhanlu/queue?limit=50",
    ),
    ("站长：订单详情", Role::StationHead, "/orders/{order}"),
    (
        "站长：派单建议",
        Role::StationHead,
        "/orders/{order}/suggestions",
    ),
    (
        "站长：近 30 天统计",
        Role::StationHead,
        "/nodes/chezhanlu/stats?from_day={month_ago}&to_day={today}",
    ),
    (
        "站长：志愿者排行",
        Role::StationHead,
        "/nodes/chezhanlu/rankings",
    ),
    ("志愿者：我的任务", Role::Volunteer, "/orders"),
    ("志愿者：可认领订单", Role::Volunteer, "/orders/claimable"),
    (
        "审计：订单检索（首页）",
        Role::Auditor,
        "/audit/orders?from_day={month_ago}&to_day={today}",
    ),
    ("审计：订单履历", Role::Auditor, "/orders/{order}/history"),
];

/// Starts `diandan up` on `dir`, places and triages one order, and times each read; returns
/// the p50 of each (ms, in [`READS`]' order) and the orders in the read model.
async fn measure(dir: &Path) -> anyhow::Result<(Vec<f64>, u64)> {
    let signer = crate::server::token_signer(dir)?;
    let child = Child::start(dir).await?;
    let api = format!("http://{}/api/v1", child.http);
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let caller = |role: Role| match role {
        Role::Resident => token(&signer, flows::RESIDENT, role, None),
        Role::Volunteer => token(&signer, flows::VOLUNTEER, role, None),
        Role::Auditor => token(&signer, "auditor-bench", role, Some("xianan")),
        _ => token(&signer, flows::HEAD, role, Some(flows::STATION)),
    };
    let send = |request: reqwest::RequestBuilder| async move {
        let answer = request.send().await?;
        let status = answer.status();
        let body = answer.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok::<Value, anyhow::Error>(serde_json::from_slice(&body).unwrap_or(Value::Null))
    };

    let placed = send(
        client
            .post(format!("{api}/orders"))
            .bearer_auth(caller(Role::Resident))
            .json(&super::http::place_body(&flows::spec())),
    )
    .await?;
    let order = placed["order_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no order_id in {placed}"))?
        .to_owned();
    let triaged = send(
        client
            .post(format!("{api}/orders/{order}/triage"))
            .bearer_auth(caller(Role::StationHead))
            .json(&json!({"accept": true})),
    )
    .await?;
    // Every read below reflects the triage (read-your-writes, waited for once here).
    let position = triaged["position"].as_u64().unwrap_or(0);
    send(
        client
            .get(format!("{api}/orders/{order}?min_position={position}"))
            .bearer_auth(caller(Role::StationHead)),
    )
    .await?;

    let china = time::UtcOffset::from_hms(8, 0, 0)?;
    let today = time::OffsetDateTime::now_utc().to_offset(china).date();
    let day = |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    let mut p50s = Vec::with_capacity(READS.len());
    for (name, role, request) in READS {
        let path = request
            .replace("{order}", &order)
            .replace("{today}", &day(today))
            .replace("{month_ago}", &day(today - time::Duration::days(30)));
        let url = format!("{api}{path}");
        let bearer = caller(role);
        let mut took = Vec::with_capacity(CALLS);
        for call in 0..=CALLS {
            let sent = Instant::now();
            send(client.get(&url).bearer_auth(&bearer))
                .await
                .map_err(|e| anyhow::anyhow!("{name} (GET {path}): {e}"))?;
            if call > 0 {
                took.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
        took.sort_by(f64::total_cmp);
        p50s.push(took[took.len() / 2]);
    }
    child.stop().await?;
    let orders = orders_in(dir).await?;
    Ok((p50s, orders))
}

/// Orders in the read model of `dir` (read after its server stopped).
async fn orders_in(dir: &Path) -> anyhow::Result<u64> {
    let path = dir.join("read.db");
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        Ok(conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))?)
    })
    .await?
}

/// The reads on `small` (the baseline) and on `large`.
pub async fn run(small: &Path, large: &Path) -> anyhow::Result<QueriesReport> {
    let (small_p50s, small_orders) = measure(small).await?;
    let (large_p50s, large_orders) = measure(large).await?;
    let rows = READS
        .iter()
        .zip(small_p50s.iter().zip(&large_p50s))
        .map(|((name, _, request), (&small, &large))| QueryRow {
            name: (*name).to_owned(),
            request: (*request).to_owned(),
            small_p50_ms: small,
            large_p50_ms: large,
            ratio: large / small.max(1e-3),
        })
        .collect();
    let report = QueriesReport {
        small_orders,
        large_orders,
        rows,
    };
    for row in &report.rows {
        eprintln!(
            "  {}: {:.2} ms with {} orders, {:.2} ms with {} ({:.1}×)",
            row.name,
            row.small_p50_ms,
            report.small_orders,
            row.large_p50_ms,
            report.large_orders,
            row.ratio
        );
    }
    Ok(report)
}
