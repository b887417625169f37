//! The role × endpoint matrix, generated from the permission table
//! (`diandan_workflows::permissions`): every operation, over HTTP and over gRPC, called by every
//! role — and by nobody — on a target inside the role's scope and on one outside it, against the
//! real binary. The expectation of each cell is read from the table:
//!
//! - no grant → refused: 403 / `PERMISSION_DENIED`;
//! - a grant, inside the scope → past the gate: anything but 401/403/404 and 5xx (a command is
//!   sent with a stale `expected_revision`, so it is refused *after* the gate with 409 and
//!   changes nothing; reads answer 200);
//! - a grant, outside the scope → refused: 403, or 404 where a resource outside one's scope is
//!   as good as absent (an order, an account);
//! - no token → 401 for everything but signing in.
//!
//! And no endpoint is missing from the table: every gRPC method the server offers (by
//! reflection's descriptor) and every HTTP operation in its OpenAPI document is an operation
//! of the table, and the other way round.

mod support;

use serde_json::{json, Map, Value};
use tonic::transport::{Channel, Endpoint};

use diandan::client::{drive_order, Cast, Client, OrderSpec, Stage};
use diandan_proto::v1 as pb;
use diandan_runtime::auth::{Claims, TokenSigner};
use diandan_workflows::permissions::{grant, Operation, Scope};
use diandan_workflows::Role;
use support::Server;

/// Inside or outside the caller's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Inside,
    Outside,
}

