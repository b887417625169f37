//! WeChat's server-side API for the mini-program: who logged in ([`WechatClient::code_to_session`]),
//! their phone number ([`WechatClient::phone_number`]), and the access token that the phone-number
//! call and the subscription-message notifier both need ([`AccessTokens`]).
//!
//! - Login: the mini-program calls `wx.login()` and sends the one-time `code` to us; we trade it
//!   at `GET {base}/sns/jscode2session` for the user's `openid` (and `unionid` when the app is
//!   bound to an open-platform account) and a `session_key`.
//! - Phone number: the `getPhoneNumber` button yields another one-time code, traded at
//!   `POST {base}/wxa/business/getuserphonenumber?access_token=…`.
//! - Access token: `GET {base}/cgi-bin/token?grant_type=client_credential&appid=…&secret=…`,
//!   cached until a minute before it expires, fetched again at once when WeChat answers
//!   40001/40014/42001 (invalid or expired token). One [`AccessTokens`] per process and app:
//!   every fetch makes WeChat retire the previous token a few minutes later, so two caches for
//!   the same app keep invalidating each other — share it (`Arc`) between the client and the
//!   notifier.
//!
//! **Secrets stay on the server.** The app secret, access tokens and `session_key` never appear in
//! an error, a log line or a `Debug` output: request URLs (which carry the secret or the token) are
//! stripped from HTTP errors, [`WechatApp`]'s `Debug` hides the secret, and [`SessionKey`] prints as
//! `<redacted>`, has no `Display` and no `Serialize`. The `session_key` must never be sent to the
//! client, logged or written to the event log; it exists only to decrypt or verify data the
//! mini-program signed with it, on the server.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

/// Where WeChat's API lives in production.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";
/// How long one request to WeChat may take, unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest code accepted from the mini-program; longer ones are refused without calling
/// WeChat (real codes are 32 characters).
pub const MAX_CODE_CHARS: usize = 128;
/// How many times a call is made when WeChat answers -1 (system busy) before giving up.
pub const BUSY_ATTEMPTS: u32 = 3;
/// The wait after the first -1; doubled after each further one.
const BUSY_BACKOFF: Duration = Duration::from_millis(200);
/// A cached access token is used until this long before WeChat says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Errcodes meaning the access token is invalid (40001, 40014) or expired (42001).
pub const INVALID_TOKEN_ERRCODES: [i64; 3] = [40001, 40014, 42001];
const BUSY: i64 = -1;

/// One mini-program as WeChat knows it, and how to reach WeChat.
#[derive(Clone)]
pub struct WechatApp {
    /// [`DEFAULT_BASE_URL`] in production; a local server in tests.
    pub base_url: String,
    pub app_id: String,
    pub app_secret: String,
    /// How long one request may take (connecting, sending, reading the answer).
    pub timeout: Duration,
}

