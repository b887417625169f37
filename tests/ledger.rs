//! Volunteer hours, points and the love supermarket against the real binary, over HTTP: 51
//! volunteers serve an activity (one checking in 2 km away), the ledger credits each their own
//! minute and point, the far check-in waits for the station head; a correction takes the point
//! back; hours added by hand are marked and earn none; 50 volunteers race for the last 10
//! units of an item and exactly 10 win; one-time codes: forged, reused and other people's
//! refused; cancellations give points and stock back; and the bad input of each, refused with
//! a clear 4xx naming the field, changing nothing.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::{yongfu_order, Server, User, LOCATION};

const TEAM: &str = "zhidui-chezhanlu";
const STATION: &str = "chezhanlu";

/// Polls `f` until it holds (the ledger's process manager works behind the commands).
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 30 s: {what}");
}

async fn record(user: &User, volunteer: &str) -> Value {
    let (status, body) = user
        .get(&format!("/api/v1/volunteers/{volunteer}/record"))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn int(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or(0)
}

/// An item of the station's catalogue, as the read model has it at `position` (0: now).
async fn item(head: &User, item_id: &str, position: u64) -> Value {
    let (status, body) = head
        .get(&format!(
            "/api/v1/shop/items?node_id={STATION}&min_position={position}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item_id"] == item_id)
        .cloned()
        .unwrap_or_else(|| panic!("no item {item_id} in {body}"))
}

/// A problem names the field it is about.
fn names(problem: &Value, field: &str) -> bool {
    problem.to_string().contains(field)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hours_points_and_the_love_supermarket_over_http() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", STATION).await;

    // 51 volunteers of 车站路支队 (lv-far will check in far from the place).
    let mut ids: Vec<String> = (0..50).map(|i| format!("lv-{i}")).collect();
    ids.push("lv-far".into());
    for (i, id) in ids.iter().enumerate() {
        let (status, body) = head
            .post(
                "/api/v1/volunteers",
                json!({"id": id, "name": format!("积分志愿者{i}"), "team_ids": [TEAM]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut volunteers = Vec::new();
    for id in &ids {
        volunteers.push(User::login(&server, "volunteer", id, "").await);
    }

    // An activity needing all 51; each claims, and checks in.
    let mut activity = yongfu_order("积分测试：周六清扫永福巷");
    activity["workflow"] = json!("open-claim");
    activity["required_volunteers"] = json!(ids.len());
    let (status, ack) = head.post("/api/v1/orders", activity).await;
    assert_eq!(status, 201, "{ack}");
    let order = ack["order_id"].as_str().unwrap().to_owned();
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{order}/triage"),
            json!({"accept": true}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    for (id, v) in ids.iter().zip(&volunteers) {
        let (status, ack) = v
            .post(
                &format!("/api/v1/orders/{order}/claim"),
                json!({"team_id": TEAM}),
            )
            .await;
        assert_eq!(status, 200, "{id}: {ack}");
        // About 2.2 km north of the place: held for the station head.
        let place = if id == "lv-far" {
            json!({"lat": 29.8911, "lng": 114.2840, "address": "远处"})
        } else {
            LOCATION()
        };
        let (status, ack) = v
            .post(
                &format!("/api/v1/orders/{order}/check-in"),
                json!({"location": place}),
            )
            .await;
        assert_eq!(status, 200, "{id}: {ack}");
    }
    let checked_in = Instant::now();

    // While they serve: the shop's shelves, and bad input that needs no points.
    let soap = json!({"item_id": "ld-soap", "node_id": STATION, "name": "洗衣皂",
                      "centipoints": 1, "stock": 10});
    let (status, ack) = head.post("/api/v1/shop/items", soap.clone()).await;
    assert_eq!(status, 201, "{ack}");
    let (status, problem) = head.post("/api/v1/shop/items", soap).await;
    assert_eq!(status, 409, "the same item twice: {problem}");
    let (status, ack) = head
        .post(
            "/api/v1/shop/items",
            json!({"item_id": "ld-rare", "node_id": STATION, "name": "绝版纪念册",
                   "centipoints": 1, "stock": 0}),
        )
        .await;
    assert_eq!(status, 201, "{ack}");
    let listed = ack["ack"]["position"].as_u64().unwrap();
    for (body, field) in [
        (
            json!({"item_id": "ld-bad", "node_id": STATION, "name": "负价",
                          "centipoints": -5, "stock": 1}),
            "centipoints",
        ),
        (
            json!({"item_id": "ld-bad", "node_id": STATION, "name": "负库存",
                          "centipoints": 5, "stock": -1}),
            "stock",
        ),
        (
            json!({"item_id": "ld-bad", "node_id": STATION, "name": "  ",
                          "centipoints": 5, "stock": 1}),
            "name",
        ),
    ] {
        let (status, problem) = head.post("/api/v1/shop/items", body).await;
        assert_eq!(status, 400, "{problem}");
        assert!(names(&problem, field), "{field}: {problem}");
    }
    let (status, problem) = head
        .post(
            "/api/v1/shop/items/ld-soap/restock",
            json!({"quantity": -3}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(names(&problem, "quantity"), "{problem}");
    assert_eq!(
        item(&head, "ld-soap", listed).await["stock"],
        10,
        "nothing changed"
    );

    // Hours added by hand: marked, earning no point; a reason is required.
    let (status, problem) = head
        .post(
            "/api/v1/volunteers/lv-0/hours/adjust",
            json!({"minutes": 120, "reason": ""}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(names(&problem, "reason"), "{problem}");
    let (status, ack) = head
        .post(
            "/api/v1/volunteers/lv-0/hours/adjust",
            json!({"minutes": 120, "reason": "补录纸质签到表"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    // Hours for an order the volunteer did not serve: refused.
    let (status, problem) = head
        .post(
            "/api/v1/volunteers/lv-0/hours/adjust",
            json!({"order_id": "never-served", "minutes": 30, "reason": "更正"}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(names(&problem, "order_id"), "{problem}");
    // A volunteer reads only their own record.
    let (status, _) = volunteers[0].get("/api/v1/volunteers/lv-1/record").await;
    assert_eq!(status, 403);

    // A minute of service each.
    let served = Duration::from_secs(61).saturating_sub(checked_in.elapsed());
    tokio::time::sleep(served).await;
    for (id, v) in ids.iter().zip(&volunteers) {
        let (status, ack) = v
            .post(
                &format!("/api/v1/orders/{order}/check-out"),
                json!({"location": LOCATION()}),
            )
            .await;
        assert_eq!(status, 200, "{id}: {ack}");
    }

    // The ledger credits everyone's minute; one minute earns 0.01 point.
    eventually("everyone credited", async || {
        let mut all = true;
        for id in ids.iter().filter(|id| *id != "lv-far") {
            let r = record(&head, id).await;
            all &= int(&r, "credited_minutes") >= 1 && int(&r, "available_centipoints") >= 1;
        }
        // The far check-in is held for the head, not credited: pending once the ledger saw it.
        all && int(&record(&head, "lv-far").await, "pending_minutes") >= 1
    })
    .await;
    let lv0 = record(&volunteers[0], "me").await;
    assert_eq!(int(&lv0, "by_hand_minutes"), 120, "{lv0}");
    assert_eq!(
        int(&lv0, "available_centipoints"),
        int(&record(&head, "lv-2").await, "available_centipoints"),
        "hours added by hand earn no points: {lv0}"
    );
    assert_eq!(lv0["services"][0]["order_id"], order.as_str(), "{lv0}");

    // The far check-in waits for the station head, who confirms it.
    let far = record(&head, "lv-far").await;
    assert!(int(&far, "pending_minutes") >= 1, "{far}");
    assert_eq!(int(&far, "available_centipoints"), 0, "{far}");
    let (status, pending) = head
        .get(&format!("/api/v1/nodes/{STATION}/hours/pending"))
        .await;
    assert_eq!(status, 200, "{pending}");
    let listed = pending["services"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|s| s["volunteer_id"] == "lv-far" && s["far_m"].as_u64() > Some(1000)),
        "{pending}"
    );
    let (status, problem) = head
        .post(
            "/api/v1/volunteers/lv-far/hours/review",
            json!({"order_id": order, "decision": "maybe"}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(names(&problem, "decision"), "{problem}");
    let (status, problem) = head
        .post(
            "/api/v1/volunteers/lv-far/hours/review",
            json!({"order_id": order, "decision": "reject"}),
        )
        .await;
    assert_eq!(status, 400, "rejecting says why: {problem}");
    let (status, ack) = head
        .post(
            "/api/v1/volunteers/lv-far/hours/review",
            json!({"order_id": order, "decision": "confirm"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    // Read at the decision's position, at once: the list no longer shows it.
    let (status, pending) = head
        .get(&format!(
            "/api/v1/nodes/{STATION}/hours/pending?min_position={}",
            ack["ack"]["position"]
        ))
        .await;
    assert_eq!(status, 200, "{pending}");
    assert!(
        !pending["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["volunteer_id"] == "lv-far" && s["order_id"] == order.as_str()),
        "the confirmed service left the list: {pending}"
    );
    let (status, problem) = head
        .get(&format!(
            "/api/v1/nodes/{STATION}/hours/pending?min_position=x"
        ))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(names(&problem, "min_position"), "{problem}");
    let (status, problem) = head
        .post(
            "/api/v1/volunteers/lv-2/hours/review",
            json!({"order_id": order, "decision": "confirm"}),
        )
        .await;
    assert_eq!(status, 409, "nothing to confirm: {problem}");
    eventually("the confirmed hours earn", async || {
        int(&record(&head, "lv-far").await, "available_centipoints") >= 1
    })
    .await;

    // A correction, with a reason, takes the point back (a compensating entry); one below
    // zero is refused.
    let minutes = int(&record(&head, "lv-1").await, "credited_minutes");
    let (status, problem) = head
        .post(
            "/api/v1/volunteers/lv-1/hours/adjust",
            json!({"order_id": order, "minutes": -(minutes + 5), "reason": "签到有误"}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    let (status, ack) = head
        .post(
            "/api/v1/volunteers/lv-1/hours/adjust",
            json!({"order_id": order, "minutes": -minutes, "reason": "未实际到场"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    // The record read at the correction's position shows the corrected service at once.
    let (status, r) = head
        .get(&format!(
            "/api/v1/volunteers/lv-1/record?min_position={}",
            ack["ack"]["position"]
        ))
        .await;
    assert_eq!(status, 200, "{r}");
    let corrected = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["order_id"] == order.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the order's service in {r}"));
    assert_eq!(int(&corrected, "minutes"), 0, "{r}");
    eventually("the correction reverses the points", async || {
        let r = record(&head, "lv-1").await;
        int(&r, "credited_minutes") == 0 && int(&r, "available_centipoints") == 0
    })
    .await;
    let (status, problem) = head
        .get("/api/v1/volunteers/lv-1/record?min_position=-1")
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(names(&problem, "min_position"), "{problem}");

    // Bad redemptions: nothing held, nothing reserved.
    let points_before = int(&record(&head, "lv-2").await, "available_centipoints");
    for (body, field, expected) in [
        (json!({"quantity": -1}), "quantity", 400),
        (json!({"quantity": 0}), "quantity", 400),
        (json!({"quantity": 20}), "points", 409),
    ] {
        let (status, problem) = volunteers[2]
            .post("/api/v1/shop/items/ld-soap/reserve", body)
            .await;
        assert_eq!(status, expected, "{problem}");
        assert!(names(&problem, field), "{field}: {problem}");
    }
    let (status, problem) = volunteers[2]
        .post("/api/v1/shop/items/ld-rare/reserve", json!({"quantity": 1}))
        .await;
    assert_eq!(status, 409, "out of stock: {problem}");
    assert!(problem.to_string().contains("库存不足"), "{problem}");
    let r = record(&head, "lv-2").await;
    assert_eq!(int(&r, "available_centipoints"), points_before, "{r}");
    assert_eq!(int(&r, "held_centipoints"), 0, "{r}");
    assert_eq!(item(&head, "ld-soap", 0).await["stock"], 10);

    // The race: 50 volunteers with a point each, 10 units of soap.
    let racers: Vec<&User> = ids
        .iter()
        .zip(&volunteers)
        .filter(|(id, _)| *id != "lv-1")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(racers.len(), 50);
    let answers = futures::future::join_all(racers.iter().map(|v| async move {
        v.post("/api/v1/shop/items/ld-soap/reserve", json!({"quantity": 1}))
            .await
    }))
    .await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    let lost = answers.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!(won.len(), 10, "{answers:?}");
    assert_eq!(lost, 40, "{answers:?}");
    // The catalogue is a read model and a reservation answers no position: wait for the last.
    eventually("the race's reservations in the catalogue", async || {
        item(&head, "ld-soap", 0).await["reserved"] == 10
    })
    .await;
    let soap = item(&head, "ld-soap", 0).await;
    assert_eq!(
        (soap["stock"].as_i64(), soap["reserved"].as_i64()),
        (Some(0), Some(10)),
        "{soap}"
    );

    // A winner's code and QR image; only they see it.
    let first = &won[0]["redemption"];
    let rid = first["redemption_id"].as_str().unwrap().to_owned();
    let code = first["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 8, "{first}");
    assert!(
        first["qr_svg"].as_str().unwrap().contains("<svg"),
        "{first}"
    );
    let owner = racers
        .iter()
        .zip(&answers)
        .find(|(_, (s, b))| *s == 201 && b["redemption"]["redemption_id"] == rid.as_str())
        .map(|(v, _)| *v)
        .unwrap();
    let (status, again) = owner.get(&format!("/api/v1/shop/redemptions/{rid}")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["redemption"]["code"], code.as_str());
    let stranger = racers.iter().find(|v| !std::ptr::eq(**v, owner)).unwrap();
    let (status, _) = stranger
        .get(&format!("/api/v1/shop/redemptions/{rid}"))
        .await;
    assert_eq!(status, 404, "another volunteer's redemption");
    let (status, seen) = head.get(&format!("/api/v1/shop/redemptions/{rid}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        seen["redemption"]["code"], "",
        "the shop never reads the code: {seen}"
    );

    // The shop hands over: a forged code refused, the right one once, then never again.
    let forged = if code == "12345678" {
        "87654321"
    } else {
        "12345678"
    };
    let (status, problem) = head
        .post(
            &format!("/api/v1/shop/redemptions/{rid}/hand-over"),
            json!({"code": forged}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = head
        .post(
            &format!("/api/v1/shop/redemptions/{rid}/hand-over"),
            json!({"code": ""}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(names(&problem, "code"), "{problem}");
    let (status, done) = head
        .post(
            &format!("/api/v1/shop/redemptions/{rid}/hand-over"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["redemption"]["status"], "handed_over");
    // The catalogue read at the hand-over's position counts it at once.
    let handed = done["position"].as_u64().unwrap();
    assert!(handed > 0, "{done}");
    assert_eq!(
        item(&head, "ld-soap", handed).await["handed_over"].as_i64(),
        Some(1)
    );
    let (status, problem) = head
        .post(
            &format!("/api/v1/shop/redemptions/{rid}/hand-over"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(status, 409, "a reused code: {problem}");
    let r = record(owner, "me").await;
    assert_eq!(int(&r, "spent_centipoints"), 1, "{r}");
    assert_eq!(int(&r, "held_centipoints"), 0, "{r}");

    // Another winner cancels: the point and the unit come back; twice is refused.
    let second = won[1]["redemption"]["redemption_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let canceller = racers
        .iter()
        .zip(&answers)
        .find(|(_, (s, b))| *s == 201 && b["redemption"]["redemption_id"] == second.as_str())
        .map(|(v, _)| *v)
        .unwrap();
    let (status, problem) = canceller
        .post(
            &format!("/api/v1/shop/redemptions/{second}/cancel"),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    let (status, cancelled) = canceller
        .post(
            &format!("/api/v1/shop/redemptions/{second}/cancel"),
            json!({"reason": "不需要了"}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    let (status, _) = canceller
        .post(
            &format!("/api/v1/shop/redemptions/{second}/cancel"),
            json!({"reason": "不需要了"}),
        )
        .await;
    assert_eq!(status, 409);
    let r = record(canceller, "me").await;
    assert_eq!(
        (
            int(&r, "available_centipoints"),
            int(&r, "held_centipoints")
        ),
        (1, 0),
        "{r}"
    );
    let soap = item(&head, "ld-soap", cancelled["position"].as_u64().unwrap()).await;
    assert_eq!(
        (
            soap["stock"].as_i64(),
            soap["reserved"].as_i64(),
            soap["handed_over"].as_i64()
        ),
        (Some(1), Some(8), Some(1)),
        "{soap}"
    );

    // 评优: the station's volunteers and teams by credited hours.
    let (status, ranking) = head
        .get(&format!("/api/v1/nodes/{STATION}/rankings?limit=5"))
        .await;
    assert_eq!(status, 200, "{ranking}");
    assert_eq!(ranking["entries"][0]["id"], "lv-0", "{ranking}");
    let (status, teams) = head
        .get(&format!("/api/v1/nodes/{STATION}/rankings?by=team"))
        .await;
    assert_eq!(status, 200, "{teams}");
    assert!(
        teams["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == TEAM && t["credited_minutes"].as_i64() >= Some(50)),
        "{teams}"
    );
    let (status, problem) = head
        .get(&format!("/api/v1/nodes/{STATION}/rankings?by=street"))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(names(&problem, "by"), "{problem}");

    // The station's statistics count the ledger: credited minutes (50 volunteers' minute each —
    // lv-1's corrected away, lv-0's by-hand hours tied to no station), the points they earned,
    // and the shop's redemptions: 10 reserved (one since cancelled), one handed over.
    let (status, stats) = head.get(&format!("/api/v1/nodes/{STATION}/stats")).await;
    assert_eq!(status, 200, "{stats}");
    assert!(int(&stats, "credited_minutes") >= 50, "{stats}");
    assert!(int(&stats, "points_issued_centipoints") >= 50, "{stats}");
    assert_eq!(int(&stats, "redemptions"), 10, "{stats}");
    assert_eq!(int(&stats, "redemptions_handed_over"), 1, "{stats}");
}
