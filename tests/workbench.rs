//! The console's workbench against the real binary: rosters imported from CSV and Excel
//! (every row checked first, nothing half-imported, a retry answered), volunteers edited and
//! deactivated (a deactivated one accepts nothing), the auditor's search and its streamed
//! CSV/JSON export (rows equal to the search's), the queue's lights, and bad input on each.

mod support;

use serde_json::{json, Value};

use support::{yongfu_order, Server, User, LOCATION};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

async fn upload(
    user: &User,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = user
        .http
        .post(format!("{}/api/v1/volunteers/import{query}", user.base))
        .bearer_auth(&user.token)
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("upload");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn volunteer_ids(user: &User) -> Vec<String> {
    let (status, list) = user
        .get("/api/v1/volunteers?node_id=chezhanlu&include_inactive=true")
        .await;
    assert_eq!(status, 200, "{list}");
    list["volunteers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The log's position as the read model has it (unchanged when nothing was written).
async fn position(user: &User) -> u64 {
    at_least(user, 0).await
}

/// The read model's position once it reflects `min` (a command's answer): before the
/// read model caught up with that command, an unchanged position would prove nothing.
async fn at_least(user: &User, min: u64) -> u64 {
    let (_, stats) = user
        .get(&format!("/api/v1/nodes/chezhanlu/stats?min_position={min}"))
        .await;
    stats["position"].as_u64().unwrap()
}

#[tokio::test]
async fn rosters_import_every_row_or_none() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let before = volunteer_ids(&head).await;
    let at = position(&head).await;

    // Good and bad rows: every bad one is reported with its row and column; no one is added.
    let sheet = "\u{feff}编号,姓名,手机号,服务队,技能\n\
                 v-csv-01,何晓燕,13971000101,zhidui-chezhanlu,关爱老人\n\
                 v-csv-02,,1397100,zhidui-chezhanlu,\n\
                 v-csv-03,林强,13971000103,no-such-team,repair\n\
                 v-csv-01,重复编号,,zhidui-chezhanlu,\n\
                 v-csv-05,马丽,13971000105,zhidui-meiyuan,飞行\n\
                 v-csv-06,周敏,,zhidui-chezhanlu；zhidui-chezhanlu,\n";
    let (status, problem) = upload(&head, "", "text/csv", sheet.as_bytes().to_vec(), None).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "sheet");
    let errors = problem["errors"].as_array().unwrap();
    let cells: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    for expected in [
        (3, "姓名"),
        (3, "手机号"),
        (4, "服务队"),
        (5, "编号"),
        (6, "服务队"), // 梅园's team is outside 车站路's subtree
        (6, "技能"),
        (7, "服务队"), // the same team twice
    ] {
        assert!(cells.contains(&expected), "{expected:?} not in {cells:?}");
    }
    assert!(!problem["detail"].as_str().unwrap().is_ascii());
    assert_eq!(
        volunteer_ids(&head).await,
        before,
        "a refused import added someone"
    );
    assert_eq!(
        position(&head).await,
        at,
        "a refused import wrote to the log"
    );

    // A dry run of good rows reports and writes nothing.
    let good = "编号,姓名,手机号,服务队\nv-csv-11,何晓燕,13971000111,zhidui-chezhanlu\nv-csv-12,林强,,zhidui-chezhanlu\n";
    let (status, report) = upload(
        &head,
        "?dry_run=true",
        "text/csv",
        good.as_bytes().to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["rows"].as_u64(), report["imported"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(position(&head).await, at);

    // The same rows for real; a retry with the same key is answered, not applied twice.
    let (status, report) = upload(
        &head,
        "",
        "text/csv",
        good.as_bytes().to_vec(),
        Some("roster-1"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 2);
    let after_first = report["position"].as_u64().unwrap();
    let (status, again) = upload(
        &head,
        "",
        "text/csv",
        good.as_bytes().to_vec(),
        Some("roster-1"),
    )
    .await;
    // Every id is now registered: the retry is refused row by row, and writes nothing.
    assert_eq!(status, 422, "{again}");
    head.get(&format!("/api/v1/volunteers?min_position={after_first}"))
        .await;
    let ids = volunteer_ids(&head).await;
    assert!(ids.contains(&"v-csv-11".to_owned()) && ids.contains(&"v-csv-12".to_owned()));
    assert_eq!(ids.len(), before.len() + 2);

    // An Excel workbook (numbers typed as numbers, skills by their Chinese names).
    let xlsx = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/roster.xlsx"
    ))
    .expect("fixture");
    // (Its second volunteer also joins 永安's own team: the institute's admin imports it.)
    let admin = User::login(&server, "institute_admin", "admin-yongan", "yongan").await;
    let (status, report) = upload(&admin, "", XLSX, xlsx, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 3);
    let (_, list) = head
        .get(&format!(
            "/api/v1/volunteers?node_id=chezhanlu&min_position={}",
            report["position"]
        ))
        .await;
    let imported = list["volunteers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "v-xlsx-02")
        .cloned()
        .expect("v-xlsx-02 listed");
    assert_eq!(imported["phone_masked"], "139****0002");
    assert_eq!(
        imported["team_ids"],
        json!(["fendui-yongan", "zhidui-chezhanlu"])
    );

    // Sheets that cannot be read: a clear 4xx naming the sheet or the body, nothing written.
    let at = position(&head).await;
    for (content_type, body, expected, field) in [
        (XLSX, b"not a workbook".to_vec(), 400, "sheet"),
        ("text/csv", vec![0xff, 0xfe, 0x41], 400, "sheet"),
        ("text/csv", b"name,phone\nx,1\n".to_vec(), 400, "sheet"),
        ("text/csv", Vec::new(), 400, "sheet"),
        ("application/pdf", b"%PDF".to_vec(), 415, "Content-Type"),
    ] {
        let (status, problem) = upload(&head, "", content_type, body, None).await;
        assert_eq!(status, expected, "{content_type}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert!(!problem["detail"].as_str().unwrap().is_ascii(), "{problem}");
    }
    // Oversized: refused before it is read (its own connection: the server closes it).
    let fresh = User {
        http: reqwest::Client::new(),
        ..head.clone()
    };
    let (status, problem) = upload(&fresh, "", "text/csv", vec![b'a'; 6 * 1024 * 1024], None).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (413, Some("body")),
        "{problem}"
    );
    assert_eq!(position(&head).await, at);

    // An auditor may not import.
    let auditor = User::login(&server, "auditor", "audit-roster", "xianan").await;
    let (status, _) = upload(&auditor, "", "text/csv", good.as_bytes().to_vec(), None).await;
    assert_eq!(status, 403);
}

async fn put(user: &User, path: &str, body: Value) -> (u16, Value) {
    let response = user
        .http
        .put(format!("{}{path}", user.base))
        .bearer_auth(&user.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_deactivated_volunteer_accepts_nothing_until_reactivated() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let resident = User::login(&server, "resident", "r-workbench", "").await;
    let volunteer = User::login(&server, "volunteer", "v-liuhong", "").await;

    let (status, problem) = head
        .post(
            "/api/v1/volunteers/v-liuhong/active",
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, 400, "deactivating says why: {problem}");
    assert_eq!(problem["field"], "reason");
    let (status, done) = head
        .post(
            "/api/v1/volunteers/v-liuhong/active",
            json!({"active": false, "reason": "外出务工，暂停服务"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert!(done["position"].as_u64().unwrap() > 0);
    // Saying it again changes nothing.
    let (status, again) = head
        .post(
            "/api/v1/volunteers/v-liuhong/active",
            json!({"active": false, "reason": "外出务工，暂停服务"}),
        )
        .await;
    assert_eq!((status, again["position"].as_u64()), (200, Some(0)));

    let order = |description: &str| {
        let mut order = yongfu_order(description);
        order["station_id"] = json!("chezhanlu");
        order
    };
    let (_, placed) = resident
        .post("/api/v1/orders", order("停用志愿者不能接单"))
        .await;
    let id = placed["order_id"].as_str().unwrap().to_owned();
    head.post(
        &format!("/api/v1/orders/{id}/triage"),
        json!({"accept": true}),
    )
    .await;
    let (status, dispatched) = head
        .post(
            &format!("/api/v1/orders/{id}/dispatch"),
            json!({"team_id": "zhidui-chezhanlu"}),
        )
        .await;
    assert_eq!(status, 200, "{dispatched}");
    let accept = json!({"team_id": "zhidui-chezhanlu"});
    let (status, refused) = volunteer
        .post(&format!("/api/v1/orders/{id}/accept"), accept.clone())
        .await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("停用"));

    let (status, _) = head
        .post(
            "/api/v1/volunteers/v-liuhong/active",
            json!({"active": true}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, accepted) = volunteer
        .post(&format!("/api/v1/orders/{id}/accept"), accept)
        .await;
    assert_eq!(status, 200, "{accepted}");

    // Edits: teams must exist and lie in one's subtree; the list follows.
    let (status, problem) = put(
        &head,
        "/api/v1/volunteers/v-liuhong",
        json!({"name": "刘红", "team_ids": ["zhidui-meiyuan"]}),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    // A team listed twice, or more teams than anyone serves in: refused, naming the field
    // (each id is a term of the volunteer's list queries), and nothing written.
    let at = at_least(&head, accepted["position"].as_u64().unwrap()).await;
    let many: Vec<String> = (0..21).map(|i| format!("t-{i}")).collect();
    for team_ids in [json!(["zhidui-chezhanlu", "zhidui-chezhanlu"]), json!(many)] {
        let (status, problem) = put(
            &head,
            "/api/v1/volunteers/v-liuhong",
            json!({"name": "刘红", "team_ids": team_ids}),
        )
        .await;
        assert_eq!(
            (status, &problem["field"]),
            (400, &json!("team_ids")),
            "{problem}"
        );
        let (status, problem) = head
            .post(
                "/api/v1/volunteers",
                json!({"id": "v-many-teams", "name": "张三", "team_ids": team_ids}),
            )
            .await;
        assert_eq!(
            (status, &problem["field"]),
            (400, &json!("team_ids")),
            "{problem}"
        );
    }
    assert_eq!(position(&head).await, at, "a refused edit wrote to the log");
    let (status, changed) = put(
        &head,
        "/api/v1/volunteers/v-liuhong",
        json!({"name": "刘红英", "team_ids": ["zhidui-chezhanlu"], "skills": ["repair"]}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let (_, list) = head
        .get(&format!(
            "/api/v1/volunteers?node_id=chezhanlu&min_position={}",
            changed["position"]
        ))
        .await;
    let entry = list["volunteers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "v-liuhong")
        .cloned()
        .unwrap();
    assert_eq!(entry["name"], "刘红英");
    assert_eq!(entry["team_ids"], json!(["zhidui-chezhanlu"]));
    assert_eq!(entry["skills"], json!(["repair"]));
    assert_eq!(entry["active"], true);
    // Another station's head cannot touch them.
    let other = User::login(&server, "station_head", "head-meiyuan", "meiyuan").await;
    let (status, _) = other
        .post(
            "/api/v1/volunteers/v-liuhong/active",
            json!({"active": false, "reason": "越权测试"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = other
        .post(
            "/api/v1/volunteers/v-nobody/active",
            json!({"active": true}),
        )
        .await;
    assert_eq!(status, 404);
}

async fn export(user: &User, query: &str) -> (u16, String, Vec<u8>) {
    let response = user
        .http
        .get(format!("{}/api/v1/audit/orders/export?{query}", user.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let disposition = response
        .headers()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        disposition,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn the_auditor_searches_and_exports_what_the_search_finds() {
    let server = Server::start_demo().await;
    let auditor = User::login(&server, "auditor", "audit-workbench", "xianan").await;

    // Every finished order of the district, a page of 7 at a time.
    let mut searched = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = auditor
            .get(&format!("/api/v1/audit/orders?limit=7&after={after}"))
            .await;
        assert_eq!(status, 200, "{page}");
        for row in page["orders"].as_array().unwrap() {
            assert!(["completed", "reviewed", "closed"].contains(&row["status"].as_str().unwrap()));
            assert!(
                row.get("contact_phone").is_none(),
                "no contact data in an audit row"
            );
            searched.push(row["order_id"].as_str().unwrap().to_owned());
        }
        after = page["next_after"].as_str().unwrap().to_owned();
        if after.is_empty() {
            break;
        }
    }
    assert!(searched.len() > 7, "{searched:?}");

    let (status, disposition, csv) = export(&auditor, "format=csv").await;
    assert_eq!(status, 200);
    assert!(
        disposition.starts_with("attachment; filename=\"orders-"),
        "{disposition}"
    );
    assert!(
        csv.starts_with("\u{feff}订单编号,".as_bytes()),
        "UTF-8 BOM and Chinese header"
    );
    let mut reader = csv::Reader::from_reader(&csv[3..]);
    let exported: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(exported, searched, "the export's rows are the search's");

    let (status, _, json) = export(&auditor, "format=json").await;
    assert_eq!(status, 200);
    let rows: Vec<Value> = serde_json::from_slice(&json).expect("a JSON array");
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, searched);

    // Filters: rating, category, volunteer, station.
    let (_, low) = auditor
        .get("/api/v1/audit/orders?max_rating=3&limit=500")
        .await;
    for row in low["orders"].as_array().unwrap() {
        let rating = row["rating"].as_u64().unwrap();
        assert!((1..=3).contains(&rating), "{row}");
    }
    let (_, repairs) = auditor
        .get("/api/v1/audit/orders?category=repair&node_id=chezhanlu&limit=500")
        .await;
    for row in repairs["orders"].as_array().unwrap() {
        assert_eq!(
            (row["category"].as_str(), row["station_id"].as_str()),
            (Some("repair"), Some("chezhanlu"))
        );
    }
    let (_, by_volunteer) = auditor
        .get("/api/v1/audit/orders?volunteer_id=v-zhaolei&limit=500")
        .await;
    assert!(!by_volunteer["orders"].as_array().unwrap().is_empty());
    for row in by_volunteer["orders"].as_array().unwrap() {
        assert_eq!(row["volunteer_id"], "v-zhaolei");
    }

    // Bad input: a clear 400 naming the parameter.
    for (query, field) in [
        ("format=xml", "format"),
        ("min_rating=9", "min_rating"),
        ("from_day=2026-13-01", "from_day"),
        ("category=flying", "category"),
        ("status=nope", "status"),
    ] {
        let (status, _, body) = export(&auditor, query).await;
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }
    let (status, problem) = auditor.get("/api/v1/audit/orders?after=garbage").await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("after")),
        "{problem}"
    );

    // Outside one's subtree: refused before any row.
    let head = User::login(&server, "station_head", "head-meiyuan", "meiyuan").await;
    let (status, _, _) = export(&head, "node_id=chezhanlu").await;
    assert_eq!(status, 403);
    // Residents and volunteers have no workbench.
    let resident = User::login(&server, "resident", "r-audit", "").await;
    let (status, _) = resident.get("/api/v1/audit/orders").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_queue_shows_each_orders_lights_and_pending_extensions() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let resident = User::login(&server, "resident", "r-lights", "").await;
    let volunteer = User::login(&server, "volunteer", "v-wangsen", "").await;
    let mut order = yongfu_order("时限灯测试");
    order["station_id"] = json!("chezhanlu");
    let (_, placed) = resident.post("/api/v1/orders", order).await;
    let id = placed["order_id"].as_str().unwrap().to_owned();
    let (_, view) = head.get(&format!("/api/v1/orders/{id}")).await;
    let deadlines = view["deadlines"].as_array().unwrap();
    assert_eq!(deadlines.len(), 1, "{view}");
    assert_eq!(deadlines[0]["name"], "triage");
    assert_eq!(deadlines[0]["label"], "审单");
    assert_eq!(deadlines[0]["light"], "green");
    assert!(deadlines[0]["due_at"].as_str().unwrap() > deadlines[0]["warn_at"].as_str().unwrap());

    head.post(
        &format!("/api/v1/orders/{id}/triage"),
        json!({"accept": true}),
    )
    .await;
    let (_, dispatched) = head
        .post(
            &format!("/api/v1/orders/{id}/dispatch"),
            json!({"team_id": "zhidui-chezhanlu"}),
        )
        .await;
    let (_, queue) = head
        .get(&format!(
            "/api/v1/nodes/chezhanlu/queue?limit=500&min_position={}",
            dispatched["position"]
        ))
        .await;
    assert!(
        queue["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["order_id"] == id.as_str()),
        "waiting to be accepted: on the board"
    );
    let (status, accepted) = volunteer
        .post(
            &format!("/api/v1/orders/{id}/accept"),
            json!({"team_id": "zhidui-chezhanlu"}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    let (_, queue) = head
        .get(&format!(
            "/api/v1/nodes/chezhanlu/queue?limit=500&min_position={}",
            accepted["position"]
        ))
        .await;
    assert!(!queue["orders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["order_id"] == id.as_str()));
    volunteer
        .post(
            &format!("/api/v1/orders/{id}/check-in"),
            json!({"location": LOCATION()}),
        )
        .await;
    let (_, view) = volunteer.get(&format!("/api/v1/orders/{id}")).await;
    let due = view["deadlines"][0]["due_at"].as_str().unwrap().to_owned();
    let until = time::OffsetDateTime::parse(&due, &time::format_description::well_known::Rfc3339)
        .unwrap()
        + time::Duration::days(3);
    let (status, asked) = volunteer
        .post(
            &format!("/api/v1/orders/{id}/extension"),
            json!({"deadline": "complete", "reason": "等待配件",
                   "until": until.format(&time::format_description::well_known::Rfc3339).unwrap()}),
        )
        .await;
    assert_eq!(status, 200, "{asked}");
    let (_, queue) = head
        .get(&format!(
            "/api/v1/nodes/chezhanlu/queue?limit=500&min_position={}",
            asked["position"]
        ))
        .await;
    let row = queue["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["order_id"] == id.as_str())
        .cloned()
        .expect("an extension to decide: on the board");
    assert!(!row["deadlines"][0]["extension_requested_until"]
        .as_str()
        .unwrap()
        .is_empty());
}

/// A CST (UTC+8) wall-clock time of an RFC 3339 instant.
fn cst(at: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .to_offset(time::macros::offset!(+8))
}

#[tokio::test]
async fn the_demo_replays_a_year_of_office_hours() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(tmp.path(), true, &[("DIANDAN_DEMO_HISTORY", "120")]);
    // The demo registers the district just after start: sign in once it exists.
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http);
    for _ in 0..600 {
        if support::try_login_at(&http, &base, "centre_admin", "admin-history", "xianan")
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let admin = User::login(&server, "centre_admin", "admin-history", "xianan").await;
    let mut stats = Value::Null;
    // The history is replayed order by order beside the showcase, and the love supermarket's
    // redemptions follow once it is written: wait for them, or the year is read half-replayed.
    for _ in 0..1800 {
        stats = admin.get("/api/v1/nodes/xianan/stats").await.1;
        if stats["received"].as_u64() >= Some(112 + 120) && stats["redemptions"].as_u64() > Some(0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stats["received"].as_u64() >= Some(232), "{stats}");
    assert!(stats["redemptions"].as_u64() > Some(0), "{stats}");
    // Spread over the year, with human delays — not all in one second.
    let days = stats["by_day"].as_array().unwrap().len();
    assert!(days >= 40, "{days} days with orders");
    // The history alone (up to yesterday, China Standard Time): today's showcase orders are
    // dispatched and completed at once and, on some days, outnumber the history's in the medians.
    let yesterday = (cst(&time_now()) - time::Duration::days(1)).date();
    let (_, history_stats) = admin
        .get(&format!("/api/v1/nodes/xianan/stats?to_day={yesterday}"))
        .await;
    assert!(
        history_stats["median_minutes_to_dispatch"]
            .as_f64()
            .unwrap()
            > 10.0,
        "{history_stats}"
    );
    assert!(
        history_stats["median_minutes_to_complete"]
            .as_f64()
            .unwrap()
            > 60.0,
        "{history_stats}"
    );
    assert!(stats["volunteer_hours"].as_f64().unwrap() > 10.0, "{stats}");
    assert!(stats["active_volunteers"].as_u64().unwrap() > 20, "{stats}");
    // The district's thirteen towns and streets.
    let (_, tree) = admin.get("/api/v1/org").await;
    let institutes = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["level"] == "institute")
        .count();
    assert_eq!(institutes, 13);
    // Placed in office hours on working days (China Standard Time).
    let (_, found) = admin.get("/api/v1/audit/orders?limit=500").await;
    let rows = found["orders"].as_array().unwrap();
    let history: Vec<&Value> = rows
        .iter()
        .filter(|r| !r["station_id"].as_str().unwrap().is_empty())
        .filter(|r| {
            cst(r["placed_at"].as_str().unwrap()) < cst(&time_now()) - time::Duration::days(1)
        })
        .collect();
    assert!(
        history.len() > 50,
        "{} finished history orders",
        history.len()
    );
    for row in &history {
        let placed = cst(row["placed_at"].as_str().unwrap());
        assert!(
            (8..18).contains(&placed.hour())
                && !matches!(
                    placed.weekday(),
                    time::Weekday::Saturday | time::Weekday::Sunday
                ),
            "placed outside office hours: {row}"
        );
        assert!(row["completed_at"].as_str().unwrap() > row["placed_at"].as_str().unwrap());
    }
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn stopping_during_the_demo_history_is_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_env(tmp.path(), true, &[("DIANDAN_DEMO_HISTORY", "20000")]);
    // Well into the replay (the timer runner is held meanwhile).
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let started = std::time::Instant::now();
    let status = server.stop_gracefully();
    assert!(status.success(), "{status:?}");
    // A liveness bound, not a speed figure: the replay is left, not finished (20,000 orders
    // take minutes here), with room for a loaded machine's last checkpoint and fsync.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "stopped {:?} after SIGTERM",
        started.elapsed()
    );
    println!("stopped {:?} after SIGTERM", started.elapsed());
}
