//! 审计链 over HTTP: the log's signed checkpoints, consistency proofs between them, and an
//! order's verifiable export — one route → one `AuditService` call.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use diandan_proto::v1 as pb;

use crate::input::{json_body, path_id, query};
use crate::problem::Problem;
use crate::routes::{grpc, Clients, Reply};

/// An optional body left out: nothing, or JSON `null`.
fn absent(body: &Bytes) -> bool {
    let body = body.trim_ascii();
    body.is_empty() || body == b"null"
}

/// 检查点: the newest signed checkpoint of the log (or the one of `tree_size` events) and the
/// public key it verifies with. Keep copies: `diandan audit verify --checkpoint FILE`.
#[utoipa::path(get, path = "/api/v1/audit/checkpoint", params(pb::GetCheckpointRequest),
    responses((status = 200, body = pb::GetCheckpointResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_checkpoint(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::GetCheckpointResponse> {
    let request: pb::GetCheckpointRequest = query(raw)?;
    let reply = clients
        .audit()
        .get_checkpoint(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 签署检查点: sign a checkpoint of the log as it is now (the newest comes back when the log
/// has not grown since).
#[utoipa::path(post, path = "/api/v1/audit/checkpoints",
    request_body = Option<pb::SignCheckpointRequest>,
    responses((status = 201, body = pb::SignCheckpointResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn sign_checkpoint(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<pb::SignCheckpointResponse>), Problem> {
    // The body may be absent, `null` or `{}`.
    let request: pb::SignCheckpointRequest = match body {
        Ok(bytes) if absent(&bytes) => pb::SignCheckpointRequest {},
        other => json_body(other)?,
    };
    let reply = clients
        .audit()
        .sign_checkpoint(grpc(&headers, request)?)
        .await?;
    Ok((StatusCode::CREATED, Json(reply.into_inner())))
}

/// 一致性证明: that the log of `from_size` events (a checkpoint you hold) is a prefix of the log
/// a newer checkpoint signed (RFC 9162 §2.1.4).
#[utoipa::path(get, path = "/api/v1/audit/consistency", params(pb::GetConsistencyProofRequest),
    responses((status = 200, body = pb::GetConsistencyProofResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_consistency_proof(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::GetConsistencyProofResponse> {
    let request: pb::GetConsistencyProofRequest = query(raw)?;
    let reply = clients
        .audit()
        .get_consistency_proof(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// An export's format.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ProofParams {
    /// `json` (default: the verifiable document) or `csv` (for people: the same events and
    /// hashes, no proofs).
    format: String,
}

/// 导出可验证记录: an order's whole history with each event's hash and its inclusion proof to a
/// signed checkpoint, checkable offline: `diandan audit verify-export FILE --key PUBKEY`.
#[utoipa::path(get, path = "/api/v1/audit/orders/{id}/proof",
    params(("id" = String, Path, description = "订单编号"), ProofParams),
    responses((status = 200, description = "diandan.export.v1 (JSON) 或 CSV"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn export_order_proof(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let order_id = path_id(id, "id")?;
    let params: ProofParams = query(raw)?;
    let csv = match params.format.as_str() {
        "" | "json" => false,
        "csv" => true,
        other => {
            return Err(Problem::bad_request(
                Some("format".into()),
                format!("不支持的导出格式「{other}」，可选 json 或 csv"),
            ))
        }
    };
    let request = pb::ExportOrderProofRequest {
        order_id: order_id.clone(),
    };
    let document = clients
        .audit()
        .export_order_proof(grpc(&headers, request)?)
        .await?
        .into_inner()
        .document;
    let (body, content_type, extension) = if csv {
        let export: diandan_audit::export::Export =
            serde_json::from_str(&document).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream-invalid",
                    format!("导出文档无法解析：{e}"),
                )
            })?;
        (
            format!("\u{feff}{}", diandan_audit::export::to_csv(&export)),
            "text/csv; charset=utf-8",
            "csv",
        )
    } else {
        (document, "application/json", "json")
    };
    let disposition = format!("attachment; filename=\"order-{order_id}-proof.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// 删除居民个人信息 (PIPL): a centre admin has a resident forgotten — their key is destroyed,
/// so their address and numbers become unreadable everywhere; facts and statistics stay.
/// 404 for a resident with no personal data here, 409 when already forgotten.
#[utoipa::path(post, path = "/api/v1/residents/{id}/forget",
    request_body = Option<pb::ForgetResidentRequest>,
    params(("id" = String, Path, description = "居民编号"),
           ("Idempotency-Key" = Option<String>, Header, description = "重试时使用同一值，命令只执行一次")),
    responses((status = 200, body = pb::ForgetResidentResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn forget_resident(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::ForgetResidentResponse> {
    let id = path_id(id, "id")?;
    // The body may be absent or `null` (no reason given).
    let mut request: pb::ForgetResidentRequest = match body {
        Ok(bytes) if absent(&bytes) => pb::ForgetResidentRequest::default(),
        other => json_body(other)?,
    };
    // The body's copy of the id is ignored, but must be an id (or empty), as documented.
    if !request.resident_id.is_empty()
        && diandan_workflows::validate::id("resident_id", &request.resident_id).is_err()
    {
        return Err(Problem::bad_request(
            Some("resident_id".into()),
            "编号只能包含字母、数字、- 和 _，最多 64 个字符（可留空：以路径中的编号为准）",
        ));
    }
    request.resident_id = id;
    let reply = clients
        .accounts()
        .forget_resident(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 查阅记录: who was shown an order's full contact number, in which role, when and why.
#[utoipa::path(get, path = "/api/v1/audit/orders/{id}/contact-reads",
    params(("id" = String, Path, description = "订单编号"), pb::ListContactReadsRequest),
    responses((status = 200, body = pb::ListContactReadsResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_contact_reads(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::ListContactReadsResponse> {
    let order_id = path_id(id, "id")?;
    let mut request: pb::ListContactReadsRequest = query(raw)?;
    request.order_id = order_id;
    let reply = clients
        .audit()
        .list_contact_reads(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}
