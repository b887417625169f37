//! `diandan bench`: the figures the README and BENCHMARKS.md quote, each beside a baseline
//! measured in the same run and against the goals of the "Benchmarks against baselines" issue.
//!
//! Scenarios (`--only appends,flows,rebuild,coldstart,dispatch,export,audit,http,deadlines`;
//! all by default):
//!
//! 1. `appends` — durable appends/s with 1, 16 and 256 concurrent writers on the embedded
//!    store, against raw SQLite inserts with the same durability (WAL, `synchronous=FULL`, one
//!    transaction each), and the disk's raw fsync rate (4 KiB write + `fdatasync`, in a loop).
//! 2. `flows` — complete four-order flows (place → … → close, 9 gRPC commands each) through
//!    the real gRPC server in this process: closed loop at concurrency 64 (the maximum), then
//!    open loop at a fixed offered rate of 80% of that maximum, each command's latency
//!    recorded; baseline: gRPC health-check round trips at the same concurrency.
//! 3. `rebuild` — `projections::rebuild` events/s over the store the flows filled (and over
//!    the cold-start store), against reading the same events (`read_all`) and reading plus
//!    decoding them.
//! 4. `coldstart` — `diandan up` spawned on a data dir holding `--events` events: time until
//!    `/healthz` and the gRPC health check answer, and the process's RSS; baseline: the same
//!    start on a store holding only the directory.
//! 5. `dispatch` — dispatch decision p50/p99 over 10,000 teams / 100,000 volunteers; baseline:
//!    the same over 100 teams / 1,000 volunteers.
//! 6. `export` — the auditor's CSV export of 1,000,000 orders (`--export-rows`) streamed over
//!    HTTP from `diandan up` as a child process, the server's peak resident memory sampled
//!    throughout; baseline: the same export of 10,000 orders first (a cold server: its growth
//!    includes warming up). Bounded memory: the large one grows no more than the baseline.
//!
//! 8. `http` — the flows of scenario 2 over HTTP, measured from outside: `diandan up` as a
//!    child process, this process the load generator (64 in flight, then 80%), the server's
//!    CPU per flow from `/proc`; baseline: `GET /healthz` round trips to the same server.
//! 9. `deadlines` — `diandan up` on a store with `--deadlines` (1,000,000) pending deadlines:
//!    start time, resident memory, and how late 2,000 deadlines spread over 10 s and 2,000 due
//!    at the same millisecond fire; baseline: the same on a store holding only the directory.
//!
//! Writes `report.json`, `report.md` and SVG plots (`flows-throughput.svg`,
//! `command-latency.svg`) to `--out`.

mod appends;
mod audit;
mod coldstart;
mod deadlines;
mod export;
mod flows;
mod http;
mod queries;
mod rebuild;
mod svg;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

pub use appends::{AppendRow, FsyncRow};
pub use audit::AuditReport;
pub use coldstart::{ColdStartReport, ColdStartRow, ColdStartRun};
pub use deadlines::{DeadlinesReport, DeadlinesRow, Lateness};
pub use export::{ExportReport, ExportRun};
pub use flows::{CommandRow, FlowRow, FlowsReport, PingRow};
pub use http::HttpReport;
pub use queries::{QueriesReport, QueryRow};
pub use rebuild::RebuildRow;

/// `diandan up` in this process on a data dir (random ports, no rate limits), seeded with the
/// showcase demo through its gRPC API: what the flows and export scenarios measure against.
pub(crate) struct InProcess {
    pub bound: crate::server::Bound,
    pub app: diandan_runtime::App,
    pub channel: tonic::transport::Channel,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub(crate) async fn start(data_dir: &Path) -> anyhow::Result<InProcess> {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let config = crate::server::Config {
            data_dir: data_dir.to_owned(),
            grpc_addr: "127.0.0.1:0".parse()?,
            http_addr: "127.0.0.1:0".parse()?,
            dev_login: true,
            rate_limits: diandan_gateway::RateLimits::off(),
            workflows_dir: None,
        };
        let server = tokio::spawn(crate::server::run(
            config,
            move |bound, app| {
                let _ = ready_tx.send((bound, app));
            },
            async {
                let _ = stop_rx.await;
            },
        ));
        let (bound, app) = ready_rx.await?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", bound.grpc))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        crate::demo::seed(
            diandan_proto::Upstreams::single(channel.clone()),
            &app.signer,
        )
        .await?;
        Ok(InProcess {
            bound,
            app,
            channel,
            stop,
            server,
        })
    }

    /// Stops the server; returns the events the store then held.
    pub(crate) async fn stop(self) -> anyhow::Result<u64> {
        let events = self.app.store.head_position().await?;
        drop(self.app);
        let _ = self.stop.send(());
        self.server.await??;
        Ok(events)
    }
}

/// The goals of the "Benchmarks against baselines" issue.
pub mod goals {
    /// Complete four-order flows per second at the maximum.
    pub const FLOWS_PER_SEC: f64 = 2_500.0;
    /// p99 of one gRPC command's latency at 80% of the maximum load, ms.
    pub const COMMAND_P99_MS: f64 = 20.0;
    /// Projection rebuild, events per second.
    pub const REBUILD_EVENTS_PER_SEC: f64 = 1_000_000.0;
    /// From process start until the health checks answer, ms.
    pub const COLD_START_MS: f64 = 1_000.0;
    /// Resident memory after start, MB (the goal is stated for 10M stored events).
    pub const RSS_MB: f64 = 512.0;
    /// Events the RSS goal is stated for.
    pub const RSS_EVENTS: u64 = 10_000_000;
    /// p99 of one dispatch decision, ms.
    pub const DISPATCH_P99_MS: f64 = 1.0;
    /// Peak memory growth of a 1M-row export over a 10k-row one: bounded means about equal.
    pub const EXPORT_GROWTH_RATIO: f64 = 2.0;
}