impl WechatApp {
    /// The production API with the default timeout.
    pub fn new(app_id: impl Into<String>, app_secret: impl Into<String>) -> WechatApp {
        WechatApp {
            base_url: DEFAULT_BASE_URL.to_owned(),
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The app the environment names, as the notifier reads it: `DIANDAN_WECHAT_APPID` (none
    /// when unset or empty), `DIANDAN_WECHAT_SECRET`, optionally `DIANDAN_WECHAT_BASE_URL`.
    pub fn from_env() -> Option<WechatApp> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut app = WechatApp::new(
            var("DIANDAN_WECHAT_APPID")?,
            var("DIANDAN_WECHAT_SECRET").unwrap_or_default(),
        );
        if let Some(base_url) = var("DIANDAN_WECHAT_BASE_URL") {
            app.base_url = base_url;
        }
        Some(app)
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .expect("HTTP client")
    }
}

impl fmt::Debug for WechatApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatApp")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a call to WeChat failed, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WechatError {
    /// The code is empty or longer than [`MAX_CODE_CHARS`]; WeChat was not called. The client
    /// sent a bad request (400).
    #[error("malformed code: {0}")]
    MalformedCode(&'static str),
    /// 40029: WeChat does not know this code (wrong app, expired, made up). The mini-program
    /// should get a fresh one (`wx.login()` / the phone-number button) and try again.
    #[error("WeChat refused the code as invalid (errcode 40029)")]
    InvalidCode,
    /// 40163: the code was already traded (a code is good for one call). Get a fresh one.
    #[error("the code was already used (errcode 40163)")]
    CodeUsed,
    /// 45011: WeChat's rate limit for this app. Retry later (a minute or so).
    #[error("WeChat rate limit reached (errcode 45011)")]
    RateLimited,
    /// WeChat could not be reached in time, answered with an HTTP error or garbage, stayed busy
    /// (-1) through [`BUSY_ATTEMPTS`] attempts, or refused a freshly fetched access token. Nothing
    /// is wrong with the request: retry later (503).
    #[error("WeChat unavailable: {0}")]
    Unavailable(String),
    /// Any other errcode — usually the server's configuration (40013 invalid appid, 40125 invalid
    /// secret, 40164 IP not whitelisted). For operators; the user can only retry later.
    #[error("WeChat refused the request: errcode {errcode}: {errmsg}")]
    Rejected { errcode: i64, errmsg: String },
}

impl WechatError {
    /// What to tell the user, in Simplified Chinese.
    pub fn message_zh(&self) -> &'static str {
        match self {
            WechatError::MalformedCode(_) | WechatError::InvalidCode => "微信授权已失效，请重试",
            WechatError::CodeUsed => "微信授权已使用过，请重试",
            WechatError::RateLimited => "操作太频繁，请稍后再试",
            WechatError::Unavailable(_) => "微信服务暂时不可用，请稍后再试",
            WechatError::Rejected { .. } => "微信服务出错，请稍后再试或联系工作人员",
        }
    }

    fn from_errcode(errcode: i64, errmsg: String) -> WechatError {
        match errcode {
            40029 => WechatError::InvalidCode,
            40163 => WechatError::CodeUsed,
            45011 => WechatError::RateLimited,
            BUSY => WechatError::Unavailable("system busy (errcode -1)".into()),
            _ => WechatError::Rejected { errcode, errmsg },
        }
    }
}

/// The access tokens of one app: fetched when first needed, cached until shortly before they
/// expire, fetched again when WeChat refuses one. Share one per process (see the module doc).
pub struct AccessTokens {
    app: WechatApp,
    http: reqwest::Client,
    cached: Mutex<Option<(String, Instant)>>,
}

impl AccessTokens {
    pub fn new(app: WechatApp) -> AccessTokens {
        AccessTokens {
            http: app.http(),
            app,
            cached: Mutex::new(None),
        }
    }

    /// The app these tokens are for.
    pub fn app(&self) -> &WechatApp {
        &self.app
    }

    /// A valid token: the cached one, or a new one. A busy token endpoint (-1) is not retried
    /// here: it is [`WechatError::Unavailable`].
    pub async fn get(&self) -> Result<String, WechatError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if Instant::now() < *expires {
                return Ok(token.clone());
            }
        }
        self.fetch(&mut cached).await
    }

    /// WeChat refused `stale` (one of [`INVALID_TOKEN_ERRCODES`]): a new token. Fetched unless
    /// another caller has already replaced `stale` in the cache, so a burst of refusals costs
    /// one fetch.
    pub async fn refresh(&self, stale: &str) -> Result<String, WechatError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if token != stale && Instant::now() < *expires {
                return Ok(token.clone());
            }
        }
        self.fetch(&mut cached).await
    }

    /// Whether WeChat's errcode says the access token was invalid or expired.
    pub fn is_invalid_token(errcode: i64) -> bool {
        INVALID_TOKEN_ERRCODES.contains(&errcode)
    }

    async fn fetch(&self, cached: &mut Option<(String, Instant)>) -> Result<String, WechatError> {
        let url = format!("{}/cgi-bin/token", self.app.base_url);
        let request = self.http.get(url).query(&[
            ("grant_type", "client_credential"),
            ("appid", &self.app.app_id),
            ("secret", &self.app.app_secret),
        ]);
        let answer = call(request, "token").await?;
        if answer.errcode != 0 {
            return Err(WechatError::from_errcode(answer.errcode, answer.errmsg));
        }
        let token = answer.body["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| WechatError::Unavailable("token: answer without access_token".into()))?
            .to_owned();
        let lifetime = Duration::from_secs(answer.body["expires_in"].as_u64().unwrap_or(7200));
        *cached = Some((
            token.clone(),
            Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        ));
        Ok(token)
    }
}

