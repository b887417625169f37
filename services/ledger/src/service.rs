//! `LedgerService` over gRPC: each method asks the permission table first
//! ([`App::authorize`]), checks the scope against what the request names, then runs the
//! domain's decision against the stream.

use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::ledger_service_server::LedgerService;
use diandan_runtime::projections::ledger as read;
use diandan_runtime::views::rfc3339;
use diandan_runtime::{App, AppError, RequestContext, Result};
use diandan_workflows::ledger::hours::{self, HoursCommand, HoursRecord};
use diandan_workflows::ledger::points::PointsAccount;
use diandan_workflows::ledger::shop::{self, Item, ItemCommand, Redemption, RedemptionStatus};
use diandan_workflows::permissions::{Operation, Scope};
use diandan_workflows::validate;

use crate::streams::{execute, load};

use diandan_workflows::ledger::shop::{MAX_PRICE, MAX_STOCK};

/// Rankings list at most this many (a page).
pub const MAX_RANKING: u32 = validate::MAX_PAGE_SIZE;

/// The star ranks' thresholds in hours (`DIANDAN_RANK_HOURS=100,300,600,1000,1500`).
pub fn rank_hours() -> Vec<u32> {
    std::env::var("DIANDAN_RANK_HOURS")
        .ok()
        .and_then(|v| {
            let parsed: Option<Vec<u32>> = v.split(',').map(|h| h.trim().parse().ok()).collect();
            parsed.filter(|h| !h.is_empty() && h.windows(2).all(|w| w[0] < w[1]))
        })
        .unwrap_or_else(|| hours::DEFAULT_RANK_HOURS.to_vec())
}

