//! The dispatch service (审单, 派单): station heads triage orders of their subtree and dispatch
//! them to a team or helper unit at the station, its institute or the centre (层层派单).

use futures::StreamExt;
use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::dispatch_service_server::DispatchService;
use diandan_runtime::{App, AppError};
use diandan_workflows::order::{Action, Assignee};
use diandan_workflows::permissions::Operation;
use diandan_workflows::validate;

pub struct Dispatch {
    app: App,
}

impl Dispatch {
    pub fn new(app: App) -> Dispatch {
        Dispatch { app }
    }

    pub fn into_server(self) -> pb::dispatch_service_server::DispatchServiceServer<Dispatch> {
        pb::dispatch_service_server::DispatchServiceServer::new(self)
    }
}

impl Dispatch {
    /// The team an order may go to (派单, 返工), and the reason to record when none is given.
    async fn assignee(
        &self,
        order: &diandan_workflows::order::OrderState,
        team_id: &str,
    ) -> Result<(Assignee, String), AppError> {
        validate::id("team_id", team_id)?;
        let team = self
            .app
            .directory
            .team(team_id)
            .await?
            .ok_or_else(|| AppError::missing("team_id", format!("队伍「{team_id}」不存在")))?;
        let node = self
            .app
            .directory
            .node(&team.node_id)
            .await?
            .ok_or_else(|| AppError::invalid("team_id", "队伍所属节点不存在"))?;
        // A team may serve an order at its own node's level or below: a station's team serves
        // that station, an institute's team its stations, the centre's team everywhere.
        if !self
            .app
            .directory
            .is_within(&order.station_id, &team.node_id)
            .await?
        {
            // Well formed, but that team does not serve where the order is: a conflict with
            // the tree, not a malformed request.
            return Err(AppError::Conflict {
                field: Some("team_id"),
                message: format!("队伍「{}」不服务该订单所在的实践站", team.name),
            });
        }
        let reason = format!("站长指派：{}（{}）", team.name, node.name);
        let assignee = Assignee {
            team_id: team.id.clone(),
            kind: team.kind,
            node_id: node.id.clone(),
            level: node.level,
        };
        Ok((assignee, reason))
    }
}

