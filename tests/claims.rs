//! The open claim, rework and merge against the real binary, over HTTP and gRPC: volunteers
//! racing for the seats of an activity (exactly N win, exactly N `Claimed` events), each
//! claimant serving and earning on their own, the organiser completing, the station reviewing;
//! a poorly reviewed order reworked by another team and reviewed again; a duplicate merged at
//! triage whose requester follows and reviews the surviving order; and the bad input of each,
//! refused with a clear 4xx that changes nothing.

mod support;

use serde_json::{json, Value};
use tonic::transport::{Channel, Endpoint};

use diandan::client::Client;
use diandan_proto::v1 as pb;
use support::{yongfu_order, Server, User, LOCATION};

const TEAM: &str = "zhidui-chezhanlu";

async fn grpc_login(server: &Server, role: &str, user: &str) -> Client {
    let channel: Channel = Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connect");
    let mut identity = pb::identity_service_client::IdentityServiceClient::new(channel.clone());
    let token = identity
        .dev_login(pb::DevLoginRequest {
            role: role.into(),
            user_id: user.into(),
            org_node: String::new(),
        })
        .await
        .expect("dev login")
        .into_inner()
        .token;
    Client::new(diandan_proto::Upstreams::single(channel), token)
}

/// Registers `n` volunteers of 车站路支队 called `{prefix}-{i}`.
async fn register(head: &User, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let (status, body) = head
            .post(
                "/api/v1/volunteers",
                json!({"id": id, "name": format!("志愿者{i}"), "team_ids": [TEAM]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(id);
    }
    ids
}

/// The station head organises an activity needing `seats` volunteers and publishes it.
async fn published_activity(head: &User, seats: u32, what: &str) -> String {
    let mut activity = yongfu_order(what);
    activity["workflow"] = json!("open-claim");
    activity["required_volunteers"] = json!(seats);
    let (status, ack) = head.post("/api/v1/orders", activity).await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{id}/triage"),
            json!({"accept": true}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    // Volunteers list claimable orders from the read model: once it has the publication.
    head.stats_at("chezhanlu", ack["position"].as_u64().unwrap())
        .await;
    id
}

async fn event_types(user: &User, id: &str) -> Vec<String> {
    let (status, history) = user.get(&format!("/api/v1/orders/{id}/history")).await;
    assert_eq!(status, 200, "{history}");
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

fn count(types: &[String], event_type: &str) -> usize {
    types.iter().filter(|t| *t == event_type).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_volunteers_claim_five_seats_at_once_and_exactly_five_win() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let ids = register(&head, "claimer", 50).await;
    let id = published_activity(&head, 5, "周六上午永福巷环境整治，需要 5 名志愿者").await;

    let mut volunteers = Vec::new();
    for v in &ids {
        volunteers.push(User::login(&server, "volunteer", v, "").await);
    }
    // Each eligible volunteer sees it among the orders they may claim.
    let (status, list) = volunteers[0].get("/api/v1/orders/claimable").await;
    assert_eq!(status, 200, "{list}");
    let listed = list["orders"].as_array().unwrap();
    let shown = listed
        .iter()
        .find(|o| o["order_id"] == id.as_str())
        .expect("claimable");
    assert_eq!(shown["workflow"], "open-claim");
    assert_eq!(shown["required_volunteers"], 5);

    let attempts = volunteers.iter().map(|v| {
        let path = format!("/api/v1/orders/{id}/claim");
        async move { v.post(&path, json!({"team_id": TEAM})).await }
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 5, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 409, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("已满员"),
            "{body}"
        );
    }
    let types = event_types(&head, &id).await;
    assert_eq!(count(&types, "Claimed"), 5, "{types:?}");
    let (_, order) = head.get(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(order["status"], "claimed");
    assert_eq!(order["claims"].as_array().unwrap().len(), 5);

    // Full: no longer claimable (read where the last claim left the log: the list is a read
    // model), and a late claim changes nothing.
    let last_claim = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .filter_map(|(_, body)| body["position"].as_u64())
        .max()
        .unwrap();
    let (_, list) = volunteers[0]
        .get(&format!(
            "/api/v1/orders/claimable?min_position={last_claim}"
        ))
        .await;
    assert!(list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["order_id"] != id.as_str()));

    // Over gRPC: 20 volunteers, 3 seats.
    let grpc_ids = register(&head, "grpc-claimer", 20).await;
    let second = published_activity(&head, 3, "社区义诊，需要 3 名志愿者").await;
    let mut clients = Vec::new();
    for v in &grpc_ids {
        clients.push(grpc_login(&server, "volunteer", v).await);
    }
    let attempts = clients.iter().map(|c| {
        let request = c.request(
            pb::ClaimOrderRequest {
                order_id: second.clone(),
                team_id: TEAM.into(),
                expected_revision: None,
            },
            None,
        );
        let mut volunteers = c.volunteers();
        async move { volunteers.claim_order(request).await }
    });
    let results = futures::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    for result in results.iter().filter(|r| r.is_err()) {
        let status = result.as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
        assert!(status.message().contains("已满员"), "{status:?}");
    }
    assert_eq!(count(&event_types(&head, &second).await, "Claimed"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_from_claims_to_each_claimant_s_hours_to_the_station_s_review() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let ids = register(&head, "cleaner", 3).await;
    let id = published_activity(&head, 2, "周六清理楼道小广告，需要 2 名志愿者").await;
    let a = User::login(&server, "volunteer", &ids[0], "").await;
    let b = User::login(&server, "volunteer", &ids[1], "").await;
    let c = User::login(&server, "volunteer", &ids[2], "").await;
    let claim = |v: &User| {
        let path = format!("/api/v1/orders/{id}/claim");
        let v = v.clone();
        async move { v.post(&path, json!({"team_id": TEAM})).await }
    };
    assert_eq!(claim(&a).await.0, 200);
    // Claiming twice: a conflict, nothing written.
    let before = event_types(&head, &id).await.len();
    let (status, problem) = claim(&a).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(event_types(&head, &id).await.len(), before);
    // A claimant withdraws before checking in and the seat is free again.
    assert_eq!(claim(&b).await.0, 200);
    let (status, ack) = b
        .post(
            &format!("/api/v1/orders/{id}/unclaim"),
            json!({"reason": "临时有事"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(claim(&c).await.0, 200);
    // Checking in on someone else's claim: b holds no seat.
    let (status, problem) = b
        .post(
            &format!("/api/v1/orders/{id}/check-in"),
            json!({"location": LOCATION()}),
        )
        .await;
    assert!(status == 403 || status == 404, "{status} {problem}");

    // Each claimant checks in and out on their own.
    for v in [&a, &c] {
        let (status, ack) = v
            .post(
                &format!("/api/v1/orders/{id}/check-in"),
                json!({"location": LOCATION()}),
            )
            .await;
        assert_eq!(status, 200, "{ack}");
    }
    // Unclaiming after check-in: refused.
    let (status, problem) = a
        .post(&format!("/api/v1/orders/{id}/unclaim"), json!({}))
        .await;
    assert_eq!(status, 409, "{problem}");
    // The organiser cannot complete while someone still serves.
    let (status, problem) = head
        .post(
            &format!("/api/v1/orders/{id}/complete"),
            json!({"note": "活动结束"}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    for v in [&a, &c] {
        let (status, ack) = v
            .post(
                &format!("/api/v1/orders/{id}/check-out"),
                json!({"location": LOCATION()}),
            )
            .await;
        assert_eq!(status, 200, "{ack}");
    }
    // A volunteer may not complete an activity: the organiser does.
    let (status, _) = a
        .post(
            &format!("/api/v1/orders/{id}/complete"),
            json!({"note": "完成"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{id}/complete"),
            json!({"note": "清理小广告 200 余处"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{id}/review"),
            json!({"rating": 5, "comment": "组织有序"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (_, order) = head
        .get(&format!(
            "/api/v1/orders/{id}?min_position={}",
            ack["position"]
        ))
        .await;
    assert_eq!(order["status"], "reviewed");
    let seats = order["claims"].as_array().unwrap();
    assert_eq!(seats.len(), 2);
    assert!(seats
        .iter()
        .all(|s| !s["checked_out_at"].as_str().unwrap().is_empty()));
    let types = event_types(&head, &id).await;
    assert_eq!(count(&types, "VolunteerCheckedOut"), 2, "{types:?}");

    // Counted beside dispatched orders in the statistics.
    let (_, stats) = head
        .get(&format!(
            "/api/v1/nodes/chezhanlu/stats?min_position={}",
            ack["position"]
        ))
        .await;
    assert!(stats["claim_orders"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["activities"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["claims"].as_u64().unwrap() >= 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_outside_eligibility_or_a_dispatched_order_is_refused() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let id = published_activity(&head, 2, "社区读书会，需要 2 名志愿者").await;
    // 陈静 serves 梅园 and 温泉: not 车站路's lineage.
    let outsider = User::login(&server, "volunteer", "v-chenjing", "").await;
    let (status, problem) = outsider
        .post(
            &format!("/api/v1/orders/{id}/claim"),
            json!({"team_id": "zhidui-meiyuan"}),
        )
        .await;
    assert!(status == 403 || status == 404, "{status} {problem}");
    // A team one is not in.
    let member = User::login(&server, "volunteer", "v-liuhong", "").await;
    let (status, problem) = member
        .post(
            &format!("/api/v1/orders/{id}/claim"),
            json!({"team_id": "zhidui-meiyuan"}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    // A dispatched order is accepted, not claimed.
    let resident = User::login(&server, "resident", "r-claims", "").await;
    let (_, ack) = resident
        .post("/api/v1/orders", yongfu_order("楼道灯坏了"))
        .await;
    let order = ack["order_id"].as_str().unwrap().to_owned();
    head.post(
        &format!("/api/v1/orders/{order}/triage"),
        json!({"accept": true}),
    )
    .await;
    head.post(
        &format!("/api/v1/orders/{order}/dispatch"),
        json!({"team_id": TEAM}),
    )
    .await;
    let (status, problem) = member
        .post(
            &format!("/api/v1/orders/{order}/claim"),
            json!({"team_id": TEAM}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    // Bad fields name themselves.
    let mut bad = yongfu_order("活动");
    bad["workflow"] = json!("open-claim");
    bad["required_volunteers"] = json!(0);
    let (status, problem) = head.post("/api/v1/orders", bad).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem.to_string().contains("required_volunteers"),
        "{problem}"
    );
    let mut unknown = yongfu_order("活动");
    unknown["workflow"] = json!("lottery");
    let (status, problem) = head.post("/api/v1/orders", unknown).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem.to_string().contains("workflow"), "{problem}");
}

/// Places, triages, dispatches and serves an order to completion; returns its id.
async fn completed_order(server: &Server, resident: &User, what: &str) -> String {
    let head = User::login(server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let volunteer = User::login(server, "volunteer", "v-liuhong", "").await;
    let (status, ack) = resident.post("/api/v1/orders", yongfu_order(what)).await;
    assert_eq!(status, 201, "{ack}");
    let id = ack["order_id"].as_str().unwrap().to_owned();
    let steps: [(&User, &str, Value); 6] = [
        (&head, "triage", json!({"accept": true})),
        (&head, "dispatch", json!({"team_id": TEAM})),
        (&volunteer, "accept", json!({"team_id": TEAM})),
        (&volunteer, "check-in", json!({"location": LOCATION()})),
        (&volunteer, "check-out", json!({"location": LOCATION()})),
        (&volunteer, "complete", json!({"note": "疏通排水管"})),
    ];
    for (who, verb, body) in steps {
        let (status, ack) = who.post(&format!("/api/v1/orders/{id}/{verb}"), body).await;
        assert_eq!(status, 200, "{verb}: {ack}");
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poorly_reviewed_order_is_reworked_by_another_team_and_reviewed_again() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let resident = User::login(&server, "resident", "r-rework", "").await;
    let id = completed_order(&server, &resident, "永福巷积水，排水管堵了").await;
    let (status, _) = resident
        .post(&format!("/api/v1/orders/{id}/review"), json!({"rating": 4}))
        .await;
    assert_eq!(status, 200);
    // Rework on a ≥ 3-star review: refused, nothing written.
    let before = event_types(&head, &id).await.len();
    let (status, problem) = head
        .post(
            &format!("/api/v1/orders/{id}/rework"),
            json!({"team_id": "audit-bureau", "reason": "再看看"}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem.to_string().contains("rating"), "{problem}");
    assert_eq!(event_types(&head, &id).await.len(), before);

    // A poor review: back to another team (the district audit bureau's volunteers).
    let id = completed_order(&server, &resident, "永福巷积水又来了").await;
    resident
        .post(
            &format!("/api/v1/orders/{id}/review"),
            json!({"rating": 2, "comment": "还在积水"}),
        )
        .await;
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{id}/follow-up"),
            json!({"note": "电话回访：雨后仍积水，安排返工"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{id}/rework"),
            json!({"team_id": "audit-bureau", "reason": "雨后仍积水，请重新疏通"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (_, order) = head
        .get(&format!(
            "/api/v1/orders/{id}?min_position={}",
            ack["position"]
        ))
        .await;
    assert_eq!(order["status"], "dispatched");
    assert_eq!(order["assignee_id"], "audit-bureau");
    assert_eq!(order["reworks"], 1);
    let bureau = User::login(&server, "volunteer", "v-zhaolei", "").await;
    for (verb, body) in [
        ("accept", json!({"team_id": "audit-bureau"})),
        ("check-in", json!({"location": LOCATION()})),
        ("check-out", json!({"location": LOCATION()})),
        ("complete", json!({"note": "更换排水管一段"})),
    ] {
        let (status, ack) = bureau
            .post(&format!("/api/v1/orders/{id}/{verb}"), body)
            .await;
        assert_eq!(status, 200, "{verb}: {ack}");
    }
    let (status, ack) = resident
        .post(
            &format!("/api/v1/orders/{id}/review"),
            json!({"rating": 5, "comment": "这次好了"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (_, order) = head
        .get(&format!(
            "/api/v1/orders/{id}?min_position={}",
            ack["position"]
        ))
        .await;
    assert_eq!(order["rating"], 5, "the second review counts");
    let types = event_types(&head, &id).await;
    assert_eq!(
        count(&types, "OrderReviewed"),
        2,
        "the first stays in the history"
    );
    assert_eq!(count(&types, "OrderReworked"), 1);
    assert_eq!(count(&types, "FollowUpRecorded"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_merged_at_triage_and_both_requesters_review_the_survivor() {
    let server = Server::start_demo().await;
    let head = User::login(&server, "station_head", "head-dengxiaohu", "chezhanlu").await;
    let first = User::login(&server, "resident", "r-yongfu-1", "").await;
    let second = User::login(&server, "resident", "r-yongfu-2", "").await;
    let (_, ack) = first
        .post("/api/v1/orders", yongfu_order("永福巷 12 号门口积水"))
        .await;
    let earlier = ack["order_id"].as_str().unwrap().to_owned();
    let (_, ack) = second
        .post("/api/v1/orders", yongfu_order("永福巷下雨积水过膝"))
        .await;
    let duplicate = ack["order_id"].as_str().unwrap().to_owned();

    // Bad merges: into itself, into a later order, into an unknown one; nothing changes.
    let before = event_types(&head, &duplicate).await.len();
    for (into, expected) in [(&duplicate, 409), (&"no-such-order".to_owned(), 404)] {
        let (status, problem) = head
            .post(
                &format!("/api/v1/orders/{duplicate}/merge"),
                json!({"into": into}),
            )
            .await;
        assert_eq!(status, expected, "{problem}");
        assert!(problem.to_string().contains("into"), "{problem}");
    }
    let (status, problem) = head
        .post(
            &format!("/api/v1/orders/{earlier}/merge"),
            json!({"into": duplicate}),
        )
        .await;
    assert_eq!(status, 409, "merging into a later order: {problem}");
    assert_eq!(event_types(&head, &duplicate).await.len(), before);

    let (status, ack) = head
        .post(
            &format!("/api/v1/orders/{duplicate}/merge"),
            json!({"into": earlier, "reason": "同一积水点"}),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (_, merged) = head
        .get(&format!(
            "/api/v1/orders/{duplicate}?min_position={}",
            ack["position"]
        ))
        .await;
    assert_eq!(merged["status"], "merged", "closed as merged, not rejected");
    assert_eq!(merged["merged_into"], earlier.as_str());
    // The second requester now follows the surviving order.
    let (status, survivor) = second
        .get(&format!(
            "/api/v1/orders/{earlier}?min_position={}",
            ack["position"]
        ))
        .await;
    assert_eq!(status, 200, "{survivor}");
    assert_eq!(survivor["followers"], json!(["r-yongfu-2"]));
    let (_, mine) = second
        .get(&format!("/api/v1/orders?min_position={}", ack["position"]))
        .await;
    assert!(mine["orders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["order_id"] == earlier.as_str()));
    // Its own requester can no longer withdraw it: others follow it now.
    let (status, problem) = first
        .post(
            &format!("/api/v1/orders/{earlier}/cancel"),
            json!({"reason": "不需要了"}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    // Merging into a merged (closed) order: refused.
    let (_, ack3) = second
        .post("/api/v1/orders", yongfu_order("还是积水"))
        .await;
    let third = ack3["order_id"].as_str().unwrap().to_owned();
    let (status, problem) = head
        .post(
            &format!("/api/v1/orders/{third}/merge"),
            json!({"into": duplicate}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");

    // The survivor is served; both requesters review it, once each.
    let volunteer = User::login(&server, "volunteer", "v-liuhong", "").await;
    for (who, verb, body) in [
        (&head, "triage", json!({"accept": true})),
        (&head, "dispatch", json!({"team_id": TEAM})),
        (&volunteer, "accept", json!({"team_id": TEAM})),
        (&volunteer, "check-in", json!({"location": LOCATION()})),
        (&volunteer, "check-out", json!({"location": LOCATION()})),
        (&volunteer, "complete", json!({"note": "疏通永福巷排水"})),
        (&first, "review", json!({"rating": 5})),
        (&second, "review", json!({"rating": 4})),
    ] {
        let (status, ack) = who
            .post(&format!("/api/v1/orders/{earlier}/{verb}"), body)
            .await;
        assert_eq!(status, 200, "{verb}: {ack}");
    }
    let (status, problem) = second
        .post(
            &format!("/api/v1/orders/{earlier}/review"),
            json!({"rating": 1}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    let types = event_types(&head, &earlier).await;
    assert_eq!(count(&types, "OrderReviewed"), 2);
    assert_eq!(count(&types, "DuplicateMerged"), 1);
}
