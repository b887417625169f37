//! Reading what a client sent — bodies, query strings, path ids, headers — strictly, at the
//! edge, into problem details in Chinese that name the field.
//!
//! The limits here are the API's documented limits (README "Limits"); nothing the client sends
//! reaches a service unchecked in size, so no internal hop (an HTTP/2 header, a gRPC status
//! message) can turn a client's oversized value into a 5xx.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Largest request body accepted (a description is at most 500 characters; photos are
/// references, not bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest query string.
pub const MAX_QUERY_BYTES: usize = 2048;

/// Longest path (beyond it: 414).
pub const MAX_PATH_BYTES: usize = 2048;

/// The headers forwarded to the services and their limits (bytes); a longer one is refused
/// before any service sees it.
pub const HEADER_LIMITS: [(&str, usize); 3] = [
    ("authorization", 4096),
    ("idempotency-key", 128),
    ("x-correlation-id", 128),
];

/// Any other single header longer than this is refused with 431.
pub const MAX_HEADER_BYTES: usize = 8192;

/// Checks the request line and headers against the limits above.
pub fn check_request(uri: &axum::http::Uri, headers: &HeaderMap) -> Result<(), Problem> {
    if uri.path().len() > MAX_PATH_BYTES {
        return Err(Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            format!("请求路径过长：最多 {MAX_PATH_BYTES} 字节"),
        )
        .with_field("path"));
    }
    // An over-long query is a bad request (400 naming it): no parameter of this API needs
    // more, so it is bad input rather than a URI the server cannot take.
    if uri.query().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        return Err(Problem::bad_request(
            Some("query".into()),
            format!("查询参数过长：最多 {MAX_QUERY_BYTES} 字节"),
        ));
    }
    // An idempotency key is visible ASCII (it names a command in logs and stores).
    if let Some(key) = headers.get("idempotency-key") {
        let visible = key.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b));
        if key.is_empty() || !visible {
            return Err(Problem::bad_request(
                Some("idempotency-key".into()),
                "请求头 Idempotency-Key 须为 1 到 128 个可见 ASCII 字符（不含空格）",
            ));
        }
    }
    for (name, limit) in HEADER_LIMITS {
        for value in headers.get_all(name) {
            if value.len() > limit {
                let status = if name == "authorization" {
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                return Err(Problem::new(
                    status,
                    "header-too-large",
                    format!("请求头 {name} 过长：最多 {limit} 字节"),
                )
                .with_field(name));
            }
        }
    }
    if let Some((name, _)) = headers.iter().find(|(_, v)| v.len() > MAX_HEADER_BYTES) {
        return Err(Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header-too-large",
            format!("请求头 {name} 过长：最多 {MAX_HEADER_BYTES} 字节"),
        )
        .with_field(name.as_str()));
    }
    Ok(())
}

/// An id from the path, checked against the domain's id rule (`validate::id`).
pub fn path_id(path: Result<Path<String>, PathRejection>, field: &str) -> Result<String, Problem> {
    let refused = || {
        Problem::bad_request(
            Some(field.to_owned()),
            "编号只能包含字母、数字、- 和 _，最多 64 个字符",
        )
    };
    let Path(id) = path.map_err(|_| refused())?;
    diandan_workflows::validate::id("id", &id)
        .map(|()| id)
        .map_err(|_| refused())
}