/// One call, as HTTP and as gRPC.
struct Call {
    method: reqwest::Method,
    path: String,
    /// The HTTP body (POST, PUT) — the gRPC message is this plus the path's id.
    body: Value,
    grpc: Value,
    /// A raw HTTP body and its content type instead of JSON (an uploaded sheet).
    raw: Option<(&'static str, Vec<u8>)>,
}

/// The district the matrix runs in: the demo, plus a second centre nobody in the demo runs.
struct Fixture {
    grpc: Channel,
    http: String,
    tokens: Vec<(Role, String)>,
    /// Placed by the resident under test at 车站路, dispatched to 车站路支队 (the volunteer's
    /// and the team leader's team).
    order_in: String,
    /// Placed by another resident in the other centre.
    order_out: String,
    /// Redemptions at 车站路's love supermarket: the volunteer's and the team leader's; and one
    /// at the other centre's.
    redemption_volunteer: String,
    redemption_leader: String,
    redemption_out: String,
    /// Held by a volunteer of the other centre, accepted / in service / served.
    held_out: [String; 3],
}

const STALE: u64 = 99_999;
const INSIDE_NODE: &str = "chezhanlu";
const INSIDE_TEAM: &str = "zhidui-chezhanlu";
const OUTSIDE_NODE: &str = "matrix-far";
const OUTSIDE_TEAM: &str = "matrix-team";

fn location() -> Value {
    json!({"lat": 29.87, "lng": 114.28, "address": "车站路 1 号"})
}

/// What `op` called by `role` on `target` sends; `None` where the scope has no outside (a
/// resident may place at any station; everyone reads the org tree).
fn call(op: Operation, role: Role, target: Target, fx: &Fixture) -> Option<Call> {
    use Operation::*;
    use Target::*;
    let scope = grant(op, role);
    let inside = target == Inside;
    let order = if inside { &fx.order_in } else { &fx.order_out };
    let node = if inside { INSIDE_NODE } else { OUTSIDE_NODE };
    let team = if inside { INSIDE_TEAM } else { OUTSIDE_TEAM };
    // Inside: a stale revision, so a command passes the gate and is then refused (409).
    let stale = |mut body: Value| {
        if inside {
            body["expected_revision"] = json!(STALE);
        }
        body
    };
    let has_outside = matches!(scope, Some(Scope::Own | Scope::Team | Scope::Subtree));
    if !inside && !has_outside {
        return None;
    }
    let post = |path: String, body: Value, id: Option<(&str, &str)>| {
        let mut grpc = body.clone();
        if let Some((field, value)) = id {
            grpc[field] = json!(value);
        }
        Some(Call {
            method: reqwest::Method::POST,
            path,
            body,
            grpc,
            raw: None,
        })
    };
    let get = |path: String, grpc: Value| {
        Some(Call {
            method: reqwest::Method::GET,
            path,
            body: Value::Null,
            grpc,
            raw: None,
        })
    };
    let on_order = |verb: &str, body: Value| {
        post(
            format!("/api/v1/orders/{order}/{verb}"),
            body,
            Some(("order_id", order)),
        )
    };
    // A field volunteer acting outside: on an order someone else holds, in the right state.
    let held = |i: usize| {
        if inside {
            &fx.order_in
        } else {
            &fx.held_out[i]
        }
    };
    let on_held = |i: usize, verb: &str, body: Value| {
        let order = held(i);
        post(
            format!("/api/v1/orders/{order}/{verb}"),
            body,
            Some(("order_id", order)),
        )
    };
    match op {
        DevLogin => post(
            "/api/v1/dev/login".into(),
            json!({"role": "resident", "user_id": "r-matrix-dev"}),
            None,
        ),
        Login => post(
            "/api/v1/auth/login".into(),
            json!({"username": "nobody.here", "password": "not-the-password"}),
            None,
        ),
        WechatLogin => post(
            "/api/v1/auth/wechat".into(),
            json!({"code": "matrix-code"}),
            None,
        ),
        RefreshSession => post(
            "/api/v1/auth/refresh".into(),
            json!({"refresh_token": "not-a-refresh-token"}),
            None,
        ),
        Logout => post(
            "/api/v1/auth/logout".into(),
            json!({"refresh_token": "not-a-refresh-token"}),
            None,
        ),
        // Own: one's own account is the only target.
        ChangePassword if inside => post(
            "/api/v1/auth/password".into(),
            json!({"old_password": "not-the-password", "new_password": "a-new-password-1"}),
            None,
        ),
        BindPhone if inside => post(
            "/api/v1/auth/wechat/phone".into(),
            json!({"code": "matrix-phone-code"}),
            None,
        ),
        ChangePassword | BindPhone => None,
        // Inside: the username is taken (409 after the gate); outside: another centre's node.
        CreateAccount => post(
            "/api/v1/accounts".into(),
            json!({"username": if inside { "matrix.taken" } else { "matrix.new" },
                   "display_name": "矩阵测试", "role": "auditor", "node_id": node,
                   "password": "a-long-password-1"}),
            None,
        ),
        ResetPassword => {
            let account = if inside {
                "staff-matrix_taken"
            } else {
                "staff-matrix_far"
            };
            post(
                format!("/api/v1/accounts/{account}/password-reset"),
                json!({"new_password": "a-reset-password-1"}),
                Some(("account_id", account)),
            )
        }
        PlaceOrder => {
            if !inside && scope == Some(Scope::Own) {
                return None; // a resident may place at any station
            }
            let mut body = json!({"station_id": node, "category": "repair",
                "description": "矩阵测试订单", "location": location(),
                "contact_phone": "13800000000"});
            if scope == Some(Scope::Subtree) {
                body["on_behalf_of"] = json!("r-matrix-in");
            }
            post("/api/v1/orders".into(), body, None)
        }
        CancelOrder => on_order("cancel", stale(json!({"reason": "矩阵测试"}))),
        GetOrder => get(
            format!("/api/v1/orders/{order}"),
            json!({"order_id": order}),
        ),
        GetOrderHistory => get(
            format!("/api/v1/orders/{order}/history"),
            json!({"order_id": order}),
        ),
        ListMyOrders if inside => get("/api/v1/orders?limit=5".into(), json!({"limit": 5})),
        ListMyOrders => None,
        TriageOrder => on_order("triage", stale(json!({"accept": true}))),
        DispatchOrder => on_order("dispatch", stale(json!({"team_id": INSIDE_TEAM}))),
        SuggestTeams => get(
            format!("/api/v1/orders/{order}/suggestions"),
            json!({"order_id": order}),
        ),
        StationQueue => get(
            format!("/api/v1/nodes/{node}/queue"),
            json!({"node_id": node}),
        ),
        WatchQueue => get(
            format!("/api/v1/nodes/{node}/queue/events"),
            json!({"node_id": node}),
        ),
        StationStats => get(
            format!("/api/v1/nodes/{node}/stats"),
            json!({"node_id": node}),
        ),
        DecideExtension => on_order(
            "extension/decision",
            stale(json!({"deadline": "complete", "approve": true})),
        ),
        // Outside: acting for a team one is not in.
        AcceptOrder => on_order("accept", stale(json!({"team_id": team}))),
        DeclineOrder => on_order("decline", stale(json!({"team_id": team}))),
        CheckIn => on_held(0, "check-in", stale(json!({"location": location()}))),
        CheckOut => on_held(1, "check-out", stale(json!({"location": location()}))),
        CompleteOrder => on_held(2, "complete", stale(json!({"note": "矩阵测试"}))),
        RequestExtension => on_held(
            0,
            "extension",
            stale(
                json!({"deadline": "complete", "until": "2099-01-01T00:00:00Z",
                         "reason": "矩阵测试"}),
            ),
        ),
        ReviewOrder => on_order("review", stale(json!({"rating": 5}))),
        // Outside: a team one is not in (claim), an order one holds no seat of (unclaim).
        ClaimOrder => on_order("claim", stale(json!({"team_id": team}))),
        UnclaimOrder => on_order("unclaim", stale(json!({}))),
        ListClaimableOrders if inside => get(
            "/api/v1/orders/claimable?limit=5".into(),
            json!({"limit": 5}),
        ),
        ListClaimableOrders => None,
        // Outside: another centre's order (404).
        MergeOrder => on_order("merge", stale(json!({"into": fx.order_in}))),
        ReworkOrder => on_order(
            "rework",
            stale(json!({"team_id": INSIDE_TEAM, "reason": "矩阵测试"})),
        ),
        FollowUpOrder => on_order("follow-up", stale(json!({"note": "矩阵测试"}))),
        CloseOrder => on_order("close", stale(json!({}))),
        // Inside: an id already registered (409 after the gate).
        RegisterOrgNode => post(
            "/api/v1/org/nodes".into(),
            json!({"id": if inside { "yongfu-lane" } else { "matrix-far-point" },
                   "name": "矩阵测试点", "level": "point", "parent_id": node}),
            None,
        ),
        RegisterTeam => post(
            "/api/v1/teams".into(),
            json!({"id": team, "name": "矩阵测试队", "kind": "team", "node_id": node,
                   "skills": ["repair"]}),
            None,
        ),
        RegisterVolunteer => post(
            "/api/v1/volunteers".into(),
            json!({"id": if inside { "v-liuhong" } else { "v-matrix-far" },
                   "name": "矩阵测试", "team_ids": [team]}),
            None,
        ),
        SearchOrders => get(
            format!("/api/v1/audit/orders?node_id={node}"),
            json!({"filter": {"node_id": node}}),
        ),
        ExportOrders => get(
            format!("/api/v1/audit/orders/export?node_id={node}"),
            json!({"filter": {"node_id": node}}),
        ),
        // The log's checkpoints and proofs have no outside (they are the whole log's).
        GetCheckpoint => get("/api/v1/audit/checkpoint".into(), json!({})),
        SignCheckpoint => post("/api/v1/audit/checkpoints".into(), json!({}), None),
        // No size: 400 after the gate.
        GetConsistencyProof => get(
            "/api/v1/audit/consistency?from_size=0".into(),
            json!({"from_size": 0}),
        ),
        ExportOrderProof => get(
            format!("/api/v1/audit/orders/{order}/proof"),
            json!({"order_id": order}),
        ),
        ListContactReads => get(
            format!("/api/v1/audit/orders/{order}/contact-reads"),
            json!({"order_id": order}),
        ),
        // The whole district's residents: no outside. The outside resident has personal data
        // here (their order); the first call forgets them, later ones are refused (409).
        ForgetResident => post(
            "/api/v1/residents/r-matrix-out/forget".into(),
            json!({"reason": "矩阵测试"}),
            Some(("resident_id", "r-matrix-out")),
        ),
        ListVolunteers => get(
            format!("/api/v1/volunteers?node_id={node}"),
            json!({"node_id": node}),
        ),
        // Inside: no team at all (400 after the gate); outside: another centre's volunteer.
        UpdateVolunteer => {
            let volunteer = if inside { "v-liuhong" } else { "v-matrix-far" };
            let body = json!({"name": "矩阵测试", "team_ids": []});
            let mut grpc = body.clone();
            grpc["id"] = json!(volunteer);
            Some(Call {
                method: reqwest::Method::PUT,
                path: format!("/api/v1/volunteers/{volunteer}"),
                body,
                grpc,
                raw: None,
            })
        }
        // Inside: no reason (400 after the gate).
        SetVolunteerActive => {
            let volunteer = if inside { "v-liuhong" } else { "v-matrix-far" };
            post(
                format!("/api/v1/volunteers/{volunteer}/active"),
                json!({"active": false, "reason": ""}),
                Some(("id", volunteer)),
            )
        }
        // A dry run of one good row; the teams a sheet names are checked row by row (a
        // dedicated test covers rows outside one's subtree).
        ImportVolunteers if inside => {
            let sheet = "编号,姓名,服务队\nv-matrix-import,矩阵测试,zhidui-chezhanlu\n";
            Some(Call {
                method: reqwest::Method::POST,
                path: "/api/v1/volunteers/import?dry_run=true".into(),
                body: Value::Null,
                grpc: json!({"sheet": sheet.as_bytes(), "format": "csv", "dry_run": true}),
                raw: Some(("text/csv", sheet.as_bytes().to_vec())),
            })
        }
        ImportVolunteers => None,
        // 志愿时长与积分. Inside: a volunteer's own record ("me"), staff a volunteer of theirs;
        // outside: the other centre's volunteer (403).
        GetVolunteerRecord => {
            let volunteer = match (inside, scope) {
                (true, Some(Scope::Own)) => "me",
                (true, _) => "v-liuhong",
                (false, _) => "v-matrix-far",
            };
            get(
                format!("/api/v1/volunteers/{volunteer}/record"),
                json!({"volunteer_id": if volunteer == "me" { "" } else { volunteer }}),
            )
        }
        ListRankings => get(
            format!("/api/v1/nodes/{node}/rankings"),
            json!({"node_id": node}),
        ),
        ListPendingHours => get(
            format!("/api/v1/nodes/{node}/hours/pending"),
            json!({"node_id": node}),
        ),
        // Inside: an order the volunteer did not serve (409 after the gate).
        ReviewHours => {
            let volunteer = if inside { "v-liuhong" } else { "v-matrix-far" };
            post(
                format!("/api/v1/volunteers/{volunteer}/hours/review"),
                json!({"order_id": "matrix-none", "decision": "confirm"}),
                Some(("volunteer_id", volunteer)),
            )
        }
        AdjustHours => {
            let volunteer = if inside { "v-liuhong" } else { "v-matrix-far" };
            post(
                format!("/api/v1/volunteers/{volunteer}/hours/adjust"),
                json!({"order_id": "matrix-none", "minutes": 30, "reason": "矩阵测试"}),
                Some(("volunteer_id", volunteer)),
            )
        }
        // 爱心超市. Inside: one's own shops; outside: the other centre's (403).
        ListShopItems => match (inside, scope) {
            (true, Some(Scope::Own)) => get("/api/v1/shop/items".into(), json!({})),
            _ => get(
                format!("/api/v1/shop/items?node_id={node}"),
                json!({"node_id": node}),
            ),
        },
        // Inside: an item id already listed (409 after the gate).
        AddShopItem => post(
            "/api/v1/shop/items".into(),
            json!({"item_id": if inside { "matrix-item" } else { "matrix-item-new" },
                   "node_id": node, "name": "矩阵测试商品", "centipoints": 1, "stock": 1}),
            None,
        ),
        // Inside: no quantity (400 after the gate); outside: the other centre's item (404).
        RestockShopItem => {
            let item = if inside {
                "matrix-item"
            } else {
                "matrix-item-far"
            };
            post(
                format!("/api/v1/shop/items/{item}/restock"),
                json!({"quantity": if inside { 0 } else { 1 }}),
                Some(("item_id", item)),
            )
        }
        // Inside: more than one's points (409 after the gate).
        ReserveShopItem => {
            let item = if inside {
                "matrix-item"
            } else {
                "matrix-item-far"
            };
            post(
                format!("/api/v1/shop/items/{item}/reserve"),
                json!({"quantity": if inside { 20 } else { 1 }}),
                Some(("item_id", item)),
            )
        }
        // Inside: one's own redemption, or one at a shop of one's subtree; outside: another
        // volunteer's, or one at the other centre's shop (404).
        GetRedemption | HandOverRedemption | CancelRedemption => {
            let redemption = match (inside, scope, role) {
                (true, Some(Scope::Own), Role::TeamLeader) => &fx.redemption_leader,
                (true, _, _) => &fx.redemption_volunteer,
                (false, Some(Scope::Own), Role::TeamLeader) => &fx.redemption_volunteer,
                (false, Some(Scope::Own), _) => &fx.redemption_leader,
                (false, _, _) => &fx.redemption_out,
            };
            match op {
                GetRedemption => get(
                    format!("/api/v1/shop/redemptions/{redemption}"),
                    json!({"redemption_id": redemption}),
                ),
                // No code, no reason: 400 after the gate, nothing changed.
                HandOverRedemption => post(
                    format!("/api/v1/shop/redemptions/{redemption}/hand-over"),
                    json!({"code": ""}),
                    Some(("redemption_id", redemption)),
                ),
                _ => post(
                    format!("/api/v1/shop/redemptions/{redemption}/cancel"),
                    json!({"reason": ""}),
                    Some(("redemption_id", redemption)),
                ),
            }
        }
        GetOrgTree if inside => get("/api/v1/org".into(), json!({})),
        ListTeams if inside => get("/api/v1/teams".into(), json!({})),
        GetOrgTree | ListTeams => None,
    }
}

/// What the table expects of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Past the gate (whatever the command then makes of it).
    Allowed,
    /// Refused for who the caller is or where the target lies.
    Denied,
    /// Signing in: never refused for the caller's role.
    Public,
    /// No token.
    Unauthenticated,
}

