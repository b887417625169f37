//! 账号与登录: staff accounts with argon2id passwords, WeChat accounts, sessions with rotating
//! refresh tokens, and the lockout that slows password guessing down.
//!
//! Accounts and sessions are event streams (`diandan_workflows::account`): an account id is
//! derived from its username or openid, so signing in reads one stream, no read model needed.
//! Refresh tokens are `<session id>.<secret>`; only a SHA-256 digest of the secret is stored.
//! Passwords are hashed with the `argon2` crate (argon2id, its default parameters) on a blocking
//! thread; an unknown username costs the same hash as a known one, and both fail with the same
//! answer, so a caller cannot tell whether a username exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use diandan_store::{AppendRequest, Direction, ExpectedRevision, StoreError};
use diandan_workflows::account::{
    self, Account, AccountEvent, Credential, RefreshDecision, Session, SessionEvent,
};
use diandan_workflows::permissions;
use diandan_workflows::Role;

use crate::auth::{Claims, ACCESS_TOKEN_LIFETIME};
use crate::commands::{new_event, EventMetadata};
use crate::{App, AppError, RequestContext, Result};

/// How long a refresh token (and so a session) lives without being used.
pub const REFRESH_TOKEN_LIFETIME: time::Duration = time::Duration::days(30);

/// Failed sign-ins allowed per account before its lockout starts.
pub const FREE_ATTEMPTS: u32 = 5;
/// Failed sign-ins allowed per client address (many staff may share a station's address).
pub const FREE_ATTEMPTS_PER_ADDRESS: u32 = 20;
/// The first lockout; each further failure doubles it, up to [`MAX_LOCKOUT`].
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
pub const MAX_LOCKOUT: Duration = Duration::from_secs(3600);

/// A signed-in session, as the API answers it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u32,
    pub refresh_token: String,
    pub account: Account,
    /// The role the token carries (a linked volunteer: volunteer or team leader).
    pub role: Role,
}

/// Failed sign-ins by account and by address, with a growing lockout. In memory, per process:
/// it slows guessing down; it is not a record (the events are).
#[derive(Clone, Default)]
pub struct LoginGuard {
    failures: Arc<Mutex<HashMap<String, Failures>>>,
}

/// Failures in a row, and until when the key is locked out.
type Failures = (u32, Option<Instant>);

