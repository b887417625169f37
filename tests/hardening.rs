//! Regression tests for what an outside client found when it tried to break the API (the
//! hardening issue): each defect, against the real binary over real HTTP and gRPC.

mod support;

use serde_json::{json, Value};

use diandan_proto::v1 as pb;
use support::{yongfu_order, Server, User};

/// Asserts RFC 9457 problem details: status, field, a Chinese title and detail.
fn assert_problem(status: u16, body: &Value, expected_status: u16, field: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["status"], expected_status, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("https://diandan.dev/problems/"),
        "{body}"
    );
    for key in ["title", "detail"] {
        let text = body[key].as_str().unwrap_or("");
        assert!(
            !text.is_empty() && !text.is_ascii(),
            "{key} not Chinese: {body}"
        );
    }
    assert_eq!(body["field"], field, "{body}");
}

fn order_with_phone(phone: &str) -> Value {
    let mut order = yongfu_order("永福巷路灯不亮，晚上出行不便。");
    order["contact_phone"] = json!(phone);
    order
}

/// Defect 1: a refused or duplicate placement never changes the stored number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_duplicate_placement_changes_no_phone_number() {
    let server = Server::start_demo().await;
    let victim = User::login(&server, "resident", "r-victim", "").await;
    let attacker = User::login(&server, "resident", "r-attacker", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let mut first = order_with_phone("13800000001");
    first["order_id"] = json!("victim-order-1");
    let (status, ack) = victim
        .post_with("/api/v1/orders", first.clone(), Some("place-victim-1"))
        .await;
    assert_eq!(status, 201, "{ack}");
    let path = "/api/v1/orders/victim-order-1";
    let phone_seen = |user: &User| {
        let user = user.clone();
        async move {
            let (status, view) = user.get(path).await;
            assert_eq!(status, 200, "{view}");
            view["contact_phone"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(phone_seen(&victim).await, "13800000001");

    // Another resident places the victim's order id with their own number: refused.
    let mut hostile = order_with_phone("15099990002");
    hostile["order_id"] = json!("victim-order-1");
    let (status, problem) = attacker.post("/api/v1/orders", hostile.clone()).await;
    assert_eq!(status, 409, "{problem}");
    // The owner re-places their own order id with another number: refused too.
    let (status, problem) = victim.post("/api/v1/orders", hostile.clone()).await;
    assert_eq!(status, 409, "{problem}");
    // An idempotent retry with the same key and another number: answered, changes nothing.
    let (status, ack) = victim
        .post_with("/api/v1/orders", hostile, Some("place-victim-1"))
        .await;
    assert_eq!((status, &ack["duplicate"]), (201, &json!(true)), "{ack}");

    assert_eq!(phone_seen(&victim).await, "13800000001");
    assert_eq!(phone_seen(&head).await, "13800000001");
    let vault = rusqlite::Connection::open(server.data_dir.join("private.db")).unwrap();
    let phones: Vec<String> = vault
        .prepare("SELECT phone FROM contacts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !phones.iter().any(|p| p == "15099990002"),
        "a refused number reached the vault: {phones:?}"
    );
}

/// Defect 3: 16 KiB values anywhere are a 4xx naming them, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_kib_values_get_a_4xx_naming_them() {
    let server = Server::start_demo().await;
    let resident = User::login(&server, "resident", "r-huge", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let huge = "x".repeat(16 * 1024);
    for (field, value) in [
        ("station_id", json!(huge)),
        ("category", json!(huge)),
        ("order_id", json!(huge)),
    ] {
        let mut order = yongfu_order("路灯不亮");
        order[field] = value;
        let (status, body) = resident.post("/api/v1/orders", order).await;
        assert_problem(status, &body, 400, field);
    }
    let (status, body) = head
        .post(
            "/api/v1/orders/some-order/dispatch",
            json!({"team_id": huge}),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    for path in [
        format!("/api/v1/nodes/{huge}/stats"),
        format!("/api/v1/nodes/{huge}/queue"),
        format!("/api/v1/orders/{huge}"),
    ] {
        let (status, body) = head.get(&path).await;
        assert!((400..500).contains(&status), "{path:.40}: {status} {body}");
        assert_eq!(body["status"], status, "{body}");
    }
    let (status, body) = head.get(&format!("/api/v1/orders?status={huge}")).await;
    assert!((400..500).contains(&status), "{status} {body}");
    let http = reqwest::Client::new();
    let (status, body) = send(
        http.post(server.url("/api/v1/dev/login"))
            .json(&json!({"role": "station_head", "user_id": "h", "org_node": huge})),
    )
    .await;
    assert_problem(status, &body, 400, "org_node");
    let (status, body) = send(
        http.post(server.url("/api/v1/orders"))
            .bearer_auth(&resident.token)
            .header("Idempotency-Key", &huge)
            .json(&yongfu_order("路灯不亮")),
    )
    .await;
    assert_problem(status, &body, 400, "idempotency-key");
    let (status, body) = send(
        http.get(server.url("/api/v1/orders"))
            .header("Authorization", format!("Bearer {huge}")),
    )
    .await;
    assert_problem(status, &body, 431, "authorization");

    // Straight to gRPC (no gateway in front): the status message stays small enough for
    // HTTP/2, so the client reads a clean InvalidArgument, not a protocol error.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut orders = pb::order_service_client::OrderServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::PlaceOrderRequest {
        station_id: huge.clone(),
        category: "health_environment".into(),
        description: "路灯不亮".into(),
        contact_phone: "13812345678".into(),
        location: Some(pb::Location {
            lat: 29.87,
            lng: 114.28,
            address: String::new(),
        }),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", resident.token).parse().unwrap(),
    );
    let status = orders.place_order(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().chars().count() < 300, "{status:?}");
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    if status >= 400 {
        assert_eq!(content_type, "application/problem+json", "{status}: {text}");
    }
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// One GET over a raw socket; the answer's status and JSON body (must be problem+json).
async fn raw_get(server: &Server, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    // The server may answer and close before reading all of a huge request line.
    let _ = socket.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).expect("a JSON body"))
}

/// Defects 4 and 5: malformed bodies are refused naming the body; every error is problem+json
/// in Chinese naming the field; nothing is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_problem_details_and_place_nothing() {
    let server = Server::start_demo().await;
    let resident = User::login(&server, "resident", "r-malformed", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let valid = serde_json::to_string(&yongfu_order("路灯不亮")).unwrap();
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(server.url("/api/v1/orders"))
            .bearer_auth(&resident.token)
            .header("content-type", "application/json")
            .body(body)
    };
    for body in [
        format!("{valid}xyz"),
        format!("{valid}{valid}"),
        r#"["", "yongfu-lane", "health_environment", "路灯不亮"]"#.to_owned(),
        String::new(),
        "[]".to_owned(),
        "{".to_owned(),
        r#"{"station_id" "yongfu-lane"}"#.to_owned(),
    ] {
        let (status, problem) = send(post(body.clone())).await;
        assert_problem(status, &problem, 400, "body");
    }
    let (status, problem) = send(
        http.post(server.url("/api/v1/orders/any/review"))
            .bearer_auth(&resident.token)
            .body(r#"{"rating":5,"rating":0}"#),
    )
    .await;
    assert_problem(status, &problem, 400, "rating");
    let (_, mine) = resident.get("/api/v1/orders").await;
    assert_eq!(mine["orders"], json!([]), "nothing was placed: {mine}");

    // Errors the router or the HTTP parser answer are problem details too.
    let (status, problem) = send(
        http.get(server.url("/api/v1/orders/%FF%FE"))
            .bearer_auth(&head.token),
    )
    .await;
    assert_problem(status, &problem, 400, "id");
    // Past the HTTP parser's own URI limit (hyper answers it before the router; reqwest
    // refuses to build such a URL, so it goes over a raw socket).
    let (status, problem) =
        raw_get(&server, &format!("/api/v1/orders/{}", "x".repeat(100_000))).await;
    assert_problem(status, &problem, 414, "path");
    let (status, problem) = send(http.delete(server.url("/api/v1/orders"))).await;
    assert_eq!(status, 405, "{problem}");
    assert!(!problem["detail"].as_str().unwrap().is_ascii(), "{problem}");
    let (status, problem) = send(
        http.get(server.url("/api/v1/nodes/0/stats"))
            .bearer_auth(&head.token),
    )
    .await;
    assert_eq!(status, 404, "{problem}");
    let (status, problem) = send(
        http.get(server.url("/api/v1/orders?limit=abc"))
            .bearer_auth(&head.token),
    )
    .await;
    assert_problem(status, &problem, 400, "limit");
    // An integral float is the integer JSON Schema says it is.
    let (status, ack) = resident
        .post("/api/v1/orders", yongfu_order("井盖松动"))
        .await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap();
    let revision = ack["revision"].as_u64().unwrap();
    let (status, body) = send(
        http.post(server.url(&format!("/api/v1/orders/{id}/cancel")))
            .bearer_auth(&resident.token)
            .body(format!(
                r#"{{"reason":"已自行解决","expected_revision":{revision}.0}}"#
            )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Defect 8: one rule for who sees the full number, the same in lists and in one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_orders_show_the_number_by_one_rule() {
    let server = Server::start_demo().await;
    let resident = User::login(&server, "resident", "r-masking", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let auditor = User::login(&server, "auditor", "audit-1", "chezhanlu").await;
    let volunteer = User::login(&server, "volunteer", "v-wangsen", "").await;
    let (status, ack) = resident
        .post("/api/v1/orders", yongfu_order("楼道灯坏了"))
        .await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let position = ack["position"].as_u64().unwrap();

    let in_list = |user: &User, path: String| {
        let (user, id) = (user.clone(), id.clone());
        async move {
            let (status, list) = user.get(&path).await;
            assert_eq!(status, 200, "{list}");
            list["orders"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["order_id"] == id.as_str())
                .map(|o| o["contact_phone"].as_str().unwrap().to_owned())
                .unwrap_or_else(|| panic!("{id} not in {path}"))
        }
    };
    let one = |user: &User| {
        let (user, id) = (user.clone(), id.clone());
        async move {
            let (status, view) = user.get(&format!("/api/v1/orders/{id}")).await;
            assert_eq!(status, 200, "{view}");
            view["contact_phone"].as_str().unwrap().to_owned()
        }
    };
    let lists = format!("/api/v1/orders?min_position={position}&limit=500");
    let queue = format!("/api/v1/nodes/chezhanlu/queue?min_position={position}&limit=500");
    assert_eq!(in_list(&resident, lists.clone()).await, "13812345678");
    assert_eq!(one(&resident).await, "13812345678");
    assert_eq!(in_list(&head, lists.clone()).await, "13812345678");
    assert_eq!(in_list(&head, queue).await, "13812345678");
    assert_eq!(one(&head).await, "13812345678");
    assert_eq!(in_list(&auditor, lists.clone()).await, "138****5678");
    assert_eq!(one(&auditor).await, "138****5678");

    // Offered to the volunteer's team: masked in both; accepted: full in both.
    let order = |suffix: &str| format!("/api/v1/orders/{id}{suffix}");
    assert_eq!(
        head.post(&order("/triage"), json!({"accept": true}))
            .await
            .0,
        200
    );
    let (status, ack) = head
        .post(
            &order("/dispatch"),
            json!({"team_id": "zhidui-chezhanlu", "reason": "本社区支队"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let lists = format!(
        "/api/v1/orders?min_position={}&limit=500",
        ack["position"].as_u64().unwrap()
    );
    assert_eq!(in_list(&volunteer, lists.clone()).await, "138****5678");
    assert_eq!(one(&volunteer).await, "138****5678");
    let (status, ack) = volunteer
        .post(&order("/accept"), json!({"team_id": "zhidui-chezhanlu"}))
        .await;
    assert_eq!(status, 200, "{ack}");
    let lists = format!(
        "/api/v1/orders?min_position={}&limit=500",
        ack["position"].as_u64().unwrap()
    );
    assert_eq!(in_list(&volunteer, lists).await, "13812345678");
    assert_eq!(one(&volunteer).await, "13812345678");

    // The loser of an accept gets the message the README promises.
    let (status, _) = head
        .post(
            "/api/v1/volunteers",
            json!({"id": "v-racer", "name": "抢单者", "team_ids": ["zhidui-chezhanlu"]}),
        )
        .await;
    assert_eq!(status, 201);
    let rival = User::login(&server, "volunteer", "v-racer", "").await;
    let (status, problem) = rival
        .post(&order("/accept"), json!({"team_id": "zhidui-chezhanlu"}))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("已被接单"),
        "{problem}"
    );
}

/// Defect 9: a position the log has not reached is refused at once; it is never answered
/// late with stale data under a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_beyond_the_log_is_refused_not_awaited() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    for path in [
        "/api/v1/orders?min_position=999999999",
        "/api/v1/nodes/chezhanlu/queue?min_position=999999999",
        "/api/v1/nodes/chezhanlu/stats?min_position=999999999",
        "/api/v1/org?min_position=999999999",
        "/api/v1/teams?min_position=999999999",
    ] {
        let (status, body) = head.get(path).await;
        assert_eq!(status, 409, "{path}: {body}");
        assert_eq!(body["field"], "min_position", "{body}");
        assert_eq!(
            body["type"], "https://diandan.dev/problems/position-not-reached",
            "{body}"
        );
    }
    let (status, body) = head.get("/api/v1/orders?min_position=1").await;
    assert_eq!(status, 200, "{body}");
}

/// Rate limits: configured, answered 429 problem+json with Retry-After; sign-in the
/// strictest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        tmp.path(),
        false,
        &[(
            "DIANDAN_RATE_LIMITS",
            "address=1000/min,token=1000/min,login=3/min,place=2/min",
        )],
    );
    let http = reqwest::Client::new();
    let login = || {
        http.post(server.url("/api/v1/dev/login"))
            .json(&json!({"role": "resident", "user_id": "r-limited"}))
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = login().send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry_after >= 1);
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Reads by the same address are not sign-ins: still served.
    let response = http.get(server.url("/api/v1/org")).send().await.unwrap();
    assert_ne!(response.status().as_u16(), 429);
}