fn expect(op: Operation, role: Option<Role>, target: Target) -> Expect {
    let Some(role) = role else {
        return match grant(op, Role::Resident) {
            Some(Scope::Public) => Expect::Public,
            _ => Expect::Unauthenticated,
        };
    };
    match grant(op, role) {
        None => Expect::Denied,
        Some(Scope::Public) => Expect::Public,
        Some(_) if target == Target::Inside => Expect::Allowed,
        Some(_) => Expect::Denied,
    }
}

fn http_holds(expect: Expect, status: u16) -> bool {
    match expect {
        Expect::Allowed => !matches!(status, 401 | 403 | 404) && status < 500 || status == 503,
        Expect::Denied => matches!(status, 403 | 404),
        Expect::Public => status != 403 && (status < 500 || status == 503),
        Expect::Unauthenticated => status == 401,
    }
}

fn grpc_holds(expect: Expect, code: tonic::Code) -> bool {
    use tonic::Code::*;
    let server_error = matches!(code, Internal | Unknown | DataLoss | Unimplemented);
    match expect {
        Expect::Allowed => {
            !matches!(code, Unauthenticated | PermissionDenied | NotFound) && !server_error
        }
        Expect::Denied => matches!(code, PermissionDenied | NotFound),
        Expect::Public => code != PermissionDenied && !server_error,
        Expect::Unauthenticated => code == Unauthenticated,
    }
}

