//! The console's own routes: the auditor's search and streamed export (审计), and managing
//! volunteers (组织管理) — edits, 停用/启用, and roster imports.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;

use diandan_proto::v1 as pb;
use diandan_workflows::Category;

use crate::input::{json_body, path_id, query};
use crate::problem::Problem;
use crate::routes::{grpc, grpc_open_ended, Clients, Reply};

/// Largest roster sheet (the services hold the same limit).
pub const MAX_SHEET_BYTES: usize = 5 * 1024 * 1024;

/// The volunteer is the path's; a body's `id` is ignored (as the contract says), but must
/// still be well formed.
fn body_id(in_body: String, in_path: String) -> Result<String, Problem> {
    if in_body.is_empty() || diandan_workflows::validate::id("id", &in_body).is_ok() {
        Ok(in_path)
    } else {
        Err(Problem::bad_request(
            Some("id".into()),
            "id 只能包含字母、数字、- 和 _（可省略：以路径中的编号为准）",
        ))
    }
}

/// An audit search's filter, as query parameters.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// A station, institute or centre (its whole subtree); empty for your own node.
    node_id: String,
    /// A category code; empty for any.
    category: String,
    /// First day placed, YYYY-MM-DD.
    from_day: String,
    /// Last day placed, YYYY-MM-DD.
    to_day: String,
    /// Lowest rating, 1–5 (0: no bound).
    min_rating: u32,
    /// Highest rating, 1–5 (0: no bound).
    max_rating: u32,
    /// The volunteer who accepted.
    volunteer_id: String,
    /// One status; empty for every finished one (completed, reviewed, closed).
    status: String,
    /// Page size, 1–500 (default 50).
    limit: u32,
    /// The previous page's `next_after`.
    after: String,
    /// Wait until the read model reflects this position.
    min_position: u64,
}

/// An export's filter and format.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ExportParams {
    /// `csv` (UTF-8 with BOM, opens in Excel; default) or `json` (an array).
    format: String,
    /// A station, institute or centre (its whole subtree); empty for your own node.
    node_id: String,
    /// A category code; empty for any.
    category: String,
    /// First day placed, YYYY-MM-DD.
    from_day: String,
    /// Last day placed, YYYY-MM-DD.
    to_day: String,
    /// Lowest rating, 1–5 (0: no bound).
    min_rating: u32,
    /// Highest rating, 1–5 (0: no bound).
    max_rating: u32,
    /// The volunteer who accepted.
    volunteer_id: String,
    /// One status; empty for every finished one.
    status: String,
}