/// Parses a JSON body: exactly one JSON object, nothing before or after it.
pub fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body-too-large"
        } else {
            "invalid-body"
        };
        Problem::new(
            status,
            kind,
            format!("请求体无法读取（最大 {} KB）", MAX_BODY_BYTES / 1024),
        )
        .with_field("body")
    })?;
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => {
            return Err(Problem::bad_request(
                Some("body".into()),
                "请求体不能为空：须为一个 JSON 对象（没有参数时发送 {}）",
            ))
        }
        Some(_) => {
            return Err(Problem::bad_request(
                Some("body".into()),
                "请求体须为一个 JSON 对象 {…}（不接受数组或其他值）",
            ))
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => {
            // Trailing data (`{…}xyz`, two documents back to back) is an error, not ignored.
            deserializer.end().map_err(trailing)?;
            Ok(value)
        }
        Err(e) if is_integral_float(e.inner()) => {
            // JSON Schema calls 43.0 an integer; serde does not. Read it as the integer it is.
            let mut deserializer = serde_json::Deserializer::from_slice(&body);
            let mut value: serde_json::Value =
                serde_path_to_error::deserialize(&mut deserializer).map_err(json_problem)?;
            deserializer.end().map_err(trailing)?;
            integral_floats_to_integers(&mut value);
            serde_path_to_error::deserialize(value).map_err(json_problem)
        }
        Err(e) => Err(json_problem(e)),
    }
}

fn trailing(e: serde_json::Error) -> Problem {
    Problem::bad_request(
        Some("body".into()),
        format!(
            "请求体在 JSON 对象之后还有多余内容（第 {} 行第 {} 列）：只能发送一个 JSON 对象",
            e.line(),
            e.column()
        ),
    )
}

fn is_integral_float(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("invalid type: floating point `")
        && e.to_string()
            .split('`')
            .nth(1)
            .and_then(|f| f.parse::<f64>().ok())
            .is_some_and(|f| f.fract() == 0.0)
}

fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
                *n = serde_json::Number::from(f as u64);
            } else if f.fract() == 0.0 && f < 0.0 && f >= i64::MIN as f64 {
                *n = serde_json::Number::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Parses a query string, naming the parameter at fault.
pub fn query<T: DeserializeOwned + Default>(raw: Option<String>) -> Result<T, Problem> {
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return Ok(T::default());
    };
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let (field, detail) = describe(&e.path().to_string(), &e.inner().to_string());
        Problem::bad_request(Some(field.unwrap_or_else(|| "query".into())), detail)
    })
}

/// A JSON parse error as problem details: syntax errors name the body and where; data errors
/// name the field and say what was expected, in Chinese.
fn json_problem(e: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    use serde_json::error::Category;
    let inner = e.inner();
    match inner.classify() {
        Category::Syntax if inner.to_string().starts_with("number out of range") => {
            let (field, _) = describe(&e.path().to_string(), "");
            Problem::bad_request(Some(field.unwrap_or_else(|| "body".into())), "数值超出范围")
        }
        Category::Syntax | Category::Eof | Category::Io => {
            let detail = if inner.classify() == Category::Eof {
                "请求体不是完整的 JSON：内容提前结束".to_owned()
            } else {
                format!(
                    "请求体不是合法的 JSON（第 {} 行第 {} 列）",
                    inner.line(),
                    inner.column()
                )
            };
            Problem::bad_request(Some("body".into()), detail)
        }
        Category::Data => {
            let message = inner.to_string();
            // serde_json appends " at line L column C"; the Chinese text says it itself.
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            let (field, detail) = describe(&e.path().to_string(), message);
            Problem::bad_request(Some(field.unwrap_or_else(|| "body".into())), detail)
        }
    }
}

/// Translates a serde data error (`path`, English message) into the field at fault and a
/// Chinese explanation.
fn describe(path: &str, message: &str) -> (Option<String>, String) {
    let path = path
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .collect::<Vec<_>>()
        .join(".");
    let named = |name: &str| {
        Some(if path.is_empty() || path.ends_with(name) {
            if path.is_empty() {
                name.to_owned()
            } else {
                path.clone()
            }
        } else {
            format!("{path}.{name}")
        })
    };
    let quoted = message.split('`').nth(1).unwrap_or_default();
    let at_path = (!path.is_empty()).then(|| path.clone());
    if message.starts_with("unknown field") {
        (named(quoted), format!("未知字段「{quoted}」"))
    } else if message.starts_with("duplicate field") {
        (named(quoted), format!("字段「{quoted}」重复出现"))
    } else if message.starts_with("missing field") {
        (named(quoted), format!("缺少必填字段「{quoted}」"))
    } else if let Some(expected) = message.split(", expected ").nth(1) {
        let expected = expected_zh(expected);
        if message.starts_with("invalid type") {
            (at_path, format!("类型错误：应为{expected}"))
        } else {
            (at_path, format!("取值无效：应为{expected}"))
        }
    } else if message.contains("out of range") {
        (at_path, "数值超出范围".to_owned())
    } else {
        (at_path, "取值无效".to_owned())
    }
}

