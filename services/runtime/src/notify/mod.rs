//! Notifications as effects: deciding never sends anything. An event that someone should hear
//! about becomes a row in the outbox ([`outbox`]), once per (event, recipient); a dispatcher
//! sends pending rows through a [`Notifier`] and marks them sent. Replaying events adds no rows
//! (they exist already), so replay sends nothing.
//!
//! - [`wechat::WechatNotifier`]: WeChat subscription messages (订阅消息), with access-token
//!   caching and refresh;
//! - [`LogNotifier`]: writes them to the log, for development.

pub mod outbox;
pub mod wechat;

use serde::{Deserialize, Serialize};

/// One message to one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable id: the event id and the recipient.
    pub id: String,
    /// The recipient's user id (their openid once WeChat login lands).
    pub recipient: String,
    /// What happened, e.g. `order_accepted`, `deadline_overdue`.
    pub kind: String,
    pub order_id: String,
    /// The message shown, in Simplified Chinese.
    pub text: String,
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Worth retrying later (network, 5xx, rate limit, token trouble).
    #[error("temporary: {0}")]
    Temporary(String),
    /// Will never succeed (e.g. the user refused subscriptions); dropped and recorded.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Sends notifications.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + 'static {
    async fn send(&self, notification: &Notification) -> Result<(), NotifyError>;
}

/// Logs notifications instead of sending them (development).
#[derive(Debug, Default)]
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        tracing::info!(recipient = %n.recipient, kind = %n.kind, order = %n.order_id, "通知：{}", n.text);
        Ok(())
    }
}

/// The notifier the environment asks for: WeChat when `DIANDAN_WECHAT_APPID` is set
/// (with `DIANDAN_WECHAT_SECRET`, `DIANDAN_WECHAT_TEMPLATE_ID`, and optionally
/// `DIANDAN_WECHAT_BASE_URL`, `DIANDAN_WECHAT_STATE`), else the log.
pub fn notifier_from_env() -> std::sync::Arc<dyn Notifier> {
    notifier_from_env_sharing(None)
}

/// [`notifier_from_env`], the WeChat notifier sharing `tokens` (e.g. the login client's, built
/// from [`WechatApp::from_env`](crate::wechat::WechatApp::from_env)) so that the process keeps
/// one access token.
///
/// # Panics
///
/// If `tokens` are for another app than the environment names.
pub fn notifier_from_env_sharing(
    tokens: Option<std::sync::Arc<crate::wechat::AccessTokens>>,
) -> std::sync::Arc<dyn Notifier> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("DIANDAN_WECHAT_APPID") {
        Some(app_id) => {
            let config = wechat::WechatConfig {
                base_url: var("DIANDAN_WECHAT_BASE_URL")
                    .unwrap_or_else(|| crate::wechat::DEFAULT_BASE_URL.into()),
                app_id,
                app_secret: var("DIANDAN_WECHAT_SECRET").unwrap_or_default(),
                template_id: var("DIANDAN_WECHAT_TEMPLATE_ID").unwrap_or_default(),
                miniprogram_state: var("DIANDAN_WECHAT_STATE").unwrap_or_else(|| "formal".into()),
            };
            std::sync::Arc::new(match tokens {
                Some(tokens) => wechat::WechatNotifier::with_tokens(config, tokens),
                None => wechat::WechatNotifier::new(config),
            })
        }
        None => std::sync::Arc::new(LogNotifier),
    }
}
