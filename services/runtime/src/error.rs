//! [`AppError`]: every way a service call fails, and how each reaches a gRPC client.

use diandan_store::StoreError;
use diandan_workflows::DomainError;

/// gRPC metadata key naming the offending request field, for clients (and the HTTP gateway's
/// problem details) to point at it.
pub const FIELD_METADATA_KEY: &str = "x-diandan-field";

/// Why a service call failed. Nothing was changed unless said otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The domain refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A request field is invalid or refers to something that does not exist.
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    /// No valid token. Sign in again.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (role or org scope).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A request field names something that does not exist (a station, team, node): 404
    /// naming the field — the request was well formed, its referent is missing.
    #[error("{field}: {message}")]
    Missing {
        field: &'static str,
        message: String,
    },
    /// The expected revision was stale, or the id already exists. Reload and decide again.
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    /// The store failed; nothing was acknowledged. Retry later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local database (read model, vault) failed.
    #[error("内部存储错误：{0}")]
    Storage(String),
    /// Too many failed sign-ins: wait `retry_after_secs` (sent as `retry-after` metadata).
    #[error("{message}")]
    TooManyAttempts {
        message: String,
        retry_after_secs: u64,
    },
    /// `min_position` lies beyond the end of the event log: no command was ever answered
    /// with it. Use the position from a command's reply.
    #[error("{0}")]
    PositionNotReached(String),
    /// The read model has not reached the `min_position` asked for within the bounded wait.
    /// Nothing is wrong with the request: retry shortly.
    #[error("{0}")]
    Lagging(String),
}

impl AppError {
    pub fn missing(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::Missing {
            field,
            message: message.into(),
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::InvalidField {
            field,
            message: message.into(),
        }
    }

    /// The request field this error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AppError::Domain(DomainError::InvalidField { field, .. })
            | AppError::Domain(DomainError::Conflict { field, .. })
            | AppError::InvalidField { field, .. } => Some(field),
            AppError::Conflict { field, .. } => *field,
            AppError::Lagging(_) | AppError::PositionNotReached(_) => Some("min_position"),
            AppError::Missing { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> AppError {
        AppError::Storage(e.to_string())
    }
}

impl From<AppError> for tonic::Status {
    fn from(error: AppError) -> tonic::Status {
        use tonic::Code;
        let code = match &error {
            AppError::Domain(DomainError::InvalidField { .. }) | AppError::InvalidField { .. } => {
                Code::InvalidArgument
            }
            AppError::Domain(DomainError::Forbidden(_)) | AppError::Forbidden(_) => {
                Code::PermissionDenied
            }
            AppError::Domain(DomainError::IllegalTransition { .. }) => Code::FailedPrecondition,
            // Lost a race: a concurrency conflict, not a client mistake.
            AppError::Domain(DomainError::AlreadyAccepted | DomainError::Full) => Code::Aborted,
            AppError::Domain(DomainError::NotFound)
            | AppError::NotFound(_)
            | AppError::Missing { .. } => Code::NotFound,
            // Reading past the end of the log (gRPC's "past the valid range").
            AppError::PositionNotReached(_) => Code::OutOfRange,
            AppError::TooManyAttempts { .. } => Code::ResourceExhausted,
            AppError::Domain(_) => Code::FailedPrecondition,
            AppError::Unauthenticated(_) => Code::Unauthenticated,
            AppError::Conflict { .. } => Code::Aborted,
            AppError::Store(StoreError::WrongExpectedRevision { .. }) => Code::Aborted,
            AppError::Store(StoreError::InvalidRequest(_)) => Code::InvalidArgument,
            AppError::Store(StoreError::Unavailable(_)) => Code::Unavailable,
            AppError::Store(_) | AppError::Storage(_) | AppError::Lagging(_) => Code::Unavailable,
        };
        let message = match &error {
            AppError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                "存储暂不可用，请求未被接受，请稍后重试".to_owned()
            }
            AppError::Storage(e) => {
                tracing::error!(error = %e, "local storage failure");
                "存储暂不可用，请稍后重试".to_owned()
            }
            other => bounded(other.to_string()),
        };
        let mut status = tonic::Status::new(code, message);
        if let AppError::TooManyAttempts {
            retry_after_secs, ..
        } = &error
        {
            status
                .metadata_mut()
                .insert("retry-after", (*retry_after_secs).into());
        }
        if let Some(field) = error.field() {
            if let Ok(value) = field.parse() {
                status.metadata_mut().insert(FIELD_METADATA_KEY, value);
            }
        }
        status
    }
}

/// Longest status message, in characters. Messages may quote what the client sent ("实践站「…」
/// 不存在"); a client's 16 KiB value must not become a 16 KiB `grpc-message` header, which an
/// HTTP/2 peer refuses (a protocol error, i.e. a 5xx, for a bad input).
pub const MAX_MESSAGE_CHARS: usize = 200;

fn bounded(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}
