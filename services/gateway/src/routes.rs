//! Routes: one HTTP call → one gRPC call.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};

use diandan_proto::v1 as pb;

use crate::input::{json_body, path_id, query, MAX_BODY_BYTES};
use crate::problem::Problem;

/// The services, shared by every request (axum clones its state per request: one count,
/// not every upstream).
pub(crate) type Clients = std::sync::Arc<diandan_proto::Upstreams>;

/// How long a gRPC call behind a request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers forwarded to the services as gRPC metadata.
const FORWARDED_HEADERS: [&str; 4] = [
    "authorization",
    "idempotency-key",
    "x-correlation-id",
    CLIENT_ADDRESS,
];

/// The client's address as this gateway saw it, forwarded for per-address sign-in lockouts
/// (set by the gateway itself; a client's own value is replaced).
const CLIENT_ADDRESS: &str = "x-diandan-client-address";

/// Wraps a message for a gRPC call, forwarding the caller's headers.
pub(crate) fn grpc<T>(headers: &HeaderMap, message: T) -> Result<tonic::Request<T>, Problem> {
    let mut request = grpc_open_ended(headers, message)?;
    request.set_timeout(CALL_TIMEOUT);
    Ok(request)
}

/// [`grpc`] without a deadline: for a stream that lasts as long as the client listens.
pub(crate) fn grpc_open_ended<T>(
    headers: &HeaderMap,
    message: T,
) -> Result<tonic::Request<T>, Problem> {
    let mut request = tonic::Request::new(message);
    // The trace continues in the service: this request's span is the parent.
    for (name, value) in diandan_telemetry::propagation::current_headers() {
        if let (Ok(name), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
            value.parse(),
        ) {
            request.metadata_mut().insert(name, value);
        }
    }
    for name in FORWARDED_HEADERS {
        if let Some(value) = headers.get(name) {
            let value = value
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    Problem::bad_request(Some(name.to_owned()), format!("请求头 {name} 含非法字符"))
                })?;
            request.metadata_mut().insert(name, value);
        }
    }
    Ok(request)
}

pub(crate) type Reply<T> = Result<Json<T>, Problem>;