fn rfc3339_ms(ms: i64) -> String {
    rfc3339(OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
}

pub struct Ledger {
    app: App,
}

impl Ledger {
    pub fn new(app: App) -> Ledger {
        Ledger { app }
    }

    pub fn into_server(self) -> pb::ledger_service_server::LedgerServiceServer<Ledger> {
        pb::ledger_service_server::LedgerServiceServer::new(self)
    }

    /// The volunteer a request names, within the caller's scope: a volunteer themself; staff
    /// and auditors those of their subtree's teams.
    async fn volunteer_in_scope(&self, ctx: &RequestContext, id: &str) -> Result<String> {
        let id = if id.is_empty() {
            ctx.claims.sub.clone()
        } else {
            validate::id("volunteer_id", id)?;
            id.to_owned()
        };
        match ctx.scope {
            Scope::Own if id == ctx.claims.sub => Ok(id),
            Scope::Own => Err(AppError::Forbidden("只能查看本人的时长与积分".into())),
            _ => Ok(self.app.directory.managed_volunteer(ctx, &id).await?.id),
        }
    }

    /// Runs an hours command (review, correction, hours by hand) on a volunteer of the caller's.
    /// The volunteer is checked before the request's other fields are read (`command`).
    async fn hours_command(
        &self,
        ctx: &RequestContext,
        volunteer_id: &str,
        command: impl FnOnce() -> Result<HoursCommand>,
    ) -> Result<pb::LedgerAck> {
        if volunteer_id.is_empty() {
            return Err(AppError::invalid("volunteer_id", "请填写志愿者编号"));
        }
        let volunteer = self.volunteer_in_scope(ctx, volunteer_id).await?;
        let command = command()?;
        let now = self.app.clock.now();
        let actor = ctx.claims.sub.clone();
        let written = execute::<HoursRecord>(&self.app, ctx, &volunteer, |l| {
            Ok(hours::decide(&l.state, &command, &actor, now)?)
        })
        .await?;
        Ok(written.ack())
    }

    /// The nodes whose love supermarkets a volunteer may use: their teams' nodes and above.
    async fn shops_of_volunteer(&self, volunteer_id: &str) -> Result<Vec<String>> {
        let directory = &self.app.directory;
        let volunteer = directory
            .volunteer(volunteer_id)
            .await?
            .ok_or_else(|| AppError::Forbidden("只有登记在册的志愿者可以兑换".into()))?;
        if !volunteer.active {
            return Err(AppError::Forbidden(
                "你的志愿者身份已停用，请联系站点".into(),
            ));
        }
        let mut nodes = Vec::new();
        for team_id in &volunteer.team_ids {
            if let Some(team) = directory.team(team_id).await? {
                for node in directory.lineage(&team.node_id).await? {
                    if !nodes.contains(&node.id) {
                        nodes.push(node.id.clone());
                    }
                }
            }
        }
        Ok(nodes)
    }

    /// An item the caller may see: a volunteer's shops, a head's subtree. Elsewhere: 404.
    async fn item_in_scope(&self, ctx: &RequestContext, item_id: &str) -> Result<Item> {
        validate::id("item_id", item_id)?;
        let item = load::<Item>(&self.app, item_id).await?.state;
        let missing = || AppError::missing("item_id", format!("商品「{item_id}」不存在"));
        if !item.exists() {
            return Err(missing());
        }
        let visible = match ctx.scope {
            Scope::All => true,
            Scope::Own => self
                .shops_of_volunteer(&ctx.claims.sub)
                .await?
                .contains(&item.node_id),
            _ => self
                .app
                .directory
                .require_scope(ctx, &item.node_id)
                .await
                .is_ok(),
        };
        if visible {
            Ok(item)
        } else {
            Err(missing())
        }
    }

    /// A redemption the caller may see: their own, or one at a shop of their subtree.
    async fn redemption_in_scope(
        &self,
        ctx: &RequestContext,
        redemption_id: &str,
    ) -> Result<(Redemption, Item)> {
        validate::id("redemption_id", redemption_id)?;
        let missing = || AppError::NotFound(format!("兑换「{redemption_id}」不存在"));
        let redemption = load::<Redemption>(&self.app, redemption_id).await?.state;
        if redemption.status == RedemptionStatus::New {
            return Err(missing());
        }
        let item = load::<Item>(&self.app, &redemption.item_id).await?.state;
        let visible = match ctx.scope {
            Scope::All => true,
            Scope::Own => redemption.volunteer_id == ctx.claims.sub,
            _ => self
                .app
                .directory
                .require_scope(ctx, &item.node_id)
                .await
                .is_ok(),
        };
        if visible {
            Ok((redemption, item))
        } else {
            Err(missing())
        }
    }

    /// A redemption as the API shows it: the code only to its volunteer, only while open.
    fn redemption_view(
        &self,
        ctx: &RequestContext,
        redemption: &Redemption,
        item_name: &str,
    ) -> pb::Redemption {
        let (code, qr_svg) = if redemption.volunteer_id == ctx.claims.sub
            && redemption.status == RedemptionStatus::Reserved
        {
            let code = crate::shop::code_of(&self.app, &redemption.redemption_id);
            let qr = qr_svg(&format!("DIANDAN:R:{}:{code}", redemption.redemption_id));
            (code, qr)
        } else {
            (String::new(), String::new())
        };
        pb::Redemption {
            redemption_id: redemption.redemption_id.clone(),
            volunteer_id: redemption.volunteer_id.clone(),
            item_id: redemption.item_id.clone(),
            item_name: item_name.to_owned(),
            quantity: redemption.quantity,
            centipoints: redemption.points,
            status: crate::shop::status_name(redemption.status).to_owned(),
            code,
            qr_svg,
            expires_at: rfc3339(redemption.expires_at),
            reserved_at: String::new(),
        }
    }
}

/// The one-time code as a QR code, an SVG image the mini-program shows.
pub fn qr_svg(content: &str) -> String {
    match qrcode::QrCode::new(content.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
        Err(_) => String::new(),
    }
}

fn service_view(row: read::ServiceRow) -> pb::ServiceHours {
    pb::ServiceHours {
        volunteer_id: row.volunteer_id,
        order_id: row.order_id,
        station_id: row.station_id,
        team_id: row.team_id,
        minutes: row.minutes,
        pending: row.pending,
        rejected: row.rejected,
        far_m: row.far_m,
        credited_at: row.credited_at,
    }
}

fn item_view(row: read::ItemRow) -> pb::ShopItem {
    pb::ShopItem {
        item_id: row.item_id,
        node_id: row.node_id,
        name: row.name,
        centipoints: row.centipoints,
        stock: row.stock,
        reserved: row.reserved,
        handed_over: row.handed_over,
    }
}

/// The service an hours command names: an order id, or `<order>~<round>` for a rework round.
pub const SERVICE_KEY_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}(~[0-9]{1,4})?$";