/// 审计查询: finished orders of a subtree by station, category, dates, rating and volunteer,
/// newest first, a page at a time (no contact data).
#[utoipa::path(get, path = "/api/v1/audit/orders", params(AuditParams),
    responses((status = 200, body = pb::SearchOrdersResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn search_orders(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::SearchOrdersResponse> {
    let p: AuditParams = query(raw)?;
    let request = pb::SearchOrdersRequest {
        filter: Some(pb::AuditFilter {
            node_id: p.node_id,
            category: p.category,
            from_day: p.from_day,
            to_day: p.to_day,
            min_rating: p.min_rating,
            max_rating: p.max_rating,
            volunteer_id: p.volunteer_id,
            status: p.status,
        }),
        limit: p.limit,
        after: p.after,
        min_position: p.min_position,
    };
    let reply = clients
        .audit()
        .search_orders(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Json,
}

/// The CSV columns (Chinese headers: the file is for people, opened in Excel).
const CSV_HEADER: [&str; 17] = [
    "订单编号",
    "站点编号",
    "站点",
    "服务类别",
    "状态",
    "下单时间",
    "派单时间",
    "接单时间",
    "办结时间",
    "服务队编号",
    "服务队",
    "志愿者编号",
    "评分",
    "评价",
    "服务时长（分钟）",
    "按时办结",
    "诉求",
];

/// A cell Excel would read as a formula (`=`, `+`, `-`, `@`, tab, CR) is written with a
/// leading `'`: residents' text must never run in an auditor's spreadsheet.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

fn csv_rows(rows: &[pb::AuditRow]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 256));
    for r in rows {
        let category = Category::parse(&r.category).map_or(r.category.as_str(), |c| c.name_zh());
        let rating = if r.rating == 0 {
            String::new()
        } else {
            r.rating.to_string()
        };
        let minutes = r.service_minutes.to_string();
        let record: [&str; 17] = [
            &r.order_id,
            &r.station_id,
            &cell(&r.station_name),
            category,
            &r.status,
            &r.placed_at,
            &r.dispatched_at,
            &r.accepted_at,
            &r.completed_at,
            &r.team_id,
            &cell(&r.team_name),
            &r.volunteer_id,
            &rating,
            &cell(&r.review_comment),
            &minutes,
            if r.on_time { "是" } else { "否" },
            &cell(&r.description),
        ];
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(record);
    }
    writer.into_inner().unwrap_or_default()
}

fn json_rows(rows: &[pb::AuditRow], first: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * 384);
    for row in rows {
        out.extend_from_slice(if *first { b"\n" } else { b",\n" });
        *first = false;
        // A message of plain fields always serializes.
        let _ = serde_json::to_writer(&mut out, row);
    }
    out
}

/// 审计导出: every order the search matches, streamed — CSV (UTF-8 with BOM, so Excel reads the
/// Chinese) or a JSON array. Memory stays constant however many rows: the services read and
/// send 500 rows at a time, as fast as the client takes them.
#[utoipa::path(get, path = "/api/v1/audit/orders/export", params(ExportParams),
    responses((status = 200, description = "the rows: CSV, UTF-8 with BOM (`format=csv`), or a JSON array of AuditRow (`format=json`)",
               content((String = "text/csv"), (Vec<pb::AuditRow> = "application/json"))),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn export_orders(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let p: ExportParams = query(raw)?;
    let format = match p.format.as_str() {
        "" | "csv" => Format::Csv,
        "json" => Format::Json,
        other => {
            return Err(Problem::bad_request(
                Some("format".into()),
                format!("不支持的导出格式「{other}」，可选 csv 或 json"),
            ))
        }
    };
    let request = pb::ExportOrdersRequest {
        filter: Some(pb::AuditFilter {
            node_id: p.node_id,
            category: p.category,
            from_day: p.from_day,
            to_day: p.to_day,
            min_rating: p.min_rating,
            max_rating: p.max_rating,
            volunteer_id: p.volunteer_id,
            status: p.status,
        }),
    };
    // Refusals (scope, filter) come before the first row: they are problem responses.
    let chunks = clients
        .audit()
        .export_orders(grpc_open_ended(&headers, request)?)
        .await?
        .into_inner();
    let head: Bytes = match format {
        Format::Csv => {
            let mut head = "\u{feff}".as_bytes().to_vec();
            let mut writer = csv::Writer::from_writer(Vec::new());
            let _ = writer.write_record(CSV_HEADER);
            head.extend(writer.into_inner().unwrap_or_default());
            head.into()
        }
        Format::Json => Bytes::from_static(b"["),
    };
    let tail: Bytes = match format {
        Format::Csv => Bytes::new(),
        Format::Json => Bytes::from_static(b"\n]\n"),
    };
    let mut first = true;
    let rows = chunks.map(move |chunk| match chunk {
        Ok(chunk) => Ok(Bytes::from(match format {
            Format::Csv => csv_rows(&chunk.orders),
            Format::Json => json_rows(&chunk.orders, &mut first),
        })),
        // A failure midway cannot change the status any more: the body is cut off (the
        // client sees an incomplete transfer), never a short file that looks whole.
        Err(status) => Err(std::io::Error::other(status.message().to_owned())),
    });
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head) })
        .chain(rows)
        .chain(futures::stream::once(async move { Ok(tail) }));
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+8))
        .date();
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let filename = format!(
        "orders-{:04}{:02}{:02}.{extension}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Which volunteers to list.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct VolunteerParams {
    /// Volunteers of teams at this node or below; empty for your own node.
    node_id: String,
    /// Also list deactivated (停用) volunteers.
    include_inactive: bool,
    /// Wait until the read model reflects this position.
    min_position: u64,
}