async fn http_call(fx: &Fixture, call: &Call, token: Option<&str>) -> (u16, String) {
    let mut request =
        reqwest::Client::new().request(call.method.clone(), format!("{}{}", fx.http, call.path));
    if let Some((content_type, raw)) = &call.raw {
        request = request
            .header("content-type", *content_type)
            .body(raw.clone());
    } else if call.method != reqwest::Method::GET {
        request = request.json(&call.body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("HTTP answered");
    let status = response.status().as_u16();
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        // A live stream never ends: its status is the answer.
        return (status, "(event stream)".into());
    }
    (status, response.text().await.unwrap_or_default())
}

/// One typed gRPC call per operation, built from the call's JSON message.
macro_rules! grpc_dispatch {
    ($op:expr, $client:expr, $body:expr, $( $variant:ident => $svc:ident . $method:ident ( $req:ident ) ),* $(,)?) => {
        match $op {
            $(Operation::$variant => {
                let message: pb::$req = serde_json::from_value($body)
                    .unwrap_or_else(|e| panic!("{:?} message: {e}", $op));
                $client.$svc().$method($client.request(message, None)).await.map(|_| ())
            })*
        }
    };
}

async fn grpc_call(fx: &Fixture, op: Operation, call: &Call, token: Option<&str>) -> tonic::Status {
    // Without a token there is no authorization header at all.
    let client = Unsigned {
        inner: Client::new(
            diandan_proto::Upstreams::single(fx.grpc.clone()),
            token.unwrap_or_default(),
        ),
        channel: fx.grpc.clone(),
        signed: token.is_some(),
    };
    let result: Result<(), tonic::Status> = grpc_dispatch!(op, client, call.grpc.clone(),
        DevLogin => identity_get . dev_login(DevLoginRequest),
        Login => identity_get . login(LoginRequest),
        WechatLogin => identity_get . wechat_login(WechatLoginRequest),
        RefreshSession => identity_get . refresh_session(RefreshSessionRequest),
        Logout => identity_get . logout(LogoutRequest),
        ChangePassword => identity_get . change_password(ChangePasswordRequest),
        BindPhone => identity_get . bind_phone(BindPhoneRequest),
        CreateAccount => accounts . create_account(CreateAccountRequest),
        ResetPassword => accounts . reset_password(ResetPasswordRequest),
        PlaceOrder => orders . place_order(PlaceOrderRequest),
        CancelOrder => orders . cancel_order(CancelOrderRequest),
        GetOrder => orders . get_order(GetOrderRequest),
        ListMyOrders => orders . list_my_orders(ListMyOrdersRequest),
        GetOrderHistory => orders . get_order_history(GetOrderHistoryRequest),
        TriageOrder => dispatch . triage_order(TriageOrderRequest),
        DispatchOrder => dispatch . dispatch_order(DispatchOrderRequest),
        StationQueue => dispatch . station_queue(StationQueueRequest),
        WatchQueue => dispatch . watch_queue(WatchQueueRequest),
        SuggestTeams => dispatch . suggest_teams(SuggestTeamsRequest),
        DecideExtension => dispatch . decide_extension(DecideExtensionRequest),
        AcceptOrder => volunteers . accept_order(AcceptOrderRequest),
        DeclineOrder => volunteers . decline_order(DeclineOrderRequest),
        CheckIn => volunteers . check_in(CheckInRequest),
        CheckOut => volunteers . check_out(CheckOutRequest),
        CompleteOrder => volunteers . complete_order(CompleteOrderRequest),
        RequestExtension => volunteers . request_extension(RequestExtensionRequest),
        ClaimOrder => volunteers . claim_order(ClaimOrderRequest),
        UnclaimOrder => volunteers . unclaim_order(UnclaimOrderRequest),
        ListClaimableOrders => volunteers . list_claimable_orders(ListClaimableOrdersRequest),
        MergeOrder => dispatch . merge_order(MergeOrderRequest),
        ReworkOrder => dispatch . rework_order(ReworkOrderRequest),
        FollowUpOrder => dispatch . follow_up_order(FollowUpOrderRequest),
        ReviewOrder => reviews . review_order(ReviewOrderRequest),
        CloseOrder => reviews . close_order(CloseOrderRequest),
        StationStats => stats . station_stats(StationStatsRequest),
        RegisterOrgNode => organization . register_org_node(RegisterOrgNodeRequest),
        RegisterTeam => organization . register_team(RegisterTeamRequest),
        RegisterVolunteer => organization . register_volunteer(RegisterVolunteerRequest),
        GetOrgTree => organization . get_org_tree(GetOrgTreeRequest),
        ListTeams => organization . list_teams(ListTeamsRequest),
        ListVolunteers => organization . list_volunteers(ListVolunteersRequest),
        UpdateVolunteer => organization . update_volunteer(UpdateVolunteerRequest),
        SetVolunteerActive => organization . set_volunteer_active(SetVolunteerActiveRequest),
        ImportVolunteers => organization . import_volunteers(ImportVolunteersRequest),
        SearchOrders => audit . search_orders(SearchOrdersRequest),
        ExportOrders => audit . export_orders(ExportOrdersRequest),
        GetCheckpoint => audit . get_checkpoint(GetCheckpointRequest),
        SignCheckpoint => audit . sign_checkpoint(SignCheckpointRequest),
        GetConsistencyProof => audit . get_consistency_proof(GetConsistencyProofRequest),
        ExportOrderProof => audit . export_order_proof(ExportOrderProofRequest),
        ListContactReads => audit . list_contact_reads(ListContactReadsRequest),
        ForgetResident => accounts . forget_resident(ForgetResidentRequest),
        GetVolunteerRecord => ledger . get_volunteer_record(GetVolunteerRecordRequest),
        ListRankings => ledger . list_rankings(ListRankingsRequest),
        ListPendingHours => ledger . list_pending_hours(ListPendingHoursRequest),
        ReviewHours => ledger . review_hours(ReviewHoursRequest),
        AdjustHours => ledger . adjust_hours(AdjustHoursRequest),
        ListShopItems => ledger . list_shop_items(ListShopItemsRequest),
        AddShopItem => ledger . add_shop_item(AddShopItemRequest),
        RestockShopItem => ledger . restock_shop_item(RestockShopItemRequest),
        ReserveShopItem => ledger . reserve_shop_item(ReserveShopItemRequest),
        GetRedemption => ledger . get_redemption(GetRedemptionRequest),
        HandOverRedemption => ledger . hand_over_redemption(HandOverRedemptionRequest),
        CancelRedemption => ledger . cancel_redemption(CancelRedemptionRequest),
    );
    match result {
        Ok(()) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

/// A [`Client`] that sends no authorization header when it has no token.
struct Unsigned {
    inner: Client,
    channel: Channel,
    signed: bool,
}

impl Unsigned {
    fn request<T>(&self, message: T, key: Option<&str>) -> tonic::Request<T> {
        let mut request = self.inner.request(message, key);
        if !self.signed {
            request.metadata_mut().remove("authorization");
        }
        request
    }
    fn identity_get(&self) -> pb::identity_service_calls::IdentityServiceCalls {
        pb::identity_service_calls::IdentityServiceCalls::new(self.channel.clone().into(), None)
    }
    fn accounts(&self) -> pb::account_service_calls::AccountServiceCalls {
        self.inner.accounts()
    }
    fn orders(&self) -> pb::order_service_calls::OrderServiceCalls {
        self.inner.orders()
    }
    fn dispatch(&self) -> pb::dispatch_service_calls::DispatchServiceCalls {
        self.inner.dispatch()
    }
    fn volunteers(&self) -> pb::volunteer_service_calls::VolunteerServiceCalls {
        self.inner.volunteers()
    }
    fn reviews(&self) -> pb::review_service_calls::ReviewServiceCalls {
        self.inner.reviews()
    }
    fn stats(&self) -> pb::stats_service_calls::StatsServiceCalls {
        self.inner.stats()
    }
    fn organization(&self) -> pb::organization_service_calls::OrganizationServiceCalls {
        self.inner.organization()
    }
    fn audit(&self) -> pb::audit_service_calls::AuditServiceCalls {
        pb::audit_service_calls::AuditServiceCalls::new(self.channel.clone().into(), None)
    }
    fn ledger(&self) -> pb::ledger_service_calls::LedgerServiceCalls {
        self.inner.ledger()
    }
}

// ---------------------------------------------------------------------------------------------
// The district
// ---------------------------------------------------------------------------------------------

async fn dev_token(http: &str, role: &str, user: &str, node: &str) -> String {
    support::try_login_at(&reqwest::Client::new(), http, role, user, node)
        .await
        .unwrap_or_else(|e| panic!("dev login {role} {user}: {e}"))
}

fn spec(description: &str) -> OrderSpec {
    OrderSpec {
        category: "repair".into(),
        description: description.into(),
        lat: 29.87,
        lng: 114.28,
        address: "车站路 1 号".into(),
        phone: "13800000001".into(),
        rating: 5,
        comment: String::new(),
    }
}

/// POSTs (or GETs, without a body) as a bearer; (status, body).
async fn send(http: &str, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let request = match body {
        Some(body) => client.post(format!("{http}{path}")).json(&body),
        None => client.get(format!("{http}{path}")),
    };
    let response = request.bearer_auth(token).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A station's activity that `volunteers` (tokens, ids) claim and check in to: served a
/// minute later, it earns each of them 0.01 point — enough for a redemption to exist.
async fn start_service(
    http: &str,
    head: &str,
    station: &str,
    (lat, lng): (f64, f64),
    team: &str,
    volunteers: &[(String, &str)],
) -> String {
    let place = json!({"lat": lat, "lng": lng, "address": "矩阵测试活动"});
    let (status, ack) = send(
        http,
        head,
        "/api/v1/orders",
        Some(
            json!({"workflow": "open-claim", "required_volunteers": volunteers.len(),
                    "station_id": station, "category": "repair", "description": "矩阵测试活动",
                    "location": place, "contact_phone": "13800000002"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{ack}");
    let order = ack["order_id"].as_str().unwrap().to_owned();
    let (status, ack) = send(
        http,
        head,
        &format!("/api/v1/orders/{order}/triage"),
        Some(json!({"accept": true})),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    for (token, id) in volunteers {
        for (verb, body) in [
            ("claim", json!({"team_id": team})),
            ("check-in", json!({"location": place})),
        ] {
            let (status, ack) = send(
                http,
                token,
                &format!("/api/v1/orders/{order}/{verb}"),
                Some(body),
            )
            .await;
            assert_eq!(status, 200, "{id} {verb}: {ack}");
        }
    }
    order
}

/// Checks the volunteers out, waits for their point, lists an item at `station` and reserves
/// one unit for each: their redemption ids.
async fn redeem_after_service(
    http: &str,
    head: &str,
    station: &str,
    order: &str,
    item: &str,
    volunteers: &[(String, &str)],
) -> Vec<String> {
    for (token, id) in volunteers {
        let (status, ack) = send(
            http,
            token,
            &format!("/api/v1/orders/{order}/check-out"),
            Some(json!({"location": {"lat": 30.0, "lng": 114.0}})),
        )
        .await;
        assert_eq!(status, 200, "{id} check-out: {ack}");
    }
    let (status, ack) = send(
        http,
        head,
        "/api/v1/shop/items",
        Some(
            json!({"item_id": item, "node_id": station, "name": "矩阵测试商品",
                    "centipoints": 1, "stock": 10}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{ack}");
    let mut redemptions = Vec::new();
    for (token, id) in volunteers {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (status, answer) = send(
                http,
                token,
                &format!("/api/v1/shop/items/{item}/reserve"),
                Some(json!({"quantity": 1})),
            )
            .await;
            if status == 201 {
                redemptions.push(
                    answer["redemption"]["redemption_id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
                break;
            }
            // 409 until the ledger has credited the service.
            assert!(
                status == 409 && std::time::Instant::now() < deadline,
                "{id} reserve: {status} {answer}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    redemptions
}

async fn fixture(server: &Server) -> Fixture {
    let http = format!("http://{}", server.http);
    let grpc = Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connect");
    let upstreams = || diandan_proto::Upstreams::single(grpc.clone());
    // The system's own token (the data dir's key), to set up a second centre.
    let signer = TokenSigner::new(diandan::server::token_secret(&server.data_dir).unwrap());
    let system_token = signer.issue(&Claims {
        sub: "matrix-setup".into(),
        role: Role::System,
        node: None,
        acc: None,
        exp: (time::OffsetDateTime::now_utc() + time::Duration::hours(1)).unix_timestamp(),
    });
    let system = Client::new(upstreams(), system_token.clone());
    for (id, level, parent) in [
        ("matrix-centre", "centre", ""),
        ("matrix-institute", "institute", "matrix-centre"),
        (OUTSIDE_NODE, "station", "matrix-institute"),
    ] {
        let node = pb::RegisterOrgNodeRequest {
            id: id.into(),
            name: format!("矩阵测试{id}"),
            level: level.into(),
            parent_id: parent.into(),
            location: Some(pb::Location {
                lat: 30.0,
                lng: 114.0,
                address: String::new(),
            }),
        };
        system
            .organization()
            .register_org_node(system.request(node, None))
            .await
            .expect("register node");
    }
    let team = pb::RegisterTeamRequest {
        id: OUTSIDE_TEAM.into(),
        name: "矩阵测试队".into(),
        kind: "team".into(),
        node_id: OUTSIDE_NODE.into(),
        skills: vec!["repair".into()],
        leader_id: String::new(),
    };
    system
        .organization()
        .register_team(system.request(team, None))
        .await
        .expect("register team");
    let volunteer = pb::RegisterVolunteerRequest {
        id: "v-matrix-far".into(),
        name: "远方志愿者".into(),
        team_ids: vec![OUTSIDE_TEAM.into()],
        skills: Vec::new(),
        phone: String::new(),
    };
    system
        .organization()
        .register_volunteer(system.request(volunteer, None))
        .await
        .expect("register volunteer");
    // Activities served a minute, so that redemptions exist (finished below).
    let head_in = dev_token(&http, "station_head", "head-matrix-in", INSIDE_NODE).await;
    let head_out = dev_token(&http, "station_head", "head-matrix-out", OUTSIDE_NODE).await;
    let served_in = [
        (
            dev_token(&http, "volunteer", "v-liuhong", "").await,
            "v-liuhong",
        ),
        (
            dev_token(&http, "team_leader", "v-wangsen", "").await,
            "v-wangsen",
        ),
    ];
    let served_out = [(
        dev_token(&http, "volunteer", "v-matrix-far", "").await,
        "v-matrix-far",
    )];
    let activity_in = start_service(
        &http,
        &head_in,
        INSIDE_NODE,
        (29.87, 114.28),
        INSIDE_TEAM,
        &served_in,
    )
    .await;
    let activity_out = start_service(
        &http,
        &head_out,
        OUTSIDE_NODE,
        (30.0, 114.0),
        OUTSIDE_TEAM,
        &served_out,
    )
    .await;
    // Counted from the last check-in: a minute of service is a whole minute after it.
    let service_started = std::time::Instant::now();

    for (username, node) in [("matrix.taken", INSIDE_NODE), ("matrix.far", OUTSIDE_NODE)] {
        let account = pb::CreateAccountRequest {
            username: username.into(),
            display_name: "矩阵测试审计".into(),
            role: "auditor".into(),
            node_id: node.into(),
            password: "a-long-password-1".into(),
        };
        system
            .accounts()
            .create_account(system.request(account, None))
            .await
            .expect("create account");
    }

    let token = |role: &'static str, user: &'static str, node: &'static str| {
        dev_token(&http, role, user, node)
    };
    let inside = Cast {
        resident: Client::new(upstreams(), token("resident", "r-matrix-in", "").await),
        head: Client::new(
            upstreams(),
            token("station_head", "head-matrix-in", INSIDE_NODE).await,
        ),
        volunteer: Client::new(upstreams(), token("volunteer", "v-liuhong", "").await),
        team_id: INSIDE_TEAM.into(),
        station_id: INSIDE_NODE.into(),
    };
    let outside = Cast {
        resident: Client::new(upstreams(), token("resident", "r-matrix-out", "").await),
        head: Client::new(
            upstreams(),
            token("station_head", "head-matrix-out", OUTSIDE_NODE).await,
        ),
        volunteer: Client::new(upstreams(), token("volunteer", "v-matrix-far", "").await),
        team_id: OUTSIDE_TEAM.into(),
        station_id: OUTSIDE_NODE.into(),
    };
    let (order_in, _) = drive_order(&inside, &spec("矩阵：辖区内"), Stage::Dispatched)
        .await
        .expect("inside order");
    let (order_out, _) = drive_order(&outside, &spec("矩阵：辖区外"), Stage::Placed)
        .await
        .expect("outside order");
    let mut held_out = Vec::new();
    for stage in [Stage::Accepted, Stage::InService, Stage::Served] {
        let (id, _) = drive_order(&outside, &spec("矩阵：他人接单"), stage)
            .await
            .expect("held order");
        held_out.push(id);
    }

    tokio::time::sleep(
        std::time::Duration::from_secs(61).saturating_sub(service_started.elapsed()),
    )
    .await;
    let redeemed_in = redeem_after_service(
        &http,
        &head_in,
        INSIDE_NODE,
        &activity_in,
        "matrix-item",
        &served_in,
    )
    .await;
    let redeemed_out = redeem_after_service(
        &http,
        &head_out,
        OUTSIDE_NODE,
        &activity_out,
        "matrix-item-far",
        &served_out,
    )
    .await;

    // A checkpoint of the log, so that reading the newest one passes the gate and answers.
    let auditor = token("auditor", "audit-matrix", "yongan").await;
    let signed = reqwest::Client::new()
        .post(format!("{http}/api/v1/audit/checkpoints"))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("sign a checkpoint");
    assert_eq!(signed.status(), 201);

    let mut tokens = Vec::new();
    for role in Role::ALL {
        let token = match role {
            Role::Resident => token("resident", "r-matrix-in", "").await,
            Role::Volunteer => token("volunteer", "v-liuhong", "").await,
            Role::TeamLeader => token("team_leader", "v-wangsen", "").await,
            Role::StationHead => token("station_head", "head-matrix-in", INSIDE_NODE).await,
            Role::InstituteAdmin => token("institute_admin", "admin-matrix", "yongan").await,
            Role::CentreAdmin => token("centre_admin", "centre-matrix", "xianan").await,
            Role::Auditor => token("auditor", "audit-matrix", "yongan").await,
            Role::System => system_token.clone(),
        };
        tokens.push((role, token));
    }
    Fixture {
        grpc,
        http,
        tokens,
        order_in,
        order_out,
        held_out: held_out.try_into().unwrap(),
        redemption_volunteer: redeemed_in[0].clone(),
        redemption_leader: redeemed_in[1].clone(),
        redemption_out: redeemed_out[0].clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_for_every_role_inside_and_outside_its_scope() {
    let server = Server::start_demo().await;
    let fx = fixture(&server).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    let callers: Vec<(Option<Role>, Option<&str>)> = std::iter::once((None, None))
        .chain(fx.tokens.iter().map(|(r, t)| (Some(*r), Some(t.as_str()))))
        .collect();
    for op in Operation::ALL.iter().copied() {
        for (role, token) in &callers {
            for target in [Target::Inside, Target::Outside] {
                let as_role = role.unwrap_or(Role::Resident);
                let Some(call) = call(op, as_role, target, &fx) else {
                    continue;
                };
                if role.is_none() && target == Target::Outside {
                    continue;
                }
                let expected = expect(op, *role, target);
                let who = role.map_or("(no token)", Role::as_str);
                let (status, body) = http_call(&fx, &call, *token).await;
                cells += 1;
                if !http_holds(expected, status) {
                    failures.push(format!(
                        "HTTP {} {} as {who}, {target:?}: expected {expected:?}, got {status} {body}",
                        call.method, call.path
                    ));
                }
                let status = grpc_call(&fx, op, &call, *token).await;
                cells += 1;
                if !grpc_holds(expected, status.code()) {
                    failures.push(format!(
                        "gRPC {} as {who}, {target:?}: expected {expected:?}, got {:?} {}",
                        op.rpc(),
                        status.code(),
                        status.message()
                    ));
                }
            }
        }
    }
    eprintln!(
        "permissions: {cells} cells checked, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The matrix covered every operation and every role.
    assert!(cells >= Operation::ALL.len() * (Role::ALL.len() + 1) * 2);
}

/// Every gRPC method the server offers, and every HTTP operation it documents, is in the
/// table — and every operation of the table is offered both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_is_missing_from_the_permission_table() {
    use prost::Message;
    let descriptor =
        prost_types::FileDescriptorSet::decode(diandan_proto::v1::FILE_DESCRIPTOR_SET).unwrap();
    let mut rpcs = Vec::new();
    for file in &descriptor.file {
        for service in &file.service {
            for method in &service.method {
                rpcs.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    let mut in_table: Vec<String> = Operation::ALL.iter().map(|o| o.rpc().to_owned()).collect();
    rpcs.sort();
    in_table.sort();
    assert_eq!(
        rpcs, in_table,
        "gRPC methods ≠ operations of the permission table"
    );

    let server = Server::start_demo().await;
    let spec: Value = reqwest::get(server.url("/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut http_ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap_or(&Map::new()) {
            let Some(id) = operation["operationId"].as_str() else {
                continue;
            };
            let camel: String = id
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            if path.starts_with("/api/v1/") {
                let op = Operation::ALL.iter().find(|o| o.method() == camel);
                assert!(
                    op.is_some(),
                    "{method} {path} ({id}) is not an operation of the permission table"
                );
                http_ops.push(camel);
            }
        }
    }
    http_ops.sort();
    let mut methods: Vec<String> = Operation::ALL
        .iter()
        .map(|o| o.method().to_owned())
        .collect();
    methods.sort();
    assert_eq!(
        http_ops, methods,
        "HTTP operations ≠ operations of the table"
    );
}