/// The scenarios `--only` picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Appends,
    Flows,
    Rebuild,
    Coldstart,
    Dispatch,
    Export,
    Audit,
    Http,
    Deadlines,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Appends,
        Scenario::Flows,
        Scenario::Rebuild,
        Scenario::Coldstart,
        Scenario::Dispatch,
        Scenario::Export,
        Scenario::Audit,
        Scenario::Http,
        Scenario::Deadlines,
    ];

    fn parse(name: &str) -> anyhow::Result<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|s| format!("{s:?}").eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown scenario {name:?}; one of appends, flows, rebuild, coldstart, dispatch, export, audit, http, deadlines"
                )
            })
    }
}

/// `diandan bench`'s flags, for the command line to flatten (`Bench(BenchArgs)`).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Folder for report.json, report.md and the SVG plots.
    #[arg(long, default_value = "bench-report")]
    pub out: PathBuf,
    /// Measuring window of each timed scenario, in seconds (appends: half for diandan, half
    /// for raw SQLite, per writer count; fsync and the gRPC baseline: half).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Events in the store the cold start (and the large rebuild) runs on.
    #[arg(long, env = "DIANDAN_BENCH_EVENTS", default_value_t = DEFAULT_EVENTS)]
    pub events: u64,
    /// Run only these scenarios (comma-separated).
    #[arg(long, env = "DIANDAN_BENCH_ONLY", value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// Orders the export scenario streams (its baseline: 10,000).
    #[arg(long, env = "DIANDAN_BENCH_EXPORT_ROWS", default_value_t = DEFAULT_EXPORT_ROWS)]
    pub export_rows: u64,
    /// Deadlines pending in the deadlines scenario's store (its baseline: none).
    #[arg(long, env = "DIANDAN_BENCH_DEADLINES", default_value_t = deadlines::DEFAULT_PENDING)]
    pub deadlines: u64,
    /// Keep the data dirs the scenarios built (`OUT/scratch`: the flows' store, the cold-start
    /// store with its read model) to profile a rebuild or a start on them afterwards.
    #[arg(long, env = "DIANDAN_BENCH_KEEP_DATA")]
    pub keep_data: bool,
}

/// Orders in the export scenario unless `--export-rows` says otherwise.
pub const DEFAULT_EXPORT_ROWS: u64 = 1_000_000;

/// Events in the cold-start store unless `--events` says otherwise: small enough for CI.
pub const DEFAULT_EVENTS: u64 = 200_000;

/// What to run, resolved from flags (or, through [`run_all`], the environment).
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    pub seconds: f64,
    pub events: u64,
    pub scenarios: Vec<Scenario>,
    pub export_rows: u64,
    pub deadlines: u64,
    pub keep_data: bool,
}

impl From<&BenchArgs> for Options {
    fn from(args: &BenchArgs) -> Options {
        Options {
            out: args.out.clone(),
            seconds: args.seconds as f64,
            events: args.events,
            export_rows: args.export_rows,
            deadlines: args.deadlines,
            keep_data: args.keep_data,
            scenarios: if args.only.is_empty() {
                Scenario::ALL.to_vec()
            } else {
                args.only.clone()
            },
        }
    }
}

impl Options {
    fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }
    fn window(&self, fraction: f64) -> Duration {
        Duration::from_secs_f64((self.seconds * fraction).max(0.5))
    }
}

/// The machine the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gb: f64,
    pub kernel: String,
    /// Device and filesystem type of the `--out` folder (where every file is written).
    pub disk: String,
    pub arch: String,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started: others' work on a shared machine.
    pub load_at_start: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {} cores available, {:.0} GB RAM, Linux {}, {} ({}), out dir on {}; load average at start {}",
            self.cpu,
            self.cores,
            self.memory_gb,
            self.kernel,
            self.arch,
            BUILD,
            self.disk,
            self.load_at_start
        )
    }
}

const BUILD: &str = if cfg!(debug_assertions) {
    "debug build"
} else {
    "release build"
};

fn machine(out: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".to_owned(), |(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".to_owned(), |s| s.trim().to_owned());
    // The mount holding `out`: the longest mount point that prefixes it.
    let out = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let disk = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, at, fs) = (f.next()?, f.next()?, f.next()?);
            out.starts_with(at)
                .then(|| (at.len(), format!("{dev} ({fs})")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "?".to_owned(), |(_, d)| d);
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gb,
        kernel,
        disk,
        arch: std::env::consts::ARCH.to_owned(),
        load_at_start: load_average(),
    }
}

/// Dispatch decision latency.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchRow {
    pub teams: usize,
    pub volunteers: usize,
    pub decisions: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Baseline: the same decisions over a directory 100 times smaller.
    pub small_teams: usize,
    pub small_volunteers: usize,
    pub small_p50_ms: f64,
    pub small_p99_ms: f64,
    /// p99 at full size over p99 at the small size.
    pub p99_ratio: f64,
    /// Wall-clock seconds, including building the synthetic directories.
    pub seconds: f64,
}

