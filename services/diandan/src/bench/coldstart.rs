//! Scenario 4: cold start. `diandan up` is spawned (this very executable) on a data dir
//! holding N events whose read model is caught up — a restart — and timed until `/healthz`
//! and the gRPC health check answer; its resident memory is read from `/proc/<pid>/status`.
//!
//! The N events are real ones: the flows' completed orders, cloned under new order ids
//! (one append per cloned order), after the flows' directory streams copied as they are. The
//! clones are spread over the past year ([`SPREAD_DAYS`]: every time in an order's events moved
//! back by whole days), so reads over a window (the last 30 days' statistics, the last 7 days'
//! dispatches) see a year's share of them, as on a station's log after a year of service. The
//! read model is rebuilt and the notification outbox's checkpoint set to the head before the
//! starts, as after a clean stop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tonic::transport::Endpoint;

use diandan_proto::v1 as pb;
use diandan_runtime::auth::TokenSigner;
use diandan_runtime::notify::outbox::Outbox;
use diandan_store::{AppendRequest, EventStore, ExpectedRevision, NewEvent, RecordedEvent};
use diandan_workflows::Role;

use super::rebuild::{self, RebuildRow};
use super::{goals, Progress};
use crate::demo::token;

/// Starts measured per store.
const STARTS: usize = 3;
/// Appends in flight while filling (group commit batches them).
const FILL_IN_FLIGHT: usize = 256;
/// The cloned orders are spread over this many days before the fill.
const SPREAD_DAYS: i64 = 365;
/// The token secret written into the bench data dirs, so the probe can sign a token.
pub(super) const SECRET: &str = "diandan-bench-secret-0123456789abcdef0123456789abcdef";

/// One start.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStartRun {
    /// Until `diandan ready …` was printed.
    pub ready_line_ms: f64,
    /// Until `GET /healthz` answered 200.
    pub healthz_ms: f64,
    /// Until the gRPC health check answered SERVING.
    pub grpc_health_ms: f64,
    /// Until a `GetOrder` of a stored order answered (loads its stream).
    pub first_read_ms: Option<f64>,
    /// VmRSS when `/healthz` first answered.
    pub rss_at_health_mb: f64,
    /// VmRSS one second after that (after the first `GetOrder`).
    pub rss_settled_mb: f64,
    /// VmHWM: the peak.
    pub hwm_mb: f64,
}

/// Several starts on one store.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStartRow {
    pub label: String,
    pub events: u64,
    pub runs: Vec<ColdStartRun>,
}

impl ColdStartRow {
    /// The slowest start until both health checks answered.
    pub fn worst_health_ms(&self) -> f64 {
        self.runs
            .iter()
            .map(|r| r.healthz_ms.max(r.grpc_health_ms))
            .fold(0.0, f64::max)
    }
    /// The median VmRSS when `/healthz` first answered.
    pub fn median_rss_at_health_mb(&self) -> f64 {
        let mut rss: Vec<f64> = self.runs.iter().map(|r| r.rss_at_health_mb).collect();
        rss.sort_by(f64::total_cmp);
        rss.get(rss.len() / 2).copied().unwrap_or(0.0)
    }
    /// The most memory any start held (VmRSS at health or one second later, or the peak).
    pub fn max_rss_mb(&self) -> f64 {
        self.runs
            .iter()
            .map(|r| r.rss_at_health_mb.max(r.rss_settled_mb).max(r.hwm_mb))
            .fold(0.0, f64::max)
    }
}

/// Scenario 4's results.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStartReport {
    /// The directory alone (no orders).
    pub baseline: ColdStartRow,
    pub loaded: ColdStartRow,
    pub fill_seconds: f64,
    pub orders_cloned: u64,
    /// Building the loaded store's read model (a rebuild over N events).
    pub rebuild: RebuildRow,
    /// Events in one cloned (completed) order's stream.
    pub events_per_order: u64,
    /// The loaded store's peak RSS plus the growth of the median RSS at health per event
    /// (baseline → loaded) times the events still missing to the goal's count.
    pub rss_extrapolated_mb: f64,
    /// The console's and the mini-program's reads on the loaded store against the flows' own.
    pub queries: super::queries::QueriesReport,
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

