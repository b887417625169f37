//! 志愿时长、积分与爱心超市 over HTTP: one route → one `LedgerService` call.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use diandan_proto::v1 as pb;

use crate::input::{json_body, path_id, query};
use crate::problem::Problem;
use crate::routes::{grpc, Clients, ReadParams, Reply};

/// A POST whose path names the thing (`{id}` → `$field`) and whose body says the rest.
macro_rules! post_on {
    ($(#[$doc:meta])* $name:ident, $path:literal, $what:literal, $field:ident, $method:ident,
     $request:ty, $response:ty, $status:expr) => {
        $(#[$doc])*
        #[utoipa::path(post, path = $path, request_body = $request,
            params(("id" = String, Path, description = $what),
                   ("Idempotency-Key" = Option<String>, Header, description = "重试时使用同一值，命令只执行一次")),
            responses((status = $status, body = $response),
                      (status = "4XX", body = Problem, content_type = "application/problem+json")),
            security(("bearer" = [])))]
        pub(crate) async fn $name(
            State(clients): State<Clients>,
            id: Result<Path<String>, PathRejection>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<(StatusCode, Json<$response>), Problem> {
            let id = path_id(id, "id")?;
            let mut request: $request = json_body(body)?;
            // The body's copy of the id is ignored, but must be an id (or empty), as documented.
            if !request.$field.is_empty()
                && diandan_workflows::validate::id(stringify!($field), &request.$field).is_err()
            {
                return Err(Problem::bad_request(
                    Some(stringify!($field).into()),
                    "编号只能包含字母、数字、- 和 _，最多 64 个字符（可留空：以路径中的编号为准）",
                ));
            }
            request.$field = id;
            let reply = clients.ledger().$method(grpc(&headers, request)?).await?;
            Ok((StatusCode::from_u16($status).expect("a status"), Json(reply.into_inner())))
        }
    };
}

/// The volunteer a path names: `me` is the caller.
fn volunteer_of(id: String) -> String {
    if id == "me" {
        String::new()
    } else {
        id
    }
}

/// 我的时长/积分: hours, star rank, points, services and redemptions (`me`: your own).
#[utoipa::path(get, path = "/api/v1/volunteers/{id}/record",
    params(("id" = String, Path, description = "志愿者编号；me 表示本人"), ReadParams),
    responses((status = 200, body = pb::GetVolunteerRecordResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_volunteer_record(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::GetVolunteerRecordResponse> {
    let volunteer_id = volunteer_of(path_id(id, "id")?);
    let params: ReadParams = query(raw)?;
    let request = pb::GetVolunteerRecordRequest {
        volunteer_id,
        min_position: params.min_position,
    };
    let reply = clients
        .ledger()
        .get_volunteer_record(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RankingsParams {
    /// volunteer (default) or team.
    by: String,
    /// At most this many (default 50, at most 200).
    limit: u32,
}

/// 评优排行: a subtree's volunteers or teams by credited hours.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/rankings",
    params(("id" = String, Path, description = "组织节点编号"), RankingsParams),
    responses((status = 200, body = pb::ListRankingsResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_rankings(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::ListRankingsResponse> {
    let node_id = path_id(id, "id")?;
    let params: RankingsParams = query(raw)?;
    let request = pb::ListRankingsRequest {
        node_id,
        by: params.by,
        limit: params.limit,
    };
    let reply = clients
        .ledger()
        .list_rankings(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 待确认时长: services whose check-in was far from the order's place, in a subtree.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/hours/pending",
    params(("id" = String, Path, description = "组织节点编号"), ReadParams),
    responses((status = 200, body = pb::ListPendingHoursResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_pending_hours(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::ListPendingHoursResponse> {
    let node_id = path_id(id, "id")?;
    let params: ReadParams = query(raw)?;
    let request = pb::ListPendingHoursRequest {
        node_id,
        min_position: params.min_position,
    };
    let reply = clients
        .ledger()
        .list_pending_hours(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

post_on!(
    /// 确认/驳回时长: the station head decides a far check-in's hours.
    review_hours, "/api/v1/volunteers/{id}/hours/review", "志愿者编号", volunteer_id,
    review_hours, pb::ReviewHoursRequest, pb::ReviewHoursResponse, 200);
post_on!(
    /// 更正/补录时长: a correction of an order's hours (with `order_id`), or hours added by
    /// hand (without); always with a reason.
    adjust_hours, "/api/v1/volunteers/{id}/hours/adjust", "志愿者编号", volunteer_id,
    adjust_hours, pb::AdjustHoursRequest, pb::AdjustHoursResponse, 200);

/// 爱心超市: what you may redeem (volunteers), or a node's catalogue (staff).
#[utoipa::path(get, path = "/api/v1/shop/items", params(pb::ListShopItemsRequest),
    responses((status = 200, body = pb::ListShopItemsResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_shop_items(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::ListShopItemsResponse> {
    let request: pb::ListShopItemsRequest = query(raw)?;
    let reply = clients
        .ledger()
        .list_shop_items(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 上架: list goods at a node's love supermarket.
#[utoipa::path(post, path = "/api/v1/shop/items", request_body = pb::AddShopItemRequest,
    responses((status = 201, body = pb::AddShopItemResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn add_shop_item(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<pb::AddShopItemResponse>), Problem> {
    let request: pb::AddShopItemRequest = json_body(body)?;
    let reply = clients
        .ledger()
        .add_shop_item(grpc(&headers, request)?)
        .await?;
    Ok((StatusCode::CREATED, Json(reply.into_inner())))
}

post_on!(
    /// 补货: add stock to an item.
    restock_shop_item, "/api/v1/shop/items/{id}/restock", "商品编号", item_id,
    restock_shop_item, pb::RestockShopItemRequest, pb::RestockShopItemResponse, 200);
post_on!(
    /// 兑换: reserve goods with points; the answer carries the one-time code and its QR code
    /// (409 when the points or the stock do not suffice).
    reserve_shop_item, "/api/v1/shop/items/{id}/reserve", "商品编号", item_id,
    reserve_shop_item, pb::ReserveShopItemRequest, pb::ReserveShopItemResponse, 201);

/// A redemption: its code again, for its volunteer, while it is open.
#[utoipa::path(get, path = "/api/v1/shop/redemptions/{id}",
    params(("id" = String, Path, description = "兑换编号")),
    responses((status = 200, body = pb::GetRedemptionResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_redemption(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Reply<pb::GetRedemptionResponse> {
    let request = pb::GetRedemptionRequest {
        redemption_id: path_id(id, "id")?,
    };
    let reply = clients
        .ledger()
        .get_redemption(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

post_on!(
    /// 核销: the shop checks the one-time code and hands the goods over (a reused, expired or
    /// wrong code is refused).
    hand_over_redemption, "/api/v1/shop/redemptions/{id}/hand-over", "兑换编号", redemption_id,
    hand_over_redemption, pb::HandOverRedemptionRequest, pb::HandOverRedemptionResponse, 200);
post_on!(
    /// 取消兑换: the points and the stock come back.
    cancel_redemption, "/api/v1/shop/redemptions/{id}/cancel", "兑换编号", redemption_id,
    cancel_redemption, pb::CancelRedemptionRequest, pb::CancelRedemptionResponse, 200);
