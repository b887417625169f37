//! Versioned workflow definitions: an order keeps the version it started with; a new version
//! applies to new orders only; invalid definitions are refused naming the file and line.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use support::{yongfu_order, Server, User};

fn shipped(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../workflows/definitions")
        .join(file);
    std::fs::read_to_string(path).expect("a shipped definition")
}

/// The next dispatched-order version (v3, after the shipped v2): a resident may no longer
/// cancel once the order is dispatched.
fn v3() -> String {
    let v2 = shipped("dispatched-order.v2.toml");
    let v3 = v2.replacen("version = 2", "version = 3", 1).replacen(
        "from = [\"placed\", \"triaged\", \"dispatched\"]",
        "from = [\"placed\", \"triaged\"]",
        1,
    );
    assert_ne!(v2, v3);
    v3
}

/// The next open-claim version (v2): a claimant may no longer withdraw once the wish is full.
fn open_claim_v2() -> String {
    let v1 = shipped("open-claim.v1.toml");
    let v2 = v1.replacen("version = 1", "version = 2", 1).replacen(
        "[[transitions]]\ncommand = \"unclaim\"\nlabel = \"放弃认领\"\nfrom = [\"claimed\"]\nto = \"published\"\nroles = [\"volunteer\"]\n",
        "",
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
async fn an_order_keeps_its_version_after_the_next_is_deployed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, true);
    server.wait_for_demo().await;
    let resident = User::login(&server, "resident", "r-versions", "").await;
    let old_order = dispatched_order(&server, &resident).await;

    let old_wish = full_wish(&server, &resident).await;
    assert_eq!(server.stop_gracefully().code(), Some(0));

    // Deploy dispatched-order v3 and open-claim v2 beside the shipped versions.
    let definitions = tmp.path().join("workflows");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(definitions.join("dispatched-order.v3.toml"), v3()).unwrap();
    std::fs::write(definitions.join("open-claim.v2.toml"), open_claim_v2()).unwrap();
    let dir = definitions.to_str().unwrap();
    let server = Server::start_with(&data, false, &[], &["--workflows-dir", dir]);
    let resident = resident.clone_for(&server);

    // The old order still runs on v2: cancelling it while dispatched is allowed.
    let (_, history) = resident
        .get(&format!("/api/v1/orders/{old_order}/history"))
        .await;
    assert!(history["events"][0]["payload_json"]
        .as_str()
        .unwrap()
        .contains("\"version\":2"));
    let (status, ack) = resident
        .post(
            &format!("/api/v1/orders/{old_order}/cancel"),
            json!({"reason": "不需要了"}),
        )
        .await;
    assert_eq!(
        status, 200,
        "v2 allows cancelling a dispatched order: {ack}"
    );

    // A new order starts on v3, where it is not.
    let new_order = dispatched_order(&server, &resident).await;
    let (_, history) = resident
        .get(&format!("/api/v1/orders/{new_order}/history"))
        .await;
    assert!(history["events"][0]["payload_json"]
        .as_str()
        .unwrap()
        .contains("\"version\":3"));
    let (status, problem) = resident
        .post(
            &format!("/api/v1/orders/{new_order}/cancel"),
            json!({"reason": "不需要了"}),
        )
        .await;
    assert_eq!(status, 409, "v3 refuses: {problem}");

    // The same for the open claim: the full wish placed on v1 lets its claimant withdraw …
    let volunteer = User::login(&server, "volunteer", "v-liuhong", "").await;
    let (status, ack) = volunteer
        .post(&format!("/api/v1/orders/{old_wish}/unclaim"), json!({}))
        .await;
    assert_eq!(
        status, 200,
        "open-claim v1 lets a claimant of a full wish withdraw: {ack}"
    );
    // … a full wish placed now, on v2, does not.
    let new_wish = full_wish(&server, &resident).await;
    let (_, history) = resident
        .get(&format!("/api/v1/orders/{new_wish}/history"))
        .await;
    assert!(history["events"][0]["payload_json"]
        .as_str()
        .unwrap()
        .contains("\"version\":2"));
    let (status, problem) = volunteer
        .post(&format!("/api/v1/orders/{new_wish}/unclaim"), json!({}))
        .await;
    assert_eq!(status, 409, "open-claim v2 refuses: {problem}");
}

