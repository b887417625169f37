//! Mini-program login and phone numbers against a local HTTP server that answers like WeChat:
//! each errcode becomes the error that says what to do, -1 is retried a bounded number of
//! times, a slow WeChat costs one timeout, the access token is cached and refreshed once when
//! refused — and neither the session key nor the app secret ever shows in a `Debug` output or an
//! error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

use diandan_runtime::wechat::{WechatApp, WechatClient, WechatError, BUSY_ATTEMPTS};

const SECRET: &str = "app-secret-do-not-leak";
const SESSION_KEY: &str = "c2Vzc2lvbi1rZXktZG8tbm90LWxlYWs=";

#[derive(Default)]
struct FakeWechat {
    /// Query strings of every jscode2session call.
    logins: Vec<HashMap<String, String>>,
    /// Answers so far per code, for "busy twice then fine".
    calls_per_code: HashMap<String, u32>,
    token_calls: u32,
    /// Access tokens WeChat has retired (refused with 40001).
    retired: Vec<String>,
    /// (access token, body) of every phone-number call.
    phone_calls: Vec<(String, Value)>,
}

type Shared = Arc<Mutex<FakeWechat>>;

async fn jscode2session(
    State(fake): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    let code = query.get("js_code").cloned().unwrap_or_default();
    let calls = {
        let mut fake = fake.lock().unwrap();
        fake.logins.push(query);
        let calls = fake.calls_per_code.entry(code.clone()).or_default();
        *calls += 1;
        *calls
    };
    let error = |errcode: i64, errmsg: &str| Json(json!({"errcode": errcode, "errmsg": errmsg}));
    match code.as_str() {
        "with-union" => Json(json!({
            "openid": "o-1", "unionid": "u-1", "session_key": SESSION_KEY,
        })),
        "no-union" => Json(json!({"openid": "o-2", "session_key": SESSION_KEY, "errcode": 0})),
        "invalid" => error(40029, "invalid code, rid: 1"),
        "used" => error(40163, "code been used, rid: 2"),
        "limited" => error(45011, "api minute-quota reach limit, rid: 3"),
        "odd" => error(40226, "high risk user, rid: 4"),
        "busy-twice" if calls <= 2 => error(-1, "system error"),
        "busy-twice" => Json(json!({"openid": "o-3", "session_key": SESSION_KEY})),
        "busy" => error(-1, "system error"),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Json(json!({"openid": "o-4", "session_key": SESSION_KEY}))
        }
        _ => error(40029, "invalid code"),
    }
}

async fn token(
    State(fake): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    assert_eq!(query["grant_type"], "client_credential");
    assert_eq!(query["appid"], "wx-test");
    assert_eq!(query["secret"], SECRET);
    let mut fake = fake.lock().unwrap();
    fake.token_calls += 1;
    Json(json!({"access_token": format!("token-{}", fake.token_calls), "expires_in": 7200}))
}

async fn phone(
    State(fake): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut fake = fake.lock().unwrap();
    let token = query.get("access_token").cloned().unwrap_or_default();
    fake.phone_calls.push((token.clone(), body.clone()));
    if fake.retired.contains(&token) {
        return Json(
            json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}),
        );
    }
    match body["code"].as_str() {
        Some("phone-ok") => Json(json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": "13812345678",
                "purePhoneNumber": "13812345678",
                "countryCode": 86,
                "watermark": {"timestamp": 1637744274, "appid": "wx-test"},
            },
        })),
        Some("phone-used") => Json(json!({"errcode": 40163, "errmsg": "code been used"})),
        _ => Json(json!({"errcode": 40029, "errmsg": "invalid code"})),
    }
}

/// A fake WeChat on a random port, and a client for it with a timeout no healthy answer
/// reaches on a loaded machine.
async fn start() -> (Shared, WechatClient) {
    start_with_timeout(Duration::from_secs(5)).await
}

/// [`start`], with the client's `timeout`.
async fn start_with_timeout(timeout: Duration) -> (Shared, WechatClient) {
    let fake: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/sns/jscode2session", get(jscode2session))
        .route("/cgi-bin/token", get(token))
        .route("/wxa/business/getuserphonenumber", post(phone))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = WechatClient::new(WechatApp {
        base_url,
        timeout,
        ..WechatApp::new("wx-test", SECRET)
    });
    (fake, client)
}