pub(super) fn clone_event(event: &RecordedEvent, from: &[u8], to: &[u8]) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: event.event_type.clone(),
        data: replace_all(&event.data, from, to),
        metadata: replace_all(&event.metadata, from, to),
    }
}

/// `json` with every string in it that is an RFC 3339 time moved `back` earlier (in its own
/// offset), bytes otherwise untouched: the keys keep their order (events are decoded fastest
/// with `at` and `type` first).
fn moved_back(json: &[u8], back: time::Duration) -> Vec<u8> {
    use time::format_description::well_known::Rfc3339;
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'"' {
            out.push(json[i]);
            i += 1;
            continue;
        }
        // A string literal: to the closing quote, past escaped characters.
        let mut end = i + 1;
        while end < json.len() && json[end] != b'"' {
            end += if json[end] == b'\\' { 2 } else { 1 };
        }
        if end >= json.len() {
            // Not JSON (an unterminated string): the rest as it is.
            out.extend_from_slice(&json[i..]);
            break;
        }
        let literal = &json[i + 1..end];
        let moved = std::str::from_utf8(literal)
            .ok()
            .filter(|s| s.len() >= 20 && s.as_bytes()[0].is_ascii_digit())
            .and_then(|s| time::OffsetDateTime::parse(s, &Rfc3339).ok())
            .and_then(|t| (t - back).format(&Rfc3339).ok());
        out.push(b'"');
        out.extend_from_slice(moved.as_ref().map_or(literal, |m| m.as_bytes()));
        out.push(b'"');
        i = end + 1;
    }
    out
}

/// What a fill wrote.
struct Fill {
    events: u64,
    orders: u64,
    seconds: f64,
    /// An order id that exists in the filled store.
    sample_order: Option<String>,
    events_per_order: u64,
}

/// A store's streams: the directory's in the order they were first written, orders by stream.
pub(super) struct Streams {
    pub directory: Vec<(String, Vec<RecordedEvent>)>,
    pub orders: HashMap<String, Vec<RecordedEvent>>,
}

/// Reads every stream of the store in `template`.
pub(super) async fn read_streams(template: &Path) -> anyhow::Result<Streams> {
    let source = rebuild::open(template).await?;
    let head = source.head_position().await?;
    let mut all = Vec::new();
    let mut from = 1;
    while from <= head {
        let batch = source.read_all(from, 4096).await?;
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        all.extend(batch);
    }
    rebuild::close(source).await?;

    // Directory streams in the order they were first written; orders by stream.
    let mut directory: Vec<(String, Vec<RecordedEvent>)> = Vec::new();
    let mut orders: HashMap<String, Vec<RecordedEvent>> = HashMap::new();
    for event in all {
        if event.stream.starts_with("order-") {
            orders.entry(event.stream.clone()).or_default().push(event);
        } else if let Some((_, list)) = directory.iter_mut().find(|(s, _)| *s == event.stream) {
            list.push(event);
        } else {
            directory.push((event.stream.clone(), vec![event]));
        }
    }
    Ok(Streams { directory, orders })
}

/// A new data dir in `target` (with the bench's token secret) holding the directory streams
/// as they are; returns its store and the events written.
pub(super) async fn new_store_with_directory(
    target: &Path,
    directory: &[(String, Vec<RecordedEvent>)],
) -> anyhow::Result<(Arc<diandan_store::SqliteStore>, u64)> {
    std::fs::create_dir_all(target)?;
    std::fs::write(target.join("token.secret"), SECRET)?;
    let store = rebuild::open(target).await?;
    let mut written = 0u64;
    for (stream, list) in directory {
        store
            .append(AppendRequest {
                stream: stream.clone(),
                expected: ExpectedRevision::NoStream,
                command_id: format!("bench-fill-{stream}"),
                events: list.iter().map(|e| clone_event(e, b"", b"")).collect(),
            })
            .await?;
        written += list.len() as u64;
    }
    Ok((store, written))
}

