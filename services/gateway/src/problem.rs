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
    /// Rows of an uploaded sheet that were refused (a 422 import), each naming its row and
    /// column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Box<Vec<diandan_proto::v1::ImportRowError>>>,
    /// Seconds to wait before retrying (429, 503): sent as `Retry-After`, not in the body.
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://diandan.dev/problems/{kind}"),
            title: title(status).to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            errors: None,
            retry_after: None,
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

/// A short Chinese title per status (RFC 9457 `title`: the same for every problem of a kind).
fn title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "请求有误",
        401 => "未登录或登录已失效",
        403 => "无权执行此操作",
        404 => "未找到",
        405 => "不支持的请求方法",
        409 => "与当前状态冲突",
        413 => "请求体过大",
        415 => "不支持的文件类型",
        422 => "内容未通过校验",
        414 => "请求路径过长",
        429 => "请求过于频繁",
        431 => "请求头过大",
        503 => "服务暂不可用",
        504 => "服务超时",
        _ => "服务内部错误",
    }
}

/// Seconds a client should wait before retrying a 429 or 503 (`Retry-After`), unless the
/// problem says otherwise.
const DEFAULT_RETRY_AFTER_SECS: u32 = 1;

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(status.as_u16(), 429 | 503) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(self.retry_after.unwrap_or(DEFAULT_RETRY_AFTER_SECS)),
            );
        }
        response
    }
}

impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Problem {
        use tonic::Code;
        let (http, kind) = match status.code() {
            Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid-request"),
            // A read past the end of the log: well formed, but the position is not there yet.
            Code::OutOfRange => (StatusCode::CONFLICT, "position-not-reached"),
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
        // The services speak Chinese; an ASCII-only message comes from a transport or codec
        // (tonic, h2) and is not for the resident's eyes.
        let detail = if status.message().is_ascii() {
            match http.as_u16() {
                400 => "请求内容无法解析".to_owned(),
                504 => "服务未能及时响应，请稍后重试".to_owned(),
                _ => "服务暂不可用，请稍后重试".to_owned(),
            }
        } else {
            status.message().to_owned()
        };
        let mut problem = Problem::new(http, kind, detail);
        problem.retry_after = status
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
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
