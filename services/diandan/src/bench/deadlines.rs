//! Scenario 9: a million pending deadlines (时限). `diandan up` is spawned on a data dir whose
//! log holds `--deadlines` placed orders, each with its triage deadline pending somewhere in
//! the next 30 days (so a million rows in the timers table), and measured: the start until
//! `/healthz` answers, resident memory, and how late the deadlines that come due while it runs
//! fire — 2,000 spread evenly over 10 s, then 2,000 due at the same millisecond (the first
//! minute of a working day, when the working-hours calendar lines deadlines up). Baseline in
//! the same run: the same start and the same 4,000 deadlines on a store holding only the
//! directory.
//!
//! The orders are real ones: an order placed through the gRPC API, cloned under new ids with
//! its timer's `warn_at`/`due_at` moved (one append per order). The pending ones are in the
//! read model before the start, as after a clean stop; the 4,000 that come due are appended
//! just before it, so the started process projects them itself. Lateness is read from the log
//! afterwards: each `DeadlineWarned` event's commit time minus the `warn_at` it fired for.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use diandan_proto::v1 as pb;
use diandan_proto::CommandResponse as _;
use diandan_store::SqliteStore;
use diandan_store::{AppendRequest, EventStore, ExpectedRevision, NewEvent, RecordedEvent};
use diandan_workflows::order::OrderEvent;
use diandan_workflows::Role;

use super::coldstart::{self, clone_event, free_port, healthz, memory_mb, until, Streams};
use super::flows::{self, RESIDENT, STATION};
use super::rebuild::{self, RebuildRow};
use super::{InProcess, Percentiles, Progress};
use crate::client::Client;
use crate::demo::token;

/// Pending deadlines in the large store unless `--deadlines` says otherwise.
pub const DEFAULT_PENDING: u64 = 1_000_000;
/// Deadlines that come due one after another while the process runs, evenly over [`SPREAD`].
const SPREAD_COUNT: usize = 2_000;
const SPREAD: Duration = Duration::from_secs(10);
/// Deadlines that come due at the same millisecond, [`BURST_AFTER`] after the spread ends.
const BURST_COUNT: usize = 2_000;
const BURST_AFTER: Duration = Duration::from_secs(2);
/// From appending the deadlines that come due until the first of them.
const LEAD: Duration = Duration::from_secs(10);
/// How long after the burst's due time every deadline must have fired.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// The pending deadlines come due between one hour and this many days ahead.
const HORIZON_DAYS: i64 = 30;
/// Appends in flight while filling (group commit batches them).
const FILL_IN_FLIGHT: usize = 256;
const HOUR_MS: i64 = 3_600_000;

/// How late one group of deadlines fired.
#[derive(Debug, Clone, Serialize)]
pub struct Lateness {
    pub expected: u64,
    pub fired: u64,
    /// From `warn_at` to the commit of its `DeadlineWarned` event.
    pub late: Percentiles,
}

/// One store started, its deadlines fired.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlinesRow {
    pub label: String,
    /// Deadlines pending beyond the run (rows in the timers table at start).
    pub pending: u64,
    pub events: u64,
    pub fill_seconds: f64,
    /// Building the read model of the pending orders (a rebuild).
    pub rebuild: Option<RebuildRow>,
    /// From spawning `diandan up` until `/healthz` answered.
    pub start_ms: f64,
    pub rss_at_health_mb: f64,
    /// VmRSS once every deadline that came due had fired.
    pub rss_after_mb: f64,
    pub hwm_mb: f64,
    /// The process's CPU from spawn until every deadline had fired, seconds.
    pub cpu_seconds: f64,
    pub spread: Lateness,
    pub burst: Lateness,
    /// From the burst's due time until its last deadline fired, ms.
    pub burst_drain_ms: f64,
}

/// Scenario 9's results.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlinesReport {
    pub baseline: DeadlinesRow,
    pub loaded: DeadlinesRow,
}

