//! Scenario 2: complete four-order flows through the real gRPC server, with every command's
//! latency: closed loop at the maximum, then open loop at 80% of it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tonic::transport::Channel;

use diandan_proto::v1 as pb;
use diandan_proto::CommandResponse as _;
use diandan_workflows::Role;

use super::{micros, InProcess, Percentiles, Progress};
use crate::client::{Cast, Client, OrderSpec};
use crate::demo::token;

/// The nine commands of one flow, in order.
pub const COMMANDS: [&str; 9] = [
    "PlaceOrder",
    "TriageOrder",
    "DispatchOrder",
    "AcceptOrder",
    "CheckIn",
    "CheckOut",
    "CompleteOrder",
    "ReviewOrder",
    "CloseOrder",
];

/// Where the bench's orders are placed and which team serves them (the demo district's).
pub(super) const STATION: &str = "chezhanlu";
pub(super) const TEAM: &str = "zhidui-chezhanlu";
/// Who plays the flows' roles (tokens minted for them; the volunteer is in [`TEAM`]).
pub(super) const RESIDENT: &str = "r-bench";
pub(super) const HEAD: &str = "head-bench";
pub(super) const VOLUNTEER: &str = "v-wangsen";

/// Flows the closed loop keeps in flight.
pub const CONCURRENCY: usize = 64;
/// The open loop skips a start rather than keep more flows than this in flight.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Share of the closed loop's maximum the open loop offers.
pub const LOAD: f64 = 0.8;
/// Width of one point of the throughput timeline.
const TIMELINE_BUCKET: Duration = Duration::from_millis(500);

/// One command's latency over a run.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRow {
    pub command: &'static str,
    pub latency: Percentiles,
    pub errors: u64,
}

/// One run of flows.
#[derive(Debug, Clone, Serialize)]
pub struct FlowRow {
    /// Flows kept in flight (closed loop); 0 for the open loop.
    pub concurrency: usize,
    /// Flows started per second (open loop); 0 for the closed loop.
    pub offered_rate: f64,
    pub seconds: f64,
    /// Flows completed (all 9 commands acknowledged).
    pub flows: u64,
    pub failed_flows: u64,
    pub flows_per_sec: f64,
    /// Commands acknowledged per second (failed flows' successful commands included).
    pub commands_per_sec: f64,
    /// One flow, from its (scheduled) start to its last acknowledgement.
    pub flow: Percentiles,
    /// One command, sent to acknowledged, all kinds together.
    pub command: Percentiles,
    pub per_command: Vec<CommandRow>,
    /// Open loop: starts skipped because too many flows were in flight.
    pub skipped: u64,
    /// Open loop: how late flows started after their scheduled time, p99.
    pub late_starts_p99_ms: f64,
    pub first_error: Option<String>,
    /// (seconds since start, flows completed per second) every 0.5 s.
    pub timeline: Vec<(f64, f64)>,
    /// Command latency counts over `histogram_edges_ms`.
    pub histogram: Vec<u64>,
}

/// gRPC health-check round trips: the transport's ceiling in the same process.
#[derive(Debug, Clone, Serialize)]
pub struct PingRow {
    pub concurrency: usize,
    pub calls: u64,
    pub seconds: f64,
    pub calls_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Scenario 2's results.
#[derive(Debug, Clone, Serialize)]
pub struct FlowsReport {
    pub ping: PingRow,
    pub max: FlowRow,
    pub offered: FlowRow,
    /// Events in the store when the flows were done.
    pub events_stored: u64,
    /// Events the measured flows appended, per completed flow.
    pub events_per_flow: f64,
}

/// What one flow measured.
#[derive(Debug, Clone, Copy)]
struct FlowSample {
    /// Since the run started: when the flow was due to start, and when it ended.
    scheduled_us: u64,
    started_us: u64,
    ended_us: u64,
    /// Each command's latency; only the first `done` are set.
    commands_us: [u32; 9],
    done: u8,
    failed: bool,
}

/// The server in this process, seeded with the demo district, and the people of one flow.
struct Harness {
    server: InProcess,
    driver: Grpc,
}

impl Harness {
    async fn start(data_dir: &Path) -> anyhow::Result<Harness> {
        let server = InProcess::start(data_dir).await?;
        let upstreams = diandan_proto::Upstreams::single(server.channel.clone());
        let signer = &server.app.signer;
        let cast = Cast {
            resident: Client::new(
                upstreams.clone(),
                token(signer, RESIDENT, Role::Resident, None),
            ),
            head: Client::new(
                upstreams.clone(),
                token(signer, HEAD, Role::StationHead, Some(STATION)),
            ),
            volunteer: Client::new(
                upstreams.clone(),
                token(signer, VOLUNTEER, Role::Volunteer, None),
            ),
            team_id: TEAM.into(),
            station_id: STATION.into(),
        };
        Ok(Harness {
            server,
            driver: Grpc { cast, spec: spec() },
        })
    }