/// A micro-wish at 车站路, published and claimed by 刘红 (v-liuhong) for 车站路支队: full.
async fn full_wish(server: &Server, resident: &User) -> String {
    let head = User::login(server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let mut wish = yongfu_order("微心愿：帮忙修理轮椅");
    wish["workflow"] = json!("open-claim");
    wish["category"] = json!("repair");
    let (status, ack) = resident.post("/api/v1/orders", wish).await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{id}/triage"),
            json!({"accept": true}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let volunteer = User::login(server, "volunteer", "v-liuhong", "").await;
    let (status, ack) = volunteer
        .post(
            &format!("/api/v1/orders/{id}/claim"),
            json!({"team_id": "zhidui-chezhanlu"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    id
}

#[test]
fn invalid_definitions_are_refused_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("dispatched-order.v4.toml");
    let text = v3().replacen("version = 3", "version = 4", 1).replacen(
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
        stderr.contains(&format!("dispatched-order.v4.toml:{line}")) && stderr.contains("acepted"),
        "{stderr}"
    );

    // The shipped files validate.
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows/definitions");
    let output = Command::new(support::binary())
        .args(["workflows", "validate"])
        .arg(shipped.join("dispatched-order.v1.toml"))
        .arg(shipped.join("dispatched-order.v2.toml"))
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
        .contains(&format!("dispatched-order.v4.toml:{line}")));
}

/// v3 with a sign-for deadline of three seconds (yellow after 2.4 s), for drills and tests.
fn v3_with_short_sign_for() -> String {
    let v2 = v3();
    let start = v2.find("name = \"sign_for\"").expect("sign_for deadline");
    let within = start + v2[start..].find("within = \"1 working day\"").unwrap();
    let mut text = v2.clone();
    text.replace_range(
        within..within + "within = \"1 working day\"".len(),
        "within = \"3 seconds\"",
    );
    text
}

/// The history as `type` or `type:deadline`; the clocks a change stops and starts follow it
/// as `DeadlineCleared:…` and `DeadlineScheduled:…` (what they were as events of their own).
fn history_types(history: &serde_json::Value) -> Vec<String> {
    let names = |list: &serde_json::Value, key: Option<&str>| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|d| key.map_or(d, |k| &d[k]).as_str().unwrap().to_owned())
            .collect()
    };
    let mut types = Vec::new();
    for e in history["events"].as_array().unwrap() {
        let payload: serde_json::Value =
            serde_json::from_str(e["payload_json"].as_str().unwrap()).unwrap();
        let deadline = payload
            .get("deadline")
            .or_else(|| payload.get("timer").and_then(|t| t.get("deadline")))
            .and_then(|d| d.as_str());
        let event_type = e["event_type"].as_str().unwrap();
        types.push(match deadline {
            Some(d) => format!("{event_type}:{d}"),
            None => event_type.to_owned(),
        });
        let clocks = &payload["clocks"];
        for d in names(&clocks["stopped"], None) {
            types.push(format!("DeadlineCleared:{d}"));
        }
        for d in names(&clocks["started"], Some("deadline")) {
            types.push(format!("DeadlineScheduled:{d}"));
        }
    }
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_timers_survive_sigkill_and_fire_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let definitions = tmp.path().join("workflows");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(
        definitions.join("dispatched-order.v3.toml"),
        v3_with_short_sign_for(),
    )
    .unwrap();
    let args = ["--workflows-dir", definitions.to_str().unwrap()];

    let server = Server::start_with(&data, true, &[], &args);
    server.wait_for_demo().await;
    let resident = User::login(&server, "resident", "r-timers", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let id = dispatched_order(&server, &resident).await;
    // Killed (SIGKILL) with the sign-for timer pending.
    drop(server);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    // Restarted after the deadline passed: it goes yellow and red, once each.
    let server = Server::start_with(&data, false, &[], &args);
    let head = head.clone_for(&server);
    let mut types = Vec::new();
    for _ in 0..100 {
        let (_, history) = head.get(&format!("/api/v1/orders/{id}/history")).await;
        types = history_types(&history);
        if types.iter().any(|t| t == "DeadlineOverdue:sign_for") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Each sign-for clock (from one DeadlineScheduled to the next) goes yellow and red at most
    // once; the first one did both.
    let fired_at_most_once = |types: &[String]| {
        let mut per_clock: Vec<(usize, usize)> = Vec::new();
        for t in types {
            match t.as_str() {
                "DeadlineScheduled:sign_for" => per_clock.push((0, 0)),
                "DeadlineWarned:sign_for" => per_clock.last_mut().unwrap().0 += 1,
                "DeadlineOverdue:sign_for" => per_clock.last_mut().unwrap().1 += 1,
                _ => {}
            }
        }
        assert!(
            per_clock.iter().all(|&(w, o)| w <= 1 && o <= 1),
            "{types:?}"
        );
        per_clock
    };
    let clocks = fired_at_most_once(&types);
    assert_eq!(clocks[0], (1, 1), "{types:?}");
    // Nobody signed for it: re-dispatched (接单超时改派) to the next candidate, with a fresh clock.
    // The re-dispatch is a command of its own after the overdue mark: wait for it too.
    let mut history = serde_json::Value::Null;
    for _ in 0..100 {
        (_, history) = head.get(&format!("/api/v1/orders/{id}/history")).await;
        let dispatches = history["events"].as_array().map_or(0, |e| {
            e.iter()
                .filter(|e| e["event_type"] == "OrderDispatched")
                .count()
        });
        if dispatches > 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let redispatch = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "OrderDispatched")
        .nth(1)
        .expect("re-dispatched after the timeout");
    let payload: serde_json::Value =
        serde_json::from_str(redispatch["payload_json"].as_str().unwrap()).unwrap();
    assert!(
        payload["reason"].as_str().unwrap().starts_with("接单超时"),
        "{payload}"
    );
    assert_ne!(
        payload["assignee"]["team_id"], "zhidui-chezhanlu",
        "{payload}"
    );
    assert_eq!(redispatch["actor"]["role"], "system");

    // Killed and restarted again: no clock fires twice.
    drop(server);
    let server = Server::start_with(&data, false, &[], &args);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let head = head.clone_for(&server);
    let (_, history) = head.get(&format!("/api/v1/orders/{id}/history")).await;
    fired_at_most_once(&history_types(&history));
    // The station's statistics count it red (once the read model has the whole history).
    let position = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["position"].as_u64())
        .max()
        .unwrap();
    let stats = head.stats_at("yongfu-lane", position).await;
    assert!(stats["overdue_red"].as_u64().unwrap() >= 1, "{stats}");
}