/// An order stream to clone, and which of its events schedules the timer to move.
struct Template {
    order_id: String,
    events: Vec<RecordedEvent>,
    timer_event: usize,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The order event `data` with the first clock it starts moved to `warn_at_ms` / `due_at_ms`,
/// written back as the engine writes events (`at` and `type` first: the one-pass decoding).
fn with_timer(data: &[u8], warn_at_ms: i64, due_at_ms: i64) -> anyhow::Result<Vec<u8>> {
    let at = |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    let mut event: OrderEvent = serde_json::from_slice(data)?;
    let timer = event
        .clocks
        .started
        .first_mut()
        .ok_or_else(|| anyhow::anyhow!("no timer in the event"))?;
    timer.warn_at = at(warn_at_ms)?;
    timer.due_at = at(due_at_ms)?;
    Ok(serde_json::to_vec(&event)?)
}

impl Template {
    /// The template's events under `new_id`, its timer warning at `warn_at_ms` and due four
    /// hours later.
    fn clone_as(&self, new_id: &str, warn_at_ms: i64) -> anyhow::Result<Vec<NewEvent>> {
        let (old, new) = (self.order_id.as_bytes(), new_id.as_bytes());
        self.events
            .iter()
            .enumerate()
            .map(|(k, event)| {
                let mut cloned = clone_event(event, old, new);
                if k == self.timer_event {
                    cloned.data = with_timer(&cloned.data, warn_at_ms, warn_at_ms + 4 * HOUR_MS)?;
                }
                Ok(cloned)
            })
            .collect()
    }
}

/// A store with the demo directory and one order placed through the gRPC API (its triage
/// deadline pending); returns its streams and the order as a template.
async fn template(dir: &Path) -> anyhow::Result<(Streams, Template)> {
    let server = InProcess::start(dir).await?;
    let resident = Client::new(
        diandan_proto::Upstreams::single(server.channel.clone()),
        token(&server.app.signer, RESIDENT, Role::Resident, None),
    );
    let spec = flows::spec();
    let place = pb::PlaceOrderRequest {
        station_id: STATION.into(),
        category: spec.category,
        description: spec.description,
        location: Some(pb::Location {
            lat: spec.lat,
            lng: spec.lng,
            address: spec.address,
        }),
        contact_phone: spec.phone,
        ..Default::default()
    };
    let order_id = resident
        .orders()
        .place_order(resident.request(place, None))
        .await?
        .into_inner()
        .into_ack()
        .order_id;
    server.stop().await?;
    let mut streams = coldstart::read_streams(dir).await?;
    let events = streams
        .orders
        .remove(&format!("order-{order_id}"))
        .ok_or_else(|| anyhow::anyhow!("the placed order is not in the store"))?;
    let timer_event = events
        .iter()
        .position(|e| {
            serde_json::from_slice::<OrderEvent>(&e.data)
                .is_ok_and(|event| !event.clocks.started.is_empty())
        })
        .ok_or_else(|| anyhow::anyhow!("the placed order scheduled no deadline"))?;
    Ok((
        streams,
        Template {
            order_id,
            events,
            timer_event,
        },
    ))
}

/// Appends one clone of the template per `(order id, warn_at)`; returns the events written.
async fn append_orders(
    store: &Arc<SqliteStore>,
    template: &Arc<Template>,
    orders: Vec<(String, i64)>,
    label: &str,
) -> anyhow::Result<u64> {
    let per_order = template.events.len() as u64;
    let bar = Progress::items(label, orders.len() as u64 * per_order, "events");
    let mut appends = futures::stream::iter(orders)
        .map(|(id, warn_at_ms)| {
            let (store, template) = (store.clone(), template.clone());
            async move {
                let request = AppendRequest {
                    stream: format!("order-{id}"),
                    expected: ExpectedRevision::NoStream,
                    command_id: format!("bench-deadline-{id}"),
                    events: template.clone_as(&id, warn_at_ms)?,
                };
                store.append(request).await?;
                Ok::<_, anyhow::Error>(per_order)
            }
        })
        .buffer_unordered(FILL_IN_FLIGHT);
    let mut written = 0;
    while let Some(n) = appends.next().await {
        written += n?;
        bar.set_position(written);
    }
    bar.finish_and_clear();
    Ok(written)
}

/// Warnings of the deadlines that came due, committed at or after `from`: order id → commit
/// time.
async fn warnings(dir: &Path, from: u64) -> anyhow::Result<HashMap<String, i64>> {
    let store = rebuild::open(dir).await?;
    let mut found = HashMap::new();
    let mut next = from;
    loop {
        let batch = store.read_all(next, 4096).await?;
        let Some(last) = batch.last() else { break };
        next = last.position + 1;
        for event in batch {
            if event.event_type == "DeadlineWarned" {
                if let Some(id) = event.stream.strip_prefix("order-") {
                    found.entry(id.to_owned()).or_insert(event.recorded_at_ms);
                }
            }
        }
    }
    rebuild::close(store).await?;
    Ok(found)
}

/// Rows of the timers table still to warn at or before `until_ms` (read-only, beside the
/// running process).
fn unwarned(read_db: &Path, until_ms: i64) -> Option<u64> {
    let conn = rusqlite::Connection::open_with_flags(
        read_db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    conn.busy_timeout(Duration::from_secs(1)).ok()?;
    conn.query_row(
        "SELECT COUNT(*) FROM timers WHERE next_phase = 'warn' AND next_fire_ms <= ?1",
        [until_ms],
        |r| r.get(0),
    )
    .ok()
}

fn lateness(due: &[(String, i64)], fired: &HashMap<String, i64>) -> Lateness {
    let mut late: Vec<u32> = due
        .iter()
        .filter_map(|(id, warn_at)| fired.get(id).map(|at| (at - warn_at).max(0)))
        .map(|ms| u32::try_from(ms.saturating_mul(1000)).unwrap_or(u32::MAX))
        .collect();
    Lateness {
        expected: due.len() as u64,
        fired: late.len() as u64,
        late: Percentiles::of_micros(&mut late),
    }
}

/// One store: `pending` deadlines beyond the run, then the start and the 4,000 that come due.
async fn row(
    label: &str,
    streams: &Streams,
    template: &Arc<Template>,
    scratch: &Path,
    pending: u64,
    keep_data: bool,
) -> anyhow::Result<DeadlinesRow> {
    let dir = scratch.join(format!("deadlines-{}", label.replace(' ', "-")));
    let started = Instant::now();
    let (store, mut events) = coldstart::new_store_with_directory(&dir, &streams.directory).await?;
    let now = now_ms();
    let horizon = HORIZON_DAYS * 24 * HOUR_MS;
    let far: Vec<(String, i64)> = (0..pending)
        .map(|i| {
            let ahead =
                HOUR_MS + (i128::from(horizon) * i128::from(i) / i128::from(pending)) as i64;
            (uuid::Uuid::new_v4().to_string(), now + ahead)
        })
        .collect();
    events += append_orders(&store, template, far, "filling: pending deadlines").await?;
    let fill_seconds = started.elapsed().as_secs_f64();
    rebuild::close(store).await?;
    let rebuild = if pending > 0 {
        Some(
            coldstart::install_read_model(&dir, scratch, &format!("deadlines store {label}"))
                .await?,
        )
    } else {
        coldstart::install_read_model(&dir, scratch, &format!("deadlines store {label}")).await?;
        None
    };

    // The deadlines that come due while the process runs.
    let store = rebuild::open(&dir).await?;
    let first_new = store.head_position().await? + 1;
    let first_due = now_ms() + LEAD.as_millis() as i64;
    let spread_ms = SPREAD.as_millis() as i64;
    let spread: Vec<(String, i64)> = (0..SPREAD_COUNT as i64)
        .map(|i| {
            let at = first_due + spread_ms * i / SPREAD_COUNT as i64;
            (uuid::Uuid::new_v4().to_string(), at)
        })
        .collect();
    let burst_at = first_due + spread_ms + BURST_AFTER.as_millis() as i64;
    let burst: Vec<(String, i64)> = (0..BURST_COUNT)
        .map(|_| (uuid::Uuid::new_v4().to_string(), burst_at))
        .collect();
    let mut soon = spread.clone();
    soon.extend(burst.iter().cloned());
    events += append_orders(&store, template, soon, "appending deadlines due soon").await?;
    rebuild::close(store).await?;
    anyhow::ensure!(
        now_ms() < first_due - 2_000,
        "appending the deadlines due soon took too long to measure their lateness"
    );

    // The start.
    let exe = super::http::server_binary()?;
    let (grpc, http) = (
        format!("127.0.0.1:{}", free_port()?),
        format!("127.0.0.1:{}", free_port()?),
    );
    let spawned = Instant::now();
    let mut child = coldstart::spawn_up(&exe, &dir, &grpc, &http, Stdio::null())?;
    let pid = child.id().unwrap_or(0);
    let start = until(spawned, || healthz(&http)).await?;
    let (rss_at_health_mb, _) = memory_mb(pid);
    let bar = Progress::spinner(&format!("{label}: deadlines coming due"));
    let read_db = dir.join("read.db");
    let limit = burst_at + DRAIN_LIMIT.as_millis() as i64;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let all_due = now_ms() > burst_at;
        if all_due && unwarned(&read_db, burst_at) == Some(0) {
            break;
        }
        if now_ms() > limit {
            eprintln!("  {label}: not every deadline fired within {DRAIN_LIMIT:?} of the burst");
            break;
        }
    }
    bar.finish_and_clear();
    let (rss_after_mb, hwm_mb) = memory_mb(pid);
    let cpu_seconds = super::http::cpu_seconds(&pid.to_string());
    coldstart::stop(&mut child, Duration::from_secs(15)).await?;

    let fired = warnings(&dir, first_new).await?;
    let spread = lateness(&spread, &fired);
    let burst_drain_ms = burst
        .iter()
        .filter_map(|(id, _)| fired.get(id))
        .map(|at| (at - burst_at) as f64)
        .fold(0.0, f64::max);
    let burst = lateness(&burst, &fired);
    if !keep_data {
        std::fs::remove_dir_all(&dir)?;
    }
    let row = DeadlinesRow {
        label: label.to_owned(),
        pending,
        events,
        fill_seconds,
        rebuild,
        start_ms: super::ms(start),
        rss_at_health_mb,
        rss_after_mb,
        hwm_mb,
        cpu_seconds,
        spread,
        burst,
        burst_drain_ms,
    };
    eprintln!(
        "  {label}: {} pending, start {:.0} ms, RSS {:.1} → {:.1} MB (peak {:.1}); spread {}/{} fired, late p50 {:.0} / p99 {:.0} / max {:.0} ms; burst {}/{} fired, late p50 {:.0} / p99 {:.0} ms, drained in {:.0} ms",
        row.pending,
        row.start_ms,
        row.rss_at_health_mb,
        row.rss_after_mb,
        row.hwm_mb,
        row.spread.fired,
        row.spread.expected,
        row.spread.late.p50_ms,
        row.spread.late.p99_ms,
        row.spread.late.max_ms,
        row.burst.fired,
        row.burst.expected,
        row.burst.late.p50_ms,
        row.burst.late.p99_ms,
        row.burst_drain_ms
    );
    Ok(row)
}

/// The whole scenario: the directory-only baseline, then `pending` deadlines. `keep_data`
/// keeps each store's data dir (`--keep-data`: a million one-event orders to profile a
/// rebuild on).
pub async fn run(scratch: &Path, pending: u64, keep_data: bool) -> anyhow::Result<DeadlinesReport> {
    let (streams, template) = template(&scratch.join("deadlines-template")).await?;
    let template = Arc::new(template);
    let baseline = row("directory only", &streams, &template, scratch, 0, keep_data).await?;
    let loaded = row("pending", &streams, &template, scratch, pending, keep_data).await?;
    Ok(DeadlinesReport { baseline, loaded })
}

#[cfg(test)]
mod tests {
    use super::*;
    use diandan_workflows::definition::Timer;
    use diandan_workflows::order::OrderChange;