/// 志愿者: the volunteers in teams of a node or below.
#[utoipa::path(get, path = "/api/v1/volunteers", params(VolunteerParams),
    responses((status = 200, body = pb::ListVolunteersResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_volunteers(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::ListVolunteersResponse> {
    let p: VolunteerParams = query(raw)?;
    let request = pb::ListVolunteersRequest {
        node_id: p.node_id,
        include_inactive: p.include_inactive,
        min_position: p.min_position,
    };
    let reply = clients
        .organization()
        .list_volunteers(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 修改志愿者: a volunteer's name, teams and skills (all of them, as they should now be).
#[utoipa::path(put, path = "/api/v1/volunteers/{id}", request_body = pb::UpdateVolunteerRequest,
    params(("id" = String, Path, description = "志愿者编号")),
    responses((status = 200, body = pb::UpdateVolunteerResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn update_volunteer(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::UpdateVolunteerResponse> {
    let id = path_id(id, "id")?;
    let mut request: pb::UpdateVolunteerRequest = json_body(body)?;
    request.id = body_id(request.id, id)?;
    let reply = clients
        .organization()
        .update_volunteer(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 停用/启用志愿者: `{"active": false, "reason": "…"}` deactivates a volunteer (they accept
/// no order until reactivated); `{"active": true}` reactivates them. Saying what already is
/// changes nothing (`position` 0).
#[utoipa::path(post, path = "/api/v1/volunteers/{id}/active", request_body = pb::SetVolunteerActiveRequest,
    params(("id" = String, Path, description = "志愿者编号")),
    responses((status = 200, body = pb::SetVolunteerActiveResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn set_volunteer_active(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::SetVolunteerActiveResponse> {
    let id = path_id(id, "id")?;
    let mut request: pb::SetVolunteerActiveRequest = json_body(body)?;
    request.id = body_id(request.id, id)?;
    let reply = clients
        .organization()
        .set_volunteer_active(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// How to take a roster.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ImportParams {
    /// Check every row and report, registering no one.
    dry_run: bool,
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// 批量导入志愿者: a roster sheet as the body — an Excel workbook (.xlsx, first sheet) or UTF-8
/// CSV — with a header row 编号, 姓名, 手机号, 服务队 (team ids, separated by ；), 技能
/// (optional). Every row is checked first: any refused row → 422 listing them all, and no one
/// is registered. Send an `Idempotency-Key`: a retry of the same import is answered, never
/// applied twice.
#[utoipa::path(post, path = "/api/v1/volunteers/import", params(ImportParams,
        ("Idempotency-Key" = Option<String>, Header, description = "重试时使用同一值，导入只执行一次")),
    request_body(content = Vec<u8>, content_type = "text/csv",
        description = "the sheet: text/csv, or application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    responses((status = 200, body = pb::ImportVolunteersResponse),
              (status = 422, body = Problem, content_type = "application/problem+json",
               description = "refused rows, in `errors`; nothing was imported"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn import_volunteers(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let p: ImportParams = query(raw)?;
    let sheet = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!("文件过大（最多 {} MB）", MAX_SHEET_BYTES / 1024 / 1024),
            )
            .with_field("body")
        } else {
            Problem::bad_request(Some("body".into()), "文件无法读取")
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let format = match media.as_str() {
        XLSX => "xlsx",
        "text/csv" | "application/csv" => "csv",
        _ => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "请上传 .xlsx 或 .csv 文件（Content-Type 须为 text/csv 或 xlsx 的类型）",
            )
            .with_field("Content-Type"))
        }
    };
    let request = pb::ImportVolunteersRequest {
        sheet: sheet.to_vec(),
        format: format.to_owned(),
        dry_run: p.dry_run,
    };
    let reply = clients
        .organization()
        .import_volunteers(grpc(&headers, request)?)
        .await?
        .into_inner();
    if !reply.errors.is_empty() {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-rows",
            format!(
                "共 {} 行，其中 {} 处有误，未导入任何志愿者",
                reply.rows,
                reply.errors.len()
            ),
        )
        .with_field("sheet");
        problem.errors = Some(Box::new(reply.errors));
        return Err(problem);
    }
    Ok(Json(reply).into_response())
}