/// One goal and where the run stands against it.
#[derive(Debug, Clone, Serialize)]
pub struct GoalRow {
    pub goal: String,
    pub target: String,
    pub measured: String,
    /// ≥ 1 meets the goal: measured/target when higher is better, target/measured otherwise.
    pub score: f64,
    pub met: bool,
    pub note: String,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    /// The command line (and bench environment variables) that produced this report.
    pub command: String,
    pub seconds_per_scenario: f64,
    pub scenarios: Vec<Scenario>,
    pub total_seconds: f64,
    /// `/proc/loadavg` when the run ended.
    pub load_at_end: String,
    pub fsync: Option<FsyncRow>,
    pub appends: Vec<AppendRow>,
    pub flows: Option<FlowsReport>,
    pub rebuild: Vec<RebuildRow>,
    pub cold_start: Option<ColdStartReport>,
    pub dispatch: Option<DispatchRow>,
    pub export: Option<ExportReport>,
    pub audit: Option<AuditReport>,
    pub http: Option<HttpReport>,
    pub deadlines: Option<DeadlinesReport>,
    pub goals: Vec<GoalRow>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latency percentiles of a set of samples in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of_micros(samples: &mut [u32]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |permille: usize| {
            samples[(samples.len() * permille / 1000).min(samples.len() - 1)] as f64 / 1000.0
        };
        let sum: f64 = samples.iter().map(|&s| s as f64).sum();
        Percentiles {
            count: samples.len() as u64,
            mean_ms: sum / samples.len() as f64 / 1000.0,
            p50_ms: at(500),
            p90_ms: at(900),
            p99_ms: at(990),
            p999_ms: at(999),
            max_ms: samples[samples.len() - 1] as f64 / 1000.0,
        }
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A progress bar over a fixed window (position = elapsed), showing a live counter; hidden when
/// stderr is not a terminal (the start/result lines still go to stderr).
struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn window(
        label: &str,
        window: Duration,
        counter: Option<Arc<AtomicU64>>,
        unit: &'static str,
    ) -> Self {
        let bar = ProgressBar::new(window.as_millis() as u64).with_style(
            ProgressStyle::with_template("  {prefix:<28} [{bar:30}] {elapsed:>3}/{len_s} {msg}")
                .expect("valid template")
                .with_key(
                    "len_s",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}s", s.len().unwrap_or(0) / 1000);
                    },
                )
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        let started = Instant::now();
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let elapsed = started.elapsed();
                    bar.set_position(elapsed.as_millis() as u64);
                    if let Some(counter) = &counter {
                        let n = counter.load(Ordering::Relaxed);
                        bar.set_message(format!(
                            "{n} {unit} ({:.0}/s)",
                            n as f64 / elapsed.as_secs_f64().max(1e-3)
                        ));
                    }
                }
            })
        };
        Progress { bar, ticker }
    }

    /// A bar over `total` items (the caller sets the position).
    fn items(label: &str, total: u64, unit: &str) -> ProgressBar {
        let bar = ProgressBar::new(total).with_style(
            ProgressStyle::with_template(&format!(
                "  {{prefix:<28}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bar
    }

    fn spinner(label: &str) -> ProgressBar {
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("  {prefix:<28} {spinner} {elapsed} {msg}")
                .expect("valid template"),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// Runs every scenario with `duration` as the window and writes the report to `out`.
///
/// `--events` and `--only` come from `DIANDAN_BENCH_EVENTS` and `DIANDAN_BENCH_ONLY` here (the
/// command line flattens [`BenchArgs`] to take them as flags and calls [`run`]).
pub async fn run_all(out: &Path, duration: Duration) -> anyhow::Result<Report> {
    let count = |name: &str, default: u64| match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={v}: {e}")),
        Err(_) => Ok(default),
    };
    let events = count("DIANDAN_BENCH_EVENTS", DEFAULT_EVENTS)?;
    let scenarios = match std::env::var("DIANDAN_BENCH_ONLY") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(Scenario::parse)
            .collect::<anyhow::Result<_>>()?,
        _ => Scenario::ALL.to_vec(),
    };
    let export_rows = count("DIANDAN_BENCH_EXPORT_ROWS", DEFAULT_EXPORT_ROWS)?;
    let deadlines = count("DIANDAN_BENCH_DEADLINES", deadlines::DEFAULT_PENDING)?;
    run(&Options {
        out: out.to_owned(),
        seconds: duration.as_secs_f64(),
        events,
        scenarios,
        export_rows,
        deadlines,
        keep_data: std::env::var("DIANDAN_BENCH_KEEP_DATA").is_ok_and(|v| v == "true"),
    })
    .await
}

/// Runs the chosen scenarios and writes `report.json`, `report.md` and the plots to `out`.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let out = options.out.as_path();
    std::fs::create_dir_all(out)?;
    let scratch = out.join("scratch");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    let machine = machine(out);
    eprintln!("diandan bench: {machine}");
    eprintln!(
        "scenarios: {:?}; window {} s; cold-start store {} events; out {}",
        options.scenarios,
        options.seconds,
        options.events,
        out.display()
    );

    let mut fsync = None;
    let mut append_rows = Vec::new();
    if options.runs(Scenario::Appends) {
        eprintln!("[1/9] disk fsync rate and durable appends");
        let row = appends::fsync_rate(&scratch, options.window(0.5)).await?;
        eprintln!(
            "  raw fsync (4 KiB + fdatasync): {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            row.fsyncs_per_sec, row.p50_ms, row.p99_ms
        );
        fsync = Some(row);
        for writers in [1, 16, 256] {
            append_rows.push(
                appends::appends(&scratch, writers, options.window(0.5), fsync.as_ref()).await?,
            );
        }
    }

    // The store the flows fill: the rebuild runs over it, the cold-start store is cloned from it.
    let flow_data = scratch.join("flows");
    let mut flows_report = None;
    if options.runs(Scenario::Flows) {
        eprintln!("[2/9] four-order flows through gRPC");
        let report = flows::run(&flow_data, options.window(1.0), options.window(0.5)).await?;
        svg_files(out, &report)?;
        flows_report = Some(report);
    } else if options.runs(Scenario::Rebuild) || options.runs(Scenario::Coldstart) {
        eprintln!("[2/9] (flows not selected: a short flow run to have real events)");
        flows::template(&flow_data).await?;
    }

    let mut rebuild_rows = Vec::new();
    if options.runs(Scenario::Rebuild) {
        eprintln!("[3/9] projection rebuild over the flows' store");
        let (row, _) = rebuild::measure("flows store", &flow_data, &scratch).await?;
        rebuild_rows.push(row);
    }

    let mut cold = None;
    if options.runs(Scenario::Coldstart) {
        eprintln!(
            "[4/9] cold start on {} events (and on the directory alone)",
            options.events
        );
        let report = coldstart::run(&flow_data, &scratch, options.events).await?;
        if options.runs(Scenario::Rebuild) {
            rebuild_rows.push(report.rebuild.clone());
        }
        cold = Some(report);
    }

    let mut dispatch = None;
    if options.runs(Scenario::Dispatch) {
        eprintln!("[5/9] dispatch decisions");
        dispatch = Some(dispatch_latency().await?);
    }

    let mut export = None;
    if options.runs(Scenario::Export) {
        eprintln!(
            "[6/9] the auditor's CSV export: {} orders, RSS sampled",
            options.export_rows
        );
        export = Some(export::run(&scratch, options.export_rows).await?);
    }

    let mut audit = None;
    if options.runs(Scenario::Audit) {
        eprintln!("[7/9] the audit trail and sealing: on against off, and audit verify");
        audit = Some(audit::run(&scratch, options.window(0.5)).await?);
    }

    let mut http = None;
    if options.runs(Scenario::Http) {
        eprintln!("[8/9] four-order flows over HTTP against `diandan up` in another process");
        http = Some(
            http::run(
                &scratch.join("http"),
                options.window(1.0),
                options.window(0.5),
            )
            .await?,
        );
    }

    let mut deadlines = None;
    if options.runs(Scenario::Deadlines) {
        eprintln!(
            "[9/9] {} pending deadlines: start, memory, and how late those due fire",
            options.deadlines
        );
        deadlines = Some(deadlines::run(&scratch, options.deadlines, options.keep_data).await?);
    }

    if options.keep_data {
        eprintln!("data dirs kept in {}", scratch.display());
    } else {
        std::fs::remove_dir_all(&scratch)?;
    }
    let mut report = Report {
        machine,
        command: reproduce_command(),
        seconds_per_scenario: options.seconds,
        scenarios: options.scenarios.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        load_at_end: load_average(),
        fsync,
        appends: append_rows,
        flows: flows_report,
        rebuild: rebuild_rows,
        cold_start: cold,
        dispatch,
        export,
        audit,
        http,
        deadlines,
        goals: Vec::new(),
    };
    report.goals = goals(&report);
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out.join("report.md"), markdown(&report))?;
    eprintln!(
        "done in {:.0} s: {}/report.{{json,md}}",
        report.total_seconds,
        out.display()
    );
    Ok(report)
}

