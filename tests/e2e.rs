//! End to end: the real `diandan up` process on random ports in a temp dir, driven over real
//! HTTP and gRPC sockets.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use tonic::transport::{Channel, Endpoint};

use diandan::client::{drive_order, Cast, Client, OrderSpec, Stage};
use diandan_proto::v1 as pb;
use support::{yongfu_order, Events, Server, User, LOCATION};

async fn grpc_channel(server: &Server) -> Channel {
    Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connect")
}

async fn grpc_login(channel: &Channel, role: &str, user: &str, node: &str) -> Client {
    let mut identity = pb::identity_service_client::IdentityServiceClient::new(channel.clone());
    let token = identity
        .dev_login(pb::DevLoginRequest {
            role: role.into(),
            user_id: user.into(),
            org_node: node.into(),
        })
        .await
        .expect("dev login")
        .into_inner()
        .token;
    Client::new(diandan_proto::Upstreams::single(channel.clone()), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_over_http_and_one_over_grpc_then_station_stats() {
    let server = Server::start_demo().await;
    let resident = User::login(&server, "resident", "r-yongfu-1", "").await;
    let neighbour = User::login(&server, "resident", "r-yongfu-2", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let volunteer = User::login(&server, "volunteer", "v-wangsen", "").await;
    let outsider = User::login(&server, "volunteer", "v-zhaolei", "").await;

    // 点单
    let (status, ack) = resident
        .post(
            "/api/v1/orders",
            yongfu_order("永福巷积水，需要疏通排水沟。"),
        )
        .await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    assert_eq!(ack["status"], "placed");
    let order = |suffix: &str| format!("/api/v1/orders/{id}{suffix}");

    // A neighbour cannot see it; the station head's queue has it.
    assert_eq!(neighbour.get(&order("")).await.0, 404);
    let position = ack["position"].as_u64().unwrap();
    let (status, queue) = head
        .get(&format!(
            "/api/v1/nodes/chezhanlu/queue?min_position={position}&limit=500"
        ))
        .await;
    assert_eq!(status, 200, "{queue}");
    assert!(queue["orders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["order_id"] == id.as_str()));

    // 审单, 派单
    let (status, ack) = head.post(&order("/triage"), json!({"accept": true})).await;
    assert_eq!(
        (status, ack["status"].as_str()),
        (200, Some("triaged")),
        "{ack}"
    );
    let (status, ack) = head
        .post(
            &order("/dispatch"),
            json!({"team_id": "zhidui-chezhanlu", "reason": "本社区支队，离得最近"}),
        )
        .await;
    assert_eq!(
        (status, ack["status"].as_str()),
        (200, Some("dispatched")),
        "{ack}"
    );

    // Offered: the volunteer sees the order but not the resident's number; a volunteer of
    // another team does not see it at all.
    let (status, view) = volunteer.get(&order("")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["contact_phone"], "138****5678");
    assert_eq!(outsider.get(&order("")).await.0, 404);

    // 接单: now the number is visible to the one who accepted.
    let (status, ack) = volunteer
        .post(&order("/accept"), json!({"team_id": "zhidui-chezhanlu"}))
        .await;
    assert_eq!(
        (status, ack["status"].as_str()),
        (200, Some("accepted")),
        "{ack}"
    );
    let (_, view) = volunteer.get(&order("")).await;
    assert_eq!(view["contact_phone"], "13812345678");

    // 服务, 办结, 评单, 归档
    for (path, body, expected) in [
        ("/check-in", json!({"location": LOCATION()}), "in_service"),
        ("/check-out", json!({"location": LOCATION()}), "served"),
        (
            "/complete",
            json!({"note": "疏通排水沟 30 米，新增排水口 2 个", "photos": ["evidence/1.jpg"]}),
            "completed",
        ),
    ] {
        let (status, ack) = volunteer.post(&order(path), body).await;
        assert_eq!(
            (status, ack["status"].as_str()),
            (200, Some(expected)),
            "{path}: {ack}"
        );
    }
    // After completion the number is hidden again.
    assert_eq!(
        volunteer.get(&order("")).await.1["contact_phone"],
        "138****5678"
    );
    let (status, ack) = resident
        .post(
            &order("/review"),
            json!({"rating": 5, "comment": "排水修好了，非常满意"}),
        )
        .await;
    assert_eq!(
        (status, ack["status"].as_str()),
        (200, Some("reviewed")),
        "{ack}"
    );
    let (status, ack) = head.post(&order("/close"), json!({})).await;
    assert_eq!(
        (status, ack["status"].as_str()),
        (200, Some("closed")),
        "{ack}"
    );

    // The auditor's history: every step, with actor, command id and correlation id.
    let auditor = User::login(&server, "auditor", "audit-1", "xianan").await;
    let (status, history) = auditor.get(&order("/history")).await;
    assert_eq!(status, 200, "{history}");
    // The business events of the loop (each carries the deadline clocks it stops and starts).
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .filter(|t| !t.starts_with("Deadline"))
        .collect();
    assert_eq!(
        types,
        [
            "OrderPlaced",
            "OrderTriaged",
            "OrderDispatched",
            "OrderAccepted",
            "VolunteerCheckedIn",
            "VolunteerCheckedOut",
            "OrderCompleted",
            "OrderReviewed",
            "OrderClosed"
        ]
    );
    for event in history["events"].as_array().unwrap() {
        assert!(!event["actor"]["id"].as_str().unwrap().is_empty());
        assert!(!event["command_id"].as_str().unwrap().is_empty());
        assert!(!event["correlation_id"].as_str().unwrap().is_empty());
        assert!(
            !event["payload_json"]
                .as_str()
                .unwrap()
                .contains("13812345678"),
            "phone leaked into the log"
        );
    }

    // The second order, over gRPC.
    let channel = grpc_channel(&server).await;
    let cast = Cast {
        resident: grpc_login(&channel, "resident", "r-yongfu-3", "").await,
        head: grpc_login(&channel, "station_head", "head-dengxiaohu", "chezhanlu").await,
        volunteer: grpc_login(&channel, "volunteer", "v-liuhong", "").await,
        team_id: "zhidui-chezhanlu".into(),
        station_id: "yongfu-lane".into(),
    };
    let spec = OrderSpec {
        category: "elderly_care".into(),
        description: "独居老人家中需要更换灯泡。".into(),
        lat: 29.8711,
        lng: 114.2840,
        address: "永福巷 3 号".into(),
        phone: "13987654321".into(),
        rating: 3,
        comment: "来得有点晚".into(),
    };
    let (_, last) = drive_order(&cast, &spec, Stage::Closed)
        .await
        .expect("gRPC loop");
    assert_eq!(last.status, "closed");

    // Station statistics for Yongfu Lane: exactly these two orders.
    let stats = head.stats_at("yongfu-lane", last.position).await;
    assert_eq!(stats["received"], 2);
    assert_eq!(stats["dispatched"], 2);
    assert_eq!(stats["accepted"], 2);
    assert_eq!(stats["completed"], 2);
    assert_eq!(stats["reviewed"], 2);
    assert_eq!(stats["satisfaction_rate"], 0.5);
    assert_eq!(stats["average_rating"], 4.0);
    let categories: Vec<&str> = stats["by_category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["elderly_care", "health_environment"]);
    // Rolled up: the station and the institute above include them too.
    let (_, station) = head.get("/api/v1/nodes/chezhanlu/stats").await;
    assert!(station["received"].as_u64().unwrap() > 2);
    // Outside the head's subtree: refused.
    let (status, _) = head.get("/api/v1/nodes/xianan/stats").await;
    assert_eq!(status, 403);
    // Over gRPC too.
    let report = cast
        .head
        .stats()
        .station_stats(cast.head.request(
            pb::StationStatsRequest {
                node_id: "yongfu-lane".into(),
                ..Default::default()
            },
            None,
        ))
        .await
        .expect("gRPC stats")
        .into_inner();
    assert_eq!(report.completed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volunteers_racing_to_accept_one_order_exactly_one_wins() {
    const RACERS: usize = 12;
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    for i in 0..RACERS {
        let (status, body) = head
            .post("/api/v1/volunteers", json!({"id": format!("racer-{i}"), "name": format!("志愿者{i}"), "team_ids": ["zhidui-chezhanlu"]}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let resident = User::login(&server, "resident", "r-race", "").await;
    for round in 0..3 {
        let (_, ack) = resident
            .post("/api/v1/orders", yongfu_order(&format!("抢单测试 {round}")))
            .await;
        let id = ack["order_id"].as_str().unwrap().to_owned();
        head.post(
            &format!("/api/v1/orders/{id}/triage"),
            json!({"accept": true}),
        )
        .await;
        let (status, _) = head
            .post(
                &format!("/api/v1/orders/{id}/dispatch"),
                json!({"team_id": "zhidui-chezhanlu"}),
            )
            .await;
        assert_eq!(status, 200);

        let mut racers = Vec::new();
        for i in 0..RACERS {
            racers.push(User::login(&server, "volunteer", &format!("racer-{i}"), "").await);
        }
        let attempts = racers.iter().map(|v| {
            let path = format!("/api/v1/orders/{id}/accept");
            async move { v.post(&path, json!({"team_id": "zhidui-chezhanlu"})).await }
        });
        let results = futures::future::join_all(attempts).await;
        let winners = results.iter().filter(|(s, _)| *s == 200).count();
        let losers: Vec<&(u16, Value)> = results.iter().filter(|(s, _)| *s != 200).collect();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        for (status, body) in losers {
            assert_eq!(*status, 409, "{body}");
            assert_eq!(body["type"], "https://diandan.dev/problems/conflict");
            assert!(
                body["detail"].as_str().unwrap().contains("已被接单"),
                "{body}"
            );
        }
        let (_, history) = head.get(&format!("/api/v1/orders/{id}/history")).await;
        let accepted = history["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == "OrderAccepted")
            .count();
        assert_eq!(accepted, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_places_an_order_once() {
    let server = Server::start_demo().await;
    let resident = User::login(&server, "resident", "r-idem", "").await;
    let body = yongfu_order("同一个请求重试三次，只应产生一个订单。");
    let mut acks = Vec::new();
    for _ in 0..3 {
        let (status, ack) = resident
            .post_with("/api/v1/orders", body.clone(), Some("retry-key-1"))
            .await;
        assert_eq!(status, 201, "{ack}");
        acks.push(ack);
    }
    assert_eq!(acks[0]["order_id"], acks[2]["order_id"]);
    assert_eq!(acks[0]["duplicate"], false);
    assert_eq!(acks[1]["duplicate"], true);
    let (_, list) = resident
        .get(&format!(
            "/api/v1/orders?min_position={}",
            acks[0]["position"]
        ))
        .await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 1, "{list}");

    // The same key on a later command of the order is answered, not re-applied.
    let id = acks[0]["order_id"].as_str().unwrap();
    let (s1, a1) = resident
        .post_with(
            &format!("/api/v1/orders/{id}/cancel"),
            json!({"reason": "不需要了"}),
            Some("cancel-1"),
        )
        .await;
    let (s2, a2) = resident
        .post_with(
            &format!("/api/v1/orders/{id}/cancel"),
            json!({"reason": "不需要了"}),
            Some("cancel-1"),
        )
        .await;
    assert_eq!((s1, s2), (200, 200), "{a1} {a2}");
    assert_eq!(a2["duplicate"], true);
    assert_eq!(a1["revision"], a2["revision"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_projections_equal_live_ones_and_data_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(tmp.path(), true);
    server.wait_for_demo().await;
    let resident = User::login(&server, "resident", "r-rebuild", "").await;
    let (_, ack) = resident
        .post("/api/v1/orders", yongfu_order("重建前下的订单"))
        .await;
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let (_, stats) = head
        .get(&format!(
            "/api/v1/nodes/chezhanlu/stats?min_position={}",
            ack["position"]
        ))
        .await;
    assert!(stats["position"].as_u64().unwrap() >= ack["position"].as_u64().unwrap());

    let status = server.stop_gracefully();
    assert!(status.success(), "graceful shutdown exit status: {status}");

    let live_path = tmp.path().join("read.db");
    let live = diandan_runtime::projections::ReadModel::open(&live_path)
        .unwrap()
        .dump()
        .unwrap();
    let output = std::process::Command::new(support::binary())
        .args(["projections", "rebuild", "--data-dir"])
        .arg(tmp.path())
        .output()
        .expect("run rebuild");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rebuilt = diandan_runtime::projections::ReadModel::open(&live_path)
        .unwrap()
        .dump()
        .unwrap();
    assert!(
        live.len() > 100,
        "live read model is suspiciously small: {}",
        live.len()
    );
    assert_eq!(live.len(), rebuilt.len());
    for (l, r) in live.iter().zip(&rebuilt) {
        assert_eq!(l, r);
    }

    // Everything acknowledged is still there after a restart.
    let server = Server::start_in(tmp.path(), true);
    let (status, view) = resident
        .clone_for(&server)
        .get(&format!("/api/v1/orders/{id}"))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["description"], "重建前下的订单");
    assert_eq!(view["contact_phone"], "13812345678");
    let _ = Duration::ZERO;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_rules_suggest_escalate_and_auto_assign_with_reasons() {
    let server = Server::start_demo().await;
    let resident = User::login(&server, "resident", "r-rules", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let place = |category: &'static str| {
        let resident = resident.clone();
        let head = head.clone();
        async move {
            let mut body = yongfu_order("需要志愿服务");
            body["category"] = json!(category);
            let (status, ack) = resident.post("/api/v1/orders", body).await;
            assert_eq!(status, 201, "{ack}");
            let id = ack["order_id"].as_str().unwrap().to_owned();
            head.post(
                &format!("/api/v1/orders/{id}/triage"),
                json!({"accept": true}),
            )
            .await;
            id
        }
    };

    // A repair at Yongfu Lane: the station's own team can do it.
    let repair = place("repair").await;
    let (status, s) = head
        .get(&format!("/api/v1/orders/{repair}/suggestions"))
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["level"], "station", "{s}");
    assert_eq!(s["suggestions"][0]["team_id"], "zhidui-chezhanlu", "{s}");
    assert!(
        s["suggestions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("技能匹配"),
        "{s}"
    );

    // Medical help: nobody at the station or the institute has the skill → the centre's
    // hospital volunteers, and the passed-over levels say why.
    let medical = place("medical").await;
    let (_, s) = head
        .get(&format!("/api/v1/orders/{medical}/suggestions"))
        .await;
    assert_eq!(s["level"], "centre", "{s}");
    assert_eq!(s["suggestions"][0]["team_id"], "hospital", "{s}");
    // The point, the station and the institute were passed over, each with its reason.
    assert_eq!(s["passed_over"].as_array().unwrap().len(), 3, "{s}");
    // Automatic assignment takes the top suggestion and records why.
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{medical}/dispatch"),
            json!({"auto": true}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (_, history) = head.get(&format!("/api/v1/orders/{medical}/history")).await;
    let dispatched = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "OrderDispatched")
        .unwrap();
    let payload: Value =
        serde_json::from_str(dispatched["payload_json"].as_str().unwrap()).unwrap();
    assert_eq!(payload["assignee"]["team_id"], "hospital");
    assert_eq!(payload["assignee"]["level"], "centre");
    assert!(
        payload["reason"].as_str().unwrap().starts_with("自动派单"),
        "{payload}"
    );

    // Legal aid: only a sibling station's team has it, which does not serve Yongfu Lane.
    let legal = place("legal_aid").await;
    let (status, problem) = head
        .get(&format!("/api/v1/orders/{legal}/suggestions"))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("没有可派的队伍"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_requests_are_decided_by_the_station_head() {
    let server = Server::start_demo().await;
    let resident = User::login(&server, "resident", "r-ext", "").await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let volunteer = User::login(&server, "volunteer", "v-wangsen", "").await;
    let (_, ack) = resident
        .post("/api/v1/orders", yongfu_order("需要延期的订单"))
        .await;
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let order = |suffix: &str| format!("/api/v1/orders/{id}{suffix}");
    head.post(&order("/triage"), json!({"accept": true})).await;
    head.post(&order("/dispatch"), json!({"team_id": "zhidui-chezhanlu"}))
        .await;
    let (status, _) = volunteer
        .post(&order("/accept"), json!({"team_id": "zhidui-chezhanlu"}))
        .await;
    assert_eq!(status, 200);

    // Bad input names the field.
    let (status, problem) = volunteer
        .post(
            &order("/extension"),
            json!({"deadline": "complete", "until": "next week", "reason": "等配件"}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("until")),
        "{problem}"
    );
    let (status, problem) = volunteer
        .post(
            &order("/extension"),
            json!({"deadline": "sign_for", "until": "2099-01-01T00:00:00Z", "reason": "等配件"}),
        )
        .await;
    // Well formed, but that deadline is not running now: a conflict with the order's state.
    assert_eq!(
        (status, problem["field"].as_str()),
        (409, Some("deadline")),
        "{problem}"
    );

    // A request within 30 days of the current deadline, approved by the head.
    let until = (time::OffsetDateTime::now_utc() + time::Duration::days(12))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, ack) = volunteer
        .post(
            &order("/extension"),
            json!({"deadline": "complete", "until": until, "reason": "等配件到货"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (status, problem) = volunteer
        .post(
            &order("/extension/decision"),
            json!({"deadline": "complete", "approve": true}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, ack) = head
        .post(
            &order("/extension/decision"),
            json!({"deadline": "complete", "approve": true}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (_, history) = head.get(&order("/history")).await;
    assert!(history["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event_type"] == "ExtensionApproved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_checking_and_reflection_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), false);
    let channel = grpc_channel(&server).await;
    let mut health = HealthClient::new(channel.clone());
    for service in [
        "diandan.v1.OrderService",
        "diandan.v1.DispatchService",
        "diandan.v1.VolunteerService",
        "diandan.v1.OrganizationService",
        "diandan.v1.IdentityService",
        "diandan.v1.ReviewService",
        "diandan.v1.StatsService",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
}

/// Both reflection dialects list our services: `v1` (current grpcurl) and `v1alpha` (Python's
/// grpcio-reflection, older grpcurl and Postman builds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reflection_answers_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), false);
    let channel = grpc_channel(&server).await;

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let reply = replies.message().await.unwrap().expect("a v1 reply");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("v1: not a service list: {reply:?}");
    };
    // Each dialect also lists its own reflection service; ours are the same in both.
    let ours = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| !n.starts_with("grpc.reflection."))
            .collect()
    };
    let v1_names = ours(list.service.into_iter().map(|s| s.name).collect());
    assert!(
        v1_names.iter().any(|n| n == "diandan.v1.OrderService"),
        "{v1_names:?}"
    );

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut replies = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let reply = replies.message().await.unwrap().expect("a v1alpha reply");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("v1alpha: not a service list: {reply:?}");
    };
    let names = ours(list.service.into_iter().map(|s| s.name).collect());
    assert_eq!(names, v1_names, "both dialects list the same services");
}

/// 派单台, live: a station head watching the queue sees an order a resident places appear
/// without asking again (Server-Sent Events); the time it took is reported, bounded at 10 s.
/// Someone who may not watch that queue gets a problem answer, not a stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatch_board_sees_a_new_order_without_asking_again() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let watch = |user: &User, node: &str| {
        user.http
            .get(format!("{}/api/v1/nodes/{node}/queue/events", user.base))
            .bearer_auth(&user.token)
            .send()
    };
    let response = watch(&head, "chezhanlu").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut events = Events::new(response);
    let (event, first) = events.next().await.expect("the queue at once");
    assert_eq!(event, "queue", "{first}");
    assert!(first["orders"].is_array(), "{first}");

    let resident = User::login(&server, "resident", "r-board", "").await;
    let placed_at = std::time::Instant::now();
    let (status, placed) = resident
        .post("/api/v1/orders", yongfu_order("派单台实时推送测试"))
        .await;
    assert_eq!(status, 201, "{placed}");
    let id = placed["order_id"].as_str().unwrap().to_owned();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some((event, snapshot)) = events.next().await {
            assert_eq!(event, "queue", "{snapshot}");
            let orders = snapshot["orders"].as_array().unwrap();
            if orders.iter().any(|o| o["order_id"] == id.as_str()) {
                return placed_at.elapsed();
            }
        }
        panic!("the stream ended before the order appeared");
    })
    .await
    .expect("the new order did not appear on the board within 10 s");
    println!("dispatch board: the new order appeared {seen:?} after it was placed");

    // Outside one's subtree, or not staff: a problem, not a stream.
    let other = User::login(&server, "station_head", "head-meiyuan", "meiyuan").await;
    let refused = watch(&other, "chezhanlu").await.unwrap();
    assert_eq!(refused.status(), 403);
    let auditor = User::login(&server, "auditor", "audit-board", "xianan").await;
    let refused = watch(&auditor, "chezhanlu").await.unwrap();
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.unwrap();
    assert!(!problem["detail"].as_str().unwrap().is_ascii(), "{problem}");
}