/// What serde expected, in Chinese.
fn expected_zh(expected: &str) -> &'static str {
    let e = expected.to_ascii_lowercase();
    if e.contains("u32") || e.contains("u64") {
        "非负整数"
    } else if e.contains("i32") || e.contains("i64") || e.contains("integer") {
        "整数"
    } else if e.contains("f64") || e.contains("f32") || e.contains("float") {
        "数字"
    } else if e.contains("bool") {
        "布尔值 true 或 false"
    } else if e.contains("string") || e.contains("char") {
        "字符串"
    } else if e.contains("sequence") || e.contains("array") {
        "数组"
    } else if e.contains("struct") || e.contains("map") {
        "JSON 对象"
    } else {
        "正确的类型"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Review {
        rating: u32,
        comment: String,
        expected_revision: Option<u64>,
    }

    fn parse(body: &str) -> Result<Review, Problem> {
        json_body(Ok(Bytes::copy_from_slice(body.as_bytes())))
    }

    fn refused(body: &str) -> (String, String) {
        let p = parse(body).expect_err(body);
        assert_eq!(p.status, 400, "{body}");
        (p.field.unwrap_or_default(), p.detail)
    }

    #[test]
    fn one_object_only() {
        assert_eq!(parse(r#"{"rating":5}"#).unwrap().rating, 5);
        assert_eq!(parse(" {} \n").unwrap().rating, 0);
        for body in [
            "",
            "  ",
            "[]",
            r#"[5, "好"]"#,
            r#"{"rating":5}xyz"#,
            r#"{"rating":5}{"rating":4}"#,
            "null",
            "5",
        ] {
            assert_eq!(refused(body).0, "body", "{body:?}");
        }
    }

    #[test]
    fn errors_name_the_field_in_chinese() {
        let (field, detail) = refused(r#"{"rating":5,"rating":0}"#);
        assert_eq!(field, "rating");
        assert!(detail.contains("重复"), "{detail}");
        let (field, detail) = refused(r#"{"rating":"five"}"#);
        assert_eq!(field, "rating");
        assert!(detail.contains("非负整数"), "{detail}");
        let (field, _) = refused(r#"{"nope":1}"#);
        assert_eq!(field, "nope");
        let (field, detail) = refused(r#"{"rating":5,"#);
        assert_eq!(field, "body");
        assert!(!detail.is_ascii());
        let (field, detail) = refused(r#"{"rating" 5}"#);
        assert_eq!(field, "body");
        assert!(detail.contains("第 1 行"), "{detail}");
        for body in [
            r#"{"rating":-1}"#,
            r#"{"rating":1e400}"#,
            r#"{"rating":99999999999}"#,
        ] {
            let (field, detail) = refused(body);
            assert_eq!(field, "rating", "{body}");
            assert!(!detail.contains("expected"), "{detail}");
        }
    }

    #[test]
    fn integral_floats_are_integers() {
        let review = parse(r#"{"rating":5.0,"expected_revision":43.0}"#).unwrap();
        assert_eq!((review.rating, review.expected_revision), (5, Some(43)));
        assert_eq!(
            refused(r#"{"expected_revision":43.5}"#).0,
            "expected_revision"
        );
    }

    #[test]
    fn path_ids_follow_the_id_rule() {
        let ok = |s: &str| path_id(Ok(Path(s.to_owned())), "id");
        assert!(ok("order-1_A").is_ok());
        for bad in ["", "a b", "订单", &"x".repeat(65), "\u{fffd}\u{fffd}"] {
            assert_eq!(ok(bad).unwrap_err().field.as_deref(), Some("id"));
        }
    }
}