impl fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokens")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// Who logged in, from a `wx.login()` code.
#[derive(Debug, Clone)]
pub struct WechatSession {
    /// The user's id within this mini-program.
    pub openid: String,
    /// The user's id across the apps bound to the same open-platform account, when there is one.
    pub unionid: Option<String>,
    /// The key shared by WeChat and this user's mini-program session. Server-only: see
    /// [`SessionKey`].
    pub session_key: SessionKey,
}

/// A `session_key`. It never leaves the server: not in an API response, a log line, an error or
/// the event log. Its `Debug` prints `<redacted>`; it has no `Display` and is not `Serialize`.
/// Read it with [`SessionKey::expose_secret`] only to decrypt or verify data the mini-program
/// signed with it.
#[derive(Clone)]
pub struct SessionKey(String);

impl SessionKey {
    /// The key itself. Do not log, return or store it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// The phone number bound to the user's WeChat account. Personal information: keep it in the
/// contact vault, not the event log. Its `Debug` masks the middle digits.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    /// With the country code when it is not China's, e.g. `13812345678` or `+85291234567`.
    pub phone_number: String,
    /// Without the country code.
    pub pure_phone_number: String,
    /// E.g. `86`.
    pub country_code: String,
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneNumber")
            .field("phone_number", &mask(&self.phone_number))
            .field("pure_phone_number", &mask(&self.pure_phone_number))
            .field("country_code", &self.country_code)
            .finish()
    }
}

/// `13812345678` → `138****5678`; short numbers are hidden entirely.
fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let (head, rest) = chars.split_at(3);
    let (middle, tail) = rest.split_at(rest.len() - 4);
    format!(
        "{}{}{}",
        head.iter().collect::<String>(),
        "*".repeat(middle.len()),
        tail.iter().collect::<String>()
    )
}

/// Calls WeChat for the mini-program: login and phone numbers. Cheap to clone.
#[derive(Clone)]
pub struct WechatClient {
    tokens: Arc<AccessTokens>,
    http: reqwest::Client,
}

impl WechatClient {
    /// A client with its own access-token cache.
    pub fn new(app: WechatApp) -> WechatClient {
        WechatClient::with_tokens(Arc::new(AccessTokens::new(app)))
    }

    /// A client sharing `tokens` (and their app) with, e.g., the notifier.
    pub fn with_tokens(tokens: Arc<AccessTokens>) -> WechatClient {
        WechatClient {
            http: tokens.http.clone(),
            tokens,
        }
    }

    /// The access-token cache, to share with
    /// [`WechatNotifier::with_tokens`](crate::notify::wechat::WechatNotifier::with_tokens).
    pub fn tokens(&self) -> &Arc<AccessTokens> {
        &self.tokens
    }

    pub fn app(&self) -> &WechatApp {
        self.tokens.app()
    }

