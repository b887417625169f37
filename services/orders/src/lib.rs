//! The orders service (点单): residents place, follow and cancel orders; auditors read an
//! order's full history.

use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::order_service_server::OrderService;
use diandan_runtime::views::{envelope, location_from, time_from};
use diandan_runtime::{App, AppError};
use diandan_store::Direction;
use diandan_workflows::order::{self, Action, Status as OrderStatus};
use diandan_workflows::permissions::{Operation, Scope};
use diandan_workflows::{validate, OrgLevel};

/// Namespace for order ids derived from a command id (so a retried place keeps its id).
const ORDER_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6469_616e_6461_6e2d_6f72_6465_7273_0001);

pub struct Orders {
    app: App,
}

impl Orders {
    pub fn new(app: App) -> Orders {
        Orders { app }
    }

    pub fn into_server(self) -> pb::order_service_server::OrderServiceServer<Orders> {
        pb::order_service_server::OrderServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl OrderService for Orders {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::PlaceOrder)?;
        let req = request.into_inner();
        validate::id("station_id", &req.station_id).map_err(AppError::from)?;
        let station = self
            .app
            .directory
            .node(&req.station_id)
            .await?
            .filter(|n| matches!(n.level, OrgLevel::Station | OrgLevel::Point))
            .ok_or_else(|| {
                AppError::missing("station_id", format!("实践站「{}」不存在", req.station_id))
            })?;
        if ctx.scope == Scope::Subtree {
            self.app.directory.require_scope(&ctx, &station.id).await?;
        }
        validate::phone("contact_phone", &req.contact_phone).map_err(AppError::from)?;
        let order_id = if req.order_id.is_empty() {
            let key = format!("{}/{}", ctx.claims.sub, ctx.command_id);
            uuid::Uuid::new_v5(&ORDER_ID_NAMESPACE, key.as_bytes()).to_string()
        } else {
            req.order_id
        };
        validate::id("order_id", &order_id).map_err(AppError::from)?;
        let action = Action::Place {
            order_id: order_id.clone(),
            station_id: req.station_id,
            category: req.category,
            description: req.description,
            location: location_from("location", req.location)?,
            contact_phone: req.contact_phone.clone(),
            wanted_time: time_from("wanted_time", &req.wanted_time)?,
            on_behalf_of: Some(req.on_behalf_of).filter(|r| !r.is_empty()),
            required_volunteers: req.required_volunteers,
            workflow: Some(req.workflow).filter(|w| !w.is_empty()),
        };
        let phone = req.contact_phone;
        // A vault that cannot keep the number refuses the placement before anything is written.
        self.app.vault.ready().await?;
        let outcome = self.app.execute(&ctx, &order_id, action, None).await?;
        // Personal data follows the accepted command, never precedes it: a refused placement
        // (someone else's order id, 409) has returned above, and a duplicate changes nothing.
        // A retry of the accepted placement itself may only fill in a number lost to a crash
        // between the append and this write, and only with the number the events were
        // placed with (its mask), so a retry with another number cannot overwrite it.
        // The vault write never turns an accepted placement into an error (see `keep_accepted`).
        let resident = outcome.state.requester_id.clone();
        if !outcome.duplicate {
            self.app
                .vault
                .keep_accepted(&order_id, &resident, &phone, true)
                .await;
        } else if self.app.opened_mask(&outcome.state).await?.as_deref()
            == Some(validate::mask_phone(&phone).as_str())
        {
            self.app
                .vault
                .keep_accepted(&order_id, &resident, &phone, false)
                .await;
        }
        Ok(Response::new(outcome.reply(&order_id)))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::CancelOrder)?;
        let req = request.into_inner();
        let action = Action::Cancel { reason: req.reason };
        let outcome = self
            .app
            .execute(&ctx, &req.order_id, action, req.expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::GetOrder)?;
        let req = request.into_inner();
        let loaded = self.app.load_order(&req.order_id).await?;
        let revision = loaded
            .revision
            .filter(|_| loaded.state.status != OrderStatus::New)
            .ok_or_else(|| AppError::NotFound("订单不存在".into()))?;
        let view = self
            .app
            .visible_order(&ctx, &loaded.state, revision)
            .await?;
        Ok(Response::new(pb::GetOrderResponse { order: Some(view) }))
    }

    async fn list_my_orders(
        &self,
        request: Request<pb::ListMyOrdersRequest>,
    ) -> Result<Response<pb::ListMyOrdersResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ListMyOrders)?;
        let req = request.into_inner();
        let page = self
            .app
            .my_orders(&ctx, &req.status, req.limit, req.min_position)
            .await?;
        Ok(Response::new(pb::ListMyOrdersResponse {
            orders: page.orders,
            position: page.position,
        }))
    }

    async fn get_order_history(
        &self,
        request: Request<pb::GetOrderHistoryRequest>,
    ) -> Result<Response<pb::GetOrderHistoryResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::GetOrderHistory)?;
        let req = request.into_inner();
        let loaded = self.app.load_order(&req.order_id).await?;
        if loaded.revision.is_none() {
            return Err(AppError::NotFound("订单不存在".into()).into());
        }
        self.app.order_access(&ctx, &loaded.state).await?;
        let recorded = self
            .app
            .store
            .read_stream(
                &order::stream_name(&req.order_id),
                0,
                Direction::Forward,
                10_000,
            )
            .await
            .map_err(AppError::from)?;
        let mut events = recorded
            .iter()
            .map(envelope)
            .collect::<Result<Vec<_>, _>>()?;
        self.app.open_history(&mut events).await?;
        Ok(Response::new(pb::GetOrderHistoryResponse { events }))
    }
}