    async fn stop(self) -> anyhow::Result<u64> {
        self.server.stop().await
    }
}

pub(super) fn spec() -> OrderSpec {
    OrderSpec {
        category: "repair".into(),
        description: "基准测试：楼道灯坏了，请帮忙更换。".into(),
        lat: 29.8702,
        lng: 114.2851,
        address: "车站路 41 号".into(),
        phone: "13912345678".into(),
        rating: 5,
        comment: "满意".into(),
    }
}

fn location(spec: &OrderSpec) -> Option<pb::Location> {
    Some(pb::Location {
        lat: spec.lat,
        lng: spec.lng,
        address: spec.address.clone(),
    })
}

/// Times one call; on failure, remembers which.
async fn timed<T>(
    latencies: &mut [u32; 9],
    done: &mut u8,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    let sent = Instant::now();
    let result = call.await;
    latencies[*done as usize] = micros(sent.elapsed());
    let answer = result?.into_inner();
    *done += 1;
    Ok(answer)
}

/// [`crate::client::drive_order`] to the end, with each command timed.
async fn timed_flow(
    cast: &Cast,
    spec: &OrderSpec,
    latencies: &mut [u32; 9],
    done: &mut u8,
) -> Result<(), tonic::Status> {
    let (resident, head, volunteer) = (&cast.resident, &cast.head, &cast.volunteer);
    let place = pb::PlaceOrderRequest {
        station_id: cast.station_id.clone(),
        category: spec.category.clone(),
        description: spec.description.clone(),
        location: location(spec),
        contact_phone: spec.phone.clone(),
        ..Default::default()
    };
    let ack = timed(
        latencies,
        done,
        resident.orders().place_order(resident.request(place, None)),
    )
    .await?
    .into_ack();
    let order_id = ack.order_id;
    let m = pb::TriageOrderRequest {
        order_id: order_id.clone(),
        accept: true,
        ..Default::default()
    };
    timed(
        latencies,
        done,
        head.dispatch().triage_order(head.request(m, None)),
    )
    .await?;
    let m = pb::DispatchOrderRequest {
        order_id: order_id.clone(),
        team_id: cast.team_id.clone(),
        ..Default::default()
    };
    timed(
        latencies,
        done,
        head.dispatch().dispatch_order(head.request(m, None)),
    )
    .await?;
    let m = pb::AcceptOrderRequest {
        order_id: order_id.clone(),
        team_id: cast.team_id.clone(),
        ..Default::default()
    };
    timed(
        latencies,
        done,
        volunteer
            .volunteers()
            .accept_order(volunteer.request(m, None)),
    )
    .await?;
    let m = pb::CheckInRequest {
        order_id: order_id.clone(),
        location: location(spec),
        ..Default::default()
    };
    timed(
        latencies,
        done,
        volunteer.volunteers().check_in(volunteer.request(m, None)),
    )
    .await?;
    let m = pb::CheckOutRequest {
        order_id: order_id.clone(),
        location: location(spec),
        ..Default::default()
    };
    timed(
        latencies,
        done,
        volunteer.volunteers().check_out(volunteer.request(m, None)),
    )
    .await?;
    let m = pb::CompleteOrderRequest {
        order_id: order_id.clone(),
        note: format!("已完成：{}", spec.description),
        ..Default::default()
    };
    timed(
        latencies,
        done,
        volunteer
            .volunteers()
            .complete_order(volunteer.request(m, None)),
    )
    .await?;
    let m = pb::ReviewOrderRequest {
        order_id: order_id.clone(),
        rating: spec.rating,
        comment: spec.comment.clone(),
        ..Default::default()
    };
    timed(
        latencies,
        done,
        resident.reviews().review_order(resident.request(m, None)),
    )
    .await?;
    let m = pb::CloseOrderRequest {
        order_id,
        ..Default::default()
    };
    timed(
        latencies,
        done,
        head.reviews().close_order(head.request(m, None)),
    )
    .await?;
    Ok(())
}

/// One way of driving a flow's nine commands: gRPC to the server in this process, or HTTP to
/// a `diandan up` in another (scenario 8).
pub(super) trait Driver: Clone + Send + Sync + 'static {
    /// Runs the nine commands in order, each timed into `latencies[done]` and counted in
    /// `done` once acknowledged; the error names what the server answered.
    fn drive<'a>(
        &'a self,
        latencies: &'a mut [u32; 9],
        done: &'a mut u8,
    ) -> futures::future::BoxFuture<'a, Result<(), String>>;
}