impl LoginGuard {
    /// Seconds until `key` may try again, when it is locked out.
    fn locked_for(&self, key: &str, now: Instant) -> Option<u64> {
        let failures = self.failures.lock().expect("login guard poisoned");
        let (_, until) = failures.get(key)?;
        let until = (*until)?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    fn failed(&self, key: &str, now: Instant) {
        let free = if key.starts_with("addr:") {
            FREE_ATTEMPTS_PER_ADDRESS
        } else {
            FREE_ATTEMPTS
        };
        let mut failures = self.failures.lock().expect("login guard poisoned");
        if failures.len() > 100_000 {
            // Bounded memory under a spray of usernames: forget those not locked now.
            failures.retain(|_, (_, until)| until.is_some_and(|u| u > now));
        }
        let entry = failures.entry(key.to_owned()).or_insert((0, None));
        entry.0 += 1;
        if entry.0 >= free {
            let doublings = (entry.0 - free).min(16);
            let lockout = (FIRST_LOCKOUT * 2u32.pow(doublings)).min(MAX_LOCKOUT);
            entry.1 = Some(now + lockout);
        }
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .expect("login guard poisoned")
            .remove(key);
    }
}

fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Hashes a password (argon2id) on a blocking thread.
pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
            .map_err(|e| AppError::Storage(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::Storage(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| AppError::Storage(e.to_string()))?
}

/// Checks a password against a stored hash (or against a dummy one, to take the same time).
async fn verify_password(password: String, hash: Option<String>) -> bool {
    // A valid argon2id hash of a random password nobody knows.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZGlhbmRhbmR1bW15c2FsdA$2Jz4c/ixLSXnaRn7dXbHR+ohl3wsXNcfMbjwxf+kKP0";
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY.to_owned());
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

impl App {
    /// Reads a stream and folds its events.
    async fn fold<E: DeserializeOwned, S: Default>(
        &self,
        stream: &str,
        evolve: impl Fn(S, &E) -> S,
    ) -> Result<(S, Option<u64>)> {
        let mut state = S::default();
        let mut revision = None;
        let mut from = 0;
        loop {
            let batch = self
                .store
                .read_stream(stream, from, Direction::Forward, 512)
                .await?;
            for recorded in &batch {
                let event: E = serde_json::from_slice(&recorded.data).map_err(|e| {
                    AppError::Storage(format!("{stream}@{}: {e}", recorded.revision))
                })?;
                state = evolve(state, &event);
                revision = Some(recorded.revision);
                from = recorded.revision + 1;
            }
            if batch.len() < 512 {
                return Ok((state, revision));
            }
        }
    }

    /// Appends events to a stream at an expected revision (None: the stream must be new).
    async fn append_to<E: Serialize>(
        &self,
        ctx: &RequestContext,
        stream: String,
        expected: Option<u64>,
        events: &[(&str, E)],
    ) -> Result<()> {
        let metadata = EventMetadata::new(ctx.command_meta(self.clock.now()));
        let request = AppendRequest {
            stream,
            expected: match expected {
                Some(r) => ExpectedRevision::Exact(r),
                None => ExpectedRevision::NoStream,
            },
            command_id: ctx.command_id.clone(),
            events: events
                .iter()
                .map(|(kind, e)| new_event(kind, e, &metadata))
                .collect(),
        };
        match self.store.append(request).await {
            Ok(_) => Ok(()),
            Err(StoreError::WrongExpectedRevision { .. }) => Err(AppError::Conflict {
                field: None,
                message: "账号或会话刚被修改，请重试".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// An account by id.
    pub async fn account(&self, account_id: &str) -> Result<(Account, Option<u64>)> {
        self.fold(
            &account::account_stream(account_id),
            account::evolve_account,
        )
        .await
    }

    /// 开通账号: a staff account, created by an administrator within their subtree, never with
    /// a role above their own.
    pub async fn create_staff_account(
        &self,
        ctx: &RequestContext,
        username: &str,
        display_name: &str,
        role: Role,
        node_id: &str,
        password: &str,
    ) -> Result<String> {
        account::username(username)?;
        let account_id = account::staff_account_id(username);
        account::validate_new_account(&account_id, display_name, role, Some(node_id))?;
        account::new_password("password", password)?;
        if self.directory.node(node_id).await?.is_none() {
            return Err(AppError::missing(
                "node_id",
                format!("组织节点「{node_id}」不存在"),
            ));
        }
        self.may_manage(ctx, role, node_id).await?;
        let (existing, _) = self.account(&account_id).await?;
        if existing.exists() {
            return Err(AppError::Conflict {
                field: Some("username"),
                message: "该用户名已被使用".into(),
            });
        }
        let password_hash = hash_password(password.to_owned()).await?;
        let event = AccountEvent::AccountCreated {
            account_id: account_id.clone(),
            display_name: display_name.trim().to_owned(),
            role,
            node_id: Some(node_id.to_owned()),
            credential: Credential::Password {
                username: username.to_owned(),
                password_hash,
            },
            created_by: ctx.claims.sub.clone(),
        };
        self.append_to(
            ctx,
            account::account_stream(&account_id),
            None,
            &[(event.event_type(), &event)],
        )
        .await?;
        Ok(account_id)
    }

    /// May `ctx` create or reset an account with `role` at `node_id`? Only a role below their
    /// own ([`permissions::may_grant`]), within their subtree, at a node of the level the role
    /// binds to ([`permissions::binds_to`]).
    async fn may_manage(&self, ctx: &RequestContext, role: Role, node_id: &str) -> Result<()> {
        if !permissions::may_grant(ctx.role(), role) {
            return Err(AppError::Forbidden(format!(
                "{}不能开通或管理「{}」账号",
                ctx.role().name_zh(),
                role.name_zh()
            )));
        }
        self.directory.require_scope(ctx, node_id).await?;
        let node =
            self.directory.node(node_id).await?.ok_or_else(|| {
                AppError::missing("node_id", format!("组织节点「{node_id}」不存在"))
            })?;
        // Well formed, but it does not fit the tree where it would go.
        if !permissions::binds_to(role).contains(&node.level) {
            return Err(AppError::Conflict {
                field: Some("node_id"),
                message: format!(
                    "{}账号不能绑定到「{}」级节点",
                    role.name_zh(),
                    node.level.as_str()
                ),
            });
        }
        Ok(())
    }

    /// 登录: a staff member signs in. Failures say the same whatever was wrong.
    pub async fn password_login(
        &self,
        username: &str,
        password: &str,
        address: &str,
    ) -> Result<Issued> {
        let now = Instant::now();
        let keys = [format!("user:{username}"), format!("addr:{address}")];
        if let Some(seconds) = keys
            .iter()
            .filter_map(|k| self.logins.locked_for(k, now))
            .max()
        {
            return Err(AppError::TooManyAttempts {
                message: format!("登录失败次数过多，请 {seconds} 秒后再试"),
                retry_after_secs: seconds,
            });
        }
        let wrong = || AppError::Unauthenticated("用户名或密码错误".into());
        if password.is_empty() || password.chars().count() > *account::PASSWORD_CHARS.end() {
            keys.iter().for_each(|k| self.logins.failed(k, now));
            return Err(wrong());
        }
        let account = match account::username(username) {
            Ok(()) => Some(self.account(&account::staff_account_id(username)).await?.0),
            Err(_) => None,
        }
        .filter(|a| a.exists() && a.active);
        let hash = account
            .as_ref()
            .and_then(|a| a.password_hash())
            .map(str::to_owned);
        if !verify_password(password.to_owned(), hash).await {
            keys.iter().for_each(|k| self.logins.failed(k, now));
            return Err(wrong());
        }
        keys.iter().for_each(|k| self.logins.succeeded(k));
        let account = account.expect("a verified password belongs to an account");
        self.start_session(account, "password").await
    }

    /// 微信登录: the account of a WeChat user (created as a resident on first sign-in).
    pub async fn wechat_login(
        &self,
        openid: &str,
        unionid: Option<&str>,
    ) -> Result<(Issued, bool)> {
        // Keyed by unionid when the app has one (the same person across the district's apps).
        let key = unionid.unwrap_or(openid);
        let account_id = format!("wx-{}", &digest(key)[..24]);
        let (existing, _) = self.account(&account_id).await?;
        let created = !existing.exists();
        let account = if created {
            let event = AccountEvent::AccountCreated {
                account_id: account_id.clone(),
                display_name: "微信用户".into(),
                role: Role::Resident,
                node_id: None,
                credential: Credential::Wechat {
                    openid: openid.to_owned(),
                    unionid: unionid.map(str::to_owned),
                },
                created_by: "self".into(),
            };
            let ctx = RequestContext::system(format!("wechat-signup-{account_id}"));
            match self
                .append_to(
                    &ctx,
                    account::account_stream(&account_id),
                    None,
                    &[(event.event_type(), &event)],
                )
                .await
            {
                // Two first sign-ins at once: the other one created it.
                Ok(()) | Err(AppError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            self.account(&account_id).await?.0
        } else {
            existing
        };
        if !account.active {
            return Err(AppError::Forbidden("该账号已停用".into()));
        }
        Ok((self.start_session(account, "wechat").await?, created))
    }

    async fn start_session(&self, account: Account, method: &str) -> Result<Issued> {
        let session_id = uuid::Uuid::new_v4().simple().to_string();
        let secret = random_secret();
        let event = SessionEvent::SessionStarted {
            session_id: session_id.clone(),
            account_id: account.account_id.clone(),
            refresh_digest: digest(&secret),
            expires_at: OffsetDateTime::now_utc() + REFRESH_TOKEN_LIFETIME,
            method: method.to_owned(),
        };
        let ctx = RequestContext::system(format!("session-{session_id}-start"));
        self.append_to(
            &ctx,
            account::session_stream(&session_id),
            None,
            &[(event.event_type(), &event)],
        )
        .await?;
        self.issue(account, format!("{session_id}.{secret}")).await
    }

    /// An access token for the account. A WeChat account linked to a registered volunteer
    /// acts as that volunteer — a team leader (队长) when a team names them its leader; the
    /// role is decided at every issue, so a new leader's next refresh carries it.
    async fn issue(&self, account: Account, refresh_token: String) -> Result<Issued> {
        let expires = OffsetDateTime::now_utc() + ACCESS_TOKEN_LIFETIME;
        let (sub, role, acc) = match &account.volunteer_id {
            Some(volunteer) => {
                let leads = !self.directory.led_teams(volunteer).await?.is_empty();
                let role = if leads {
                    Role::TeamLeader
                } else {
                    Role::Volunteer
                };
                (volunteer.clone(), role, Some(account.account_id.clone()))
            }
            None => (
                account.account_id.clone(),
                account.role.unwrap_or(Role::Resident),
                None,
            ),
        };
        let access_token = self.signer.issue(&Claims {
            sub,
            role,
            node: account.node_id.clone(),
            acc,
            exp: expires.unix_timestamp(),
        });
        Ok(Issued {
            access_token,
            expires_in: ACCESS_TOKEN_LIFETIME.whole_seconds() as u32,
            refresh_token,
            account,
            role,
        })
    }

    /// Loads the session a refresh token names and decides what presenting it means.
    async fn presented(&self, refresh_token: &str) -> Result<(Session, u64, RefreshDecision)> {
        let invalid = || AppError::Unauthenticated("刷新令牌无效，请重新登录".into());
        let (session_id, secret) = refresh_token.split_once('.').ok_or_else(invalid)?;
        if session_id.len() != 32 || !session_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let (session, revision) = self
            .fold(
                &account::session_stream(session_id),
                account::evolve_session,
            )
            .await?;
        let revision = revision.ok_or_else(invalid)?;
        let decision =
            account::decide_refresh(&session, &digest(secret), OffsetDateTime::now_utc());
        Ok((session, revision, decision))
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    pub async fn refresh_session(&self, refresh_token: &str) -> Result<Issued> {
        let (session, revision, decision) = self.presented(refresh_token).await?;
        let stream = account::session_stream(&session.session_id);
        match decision {
            RefreshDecision::Refuse(why) => Err(AppError::Unauthenticated(why.into())),
            RefreshDecision::Reuse => {
                let event = SessionEvent::SessionRevoked {
                    reason: "refresh token reused".into(),
                };
                let ctx = RequestContext::system(format!(
                    "session-{}-reuse-{revision}",
                    session.session_id
                ));
                // Revoked whatever else happens meanwhile: a conflict means it moved on, and
                // the next presentation of the stolen token revokes it then.
                let _ = self
                    .append_to(
                        &ctx,
                        stream,
                        Some(revision),
                        &[(event.event_type(), &event)],
                    )
                    .await;
                Err(AppError::Unauthenticated(
                    "刷新令牌已被使用过，该登录已失效，请重新登录".into(),
                ))
            }
            RefreshDecision::Rotate => {
                let (account, _) = self.account(&session.account_id).await?;
                if !account.active {
                    return Err(AppError::Unauthenticated("该账号已停用".into()));
                }
                let secret = random_secret();
                let event = SessionEvent::SessionRefreshed {
                    refresh_digest: digest(&secret),
                    expires_at: OffsetDateTime::now_utc() + REFRESH_TOKEN_LIFETIME,
                };
                let ctx = RequestContext::system(format!(
                    "session-{}-refresh-{revision}",
                    session.session_id
                ));
                // Two refreshes with one token at once: one rotates, the other loses the
                // append and is refused (it presented a token that is now spent).
                self.append_to(
                    &ctx,
                    stream,
                    Some(revision),
                    &[(event.event_type(), &event)],
                )
                .await
                .map_err(|_| AppError::Unauthenticated("刷新令牌已被使用，请重新登录".into()))?;
                self.issue(account, format!("{}.{secret}", session.session_id))
                    .await
            }
        }
    }

    /// 退出: revokes the session of a refresh token (its current one).
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let (session, revision, decision) = self.presented(refresh_token).await?;
        match decision {
            RefreshDecision::Rotate => {
                let event = SessionEvent::SessionRevoked {
                    reason: "logout".into(),
                };
                let ctx = RequestContext::system(format!(
                    "session-{}-logout-{revision}",
                    session.session_id
                ));
                self.append_to(
                    &ctx,
                    account::session_stream(&session.session_id),
                    Some(revision),
                    &[(event.event_type(), &event)],
                )
                .await
            }
            RefreshDecision::Reuse | RefreshDecision::Refuse(_) => {
                Err(AppError::Unauthenticated("刷新令牌无效，请重新登录".into()))
            }
        }
    }

    /// 修改密码: the caller changes their own password, proving the old one.
    pub async fn change_password(
        &self,
        ctx: &RequestContext,
        old_password: &str,
        new_password: &str,
    ) -> Result<()> {
        account::new_password("new_password", new_password)?;
        let (account, revision) = self.account(ctx.claims.account_id()).await?;
        let hash =
            account
                .password_hash()
                .map(str::to_owned)
                .ok_or_else(|| AppError::Conflict {
                    field: None,
                    message: "该账号不使用密码登录，无密码可改".into(),
                })?;
        if !verify_password(old_password.to_owned(), Some(hash)).await {
            return Err(AppError::invalid("old_password", "原密码不正确"));
        }
        let event = AccountEvent::PasswordChanged {
            password_hash: hash_password(new_password.to_owned()).await?,
            by: ctx.claims.sub.clone(),
            reset: false,
        };
        self.append_to(
            ctx,
            account::account_stream(&account.account_id),
            revision,
            &[(event.event_type(), &event)],
        )
        .await
    }

    /// 绑定手机号: the caller's account binds a mobile number (from WeChat). The event carries
    /// the masked number; the full one goes to the contact vault after the append.
    ///
    /// When the number is the one a station registered a volunteer with, the account is
    /// linked to that volunteer in the same append: from its next token on (refresh) it acts
    /// as the volunteer — or team leader. Returns the masked number and the linked volunteer.
    pub async fn bind_phone(
        &self,
        ctx: &RequestContext,
        phone: &str,
    ) -> Result<(String, Option<String>)> {
        diandan_workflows::validate::phone("phone", phone)?;
        let (account, revision) = self.account(ctx.claims.account_id()).await?;
        if !account.exists() {
            return Err(AppError::Conflict {
                field: None,
                message: "请先用微信登录，再绑定手机号".into(),
            });
        }
        self.vault.ready().await?;
        let masked = diandan_workflows::validate::mask_phone(phone);
        // Sealed with the account holder's key, like every resident's number ([`crate::pii`]).
        let key = self.vault.resident_key(&account.account_id).await?;
        let bound = AccountEvent::PhoneBound {
            phone_masked: crate::pii::seal(
                &key,
                &account.account_id,
                crate::pii::field::PHONE_MASKED,
                &masked,
            ),
        };
        let volunteer = match &account.volunteer_id {
            Some(_) => None,
            None => self.vault.volunteer_by_phone(phone).await?,
        };
        let linked = volunteer
            .clone()
            .map(|volunteer_id| AccountEvent::VolunteerLinked { volunteer_id });
        let mut events = vec![(bound.event_type(), &bound)];
        if let Some(linked) = &linked {
            events.push((linked.event_type(), linked));
        }
        self.append_to(
            ctx,
            account::account_stream(&account.account_id),
            revision,
            &events,
        )
        .await?;
        self.vault
            .put_account_phone(&account.account_id, phone)
            .await?;
        Ok((masked, volunteer.or(account.volunteer_id)))
    }

    /// 重置密码: an administrator sets a new password for an account of their subtree.
    pub async fn reset_password(
        &self,
        ctx: &RequestContext,
        account_id: &str,
        new_password: &str,
    ) -> Result<()> {
        let (account, revision) = self.account(account_id).await?;
        if !account.exists() || account.password_hash().is_none() {
            return Err(AppError::NotFound("账号不存在".into()));
        }
        let node = account.node_id.clone().unwrap_or_default();
        // Outside the caller's subtree, an account is as good as absent.
        self.directory
            .require_scope(ctx, &node)
            .await
            .map_err(|_| AppError::NotFound("账号不存在".into()))?;
        self.may_manage(ctx, account.role.unwrap_or(Role::Resident), &node)
            .await?;
        account::new_password("new_password", new_password)?;
        let event = AccountEvent::PasswordChanged {
            password_hash: hash_password(new_password.to_owned()).await?,
            by: ctx.claims.sub.clone(),
            reset: true,
        };
        self.append_to(
            ctx,
            account::account_stream(account_id),
            revision,
            &[(event.event_type(), &event)],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_grows_after_the_free_attempts_and_success_clears_it() {
        let guard = LoginGuard::default();
        let now = Instant::now();
        for _ in 0..FREE_ATTEMPTS - 1 {
            guard.failed("user:deng", now);
        }
        assert_eq!(guard.locked_for("user:deng", now), None);
        guard.failed("user:deng", now);
        assert_eq!(guard.locked_for("user:deng", now), Some(30));
        guard.failed("user:deng", now);
        assert_eq!(guard.locked_for("user:deng", now), Some(60));
        assert_eq!(
            guard.locked_for("user:deng", now + Duration::from_secs(61)),
            None
        );
        guard.succeeded("user:deng");
        assert_eq!(guard.locked_for("user:deng", now), None);
    }

    #[tokio::test]
    async fn passwords_hash_and_verify_and_the_dummy_never_matches() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse".into(), Some(hash)).await);
        assert!(!verify_password("anything".into(), None).await);
    }
}
