//! Scenario 7: what tamper evidence and sealing cost, each against the same run with it off —
//! durable appends with and without the hash chain; placements (the command that seals an
//! address and a number) with and without sealing; the projection rebuild over both logs —
//! and `audit verify` events/s over the sealed log.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use diandan_runtime::auth::{Claims, TokenSigner};
use diandan_runtime::{App, RequestContext};
use diandan_store::bench::durable_appends_with;
use diandan_store::{EventStore, SqliteStore};
use diandan_workflows::order::Action;
use diandan_workflows::permissions::Scope;
use diandan_workflows::validate::Location;
use diandan_workflows::{Registry, Role};

use super::Progress;

/// Concurrent writers and placers.
const CONCURRENCY: usize = 16;

/// Distinct residents the placements cycle through (each gets a key on their first order).
const RESIDENTS: u64 = 1000;

/// What the audit trail and sealing cost.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub writers: usize,
    pub chained_appends_per_sec: f64,
    /// Baseline: the same appends through the same store with the chain off.
    pub unchained_appends_per_sec: f64,
    /// Chained ÷ unchained.
    pub append_ratio: f64,
    pub sealed_placements: u64,
    pub sealed_placements_per_sec: f64,
    /// Baseline: the same placements with sealing off.
    pub plain_placements_per_sec: f64,
    /// Sealed ÷ plain.
    pub placement_ratio: f64,
    pub sealed_rebuild_events_per_sec: f64,
    /// Baseline: rebuilding the log the unsealed placements wrote.
    pub plain_rebuild_events_per_sec: f64,
    /// Sealed ÷ plain.
    pub rebuild_ratio: f64,
    pub verify_events: u64,
    /// `audit verify` over the sealed log: read, re-hash every event, build the Merkle tree.
    pub verify_events_per_sec: f64,
    /// Minutes 10,000,000 events take at that rate.
    pub verify_10m_minutes: f64,
}

async fn placements(dir: &Path, sealing: bool, window: Duration) -> anyhow::Result<(u64, f64)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("events.db");
    let store: Arc<dyn EventStore> =
        Arc::new(tokio::task::spawn_blocking(move || SqliteStore::open(path)).await??);
    let mut app = App::open(
        store.clone(),
        dir,
        TokenSigner::new(b"bench-audit-secret".to_vec()),
        false,
        Registry::builtin(),
    )?;
    app.sealing = sealing;
    let label = if sealing {
        "placements, sealed"
    } else {
        "placements, plain"
    };
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::window(label, window, Some(done.clone()), "placements");
    let started = Instant::now();
    let deadline = started + window;
    let tasks: Vec<_> = (0..CONCURRENCY as u64)
        .map(|worker| {
            let (app, done) = (app.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let resident = format!("r-bench-{}", (worker * 7919 + n) % RESIDENTS);
                    let command = format!("bench-{worker}-{n}");
                    let ctx = RequestContext {
                        claims: Claims {
                            sub: resident,
                            role: Role::Resident,
                            node: None,
                            acc: None,
                            exp: i64::MAX,
                        },
                        scope: Scope::Own,
                        command_id: command.clone(),
                        correlation_id: command.clone(),
                    };
                    let action = Action::Place {
                        order_id: command.clone(),
                        station_id: "yongfu-lane".into(),
                        category: "repair".into(),
                        description: "楼道灯不亮，请帮忙修理。".into(),
                        location: Location {
                            lat: 29.8711,
                            lng: 114.2840,
                            address: "永福巷 12 号 3 单元".into(),
                        },
                        contact_phone: "13812345678".into(),
                        wanted_time: None,
                        on_behalf_of: None,
                        required_volunteers: None,
                        workflow: None,
                    };
                    app.execute(&ctx, &command, action, None).await?;
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    progress.finish();
    drop(app);
    tokio::task::spawn_blocking(move || drop(store)).await?;
    Ok((total, rate))
}

async fn rebuild_rate(dir: &Path, scratch: &Path, name: &str) -> anyhow::Result<f64> {
    let store = super::rebuild::open(dir).await?;
    let events = store.head_position().await?;
    let path = scratch.join(format!("audit-rebuild-{name}.db"));
    let started = Instant::now();
    drop(diandan_runtime::projections::rebuild(store.as_ref(), &path, |_, _| {}).await?);
    let rate = events as f64 / started.elapsed().as_secs_f64();
    super::rebuild::close(store).await?;
    Ok(rate)
}

async fn verify_rate(dir: &Path) -> anyhow::Result<(u64, f64)> {
    let store = super::rebuild::open(dir).await?;
    let args = crate::audit::VerifyArgs {
        data_dir: dir.to_owned(),
        key: None,
        held: Vec::new(),
        progress: false,
    };
    let started = Instant::now();
    let report = crate::audit::verify(store.as_ref(), &args).await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.findings.is_empty(),
        "the bench's own log does not verify: {:?}",
        report.findings
    );
    super::rebuild::close(store).await?;
    Ok((report.events, report.events as f64 / seconds))
}

/// Runs the scenario in `scratch`, each half of a comparison for `window`.
pub async fn run(scratch: &Path, window: Duration) -> anyhow::Result<AuditReport> {
    let chained = durable_appends_with(scratch, CONCURRENCY, window, 256, true).await?;
    let unchained = durable_appends_with(scratch, CONCURRENCY, window, 256, false).await?;
    eprintln!(
        "  appends ({CONCURRENCY} writers): chained {:.0}/s, unchained {:.0}/s",
        chained.events_per_sec, unchained.events_per_sec
    );
    let sealed_dir = scratch.join("audit-sealed");
    let plain_dir = scratch.join("audit-plain");
    let (sealed_placements, sealed) = placements(&sealed_dir, true, window).await?;
    let (_, plain) = placements(&plain_dir, false, window).await?;
    eprintln!("  placements: sealed {sealed:.0}/s, plain {plain:.0}/s");
    let sealed_rebuild = rebuild_rate(&sealed_dir, scratch, "sealed").await?;
    let plain_rebuild = rebuild_rate(&plain_dir, scratch, "plain").await?;
    eprintln!(
        "  rebuild: sealed log {sealed_rebuild:.0} events/s, plain log {plain_rebuild:.0} events/s"
    );
    // The witness of the sealed log, as the running system keeps it, then the whole check.
    {
        let store = super::rebuild::open(&sealed_dir).await?;
        let key = diandan_runtime::secrets::audit_key(&sealed_dir)?;
        let witness = diandan_audit::Witness::open(&sealed_dir, key)?;
        witness.checkpoint(store.as_ref(), 0).await?;
        super::rebuild::close(store).await?;
    }
    let (verify_events, verify) = verify_rate(&sealed_dir).await?;
    eprintln!("  audit verify: {verify_events} events at {verify:.0} events/s");
    Ok(AuditReport {
        writers: CONCURRENCY,
        chained_appends_per_sec: chained.events_per_sec,
        unchained_appends_per_sec: unchained.events_per_sec,
        append_ratio: chained.events_per_sec / unchained.events_per_sec.max(1e-9),
        sealed_placements,
        sealed_placements_per_sec: sealed,
        plain_placements_per_sec: plain,
        placement_ratio: sealed / plain.max(1e-9),
        sealed_rebuild_events_per_sec: sealed_rebuild,
        plain_rebuild_events_per_sec: plain_rebuild,
        rebuild_ratio: sealed_rebuild / plain_rebuild.max(1e-9),
        verify_events,
        verify_events_per_sec: verify,
        verify_10m_minutes: 10_000_000.0 / verify.max(1e-9) / 60.0,
    })
}