fn reproduce_command() -> String {
    let mut parts: Vec<String> = [
        "DIANDAN_BENCH_EVENTS",
        "DIANDAN_BENCH_ONLY",
        "DIANDAN_BENCH_EXPORT_ROWS",
        "DIANDAN_BENCH_DEADLINES",
        "DIANDAN_BENCH_KEEP_DATA",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
    .collect();
    let mut args = std::env::args();
    let exe = args.next().unwrap_or_else(|| "diandan".into());
    parts.push(
        Path::new(&exe)
            .strip_prefix(std::env::current_dir().unwrap_or_default())
            .map_or(exe.clone(), |p| format!("./{}", p.display())),
    );
    parts.extend(args);
    parts.join(" ")
}

fn svg_files(out: &Path, flows: &FlowsReport) -> anyhow::Result<()> {
    let max = format!("closed loop, {} in flight", flows.max.concurrency);
    let offered = format!(
        "open loop, {:.0} flows/s offered",
        flows.offered.offered_rate
    );
    std::fs::write(
        out.join("flows-throughput.svg"),
        svg::line_chart(
            "Complete four-order flows per second over time",
            "seconds since the scenario started",
            "flows completed per second",
            &[
                svg::Series {
                    name: &max,
                    color: "#1f77b4",
                    points: &flows.max.timeline,
                },
                svg::Series {
                    name: &offered,
                    color: "#ff7f0e",
                    points: &flows.offered.timeline,
                },
            ],
            &[svg::Marker {
                value: goals::FLOWS_PER_SEC,
                label: format!("goal {:.0} flows/s", goals::FLOWS_PER_SEC),
                color: "#2ca02c",
            }],
        ),
    )?;
    let edges = flows::histogram_edges_ms();
    std::fs::write(
        out.join("command-latency.svg"),
        svg::histogram(
            "Latency of one gRPC command (9 per flow)",
            "milliseconds (log scale)",
            &edges,
            &[
                svg::Bars {
                    name: &offered,
                    color: "#ff7f0e",
                    counts: &flows.offered.histogram,
                },
                svg::Bars {
                    name: &max,
                    color: "#1f77b4",
                    counts: &flows.max.histogram,
                },
            ],
            &[
                svg::Marker {
                    value: flows.offered.command.p50_ms,
                    label: format!("p50 {:.1} ms (open loop)", flows.offered.command.p50_ms),
                    color: "#ff7f0e",
                },
                svg::Marker {
                    value: flows.offered.command.p99_ms,
                    label: format!("p99 {:.1} ms (open loop)", flows.offered.command.p99_ms),
                    color: "#d62728",
                },
                svg::Marker {
                    value: goals::COMMAND_P99_MS,
                    label: format!("goal p99 ≤ {:.0} ms", goals::COMMAND_P99_MS),
                    color: "#2ca02c",
                },
            ],
        ),
    )?;
    Ok(())
}

async fn dispatch_latency() -> anyhow::Result<DispatchRow> {
    use diandan_workflows::dispatch_rules::bench::bench_dispatch;
    let bar = Progress::spinner("dispatch decisions");
    let started = Instant::now();
    bar.set_message("100 teams / 1,000 volunteers");
    let (small_p50, small_p99) =
        tokio::task::spawn_blocking(|| bench_dispatch(100, 1_000, 10_000)).await?;
    bar.set_message("10,000 teams / 100,000 volunteers");
    let (p50, p99) =
        tokio::task::spawn_blocking(|| bench_dispatch(10_000, 100_000, 10_000)).await?;
    bar.finish_and_clear();
    let row = DispatchRow {
        teams: 10_000,
        volunteers: 100_000,
        decisions: 10_000,
        p50_ms: ms(p50),
        p99_ms: ms(p99),
        small_teams: 100,
        small_volunteers: 1_000,
        small_p50_ms: ms(small_p50),
        small_p99_ms: ms(small_p99),
        p99_ratio: ms(p99) / ms(small_p99).max(1e-6),
        seconds: started.elapsed().as_secs_f64(),
    };
    eprintln!(
        "  10,000 teams / 100,000 volunteers: p50 {:.3} ms, p99 {:.3} ms; 100 / 1,000: p50 {:.3} ms, p99 {:.3} ms",
        row.p50_ms, row.p99_ms, row.small_p50_ms, row.small_p99_ms
    );
    Ok(row)
}

fn goal(
    goal: &str,
    target: String,
    measured: String,
    score: f64,
    note: impl Into<String>,
) -> GoalRow {
    GoalRow {
        goal: goal.to_owned(),
        target,
        measured,
        score,
        met: score >= 1.0,
        note: note.into(),
    }
}

fn goals(report: &Report) -> Vec<GoalRow> {
    let mut rows = Vec::new();
    if let Some(h) = &report.http {
        rows.push(goal(
            "complete flows/s over HTTP, from another process",
            format!("≥ {}", thousands(goals::FLOWS_PER_SEC)),
            format!("{:.0}", h.max.flows_per_sec),
            h.max.flows_per_sec / goals::FLOWS_PER_SEC,
            format!(
                "closed loop, {} flows in flight; server CPU {:.2} ms per flow",
                h.max.concurrency, h.server_cpu_ms_per_flow_max
            ),
        ));
        rows.push(goal(
            "p99 command latency over HTTP at 80% load",
            format!("≤ {:.0} ms", goals::COMMAND_P99_MS),
            format!("{:.1} ms", h.offered.command.p99_ms),
            goals::COMMAND_P99_MS / h.offered.command.p99_ms.max(1e-6),
            format!(
                "open loop at {:.0} flows/s offered ({:.0} achieved)",
                h.offered.offered_rate, h.offered.flows_per_sec
            ),
        ));
    }
    if let Some(f) = &report.flows {
        rows.push(goal(
            "complete flows/s at the maximum",
            format!("≥ {}", thousands(goals::FLOWS_PER_SEC)),
            format!("{:.0}", f.max.flows_per_sec),
            f.max.flows_per_sec / goals::FLOWS_PER_SEC,
            format!("closed loop, {} flows in flight", f.max.concurrency),
        ));
        rows.push(goal(
            "p99 command latency at 80% load",
            format!("≤ {:.0} ms", goals::COMMAND_P99_MS),
            format!("{:.1} ms", f.offered.command.p99_ms),
            goals::COMMAND_P99_MS / f.offered.command.p99_ms.max(1e-6),
            format!(
                "open loop at {:.0} flows/s offered ({:.0} achieved)",
                f.offered.offered_rate, f.offered.flows_per_sec
            ),
        ));
    }
    if let Some(r) = report
        .rebuild
        .iter()
        .max_by_key(|r| r.events)
        .filter(|_| !report.rebuild.is_empty())
    {
        rows.push(goal(
            "projection rebuild",
            format!("≥ {} events/s", thousands(goals::REBUILD_EVENTS_PER_SEC)),
            format!("{} events/s", thousands(r.rebuild_events_per_sec)),
            r.rebuild_events_per_sec / goals::REBUILD_EVENTS_PER_SEC,
            format!("{} ({} events)", r.store, thousands(r.events as f64)),
        ));
    }
    if let Some(c) = &report.cold_start {
        let worst = c.loaded.worst_health_ms();
        rows.push(goal(
            "cold start until health checks answer",
            format!("≤ {:.0} ms", goals::COLD_START_MS),
            format!("{worst:.0} ms"),
            goals::COLD_START_MS / worst.max(1e-6),
            format!(
                "{} events, slowest of {} starts",
                thousands(c.loaded.events as f64),
                c.loaded.runs.len()
            ),
        ));
        let rss = c.loaded.max_rss_mb();
        rows.push(goal(
            "RSS after start",
            format!(
                "≤ {:.0} MB at {} events",
                goals::RSS_MB,
                thousands(goals::RSS_EVENTS as f64)
            ),
            format!(
                "{rss:.0} MB at {} events",
                thousands(c.loaded.events as f64)
            ),
            goals::RSS_MB / rss.max(1e-6),
            if c.loaded.events >= goals::RSS_EVENTS {
                "peak of the starts".to_owned()
            } else {
                format!(
                    "peak of the starts; extrapolated linearly to {} events: {:.0} MB",
                    thousands(goals::RSS_EVENTS as f64),
                    c.rss_extrapolated_mb
                )
            },
        ));
    }
    if let Some(d) = &report.dispatch {
        rows.push(goal(
            "dispatch decision p99",
            format!("≤ {:.0} ms", goals::DISPATCH_P99_MS),
            format!("{:.3} ms", d.p99_ms),
            goals::DISPATCH_P99_MS / d.p99_ms.max(1e-6),
            format!(
                "{} teams / {} volunteers",
                thousands(d.teams as f64),
                thousands(d.volunteers as f64)
            ),
        ));
    }
    if let Some(e) = &report.export {
        rows.push(goal(
            "export memory: peak RSS growth, large ÷ baseline",
            format!("≤ {:.0}× (bounded)", goals::EXPORT_GROWTH_RATIO),
            format!("{:.2}×", e.growth_ratio),
            goals::EXPORT_GROWTH_RATIO / e.growth_ratio.max(1e-6),
            format!(
                "{} rows: +{:.1} MB; {} rows: +{:.1} MB",
                thousands(e.large.rows as f64),
                e.large.growth_mb,
                thousands(e.baseline.rows as f64),
                e.baseline.growth_mb
            ),
        ));
    }
    rows
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The report as Markdown tables.
pub fn markdown(report: &Report) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(md, "# diandan benchmark\n");
    let _ = writeln!(md, "- Machine: {}", report.machine);
    let _ = writeln!(md, "- Command: `{}`", report.command);
    let _ = writeln!(
        md,
        "- Window: {} s per timed scenario; whole run {:.0} s; load average at the end {}\n",
        report.seconds_per_scenario, report.total_seconds, report.load_at_end
    );

    if !report.goals.is_empty() {
        let _ = writeln!(md, "## Goals\n");
        let _ = writeln!(
            md,
            "| goal | target | measured | score (≥ 1 meets) | | note |\n|---|---:|---:|---:|:-:|---|"
        );
        for g in &report.goals {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} | {} | {} |",
                g.goal,
                g.target,
                g.measured,
                g.score,
                if g.met { "✅" } else { "❌" },
                g.note
            );
        }
        md.push('\n');
    }

    if let Some(f) = &report.fsync {
        let _ = writeln!(
            md,
            "## 1. Durable appends (256-byte events, fsync before ack)\n"
        );
        let _ = writeln!(
            md,
            "Disk baseline: {} fsyncs/s (4 KiB write + `fdatasync`, one file, one thread; p50 {:.2} ms, p99 {:.2} ms).\n",
            thousands(f.fsyncs_per_sec),
            f.p50_ms,
            f.p99_ms
        );
    }
    if !report.appends.is_empty() {
        if report.fsync.is_none() {
            let _ = writeln!(md, "## 1. Durable appends\n");
        }
        let _ = writeln!(
            md,
            "| writers | diandan events/s | p50 ms | p99 ms | raw SQLite inserts/s (same durability) | raw p99 ms | diandan ÷ raw | diandan ÷ fsync rate |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &report.appends {
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {:.2} | {} | {:.2} | {:.2}× | {} |",
                r.writers,
                thousands(r.diandan_events_per_sec),
                r.diandan_p50_ms,
                r.diandan_p99_ms,
                thousands(r.raw_sqlite_inserts_per_sec),
                r.raw_p99_ms,
                r.ratio,
                r.per_fsync
                    .map_or_else(|| "–".to_owned(), |x| format!("{x:.2}×"))
            );
        }
        md.push('\n');
    }

    if let Some(f) = &report.flows {
        let _ = writeln!(
            md,
            "## 2. Complete four-order flows through gRPC (load generator and server in one process)\n"
        );
        let _ = writeln!(
            md,
            "| load | flows | flows/s | commands/s | flow p50 ms | flow p99 ms | command p50 ms | command p99 ms | command p99.9 ms | failed flows |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (label, r) in [
            (
                format!("max: closed loop, {} in flight", f.max.concurrency),
                &f.max,
            ),
            (
                format!(
                    "80%: open loop, {:.0} flows/s offered",
                    f.offered.offered_rate
                ),
                &f.offered,
            ),
        ] {
            let _ = writeln!(
                md,
                "| {label} | {} | {:.1} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {} |",
                r.flows,
                r.flows_per_sec,
                thousands(r.commands_per_sec),
                r.flow.p50_ms,
                r.flow.p99_ms,
                r.command.p50_ms,
                r.command.p99_ms,
                r.command.p999_ms,
                r.failed_flows
            );
        }
        let _ = writeln!(
            md,
            "\nEach flow is 9 commands and appended {:.1} events on average; the store held {} events afterwards.",
            f.events_per_flow,
            thousands(f.events_stored as f64)
        );
        let p = &f.ping;
        let _ = writeln!(
            md,
            "\nBaseline: gRPC health `Check` round trips, {} in flight, same process and channel: {} calls/s (p50 {:.2} ms, p99 {:.2} ms). Commands/s at the maximum ÷ that: {:.3}×.\n",
            p.concurrency,
            thousands(p.calls_per_sec),
            p.p50_ms,
            p.p99_ms,
            f.max.commands_per_sec / p.calls_per_sec.max(1e-9)
        );
        if f.offered.skipped > 0 || f.offered.late_starts_p99_ms > 5.0 {
            let _ = writeln!(
                md,
                "Open loop: {} flow starts skipped (over {} in flight), start lag p99 {:.1} ms.\n",
                f.offered.skipped,
                flows::MAX_IN_FLIGHT,
                f.offered.late_starts_p99_ms
            );
        }
        let _ = writeln!(
            md,
            "Per command (p50 / p99 ms):\n\n| command | max p50 | max p99 | 80% p50 | 80% p99 | errors |\n|---|---:|---:|---:|---:|---:|"
        );
        for (a, b) in f.max.per_command.iter().zip(&f.offered.per_command) {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                a.command,
                a.latency.p50_ms,
                a.latency.p99_ms,
                b.latency.p50_ms,
                b.latency.p99_ms,
                a.errors + b.errors
            );
        }
        if let Some(e) = f
            .max
            .first_error
            .as_ref()
            .or(f.offered.first_error.as_ref())
        {
            let _ = writeln!(md, "\nFirst error: `{e}`");
        }
        let _ = writeln!(
            md,
            "\n![flows per second](flows-throughput.svg)\n\n![command latency](command-latency.svg)\n"
        );
    }

    if !report.rebuild.is_empty() {
        let _ = writeln!(md, "## 3. Projection rebuild\n");
        let _ = writeln!(
            md,
            "| store | events | rebuild events/s | baseline `read_all` events/s | `read_all` + JSON decode events/s | rebuild ÷ read_all |\n|---|---:|---:|---:|---:|---:|"
        );
        for r in &report.rebuild {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.3}× |",
                r.store,
                thousands(r.events as f64),
                thousands(r.rebuild_events_per_sec),
                thousands(r.read_all_events_per_sec),
                thousands(r.read_decode_events_per_sec),
                r.ratio
            );
        }
        md.push('\n');
    }

    if let Some(c) = &report.cold_start {
        let _ = writeln!(
            md,
            "## 4. Cold start (`diandan up` spawned; read model already caught up)\n"
        );
        let _ = writeln!(
            md,
            "Store of {} events filled in {:.1} s by cloning the flows' completed orders ({} orders of {} events each) after the directory's streams; its read model rebuilt before the starts.\n",
            thousands(c.loaded.events as f64),
            c.fill_seconds,
            thousands(c.orders_cloned as f64),
            c.events_per_order
        );
        let _ = writeln!(
            md,
            "| store | events | start | ready line ms | `/healthz` ms | gRPC health ms | first `GetOrder` ms | RSS at health MB | RSS +1 s MB | peak RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for row in [&c.baseline, &c.loaded] {
            for (i, r) in row.runs.iter().enumerate() {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} |",
                    row.label,
                    thousands(row.events as f64),
                    i + 1,
                    r.ready_line_ms,
                    r.healthz_ms,
                    r.grpc_health_ms,
                    r.first_read_ms
                        .map_or_else(|| "–".to_owned(), |v| format!("{v:.0}")),
                    r.rss_at_health_mb,
                    r.rss_settled_mb,
                    r.hwm_mb
                );
            }
        }
        let _ = writeln!(
            md,
            "\nSlowest start to health: {:.0} ms with {} events vs {:.0} ms with the directory alone ({:.2}×). RSS extrapolated linearly to {} events (growth of the median RSS at health per event): {:.0} MB.\n",
            c.loaded.worst_health_ms(),
            thousands(c.loaded.events as f64),
            c.baseline.worst_health_ms(),
            c.loaded.worst_health_ms() / c.baseline.worst_health_ms().max(1e-6),
            thousands(goals::RSS_EVENTS as f64),
            c.rss_extrapolated_mb
        );
        let q = &c.queries;
        let _ = writeln!(
            md,
            "### Reads at scale: the same reads on {} orders and on the flows' {} (p50 of {} calls each, over HTTP, one at a time)\n\n| read | request | {} orders ms | {} orders ms | ratio |\n|---|---|---:|---:|---:|",
            thousands(q.large_orders as f64),
            thousands(q.small_orders as f64),
            queries::CALLS,
            thousands(q.small_orders as f64),
            thousands(q.large_orders as f64),
        );
        for r in &q.rows {
            let _ = writeln!(
                md,
                "| {} | `GET /api/v1{}` | {:.2} | {:.2} | {:.2}× |",
                r.name, r.request, r.small_p50_ms, r.large_p50_ms, r.ratio
            );
        }
        if let Some(worst) = q.worst() {
            let _ = writeln!(
                md,
                "\n{:.0}× the orders; the read that slowed most: {} ({:.2}×). A read through an index stays near 1×; one that reads every order grows with them.\n",
                q.large_orders as f64 / (q.small_orders as f64).max(1.0),
                worst.name,
                worst.ratio
            );
        }
    }

    if let Some(d) = &report.dispatch {
        let _ = writeln!(md, "## 5. Dispatch decision\n");
        let _ = writeln!(
            md,
            "| directory | decisions | p50 ms | p99 ms |\n|---|---:|---:|---:|\n| {} teams / {} volunteers | {} | {:.3} | {:.3} |\n| baseline: {} teams / {} volunteers | {} | {:.3} | {:.3} |\n\np99 ratio (full ÷ baseline): {:.2}×.\n",
            thousands(d.teams as f64),
            thousands(d.volunteers as f64),
            thousands(d.decisions as f64),
            d.p50_ms,
            d.p99_ms,
            thousands(d.small_teams as f64),
            thousands(d.small_volunteers as f64),
            thousands(d.decisions as f64),
            d.small_p50_ms,
            d.small_p99_ms,
            d.p99_ratio
        );
    }
    if let Some(e) = &report.export {
        let _ = writeln!(md, "## 6. The auditor's CSV export (streamed)\n");
        let _ = writeln!(
            md,
            "| export | rows | MB | seconds | rows/s | RSS before MB | RSS peak MB | growth MB |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (label, r) in [("large", &e.large), ("baseline", &e.baseline)] {
            let _ = writeln!(
                md,
                "| {label} | {} | {:.1} | {:.2} | {} | {:.1} | {:.1} | {:.1} |",
                thousands(r.rows as f64),
                r.bytes as f64 / 1e6,
                r.seconds,
                thousands(r.rows_per_sec),
                r.rss_before_mb,
                r.rss_peak_mb,
                r.growth_mb
            );
        }
        let _ = writeln!(
            md,
            "\nGrowth ratio (large ÷ baseline): {:.2}×. Fixture rows written straight into the read model in {:.1} s.\n",
            e.growth_ratio, e.fixture_seconds
        );
    }
    if let Some(a) = &report.audit {
        let _ = writeln!(
            md,
            "## 7. The audit trail and sealing: on, against the same run with them off\n"
        );
        let _ = writeln!(
            md,
            "| what | on | off (baseline) | on ÷ off |\n|---|---:|---:|---:|"
        );
        let _ = writeln!(
            md,
            "| durable appends/s, {} writers (hash chain) | {:.0} | {:.0} | {:.2} |",
            a.writers, a.chained_appends_per_sec, a.unchained_appends_per_sec, a.append_ratio
        );
        let _ = writeln!(
            md,
            "| placements/s, {} at once (address and number sealed) | {:.0} | {:.0} | {:.2} |",
            a.writers, a.sealed_placements_per_sec, a.plain_placements_per_sec, a.placement_ratio
        );
        let _ = writeln!(
            md,
            "| projection rebuild, events/s (over either log) | {:.0} | {:.0} | {:.2} |",
            a.sealed_rebuild_events_per_sec, a.plain_rebuild_events_per_sec, a.rebuild_ratio
        );
        let _ = writeln!(
            md,
            "\n`diandan audit verify` over the sealed log ({} events: read, re-hash, Merkle tree, \
             checkpoint): {:.0} events/s, so 10,000,000 events in {:.1} minutes.\n",
            a.verify_events, a.verify_events_per_sec, a.verify_10m_minutes
        );
    }
    if let Some(h) = &report.http {
        let _ = writeln!(
            md,
            "## 8. Complete four-order flows over HTTP (`diandan up` in a child process, load generator here)\n"
        );
        let _ = writeln!(
            md,
            "| load | flows | flows/s | commands/s | command p50 ms | command p99 ms | command p99.9 ms | server CPU ms per flow | failed flows |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (label, r, cpu) in [
            (
                format!("max: closed loop, {} in flight", h.max.concurrency),
                &h.max,
                h.server_cpu_ms_per_flow_max,
            ),
            (
                format!(
                    "80%: open loop, {:.0} flows/s offered",
                    h.offered.offered_rate
                ),
                &h.offered,
                h.server_cpu_ms_per_flow_offered,
            ),
        ] {
            let _ = writeln!(
                md,
                "| {label} | {} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {cpu:.2} | {} |",
                r.flows,
                r.flows_per_sec,
                thousands(r.commands_per_sec),
                r.command.p50_ms,
                r.command.p99_ms,
                r.command.p999_ms,
                r.failed_flows
            );
        }
        let p = &h.ping;
        let _ = writeln!(
            md,
            "\nBaseline: `GET /healthz` round trips to the same server, {} in flight: {} calls/s (p50 {:.2} ms, p99 {:.2} ms; server CPU {:.3} ms each). Commands/s at the maximum ÷ that: {:.3}×. The load generator spent {:.2} ms of CPU per flow.\n",
            p.concurrency,
            thousands(p.calls_per_sec),
            p.p50_ms,
            p.p99_ms,
            h.server_cpu_ms_per_ping,
            h.max.commands_per_sec / p.calls_per_sec.max(1e-9),
            h.client_cpu_ms_per_flow_max
        );
        let _ = writeln!(
            md,
            "Per command (p50 / p99 / p99.9 ms):\n\n| command | max p50 | max p99 | 80% p50 | 80% p99 | 80% p99.9 | errors |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for (a, b) in h.max.per_command.iter().zip(&h.offered.per_command) {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                a.command,
                a.latency.p50_ms,
                a.latency.p99_ms,
                b.latency.p50_ms,
                b.latency.p99_ms,
                b.latency.p999_ms,
                a.errors + b.errors
            );
        }
        if let Some(e) = h
            .max
            .first_error
            .as_ref()
            .or(h.offered.first_error.as_ref())
        {
            let _ = writeln!(md, "\nFirst error: `{e}`");
        }
        md.push('\n');
    }
    if let Some(d) = &report.deadlines {
        deadlines_markdown(&mut md, d);
    }
    md
}

