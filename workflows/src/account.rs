//! Accounts (账号) and sign-in sessions, as pure domain code.
//!
//! An account is its own stream (`account-<id>`): staff sign in with a username and password
//! (the account id is derived from the username, so a username is taken exactly once), residents
//! and volunteers with WeChat (the id is derived from their openid). A session is a stream too
//! (`session-<id>`): each refresh rotates the refresh token, and presenting a token that was
//! already rotated away revokes the whole session (a stolen token is worth one use at most).
//!
//! Secrets never appear here: passwords arrive already hashed (argon2id, by the caller) and
//! refresh tokens as digests. This module decides; it does not hash, sign or store.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::validate;
use crate::{DomainError, Role};

/// Shortest and longest password, in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

/// How a person signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    /// Staff: a username and an argon2id password hash (PHC string).
    Password {
        username: String,
        password_hash: String,
    },
    /// A mini-program user: their WeChat openid (and unionid when the app has one).
    Wechat {
        openid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unionid: Option<String>,
    },
}

/// An account fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AccountEvent {
    /// 开通账号: who it is, how they sign in, their role and (for staff) their org node.
    AccountCreated {
        account_id: String,
        display_name: String,
        role: Role,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_id: Option<String>,
        credential: Credential,
        /// Who created it (`self` for a first WeChat sign-in).
        created_by: String,
    },
    /// A new password hash: changed by the owner or reset by an administrator.
    PasswordChanged {
        password_hash: String,
        by: String,
        /// True when an administrator reset it (the owner should change it).
        reset: bool,
    },
    /// A mobile number bound through WeChat (masked; the full number is kept off the log).
    PhoneBound { phone_masked: String },
    /// The account is a registered volunteer's: the number it bound is the one their station
    /// registered them with. From now on it signs in as that volunteer (or team leader).
    VolunteerLinked { volunteer_id: String },
    /// 停用: the account can no longer sign in; its sessions are refused.
    AccountDeactivated { by: String, reason: String },
}

impl AccountEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::AccountCreated { .. } => "AccountCreated",
            AccountEvent::PasswordChanged { .. } => "PasswordChanged",
            AccountEvent::PhoneBound { .. } => "PhoneBound",
            AccountEvent::VolunteerLinked { .. } => "VolunteerLinked",
            AccountEvent::AccountDeactivated { .. } => "AccountDeactivated",
        }
    }
}

/// The stream of an account.
pub fn account_stream(account_id: &str) -> String {
    format!("account-{account_id}")
}

/// The account id of a staff username: `staff-<username>` with `.` written `_` (ids are also
/// stream and NATS subject names, where `.` separates tokens; usernames have no `_`, so the
/// mapping is one to one).
pub fn staff_account_id(username: &str) -> String {
    format!("staff-{}", username.replace('.', "_"))
}

/// An account as its events leave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    pub display_name: String,
    pub role: Option<Role>,
    pub node_id: Option<String>,
    pub credential: Option<Credential>,
    pub phone_masked: Option<String>,
    /// The registered volunteer this account signs in as (linked by phone number).
    pub volunteer_id: Option<String>,
    pub active: bool,
    /// The password was reset by an administrator and not changed since.
    pub must_change_password: bool,
}

impl Account {
    pub fn exists(&self) -> bool {
        self.role.is_some()
    }

    pub fn password_hash(&self) -> Option<&str> {
        match &self.credential {
            Some(Credential::Password { password_hash, .. }) => Some(password_hash),
            _ => None,
        }
    }
}

/// Folds one event into the account.
pub fn evolve_account(mut account: Account, event: &AccountEvent) -> Account {
    match event {
        AccountEvent::AccountCreated {
            account_id,
            display_name,
            role,
            node_id,
            credential,
            ..
        } => {
            account.account_id = account_id.clone();
            account.display_name = display_name.clone();
            account.role = Some(*role);
            account.node_id = node_id.clone();
            account.credential = Some(credential.clone());
            account.active = true;
        }
        AccountEvent::PasswordChanged {
            password_hash,
            reset,
            ..
        } => {
            if let Some(Credential::Password {
                password_hash: hash,
                ..
            }) = &mut account.credential
            {
                *hash = password_hash.clone();
            }
            account.must_change_password = *reset;
        }
        AccountEvent::PhoneBound { phone_masked } => {
            account.phone_masked = Some(phone_masked.clone());
        }
        AccountEvent::VolunteerLinked { volunteer_id } => {
            account.volunteer_id = Some(volunteer_id.clone());
        }
        AccountEvent::AccountDeactivated { .. } => account.active = false,
    }
    account
}

/// Checks a username: 3–32 of lowercase ASCII letters, digits, `.` and `-`.
pub fn username(value: &str) -> Result<(), DomainError> {
    let ok = (3..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "username",
            "用户名须为 3 到 32 个小写字母、数字、. 或 -",
        ))
    }
}

/// Checks a new password's length (the strength rules a district wants go here).
pub fn new_password(field: &'static str, value: &str) -> Result<(), DomainError> {
    let chars = value.chars().count();
    if !PASSWORD_CHARS.contains(&chars) {
        return Err(DomainError::invalid(
            field,
            format!(
                "密码须为 {} 到 {} 个字符",
                PASSWORD_CHARS.start(),
                PASSWORD_CHARS.end()
            ),
        ));
    }
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "密码不能全为空白"));
    }
    Ok(())
}

