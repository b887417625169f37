//! The audit trail against the real binary: checkpoints signed on demand and fetched over
//! HTTP, a consistency proof from a held checkpoint to a newer one, an order's export verified
//! offline with the public key alone (then edited, truncated, checked with another key:
//! refused), and `diandan audit verify` on copies of a stopped system's data dir where one
//! event was altered in the database, one deleted, two swapped, one inserted — and where a
//! stream's whole chain, the witness and the system's own checkpoint were rewritten after an
//! edit, which only the checkpoint an auditor kept catches. Bad input: clear errors.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use diandan_store::chain::{self, Hash};
use rusqlite::{params, Connection};
use serde_json::{json, Value};

use support::{yongfu_order, Server, User};

fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(support::binary())
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run diandan");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn verify(data_dir: &Path, extra: &[&str]) -> (bool, String) {
    let dir = data_dir.to_str().unwrap();
    let mut args = vec!["audit", "verify", "--data-dir", dir];
    args.extend_from_slice(extra);
    run(&args)
}

/// A copy of a stopped system's data dir, to tamper with.
fn copy_of(data_dir: &Path, name: &str) -> PathBuf {
    let copy = data_dir.with_file_name(format!(
        "{}-{name}",
        data_dir.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    copy
}

/// An `events` row as the rewrite reads it: position, revision, id, type, data, metadata.
type StoredRow = (i64, u64, Vec<u8>, String, Vec<u8>, Vec<u8>);

fn events_db(dir: &Path) -> Connection {
    Connection::open(dir.join("events.db")).unwrap()
}

/// (position, stream, revision) of an event in the middle of a stream of several.
fn middle_event(db: &Connection, before: i64) -> (i64, String, i64) {
    db.query_row(
        "SELECT e.position, e.stream, e.revision FROM events e
         WHERE e.revision = 1 AND e.position < ?1
           AND EXISTS (SELECT 1 FROM events n WHERE n.stream = e.stream AND n.revision = 2)
         ORDER BY e.position DESC LIMIT 1",
        [before],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_tamper_evident_and_exports_verify_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("system");
    let mut server = Server::start_with_env(
        &data_dir,
        true,
        // Checkpoints only when asked for, so the test knows which exist.
        &[("DIANDAN_CHECKPOINT_EVERY_S", "3600")],
    );
    server.wait_for_demo().await;
    let auditor = User::login(&server, "auditor", "auditor-test", "xianan").await;
    let head = User::login(&server, "station_head", "head-test", "xianan").await;
    let resident = User::login(&server, "resident", "r-audit", "").await;

    // An auditor asks for a checkpoint and keeps it outside the system.
    let (status, signed) = auditor.post("/api/v1/audit/checkpoints", json!({})).await;
    assert_eq!(status, 201, "{signed}");
    let held = signed["checkpoint"].clone();
    let held_size = held["tree_size"].as_u64().unwrap();
    assert!(held_size > 500, "{held}");
    let held_file = tmp.path().join("held-checkpoint.json");
    std::fs::write(&held_file, held.to_string()).unwrap();
    let (status, latest) = auditor.get("/api/v1/audit/checkpoint").await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["checkpoint"], held);
    let public_key = latest["public_key"].as_str().unwrap().to_owned();
    let (ok, key_printed) = run(&["audit", "key", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(ok, "{key_printed}");
    assert_eq!(key_printed.trim(), public_key);

    // The log grows; a newer checkpoint is consistent with the held one.
    for i in 0..3 {
        let (status, body) = resident
            .post("/api/v1/orders", yongfu_order(&format!("审计测试诉求 {i}")))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, newer) = auditor.post("/api/v1/audit/checkpoints", json!({})).await;
    assert_eq!(status, 201, "{newer}");
    let newer = newer["checkpoint"].clone();
    let new_size = newer["tree_size"].as_u64().unwrap();
    assert!(new_size > held_size);
    let (status, proof) = auditor
        .get(&format!("/api/v1/audit/consistency?from_size={held_size}"))
        .await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["checkpoint"], newer);
    let hashes: Vec<Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| chain::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    let root = |c: &Value| chain::from_hex(c["root"].as_str().unwrap()).unwrap();
    assert!(diandan_audit::merkle::verify_consistency(
        held_size,
        new_size,
        &root(&held),
        &root(&newer),
        &hashes
    ));
    let key = diandan_audit::checkpoint::parse_public_key(&public_key).unwrap();
    let newer_checkpoint: diandan_audit::Checkpoint = serde_json::from_value(newer).unwrap();
    newer_checkpoint
        .verify(&key)
        .expect("the newer checkpoint is signed");

    // An order's export, verified offline with the key alone.
    let (status, page) = auditor.get("/api/v1/audit/orders?limit=1").await;
    assert_eq!(status, 200, "{page}");
    let order_id = page["orders"][0]["order_id"].as_str().unwrap().to_owned();
    let response = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/audit/orders/{order_id}/proof")))
        .bearer_auth(&auditor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document = response.text().await.unwrap();
    let export_file = tmp.path().join("export.json");
    std::fs::write(&export_file, &document).unwrap();
    let export_path = export_file.to_str().unwrap();
    let (ok, said) = run(&["audit", "verify-export", export_path, "--key", &public_key]);
    assert!(ok, "{said}");
    assert!(said.contains("验证通过"), "{said}");
    let (status, csv) = auditor
        .get(&format!("/api/v1/audit/orders/{order_id}/proof?format=csv"))
        .await;
    assert_eq!(status, 200);
    assert!(csv.as_str().unwrap().contains("哈希"), "{csv}");

    // Edited (the payload of one event, re-encoded), truncated, another system's key: refused.
    let mut export: Value = serde_json::from_str(&document).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = b64
        .decode(export["events"][0]["data_base64"].as_str().unwrap())
        .unwrap();
    let edited = String::from_utf8(data)
        .unwrap()
        .replacen("\"at\"", "\"at\" ", 1);
    export["events"][0]["data_base64"] = json!(b64.encode(edited));
    export["events"][0].as_object_mut().unwrap().remove("data");
    let edited_file = tmp.path().join("export-edited.json");
    std::fs::write(&edited_file, export.to_string()).unwrap();
    let truncated_file = tmp.path().join("export-truncated.json");
    std::fs::write(&truncated_file, &document[..document.len() / 2]).unwrap();
    let other_key = diandan_audit::checkpoint::encode_public_key(
        &diandan_audit::checkpoint::generate_key().verifying_key(),
    );
    for (file, key, why) in [
        (&edited_file, public_key.as_str(), "altered"),
        (&truncated_file, public_key.as_str(), "not a diandan export"),
        (&export_file, other_key.as_str(), "another system"),
    ] {
        let (ok, said) = run(&[
            "audit",
            "verify-export",
            file.to_str().unwrap(),
            "--key",
            key,
        ]);
        assert!(!ok, "{why}: {said}");
        assert!(
            said.contains("验证失败") && said.contains(why),
            "{why}: {said}"
        );
    }
    let (ok, said) = run(&["audit", "verify-export", export_path, "--key", "not-a-key"]);
    assert!(!ok && said.contains("--key"), "{said}");

    // Bad input over HTTP: a clear 4xx naming the field; nobody else signs or exports.
    let (status, problem) = auditor.get("/api/v1/audit/consistency?from_size=0").await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "from_size");
    let (status, problem) = auditor
        .get(&format!(
            "/api/v1/audit/consistency?from_size={}",
            new_size + 1000
        ))
        .await;
    assert_eq!(
        status, 409,
        "a held checkpoint larger than the log: {problem}"
    );
    assert_eq!(problem["field"], "from_size");
    let (status, _) = auditor.get("/api/v1/audit/checkpoint?tree_size=7").await;
    assert_eq!(status, 404);
    let (status, _) = auditor
        .get("/api/v1/audit/orders/no-such-order/proof")
        .await;
    assert_eq!(status, 404);
    let (status, problem) = auditor
        .get(&format!("/api/v1/audit/orders/{order_id}/proof?format=xml"))
        .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("format")));
    let (status, _) = resident.post("/api/v1/audit/checkpoints", json!({})).await;
    assert_eq!(status, 403);
    let (status, _) = resident
        .get(&format!("/api/v1/audit/orders/{order_id}/proof"))
        .await;
    assert_eq!(status, 403);
    let _ = head;

    // Online: the live store verifies while the system runs.
    let (ok, said) = verify(&data_dir, &[]);
    assert!(ok, "{said}");
    server.stop_gracefully();

    // Offline: the stopped system verifies, with the held checkpoint too.
    let held_arg = held_file.to_str().unwrap();
    let (ok, said) = verify(&data_dir, &["--checkpoint", held_arg]);
    assert!(ok, "{said}");
    assert!(said.contains("未发现篡改"), "{said}");

    // One event altered directly in the database.
    let altered = copy_of(&data_dir, "altered");
    let (position, stream, revision) = middle_event(&events_db(&altered), held_size as i64);
    events_db(&altered)
        .execute(
            "UPDATE events SET data = CAST(replace(CAST(data AS TEXT), '\"at\"', '\"at\" ') AS BLOB) WHERE position = ?1",
            [position],
        )
        .unwrap();
    let (ok, said) = verify(&altered, &[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains(&format!(
            "已篡改：{stream} 修订 {revision}（位置 {position}）"
        )),
        "{said}"
    );

    // One deleted.
    let deleted = copy_of(&data_dir, "deleted");
    let (position, stream, revision) = middle_event(&events_db(&deleted), held_size as i64);
    events_db(&deleted)
        .execute("DELETE FROM events WHERE position = ?1", [position])
        .unwrap();
    let (ok, said) = verify(&deleted, &[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains(&format!("已删除：{stream} 修订 {revision}–{revision}")),
        "{said}"
    );

    // Two (of different streams) swapped.
    let swapped = copy_of(&data_dir, "swapped");
    let (a, stream_a, revision_a, stream_b): (i64, String, i64, String) = events_db(&swapped)
        .query_row(
            "SELECT e.position, e.stream, e.revision, n.stream FROM events e
             JOIN events n ON n.position = e.position + 1 AND n.stream <> e.stream
             WHERE e.position < ?1 / 2 ORDER BY e.position DESC LIMIT 1",
            [held_size as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let b = a + 1;
    events_db(&swapped)
        .execute_batch(&format!(
            "UPDATE events SET position = -1 WHERE position = {a};
             UPDATE events SET position = {a} WHERE position = {b};
             UPDATE events SET position = {b} WHERE position = -1;"
        ))
        .unwrap();
    let (ok, said) = verify(&swapped, &[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains(&format!(
            "顺序被改动：{stream_a} 修订 {revision_a} 现位于位置 {b}，签名时位于位置 {a}"
        )),
        "{said}"
    );
    assert!(said.contains(&format!("顺序被改动：{stream_b}")), "{said}");

    // One inserted among signed events: a forged order of its own, chained correctly.
    let inserted = copy_of(&data_dir, "inserted");
    let at = held_size as i64 / 2;
    {
        let db = events_db(&inserted);
        db.execute_batch(&format!(
            "UPDATE events SET position = position + 1000000000 WHERE position >= {at};
             UPDATE events SET position = position - 999999999 WHERE position >= 1000000000;"
        ))
        .unwrap();
        let event_id = uuid::Uuid::new_v4();
        let data = br#"{"type":"OrderPlaced","forged":true}"#;
        let hash = chain::event_hash(
            &chain::GENESIS,
            chain::EventContent {
                stream: "order-forged",
                revision: 0,
                event_id: &event_id,
                event_type: "OrderPlaced",
                data,
                metadata: b"{}",
            },
        );
        db.execute(
            "INSERT INTO events (position, stream, revision, event_id, event_type, data, metadata,
                                 recorded_at_ms, hash)
             VALUES (?1, 'order-forged', 0, ?2, 'OrderPlaced', ?3, x'7b7d', 1, ?4)",
            params![at, &event_id.as_bytes()[..], &data[..], &hash[..]],
        )
        .unwrap();
    }
    let (ok, said) = verify(&inserted, &[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains(&format!("被插入：order-forged 修订 0（位置 {at}）")),
        "{said}"
    );
    assert!(
        !said.contains("顺序被改动"),
        "renumbering alone is no reorder: {said}"
    );

    // An edit whose stream's chain, the witness and the system's own checkpoints were all
    // recomputed (the key is in the data dir): the system's records agree with themselves,
    // and only the checkpoint the auditor kept tells.
    let rewritten = copy_of(&data_dir, "rewritten");
    let (position, stream, _) = middle_event(&events_db(&rewritten), held_size as i64);
    {
        let db = events_db(&rewritten);
        db.execute(
            "UPDATE events SET data = CAST(replace(CAST(data AS TEXT), '\"at\"', '\"at\" ') AS BLOB) WHERE position = ?1",
            [position],
        )
        .unwrap();
        let mut statement = db
            .prepare(
                "SELECT position, revision, event_id, event_type, data, metadata FROM events
                 WHERE stream = ?1 ORDER BY revision",
            )
            .unwrap();
        let rows: Vec<StoredRow> = statement
            .query_map([&stream], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let audit = Connection::open(rewritten.join("audit.db")).unwrap();
        let mut prev = chain::GENESIS;
        for (position, revision, event_id, event_type, data, metadata) in rows {
            let event_id = uuid::Uuid::from_slice(&event_id).unwrap();
            prev = chain::event_hash(
                &prev,
                chain::EventContent {
                    stream: &stream,
                    revision,
                    event_id: &event_id,
                    event_type: &event_type,
                    data: &data,
                    metadata: &metadata,
                },
            );
            db.execute(
                "UPDATE events SET hash = ?1 WHERE position = ?2",
                params![&prev[..], position],
            )
            .unwrap();
            audit
                .execute(
                    "UPDATE leaves SET hash = ?1 WHERE position = ?2",
                    params![&prev[..], position],
                )
                .unwrap();
        }
        audit.execute("DELETE FROM checkpoints", []).unwrap();
    }
    let dir = rewritten.to_str().unwrap();
    let (ok, said) = run(&["audit", "checkpoint", "--data-dir", dir]);
    assert!(ok, "{said}");
    let (ok, said) = verify(&rewritten, &[]);
    assert!(ok, "the rewrite is consistent with itself: {said}");
    let (ok, said) = verify(&rewritten, &["--checkpoint", held_arg]);
    assert!(!ok, "{said}");
    assert!(said.contains("检查点不符"), "{said}");
    assert!(said.contains(held_arg), "names the held checkpoint: {said}");

    // A checkpoint from another system, and a file that holds none: clear errors.
    let other = diandan_audit::checkpoint::generate_key();
    let foreign = diandan_audit::Checkpoint::sign(&other, 3, 3, &[1; 32], 1);
    let foreign_file = tmp.path().join("foreign.json");
    std::fs::write(&foreign_file, serde_json::to_string(&foreign).unwrap()).unwrap();
    let (ok, said) = verify(&data_dir, &["--checkpoint", foreign_file.to_str().unwrap()]);
    assert!(
        !ok && said.contains("检查点无效") && said.contains("another system"),
        "{said}"
    );
    let (ok, said) = verify(
        &data_dir,
        &["--checkpoint", truncated_file.to_str().unwrap()],
    );
    assert!(!ok && said.contains("not a diandan checkpoint"), "{said}");
}
