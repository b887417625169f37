//! The OpenAPI 3 document, generated from the routes and the protobuf messages.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use diandan_proto::v1 as pb;

use crate::problem::Problem;
use crate::routes::*;
use crate::{ledger, trail, workbench};

struct BearerAuth;

/// Every operation may answer 429 (rate limits), 503 (store unavailable, nothing accepted) or 504 (a service did
/// not answer in time) with problem details: documented once, here.
struct ServerErrors;

impl Modify for ServerErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let response = problem("服务暂不可用或超时（problem details）");
        let too_many = problem("请求过于频繁（problem details，附 Retry-After）");
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .insert("5XX".to_owned(), response.clone().into());
                operation
                    .responses
                    .responses
                    .insert("429".to_owned(), too_many.clone().into());
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "diandan 点单 API",
        description = "四单：居民点单、中心派单、志愿者接单、群众评单",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "本服务（网关所在地址）")),
    paths(
        dev_login, login, wechat_login, bind_phone, refresh_session, logout, change_password,
        create_account, reset_password, place_order, list_my_orders, get_order, get_order_history, cancel_order,
        triage_order, dispatch_order, suggest_teams, station_queue, watch_queue, accept_order, decline_order, check_in,
        check_out, complete_order, request_extension, decide_extension, review_order, close_order,
        claim_order, unclaim_order, list_claimable_orders, merge_order, rework_order, follow_up_order, station_stats, get_org_tree,
        register_org_node, list_teams, register_team, register_volunteer,
        workbench::list_volunteers, workbench::update_volunteer, workbench::set_volunteer_active, workbench::import_volunteers, workbench::search_orders,
        workbench::export_orders, trail::get_checkpoint, trail::sign_checkpoint,
        trail::get_consistency_proof, trail::export_order_proof, trail::forget_resident,
        trail::list_contact_reads,
        ledger::get_volunteer_record, ledger::list_rankings, ledger::list_pending_hours,
        ledger::review_hours, ledger::adjust_hours, ledger::list_shop_items, ledger::add_shop_item,
        ledger::restock_shop_item, ledger::reserve_shop_item, ledger::get_redemption,
        ledger::hand_over_redemption, ledger::cancel_redemption,
    ),
    components(schemas(Problem, pb::ImportRowError, pb::AuditRow, pb::VolunteerEntry, pb::DeadlineView, pb::ClaimSeat, pb::Location, pb::Actor, pb::EventEnvelope, pb::CategoryCount, pb::DayCount, pb::OrgNode, pb::Team, pb::LedgerAck, pb::ServiceHours, pb::Redemption, pb::RankingEntry, pb::ShopItem, pb::SignedCheckpoint, pb::ContactReadEntry)),
    modifiers(&BearerAuth, &ServerErrors),
)]
pub struct ApiDoc;

/// The document as JSON: the routes and messages (utoipa), with the request contract
/// (`contract`) applied.
pub fn document() -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    crate::contract::apply(&mut document);
    // Signing in needs no token: public, and said so explicitly.
    for path in [
        "/api/v1/dev/login",
        "/api/v1/auth/login",
        "/api/v1/auth/wechat",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
    ] {
        document["paths"][path]["post"]["security"] = serde_json::json!([]);
    }
    document
}

pub(crate) async fn serve() -> Json<serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(document).clone())
}

#[cfg(test)]
mod tests {
    /// The committed snapshot is what clients review and what the breaking-change check
    /// compares against: it must be the document the code generates.
    #[test]
    fn the_committed_snapshot_is_current() {
        let committed: serde_json::Value =
            serde_json::from_str(include_str!("../openapi.json")).expect("valid JSON");
        assert!(
            committed == super::document(),
            "services/gateway/openapi.json is stale: run\n  cargo run -q -- openapi > services/gateway/openapi.json"
        );
    }
}