/// The flows scenario's driver: the gRPC API of the server in this process.
#[derive(Clone)]
struct Grpc {
    cast: Cast,
    spec: OrderSpec,
}

impl Driver for Grpc {
    fn drive<'a>(
        &'a self,
        latencies: &'a mut [u32; 9],
        done: &'a mut u8,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            timed_flow(&self.cast, &self.spec, latencies, done)
                .await
                .map_err(|status| format!("{:?} {}", status.code(), status.message()))
        })
    }
}

/// Shared by one run's flows: counters for progress and the first error.
#[derive(Default)]
struct Tally {
    completed: Arc<AtomicU64>,
    first_error: std::sync::Mutex<Option<String>>,
}

async fn one_flow(
    driver: &impl Driver,
    epoch: Instant,
    scheduled: Instant,
    tally: &Tally,
) -> FlowSample {
    let started = Instant::now();
    let mut commands_us = [0u32; 9];
    let mut done = 0u8;
    let result = driver.drive(&mut commands_us, &mut done).await;
    let ended = Instant::now();
    if let Err(error) = &result {
        let mut first = tally.first_error.lock().expect("not poisoned");
        if first.is_none() {
            *first = Some(format!("{}: {error}", COMMANDS[done as usize]));
        }
    } else {
        tally.completed.fetch_add(1, Ordering::Relaxed);
    }
    let since = |t: Instant| t.saturating_duration_since(epoch).as_micros() as u64;
    FlowSample {
        scheduled_us: since(scheduled),
        started_us: since(started),
        ended_us: since(ended),
        commands_us,
        done,
        failed: result.is_err(),
    }
}

/// `concurrency` flows in flight, each starting the next as soon as it ends, for `window`.
pub(super) async fn closed_loop(
    driver: &impl Driver,
    concurrency: usize,
    window: Duration,
) -> anyhow::Result<FlowRow> {
    let tally = Arc::new(Tally::default());
    let progress = Progress::window(
        &format!("closed loop, {concurrency} in flight"),
        window,
        Some(tally.completed.clone()),
        "flows",
    );
    let epoch = Instant::now();
    let deadline = epoch + window;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (driver, tally) = (driver.clone(), tally.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let now = Instant::now();
                    samples.push(one_flow(&driver, epoch, now, &tally).await);
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await?);
    }
    let seconds = epoch.elapsed().as_secs_f64();
    progress.finish();
    let first_error = tally.first_error.lock().expect("not poisoned").take();
    Ok(summarize(
        concurrency,
        0.0,
        seconds,
        samples,
        0,
        first_error,
    ))
}

