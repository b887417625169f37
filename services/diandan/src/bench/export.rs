//! `export` — the auditor's CSV export streamed over HTTP from `diandan up` started as a child
//! process: 1,000,000 finished orders (`--export-rows`) against a baseline of 10,000, the
//! server's resident memory sampled every 10 ms throughout. Bounded memory means the peak grows
//! by about the same whatever the row count (one 500-row chunk in flight at each hop).
//!
//! The server is a process of its own so that its memory is the export's alone: measured in
//! this process after the other scenarios, the baseline's growth was ~0 MB (memory the earlier
//! scenarios had freed was reused) and the ratio over it meant nothing.
//!
//! The rows are written straight into the read model's tables (a benchmark fixture: a million
//! orders through the command path would take the run's whole budget); the export reads them
//! through the same query, service, gRPC stream and HTTP body as any other.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use diandan_workflows::order::{OrderState, Status};
use diandan_workflows::Role;

use super::http::Child;
use super::InProcess;
use crate::demo::token;

/// Rows of the baseline export.
const BASELINE_ROWS: u64 = 10_000;

/// One export measured.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRun {
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_sec: f64,
    /// Resident memory just before the export, MB.
    pub rss_before_mb: f64,
    /// The highest resident memory seen while it streamed, MB.
    pub rss_peak_mb: f64,
    /// Peak minus before, MB.
    pub growth_mb: f64,
}

/// The export scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub large: ExportRun,
    pub baseline: ExportRun,
    /// Growth of the large export over the baseline's (≈ 1 when memory is bounded).
    pub growth_ratio: f64,
    /// Seconds spent writing the fixture rows.
    pub fixture_seconds: f64,
}

/// Resident memory of process `pid`, MB (0 when it cannot be read).
fn rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes `rows` finished orders at `station` into the read model (orders + order_facts).
fn write_rows(
    read_db: &Path,
    station: &str,
    path: &str,
    rows: u64,
    offset: u64,
) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(read_db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let mut state = OrderState {
        status: Status::Closed,
        station_id: station.to_owned(),
        description: "基准测试：楼道灯坏了，请帮忙更换。".into(),
        review_comment: "服务很及时".into(),
        ..Default::default()
    };
    state.order_id = String::new();
    let json = serde_json::to_string(&state)?;
    let tx = conn.transaction()?;
    {
        let mut orders = tx.prepare(
            "INSERT INTO orders (order_id, status, station_path, requester_id, assignee_id,
                                 accepted_by, placed_at, revision, state_json)
             VALUES (?1, 'closed', ?2, 'r-bench', 'zhidui-chezhanlu', 'v-wangsen', ?3, 12, ?4)",
        )?;
        let mut facts = tx.prepare(
            "INSERT INTO order_facts (order_id, station_path, category, day, outcome, placed_ms,
                                      dispatched_ms, accepted_ms, completed_ms, rating,
                                      service_minutes, volunteer_id)
             VALUES (?1, ?2, 'repair', ?3, 'open', ?4, ?4 + 3600000, ?4 + 7200000,
                     ?4 + 86400000, 5, 90, 'v-wangsen')",
        )?;
        let start_ms: i64 = 1_735_689_600_000; // 2025-01-01
        for i in 0..rows {
            let id = format!("bench-{station}-{:08}", offset + i);
            let placed = start_ms + (i as i64) * 30_000;
            let day = "2025-06-01";
            orders.execute(rusqlite::params![id, path, "2025-06-01T00:00:00Z", json])?;
            facts.execute(rusqlite::params![id, path, day, placed])?;
        }
    }
    tx.commit()?;
    Ok(())
}

async fn export(
    server: &Child,
    token: &str,
    node: &str,
    sampling: &AtomicU64,
) -> anyhow::Result<ExportRun> {
    let before = rss_mb(&server.pid);
    sampling.store(before.to_bits(), Ordering::Relaxed);
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/audit/orders/export?format=csv&node_id={node}",
            server.http
        ))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 200,
        "export answered {}",
        response.status()
    );
    let mut response = response;
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = f64::from_bits(sampling.load(Ordering::Relaxed));
    let rows = lines.saturating_sub(1);
    Ok(ExportRun {
        rows,
        bytes,
        seconds,
        rows_per_sec: rows as f64 / seconds.max(1e-9),
        rss_before_mb: before,
        rss_peak_mb: peak,
        growth_mb: (peak - before).max(0.0),
    })
}

pub async fn run(scratch: &Path, rows: u64) -> anyhow::Result<ExportReport> {
    let data_dir = scratch.join("export");
    std::fs::create_dir_all(&data_dir)?;
    // The directory (and the showcase's orders) through the real commands.
    let server = InProcess::start(&data_dir).await?;
    let app = server.app.clone();
    let head = app.store.head_position().await?;
    app.read.wait_for(head, Duration::from_secs(30)).await;
    let fixture = Instant::now();
    let read_db = data_dir.join("read.db");
    let large_path = app.directory.path("chezhanlu").await?;
    let small_path = app.directory.path("meiyuan").await?;
    let db = read_db.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        write_rows(&db, "chezhanlu", &large_path, rows, 0)?;
        write_rows(&db, "meiyuan", &small_path, BASELINE_ROWS, rows)
    })
    .await??;
    let fixture_seconds = fixture.elapsed().as_secs_f64();
    eprintln!(
        "  fixture: {rows} + {BASELINE_ROWS} finished orders written in {fixture_seconds:.1} s"
    );

    drop(app);
    server.stop().await?;
    // The same data dir served by `diandan up` in a process of its own; the tokens minted here
    // are its own (it reads the same key from the data dir).
    let signer = crate::server::token_signer(&data_dir)?;
    let child = Child::start(&data_dir).await?;

    // The server's resident memory, sampled every 10 ms: the highest value since the last reset.
    let sampling = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (sampling, running, pid) = (sampling.clone(), running.clone(), child.pid.clone());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let now = rss_mb(&pid);
                let _ = sampling.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |peak| {
                    (now > f64::from_bits(peak)).then_some(now.to_bits())
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let auditor = token(&signer, "audit-bench", Role::Auditor, Some("xianan"));
    // The baseline first, then the large one (a warm server either way).
    let baseline = export(&child, &auditor, "meiyuan", &sampling).await?;
    eprintln!(
        "  baseline: {} rows, {:.1} MB in {:.2} s; server RSS {:.1} → peak {:.1} MB",
        baseline.rows,
        baseline.bytes as f64 / 1e6,
        baseline.seconds,
        baseline.rss_before_mb,
        baseline.rss_peak_mb
    );
    let large = export(&child, &auditor, "chezhanlu", &sampling).await?;
    eprintln!(
        "  export: {} rows, {:.1} MB in {:.2} s ({:.0} rows/s); server RSS {:.1} → peak {:.1} MB",
        large.rows,
        large.bytes as f64 / 1e6,
        large.seconds,
        large.rows_per_sec,
        large.rss_before_mb,
        large.rss_peak_mb
    );
    running.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    child.stop().await?;
    Ok(ExportReport {
        growth_ratio: large.growth_mb / baseline.growth_mb.max(0.1),
        large,
        baseline,
        fixture_seconds,
    })
}