/// Fills `target/events.db` with the template's directory streams and, until `events` are
/// stored, clones of its completed orders.
async fn fill(template: &Path, target: &Path, events: u64) -> anyhow::Result<Fill> {
    let Streams { directory, orders } = read_streams(template).await?;
    let longest = orders.values().map(Vec::len).max().unwrap_or(0);
    let mut templates: Vec<(String, Vec<RecordedEvent>)> = orders
        .into_iter()
        .filter(|(_, list)| list.len() == longest)
        .collect();
    templates.sort_by(|a, b| a.0.cmp(&b.0));

    let started = Instant::now();
    let (store, mut written) = new_store_with_directory(target, &directory).await?;
    let mut plan = Vec::new();
    let mut planned = written;
    while planned < events && !templates.is_empty() {
        let t = plan.len() % templates.len();
        planned += templates[t].1.len() as u64;
        plan.push(t);
    }
    let orders = plan.len() as u64;
    let bar = Progress::items("filling the store", planned, "events");
    bar.set_position(written);
    let templates = Arc::new(templates);
    let sample_order = plan.first().map(|_| uuid::Uuid::new_v4().to_string());
    let first = sample_order.clone();
    let mut appends = futures::stream::iter(plan.into_iter().enumerate())
        .map(|(k, t)| {
            let (store, templates) = (store.clone(), templates.clone());
            let new_id = match (k, &first) {
                (0, Some(id)) => id.clone(),
                _ => uuid::Uuid::new_v4().to_string(),
            };
            async move {
                let (stream, list) = &templates[t];
                let old_id = stream.trim_start_matches("order-");
                // The first clone (the one the starts read) is today's; the others, days
                // back, evenly over the year.
                let back = time::Duration::days(k as i64 * SPREAD_DAYS / orders.max(1) as i64);
                let request = AppendRequest {
                    stream: format!("order-{new_id}"),
                    expected: ExpectedRevision::NoStream,
                    command_id: format!("bench-fill-{k}"),
                    events: list
                        .iter()
                        .map(|e| {
                            let mut clone = clone_event(e, old_id.as_bytes(), new_id.as_bytes());
                            clone.data = moved_back(&clone.data, back);
                            clone
                        })
                        .collect(),
                };
                let n = request.events.len() as u64;
                store.append(request).await.map(|_| n)
            }
        })
        .buffer_unordered(FILL_IN_FLIGHT);
    while let Some(n) = appends.next().await {
        written += n?;
        bar.set_position(written);
    }
    drop(appends);
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    rebuild::close(store).await?;
    Ok(Fill {
        events: written,
        orders,
        seconds,
        sample_order,
        events_per_order: longest as u64,
    })
}

/// Builds a data dir: the store, then its read model (measured as a rebuild).
async fn data_dir(
    template: &Path,
    scratch: &Path,
    name: &str,
    events: u64,
) -> anyhow::Result<(PathBuf, Fill, RebuildRow)> {
    let dir = scratch.join(name);
    let fill = fill(template, &dir, events).await?;
    eprintln!(
        "  {name}: {} events ({} cloned orders) written in {:.1} s",
        fill.events, fill.orders, fill.seconds
    );
    let row = install_read_model(&dir, scratch, &format!("cold-start store {name}")).await?;
    Ok((dir, fill, row))
}

/// Builds the read model of the store in `dir` (measured as a rebuild) and moves it in, with
/// the notification outbox, the ledger's runner and the audit witness caught up to the store's
/// head: as after a clean stop.
pub(super) async fn install_read_model(
    dir: &Path,
    scratch: &Path,
    label: &str,
) -> anyhow::Result<RebuildRow> {
    let (row, fresh) = rebuild::measure(label, dir, scratch).await?;
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", fresh.display()));
        if from.exists() {
            std::fs::rename(&from, dir.join(format!("read.db{suffix}")))?;
        }
    }
    // A restart finds the notification outbox caught up too (its events were notified before
    // the stop); without this, the started process would replay the whole log into it.
    let outbox_path = dir.join("outbox.db");
    let outbox = tokio::task::spawn_blocking(move || Outbox::open(&outbox_path)).await??;
    outbox.rewind(row.events).await?;
    drop(outbox);
    // And the ledger's runner, which looks at every event for check-outs to credit.
    let ledger_path = dir.join("ledger.db");
    let events = row.events;
    tokio::task::spawn_blocking(move || {
        diandan_ledger::runner::Checkpoint::open(&ledger_path)?.set(events)
    })
    .await??;
    // And the audit witness: every event a leaf, the last checkpoint signed at the stop.
    let store = rebuild::open(dir).await?;
    let witness = diandan_audit::Witness::open(dir, diandan_runtime::secrets::audit_key(dir)?)?;
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    witness.checkpoint(store.as_ref(), now_ms).await?;
    drop(witness);
    rebuild::close(store).await?;
    Ok(row)
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// (VmRSS, VmHWM) of a process, MB.
pub(super) fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub(super) async fn healthz(addr: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Ok(true))
    )
}