#[tonic::async_trait]
impl DispatchService for Dispatch {
    async fn triage_order(
        &self,
        request: Request<pb::TriageOrderRequest>,
    ) -> Result<Response<pb::TriageOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::TriageOrder)?;
        let req = request.into_inner();
        self.app.placed_order_in_scope(&ctx, &req.order_id).await?;
        let action = Action::Triage {
            accept: req.accept,
            reason: req.reason,
        };
        let outcome = self
            .app
            .execute(&ctx, &req.order_id, action, req.expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }

    async fn dispatch_order(
        &self,
        request: Request<pb::DispatchOrderRequest>,
    ) -> Result<Response<pb::DispatchOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::DispatchOrder)?;
        let mut req = request.into_inner();
        let order = self.app.placed_order_in_scope(&ctx, &req.order_id).await?;
        if req.auto && req.team_id.is_empty() {
            // 自动派单: the rules' first suggestion, with its reasons on the record.
            let suggestions = self.app.suggest_teams(&order).await?;
            let top = suggestions.top();
            req.team_id = top.team_id.clone();
            req.reason = format!("自动派单：{}", top.reason);
        }
        let (assignee, default_reason) = self.assignee(&order, &req.team_id).await?;
        let reason = if req.reason.trim().is_empty() {
            default_reason
        } else {
            req.reason
        };
        let action = Action::Dispatch { assignee, reason };
        let outcome = self
            .app
            .execute(&ctx, &req.order_id, action, req.expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }

    async fn merge_order(
        &self,
        request: Request<pb::MergeOrderRequest>,
    ) -> Result<Response<pb::MergeOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::MergeOrder)?;
        let req = request.into_inner();
        let outcome = self
            .app
            .merge_orders(
                &ctx,
                &req.order_id,
                &req.into,
                req.reason,
                req.expected_revision,
            )
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }

    async fn rework_order(
        &self,
        request: Request<pb::ReworkOrderRequest>,
    ) -> Result<Response<pb::ReworkOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ReworkOrder)?;
        let req = request.into_inner();
        let order = self.app.placed_order_in_scope(&ctx, &req.order_id).await?;
        let (assignee, _) = self.assignee(&order, &req.team_id).await?;
        let action = Action::Rework {
            assignee,
            reason: req.reason,
        };
        let outcome = self
            .app
            .execute(&ctx, &req.order_id, action, req.expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }

    async fn follow_up_order(
        &self,
        request: Request<pb::FollowUpOrderRequest>,
    ) -> Result<Response<pb::FollowUpOrderResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::FollowUpOrder)?;
        let req = request.into_inner();
        self.app.placed_order_in_scope(&ctx, &req.order_id).await?;
        let action = Action::FollowUp { note: req.note };
        let outcome = self
            .app
            .execute(&ctx, &req.order_id, action, req.expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }

    async fn decide_extension(
        &self,
        request: Request<pb::DecideExtensionRequest>,
    ) -> Result<Response<pb::DecideExtensionResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::DecideExtension)?;
        let req = request.into_inner();
        self.app.placed_order_in_scope(&ctx, &req.order_id).await?;
        let action = Action::DecideExtension {
            deadline: req.deadline,
            approve: req.approve,
            reason: req.reason,
        };
        let outcome = self
            .app
            .execute(&ctx, &req.order_id, action, req.expected_revision)
            .await?;
        Ok(Response::new(outcome.reply(&req.order_id)))
    }

    async fn suggest_teams(
        &self,
        request: Request<pb::SuggestTeamsRequest>,
    ) -> Result<Response<pb::SuggestTeamsResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::SuggestTeams)?;
        let req = request.into_inner();
        let order = self.app.placed_order_in_scope(&ctx, &req.order_id).await?;
        let suggestions = self.app.suggest_teams(&order).await?;
        Ok(Response::new(pb::SuggestTeamsResponse {
            level: suggestions.level.as_str().to_owned(),
            passed_over: suggestions
                .passed_over
                .iter()
                .filter_map(|report| order.category.map(|c| report.reason_zh(c)))
                .collect(),
            suggestions: suggestions
                .ranked
                .iter()
                .map(|s| pb::TeamSuggestion {
                    team_id: s.team_id.clone(),
                    team_name: s.team_name.clone(),
                    level: s.level.as_str().to_owned(),
                    score: s.score,
                    distance_km: s.distance_km.unwrap_or(-1.0),
                    open_load: s.open_load,
                    capacity: s.capacity,
                    recent_assignments: s.recent_assignments,
                    reason: s.reason.clone(),
                })
                .collect(),
        }))
    }

    type WatchQueueStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::WatchQueueResponse, Status>> + Send>,
    >;

    /// 派单台, live: the queue now, then again whenever it changes. A node outside the caller's
    /// subtree is refused before anything is streamed; the stream ends when the caller's token
    /// expires (the console signs in again) or the caller hangs up.
    async fn watch_queue(
        &self,
        request: Request<pb::WatchQueueRequest>,
    ) -> Result<Response<Self::WatchQueueStream>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::WatchQueue)?;
        let req = request.into_inner();
        let first = self
            .app
            .station_queue(&ctx, &req.node_id, req.limit, 0)
            .await?;
        let snapshot = pb::WatchQueueResponse {
            orders: first.orders.clone(),
            position: first.position,
        };
        let watch = Watch {
            app: self.app.clone(),
            ctx,
            node_id: req.node_id,
            limit: req.limit,
            last: first.orders,
            position: first.position,
            ended: false,
        };
        let changes = futures::stream::unfold(watch, Watch::next_change);
        let stream = futures::stream::once(async move { Ok(snapshot) }).chain(changes);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn station_queue(
        &self,
        request: Request<pb::StationQueueRequest>,
    ) -> Result<Response<pb::StationQueueResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::StationQueue)?;
        let req = request.into_inner();
        let page = self
            .app
            .station_queue(&ctx, &req.node_id, req.limit, req.min_position)
            .await?;
        Ok(Response::new(pb::StationQueueResponse {
            orders: page.orders,
            position: page.position,
        }))
    }
}

/// A watched queue: what was last sent, and the read model position it reflected.
struct Watch {
    app: App,
    ctx: diandan_runtime::RequestContext,
    node_id: String,
    limit: u32,
    last: Vec<pb::OrderView>,
    position: u64,
    ended: bool,
}

/// How long a watch waits for the read model to move before looking again (the token's
/// expiry is checked between waits).
const WATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often an idle watch looks at the stored checkpoint for another process's progress (its
/// own process's wakes it at once): a board sees a change within this, at 4 reads a second.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(250);

impl Watch {
    /// The next snapshot that differs from the last one sent.
    async fn next_change(mut self) -> Option<(Result<pb::WatchQueueResponse, Status>, Watch)> {
        if self.ended {
            return None;
        }
        loop {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if self.ctx.claims.exp < now {
                self.ended = true;
                let expired = Status::unauthenticated("登录已过期，请重新登录");
                return Some((Err(expired), self));
            }
            let reached = self
                .app
                .read
                .wait_polling(self.position + 1, WATCH_POLL, WATCH_WAIT)
                .await;
            if reached <= self.position {
                continue;
            }
            self.position = reached;
            match self
                .app
                .station_queue(&self.ctx, &self.node_id, self.limit, 0)
                .await
            {
                Ok(page) if page.orders != self.last => {
                    self.last = page.orders.clone();
                    let snapshot = pb::WatchQueueResponse {
                        orders: page.orders,
                        position: page.position,
                    };
                    return Some((Ok(snapshot), self));
                }
                Ok(_) => {}
                Err(error) => {
                    self.ended = true;
                    return Some((Err(error.into()), self));
                }
            }
        }
    }
}
