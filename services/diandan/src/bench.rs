//! `diandan bench`: the figures the README and BENCHMARKS.md quote, each beside a baseline
//! measured in the same run.
//!
//! - durable appends/s with 1, 16 and 256 concurrent writers on the embedded store, against raw
//!   SQLite inserts with the same durability (WAL, `synchronous=FULL`, one transaction each);
//! - complete four-order flows/s (place → … → close, 9 gRPC commands each) through the real
//!   gRPC server in one process.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tonic::transport::Endpoint;

use diandan_store::bench::{durable_appends, raw_sqlite_inserts, AppendBench};
use diandan_workflows::Role;

use crate::client::{drive_order, Cast, Client, OrderSpec, Stage};
use crate::demo::token;
use crate::server::{run, Config};

#[derive(Debug, Serialize)]
pub struct AppendRow {
    pub writers: usize,
    pub diandan_events_per_sec: f64,
    pub diandan_p99_ms: f64,
    pub raw_sqlite_inserts_per_sec: f64,
    pub ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct FlowRow {
    pub concurrency: usize,
    pub flows: u64,
    pub seconds: f64,
    pub flows_per_sec: f64,
    pub commands_per_sec: f64,
    pub flow_p50_ms: f64,
    pub flow_p99_ms: f64,
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub seconds_per_scenario: f64,
    pub appends: Vec<AppendRow>,
    pub flows: FlowRow,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn appends(dir: &Path, writers: usize, duration: Duration) -> anyhow::Result<AppendRow> {
    let ours: AppendBench = durable_appends(dir, writers, duration, 256).await?;
    let raw_dir = dir.to_owned();
    let raw =
        tokio::task::spawn_blocking(move || raw_sqlite_inserts(&raw_dir, writers, duration, 256))
            .await??;
    eprintln!("  diandan  {ours}\n  raw      {raw}");
    Ok(AppendRow {
        writers,
        diandan_events_per_sec: ours.events_per_sec,
        diandan_p99_ms: ms(ours.p99_latency),
        raw_sqlite_inserts_per_sec: raw.events_per_sec,
        ratio: ours.events_per_sec / raw.events_per_sec.max(f64::EPSILON),
    })
}

async fn flows(dir: &Path, concurrency: usize, duration: Duration) -> anyhow::Result<FlowRow> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let config = Config {
        data_dir: dir.join("flows"),
        grpc_addr: "127.0.0.1:0".parse()?,
        http_addr: "127.0.0.1:0".parse()?,
        dev_login: true,
        workflows_dir: None,
    };
    let server = tokio::spawn(run(
        config,
        move |bound, app| {
            let _ = ready_tx.send((bound, app));
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let (bound, app) = ready_rx.await?;
    let channel = Endpoint::from_shared(format!("http://{}", bound.grpc))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let upstreams = diandan_proto::Upstreams::single(channel);
    crate::demo::seed(upstreams.clone(), &app.signer).await?;

    let cast = Cast {
        resident: Client::new(
            upstreams.clone(),
            token(&app.signer, "r-bench", Role::Resident, None),
        ),
        head: Client::new(
            upstreams.clone(),
            token(
                &app.signer,
                "head-bench",
                Role::StationHead,
                Some("chezhanlu"),
            ),
        ),
        volunteer: Client::new(
            upstreams.clone(),
            token(&app.signer, "v-wangsen", Role::Volunteer, None),
        ),
        team_id: "zhidui-chezhanlu".into(),
        station_id: "chezhanlu".into(),
    };
    let spec = OrderSpec {
        category: "repair".into(),
        description: "基准测试：楼道灯坏了，请帮忙更换。".into(),
        lat: 29.8702,
        lng: 114.2851,
        address: "车站路 41 号".into(),
        phone: "13912345678".into(),
        rating: 5,
        comment: "满意".into(),
    };
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (cast, spec) = (cast.clone(), spec.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match drive_order(&cast, &spec, Stage::Closed).await {
                        Ok(_) => latencies.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let row = FlowRow {
        concurrency,
        flows: latencies.len() as u64,
        seconds,
        flows_per_sec: latencies.len() as f64 / seconds,
        commands_per_sec: latencies.len() as f64 * 9.0 / seconds,
        flow_p50_ms: ms(pct(50)),
        flow_p99_ms: ms(pct(99)),
        errors,
    };
    let _ = stop_tx.send(());
    server.await??;
    Ok(row)
}

/// Runs every scenario for `duration` each and writes `report.json` and `report.md` to `out`.
pub async fn run_all(out: &Path, duration: Duration) -> anyhow::Result<Report> {
    std::fs::create_dir_all(out)?;
    let scratch = out.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let mut rows = Vec::new();
    for writers in [1, 16, 256] {
        eprintln!("durable appends, {writers} writer(s)…");
        rows.push(appends(&scratch, writers, duration).await?);
    }
    eprintln!("four-order flows through gRPC…");
    let flows = flows(&scratch, 64, duration).await?;
    std::fs::remove_dir_all(&scratch)?;
    let report = Report {
        machine: format!(
            "{} cores, {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::env::consts::ARCH
        ),
        seconds_per_scenario: duration.as_secs_f64(),
        appends: rows,
        flows,
    };
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out.join("report.md"), markdown(&report))?;
    Ok(report)
}

pub fn markdown(report: &Report) -> String {
    let mut md = format!(
        "# diandan benchmark\n\nMachine: {}; {} s per scenario.\n\n## Durable appends (256-byte events, fsync before ack)\n\n| writers | diandan events/s | p99 ms | raw SQLite inserts/s (same durability) | ratio |\n|---:|---:|---:|---:|---:|\n",
        report.machine, report.seconds_per_scenario
    );
    for r in &report.appends {
        md.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.2}× |\n",
            r.writers,
            r.diandan_events_per_sec,
            r.diandan_p99_ms,
            r.raw_sqlite_inserts_per_sec,
            r.ratio
        ));
    }
    let f = &report.flows;
    md.push_str(&format!(
        "\n## Complete four-order flows through gRPC (one process)\n\n| concurrency | flows | flows/s | commands/s | flow p50 ms | flow p99 ms | errors |\n|---:|---:|---:|---:|---:|---:|---:|\n| {} | {} | {:.1} | {:.0} | {:.1} | {:.1} | {} |\n",
        f.concurrency, f.flows, f.flows_per_sec, f.commands_per_sec, f.flow_p50_ms, f.flow_p99_ms, f.errors
    ));
    md
}
