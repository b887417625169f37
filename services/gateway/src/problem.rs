//! RFC 9457 problem details: every error the gateway returns.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Metadata key the services use to name the offending field.
const FIELD_METADATA_KEY: &str = "x-diandan-field";

/// An `application/problem+json` body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for people (Simplified Chinese).
    pub detail: String,
    /// The request field at fault, when there is one (e.g. `rating`, `location`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://diandan.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(field: Option<String>, detail: impl Into<String>) -> Problem {
        let problem = Problem::new(StatusCode::BAD_REQUEST, "invalid-request", detail);
        match field {
            Some(field) => problem.with_field(field),
            None => problem,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Problem {
        use tonic::Code;
        let (http, kind) = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                (StatusCode::BAD_REQUEST, "invalid-request")
            }
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
            Code::NotFound => (StatusCode::NOT_FOUND, "not-found"),
            Code::FailedPrecondition => (StatusCode::CONFLICT, "illegal-transition"),
            Code::Aborted | Code::AlreadyExists => (StatusCode::CONFLICT, "conflict"),
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if http == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = ?status.code(), message = status.message(), "backend error");
        }
        let detail = if status.message().is_empty() {
            "服务暂时不可用".to_owned()
        } else {
            status.message().to_owned()
        };
        let problem = Problem::new(http, kind, detail);
        match status
            .metadata()
            .get(FIELD_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
        {
            Some(field) => problem.with_field(field),
            None => problem,
        }
    }
}