/// Nothing secret in what may reach a log or a client.
fn assert_no_secrets(shown: &str) {
    assert!(!shown.contains(SESSION_KEY), "session key in {shown:?}");
    assert!(!shown.contains(SECRET), "app secret in {shown:?}");
    assert!(!shown.contains("token-"), "access token in {shown:?}");
}

fn assert_error_is_safe(e: &WechatError) {
    assert_no_secrets(&e.to_string());
    assert_no_secrets(&format!("{e:?}"));
    assert!(!e.message_zh().is_empty());
}

#[tokio::test]
async fn a_login_code_becomes_a_session() {
    let (fake, client) = start().await;

    let session = client.code_to_session("with-union").await.unwrap();
    assert_eq!(session.openid, "o-1");
    assert_eq!(session.unionid.as_deref(), Some("u-1"));
    assert_eq!(session.session_key.expose_secret(), SESSION_KEY);
    let shown = format!("{session:?} {session:#?} {:?}", session.session_key);
    assert_no_secrets(&shown);
    assert!(
        shown.contains("o-1") && shown.contains("<redacted>"),
        "{shown}"
    );

    let session = client.code_to_session("no-union").await.unwrap();
    assert_eq!(session.openid, "o-2");
    assert_eq!(session.unionid, None);
    assert_no_secrets(&format!("{session:?}"));

    let fake = fake.lock().unwrap();
    let query = &fake.logins[0];
    assert_eq!(query["appid"], "wx-test");
    assert_eq!(query["secret"], SECRET);
    assert_eq!(query["js_code"], "with-union");
    assert_eq!(query["grant_type"], "authorization_code");
    assert_eq!(fake.token_calls, 0, "login needs no access token");
}

#[tokio::test]
async fn each_refusal_says_what_to_do() {
    let (fake, client) = start().await;
    let cases = [
        ("invalid", WechatError::InvalidCode),
        ("used", WechatError::CodeUsed),
        ("limited", WechatError::RateLimited),
        (
            "odd",
            WechatError::Rejected {
                errcode: 40226,
                errmsg: "high risk user, rid: 4".into(),
            },
        ),
    ];
    for (code, expected) in cases {
        let e = client.code_to_session(code).await.unwrap_err();
        assert_eq!(e, expected, "{code}");
        assert_error_is_safe(&e);
    }
    assert_eq!(
        WechatError::CodeUsed.message_zh(),
        "微信授权已使用过，请重试"
    );
    // None of them is retried.
    assert_eq!(fake.lock().unwrap().logins.len(), 4);
}

#[tokio::test]
async fn empty_or_oversized_codes_never_reach_wechat() {
    let (fake, client) = start().await;
    for code in ["", "   ", &"x".repeat(129)] {
        let e = client.code_to_session(code).await.unwrap_err();
        assert!(matches!(e, WechatError::MalformedCode(_)), "{e:?}");
        assert_error_is_safe(&e);
        let e = client.phone_number(code).await.unwrap_err();
        assert!(matches!(e, WechatError::MalformedCode(_)), "{e:?}");
    }
    // 128 characters is still accepted (and refused by WeChat here).
    let e = client.code_to_session(&"x".repeat(128)).await.unwrap_err();
    assert_eq!(e, WechatError::InvalidCode);
    let fake = fake.lock().unwrap();
    assert_eq!(fake.logins.len(), 1);
    assert_eq!((fake.token_calls, fake.phone_calls.len()), (0, 0));
}

#[tokio::test]
async fn busy_is_retried_a_bounded_number_of_times() {
    let (fake, client) = start().await;

    let session = client.code_to_session("busy-twice").await.unwrap();
    assert_eq!(session.openid, "o-3");
    assert_eq!(fake.lock().unwrap().calls_per_code["busy-twice"], 3);

    let started = Instant::now();
    let e = client.code_to_session("busy").await.unwrap_err();
    assert!(matches!(e, WechatError::Unavailable(_)), "{e:?}");
    assert_error_is_safe(&e);
    assert_eq!(fake.lock().unwrap().calls_per_code["busy"], BUSY_ATTEMPTS);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_wechat_costs_one_timeout() {
    let (fake, client) = start_with_timeout(Duration::from_millis(300)).await;
    let started = Instant::now();
    let e = client.code_to_session("slow").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(e, WechatError::Unavailable(_)), "{e:?}");
    assert_error_is_safe(&e);
    assert_eq!(e.message_zh(), "微信服务暂时不可用，请稍后再试");
    // One timeout, not the fake's 10 s nor a retry's second one.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // Not retried: WeChat may have used the code up.
    assert_eq!(fake.lock().unwrap().calls_per_code["slow"], 1);
}

