//! The split deployment: every part of diandan its own process (`diandan serve …`), the store
//! and the bus on a real `nats-server` this test starts (random ports, temp dirs) and stops.

#[path = "../services/store-jetstream/tests/support/mod.rs"]
mod nats;
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use serde_json::json;
use tonic::transport::Endpoint;

use diandan::client::{drive_order, Cast, Client, OrderSpec, Stage};
use diandan_proto::Upstreams;
use diandan_runtime::auth::TokenSigner;
use diandan_store::EventStore;
use diandan_store_jetstream::{JetStreamConfig, JetStreamStore};
use diandan_workflows::Role;
use support::{yongfu_order, User, LOCATION};

const SECRET: &str = "distributed-test-secret-0123456789abcdef";

/// One `diandan serve` process, killed on drop.
struct Part {
    child: Child,
    listen: Option<String>,
}

impl Drop for Part {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn serve(part: &str, args: &[&str], data_dir: &Path) -> Part {
    let mut child = Command::new(support::binary())
        .args(["serve", part, "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("DIANDAN_TOKEN_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start diandan serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("ready line");
    assert!(line.starts_with("diandan ready"), "{part}: {line:?}");
    let listen = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .map(str::to_owned);
    Part { child, listen }
}

fn url(part: &Part) -> String {
    format!("http://{}", part.listen.as_deref().expect("listens"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_its_own_process_on_nats() {
    let Some(binary) = nats::primary_or_skip("every_service_its_own_process_on_nats") else {
        return;
    };
    let nats = nats::NatsServer::start(&binary).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store_args = ["--store", nats.url.as_str(), "--bus", nats.url.as_str()];

    let relay = serve("relay", &store_args, data);
    // Two replicas of the projection consumer share one durable consumer.
    let projections = [
        serve("projections", &store_args, data),
        serve("projections", &store_args, data),
    ];
    let orders = serve("orders", &store_args, data);
    let dispatch = serve("dispatch", &store_args, data);
    let volunteers = serve("volunteers", &store_args, data);
    let reviews = serve("reviews", &store_args, data);
    let stats = serve("stats", &store_args, data);
    let gateway = serve(
        "gateway",
        &[
            "--orders-url",
            &url(&orders),
            "--dispatch-url",
            &url(&dispatch),
            "--volunteers-url",
            &url(&volunteers),
            "--reviews-url",
            &url(&reviews),
            "--stats-url",
            &url(&stats),
        ],
        data,
    );

    // The demo district, through the services' own gRPC ports.
    let channel = |p: &Part| Endpoint::from_shared(url(p)).unwrap().connect_lazy();
    let upstreams = Upstreams {
        orders: channel(&orders),
        dispatch: channel(&dispatch),
        volunteers: channel(&volunteers),
        reviews: channel(&reviews),
        stats: channel(&stats),
    };
    let signer = TokenSigner::new(SECRET.as_bytes().to_vec());
    let seeded = diandan::demo::seed(upstreams.clone(), &signer)
        .await
        .expect("seed the demo");
    assert_eq!(seeded, 112);

    // One order through the loop over HTTP at the gateway.
    let base = url(&gateway);
    let resident = User::login_at(&base, "resident", "r-dist", "").await;
    let head = User::login_at(&base, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let volunteer = User::login_at(&base, "volunteer", "v-wangsen", "").await;
    let (status, ack) = resident
        .post("/api/v1/orders", yongfu_order("分布式部署下的订单"))
        .await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
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
            diandan::demo::token(&signer, "r-dist-2", Role::Resident, None),
        ),
        head: Client::new(
            upstreams.clone(),
            diandan::demo::token(
                &signer,
                "head-dengxiaohu",
                Role::StationHead,
                Some("chezhanlu"),
            ),
        ),
        volunteer: Client::new(
            upstreams.clone(),
            diandan::demo::token(&signer, "v-liuhong", Role::Volunteer, None),
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
    let (status, report) = head
        .get(&format!(
            "/api/v1/nodes/yongfu-lane/stats?min_position={position}"
        ))
        .await;
    assert_eq!(status, 200, "{report}");
    assert!(report["position"].as_u64().unwrap() >= position, "{report}");
    assert_eq!(report["completed"], 2, "{report}");
    assert_eq!(report["reviewed"], 2, "{report}");

    // Each event applied exactly once across the two replicas, and the read model equals a
    // rebuild from the store.
    drop((relay, gateway));
    for p in projections {
        drop(p);
    }
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
    assert_eq!(applied.len(), 4, "directory, orders, stats, timers");
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
