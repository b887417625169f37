//! Notifications through the outbox and the WeChat subscription-message API, against a local
//! HTTP server that records requests and fails on purpose: each notification is sent exactly
//! once, across token expiry, server errors, a restart and a replay of the events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

mod support;

use diandan_runtime::notify::outbox::Outbox;
use diandan_runtime::notify::wechat::{WechatConfig, WechatNotifier};
use diandan_runtime::notify::Notifier;
use diandan_runtime::RequestContext;
use diandan_workflows::Role;
use support::{app_with_v1_of_t1, ctx, the_loop};

#[derive(Default)]
struct FakeWechat {
    token_calls: u32,
    /// (access token used, body) of every send attempt.
    sends: Vec<(String, Value)>,
}

type Shared = Arc<Mutex<FakeWechat>>;

async fn token(State(fake): State<Shared>) -> Json<Value> {
    let mut fake = fake.lock().unwrap();
    fake.token_calls += 1;
    Json(json!({"access_token": format!("token-{}", fake.token_calls), "expires_in": 7200}))
}

async fn send(
    State(fake): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    Json(body): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    let mut fake = fake.lock().unwrap();
    let token = query.get("access_token").cloned().unwrap_or_default();
    fake.sends.push((token.clone(), body));
    let attempt = fake.sends.len();
    if token == "token-1" {
        // The first token has "expired" on WeChat's side.
        return (
            axum::http::StatusCode::OK,
            Json(json!({"errcode": 42001, "errmsg": "access_token expired"})),
        );
    }
    if attempt == 3 {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({})),
        );
    }
    (
        axum::http::StatusCode::OK,
        Json(json!({"errcode": 0, "errmsg": "ok"})),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_notification_is_sent_once_across_failures_restart_and_replay() {
    let fake: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/cgi-bin/token", get(token))
        .route("/cgi-bin/message/subscribe/send", post(send))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let config = WechatConfig {
        base_url,
        app_id: "wx-test".into(),
        app_secret: "secret".into(),
        template_id: "tmpl".into(),
        miniprogram_state: "developer".into(),
    };

    let dir = tempfile::tempdir().unwrap();
    let app = app_with_v1_of_t1(dir.path()).await;
    let steps = the_loop(ctx("r1", Role::Resident), "o1");
    for (who, action) in steps {
        let who = RequestContext {
            command_id: uuid::Uuid::new_v4().to_string(),
            ..who
        };
        app.execute(&who, "o1", action, None).await.unwrap();
    }

    let outbox_path = dir.path().join("outbox.db");
    let run_until_quiet = |outbox: Outbox, notifier: Arc<dyn Notifier>| {
        let app = app.clone();
        async move {
            // Retries back off 500 ms, 1 s, …: give them a few seconds.
            for _ in 0..60 {
                app.outbox_round(&outbox, notifier.as_ref()).await.unwrap();
                let counts = outbox.counts().await.unwrap();
                if counts.iter().all(|(status, _)| status == "sent") && !counts.is_empty() {
                    return counts;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            outbox.counts().await.unwrap()
        }
    };
    let outbox = Outbox::open(&outbox_path).unwrap();
    let counts = run_until_quiet(outbox, Arc::new(WechatNotifier::new(config.clone()))).await;
    // placed → station, dispatched → team, accepted → resident, completed → resident,
    // a one-star review → a follow-up (回访) task for the station.
    assert_eq!(counts, vec![("sent".to_owned(), 5)]);
    let delivered = |fake: &FakeWechat| -> Vec<String> {
        let mut ok: Vec<String> = fake
            .sends
            .iter()
            .filter(|(token, _)| token != "token-1")
            .map(|(_, body)| format!("{} {}", body["touser"], body["data"]["thing1"]["value"]))
            .collect();
        ok.sort();
        ok
    };
    {
        let fake = fake.lock().unwrap();
        assert_eq!(fake.token_calls, 2, "an expired token is refreshed once");
        // 5 delivered + 1 refused for the expired token + 1 server error, retried.
        assert_eq!(fake.sends.len(), 7);
        let mut unique = delivered(&fake);
        unique.dedup();
        assert_eq!(unique.len(), 5, "{unique:?}");
        assert!(
            unique
                .iter()
                .any(|m| m.contains("station:s1") && m.contains("回访")),
            "{unique:?}"
        );
    }

    // A restart (new outbox handle, new notifier with an empty token cache): nothing re-sent.
    let sends_before = fake.lock().unwrap().sends.len();
    let outbox = Outbox::open(&outbox_path).unwrap();
    run_until_quiet(
        outbox.clone(),
        Arc::new(WechatNotifier::new(config.clone())),
    )
    .await;
    assert_eq!(fake.lock().unwrap().sends.len(), sends_before);

    // A replay of every event from the start: nothing re-sent either.
    outbox.rewind(0).await.unwrap();
    let counts = run_until_quiet(outbox.clone(), Arc::new(WechatNotifier::new(config))).await;
    assert_eq!(counts, vec![("sent".to_owned(), 5)]);
    assert_eq!(fake.lock().unwrap().sends.len(), sends_before);
}

/// A resident who signed in with WeChat is notified at their openid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wechat_resident_is_notified_at_their_openid() {
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);
    #[async_trait::async_trait]
    impl Notifier for Recording {
        async fn send(
            &self,
            n: &diandan_runtime::notify::Notification,
        ) -> Result<(), diandan_runtime::notify::NotifyError> {
            self.0.lock().unwrap().push(n.recipient.clone());
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_v1_of_t1(dir.path()).await;
    let (issued, _) = app.wechat_login("openid-resident-7", None).await.unwrap();
    let resident = ctx(&issued.account.account_id, Role::Resident);
    // Placed, triaged, dispatched, accepted: the acceptance notifies the resident.
    let steps: Vec<_> = the_loop(resident, "o7").into_iter().take(4).collect();
    for (who, action) in steps {
        let who = RequestContext {
            command_id: uuid::Uuid::new_v4().to_string(),
            ..who
        };
        app.execute(&who, "o7", action, None).await.unwrap();
    }
    let outbox = Outbox::open(&dir.path().join("outbox.db")).unwrap();
    let recording = Recording::default();
    while app.outbox_round(&outbox, &recording).await.unwrap() {}
    let recipients = recording.0.lock().unwrap().clone();
    assert!(
        recipients.iter().any(|r| r == "openid-resident-7"),
        "the acceptance notice goes to the openid: {recipients:?}"
    );
    assert!(
        !recipients.iter().any(|r| r.starts_with("wx-")),
        "{recipients:?}"
    );
}
