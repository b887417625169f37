//! Real sign-in: staff passwords (argon2id, lockout), JWT access tokens, rotating refresh
//! tokens, logout, account management, and the development login only in development mode —
//! against the real binary over HTTP.

mod support;

use serde_json::{json, Value};

use support::{Server, User};

/// POSTs JSON without a token; (status, body, Retry-After).
async fn post(server: &Server, path: &str, body: Value) -> (u16, Value, Option<String>) {
    let response = reqwest::Client::new()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        retry_after,
    )
}

async fn login(server: &Server, username: &str, password: &str) -> (u16, Value) {
    let (status, body, _) = post(
        server,
        "/api/v1/auth/login",
        json!({"username": username, "password": password}),
    )
    .await;
    (status, body)
}

/// A signed-in staff member (their access token).
async fn staff(server: &Server, username: &str, password: &str) -> (User, Value) {
    let (status, session) = login(server, username, password).await;
    assert_eq!(status, 200, "{session}");
    let user = User {
        http: reqwest::Client::new(),
        base: format!("http://{}", server.http),
        token: session["access_token"].as_str().unwrap().to_owned(),
    };
    (user, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sign_in_with_passwords_and_act_within_their_subtree() {
    let server = Server::start_demo().await;
    let (head, session) = staff(&server, "deng.xiaohu", "chezhanlu-demo-2026").await;
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["role"], "station_head");
    assert_eq!(session["node_id"], "chezhanlu");
    assert!(session["expires_in"].as_u64().unwrap() <= 15 * 60);
    // The access token is a JWT carrying a key id.
    let header = session["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    assert!(header.starts_with("eyJ"), "{header}");

    let (status, queue) = head.get("/api/v1/nodes/chezhanlu/queue").await;
    assert_eq!(status, 200, "{queue}");
    // Outside the subtree: refused.
    let (status, problem) = head.get("/api/v1/nodes/wenquan/queue").await;
    assert!(matches!(status, 403 | 404), "{status} {problem}");

    // An auditor reads but never writes.
    let (auditor, _) = staff(&server, "audit.xianan", "audit-demo-2026").await;
    let (_, list) = auditor.get("/api/v1/orders?limit=1").await;
    let id = list["orders"][0]["order_id"].as_str().unwrap().to_owned();
    let (status, problem) = auditor
        .post(
            &format!("/api/v1/orders/{id}/triage"),
            json!({"accept": true}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");

    // Nobody grants a role above their own, or at their own node for their own role.
    let (status, problem) = head
        .post(
            "/api/v1/accounts",
            json!({"username": "li.si", "display_name": "李四", "role": "station_head",
                   "node_id": "chezhanlu", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = head
        .post(
            "/api/v1/accounts",
            json!({"username": "li.si", "display_name": "李四", "role": "auditor",
                   "node_id": "wenquan", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(status, 403, "outside the subtree: {problem}");
    let (status, problem) = head
        .post(
            "/api/v1/accounts",
            json!({"username": "li.si", "display_name": "李四", "role": "system",
                   "node_id": "chezhanlu", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("role")),
        "{problem}"
    );
    let (admin, _) = staff(&server, "admin.xianan", "xianan-demo-2026").await;
    let (status, created) = admin
        .post(
            "/api/v1/accounts",
            json!({"username": "li.si", "display_name": "李四", "role": "station_head",
                   "node_id": "chezhanlu", "password": "first-password-1"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, problem) = admin
        .post(
            "/api/v1/accounts",
            json!({"username": "li.si", "display_name": "李四", "role": "auditor",
                   "node_id": "chezhanlu", "password": "first-password-1"}),
        )
        .await;
    assert_eq!(status, 409, "a username is taken once: {problem}");

    // The new head signs in, changes the password; an administrator resets it.
    let (li, _) = staff(&server, "li.si", "first-password-1").await;
    let (status, problem) = li
        .post(
            "/api/v1/auth/password",
            json!({"old_password": "wrong-password", "new_password": "second-password-2"}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("old_password"))
    );
    let (status, _) = li
        .post(
            "/api/v1/auth/password",
            json!({"old_password": "first-password-1", "new_password": "second-password-2"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(login(&server, "li.si", "first-password-1").await.0, 401);
    staff(&server, "li.si", "second-password-2").await;
    let (status, problem) = head
        .post(
            "/api/v1/accounts/staff-li_si/password-reset",
            json!({"new_password": "third-password-3"}),
        )
        .await;
    assert_eq!(status, 403, "a head resets no peer's password: {problem}");
    let (status, _) = admin
        .post(
            "/api/v1/accounts/staff-li_si/password-reset",
            json!({"new_password": "third-password-3"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, session) = staff(&server, "li.si", "third-password-3").await;
    assert_eq!(session["must_change_password"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_say_nothing_and_lock_the_account_out() {
    let server = Server::start_demo().await;
    let (wrong, unknown) = (
        login(&server, "deng.xiaohu", "not-the-password").await,
        login(&server, "nobody.here", "not-the-password").await,
    );
    assert_eq!(wrong.0, 401);
    assert_eq!(unknown.0, 401);
    assert_eq!(
        wrong.1["detail"], unknown.1["detail"],
        "no hint whether a username exists"
    );
    for bad in [String::new(), "x".repeat(10_240)] {
        let (status, problem) = login(&server, "admin.xianan", &bad).await;
        assert!(matches!(status, 400 | 401), "{status} {problem}");
        assert!(!problem["detail"].as_str().unwrap().is_ascii());
    }
    // Five failures in a row lock the account: even the right password waits, told how long.
    for _ in 0..4 {
        assert_eq!(login(&server, "deng.xiaohu", "guess-again").await.0, 401);
    }
    let (status, problem, retry_after) = post(
        &server,
        "/api/v1/auth/login",
        json!({"username": "deng.xiaohu", "password": "chezhanlu-demo-2026"}),
    )
    .await;
    assert_eq!(status, 429, "{problem}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // Other accounts from the same address still sign in.
    staff(&server, "audit.xianan", "audit-demo-2026").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_reuse_revokes_and_logout_ends_the_session() {
    let server = Server::start_demo().await;
    let (_, first) = staff(&server, "admin.xianan", "xianan-demo-2026").await;
    let refresh = |token: &str| {
        let server = &server;
        let token = token.to_owned();
        async move {
            post(
                server,
                "/api/v1/auth/refresh",
                json!({"refresh_token": token}),
            )
            .await
        }
    };
    let old = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, second, _) = refresh(&old).await;
    assert_eq!(status, 200, "{second}");
    let new = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    // The new access token works.
    let user = User {
        http: reqwest::Client::new(),
        base: format!("http://{}", server.http),
        token: second["access_token"].as_str().unwrap().to_owned(),
    };
    assert_eq!(user.get("/api/v1/nodes/xianan/stats").await.0, 200);
    // The spent token again: refused, and the whole session is revoked with it.
    assert_eq!(refresh(&old).await.0, 401);
    assert_eq!(refresh(&new).await.0, 401, "reuse revoked the family");

    // Logout ends a session: its refresh token no longer works.
    let (_, session) = staff(&server, "admin.xianan", "xianan-demo-2026").await;
    let token = session["refresh_token"].as_str().unwrap().to_owned();
    let (status, _, _) = post(
        &server,
        "/api/v1/auth/logout",
        json!({"refresh_token": token}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&token).await.0, 401);
    // Garbage is refused plainly.
    for junk in ["", "x.y", &"a".repeat(200)] {
        let (status, problem, _) = refresh(junk).await;
        assert!(matches!(status, 400 | 401), "{junk:?}: {status} {problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_tampered_and_dev_tokens_are_refused_without_dev_mode() {
    // Not in development mode (no --dev, no DIANDAN_DEV): the development login is off.
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_production(tmp.path());
    let url = |p: &str| server.url(p);
    let client = reqwest::Client::new();
    let response = client
        .post(url("/api/v1/dev/login"))
        .json(&json!({"role": "station_head", "user_id": "h", "org_node": "xianan"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "no development login without --dev");

    // A token signed by another deployment's key, and one edited after signing.
    let foreign =
        diandan_runtime::auth::TokenSigner::new(b"another-environment-key-0123456789".to_vec())
            .issue(&diandan_runtime::auth::Claims {
                sub: "h".into(),
                role: diandan_workflows::Role::StationHead,
                node: Some("xianan".into()),
                acc: None,
                exp: (time::OffsetDateTime::now_utc() + time::Duration::hours(1)).unix_timestamp(),
            });
    let mut parts: Vec<&str> = foreign.split('.').collect();
    let tampered_payload = "eyJzdWIiOiJoIiwicm9sZSI6InN5c3RlbSIsImV4cCI6OTk5OTk5OTk5OX0";
    parts[1] = tampered_payload;
    let tampered = parts.join(".");
    // Signed with this deployment's own key, but expired.
    let expired =
        diandan_runtime::auth::TokenSigner::new(diandan::server::token_secret(tmp.path()).unwrap())
            .issue(&diandan_runtime::auth::Claims {
                sub: "h".into(),
                role: diandan_workflows::Role::StationHead,
                node: Some("xianan".into()),
                acc: None,
                exp: (time::OffsetDateTime::now_utc() - time::Duration::minutes(1))
                    .unix_timestamp(),
            });
    for token in [
        foreign.as_str(),
        tampered.as_str(),
        expired.as_str(),
        "not-a-jwt",
    ] {
        let response = client
            .get(url("/api/v1/orders"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{token}");
        let problem: Value = response.json().await.unwrap();
        assert!(!problem["detail"].as_str().unwrap().is_ascii(), "{problem}");
    }
}

/// A stand-in for WeChat's `jscode2session`: answers by the code it is given.
async fn fake_wechat() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).into_owned();
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                if path.starts_with("/cgi-bin/token")
                    || path.starts_with("/wxa/business/getuserphonenumber")
                {
                    let body = if path.starts_with("/cgi-bin/token") {
                        json!({"access_token": "ACCESS-TOKEN", "expires_in": 7200})
                    } else {
                        json!({"errcode": 0, "phone_info": {"phoneNumber": "13812345678",
                               "purePhoneNumber": "13812345678", "countryCode": "86"}})
                    }
                    .to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                    return;
                }
                let code = head
                    .split(['?', '&', ' '])
                    .find_map(|p| p.strip_prefix("js_code="))
                    .unwrap_or_default()
                    .to_owned();
                let body = match code.as_str() {
                    "resident-code" => {
                        json!({"openid": "o-resident-1", "session_key": "SECRET-KEY"})
                    }
                    "invalid-code" => json!({"errcode": 40029, "errmsg": "invalid code"}),
                    "used-code" => json!({"errcode": 40163, "errmsg": "code been used"}),
                    "limited-code" => {
                        json!({"errcode": 45011, "errmsg": "api minute-quota reach limit"})
                    }
                    _ => json!({"errcode": -1, "errmsg": "system error"}),
                }
                .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (base, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn residents_sign_in_with_wechat_and_wechat_errors_are_clear() {
    let (wechat, fake) = fake_wechat().await;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        tmp.path(),
        false,
        &[
            ("DIANDAN_WECHAT_APPID", "wx-test-app"),
            ("DIANDAN_WECHAT_SECRET", "wx-test-secret"),
            ("DIANDAN_WECHAT_BASE_URL", wechat.as_str()),
        ],
    );
    let wechat_login = |code: &str| post(&server, "/api/v1/auth/wechat", json!({ "code": code }));
    let (status, first, _) = wechat_login("resident-code").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true);
    assert_eq!(first["session"]["role"], "resident");
    assert!(
        !first.to_string().contains("SECRET-KEY"),
        "session_key never leaves the server: {first}"
    );
    let (status, again, _) = wechat_login("resident-code").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(
        again["session"]["account_id"], first["session"]["account_id"],
        "the same openid is the same account"
    );
    // The resident acts with the token: their own (empty) list of orders.
    let resident = User {
        http: reqwest::Client::new(),
        base: format!("http://{}", server.http),
        token: again["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let (status, list) = resident.get("/api/v1/orders").await;
    assert_eq!(status, 200, "{list}");
    // 绑定手机号: the number from WeChat, masked in the answer (and in the event log).
    let (status, bound) = resident
        .post("/api/v1/auth/wechat/phone", json!({"code": "phone-code"}))
        .await;
    assert_eq!(status, 200, "{bound}");
    assert_eq!(bound["phone_masked"], "138****5678");
    for file in ["events.db", "events.db-wal"] {
        let bytes = std::fs::read(server.data_dir.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(11).any(|w| w == b"13812345678"),
            "the full number is kept off the event log ({file})"
        );
    }

    for (code, expected) in [
        ("invalid-code", 401),
        ("used-code", 401),
        ("limited-code", 429),
        ("busy-code", 503),
        ("", 400),
    ] {
        let (status, problem, _) = wechat_login(code).await;
        assert_eq!(status, expected, "{code}: {problem}");
        assert!(!problem["detail"].as_str().unwrap().is_ascii(), "{problem}");
    }
    fake.abort();
}

/// 志愿者微信登录: a station registers a volunteer with their mobile number; when that person
/// signs in with WeChat and binds the same number, their account becomes the volunteer's — a
/// token for the volunteer, who then accepts an order offered to their team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volunteers_sign_in_with_wechat_by_the_number_their_station_registered() {
    let (wechat, fake) = fake_wechat().await;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        tmp.path(),
        true,
        &[
            ("DIANDAN_WECHAT_APPID", "wx-test-app"),
            ("DIANDAN_WECHAT_SECRET", "wx-test-secret"),
            ("DIANDAN_WECHAT_BASE_URL", wechat.as_str()),
        ],
    );
    server.wait_for_demo().await;
    let head = User::login(&server, "station_head", "head-wx", "chezhanlu").await;
    let (status, registered) = head
        .post(
            "/api/v1/volunteers",
            json!({"id": "v-wx-zhang", "name": "张伟", "team_ids": ["zhidui-chezhanlu"],
                   "phone": "13812345678"}),
        )
        .await;
    assert!(matches!(status, 200 | 201), "{registered}");
    // One number, one volunteer.
    let (status, problem) = head
        .post(
            "/api/v1/volunteers",
            json!({"id": "v-wx-other", "name": "李娜", "team_ids": ["zhidui-chezhanlu"],
                   "phone": "13812345678"}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (409, Some("phone")),
        "{problem}"
    );

    let (status, signed_in, _) = post(
        &server,
        "/api/v1/auth/wechat",
        json!({"code": "resident-code"}),
    )
    .await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["session"]["role"], "resident");
    let user = User {
        http: reqwest::Client::new(),
        base: format!("http://{}", server.http),
        token: signed_in["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let (status, bound) = user
        .post("/api/v1/auth/wechat/phone", json!({"code": "phone-code"}))
        .await;
    assert_eq!(status, 200, "{bound}");
    assert_eq!(bound["volunteer_id"], "v-wx-zhang", "{bound}");
    for file in ["events.db", "events.db-wal"] {
        let bytes = std::fs::read(server.data_dir.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(11).any(|w| w == b"13812345678"),
            "the volunteer's number is kept off the event log ({file})"
        );
    }
    // The next token is the volunteer's.
    let (status, refreshed, _) = post(
        &server,
        "/api/v1/auth/refresh",
        json!({"refresh_token": signed_in["session"]["refresh_token"]}),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["role"], "volunteer", "{refreshed}");
    let volunteer = User {
        token: refreshed["access_token"].as_str().unwrap().to_owned(),
        ..user.clone()
    };

    // An order offered to their team: they accept it, as themselves.
    let resident = User::login(&server, "resident", "r-wx-order", "").await;
    let (status, placed) = resident
        .post(
            "/api/v1/orders",
            json!({"station_id": "chezhanlu", "category": "repair",
                   "description": "楼道灯不亮", "contact_phone": "13900000000",
                   "location": {"lat": 29.87, "lng": 114.28, "address": "车站路 41 号"}}),
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    let id = placed["order_id"].as_str().unwrap();
    let path = |verb: &str| format!("/api/v1/orders/{id}/{verb}");
    assert_eq!(
        head.post(&path("triage"), json!({"accept": true})).await.0,
        200
    );
    assert_eq!(
        head.post(&path("dispatch"), json!({"team_id": "zhidui-chezhanlu"}))
            .await
            .0,
        200
    );
    let (status, accepted) = volunteer
        .post(&path("accept"), json!({"team_id": "zhidui-chezhanlu"}))
        .await;
    assert_eq!(status, 200, "{accepted}");
    let (_, order) = volunteer.get(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(order["accepted_by"], "v-wx-zhang", "{order}");
    // While they hold it, they see the resident's number.
    assert_eq!(order["contact_phone"], "13900000000", "{order}");
    fake.abort();
}

/// 队长: a team leader sees the orders their members hold, and acts for the team; an
/// institute admin runs a station of their institute; account creation follows the ranks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_leaders_institute_and_centre_admins_act_by_the_table() {
    let server = Server::start_demo().await;
    // v-wangsen leads 车站路支队 in the demo; v-liuhong is a member.
    let leader = User::login(&server, "team_leader", "v-wangsen", "").await;
    let (status, led) = leader.get("/api/v1/orders?limit=100").await;
    assert_eq!(status, 200, "{led}");
    let held_by_member: Vec<&Value> = led["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["accepted_by"] == "v-liuhong")
        .collect();
    assert!(
        !held_by_member.is_empty(),
        "the leader sees what their members hold: {led}"
    );
    // …but not the number of a resident whose order a member serves.
    for order in held_by_member {
        assert!(
            order["contact_phone"].as_str().unwrap().contains('*'),
            "{order}"
        );
    }
    // 派给队员: the leader accepts an order for a member, who then serves it.
    let head = User::login(&server, "station_head", "head-leader-test", "chezhanlu").await;
    let resident = User::login(&server, "resident", "r-leader-test", "").await;
    let mut dispatched = Vec::new();
    for n in 0..2 {
        let (status, placed) = resident
            .post(
                "/api/v1/orders",
                json!({"station_id": "chezhanlu", "category": "repair",
                       "description": format!("队长派单测试 {n}"), "contact_phone": "13900000001",
                       "location": {"lat": 29.87, "lng": 114.28, "address": "车站路 41 号"}}),
            )
            .await;
        assert_eq!(status, 201, "{placed}");
        let id = placed["order_id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/orders/{id}");
        assert_eq!(
            head.post(&format!("{path}/triage"), json!({"accept": true}))
                .await
                .0,
            200
        );
        assert_eq!(
            head.post(
                &format!("{path}/dispatch"),
                json!({"team_id": "zhidui-chezhanlu"})
            )
            .await
            .0,
            200
        );
        dispatched.push(path);
    }
    let member = User::login(&server, "volunteer", "v-liuhong", "").await;
    // Only the leader names who serves…
    let (status, problem) = member
        .post(
            &format!("{}/accept", dispatched[0]),
            json!({"team_id": "zhidui-chezhanlu", "volunteer_id": "v-wangsen"}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    // …and only a member of the team.
    let (status, problem) = leader
        .post(
            &format!("{}/accept", dispatched[0]),
            json!({"team_id": "zhidui-chezhanlu", "volunteer_id": "v-chenjing"}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (409, Some("volunteer_id")),
        "{problem}"
    );
    let (status, accepted) = leader
        .post(
            &format!("{}/accept", dispatched[0]),
            json!({"team_id": "zhidui-chezhanlu", "volunteer_id": "v-liuhong"}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    let (_, order) = member.get(&dispatched[0]).await;
    assert_eq!(order["accepted_by"], "v-liuhong", "{order}");
    assert_eq!(
        order["contact_phone"], "13900000001",
        "the member serves it: {order}"
    );
    let (status, checked_in) = member
        .post(
            &format!("{}/check-in", dispatched[0]),
            json!({"location": {"lat": 29.87, "lng": 114.28, "address": "车站路 41 号"}}),
        )
        .await;
    assert_eq!(status, 200, "{checked_in}");

    // A volunteer who leads no team cannot sign in as a leader.
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/dev/login"))
        .json(&json!({"role": "team_leader", "user_id": "v-liuhong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);

    // The institute admin of 永安 (demo account) runs 车站路, which lies in their institute…
    let (institute, session) = staff(&server, "admin.yongan", "yongan-demo-2026").await;
    assert_eq!(session["role"], "institute_admin");
    let (status, queue) = institute.get("/api/v1/nodes/chezhanlu/queue").await;
    assert_eq!(status, 200, "{queue}");
    // …not 梅园, which does not.
    let (status, _) = institute.get("/api/v1/nodes/meiyuan/queue").await;
    assert_eq!(status, 403);
    // They open a station head's account below them, never an admin's like their own.
    let account = |username: &str, role: &str, node: &str| {
        json!({"username": username, "display_name": "新账号", "role": role,
               "node_id": node, "password": "a-long-password-1"})
    };
    let (status, created) = institute
        .post(
            "/api/v1/accounts",
            account("head.chezhanlu2", "station_head", "chezhanlu"),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, problem) = institute
        .post(
            "/api/v1/accounts",
            account("admin.yongan2", "institute_admin", "yongan"),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    // A station head's account is bound to a station, not an institute.
    let (status, problem) = institute
        .post(
            "/api/v1/accounts",
            account("head.yongan", "station_head", "yongan"),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (409, Some("node_id")),
        "{problem}"
    );
    // The centre admin opens institute admins.
    let (centre, session) = staff(&server, "admin.xianan", "xianan-demo-2026").await;
    assert_eq!(session["role"], "centre_admin");
    let (status, created) = centre
        .post(
            "/api/v1/accounts",
            account("admin.wenquan", "institute_admin", "wenquan"),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    // An auditor writes nothing, not even an account.
    let (auditor, _) = staff(&server, "audit.xianan", "audit-demo-2026").await;
    let (status, _) = auditor
        .post(
            "/api/v1/accounts",
            account("audit.two", "auditor", "chezhanlu"),
        )
        .await;
    assert_eq!(status, 403);
}