/// Flows started at `rate` per second for `window`, whatever the ones before are doing.
pub(super) async fn open_loop(
    driver: &impl Driver,
    rate: f64,
    window: Duration,
) -> anyhow::Result<FlowRow> {
    let tally = Arc::new(Tally::default());
    let progress = Progress::window(
        &format!("open loop, {rate:.0} flows/s"),
        window,
        Some(tally.completed.clone()),
        "flows",
    );
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let epoch = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut skipped = 0u64;
    for i in 0u32.. {
        let due = epoch + period * i;
        if due >= epoch + window {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            skipped += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (driver, tally, in_flight, tx) =
            (driver.clone(), tally.clone(), in_flight.clone(), tx.clone());
        tokio::spawn(async move {
            let sample = one_flow(&driver, epoch, due, &tally).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(sample);
        });
    }
    drop(tx);
    let mut samples = Vec::new();
    while let Some(sample) = rx.recv().await {
        samples.push(sample);
    }
    let seconds = epoch.elapsed().as_secs_f64();
    progress.finish();
    let first_error = tally.first_error.lock().expect("not poisoned").take();
    Ok(summarize(0, rate, seconds, samples, skipped, first_error))
}

/// Bucket edges of the command latency histogram, ms: 10 per decade from 10 µs to 100 s.
pub fn histogram_edges_ms() -> Vec<f64> {
    (0..=70)
        .map(|i| 10f64.powf(-2.0 + i as f64 / 10.0))
        .collect()
}

fn bucket(us: u32) -> usize {
    let ms = us.max(1) as f64 / 1000.0;
    (((ms.log10() + 2.0) * 10.0).floor().max(0.0) as usize).min(69)
}

fn summarize(
    concurrency: usize,
    offered_rate: f64,
    seconds: f64,
    samples: Vec<FlowSample>,
    skipped: u64,
    first_error: Option<String>,
) -> FlowRow {
    let mut per_kind: Vec<Vec<u32>> = vec![Vec::new(); 9];
    let mut errors = [0u64; 9];
    let mut all = Vec::new();
    let mut flow_us = Vec::new();
    let mut late_us = Vec::new();
    let mut histogram = vec![0u64; 70];
    let buckets = (seconds / TIMELINE_BUCKET.as_secs_f64()).ceil() as usize;
    let mut timeline = vec![0u64; buckets.max(1)];
    let (mut flows, mut failed) = (0u64, 0u64);
    for s in &samples {
        for (kind, &us) in s.commands_us.iter().enumerate().take(s.done as usize) {
            per_kind[kind].push(us);
            all.push(us);
            histogram[bucket(us)] += 1;
        }
        late_us.push(u32::try_from(s.started_us - s.scheduled_us).unwrap_or(u32::MAX));
        if s.failed {
            failed += 1;
            errors[s.done as usize] += 1;
        } else {
            flows += 1;
            flow_us.push(u32::try_from(s.ended_us - s.scheduled_us).unwrap_or(u32::MAX));
            let at = (s.ended_us as f64 / 1e6 / TIMELINE_BUCKET.as_secs_f64()) as usize;
            if let Some(b) = timeline.get_mut(at) {
                *b += 1;
            }
        }
    }
    let width = TIMELINE_BUCKET.as_secs_f64();
    FlowRow {
        concurrency,
        offered_rate,
        seconds,
        flows,
        failed_flows: failed,
        flows_per_sec: flows as f64 / seconds,
        commands_per_sec: all.len() as f64 / seconds,
        flow: Percentiles::of_micros(&mut flow_us),
        command: Percentiles::of_micros(&mut all),
        per_command: COMMANDS
            .iter()
            .zip(per_kind.iter_mut())
            .zip(errors)
            .map(|((&command, samples), errors)| CommandRow {
                command,
                latency: Percentiles::of_micros(samples),
                errors,
            })
            .collect(),
        skipped,
        late_starts_p99_ms: Percentiles::of_micros(&mut late_us).p99_ms,
        first_error,
        timeline: timeline
            .iter()
            .enumerate()
            .map(|(i, &n)| ((i as f64 + 0.5) * width, n as f64 / width))
            .collect(),
        histogram,
    }
}

/// `concurrency` tasks calling the gRPC health check back to back for `window`.
async fn grpc_ping(
    channel: Channel,
    concurrency: usize,
    window: Duration,
) -> anyhow::Result<PingRow> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let client = HealthClient::new(channel);
    round_trips("gRPC health", concurrency, window, move || {
        let mut client = client.clone();
        async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| ())
        }
    })
    .await
}