#[tokio::test]
async fn an_unreachable_wechat_is_unavailable_without_leaking_the_secret() {
    // A port nothing listens on (bound, then released).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let app = WechatApp {
        base_url,
        timeout: Duration::from_millis(500),
        ..WechatApp::new("wx-test", SECRET)
    };
    assert_no_secrets(&format!("{app:?}"));
    let client = WechatClient::new(app);
    let e = client.code_to_session("with-union").await.unwrap_err();
    assert!(matches!(e, WechatError::Unavailable(_)), "{e:?}");
    assert_error_is_safe(&e);
    assert!(!e.to_string().contains("with-union"), "{e}");
    let e = client.phone_number("phone-ok").await.unwrap_err();
    assert!(matches!(e, WechatError::Unavailable(_)), "{e:?}");
    assert_error_is_safe(&e);
}

#[tokio::test]
async fn phone_numbers_use_the_cached_access_token() {
    let (fake, client) = start().await;
    for _ in 0..2 {
        let phone = client.phone_number("phone-ok").await.unwrap();
        assert_eq!(phone.phone_number, "13812345678");
        assert_eq!(phone.pure_phone_number, "13812345678");
        assert_eq!(phone.country_code, "86");
        assert_eq!(format!("{phone:?}").matches("138****5678").count(), 2);
    }
    let e = client.phone_number("phone-used").await.unwrap_err();
    assert_eq!(e, WechatError::CodeUsed);
    let fake = fake.lock().unwrap();
    assert_eq!(fake.token_calls, 1, "one token for every call");
    assert_eq!(fake.phone_calls.len(), 3);
    for (token, body) in &fake.phone_calls {
        assert_eq!(token, "token-1");
        assert!(body["code"].is_string(), "{body}");
    }
    assert_eq!(fake.phone_calls[0].1, json!({"code": "phone-ok"}));
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once() {
    let (fake, client) = start().await;
    client.phone_number("phone-ok").await.unwrap();
    // WeChat retires token-1 (e.g. another process fetched a new one).
    fake.lock().unwrap().retired.push("token-1".into());

    let phone = client.phone_number("phone-ok").await.unwrap();
    assert_eq!(phone.phone_number, "13812345678");
    {
        let fake = fake.lock().unwrap();
        assert_eq!(fake.token_calls, 2, "refreshed once");
        let used: Vec<&str> = fake.phone_calls.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(used, ["token-1", "token-1", "token-2"]);
    }

    // The new token is cached; and when WeChat refuses even a fresh one, no loop: one
    // refresh, then Unavailable.
    client.phone_number("phone-ok").await.unwrap();
    fake.lock()
        .unwrap()
        .retired
        .extend(["token-2".into(), "token-3".into()]);
    let e = client.phone_number("phone-ok").await.unwrap_err();
    assert!(matches!(e, WechatError::Unavailable(_)), "{e:?}");
    assert_error_is_safe(&e);
    let fake = fake.lock().unwrap();
    assert_eq!(fake.token_calls, 3);
    assert_eq!(fake.phone_calls.len(), 6);
}

#[tokio::test]
async fn the_client_and_the_notifier_can_share_one_token_cache() {
    use diandan_runtime::notify::wechat::{WechatConfig, WechatNotifier};

    let (fake, client) = start().await;
    let config = WechatConfig {
        base_url: client.app().base_url.clone(),
        app_id: "wx-test".into(),
        app_secret: SECRET.into(),
        template_id: "tmpl".into(),
        miniprogram_state: "developer".into(),
    };
    assert_no_secrets(&format!("{config:?}"));
    let notifier = WechatNotifier::with_tokens(config, client.tokens().clone());
    client.phone_number("phone-ok").await.unwrap();
    assert_eq!(notifier.tokens().get().await.unwrap(), "token-1");
    assert_eq!(fake.lock().unwrap().token_calls, 1);
}

#[test]
fn every_error_has_a_chinese_message() {
    let errors = [
        WechatError::MalformedCode("empty"),
        WechatError::InvalidCode,
        WechatError::CodeUsed,
        WechatError::RateLimited,
        WechatError::Unavailable("timed out".into()),
        WechatError::Rejected {
            errcode: 40013,
            errmsg: "invalid appid".into(),
        },
    ];
    for e in errors {
        let message = e.message_zh();
        assert!(
            message
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "{e:?}: {message}"
        );
    }
}