/// A POST on one order: the path names the order, the body the rest.
macro_rules! order_command {
    ($(#[$doc:meta])* $name:ident, $path:literal, $client:ident, $method:ident, $request:ty) => {
        $(#[$doc])*
        #[utoipa::path(post, path = $path, request_body = $request,
            params(("id" = String, Path, description = "订单编号"),
                   ("Idempotency-Key" = Option<String>, Header, description = "重试时使用同一值，命令只执行一次")),
            responses((status = 200, body = pb::CommandAck),
                      (status = "4XX", body = Problem, content_type = "application/problem+json")),
            security(("bearer" = [])))]
        pub(crate) async fn $name(
            State(clients): State<Clients>,
            id: Result<Path<String>, PathRejection>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Reply<pb::CommandAck> {
            let id = path_id(id, "id")?;
            let mut request: $request = json_body(body)?;
            request.order_id = id;
            let reply = clients.$client().$method(grpc(&headers, request)?).await?;
            // Over HTTP a command's answer is its acknowledgement itself.
            Ok(Json(reply.into_inner().ack.unwrap_or_default()))
        }
    };
}

order_command!(
    /// 取消: the requester withdraws an order nobody has accepted yet.
    cancel_order, "/api/v1/orders/{id}/cancel", orders, cancel_order, pb::CancelOrderRequest);
order_command!(
    /// 审单: accept into the queue or reject with a reason.
    triage_order, "/api/v1/orders/{id}/triage", dispatch, triage_order, pb::TriageOrderRequest);
order_command!(
    /// 派单: dispatch to a team or helper unit.
    dispatch_order, "/api/v1/orders/{id}/dispatch", dispatch, dispatch_order, pb::DispatchOrderRequest);
order_command!(
    /// 接单: accept for your team.
    accept_order, "/api/v1/orders/{id}/accept", volunteers, accept_order, pb::AcceptOrderRequest);
order_command!(
    /// 退单: decline, or return after accepting.
    decline_order, "/api/v1/orders/{id}/decline", volunteers, decline_order, pb::DeclineOrderRequest);
order_command!(
    /// 签到
    check_in, "/api/v1/orders/{id}/check-in", volunteers, check_in, pb::CheckInRequest);
order_command!(
    /// 签退
    check_out, "/api/v1/orders/{id}/check-out", volunteers, check_out, pb::CheckOutRequest);
order_command!(
    /// 办结: close-out note and evidence.
    complete_order, "/api/v1/orders/{id}/complete", volunteers, complete_order, pb::CompleteOrderRequest);
order_command!(
    /// 延期申请: the volunteer asks to move a running deadline, before it passes.
    request_extension, "/api/v1/orders/{id}/extension", volunteers, request_extension, pb::RequestExtensionRequest);
order_command!(
    /// 审批延期: the station head approves or denies the pending request.
    decide_extension, "/api/v1/orders/{id}/extension/decision", dispatch, decide_extension, pb::DecideExtensionRequest);
order_command!(
    /// 评单: 1–5 stars and a comment, by the requester.
    review_order, "/api/v1/orders/{id}/review", reviews, review_order, pb::ReviewOrderRequest);
order_command!(
    /// 归档: close a reviewed order.
    close_order, "/api/v1/orders/{id}/close", reviews, close_order, pb::CloseOrderRequest);
order_command!(
    /// 认领: take a seat of a published wish or activity (409 已满员 when none is left).
    claim_order, "/api/v1/orders/{id}/claim", volunteers, claim_order, pb::ClaimOrderRequest);
order_command!(
    /// 放弃认领: give the seat back, before checking in.
    unclaim_order, "/api/v1/orders/{id}/unclaim", volunteers, unclaim_order, pb::UnclaimOrderRequest);
order_command!(
    /// 合并: close a duplicate at triage; its requester follows the earlier order `into`.
    merge_order, "/api/v1/orders/{id}/merge", dispatch, merge_order, pb::MergeOrderRequest);
order_command!(
    /// 返工: after a review of at most two stars, send the order back to a team.
    rework_order, "/api/v1/orders/{id}/rework", dispatch, rework_order, pb::ReworkOrderRequest);
order_command!(
    /// 回访: after a review of at most two stars, record the follow-up.
    follow_up_order, "/api/v1/orders/{id}/follow-up", dispatch, follow_up_order, pb::FollowUpOrderRequest);

/// 可认领: published wishes and activities the calling volunteer may claim, newest first.
#[utoipa::path(get, path = "/api/v1/orders/claimable", params(pb::ListClaimableOrdersRequest),
    responses((status = 200, body = pb::ListClaimableOrdersResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_claimable_orders(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::ListClaimableOrdersResponse> {
    let request: pb::ListClaimableOrdersRequest = query(raw)?;
    let reply = clients
        .volunteers()
        .list_claimable_orders(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// A signed-in session as HTTP answers it.
fn session_body(session: Option<pb::Session>) -> Reply<pb::Session> {
    session.map(Json).ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "登录服务暂不可用",
        )
    })
}

/// 登录: staff sign in with a username and password.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = pb::LoginRequest,
    responses((status = 200, body = pb::Session),
              (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn login(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::Session> {
    let request: pb::LoginRequest = json_body(body)?;
    let reply = clients.identity().login(grpc(&headers, request)?).await?;
    session_body(reply.into_inner().session)
}

/// 微信登录: a mini-program user signs in with the code from `wx.login`.
#[utoipa::path(post, path = "/api/v1/auth/wechat", request_body = pb::WechatLoginRequest,
    responses((status = 200, body = pb::WechatLoginResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn wechat_login(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::WechatLoginResponse> {
    let request: pb::WechatLoginRequest = json_body(body)?;
    let reply = clients
        .identity()
        .wechat_login(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// A new access token for a refresh token (which rotates).
#[utoipa::path(post, path = "/api/v1/auth/refresh", request_body = pb::RefreshSessionRequest,
    responses((status = 200, body = pb::Session),
              (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn refresh_session(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::Session> {
    let request: pb::RefreshSessionRequest = json_body(body)?;
    let reply = clients
        .identity()
        .refresh_session(grpc(&headers, request)?)
        .await?;
    session_body(reply.into_inner().session)
}

/// 退出: revoke the session of a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/logout", request_body = pb::LogoutRequest,
    responses((status = 200, body = pb::LogoutResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn logout(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::LogoutResponse> {
    let request: pb::LogoutRequest = json_body(body)?;
    let reply = clients.identity().logout(grpc(&headers, request)?).await?;
    Ok(Json(reply.into_inner()))
}

/// 绑定手机号: bind your mobile number with the code from the `getPhoneNumber` button.
#[utoipa::path(post, path = "/api/v1/auth/wechat/phone", request_body = pb::BindPhoneRequest,
    responses((status = 200, body = pb::BindPhoneResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn bind_phone(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::BindPhoneResponse> {
    let request: pb::BindPhoneRequest = json_body(body)?;
    let reply = clients
        .identity()
        .bind_phone(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 修改密码: change your own password.
#[utoipa::path(post, path = "/api/v1/auth/password", request_body = pb::ChangePasswordRequest,
    responses((status = 200, body = pb::ChangePasswordResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn change_password(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::ChangePasswordResponse> {
    let request: pb::ChangePasswordRequest = json_body(body)?;
    let reply = clients
        .identity()
        .change_password(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 开通账号: a staff account at a node of your subtree.
#[utoipa::path(post, path = "/api/v1/accounts", request_body = pb::CreateAccountRequest,
    responses((status = 201, body = pb::CreateAccountResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create_account(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<pb::CreateAccountResponse>), Problem> {
    let request: pb::CreateAccountRequest = json_body(body)?;
    let reply = clients
        .accounts()
        .create_account(grpc(&headers, request)?)
        .await?;
    Ok((StatusCode::CREATED, Json(reply.into_inner())))
}

/// 重置密码: set a new password for an account of your subtree.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/password-reset",
    request_body = pb::ResetPasswordRequest,
    params(("id" = String, Path, description = "账号编号")),
    responses((status = 200, body = pb::ResetPasswordResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn reset_password(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::ResetPasswordResponse> {
    let id = path_id(id, "id")?;
    let mut request: pb::ResetPasswordRequest = json_body(body)?;
    request.account_id = id;
    let reply = clients
        .accounts()
        .reset_password(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// Development sign-in: a token for a role and an org node.
#[utoipa::path(post, path = "/api/v1/dev/login", request_body = pb::DevLoginRequest,
    responses((status = 200, body = pb::DevLoginResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn dev_login(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<pb::DevLoginResponse> {
    let request: pb::DevLoginRequest = json_body(body)?;
    let reply = clients
        .identity()
        .dev_login(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 点单: place an order.
#[utoipa::path(post, path = "/api/v1/orders", request_body = pb::PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "重试时使用同一值，订单只创建一次")),
    responses((status = 201, body = pb::CommandAck),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn place_order(
    State(clients): State<Clients>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<pb::CommandAck>), Problem> {
    let request: pb::PlaceOrderRequest = json_body(body)?;
    let reply = clients
        .orders()
        .place_order(grpc(&headers, request)?)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(reply.into_inner().ack.unwrap_or_default()),
    ))
}

/// The caller's orders (a resident's own, a volunteer's offers and tasks, a head's subtree).
#[utoipa::path(get, path = "/api/v1/orders", params(pb::ListMyOrdersRequest),
    responses((status = 200, body = pb::ListMyOrdersResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_my_orders(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::ListMyOrdersResponse> {
    let request: pb::ListMyOrdersRequest = query(raw)?;
    let reply = clients
        .orders()
        .list_my_orders(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ReadParams {
    /// Wait until the read model reflects this position (from a command's reply).
    pub(crate) min_position: u64,
}

/// One order, as the caller may see it.
#[utoipa::path(get, path = "/api/v1/orders/{id}",
    params(("id" = String, Path, description = "订单编号"), ReadParams),
    responses((status = 200, body = pb::OrderView),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_order(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::OrderView> {
    let id = path_id(id, "id")?;
    let params: ReadParams = query(raw)?;
    // Positions are int64 in the document (and in every store); a larger one names nothing.
    if i64::try_from(params.min_position).is_err() {
        return Err(Problem::bad_request(
            Some("min_position".to_owned()),
            "min_position 超出范围（最大 9223372036854775807）".to_owned(),
        ));
    }
    let request = pb::GetOrderRequest {
        order_id: id,
        min_position: params.min_position,
    };
    let reply = clients.orders().get_order(grpc(&headers, request)?).await?;
    // Over HTTP the answer is the order itself.
    reply
        .into_inner()
        .order
        .map(Json)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "not-found", "订单不存在"))
}

/// Every event of one order: who did what, when.
#[utoipa::path(get, path = "/api/v1/orders/{id}/history",
    params(("id" = String, Path, description = "订单编号")),
    responses((status = 200, body = pb::GetOrderHistoryResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_order_history(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Reply<pb::GetOrderHistoryResponse> {
    let id = path_id(id, "id")?;
    let request = pb::GetOrderHistoryRequest { order_id: id };
    let reply = clients
        .orders()
        .get_order_history(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct QueueParams {
    limit: u32,
    min_position: u64,
}

/// 派单建议: ranked teams for an order by the dispatch rules, with their reasons.
#[utoipa::path(get, path = "/api/v1/orders/{id}/suggestions",
    params(("id" = String, Path, description = "订单编号")),
    responses((status = 200, body = pb::SuggestTeamsResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn suggest_teams(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Reply<pb::SuggestTeamsResponse> {
    let id = path_id(id, "id")?;
    let request = pb::SuggestTeamsRequest { order_id: id };
    let reply = clients
        .dispatch()
        .suggest_teams(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// 待办: orders of a node's subtree waiting for the station — to triage, to dispatch, to be
/// accepted, or with an extension request to decide.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/queue",
    params(("id" = String, Path, description = "组织节点编号"), QueueParams),
    responses((status = 200, body = pb::StationQueueResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn station_queue(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::StationQueueResponse> {
    let id = path_id(id, "id")?;
    let params: QueueParams = query(raw)?;
    let request = pb::StationQueueRequest {
        node_id: id,
        limit: params.limit,
        min_position: params.min_position,
    };
    let reply = clients
        .dispatch()
        .station_queue(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WatchParams {
    /// At most this many orders per snapshot, 1–500 (default 50).
    limit: u32,
}

/// 派单台, live: the queue as Server-Sent Events — an `queue` event with the whole queue at
/// once (`{orders, position}`, as `GET …/queue` answers), then again each time it changes;
/// comments keep the connection open. An `error` event (problem details) ends it, e.g. when
/// the access token expires: sign in again and reconnect.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/queue/events",
    params(("id" = String, Path, description = "组织节点编号"), WatchParams),
    responses((status = 200, content_type = "text/event-stream",
               description = "`queue` events carrying a StationQueueResponse-shaped JSON"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn watch_queue(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    Problem,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    let id = path_id(id, "id")?;
    let params: WatchParams = query(raw)?;
    let request = pb::WatchQueueRequest {
        node_id: id,
        limit: params.limit,
    };
    // The first answer decides the status: a refusal is a problem response, not a stream.
    let mut snapshots = clients
        .dispatch()
        .watch_queue(grpc_open_ended(&headers, request)?)
        .await?
        .into_inner();
    let first = snapshots.message().await?;
    let events = futures::stream::iter(first.map(Ok))
        .chain(snapshots)
        .map(|item| {
            Ok(match item {
                Ok(snapshot) => Event::default()
                    .event("queue")
                    .json_data(&snapshot)
                    .unwrap_or_else(|_| Event::default().event("queue")),
                Err(status) => Event::default()
                    .event("error")
                    .json_data(Problem::from(status))
                    .unwrap_or_else(|_| Event::default().event("error")),
            })
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct StatsParams {
    /// First day, YYYY-MM-DD (China Standard Time).
    from_day: String,
    /// Last day, YYYY-MM-DD.
    to_day: String,
    min_position: u64,
}

/// Statistics of a station, institute or centre (its whole subtree).
#[utoipa::path(get, path = "/api/v1/nodes/{id}/stats",
    params(("id" = String, Path, description = "组织节点编号"), StatsParams),
    responses((status = 200, body = pb::StationStatsResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn station_stats(
    State(clients): State<Clients>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::StationStatsResponse> {
    let id = path_id(id, "id")?;
    let params: StatsParams = query(raw)?;
    let request = pb::StationStatsRequest {
        node_id: id,
        from_day: params.from_day,
        to_day: params.to_day,
        min_position: params.min_position,
    };
    let reply = clients
        .stats()
        .station_stats(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// The organisation tree (or a subtree).
#[utoipa::path(get, path = "/api/v1/org", params(pb::GetOrgTreeRequest),
    responses((status = 200, body = pb::GetOrgTreeResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_org_tree(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::GetOrgTreeResponse> {
    let request: pb::GetOrgTreeRequest = query(raw)?;
    let reply = clients
        .organization()
        .get_org_tree(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

/// Teams and helper units at a node or below.
#[utoipa::path(get, path = "/api/v1/teams", params(pb::ListTeamsRequest),
    responses((status = 200, body = pb::ListTeamsResponse),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_teams(
    State(clients): State<Clients>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply<pb::ListTeamsResponse> {
    let request: pb::ListTeamsRequest = query(raw)?;
    let reply = clients
        .organization()
        .list_teams(grpc(&headers, request)?)
        .await?;
    Ok(Json(reply.into_inner()))
}

macro_rules! register {
    ($(#[$doc:meta])* $name:ident, $path:literal, $method:ident, $request:ty, $response:ty) => {
        $(#[$doc])*
        #[utoipa::path(post, path = $path, request_body = $request,
            responses((status = 201, body = $response),
                      (status = "4XX", body = Problem, content_type = "application/problem+json")),
            security(("bearer" = [])))]
        pub(crate) async fn $name(
            State(clients): State<Clients>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<(StatusCode, Json<$response>), Problem> {
            let request: $request = json_body(body)?;
            let reply = clients.organization().$method(grpc(&headers, request)?).await?;
            Ok((StatusCode::CREATED, Json(reply.into_inner())))
        }
    };
}

register!(
    /// Register an org node (institute, station, point) under one you head.
    register_org_node, "/api/v1/org/nodes", register_org_node, pb::RegisterOrgNodeRequest,
    pb::RegisterOrgNodeResponse);
register!(
    /// Register a volunteer team or helper unit.
    register_team, "/api/v1/teams", register_team, pb::RegisterTeamRequest,
    pb::RegisterTeamResponse);
register!(
    /// Register a volunteer in teams.
    register_volunteer, "/api/v1/volunteers", register_volunteer, pb::RegisterVolunteerRequest,
    pb::RegisterVolunteerResponse);

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "没有这个接口")
}

async fn method_not_allowed(method: axum::http::Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("此接口不支持 {method} 方法"),
    )
}

/// Refuses oversized paths, query strings and headers before anything else reads them.
async fn within_limits(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Err(problem) = crate::input::check_request(request.uri(), request.headers()) {
        return problem.into_response();
    }
    // The address is the one this gateway saw, never one a client claims.
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let headers = request.headers_mut();
    headers.remove(CLIENT_ADDRESS);
    if let Some(value) = peer.and_then(|p| p.parse().ok()) {
        headers.insert(CLIENT_ADDRESS, value);
    }
    next.run(request).await
}

async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus metrics of this process.
pub(crate) async fn prometheus_metrics() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            diandan_telemetry::metrics::PROMETHEUS_CONTENT_TYPE,
        )],
        diandan_telemetry::metrics::render_prometheus(),
    )
}

/// Every request gets a span, child of the caller's trace context when it sends one.
async fn traced(
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let span = tracing::info_span!(
        "http.request",
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty
    );
    let headers = request.headers().clone();
    diandan_telemetry::propagation::set_parent(&span, |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    diandan_telemetry::metrics::http_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

pub(crate) fn router(
    upstreams: diandan_proto::Upstreams,
    limiters: crate::limits::Limiters,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus_metrics))
        .route("/api/openapi.json", get(crate::openapi::serve))
        .route("/api/v1/dev/login", post(dev_login))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/wechat", post(wechat_login))
        .route("/api/v1/auth/refresh", post(refresh_session))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/password", post(change_password))
        .route("/api/v1/auth/wechat/phone", post(bind_phone))
        .route("/api/v1/accounts", post(create_account))
        .route("/api/v1/accounts/{id}/password-reset", post(reset_password))
        .route("/api/v1/orders", post(place_order).get(list_my_orders))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/history", get(get_order_history))
        .route("/api/v1/orders/{id}/suggestions", get(suggest_teams))
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .route("/api/v1/orders/{id}/triage", post(triage_order))
        .route("/api/v1/orders/{id}/dispatch", post(dispatch_order))
        .route("/api/v1/orders/{id}/accept", post(accept_order))
        .route("/api/v1/orders/{id}/decline", post(decline_order))
        .route("/api/v1/orders/{id}/check-in", post(check_in))
        .route("/api/v1/orders/{id}/check-out", post(check_out))
        .route("/api/v1/orders/{id}/complete", post(complete_order))
        .route("/api/v1/orders/{id}/review", post(review_order))
        .route("/api/v1/orders/{id}/extension", post(request_extension))
        .route(
            "/api/v1/orders/{id}/extension/decision",
            post(decide_extension),
        )
        .route("/api/v1/orders/{id}/close", post(close_order))
        .route("/api/v1/orders/claimable", get(list_claimable_orders))
        .route("/api/v1/orders/{id}/claim", post(claim_order))
        .route("/api/v1/orders/{id}/unclaim", post(unclaim_order))
        .route("/api/v1/orders/{id}/merge", post(merge_order))
        .route("/api/v1/orders/{id}/rework", post(rework_order))
        .route("/api/v1/orders/{id}/follow-up", post(follow_up_order))
        .route("/api/v1/nodes/{id}/queue", get(station_queue))
        .route("/api/v1/nodes/{id}/queue/events", get(watch_queue))
        .route("/api/v1/nodes/{id}/stats", get(station_stats))
        .route("/api/v1/org", get(get_org_tree))
        .route("/api/v1/org/nodes", post(register_org_node))
        .route("/api/v1/teams", get(list_teams).post(register_team))
        .route(
            "/api/v1/volunteers",
            get(crate::workbench::list_volunteers).post(register_volunteer),
        )
        .route(
            "/api/v1/volunteers/import",
            post(crate::workbench::import_volunteers)
                .layer(DefaultBodyLimit::max(crate::workbench::MAX_SHEET_BYTES)),
        )
        .route(
            "/api/v1/volunteers/{id}",
            axum::routing::put(crate::workbench::update_volunteer),
        )
        .route(
            "/api/v1/volunteers/{id}/active",
            post(crate::workbench::set_volunteer_active),
        )
        .route(
            "/api/v1/volunteers/{id}/record",
            get(crate::ledger::get_volunteer_record),
        )
        .route(
            "/api/v1/volunteers/{id}/hours/review",
            post(crate::ledger::review_hours),
        )
        .route(
            "/api/v1/volunteers/{id}/hours/adjust",
            post(crate::ledger::adjust_hours),
        )
        .route(
            "/api/v1/nodes/{id}/rankings",
            get(crate::ledger::list_rankings),
        )
        .route(
            "/api/v1/nodes/{id}/hours/pending",
            get(crate::ledger::list_pending_hours),
        )
        .route(
            "/api/v1/shop/items",
            get(crate::ledger::list_shop_items).post(crate::ledger::add_shop_item),
        )
        .route(
            "/api/v1/shop/items/{id}/restock",
            post(crate::ledger::restock_shop_item),
        )
        .route(
            "/api/v1/shop/items/{id}/reserve",
            post(crate::ledger::reserve_shop_item),
        )
        .route(
            "/api/v1/shop/redemptions/{id}",
            get(crate::ledger::get_redemption),
        )
        .route(
            "/api/v1/shop/redemptions/{id}/hand-over",
            post(crate::ledger::hand_over_redemption),
        )
        .route(
            "/api/v1/shop/redemptions/{id}/cancel",
            post(crate::ledger::cancel_redemption),
        )
        .route("/api/v1/audit/orders", get(crate::workbench::search_orders))
        .route(
            "/api/v1/audit/orders/export",
            get(crate::workbench::export_orders),
        )
        .route(
            "/api/v1/audit/orders/{id}/proof",
            get(crate::trail::export_order_proof),
        )
        .route(
            "/api/v1/audit/checkpoint",
            get(crate::trail::get_checkpoint),
        )
        .route(
            "/api/v1/audit/checkpoints",
            post(crate::trail::sign_checkpoint),
        )
        .route(
            "/api/v1/residents/{id}/forget",
            post(crate::trail::forget_resident),
        )
        .route(
            "/api/v1/audit/orders/{id}/contact-reads",
            get(crate::trail::list_contact_reads),
        )
        .route(
            "/api/v1/audit/consistency",
            get(crate::trail::get_consistency_proof),
        )
        .route("/", get(crate::console::root))
        .route("/console", get(crate::console::root))
        .route("/console/", get(crate::console::index))
        .route("/console/{*path}", get(crate::console::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            limiters,
            crate::limits::limit,
        ))
        .layer(axum::middleware::from_fn(within_limits))
        .layer(axum::middleware::from_fn(traced))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Clients::new(upstreams))
}