    /// Who logged in: trades a `wx.login()` code at `GET {base}/sns/jscode2session`. A code
    /// is good for one trade. -1 (busy) is retried up to [`BUSY_ATTEMPTS`] times in all; a
    /// timeout is not (WeChat may have used the code up).
    pub async fn code_to_session(&self, code: &str) -> Result<WechatSession, WechatError> {
        check_code(code)?;
        let app = self.app();
        let url = format!("{}/sns/jscode2session", app.base_url);
        let mut busy = Backoff::default();
        let answer = loop {
            let request = self.http.get(&url).query(&[
                ("appid", app.app_id.as_str()),
                ("secret", &app.app_secret),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ]);
            let answer = call(request, "jscode2session").await?;
            if answer.errcode == BUSY && busy.wait("jscode2session").await {
                continue;
            }
            break answer;
        };
        if answer.errcode != 0 {
            return Err(WechatError::from_errcode(answer.errcode, answer.errmsg));
        }
        let text = |field: &str| {
            answer.body[field]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let missing = |field: &str| {
            WechatError::Unavailable(format!("jscode2session: answer without {field}"))
        };
        Ok(WechatSession {
            openid: text("openid").ok_or_else(|| missing("openid"))?,
            unionid: text("unionid"),
            session_key: SessionKey(text("session_key").ok_or_else(|| missing("session_key"))?),
        })
    }

    /// The user's phone number: trades a `getPhoneNumber` code at
    /// `POST {base}/wxa/business/getuserphonenumber` with the cached access token. A refused
    /// token (40001/40014/42001) is replaced and the call made once more; -1 (busy) is retried up
    /// to [`BUSY_ATTEMPTS`] times in all.
    pub async fn phone_number(&self, code: &str) -> Result<PhoneNumber, WechatError> {
        check_code(code)?;
        let url = format!("{}/wxa/business/getuserphonenumber", self.app().base_url);
        let mut token = self.tokens.get().await?;
        let mut refreshed = false;
        let mut busy = Backoff::default();
        let answer = loop {
            let request = self
                .http
                .post(&url)
                .query(&[("access_token", &token)])
                .json(&json!({ "code": code }));
            let answer = call(request, "getuserphonenumber").await?;
            if AccessTokens::is_invalid_token(answer.errcode) {
                if refreshed {
                    return Err(WechatError::Unavailable(format!(
                        "getuserphonenumber: a fresh access token was refused too (errcode {})",
                        answer.errcode
                    )));
                }
                tracing::info!(
                    errcode = answer.errcode,
                    "WeChat refused the access token; fetching a new one"
                );
                token = self.tokens.refresh(&token).await?;
                refreshed = true;
                continue;
            }
            if answer.errcode == BUSY && busy.wait("getuserphonenumber").await {
                continue;
            }
            break answer;
        };
        if answer.errcode != 0 {
            return Err(WechatError::from_errcode(answer.errcode, answer.errmsg));
        }
        let info = &answer.body["phone_info"];
        let text = |field: &str| match &info[field] {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let missing = |field: &str| {
            WechatError::Unavailable(format!("getuserphonenumber: answer without {field}"))
        };
        Ok(PhoneNumber {
            phone_number: text("phoneNumber").ok_or_else(|| missing("phoneNumber"))?,
            pure_phone_number: text("purePhoneNumber").ok_or_else(|| missing("purePhoneNumber"))?,
            country_code: text("countryCode").unwrap_or_else(|| "86".to_owned()),
        })
    }
}

impl fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatClient")
            .field("app", self.app())
            .finish_non_exhaustive()
    }
}

fn check_code(code: &str) -> Result<(), WechatError> {
    if code.trim().is_empty() {
        return Err(WechatError::MalformedCode("empty"));
    }
    if code.chars().count() > MAX_CODE_CHARS {
        return Err(WechatError::MalformedCode("longer than 128 characters"));
    }
    Ok(())
}

/// Waits between attempts while WeChat says it is busy.
#[derive(Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    /// After a busy answer: waits and returns true if another attempt is allowed.
    async fn wait(&mut self, api: &'static str) -> bool {
        self.attempts += 1;
        if self.attempts >= BUSY_ATTEMPTS {
            tracing::warn!(
                api,
                attempts = self.attempts,
                "WeChat stayed busy; giving up"
            );
            return false;
        }
        let delay = BUSY_BACKOFF * 2u32.pow(self.attempts - 1);
        tracing::info!(
            api,
            attempt = self.attempts,
            ?delay,
            "WeChat busy (errcode -1); retrying"
        );
        tokio::time::sleep(delay).await;
        true
    }
}

/// WeChat's answer to one call: its errcode (0 when absent) and message, and the whole body.
struct Answer {
    errcode: i64,
    errmsg: String,
    body: Value,
}

/// Makes one request and reads WeChat's JSON answer. Errors never carry the URL (it holds the
/// secret or the access token) nor the body (it may hold a session key or a phone number).
async fn call(request: reqwest::RequestBuilder, api: &str) -> Result<Answer, WechatError> {
    let response = request.send().await.map_err(|e| http_error(api, e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(WechatError::Unavailable(format!("{api}: HTTP {status}")));
    }
    let body: Value = response.json().await.map_err(|e| http_error(api, e))?;
    if !body.is_object() {
        return Err(WechatError::Unavailable(format!(
            "{api}: the answer is not a JSON object"
        )));
    }
    Ok(Answer {
        errcode: body["errcode"].as_i64().unwrap_or(0),
        errmsg: body["errmsg"].as_str().unwrap_or_default().to_owned(),
        body,
    })
}

fn http_error(api: &str, e: reqwest::Error) -> WechatError {
    if e.is_timeout() {
        return WechatError::Unavailable(format!("{api}: timed out"));
    }
    let e = e.without_url();
    let mut message = format!("{api}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    WechatError::Unavailable(message)
}