/// Validates an account to be created (fields only).
pub fn validate_new_account(
    account_id: &str,
    display_name: &str,
    role: Role,
    node_id: Option<&str>,
) -> Result<(), DomainError> {
    validate::id("account_id", account_id)?;
    validate::text(
        "display_name",
        display_name,
        1,
        validate::MAX_SHORT_TEXT_CHARS,
    )?;
    let staff = !crate::permissions::binds_to(role).is_empty();
    match (staff, node_id) {
        (true, None) => Err(DomainError::invalid(
            "node_id",
            "工作人员账号须指定负责的组织节点",
        )),
        (true, Some(node)) => validate::id("node_id", node),
        (false, _) if role == Role::System => Err(DomainError::invalid("role", "不能开通系统账号")),
        (false, _) => Ok(()),
    }
}

/// A sign-in session fact. Refresh tokens appear only as digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionEvent {
    /// 登录: a session began with its first refresh token.
    SessionStarted {
        session_id: String,
        account_id: String,
        refresh_digest: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        /// How: `password`, `wechat`.
        method: String,
    },
    /// The refresh token was used and replaced by a new one.
    SessionRefreshed {
        refresh_digest: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// 退出 or revoked: no token of this session is accepted any more.
    SessionRevoked { reason: String },
}

impl SessionEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            SessionEvent::SessionStarted { .. } => "SessionStarted",
            SessionEvent::SessionRefreshed { .. } => "SessionRefreshed",
            SessionEvent::SessionRevoked { .. } => "SessionRevoked",
        }
    }
}

/// The stream of a session.
pub fn session_stream(session_id: &str) -> String {
    format!("session-{session_id}")
}

/// A session as its events leave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub session_id: String,
    pub account_id: String,
    /// The refresh token that may be used now.
    pub current: Option<String>,
    /// Refresh tokens already rotated away: presenting one is a reuse.
    pub previous: Vec<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked: bool,
}

/// Folds one event into the session.
pub fn evolve_session(mut session: Session, event: &SessionEvent) -> Session {
    match event {
        SessionEvent::SessionStarted {
            session_id,
            account_id,
            refresh_digest,
            expires_at,
            ..
        } => {
            session.session_id = session_id.clone();
            session.account_id = account_id.clone();
            session.current = Some(refresh_digest.clone());
            session.expires_at = Some(*expires_at);
        }
        SessionEvent::SessionRefreshed {
            refresh_digest,
            expires_at,
        } => {
            if let Some(old) = session.current.replace(refresh_digest.clone()) {
                session.previous.push(old);
            }
            session.expires_at = Some(*expires_at);
        }
        SessionEvent::SessionRevoked { .. } => session.revoked = true,
    }
    session
}

/// What presenting a refresh token to a session means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// The current token: rotate it.
    Rotate,
    /// A token already rotated away: somebody kept a copy. Revoke the session.
    Reuse,
    /// Expired, revoked, or not a token of this session: refuse, change nothing.
    Refuse(&'static str),
}

/// Decides a refresh (or a logout, which needs the same proof of possession).
pub fn decide_refresh(session: &Session, digest: &str, now: OffsetDateTime) -> RefreshDecision {
    if session.session_id.is_empty() {
        return RefreshDecision::Refuse("登录会话不存在，请重新登录");
    }
    if session.revoked {
        return RefreshDecision::Refuse("登录会话已失效，请重新登录");
    }
    if session.current.as_deref() == Some(digest) {
        if session.expires_at.is_some_and(|e| e <= now) {
            return RefreshDecision::Refuse("登录已过期，请重新登录");
        }
        return RefreshDecision::Rotate;
    }
    if session.previous.iter().any(|d| d == digest) {
        return RefreshDecision::Reuse;
    }
    RefreshDecision::Refuse("刷新令牌无效，请重新登录")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(digest: &str, expires_at: OffsetDateTime) -> SessionEvent {
        SessionEvent::SessionStarted {
            session_id: "s1".into(),
            account_id: "staff-deng".into(),
            refresh_digest: digest.into(),
            expires_at,
            method: "password".into(),
        }
    }

    #[test]
    fn a_refresh_token_is_good_once_and_its_reuse_revokes_the_session() {
        let now = OffsetDateTime::now_utc();
        let later = now + time::Duration::days(30);
        let session = evolve_session(Session::default(), &started("a", later));
        assert_eq!(decide_refresh(&session, "a", now), RefreshDecision::Rotate);
        let session = evolve_session(
            session,
            &SessionEvent::SessionRefreshed {
                refresh_digest: "b".into(),
                expires_at: later,
            },
        );
        assert_eq!(decide_refresh(&session, "b", now), RefreshDecision::Rotate);
        assert_eq!(decide_refresh(&session, "a", now), RefreshDecision::Reuse);
        assert!(matches!(
            decide_refresh(&session, "zzz", now),
            RefreshDecision::Refuse(_)
        ));
        let revoked = evolve_session(
            session,
            &SessionEvent::SessionRevoked {
                reason: "reuse".into(),
            },
        );
        assert!(matches!(
            decide_refresh(&revoked, "b", now),
            RefreshDecision::Refuse(_)
        ));
    }

    #[test]
    fn an_expired_session_refuses_its_token() {
        let now = OffsetDateTime::now_utc();
        let session = evolve_session(Session::default(), &started("a", now));
        assert!(matches!(
            decide_refresh(&session, "a", now),
            RefreshDecision::Refuse(_)
        ));
    }

    #[test]
    fn usernames_and_passwords() {
        assert!(username("deng.xiaohu").is_ok());
        assert_eq!(staff_account_id("deng.xiaohu"), "staff-deng_xiaohu");
        assert!(crate::validate::id("id", &staff_account_id("deng.xiaohu")).is_ok());
        for bad in ["", "ab", "Deng", "邓小虎", &"x".repeat(33), "a b", "li_si"] {
            assert!(username(bad).is_err(), "{bad}");
        }
        assert!(new_password("password", "correct horse").is_ok());
        for bad in ["short", &"x".repeat(129), "        "] {
            assert!(new_password("password", bad).is_err());
        }
    }
}
