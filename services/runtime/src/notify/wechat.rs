//! WeChat subscription messages (订阅消息) for the mini-program.
//!
//! `POST {base}/cgi-bin/message/subscribe/send?access_token=…` with the recipient's openid, a
//! template id and its fields. The access token comes from
//! `GET {base}/cgi-bin/token?grant_type=client_credential&appid=…&secret=…`, is cached until a
//! minute before it expires, and is refreshed at once when WeChat answers 40001/42001 (invalid
//! or expired token).

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use super::{Notification, Notifier, NotifyError};

/// Where and as whom to call WeChat.
#[derive(Debug, Clone)]
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

/// Sends through WeChat's API.
pub struct WechatNotifier {
    config: WechatConfig,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

const INVALID_TOKEN: [i64; 3] = [40001, 40014, 42001];

impl WechatNotifier {
    pub fn new(config: WechatConfig) -> WechatNotifier {
        WechatNotifier {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            token: Mutex::new(None),
        }
    }

    async fn access_token(&self, refresh: bool) -> Result<String, NotifyError> {
        let mut cached = self.token.lock().await;
        if let (false, Some((token, expires))) = (refresh, cached.as_ref()) {
            if Instant::now() < *expires {
                return Ok(token.clone());
            }
        }
        let url = format!("{}/cgi-bin/token", self.config.base_url);
        let response = self
            .http
            .get(url)
            .query(&[
                ("grant_type", "client_credential"),
                ("appid", &self.config.app_id),
                ("secret", &self.config.app_secret),
            ])
            .send()
            .await
            .map_err(|e| NotifyError::Temporary(format!("token: {e}")))?;
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| NotifyError::Temporary(format!("token: {e}")))?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| NotifyError::Temporary(format!("token refused: {body}")))?
            .to_owned();
        let lifetime = body["expires_in"].as_u64().unwrap_or(7200);
        let expires = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60));
        *cached = Some((token.clone(), expires));
        Ok(token)
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
            .map_err(|e| NotifyError::Temporary(e.to_string()))?;
        if !response.status().is_success() {
            return Err(NotifyError::Temporary(format!(
                "HTTP {}",
                response.status()
            )));
        }
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|e| NotifyError::Temporary(e.to_string()))?;
        Ok(answer["errcode"].as_i64().unwrap_or(0))
    }
}

#[async_trait::async_trait]
impl Notifier for WechatNotifier {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let token = self.access_token(false).await?;
        let mut code = self.send_once(n, &token).await?;
        if INVALID_TOKEN.contains(&code) {
            let token = self.access_token(true).await?;
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