/// A baseline: `concurrency` tasks making the round trip `call` back to back for `window`.
pub(super) async fn round_trips<F, Fut, E>(
    label: &str,
    concurrency: usize,
    window: Duration,
    call: F,
) -> anyhow::Result<PingRow>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let calls = Arc::new(AtomicU64::new(0));
    let progress = Progress::window(
        &format!("{label}, {concurrency} in flight"),
        window,
        Some(calls.clone()),
        "calls",
    );
    let started = Instant::now();
    let deadline = started + window;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (call, calls) = (call.clone(), calls.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    call().await?;
                    latencies.push(micros(sent.elapsed()));
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, E>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    let p = Percentiles::of_micros(&mut latencies);
    Ok(PingRow {
        concurrency,
        calls: p.count,
        seconds,
        calls_per_sec: p.count as f64 / seconds,
        p50_ms: p.p50_ms,
        p99_ms: p.p99_ms,
    })
}

pub(super) fn print_row(label: &str, r: &FlowRow) {
    eprintln!(
        "  {label}: {} flows in {:.1} s = {:.1} flows/s ({:.0} commands/s); command p50 {:.2} ms p99 {:.2} ms; flow p99 {:.1} ms; {} failed",
        r.flows,
        r.seconds,
        r.flows_per_sec,
        r.commands_per_sec,
        r.command.p50_ms,
        r.command.p99_ms,
        r.flow.p99_ms,
        r.failed_flows
    );
    if let Some(e) = &r.first_error {
        eprintln!("    first error: {e}");
    }
}

/// The whole scenario, on a fresh server whose data lives in `data_dir`.
pub async fn run(
    data_dir: &Path,
    window: Duration,
    ping_window: Duration,
) -> anyhow::Result<FlowsReport> {
    let harness = Harness::start(data_dir).await?;
    eprintln!(
        "  server up on {}, demo district seeded",
        harness.server.bound.grpc
    );
    let ping = grpc_ping(harness.server.channel.clone(), CONCURRENCY, ping_window).await?;
    eprintln!(
        "  baseline gRPC health check: {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms",
        ping.calls_per_sec, ping.p50_ms, ping.p99_ms
    );
    let seeded = harness.server.app.store.head_position().await?;
    let max = closed_loop(&harness.driver, CONCURRENCY, window).await?;
    print_row("max (closed loop)", &max);
    let rate = (max.flows_per_sec * LOAD).max(1.0);
    let offered = open_loop(&harness.driver, rate, window).await?;
    print_row(&format!("{:.0}% (open loop)", LOAD * 100.0), &offered);
    let events_stored = harness.stop().await?;
    let events_per_flow = events_stored.saturating_sub(seeded) as f64
        / (max.flows + max.failed_flows + offered.flows + offered.failed_flows).max(1) as f64;
    Ok(FlowsReport {
        ping,
        max,
        offered,
        events_stored,
        events_per_flow,
    })
}

/// A short run, only to have real order events in `data_dir` when the flows are not measured.
pub async fn template(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let harness = Harness::start(data_dir).await?;
    let row = closed_loop(&harness.driver, 16, Duration::from_secs(2)).await?;
    anyhow::ensure!(row.flows > 0, "no flow completed: {:?}", row.first_error);
    harness.stop().await?;
    Ok(data_dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_match_their_edges() {
        let edges = histogram_edges_ms();
        assert_eq!(edges.len(), 71);
        for us in [1u32, 10, 99, 1_000, 1_234, 20_000, 999_999, u32::MAX] {
            let b = bucket(us);
            let ms = us as f64 / 1000.0;
            assert!(ms < edges[b + 1] || b == 69, "{us} µs in bucket {b}");
            assert!(ms >= edges[b] * 0.999 || b == 0, "{us} µs in bucket {b}");
        }
    }
}