fn service_key(key: &str) -> Result<()> {
    let (order, round) = match key.split_once('~') {
        Some((order, round)) => (order, Some(round)),
        None => (key, None),
    };
    let round_ok =
        round.is_none_or(|r| (1..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_digit()));
    if validate::id("order_id", order).is_ok() && round_ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "order_id",
            "订单编号须为 1–64 位字母、数字、- 或 _（返工轮次：编号~轮次）",
        ))
    }
}

fn bounded(field: &'static str, value: i64, least: i64, most: i64, what: &str) -> Result<u32> {
    if (least..=most).contains(&value) {
        Ok(value as u32)
    } else {
        Err(AppError::invalid(
            field,
            format!("{what}须为 {least} 到 {most} 的整数"),
        ))
    }
}

#[tonic::async_trait]
impl LedgerService for Ledger {
    async fn get_volunteer_record(
        &self,
        request: Request<pb::GetVolunteerRecordRequest>,
    ) -> Result<Response<pb::GetVolunteerRecordResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::GetVolunteerRecord)?;
        let req = request.into_inner();
        let id = self.volunteer_in_scope(&ctx, &req.volunteer_id).await?;
        self.app.catch_up(req.min_position).await?;
        let record = load::<HoursRecord>(&self.app, &id).await?.state;
        let account = load::<PointsAccount>(&self.app, &id).await?.state;
        let credited = record.credited_minutes();
        let pending: i64 = record
            .services
            .values()
            .filter(|s| s.pending)
            .map(|s| s.minutes)
            .sum();
        let thresholds = rank_hours();
        let rank = hours::rank(credited.max(0) as u64, &thresholds);
        let hours_now = (credited.max(0) / 60) as u32;
        let next_rank_hours = thresholds
            .iter()
            .find(|&&t| t > hours_now)
            .map_or(0, |t| t - hours_now);
        let (services, redemptions) = {
            let id = id.clone();
            self.app
                .read
                .query(move |c| Ok((read::services_of(c, &id)?, read::redemptions_of(c, &id)?)))
                .await?
        };
        let redemptions = redemptions
            .into_iter()
            .map(
                |(rid, item_id, item_name, quantity, centipoints, status, expires, reserved)| {
                    let mut view = pb::Redemption {
                        redemption_id: rid.clone(),
                        volunteer_id: id.clone(),
                        item_id,
                        item_name,
                        quantity,
                        centipoints,
                        status: status.clone(),
                        code: String::new(),
                        qr_svg: String::new(),
                        expires_at: rfc3339_ms(expires),
                        reserved_at: rfc3339_ms(reserved),
                    };
                    if status == "reserved" && id == ctx.claims.sub {
                        view.code = crate::shop::code_of(&self.app, &rid);
                    }
                    view
                },
            )
            .collect();
        Ok(Response::new(pb::GetVolunteerRecordResponse {
            volunteer_id: id,
            credited_minutes: credited,
            by_hand_minutes: record.by_hand_minutes,
            pending_minutes: pending,
            rank: u32::from(rank),
            rank_name: hours::rank_name(rank).to_owned(),
            next_rank_hours,
            available_centipoints: account.available,
            held_centipoints: account.held_total(),
            spent_centipoints: account.spent_total,
            expired_centipoints: account.expired_total,
            services: services.into_iter().map(service_view).collect(),
            redemptions,
        }))
    }

    async fn list_rankings(
        &self,
        request: Request<pb::ListRankingsRequest>,
    ) -> Result<Response<pb::ListRankingsResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ListRankings)?;
        let req = request.into_inner();
        validate::id("node_id", &req.node_id).map_err(AppError::from)?;
        let by_team = match req.by.as_str() {
            "" | "volunteer" => false,
            "team" => true,
            _ => return Err(AppError::invalid("by", "排行方式须为 volunteer 或 team").into()),
        };
        let limit = match req.limit {
            0 => 50,
            n if n <= MAX_RANKING => n,
            _ => {
                return Err(
                    AppError::invalid("limit", format!("条数须为 1 到 {MAX_RANKING}")).into(),
                )
            }
        };
        self.app.directory.require_scope(&ctx, &req.node_id).await?;
        let path = self.app.directory.path(&req.node_id).await?;
        let rows = self
            .app
            .read
            .query(move |c| {
                if by_team {
                    read::rank_teams(c, &path, limit)
                } else {
                    read::rank_volunteers(c, &path, limit)
                }
            })
            .await?;
        let thresholds = rank_hours();
        let entries = rows
            .into_iter()
            .enumerate()
            .map(|(i, (id, name, minutes, services))| pb::RankingEntry {
                place: i as u32 + 1,
                id,
                name,
                credited_minutes: minutes,
                services,
                rank: if by_team {
                    0
                } else {
                    u32::from(hours::rank(minutes.max(0) as u64, &thresholds))
                },
            })
            .collect();
        Ok(Response::new(pb::ListRankingsResponse { entries }))
    }

    async fn list_pending_hours(
        &self,
        request: Request<pb::ListPendingHoursRequest>,
    ) -> Result<Response<pb::ListPendingHoursResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ListPendingHours)?;
        let req = request.into_inner();
        validate::id("node_id", &req.node_id).map_err(AppError::from)?;
        self.app.directory.require_scope(&ctx, &req.node_id).await?;
        let path = self.app.directory.path(&req.node_id).await?;
        self.app.catch_up(req.min_position).await?;
        let rows = self
            .app
            .read
            .query(move |c| read::pending_services(c, &path))
            .await?;
        Ok(Response::new(pb::ListPendingHoursResponse {
            services: rows.into_iter().map(service_view).collect(),
        }))
    }

    async fn review_hours(
        &self,
        request: Request<pb::ReviewHoursRequest>,
    ) -> Result<Response<pb::ReviewHoursResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ReviewHours)?;
        let req = request.into_inner();
        let ack = self
            .hours_command(&ctx, &req.volunteer_id, || {
                service_key(&req.order_id)?;
                match req.decision.as_str() {
                    "confirm" => Ok(HoursCommand::Confirm {
                        order_id: req.order_id.clone(),
                    }),
                    "reject" => Ok(HoursCommand::Reject {
                        order_id: req.order_id.clone(),
                        reason: req.reason.clone(),
                    }),
                    _ => Err(AppError::invalid(
                        "decision",
                        "审核结果须为 confirm 或 reject",
                    )),
                }
            })
            .await?;
        Ok(Response::new(pb::ReviewHoursResponse { ack: Some(ack) }))
    }

    async fn adjust_hours(
        &self,
        request: Request<pb::AdjustHoursRequest>,
    ) -> Result<Response<pb::AdjustHoursResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::AdjustHours)?;
        let req = request.into_inner();
        let ack = self
            .hours_command(&ctx, &req.volunteer_id, || {
                if req.order_id.is_empty() {
                    return Ok(HoursCommand::AddByHand {
                        minutes: req.minutes,
                        reason: req.reason.clone(),
                    });
                }
                service_key(&req.order_id)?;
                Ok(HoursCommand::Correct {
                    order_id: req.order_id.clone(),
                    delta_minutes: req.minutes,
                    reason: req.reason.clone(),
                })
            })
            .await?;
        Ok(Response::new(pb::AdjustHoursResponse { ack: Some(ack) }))
    }

    async fn list_shop_items(
        &self,
        request: Request<pb::ListShopItemsRequest>,
    ) -> Result<Response<pb::ListShopItemsResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ListShopItems)?;
        let req = request.into_inner();
        let min_position = req.min_position;
        let nodes = match ctx.scope {
            Scope::Own => {
                let shops = self.shops_of_volunteer(&ctx.claims.sub).await?;
                if req.node_id.is_empty() {
                    shops
                } else if shops.contains(&req.node_id) {
                    vec![req.node_id]
                } else {
                    return Err(AppError::Forbidden(format!(
                        "节点「{}」的爱心超市不对你开放",
                        req.node_id
                    ))
                    .into());
                }
            }
            _ => {
                let node = if req.node_id.is_empty() {
                    ctx.claims.node.clone().unwrap_or_default()
                } else {
                    req.node_id
                };
                validate::id("node_id", &node).map_err(AppError::from)?;
                self.app.directory.require_scope(&ctx, &node).await?;
                vec![node]
            }
        };
        // The caller's shops checked first: a refusal does not wait for the read model.
        self.app.catch_up(min_position).await?;
        let rows = self
            .app
            .read
            .query(move |c| read::items_at(c, &nodes))
            .await?;
        Ok(Response::new(pb::ListShopItemsResponse {
            items: rows.into_iter().map(item_view).collect(),
        }))
    }

    async fn add_shop_item(
        &self,
        request: Request<pb::AddShopItemRequest>,
    ) -> Result<Response<pb::AddShopItemResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::AddShopItem)?;
        let req = request.into_inner();
        validate::id("item_id", &req.item_id).map_err(AppError::from)?;
        validate::id("node_id", &req.node_id).map_err(AppError::from)?;
        let price = bounded(
            "centipoints",
            req.centipoints,
            1,
            MAX_PRICE,
            "单价（0.01 积分）",
        )?;
        let stock = bounded("stock", req.stock, 0, MAX_STOCK, "库存")?;
        self.app.directory.require_scope(&ctx, &req.node_id).await?;
        let command = ItemCommand::List {
            item_id: req.item_id.clone(),
            node_id: req.node_id,
            name: req.name,
            points: i64::from(price),
            stock,
        };
        let written = execute::<Item>(&self.app, &ctx, &req.item_id, |l| {
            Ok(shop::decide_item(&l.state, &command)?)
        })
        .await?;
        Ok(Response::new(pb::AddShopItemResponse {
            ack: Some(written.ack()),
        }))
    }

    async fn restock_shop_item(
        &self,
        request: Request<pb::RestockShopItemRequest>,
    ) -> Result<Response<pb::RestockShopItemResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::RestockShopItem)?;
        let req = request.into_inner();
        bounded("quantity", req.quantity, 1, MAX_STOCK, "补货数量")?;
        let item = self.item_in_scope(&ctx, &req.item_id).await?;
        let command = ItemCommand::Restock {
            quantity: req.quantity,
            reason: req.reason,
        };
        let written = execute::<Item>(&self.app, &ctx, &item.item_id, |l| {
            Ok(shop::decide_item(&l.state, &command)?)
        })
        .await?;
        Ok(Response::new(pb::RestockShopItemResponse {
            ack: Some(written.ack()),
        }))
    }

    async fn reserve_shop_item(
        &self,
        request: Request<pb::ReserveShopItemRequest>,
    ) -> Result<Response<pb::ReserveShopItemResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ReserveShopItem)?;
        let req = request.into_inner();
        shop::quantity_of(req.quantity, shop::MAX_QUANTITY).map_err(AppError::from)?;
        let item = self.item_in_scope(&ctx, &req.item_id).await?;
        let redemption = crate::shop::reserve(&self.app, &ctx, &item, req.quantity).await?;
        Ok(Response::new(pb::ReserveShopItemResponse {
            redemption: Some(self.redemption_view(&ctx, &redemption, &item.name)),
        }))
    }

    async fn get_redemption(
        &self,
        request: Request<pb::GetRedemptionRequest>,
    ) -> Result<Response<pb::GetRedemptionResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::GetRedemption)?;
        let req = request.into_inner();
        let (redemption, item) = self.redemption_in_scope(&ctx, &req.redemption_id).await?;
        Ok(Response::new(pb::GetRedemptionResponse {
            redemption: Some(self.redemption_view(&ctx, &redemption, &item.name)),
        }))
    }

    async fn hand_over_redemption(
        &self,
        request: Request<pb::HandOverRedemptionRequest>,
    ) -> Result<Response<pb::HandOverRedemptionResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::HandOverRedemption)?;
        let req = request.into_inner();
        let (_, item) = self.redemption_in_scope(&ctx, &req.redemption_id).await?;
        let changed =
            crate::shop::hand_over(&self.app, &ctx, &req.redemption_id, &req.code).await?;
        Ok(Response::new(pb::HandOverRedemptionResponse {
            redemption: Some(self.redemption_view(&ctx, &changed.redemption, &item.name)),
            position: changed.position,
        }))
    }

    async fn cancel_redemption(
        &self,
        request: Request<pb::CancelRedemptionRequest>,
    ) -> Result<Response<pb::CancelRedemptionResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::CancelRedemption)?;
        let req = request.into_inner();
        let (_, item) = self.redemption_in_scope(&ctx, &req.redemption_id).await?;
        let changed = crate::shop::cancel(&self.app, &ctx, &req.redemption_id, &req.reason).await?;
        Ok(Response::new(pb::CancelRedemptionResponse {
            redemption: Some(self.redemption_view(&ctx, &changed.redemption, &item.name)),
            position: changed.position,
        }))
    }
}
