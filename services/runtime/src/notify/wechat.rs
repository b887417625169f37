//! WeChat subscription messages (订阅消息) for the mini-program.
//!
//! `POST {base}/cgi-bin/message/subscribe/send?access_token=…` with the recipient's openid, a
//! template id and its fields. The access token comes from the shared
//! [`crate::wechat::AccessTokens`] cache: fetched from
//! `GET {base}/cgi-bin/token?grant_type=client_credential&appid=…&secret=…`, cached until a
//! minute before it expires, and refreshed at once when WeChat answers 40001/42001 (invalid
//! or expired token). Give the notifier the same cache as the login client
//! ([`WechatNotifier::with_tokens`]): two caches for one app invalidate each other's tokens.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{Notification, Notifier, NotifyError};
use crate::wechat::{AccessTokens, WechatApp, WechatError};

/// Where and as whom to call WeChat.
#[derive(Clone)]
pub struct WechatConfig {
    /// `https://api.weixin.qq.com` in production.
    pub base_url: String,
    pub app_id: String,
    pub app_secret: String,
    /// The subscription template used for every diandan notice (fields `thing1`, `character_string2`).
    pub template_id: String,
    /// `formal`, `trial` or `developer`.
    pub miniprogram_state: String,
}

/// How long one request of the notifier's may take.
const TIMEOUT: Duration = Duration::from_secs(10);

impl WechatConfig {
    /// The app this configuration sends as, for an [`AccessTokens`] cache.
    pub fn app(&self) -> WechatApp {
        WechatApp {
            base_url: self.base_url.clone(),
            app_id: self.app_id.clone(),
            app_secret: self.app_secret.clone(),
            timeout: TIMEOUT,
        }
    }
}

impl fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatConfig")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("template_id", &self.template_id)
            .field("miniprogram_state", &self.miniprogram_state)
            .finish()
    }
}

/// Sends through WeChat's API.
pub struct WechatNotifier {
    config: WechatConfig,
    http: reqwest::Client,
    tokens: Arc<AccessTokens>,
}

impl WechatNotifier {
    /// A notifier with its own access-token cache.
    pub fn new(config: WechatConfig) -> WechatNotifier {
        let tokens = Arc::new(AccessTokens::new(config.app()));
        WechatNotifier::with_tokens(config, tokens)
    }

    /// A notifier sharing `tokens` with, e.g., the login client
    /// ([`WechatClient::tokens`](crate::wechat::WechatClient::tokens)).
    ///
    /// # Panics
    ///
    /// If `tokens` are for another app or base URL than `config`.
    pub fn with_tokens(config: WechatConfig, tokens: Arc<AccessTokens>) -> WechatNotifier {
        assert!(
            tokens.app().app_id == config.app_id && tokens.app().base_url == config.base_url,
            "the access tokens are for another WeChat app ({} at {}) than the notifier ({} at {})",
            tokens.app().app_id,
            tokens.app().base_url,
            config.app_id,
            config.base_url,
        );
        WechatNotifier {
            config,
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("HTTP client"),
            tokens,
        }
    }

    /// The access-token cache, to share.
    pub fn tokens(&self) -> &Arc<AccessTokens> {
        &self.tokens
    }

    async fn send_once(&self, n: &Notification, token: &str) -> Result<i64, NotifyError> {
        let url = format!("{}/cgi-bin/message/subscribe/send", self.config.base_url);
        let text: String = n.text.chars().take(20).collect();
        let body = json!({
            "touser": n.recipient,
            "template_id": self.config.template_id,
            "page": format!("pages/order/detail?id={}", n.order_id),
            "miniprogram_state": self.config.miniprogram_state,
            "lang": "zh_CN",
            "data": {
                "thing1": {"value": text},
                "character_string2": {"value": n.order_id.chars().take(32).collect::<String>()},
            },
        });
        let response = self
            .http
            .post(url)
            .query(&[("access_token", token)])
            .json(&body)
            .send()
            .await
            // Without the URL: it carries the access token.
            .map_err(|e| NotifyError::Temporary(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(NotifyError::Temporary(format!(
                "HTTP {}",
                response.status()
            )));
        }
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|e| NotifyError::Temporary(e.without_url().to_string()))?;
        Ok(answer["errcode"].as_i64().unwrap_or(0))
    }
}

#[async_trait::async_trait]
impl Notifier for WechatNotifier {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let token = self.tokens.get().await.map_err(token_error)?;
        let mut code = self.send_once(n, &token).await?;
        if AccessTokens::is_invalid_token(code) {
            let token = self.tokens.refresh(&token).await.map_err(token_error)?;
            code = self.send_once(n, &token).await?;
        }
        match code {
            0 => Ok(()),
            // The user has not subscribed (or refused): nothing to retry.
            43101 | 40003 => Err(NotifyError::Permanent(format!("errcode {code}"))),
            // Rate limited or a system error: later.
            _ => Err(NotifyError::Temporary(format!("errcode {code}"))),
        }
    }
}

/// Any trouble getting a token is worth retrying later (as before the cache was shared).
fn token_error(e: WechatError) -> NotifyError {
    NotifyError::Temporary(format!("token: {e}"))
}
