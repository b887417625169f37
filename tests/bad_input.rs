//! Bad input: each gets a clear 4xx (RFC 9457 problem details naming the field, or a gRPC
//! status), never a 5xx, and nothing already stored changes.

mod support;

use serde_json::{json, Value};
use tonic::transport::Endpoint;

use diandan_proto::v1 as pb;
use support::{yongfu_order, Server, User, LOCATION};

/// Asserts a problem+json response with this status and field.
fn assert_problem(status: u16, body: &Value, expected_status: u16, field: Option<&str>) {
    assert_eq!(status, expected_status, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("https://diandan.dev/problems/"),
        "{body}"
    );
    assert_eq!(body["status"], expected_status, "{body}");
    assert!(!body["detail"].as_str().unwrap_or("").is_empty(), "{body}");
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
    }
}

fn with(mut order: Value, key: &str, value: Value) -> Value {
    order[key] = value;
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let server = Server::start_demo().await;
    let resident = User::login(&server, "resident", "r-bad", "").await;
    let other = User::login(&server, "resident", "r-other", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let volunteer = User::login(&server, "volunteer", "v-wangsen", "").await;
    let wrong_team = User::login(&server, "volunteer", "v-zhaolei", "").await;
    let base = yongfu_order("有效的订单描述");

    // Placing: each bad field is named.
    let cases: Vec<(Value, &str)> = vec![
        (
            with(base.clone(), "category", json!("astrology")),
            "category",
        ),
        (
            with(base.clone(), "description", json!("   ")),
            "description",
        ),
        (
            with(base.clone(), "description", json!("字".repeat(501))),
            "description",
        ),
        (
            with(
                base.clone(),
                "location",
                json!({"lat": 114.28, "lng": 29.87}),
            ),
            "location",
        ),
        (
            with(base.clone(), "location", json!({"lat": 91.0, "lng": 200.0})),
            "location",
        ),
        (
            with(base.clone(), "contact_phone", json!("12345")),
            "contact_phone",
        ),
        (
            with(base.clone(), "wanted_time", json!("tomorrow")),
            "wanted_time",
        ),
        (with(base.clone(), "location", json!("here")), "location"),
        (with(base.clone(), "surprise", json!(1)), "surprise"),
    ];
    for (body, field) in cases {
        let (status, problem) = resident.post("/api/v1/orders", body).await;
        assert_problem(status, &problem, 400, Some(field));
    }
    // Well formed, but naming a station that does not exist: 404 naming the field.
    let (status, problem) = resident
        .post(
            "/api/v1/orders",
            with(base.clone(), "station_id", json!("no-such-station")),
        )
        .await;
    assert_problem(status, &problem, 404, Some("station_id"));
    // Malformed JSON, wrong content, oversized body.
    let (status, problem, content_type) = resident
        .post_raw("/api/v1/orders", "{\"station_id\": ")
        .await;
    assert_problem(status, &problem, 400, None);
    assert_eq!(content_type, "application/problem+json");
    let huge =
        Box::leak(format!("{{\"description\": \"{}\"}}", "x".repeat(100_000)).into_boxed_str());
    let (status, problem, _) = resident.post_raw("/api/v1/orders", huge).await;
    assert_problem(status, &problem, 413, None);
    // No token, a forged token.
    let anonymous = User {
        token: "forged.token".into(),
        ..resident.clone()
    };
    let (status, problem) = anonymous.post("/api/v1/orders", base.clone()).await;
    assert_problem(status, &problem, 401, None);
    // Nothing of the above was stored.
    let (_, mine) = resident.get("/api/v1/orders").await;
    assert_eq!(mine["orders"].as_array().unwrap().len(), 0, "{mine}");

    // One good order to misuse.
    let (status, ack) = resident.post("/api/v1/orders", base.clone()).await;
    assert_eq!(status, 201);
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let order = |suffix: &str| format!("/api/v1/orders/{id}{suffix}");

    // Before dispatch: accepting, checking in, reviewing are illegal; a volunteer may not triage.
    let (status, problem) = volunteer
        .post(&order("/triage"), json!({"accept": true}))
        .await;
    assert_problem(status, &problem, 403, None);
    let (status, problem) = head
        .post(&order("/triage"), json!({"accept": false, "reason": ""}))
        .await;
    assert_problem(status, &problem, 400, Some("reason"));
    head.post(&order("/triage"), json!({"accept": true})).await;
    let (status, problem) = head
        .post(&order("/dispatch"), json!({"team_id": "no-such-team"}))
        .await;
    assert_problem(status, &problem, 404, Some("team_id"));
    // A team that does not serve this station (another institute's station team): well
    // formed, but a conflict with the tree.
    let (status, problem) = head
        .post(&order("/dispatch"), json!({"team_id": "zhidui-meiyuan"}))
        .await;
    assert_problem(status, &problem, 409, Some("team_id"));
    head.post(&order("/dispatch"), json!({"team_id": "zhidui-chezhanlu"}))
        .await;

    // Accepting an order not dispatched to your team (outside your scope: as if absent);
    // claiming a team you are not in.
    let (status, problem) = wrong_team
        .post(&order("/accept"), json!({"team_id": "audit-bureau"}))
        .await;
    assert_problem(status, &problem, 404, None);
    let (status, problem) = wrong_team
        .post(&order("/accept"), json!({"team_id": "zhidui-chezhanlu"}))
        .await;
    assert_problem(status, &problem, 403, None);
    // A stale expected revision.
    let (status, problem) = volunteer
        .post(
            &order("/accept"),
            json!({"team_id": "zhidui-chezhanlu", "expected_revision": 0}),
        )
        .await;
    assert_problem(status, &problem, 409, Some("expected_revision"));
    let (_, current) = volunteer.get(&order("")).await;
    let revision = current["revision"].as_u64().unwrap();
    let (status, ack) = volunteer
        .post(
            &order("/accept"),
            json!({"team_id": "zhidui-chezhanlu", "expected_revision": revision}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");

    // Checking out before checking in.
    let (status, problem) = volunteer
        .post(&order("/check-out"), json!({"location": LOCATION()}))
        .await;
    assert_problem(status, &problem, 409, None);
    let (status, problem) = volunteer.post(&order("/check-in"), json!({})).await;
    assert_problem(status, &problem, 400, Some("location"));
    volunteer
        .post(&order("/check-in"), json!({"location": LOCATION()}))
        .await;
    volunteer
        .post(&order("/check-out"), json!({"location": LOCATION()}))
        .await;
    let (status, problem) = volunteer
        .post(&order("/complete"), json!({"note": ""}))
        .await;
    assert_problem(status, &problem, 400, Some("note"));
    volunteer
        .post(&order("/complete"), json!({"note": "已处理"}))
        .await;

    // Reviews: out of range, wrong type, by someone else.
    for rating in [json!(0), json!(6)] {
        let (status, problem) = resident
            .post(&order("/review"), json!({"rating": rating}))
            .await;
        assert_problem(status, &problem, 400, Some("rating"));
    }
    let (status, problem) = resident
        .post(&order("/review"), json!({"rating": "five"}))
        .await;
    assert_problem(status, &problem, 400, Some("rating"));
    // Someone else's order is outside a resident's scope: as good as absent.
    let (status, problem) = other.post(&order("/review"), json!({"rating": 5})).await;
    assert_problem(status, &problem, 404, None);
    resident
        .post(&order("/review"), json!({"rating": 4, "comment": "好"}))
        .await;
    let (status, _) = head.post(&order("/close"), json!({})).await;
    assert_eq!(status, 200);

    // Any command on a closed order.
    let (_, before) = head.get(&order("/history")).await;
    for (who, path, body) in [
        (&resident, "/cancel", json!({})),
        (&resident, "/review", json!({"rating": 1})),
        (&head, "/triage", json!({"accept": true})),
        (&head, "/dispatch", json!({"team_id": "zhidui-chezhanlu"})),
        (&head, "/close", json!({})),
        (
            &volunteer,
            "/accept",
            json!({"team_id": "zhidui-chezhanlu"}),
        ),
        (&volunteer, "/check-in", json!({"location": LOCATION()})),
    ] {
        let (status, problem) = who.post(&order(path), body).await;
        assert_problem(status, &problem, 409, None);
    }
    let (_, after) = head.get(&order("/history")).await;
    let business_events = before["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["event_type"].as_str().unwrap().starts_with("Deadline"))
        .count();
    assert_eq!(business_events, 9, "{before}");
    assert!(
        before["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["payload_json"].as_str().unwrap().contains(r#""clocks":"#)),
        "the deadlines the changes moved are in the history too"
    );
    assert_eq!(before, after, "a refused command changed the order");

    // Unknown order, unknown route.
    let (status, problem) = resident.get("/api/v1/orders/no-such-order").await;
    assert_problem(status, &problem, 404, None);
    let (status, problem) = resident.get("/api/v1/nope").await;
    assert_problem(status, &problem, 404, None);
    let (status, problem) = head
        .get("/api/v1/nodes/chezhanlu/stats?from_day=yesterday")
        .await;
    assert_problem(status, &problem, 400, Some("from_day"));
    let (status, problem) = head.get("/api/v1/orders?limit=lots").await;
    assert_problem(status, &problem, 400, Some("limit"));

    // gRPC: a status naming the field, and a malformed protobuf body.
    let channel = Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = diandan::client::Client::new(
        diandan_proto::Upstreams::single(channel.clone()),
        resident.token.clone(),
    );
    let status = client
        .reviews()
        .review_order(client.request(
            pb::ReviewOrderRequest {
                order_id: id.clone(),
                rating: 9,
                ..Default::default()
            },
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let mut place = pb::PlaceOrderRequest {
        station_id: "yongfu-lane".into(),
        category: "astrology".into(),
        ..Default::default()
    };
    place.description = "x".into();
    let status = client
        .orders()
        .place_order(client.request(place, None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.metadata().get("x-diandan-field").unwrap(),
        "contact_phone"
    );
    let status = malformed_protobuf(&server).await;
    assert!(
        matches!(
            status.code(),
            tonic::Code::Internal | tonic::Code::InvalidArgument
        ),
        "{status:?}"
    );
    assert!(status.message().contains("decode"), "{status:?}");
}

/// Sends bytes that are not a valid `PlaceOrderRequest` to the gRPC server.
async fn malformed_protobuf(server: &Server) -> tonic::Status {
    use bytes::BufMut;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    /// Sends bytes as they are; the reply is never decoded (the call must fail).
    struct Raw;
    struct RawEncoder;
    struct RawDecoder;
    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }
    impl Decoder for RawDecoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, _: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            Err(tonic::Status::internal("unexpected reply"))
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawEncoder;
        type Decoder = RawDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> RawDecoder {
            RawDecoder
        }
    }

    let channel = Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/diandan.v1.OrderService/PlaceOrder");
    // Field 1 declared as length-delimited with a length far past the end.
    let garbage = vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01];
    grpc.unary::<Vec<u8>, Vec<u8>, Raw>(tonic::Request::new(garbage), path, Raw)
        .await
        .unwrap_err()
}