async fn grpc_health(url: &str) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let attempt = async {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_millis(200))
            .tcp_nodelay(true)
            .connect()
            .await?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        Ok::<_, anyhow::Error>(answer.into_inner().status == ServingStatus::Serving as i32)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Ok(true))
    )
}

async fn get_order(url: &str, order_id: &str) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let signer = TokenSigner::new(SECRET.as_bytes().to_vec());
    let client = crate::client::Client::new(
        diandan_proto::Upstreams::single(channel),
        token(&signer, "head-bench", Role::StationHead, Some("xianan")),
    );
    let view = client
        .orders()
        .get_order(client.request(
            pb::GetOrderRequest {
                order_id: order_id.to_owned(),
                min_position: 0,
            },
            None,
        ))
        .await?;
    drop(view);
    Ok(())
}

/// Polls until `probe` is true, every 2 ms, for up to 60 s; returns the time since `started`.
pub(super) async fn until<F: std::future::Future<Output = bool>>(
    started: Instant,
    mut probe: impl FnMut() -> F,
) -> anyhow::Result<Duration> {
    let deadline = started + Duration::from_secs(60);
    loop {
        if probe().await {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(Instant::now() < deadline, "no answer within 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `diandan up` (the build `exe`) spawned on the data dir `dir`, logging warnings only, reading
/// the bench's token secret from the dir; killed if dropped.
pub(super) fn spawn_up(
    exe: &Path,
    dir: &Path,
    grpc: &str,
    http: &str,
    stdout: Stdio,
) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(exe)
        .arg("up")
        .arg("--data-dir")
        .arg(dir)
        .args(["--grpc-addr", grpc, "--http-addr", http])
        .env("RUST_LOG", "warn")
        .env_remove("DIANDAN_TOKEN_SECRET")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

/// Stops a spawned process as an operator would (SIGTERM), killing it if it has not ended
/// within `grace`.
pub(super) async fn stop(child: &mut tokio::process::Child, grace: Duration) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        child.kill().await?;
    }
    Ok(())
}

async fn start_once(dir: &Path, order: Option<&str>) -> anyhow::Result<ColdStartRun> {
    let exe = std::env::current_exe()?;
    let (grpc_port, http_port) = (free_port()?, free_port()?);
    let grpc = format!("127.0.0.1:{grpc_port}");
    let http = format!("127.0.0.1:{http_port}");
    let url = format!("http://{grpc}");
    let started = Instant::now();
    let mut child = spawn_up(&exe, dir, &grpc, &http, Stdio::piped())?;
    let pid = child.id().unwrap_or(0);
    let stdout = child.stdout.take().expect("stdout is piped");
    let ready_line = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut ready = None;
        while let Ok(Some(line)) = lines.next_line().await {
            if ready.is_none() && line.starts_with("diandan ready") {
                ready = Some(started.elapsed());
            }
        }
        ready
    });
    let mut rss_at_health = 0.0;
    let (healthz_at, grpc_at) = tokio::join!(
        async {
            let at = until(started, || healthz(&http)).await;
            rss_at_health = memory_mb(pid).0;
            at
        },
        until(started, || grpc_health(&url)),
    );
    let (healthz_at, grpc_at) = (healthz_at?, grpc_at?);
    let first_read = match order {
        Some(order) => {
            get_order(&url, order).await?;
            Some(started.elapsed())
        }
        None => None,
    };
    tokio::time::sleep_until((started + healthz_at + Duration::from_secs(1)).into()).await;
    let (rss_settled, hwm) = memory_mb(pid);

    stop(&mut child, Duration::from_secs(15)).await?;
    let ready_line = tokio::time::timeout(Duration::from_secs(5), ready_line)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("`diandan up` never printed its ready line"))?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(ColdStartRun {
        ready_line_ms: ms(ready_line),
        healthz_ms: ms(healthz_at),
        grpc_health_ms: ms(grpc_at),
        first_read_ms: first_read.map(ms),
        rss_at_health_mb: rss_at_health,
        rss_settled_mb: rss_settled,
        hwm_mb: hwm,
    })
}

