//! The split deployment: every part of diandan its own process (`diandan serve …`), the store
//! and the bus on a real `nats-server` this test starts (random ports, temp dirs) and stops.

#[path = "support/faults.rs"]
mod faults;
#[path = "../services/store-jetstream/tests/support/mod.rs"]
mod nats;
mod support;

use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use tonic::transport::Endpoint;

use diandan::client::{drive_order, Cast, Client, OrderSpec, Stage};
use diandan_proto::Upstreams;
use diandan_store::EventStore;
use diandan_store_jetstream::{JetStreamConfig, JetStreamStore};
use support::{
    part_url as url, seed_split_demo, serve_split, yongfu_order, Part, SplitParts, User, LOCATION,
    SPLIT_SECRET as SECRET,
};

/// A token from the deployment's own development login (its parts run with `DIANDAN_DEV`):
/// no token is made by hand.
async fn sign_in(upstreams: &Upstreams, user: &str, role: &str, node: &str) -> String {
    diandan_proto::v1::identity_service_client::IdentityServiceClient::new(
        upstreams.volunteers.clone(),
    )
    .dev_login(diandan_proto::v1::DevLoginRequest {
        role: role.into(),
        user_id: user.into(),
        org_node: node.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("dev login {role} {user}: {e}"))
    .into_inner()
    .token
}

async fn all_events(store: &dyn EventStore) -> u64 {
    let (mut count, mut from) = (0u64, 1u64);
    loop {
        let batch = store.read_all(from, 1000).await.unwrap();
        let Some(last) = batch.last() else {
            return count;
        };
        count += batch.len() as u64;
        from = last.position + 1;
    }
}

/// The tests of this file each run a whole deployment (a dozen processes); one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every part its own process on one nats-server, the demo seeded through the services.
struct Deployment<B = nats::NatsServer> {
    nats: B,
    tmp: tempfile::TempDir,
    relay: Part,
    projections: Vec<Part>,
    orders: Part,
    dispatch: Part,
    volunteers: Part,
    reviews: Part,
    stats: Part,
    gateway: Part,
    upstreams: Upstreams,
}

async fn deploy(binary: &nats::NatsServerBinary) -> Deployment {
    let nats = nats::NatsServer::start(binary).await;
    let url = nats.url.clone();
    deploy_on(nats, &url).await
}

/// Every part on the server `broker` runs at `nats_url`.
async fn deploy_on<B>(broker: B, nats_url: &str) -> Deployment<B> {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store_args = ["--store", nats_url, "--bus", nats_url];
    // Two replicas of the projection consumer share one durable consumer.
    let parts = serve_split(&store_args, data, 2);
    let upstreams = parts.upstreams();
    let SplitParts {
        relay,
        projections,
        orders,
        dispatch,
        volunteers,
        reviews,
        stats,
        gateway,
    } = parts;
    // The demo district, loaded the way an operator would: `diandan demo` against the store.
    seed_split_demo(nats_url, data);
    Deployment {
        nats: broker,
        tmp,
        relay,
        projections,
        orders,
        dispatch,
        volunteers,
        reviews,
        stats,
        gateway,
        upstreams,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_its_own_process_on_nats() {
    let Some(binary) = nats::primary_or_skip("every_service_its_own_process_on_nats") else {
        return;
    };
    let _heavy = HEAVY.lock().await;
    let Deployment {
        nats,
        tmp,
        relay,
        projections,
        orders,
        dispatch,
        volunteers,
        reviews,
        stats,
        gateway,
        upstreams,
    } = deploy(&binary).await;
    let data = tmp.path();

    // One order through the loop over HTTP at the gateway.
    let base = url(&gateway);
    let resident = User::login_at(&base, "resident", "r-dist", "").await;
    let head = User::login_at(&base, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let volunteer = User::login_at(&base, "volunteer", "v-wangsen", "").await;
    // The head's dispatch board, live across processes (gateway → dispatch part, the read
    // model fed by the projections part).
    let board = head
        .http
        .get(format!("{base}/api/v1/nodes/chezhanlu/queue/events"))
        .bearer_auth(&head.token)
        .send()
        .await
        .unwrap();
    assert_eq!(board.status(), 200);
    let mut board = support::Events::new(board);
    assert_eq!(board.next().await.expect("the queue at once").0, "queue");
    let placed_at = std::time::Instant::now();
    let (status, ack) = resident
        .post("/api/v1/orders", yongfu_order("分布式部署下的订单"))
        .await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some((_, snapshot)) = board.next().await {
            if snapshot["orders"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["order_id"] == id.as_str()))
            {
                return placed_at.elapsed();
            }
        }
        panic!("the board's stream ended");
    })
    .await
    .expect("the new order did not reach the board within 10 s");
    println!(
        "split deployment: the new order reached the dispatch board {seen:?} after it was placed"
    );
    drop(board);
    let steps = [
        (&head, "/triage", json!({"accept": true})),
        (&head, "/dispatch", json!({"team_id": "zhidui-chezhanlu"})),
        (
            &volunteer,
            "/accept",
            json!({"team_id": "zhidui-chezhanlu"}),
        ),
        (&volunteer, "/check-in", json!({"location": LOCATION()})),
        (&volunteer, "/check-out", json!({"location": LOCATION()})),
        (&volunteer, "/complete", json!({"note": "已完成"})),
        (&resident, "/review", json!({"rating": 5})),
        (&head, "/close", json!({})),
    ];
    let mut last = ack;
    for (who, path, body) in steps {
        let (status, ack) = who.post(&format!("/api/v1/orders/{id}{path}"), body).await;
        assert_eq!(status, 200, "{path}: {ack}");
        last = ack;
    }
    assert_eq!(last["status"], "closed");

    // And one over gRPC.
    let cast = Cast {
        resident: Client::new(
            upstreams.clone(),
            sign_in(&upstreams, "r-dist-2", "resident", "").await,
        ),
        head: Client::new(
            upstreams.clone(),
            sign_in(&upstreams, "head-dengxiaohu", "station_head", "chezhanlu").await,
        ),
        volunteer: Client::new(
            upstreams.clone(),
            sign_in(&upstreams, "v-liuhong", "volunteer", "").await,
        ),
        team_id: "zhidui-chezhanlu".into(),
        station_id: "yongfu-lane".into(),
    };
    let spec = OrderSpec {
        category: "repair".into(),
        description: "更换楼道灯".into(),
        lat: 29.8711,
        lng: 114.284,
        address: String::new(),
        phone: "13900001111".into(),
        rating: 4,
        comment: String::new(),
    };
    let (_, grpc_last) = drive_order(&cast, &spec, Stage::Closed)
        .await
        .expect("gRPC loop");

    // The projections (fed through the bus) caught up: statistics of Yongfu Lane.
    let position = grpc_last.position.max(last["position"].as_u64().unwrap());
    let report = head.stats_at("yongfu-lane", position).await;
    assert!(report["position"].as_u64().unwrap() >= position, "{report}");
    assert_eq!(report["completed"], 2, "{report}");
    assert_eq!(report["reviewed"], 2, "{report}");

    // The audit trail across processes: the stats part signs checkpoints of the JetStream log
    // and publishes them on the bus; the log verifies online against the live store.
    let bus = diandan_bus::connect(&nats.url, 5).await.unwrap();
    let mut published = bus
        .subscribe(diandan_audit::witness::CHECKPOINT_SUBJECT)
        .await
        .unwrap();
    let auditor = User::login_at(&base, "auditor", "auditor-dist", "xianan").await;
    // The stats part signs its first checkpoint in the round after the log stopped being
    // empty (every 2 s here): until then the trail answers 404 尚未签署检查点.
    let body = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            match auditor.get("/api/v1/audit/checkpoint").await {
                (200, body) => break body,
                (404, _) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                (status, body) => panic!("{status} {body}"),
            }
        }
    })
    .await
    .expect("a first checkpoint within 15 s");
    let key =
        diandan_audit::checkpoint::parse_public_key(body["public_key"].as_str().unwrap()).unwrap();
    // One more event, so the next round has something new to sign and publish.
    let (status, body) = resident
        .post("/api/v1/orders", yongfu_order("审计链：签署后的新订单"))
        .await;
    assert_eq!(status, 201, "{body}");
    let message = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        futures::StreamExt::next(&mut published).await
    })
    .await
    .expect("a checkpoint on the bus within 15 s")
    .expect("the subscription is open");
    let checkpoint: diandan_audit::Checkpoint = serde_json::from_slice(&message.payload).unwrap();
    checkpoint
        .verify(&key)
        .expect("signed by the deployment's key");
    let verified = Command::new(support::binary())
        .args(["audit", "verify", "--store", &nats.url, "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    // Each event applied exactly once across the two replicas, and the read model equals a
    // rebuild from the store: once the replicas have the last order.
    head.stats_at("yongfu-lane", body["position"].as_u64().unwrap())
        .await;
    drop((relay, gateway));
    drop(projections);
    let store = JetStreamStore::connect(JetStreamConfig::new(nats.url.as_str()))
        .await
        .unwrap();
    let store: Arc<dyn EventStore> = Arc::new(store);
    let events = all_events(store.as_ref()).await;
    let live = diandan_runtime::projections::ReadModel::open(&data.join("read.db")).unwrap();
    let live_dump = live.dump().unwrap();
    let applied: Vec<&String> = live_dump
        .iter()
        .filter(|l| l.starts_with("checkpoints:"))
        .collect();
    let names = diandan_runtime::projections::projection_names();
    assert_eq!(applied.len(), names.len(), "{names:?}");
    for line in &applied {
        assert!(
            line.ends_with(&format!(" Integer({events})")),
            "each of {events} events applied once: {line}"
        );
    }
    let rebuilt_path = data.join("rebuilt.db");
    let rebuilt = diandan_runtime::projections::rebuild(store.as_ref(), &rebuilt_path, |_, _| {})
        .await
        .unwrap();
    assert_eq!(live_dump, rebuilt.dump().unwrap());
    drop((orders, dispatch, volunteers, reviews, stats));
}

/// Clients driving orders through the loop at once, one order after another.
const RESTART_WORKERS: usize = 12;

/// How long the server stays down.
const DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a client retries one command refused with 503.
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// How long the load goes on once the deployment answers again.
const LOAD_AFTER: std::time::Duration = std::time::Duration::from_secs(4);

/// The single nats-server is killed (SIGKILL) while clients drive orders through the loop over
/// HTTP at the gateway, stays down for a few seconds, and starts again on the same port and
/// the same store directory; the load goes on across the restart. Every flow must finish or
/// be refused cleanly (503 problem+json, retried with the same idempotency key; never another
/// 5xx, never a hang), nothing acknowledged may be lost or stored twice, the statistics must
/// count what the log holds, and the bus-fed read models must equal a rebuild from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_nats_server_loses_and_duplicates_nothing() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    let test = "a_restarted_nats_server_loses_and_duplicates_nothing";
    let Some(binary) = nats::primary_or_skip(test) else {
        return;
    };
    let _heavy = HEAVY.lock().await;
    let started = Instant::now();
    let mut broker = faults::NatsProcess::loopback(&binary.path, binary.version);
    broker.start().await;
    let nats_url = broker.url();
    let Deployment {
        nats: mut broker,
        tmp,
        relay,
        projections,
        orders,
        dispatch,
        volunteers,
        reviews,
        stats,
        gateway,
        ..
    } = deploy_on(broker, &nats_url).await;
    let data = tmp.path();
    println!(
        "{test}: deployed on {nats_url}, demo seeded: {:?}",
        started.elapsed()
    );

    let http = reqwest::Client::new();
    let base = url(&gateway);
    let login = |role: &'static str, user: String, node: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move { faults::Caller::login(&http, &base, role, &user, node).await }
    };
    let head = login("station_head", "head-dengxiaohu".into(), "chezhanlu").await;
    let volunteer = login("volunteer", "v-wangsen".into(), "").await;
    let mut casts = Vec::new();
    for worker in 0..RESTART_WORKERS {
        casts.push(faults::FlowCast {
            resident: login("resident", format!("r-restart-{worker}"), "").await,
            head: head.clone(),
            volunteer: volunteer.clone(),
        });
    }

    // The load...
    let progress = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load_started = Instant::now();
    let workers: Vec<_> = casts
        .into_iter()
        .enumerate()
        .map(|(worker, cast)| {
            tokio::spawn(faults::http_worker(
                http.clone(),
                "restart".into(),
                worker,
                cast,
                RETRY_FOR,
                progress.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // ...and after a hundred acknowledged commands, the server dies.
    while progress.load(Ordering::SeqCst) < 100 {
        assert!(
            load_started.elapsed() < Duration::from_secs(60),
            "no progress: {} commands acknowledged in 60 s",
            progress.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked_before = progress.load(Ordering::SeqCst);
    broker.kill();
    let killed = Instant::now();
    println!(
        "{test}: killed nats-server (SIGKILL) after {acked_before} commands, {:?} into the load",
        load_started.elapsed()
    );
    tokio::time::sleep(DOWN_FOR).await;
    let acked_while_down = progress.load(Ordering::SeqCst) - acked_before;
    let read = diandan_runtime::projections::ReadModel::open(&data.join("read.db")).unwrap();
    let read_at_restart = read.stored_position().await.unwrap();
    broker.start().await;
    let restarted = Instant::now();
    // How soon the relay and the projections notice the restart: the read model (fed through
    // relay → bus → projections) moves again. Reported, not asserted (shared machines).
    let noticed = {
        let read = read.clone();
        tokio::spawn(async move {
            loop {
                if read.stored_position().await.unwrap_or(0) > read_at_restart {
                    return Some(restarted.elapsed());
                }
                if restarted.elapsed() > Duration::from_secs(120) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    println!(
        "{test}: nats-server back on {nats_url} (same store) after {:?} down; {acked_while_down} \
         commands acknowledged meanwhile",
        restarted - killed
    );
    // The deployment answers again: the load goes on a little, then ends.
    let acked_at_restart = progress.load(Ordering::SeqCst);
    while progress.load(Ordering::SeqCst) == acked_at_restart {
        assert!(
            restarted.elapsed() < Duration::from_secs(90),
            "nothing acknowledged within 90 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answering = restarted.elapsed();
    let noticed = noticed.await.unwrap();
    let recreated = match relay.metrics.as_deref() {
        Some(address) => http
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("diandan_log_consumers_recreated_total "))
            .unwrap_or("0")
            .trim()
            .to_owned(),
        None => "?".into(),
    };
    println!(
        "{test}: the read model moved again {noticed:?} after the restart (relay → bus → \
         projections); the relay reopened its log consumer {recreated} time(s)"
    );
    assert!(
        noticed.is_some(),
        "the read model never moved after the restart"
    );
    tokio::time::sleep(LOAD_AFTER).await;
    stop.store(true, Ordering::SeqCst);

    let mut outcomes = Vec::new();
    for (worker, handle) in workers.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(240), handle).await {
            Ok(Ok(flows)) => outcomes.extend(flows),
            Ok(Err(panic)) => panic!("worker {worker}: {panic}"),
            Err(_) => panic!("worker {worker} did not end within 240 s"),
        }
    }
    faults::summarize(test, &outcomes, load_started);
    let last_failure = outcomes
        .iter()
        .flat_map(|o| o.failures.iter().map(|f| f.0))
        .max();
    println!(
        "{test}: commands acknowledged again {answering:?} after the restart; the last \
         command refused for the first time was {:?} after the kill",
        last_failure.map(|f| f.saturating_duration_since(killed))
    );
    let dirty: Vec<&String> = outcomes.iter().flat_map(|o| &o.dirty).collect();
    assert!(dirty.is_empty(), "answers that were not clean: {dirty:#?}");

    // Nothing acknowledged is lost or stored twice.
    let store = JetStreamStore::connect(JetStreamConfig::new(nats_url.as_str()))
        .await
        .unwrap();
    let log = faults::whole_log(&store).await;
    let audit = faults::audit(&log, &outcomes, "restart");
    let head_position = log.last().expect("events").position;
    println!(
        "{test}: {} events in the log; every acknowledged command in it once, where \
         acknowledged; of the commands in doubt {} were stored, {} not",
        audit.events, audit.in_doubt_stored, audit.in_doubt_absent
    );
    // The statistics count exactly what the log holds.
    let report = faults::stats_match(&http, &head, head_position, &audit).await;
    println!(
        "{test}: 永福巷 statistics match the log: received {} dispatched {} accepted {} \
         completed {} reviewed {}",
        report["received"],
        report["dispatched"],
        report["accepted"],
        report["completed"],
        report["reviewed"]
    );

    // No more writers; the read models catch up and equal a rebuild.
    drop((gateway, orders, dispatch, volunteers, reviews, stats));
    let log = faults::whole_log(&store).await;
    let read = diandan_runtime::projections::ReadModel::open(&data.join("read.db")).unwrap();
    let took = faults::caught_up(
        &read,
        log.last().expect("events").position,
        Duration::from_secs(90),
        || broker.log_tail(40),
    )
    .await;
    println!("{test}: projections caught up {took:?} after the load ended");
    drop(relay);
    drop(projections);
    faults::equals_rebuild(&read, &store, log.len(), data).await;
    println!(
        "{test}: read models equal a rebuild from the {} events; whole test {:?}",
        log.len(),
        started.elapsed()
    );
}

#[test]
fn an_unreachable_broker_at_start_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let started = std::time::Instant::now();
    let output = Command::new(support::binary())
        .args([
            "serve",
            "orders",
            "--store",
            "nats://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(tmp.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nats://127.0.0.1:1"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// Full flows/s across processes and projection lag (ack → visible in the bus-fed read model).
/// A benchmark, not a test: run by hand and read the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p diandan --release --test distributed -- --ignored --nocapture"]
async fn bench_flows_across_processes_and_projection_lag() {
    const CONCURRENCY: usize = 16;
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let Some(binary) = nats::primary_or_skip("bench_flows_across_processes") else {
        return;
    };
    let d = deploy(&binary).await;
    let read =
        diandan_runtime::projections::ReadModel::open(&d.tmp.path().join("read.db")).unwrap();
    // Sample the read model's checkpoint as the projection processes advance it.
    let samples = Arc::new(std::sync::Mutex::new(
        Vec::<(std::time::Instant, u64)>::new(),
    ));
    let sampler = {
        let (read, samples) = (read.clone(), samples.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(p) = read.stored_position().await {
                    samples.lock().unwrap().push((std::time::Instant::now(), p));
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    let cast = Cast {
        resident: Client::new(
            d.upstreams.clone(),
            sign_in(&d.upstreams, "r-bench", "resident", "").await,
        ),
        head: Client::new(
            d.upstreams.clone(),
            sign_in(&d.upstreams, "head-bench", "station_head", "chezhanlu").await,
        ),
        volunteer: Client::new(
            d.upstreams.clone(),
            sign_in(&d.upstreams, "v-wangsen", "volunteer", "").await,
        ),
        team_id: "zhidui-chezhanlu".into(),
        station_id: "yongfu-lane".into(),
    };
    let spec = OrderSpec {
        category: "repair".into(),
        description: "基准测试".into(),
        lat: 29.8711,
        lng: 114.284,
        address: String::new(),
        phone: "13900001111".into(),
        rating: 5,
        comment: String::new(),
    };
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(seconds);
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (cast, spec) = (cast.clone(), spec.clone());
            tokio::spawn(async move {
                let mut acks = Vec::new();
                while std::time::Instant::now() < deadline {
                    if let Ok((_, ack)) = drive_order(&cast, &spec, Stage::Closed).await {
                        acks.push((std::time::Instant::now(), ack.position));
                    }
                }
                acks
            })
        })
        .collect();
    let mut acks = Vec::new();
    for w in workers {
        acks.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    sampler.abort();
    let samples = samples.lock().unwrap().clone();
    let mut lags: Vec<f64> = acks
        .iter()
        .filter_map(|(at, position)| {
            samples
                .iter()
                .find(|(t, p)| p >= position && t >= at)
                .map(|(t, _)| (*t - *at).as_secs_f64() * 1000.0)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    eprintln!(
        "samples: {} (last {:?}); last ack position {:?}",
        samples.len(),
        samples.last().map(|(_, p)| p),
        acks.iter().map(|(_, p)| p).max()
    );
    let pct = |p: usize| {
        lags.get((lags.len() * p / 100).min(lags.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "flows across processes: {} flows in {elapsed:.1} s = {:.1} flows/s ({:.0} commands/s), concurrency {CONCURRENCY}",
        acks.len(),
        acks.len() as f64 / elapsed,
        acks.len() as f64 * 9.0 / elapsed
    );
    println!(
        "projection lag (ack → read model, via relay + bus + consumer): p50 {:.1} ms, p99 {:.1} ms over {} flows",
        pct(50),
        pct(99),
        lags.len()
    );
}

/// Runs the `diandan` command; (success, stdout + stderr).
fn diandan(args: &[&str], data: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(support::binary())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// An operator's first day: an empty NATS and empty data dirs; `diandan org bootstrap` makes
/// the centre and its admin, who signs in for real and builds the organisation. Then
/// `projections rebuild` refuses every way it could hurt (no --store, parts running, another
/// store) and, done right, equals the live read model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_from_nothing_and_a_rebuild_that_cannot_hurt() {
    let test = "an_organisation_from_nothing_and_a_rebuild_that_cannot_hurt";
    let Some(binary) = nats::primary_or_skip(test) else {
        return;
    };
    let _heavy = HEAVY.lock().await;
    let nats = nats::NatsServer::start(&binary).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let key = [("DIANDAN_TOKEN_SECRET", SECRET)];
    let bootstrap = [
        "org",
        "bootstrap",
        "--store",
        &nats.url,
        "--centre-id",
        "xianan",
        "--centre-name",
        "咸安区新时代文明实践中心",
        "--admin-username",
        "admin.xianan",
    ];
    let with_password = [key[0], ("DIANDAN_ADMIN_PASSWORD", "first-password-1")];
    // A password too short is refused before anything is written: no centre without its admin.
    let (ok, said) = diandan(
        &bootstrap,
        data,
        &[key[0], ("DIANDAN_ADMIN_PASSWORD", "short")],
    );
    assert!(!ok, "{said}");
    assert!(said.contains("admin_password"), "{said}");
    let (ok, said) = diandan(&bootstrap, data, &with_password);
    assert!(ok, "{said}");
    assert_eq!(said.matches("已创建").count(), 2, "{said}");
    // Again: nothing changes, and it says so.
    let (ok, said) = diandan(&bootstrap, data, &with_password);
    assert!(ok, "{said}");
    assert_eq!(said.matches("已存在").count(), 2, "{said}");

    let store_args = ["--store", nats.url.as_str(), "--bus", nats.url.as_str()];
    let SplitParts {
        relay,
        mut projections,
        orders,
        dispatch,
        volunteers,
        reviews,
        stats,
        gateway,
    } = serve_split(&store_args, data, 1);
    let projections = projections.pop().expect("one projections part");
    let base = url(&gateway);
    let http = reqwest::Client::new();
    let session: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin.xianan", "password": "first-password-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["role"], "centre_admin", "{session}");
    let admin = User {
        http: http.clone(),
        base: base.clone(),
        token: session["access_token"].as_str().unwrap().to_owned(),
    };
    let (status, body) = admin
        .post(
            "/api/v1/org/nodes",
            json!({"id": "yongan", "name": "永安街道新时代文明实践所", "level": "institute",
                   "parent_id": "xianan"}),
        )
        .await;
    assert!(matches!(status, 200 | 201), "{body}");
    let position = body["position"]
        .as_u64()
        .expect("a registration says its position");
    let (status, body) = admin
        .post(
            "/api/v1/accounts",
            json!({"username": "admin.yongan", "display_name": "永安所管理员",
                   "role": "institute_admin", "node_id": "yongan",
                   "password": "first-password-2"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, tree) = admin
        .get(&format!("/api/v1/org?min_position={position}"))
        .await;
    assert_eq!(status, 200, "{tree}");
    assert!(tree.to_string().contains("yongan"), "{tree}");

    // Every part serves its own metrics and health: what relaying and projecting did shows
    // where it happened (the gateway's process does neither).
    let scrape = |part: &Part| {
        let address = part.metrics.clone().expect("a metrics address");
        let http = http.clone();
        async move {
            let health: serde_json::Value = http
                .get(format!("http://{address}/healthz"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(health["status"], "ok", "{health}");
            http.get(format!("http://{address}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let counter = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    assert!(counter(&scrape(&relay).await, "diandan_events_relayed_total") > 0);
    assert!(
        counter(
            &scrape(&projections).await,
            "diandan_events_projected_total"
        ) > 0
    );
    assert!(scrape(&volunteers).await.contains("rpc_server_duration"));
    assert_eq!(
        counter(&scrape(&gateway).await, "diandan_events_relayed_total"),
        0
    );

    // Rebuild without --store on a split data dir: refused, and nothing created or changed.
    let live = data.join("read.db");
    // Once the replicas applied all that is stored (the account above answered no position),
    // so that what the refusals must leave unchanged is not still moving.
    let head = JetStreamStore::connect(JetStreamConfig::new(nats.url.as_str()))
        .await
        .unwrap()
        .head_position()
        .await
        .unwrap();
    faults::caught_up(
        &diandan_runtime::projections::ReadModel::open(&live).unwrap(),
        head,
        std::time::Duration::from_secs(60),
        String::new,
    )
    .await;
    let before = diandan_runtime::projections::inspect(&live)
        .unwrap()
        .unwrap();
    assert!(before.origin.is_some(), "{before:?}");
    let (ok, said) = diandan(&["projections", "rebuild"], data, &key);
    assert!(!ok, "{said}");
    assert!(said.contains("--store"), "{said}");
    assert!(!data.join("events.db").exists(), "no empty store created");
    // With --store, but while the parts have the read models open: refused.
    let rebuild = ["projections", "rebuild", "--store", nats.url.as_str()];
    let (ok, said) = diandan(&rebuild, data, &key);
    assert!(!ok, "{said}");
    assert!(said.contains("in use"), "{said}");
    assert_eq!(
        diandan_runtime::projections::inspect(&live)
            .unwrap()
            .unwrap(),
        before
    );

    drop((
        relay,
        projections,
        orders,
        dispatch,
        volunteers,
        reviews,
        stats,
        gateway,
    ));
    // Another deployment's store (a fresh, empty NATS): refused.
    let other = nats::NatsServer::start(&binary).await;
    let (ok, said) = diandan(
        &["projections", "rebuild", "--store", other.url.as_str()],
        data,
        &key,
    );
    assert!(!ok, "{said}");
    assert!(said.contains("another event store"), "{said}");
    // The deployment's own store: equal to the live read model.
    let live_dump = {
        let read = diandan_runtime::projections::ReadModel::open(&live).unwrap();
        read.dump().unwrap()
    };
    let (ok, said) = diandan(&rebuild, data, &key);
    assert!(ok, "{said}");
    let rebuilt = diandan_runtime::projections::ReadModel::open(&live)
        .unwrap()
        .dump()
        .unwrap();
    assert_eq!(live_dump, rebuilt, "a rebuild equals the live read model");
    println!("{test}: bootstrapped, rebuilt: {said}");
    drop(nats);
}

/// Every part started at the same instant on a fresh data dir, with no configured key, twenty
/// times: they all sign and check with the one key that won (a token from one is accepted by
/// every other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_started_together_share_one_token_key() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let test = "parts_started_together_share_one_token_key";
    let Some(binary) = nats::primary_or_skip(test) else {
        return;
    };
    let _heavy = HEAVY.lock().await;
    let nats = nats::NatsServer::start(&binary).await;
    let parts = ["orders", "dispatch", "volunteers", "reviews", "stats"];
    for round in 0..20 {
        let tmp = tempfile::tempdir().unwrap();
        let mut children: Vec<std::process::Child> = parts
            .iter()
            .map(|part| {
                Command::new(support::binary())
                    .args([
                        "serve",
                        part,
                        "--listen",
                        "127.0.0.1:0",
                        "--store",
                        &nats.url,
                    ])
                    .arg("--data-dir")
                    .arg(tmp.path())
                    .env_remove("DIANDAN_TOKEN_SECRET")
                    .env("DIANDAN_DEV", "1")
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut urls = Vec::new();
        for child in &mut children {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let Some(listen) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("listen="))
            else {
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).ok();
                let status = child.wait();
                panic!("round {round}: a part did not start ({status:?}): {stderr}");
            };
            urls.push(format!("http://{listen}"));
        }
        let channel = |i: usize| {
            Endpoint::from_shared(urls[i].clone())
                .unwrap()
                .connect_lazy()
        };
        let upstreams = Upstreams {
            orders: channel(0).into(),
            dispatch: channel(1).into(),
            volunteers: channel(2).into(),
            reviews: channel(3).into(),
            stats: channel(4).into(),
            in_place: None,
        };
        let client = Client::new(
            upstreams.clone(),
            sign_in(&upstreams, "r-cold", "resident", "").await,
        );
        use diandan_proto::v1 as pb;
        let codes = [
            client
                .orders()
                .list_my_orders(client.request(pb::ListMyOrdersRequest::default(), None))
                .await
                .err(),
            client
                .dispatch()
                .station_queue(client.request(pb::StationQueueRequest::default(), None))
                .await
                .err(),
            client
                .organization()
                .get_org_tree(client.request(pb::GetOrgTreeRequest::default(), None))
                .await
                .err(),
            client
                .reviews()
                .close_order(client.request(pb::CloseOrderRequest::default(), None))
                .await
                .err(),
            client
                .stats()
                .station_stats(client.request(pb::StationStatsRequest::default(), None))
                .await
                .err(),
        ];
        for (part, error) in parts.iter().zip(&codes) {
            assert!(
                error
                    .as_ref()
                    .is_none_or(|s| s.code() != tonic::Code::Unauthenticated),
                "round {round}: {part} refused a token signed by volunteers: {error:?}"
            );
        }
        for mut child in children {
            child.kill().ok();
            child.wait().ok();
        }
    }
    println!("{test}: 20 cold starts of 5 parts, one key each time");
    drop(nats);
}

/// A live feed of the log on an idle store, the NATS server killed and started again (same
/// port, same store): how soon does an event appended after the restart reach the feed? The
/// feed's consumer is forgotten by the restart; the feed asks for it every second and reopens
/// it (async-nats alone notices after its 15 s heartbeat). Reported; bounded at 60 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_feed_notices_a_restarted_server_within_seconds() {
    use futures::StreamExt;
    use std::time::{Duration, Instant};
    let test = "a_live_feed_notices_a_restarted_server_within_seconds";
    let Some(binary) = nats::primary_or_skip(test) else {
        return;
    };
    let _heavy = HEAVY.lock().await;
    let mut broker = faults::NatsProcess::loopback(&binary.path, binary.version);
    broker.start().await;
    let url = broker.url();
    let store = JetStreamStore::connect(JetStreamConfig::new(url.as_str()))
        .await
        .unwrap();
    let append = |store: &JetStreamStore, n: usize| {
        let request = diandan_store::AppendRequest {
            stream: format!("feed-{n}"),
            expected: diandan_store::ExpectedRevision::NoStream,
            command_id: format!("feed-command-{n}"),
            events: vec![diandan_store::NewEvent {
                event_id: uuid::Uuid::new_v4(),
                event_type: "Probe".into(),
                data: b"{}".to_vec(),
                metadata: b"{}".to_vec(),
            }],
        };
        let store = store.clone();
        async move { store.append(request).await }
    };
    append(&store, 0).await.unwrap();
    let mut feed = store.subscribe_all(1);
    feed.next().await.unwrap().unwrap();

    broker.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.start().await;
    let restarted = Instant::now();
    // The first append the restarted server acknowledges…
    let appended = loop {
        if append(&store, 1).await.is_ok() {
            break Instant::now();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "no append after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // …and the moment the idle feed delivers it.
    let delivered = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match feed.next().await {
                Some(Ok(event)) if event.stream == "feed-1" => return Instant::now(),
                Some(Ok(_)) => continue,
                // A feed ends after an error: resubscribe where it stood, as its users do.
                Some(Err(_)) | None => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    feed = store.subscribe_all(2);
                }
            }
        }
    })
    .await
    .expect("the feed never delivered the event appended after the restart");
    println!(
        "{test}: appended {:?} after the restart; the live feed had it {:?} later",
        appended - restarted,
        delivered - appended
    );
}
