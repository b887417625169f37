//! Versioned workflow definitions: an order keeps the version it started with; a new version
//! applies to new orders only; invalid definitions are refused naming the file and line.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use support::{yongfu_order, Server, User};

fn shipped_v1() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../workflows/definitions/dispatched-order.v1.toml");
    std::fs::read_to_string(path).expect("the shipped v1 definition")
}

/// v2: a resident may no longer cancel once the order is dispatched.
fn v2() -> String {
    let v1 = shipped_v1();
    let v2 = v1.replacen("version = 1", "version = 2", 1).replacen(
        "from = [\"placed\", \"triaged\", \"dispatched\"]",
        "from = [\"placed\", \"triaged\"]",
        1,
    );
    assert_ne!(v1, v2);
    v2
}

async fn dispatched_order(server: &Server, resident: &User) -> String {
    let head = User::login(server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let (status, ack) = resident
        .post("/api/v1/orders", yongfu_order("版本测试"))
        .await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    head.post(
        &format!("/api/v1/orders/{id}/triage"),
        json!({"accept": true}),
    )
    .await;
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{id}/dispatch"),
            json!({"team_id": "zhidui-chezhanlu"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_started_on_v1_finishes_on_v1_after_v2_is_deployed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, true);
    server.wait_for_demo().await;
    let resident = User::login(&server, "resident", "r-versions", "").await;
    let old_order = dispatched_order(&server, &resident).await;
    assert_eq!(server.stop_gracefully().code(), Some(0));

    // Deploy v2 beside v1.
    let definitions = tmp.path().join("workflows");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(definitions.join("dispatched-order.v2.toml"), v2()).unwrap();
    let dir = definitions.to_str().unwrap();
    let server = Server::start_with(&data, false, &[], &["--workflows-dir", dir]);
    let resident = resident.clone_for(&server);

    // The old order still runs on v1: cancelling it while dispatched is allowed.
    let (_, history) = resident
        .get(&format!("/api/v1/orders/{old_order}/history"))
        .await;
    assert!(history["events"][0]["payload_json"]
        .as_str()
        .unwrap()
        .contains("\"version\":1"));
    let (status, ack) = resident
        .post(
            &format!("/api/v1/orders/{old_order}/cancel"),
            json!({"reason": "不需要了"}),
        )
        .await;
    assert_eq!(
        status, 200,
        "v1 allows cancelling a dispatched order: {ack}"
    );

    // A new order starts on v2, where it is not.
    let new_order = dispatched_order(&server, &resident).await;
    let (_, history) = resident
        .get(&format!("/api/v1/orders/{new_order}/history"))
        .await;
    assert!(history["events"][0]["payload_json"]
        .as_str()
        .unwrap()
        .contains("\"version\":2"));
    let (status, problem) = resident
        .post(
            &format!("/api/v1/orders/{new_order}/cancel"),
            json!({"reason": "不需要了"}),
        )
        .await;
    assert_eq!(status, 409, "v2 refuses: {problem}");
}

#[test]
fn invalid_definitions_are_refused_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("dispatched-order.v3.toml");
    let text = v2().replacen("version = 2", "version = 3", 1).replacen(
        "to = \"accepted\"",
        "to = \"acepted\"",
        1,
    );
    std::fs::write(&broken, &text).unwrap();
    let line = text.lines().position(|l| l.contains("acepted")).unwrap() + 1;

    let output = Command::new(support::binary())
        .args(["workflows", "validate"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("dispatched-order.v3.toml:{line}")) && stderr.contains("acepted"),
        "{stderr}"
    );

    // The shipped files validate.
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows/definitions");
    let output = Command::new(support::binary())
        .args(["workflows", "validate"])
        .arg(shipped.join("dispatched-order.v1.toml"))
        .arg(shipped.join("open-claim.v1.toml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // And the server refuses to start on the broken one.
    let output = Command::new(support::binary())
        .args([
            "up",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .arg("--workflows-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains(&format!("dispatched-order.v3.toml:{line}")));
}
