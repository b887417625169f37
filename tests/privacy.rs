//! Residents' personal data against the real binary: a volunteer's read of a resident's number
//! is recorded (and listed to auditors) before it is shown; a resident forgotten through the
//! API can no longer be read anywhere — their order shows 已删除, statistics are exactly what
//! they were, the log still verifies — and after the system stopped and rebuilt its read
//! models from the log, no file of the data directory holds their number or address. Bad
//! input (an unknown resident, forgetting twice, someone else asking, a malformed id): clear
//! errors, nothing changed.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use support::{yongfu_order, Server, User, LOCATION};

const PHONE: &str = "13987654321";
const ADDRESS: &str = "忘记巷 88 号";

/// Every file under `dir` that holds `needle`, byte for byte.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn diandan(args: &[&str]) -> (bool, String) {
    let output = Command::new(support::binary())
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run diandan");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// The district's statistics once they reflect `position`, without the position itself (the
/// log grows with every read and forgetting; the statistics must not).
async fn stats_at(admin: &User, position: u64) -> Value {
    let mut stats = admin.stats_at("xianan", position).await;
    stats.as_object_mut().unwrap().remove("position");
    stats
}

async fn stats(admin: &User) -> Value {
    stats_at(admin, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_logged_and_a_forgotten_resident_is_unreadable_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_with_env(&data_dir, true, &[]);
    server.wait_for_demo().await;
    let resident = User::login(&server, "resident", "r-forget-me", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let volunteer = User::login(&server, "volunteer", "v-wangsen", "").await;
    let auditor = User::login(&server, "auditor", "auditor-privacy", "xianan").await;
    let admin = User::login(&server, "centre_admin", "admin-privacy", "xianan").await;

    let mut order = yongfu_order("请帮忙修理楼道灯。");
    order["contact_phone"] = json!(PHONE);
    order["location"]["address"] = json!(ADDRESS);
    let (status, ack) = resident.post("/api/v1/orders", order).await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let path = |suffix: &str| format!("/api/v1/orders/{id}{suffix}");
    let (_, mine) = resident.get(&path("")).await;
    assert_eq!(
        (
            mine["contact_phone"].as_str(),
            mine["location"]["address"].as_str()
        ),
        (Some(PHONE), Some(ADDRESS)),
        "{mine}"
    );
    // Sealed wherever it is written: the log holds neither the number nor the address.
    let (_, history) = head.get(&path("/history")).await;
    assert!(
        history.to_string().contains(ADDRESS),
        "history shows it opened"
    );
    assert!(files_holding(&data_dir, ADDRESS.as_bytes()).is_empty());
    assert!(files_holding(&data_dir, PHONE.as_bytes()).is_empty());
    // The head opens the order (the number shown, so recorded) and lists its reads at once,
    // without a position, as the console's order page does: its own read is there.
    let (_, seen) = head.get(&path("")).await;
    assert_eq!(seen["contact_phone"], PHONE, "{seen}");
    let (status, reads) = head
        .get(&format!("/api/v1/audit/orders/{id}/contact-reads"))
        .await;
    assert_eq!(status, 200, "{reads}");
    assert!(
        reads["reads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reader_id"] == "head-dengxiaohu"),
        "{reads}"
    );

    // Dispatched and accepted; the volunteer reads the number: recorded, then shown.
    for (user, suffix, body) in [
        (&head, "/triage", json!({"accept": true})),
        (&head, "/dispatch", json!({"team_id": "zhidui-chezhanlu"})),
        (
            &volunteer,
            "/accept",
            json!({"team_id": "zhidui-chezhanlu"}),
        ),
    ] {
        let (status, body) = user.post(&path(suffix), body).await;
        assert_eq!(status, 200, "{suffix}: {body}");
    }
    let (_, view) = volunteer.get(&path("")).await;
    assert_eq!(view["contact_phone"], PHONE);
    let (status, reads) = auditor
        .get(&format!(
            "/api/v1/audit/orders/{id}/contact-reads?min_position={}",
            view["revision"].as_u64().unwrap_or(0)
        ))
        .await;
    assert_eq!(status, 200, "{reads}");
    let mut found = None;
    for _ in 0..100 {
        let (_, reads) = auditor
            .get(&format!("/api/v1/audit/orders/{id}/contact-reads"))
            .await;
        found = reads["reads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["reader_id"] == "v-wangsen")
            .cloned();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let read = found.expect("the volunteer's read is in the access log");
    assert_eq!(read["role"], "volunteer");
    assert_eq!(read["purpose"], "查看订单");
    assert!(read["count"].as_u64() >= Some(1), "{read}");
    assert!(read["at"].as_str().unwrap().starts_with("20"));
    // Nobody but staff and auditors lists it.
    assert_eq!(
        volunteer
            .get(&format!("/api/v1/audit/orders/{id}/contact-reads"))
            .await
            .0,
        403
    );

    // The service goes on; then the resident asks to be forgotten.
    let mut last = 0;
    for (suffix, body) in [
        ("/check-in", json!({"location": LOCATION()})),
        ("/check-out", json!({"location": LOCATION()})),
        ("/complete", json!({"note": "更换灯泡 2 个"})),
    ] {
        let (status, body) = volunteer.post(&path(suffix), body).await;
        assert_eq!(status, 200, "{suffix}: {body}");
        last = body["position"].as_u64().unwrap();
    }
    let before = stats_at(&admin, last).await;

    // Bad input first: nothing changes.
    for (user, resident_id, expected) in [
        (&head, "r-forget-me", 403),
        (&admin, "r-nobody-here", 404),
        (&admin, "bad%20id", 400),
    ] {
        let (status, problem) = user
            .post(
                &format!("/api/v1/residents/{resident_id}/forget"),
                json!({"reason": "本人申请"}),
            )
            .await;
        assert_eq!(status, expected, "{resident_id}: {problem}");
    }
    let (_, still) = resident.get(&path("")).await;
    assert_eq!(still["contact_phone"], PHONE);

    let (status, forgotten) = admin
        .post_with(
            "/api/v1/residents/r-forget-me/forget",
            json!({"reason": "本人申请删除个人信息"}),
            Some("forget-r-forget-me"),
        )
        .await;
    assert_eq!(status, 200, "{forgotten}");
    assert!(forgotten["position"].as_u64().unwrap() > 0);
    // A retry of the same request (same Idempotency-Key) answers as the first did.
    let (status, again) = admin
        .post_with(
            "/api/v1/residents/r-forget-me/forget",
            json!({"reason": "本人申请删除个人信息"}),
            Some("forget-r-forget-me"),
        )
        .await;
    assert_eq!((status, &again), (200, &forgotten), "the retry's answer");
    let (status, problem) = admin
        .post("/api/v1/residents/r-forget-me/forget", json!({}))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["field"], "resident_id");

    // Unreadable everywhere it is shown; the facts stay.
    for user in [&head, &resident] {
        let (status, view) = user.get(&path("")).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["location"]["address"], "（已删除）", "{view}");
        assert_eq!(view["contact_phone"], "（已删除）", "{view}");
        assert_eq!(view["status"], "completed");
    }
    let (_, history) = head.get(&path("/history")).await;
    assert!(!history.to_string().contains(ADDRESS));
    let position = forgotten["position"].as_u64().unwrap();
    assert_eq!(
        stats_at(&admin, position).await,
        before,
        "statistics changed"
    );

    // Stopped, rebuilt from the log: still equal, and no file holds the number or address.
    server.stop_gracefully();
    let dir = data_dir.to_str().unwrap();
    let (ok, said) = diandan(&["projections", "rebuild", "--data-dir", dir]);
    assert!(ok, "{said}");
    for needle in [PHONE, ADDRESS, "987654321", "忘记巷"] {
        let holding = files_holding(&data_dir, needle.as_bytes());
        assert!(holding.is_empty(), "{needle} is still in {holding:?}");
    }
    let (ok, said) = diandan(&["audit", "verify", "--data-dir", dir]);
    assert!(ok, "the chain verifies after forgetting: {said}");
    let (ok, said) = diandan(&["residents", "forget", "r-forget-me", "--data-dir", dir]);
    assert!(!ok && said.contains("已于"), "forgetting twice: {said}");
    let (ok, said) = diandan(&["residents", "forget", "r-nobody-here", "--data-dir", dir]);
    assert!(!ok && said.contains("没有居民"), "{said}");

    let server = Server::start_in(&data_dir, true);
    let admin = User::login(&server, "centre_admin", "admin-privacy", "xianan").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let mut after = Value::Null;
    for _ in 0..100 {
        after = stats(&admin).await;
        if after == before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(after, before, "statistics changed after the rebuild");
    let (_, view) = head.get(&path("")).await;
    assert_eq!(view["contact_phone"], "（已删除）");
}

/// Check-in coordinates: coarse in the log from the start, exact (sealed) only while their
/// period is kept, then the retention job records `LocationsCoarsened` and destroys the key;
/// no file ever holds the exact coordinates in the clear, and the log still verifies. (That
/// the exact place is read while kept, and not after: `services/runtime/tests/retention.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_check_in_locations_are_kept_only_for_the_retention_period() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut server =
        Server::start_with_env(&data_dir, true, &[("DIANDAN_LOCATION_RETENTION", "6s")]);
    server.wait_for_demo().await;
    let resident = User::login(&server, "resident", "r-retention", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let volunteer = User::login(&server, "volunteer", "v-wangsen", "").await;
    let (status, ack) = resident
        .post("/api/v1/orders", yongfu_order("请帮忙搬运旧家具。"))
        .await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let path = |suffix: &str| format!("/api/v1/orders/{id}{suffix}");
    // Served from about 1.5 km away: a far check-in the station head must confirm.
    let exact = json!({"lat": 29.87654, "lng": 114.29876, "address": "桂花巷 9 号楼下"});
    for (user, suffix, body) in [
        (&head, "/triage", json!({"accept": true})),
        (&head, "/dispatch", json!({"team_id": "zhidui-chezhanlu"})),
        (
            &volunteer,
            "/accept",
            json!({"team_id": "zhidui-chezhanlu"}),
        ),
        (&volunteer, "/check-in", json!({"location": exact})),
        (&volunteer, "/check-out", json!({"location": exact})),
    ] {
        let (status, body) = user.post(&path(suffix), body).await;
        assert_eq!(status, 200, "{suffix}: {body}");
    }
    let (_, history) = head.get(&path("/history")).await;
    let check_in: Value = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "VolunteerCheckedIn")
        .map(|e| serde_json::from_str(e["payload_json"].as_str().unwrap()).unwrap())
        .expect("a check-in");
    assert_eq!(check_in["location"]["lat"], 29.88, "{check_in}");
    assert_eq!(check_in["location"]["lng"], 114.3, "{check_in}");
    assert!(
        check_in.get("precise").is_none(),
        "the sealed exact place is not shown"
    );
    assert_eq!(
        check_in["location"]["address"], "",
        "the exact address is sealed too"
    );

    // Past the retention: the job records the period's coarsening and destroys its key (about
    // 9 s after the check-out here; read while the server runs, both files being in WAL mode).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let live: i64 = rusqlite::Connection::open(data_dir.join("private.db"))
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM retention_keys WHERE key IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if live == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{live} keys still live 60 s after the check-out"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.stop_gracefully();
    let events = rusqlite::Connection::open(data_dir.join("events.db")).unwrap();
    let coarsened: i64 = events
        .query_row(
            "SELECT COUNT(*) FROM events WHERE stream = 'retention-locations'
             AND event_type = 'LocationsCoarsened'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(coarsened >= 1, "the job's record");
    let vault = rusqlite::Connection::open(data_dir.join("private.db")).unwrap();
    let live: i64 = vault
        .query_row(
            "SELECT COUNT(*) FROM retention_keys WHERE key IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(live, 0, "every period's key is destroyed");
    for needle in ["29.87654", "114.29876", "桂花巷"] {
        let holding = files_holding(&data_dir, needle.as_bytes());
        assert!(holding.is_empty(), "{needle} is in {holding:?}");
    }
    let dir = data_dir.to_str().unwrap();
    let (ok, said) = diandan(&["audit", "verify", "--data-dir", dir]);
    assert!(ok, "{said}");
}
