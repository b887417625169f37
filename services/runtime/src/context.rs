//! Who is calling, what they may do, and under which command id, read from gRPC metadata.
//!
//! Every service method starts with [`App::authorize`](crate::App::authorize): the caller's
//! token is verified and the permission table (`diandan_workflows::permissions`) gives the
//! scope the caller's role may act over for that operation, or refuses (403). The context
//! carries that scope; resources are then checked against it, never against a role.
//!
//! - `authorization: Bearer <token>` — required on every call but `DevLogin`;
//! - `idempotency-key` — the command id; a retry with the same key is answered, not re-applied;
//! - `x-correlation-id` — ties the events of one conversation together.

use time::OffsetDateTime;
use tonic::metadata::MetadataMap;

use diandan_workflows::permissions::{self, Operation, Scope};
use diandan_workflows::{Actor, CommandMeta, Role};

use crate::auth::{Claims, TokenSigner};
use crate::AppError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const CORRELATION_ID: &str = "x-correlation-id";
/// The client's address as the HTTP gateway saw it (for per-address sign-in lockouts).
pub const CLIENT_ADDRESS: &str = "x-diandan-client-address";

/// An authenticated call.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub claims: Claims,
    /// Over what the caller may act in this call (from the permission table).
    pub scope: Scope,
    pub command_id: String,
    pub correlation_id: String,
}

impl RequestContext {
    /// Authenticates a call from its metadata (scope: not yet granted — `Public`).
    fn from_metadata(
        metadata: &MetadataMap,
        signer: &TokenSigner,
    ) -> Result<RequestContext, AppError> {
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AppError::Unauthenticated("请先登录（缺少 Authorization 头）".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| AppError::Unauthenticated("Authorization 头须为 Bearer 令牌".into()))?;
        let claims = signer.verify(token.trim(), OffsetDateTime::now_utc())?;
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let command_id = match text(IDEMPOTENCY_KEY) {
            Some(key) if key.len() > 128 => {
                return Err(AppError::invalid("Idempotency-Key", "最多 128 个字符"))
            }
            Some(key) => key,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let correlation_id = text(CORRELATION_ID)
            .filter(|c| c.len() <= 128)
            .unwrap_or_else(|| command_id.clone());
        Ok(RequestContext {
            claims,
            scope: Scope::Public,
            command_id,
            correlation_id,
        })
    }

    /// A context for the system itself (demo seeding, imports, timers).
    pub fn system(command_id: impl Into<String>) -> RequestContext {
        let command_id = command_id.into();
        RequestContext {
            claims: Claims {
                sub: "system".into(),
                role: Role::System,
                node: None,
                acc: None,
                exp: i64::MAX,
            },
            scope: Scope::All,
            correlation_id: command_id.clone(),
            command_id,
        }
    }

    pub fn actor(&self) -> Actor {
        self.claims.actor()
    }

    pub fn role(&self) -> Role {
        self.claims.role
    }

    /// The envelope for the events this call produces.
    pub fn command_meta(&self, at: OffsetDateTime) -> CommandMeta {
        CommandMeta {
            actor: self.actor(),
            at,
            command_id: self.command_id.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: None,
        }
    }
}

impl crate::App {
    /// Authenticates a gRPC call to `op` and checks the permission table: a role the table
    /// grants nothing for `op` is refused here (403); otherwise the context carries its scope.
    pub fn authorize(
        &self,
        metadata: &MetadataMap,
        op: Operation,
    ) -> Result<RequestContext, AppError> {
        let mut ctx = RequestContext::from_metadata(metadata, &self.signer)?;
        ctx.scope = permissions::grant(op, ctx.role()).ok_or_else(|| {
            AppError::Forbidden(format!("{}无权{}", ctx.role().name_zh(), op.name_zh()))
        })?;
        Ok(ctx)
    }
}