fn deadlines_markdown(md: &mut String, d: &DeadlinesReport) {
    use std::fmt::Write as _;
    let _ = writeln!(
        md,
        "## 9. Pending deadlines (`diandan up` in a child process on {} pending deadlines)\n",
        thousands(d.loaded.pending as f64)
    );
    let _ = writeln!(
        md,
        "| store | pending deadlines | events | start until `/healthz` ms | RSS at health MB | RSS after firing MB | peak MB | CPU s | spread: fired | late p50 / p99 / max ms | burst: fired | late p50 / p99 ms | burst drained in ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|"
    );
    for r in [&d.baseline, &d.loaded] {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {}/{} | {:.0} / {:.0} / {:.0} | {}/{} | {:.0} / {:.0} | {:.0} |",
            r.label,
            thousands(r.pending as f64),
            thousands(r.events as f64),
            r.start_ms,
            r.rss_at_health_mb,
            r.rss_after_mb,
            r.hwm_mb,
            r.cpu_seconds,
            r.spread.fired,
            r.spread.expected,
            r.spread.late.p50_ms,
            r.spread.late.p99_ms,
            r.spread.late.max_ms,
            r.burst.fired,
            r.burst.expected,
            r.burst.late.p50_ms,
            r.burst.late.p99_ms,
            r.burst_drain_ms
        );
    }
    let (b, l) = (&d.baseline, &d.loaded);
    let _ = writeln!(
        md,
        "\nAgainst the directory-only baseline: start {:.2}×, RSS at health {:.2}×, spread p99 lateness {:.2}×, burst drain {:.2}×. \
         Spread: 2,000 deadlines evenly over 10 s; burst: 2,000 due at the same millisecond. \
         Lateness is each `DeadlineWarned` event's commit time minus the `warn_at` it fired for.",
        l.start_ms / b.start_ms.max(1e-9),
        l.rss_at_health_mb / b.rss_at_health_mb.max(1e-9),
        l.spread.late.p99_ms / b.spread.late.p99_ms.max(1e-9),
        l.burst_drain_ms / b.burst_drain_ms.max(1e-9)
    );
    if let Some(r) = &l.rebuild {
        let _ = writeln!(
            md,
            "Filling the pending store: {:.1} s; building its read model (a rebuild): {:.0} events/s.",
            l.fill_seconds, r.rebuild_events_per_sec
        );
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set() {
        let mut samples: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        let p = Percentiles::of_micros(&mut samples);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_ms, 501.0);
        assert_eq!(p.p99_ms, 991.0);
        assert_eq!(p.max_ms, 1000.0);
        assert_eq!(Percentiles::of_micros(&mut []).count, 0);
    }

    #[test]
    fn scenario_names_parse() {
        assert_eq!(Scenario::parse("coldstart").unwrap(), Scenario::Coldstart);
        assert_eq!(Scenario::parse(" Flows ").unwrap(), Scenario::Flows);
        assert!(Scenario::parse("nope").is_err());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
    }
}
