//! The reviews service (评单): the requester rates a completed order; staff archive it.

use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::review_service_server::ReviewService;
use diandan_runtime::App;
use diandan_workflows::order::Action;
use diandan_workflows::permissions::Operation;

pub struct Reviews {
    app: App,
}

impl Reviews {
    pub fn new(app: App) -> Reviews {
        Reviews { app }
    }

    pub fn into_server(self) -> pb::review_service_server::ReviewServiceServer<Reviews> {
        pb::review_service_server::ReviewServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl ReviewService for Reviews {
    async fn review_order(
        &self,
        request: Request<pb::ReviewOrderRequest>,
    ) -> Result<Response<pb::ReviewOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ReviewOrder)?;
        let req = request.into_inner();
        let action = Action::Review {
            rating: req.rating,
            comment: req.comment,
        };
        let outcome = self
            .app
            .execute(&ctx, &req.order_id, action, req.expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }

    async fn close_order(
        &self,
        request: Request<pb::CloseOrderRequest>,
    ) -> Result<Response<pb::CloseOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::CloseOrder)?;
        let req = request.into_inner();
        self.app.placed_order_in_scope(&ctx, &req.order_id).await?;
        let outcome = self
            .app
            .execute(&ctx, &req.order_id, Action::Close, req.expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }
}