    #[test]
    fn moves_the_timer_and_nothing_else() {
        let t = |s: &str| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        let mut event = OrderEvent::new(t("2026-12-01T08:00:00Z"), OrderChange::OrderTriaged);
        event.clocks.started.push(Timer {
            deadline: "dispatch".into(),
            limit: "1 working day".into(),
            started_at: t("2026-12-01T08:00:00Z"),
            warn_at: t("2026-12-01T12:00:00Z"),
            due_at: t("2026-12-02T08:00:00Z"),
        });
        let data = serde_json::to_vec(&event).unwrap();
        let moved = with_timer(&data, 1_796_126_625_123, 1_796_126_625_123 + HOUR_MS).unwrap();
        assert!(moved.starts_with(br#"{"at":"2026-12-01T08:00:00Z","type":"OrderTriaged""#));
        let back: OrderEvent = serde_json::from_slice(&moved).unwrap();
        let timer = &back.clocks.started[0];
        assert_eq!(timer.warn_at, t("2026-12-01T12:03:45.123Z"));
        assert_eq!(timer.due_at, t("2026-12-01T13:03:45.123Z"));
        assert_eq!(timer.started_at, t("2026-12-01T08:00:00Z"));
        assert_eq!((back.at, back.change), (event.at, event.change));
        let untimed = serde_json::to_vec(&OrderEvent::new(back.at, OrderChange::OrderTriaged));
        assert!(with_timer(&untimed.unwrap(), 0, 0).is_err());
    }
}