async fn starts(
    label: &str,
    dir: &Path,
    events: u64,
    order: Option<&str>,
) -> anyhow::Result<ColdStartRow> {
    let mut runs = Vec::new();
    for i in 0..STARTS {
        let bar = Progress::spinner(&format!("start {}/{STARTS}, {label}", i + 1));
        let run = start_once(dir, order).await?;
        bar.finish_and_clear();
        eprintln!(
            "  {label}, start {}: ready line {:.0} ms, /healthz {:.0} ms, gRPC health {:.0} ms, first GetOrder {}, RSS {:.1} MB (+1 s: {:.1} MB, peak {:.1} MB)",
            i + 1,
            run.ready_line_ms,
            run.healthz_ms,
            run.grpc_health_ms,
            run.first_read_ms
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms")),
            run.rss_at_health_mb,
            run.rss_settled_mb,
            run.hwm_mb
        );
        runs.push(run);
    }
    Ok(ColdStartRow {
        label: label.to_owned(),
        events,
        runs,
    })
}

/// The whole scenario: a directory-only store and an `events`-event store, each started
/// [`STARTS`] times.
pub async fn run(template: &Path, scratch: &Path, events: u64) -> anyhow::Result<ColdStartReport> {
    let (empty_dir, empty, _) = data_dir(template, scratch, "directory-only", 0).await?;
    let (loaded_dir, loaded, rebuild) = data_dir(template, scratch, "loaded", events).await?;
    let baseline = starts("directory only", &empty_dir, empty.events, None).await?;
    let loaded_row = starts(
        "loaded",
        &loaded_dir,
        loaded.events,
        loaded.sample_order.as_deref(),
    )
    .await?;
    // Memory at health, before any request, is what grows with the store if anything does.
    let (base_rss, loaded_rss) = (
        baseline.median_rss_at_health_mb(),
        loaded_row.median_rss_at_health_mb(),
    );
    let slope = ((loaded_rss - base_rss)
        / (loaded.events.saturating_sub(empty.events)).max(1) as f64)
        .max(0.0);
    let rss_extrapolated_mb =
        loaded_row.max_rss_mb() + slope * goals::RSS_EVENTS.saturating_sub(loaded.events) as f64;
    let queries = super::queries::run(template, &loaded_dir).await?;
    // The data dirs stay in `scratch`: removed with it, or kept (`--keep-data`).
    Ok(ColdStartReport {
        baseline,
        loaded: loaded_row,
        fill_seconds: loaded.seconds,
        orders_cloned: loaded.orders,
        events_per_order: loaded.events_per_order,
        rebuild,
        rss_extrapolated_mb,
        queries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_move_back_and_nothing_else_changes() {
        let day = time::Duration::days(1);
        let event = br#"{"at":"2026-12-02T22:04:31.250256261Z","type":"OrderTriaged","note":"say \"2026-12-02T00:00:00Z\"","clocks":{"started":[{"limit":"1 working day","warn_at":"2026-12-03T16:06:00+08:00"}]},"n":3}"#;
        assert_eq!(
            String::from_utf8(moved_back(event, day)).unwrap(),
            r#"{"at":"2026-12-01T22:04:31.250256261Z","type":"OrderTriaged","note":"say \"2026-12-02T00:00:00Z\"","clocks":{"started":[{"limit":"1 working day","warn_at":"2026-12-02T16:06:00+08:00"}]},"n":3}"#
        );
        assert_eq!(moved_back(event, time::Duration::ZERO), event.to_vec());
        assert_eq!(moved_back(b"", day), b"");
        assert_eq!(moved_back(br#"{"a":"2026"#, day), br#"{"a":"2026"#);
        assert_eq!(moved_back(b"\"", day), b"\"");
    }

    #[test]
    fn replaces_every_occurrence() {
        assert_eq!(replace_all(b"a-id-b-id", b"id", b"XY"), b"a-XY-b-XY");
        assert_eq!(replace_all(b"abc", b"", b"z"), b"abc");
        assert_eq!(replace_all(b"", b"x", b"y"), b"");
    }
}
