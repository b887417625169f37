//! 爱心超市: a redemption across its three streams.
//!
//! Reserving is three checked appends, each refusing what would break its invariant: the
//! volunteer's points are held (no overspend), then the item's stock reserved (no negative
//! stock; refused → the hold is released at once), then the redemption recorded with the hash
//! of its one-time code. Handing over and cancelling change the redemption first; [`settle`]
//! then brings the item and the points in line with it — called by the request and again by
//! the ledger's process manager for every such event in the log, so a crash between the steps
//! is finished by the runner, never left half done. A reservation interrupted before its
//! redemption was recorded is undone by the runner ([`undo_orphan`]).

use time::OffsetDateTime;

use diandan_runtime::{App, AppError, RequestContext, Result};
use diandan_workflows::ledger::points::{self, PointsAccount, PointsCommand};
use diandan_workflows::ledger::shop::{
    self, Item, ItemCommand, Redemption, RedemptionCommand, RedemptionStatus,
};
use diandan_workflows::ledger::Centipoints;

use crate::streams::{execute, load};

pub use diandan_workflows::ledger::shop::CODE_LIFETIME;

/// The one-time code's purpose, in its HMAC.
const CODE_PURPOSE: &str = "redemption";

/// A sub-step of a command, with its own command id (each stream dedups by it).
fn step(ctx: &RequestContext, name: &str) -> RequestContext {
    let mut ctx = ctx.clone();
    ctx.command_id = format!("{}/{name}", ctx.command_id);
    ctx
}

/// The redemption id a reservation command gets: the same for a resent command.
pub fn redemption_id_for(ctx: &RequestContext) -> String {
    let uuid = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{}/{}", ctx.claims.sub, ctx.command_id).as_bytes(),
    );
    format!("R{}", &uuid.simple().to_string()[..11].to_uppercase())
}

/// The one-time code of a redemption (shown to its volunteer; only its hash is recorded).
pub fn code_of(app: &App, redemption_id: &str) -> String {
    app.signer.one_time_code(CODE_PURPOSE, redemption_id)
}

/// Reserves `quantity` of `item` for the calling volunteer. Returns the redemption.
pub async fn reserve(
    app: &App,
    ctx: &RequestContext,
    item: &Item,
    quantity: i64,
) -> Result<Redemption> {
    let volunteer = ctx.claims.sub.clone();
    let quantity = shop::quantity_of(quantity, shop::MAX_QUANTITY)?;
    let cost: Centipoints = item.points * Centipoints::from(quantity);
    let redemption_id = redemption_id_for(ctx);
    let now = app.clock.now();

    // A resent reservation finds its redemption and answers with it.
    let existing = load::<Redemption>(app, &redemption_id).await?;
    if existing.exists() {
        return Ok(existing.state);
    }

    let hold = PointsCommand::Hold {
        redemption_id: redemption_id.clone(),
        points: cost,
    };
    let held = execute::<PointsAccount>(app, &step(ctx, "hold"), &volunteer, |l| {
        Ok(points::decide(&l.state, &volunteer, &hold, now)?)
    })
    .await?;
    if !held.state.held.contains_key(&redemption_id) {
        // This reservation was sent before and refused (its hold already given back): sent
        // again, it must not go on without points held.
        return Err(AppError::Conflict {
            field: None,
            message: "这次兑换已失败（积分已退回），请重新发起兑换".into(),
        });
    }

    let reserve = ItemCommand::Reserve {
        redemption_id: redemption_id.clone(),
        quantity: i64::from(quantity),
    };
    let reserved = execute::<Item>(app, &step(ctx, "stock"), &item.item_id, |l| {
        Ok(shop::decide_item(&l.state, &reserve)?)
    })
    .await;
    if let Err(refused) = reserved {
        // Out of stock (or the item changed): the points come back, then the refusal.
        release_points(app, &step(ctx, "release"), &volunteer, &redemption_id).await?;
        return Err(refused);
    }

    let record = RedemptionCommand::Reserve {
        redemption_id: redemption_id.clone(),
        volunteer_id: volunteer.clone(),
        item: item.clone(),
        quantity,
        code: code_of(app, &redemption_id),
        expires_at: now + CODE_LIFETIME,
    };
    let written = execute::<Redemption>(app, &step(ctx, "record"), &redemption_id, |l| {
        Ok(shop::decide_redemption(&l.state, &record, now)?)
    })
    .await?;
    Ok(written.state)
}

/// The shop hands the goods over against the one-time code.
pub async fn hand_over(
    app: &App,
    ctx: &RequestContext,
    redemption_id: &str,
    code: &str,
) -> Result<Changed> {
    let command = RedemptionCommand::HandOver {
        code: code.to_owned(),
        by: ctx.claims.sub.clone(),
    };
    change(app, ctx, redemption_id, command).await
}

/// Cancels a reservation (the volunteer, the shop, or the runner when its code lapsed): the
/// stock and the points come back.
pub async fn cancel(
    app: &App,
    ctx: &RequestContext,
    redemption_id: &str,
    reason: &str,
) -> Result<Changed> {
    let command = RedemptionCommand::Cancel {
        by: ctx.claims.sub.clone(),
        reason: reason.to_owned(),
    };
    change(app, ctx, redemption_id, command).await
}

/// A redemption as a change left it, and the log position of the change's last write (0:
/// nothing written) — what a read of the catalogue or the points after it waits for.
#[derive(Debug, Clone)]
pub struct Changed {
    pub redemption: Redemption,
    pub position: u64,
}

/// Changes an existing redemption, then settles its stock and points.
async fn change(
    app: &App,
    ctx: &RequestContext,
    redemption_id: &str,
    command: RedemptionCommand,
) -> Result<Changed> {
    let now = app.clock.now();
    let written = execute::<Redemption>(app, ctx, redemption_id, |l| {
        if !l.exists() {
            return Err(AppError::NotFound(format!("兑换「{redemption_id}」不存在")));
        }
        Ok(shop::decide_redemption(&l.state, &command, now)?)
    })
    .await?;
    let settled = settle(app, &written.state).await?;
    Ok(Changed {
        redemption: written.state,
        position: written.position.max(settled),
    })
}

/// Brings the item's stock and the volunteer's points in line with a redemption that was
/// handed over (stock handed over, points spent) or cancelled (both released). Idempotent.
/// Returns the position of its last write (0: nothing to do).
pub async fn settle(app: &App, redemption: &Redemption) -> Result<u64> {
    let id = &redemption.redemption_id;
    let (item_command, step_name) = match redemption.status {
        RedemptionStatus::HandedOver => (
            ItemCommand::HandOver {
                redemption_id: id.clone(),
            },
            "handed-over",
        ),
        RedemptionStatus::Cancelled => (
            ItemCommand::Release {
                redemption_id: id.clone(),
            },
            "released",
        ),
        RedemptionStatus::New | RedemptionStatus::Reserved => return Ok(0),
    };
    let ctx = RequestContext::system(format!("ledger/settle/{id}/{step_name}"));
    let stock = execute::<Item>(app, &step(&ctx, "stock"), &redemption.item_id, |l| {
        Ok(shop::decide_item(&l.state, &item_command)?)
    })
    .await?;
    let now = app.clock.now();
    let volunteer = &redemption.volunteer_id;
    let points = execute::<PointsAccount>(app, &step(&ctx, "points"), volunteer, |l| {
        if !l.state.held.contains_key(id) {
            return Ok(Vec::new());
        }
        let command = match redemption.status {
            RedemptionStatus::HandedOver => PointsCommand::Spend {
                redemption_id: id.clone(),
            },
            _ => PointsCommand::Release {
                redemption_id: id.clone(),
            },
        };
        Ok(points::decide(&l.state, volunteer, &command, now)?)
    })
    .await?;
    Ok(stock.position.max(points.position))
}

async fn release_points(
    app: &App,
    ctx: &RequestContext,
    volunteer: &str,
    redemption_id: &str,
) -> Result<()> {
    let now = app.clock.now();
    let release = PointsCommand::Release {
        redemption_id: redemption_id.to_owned(),
    };
    execute::<PointsAccount>(app, ctx, volunteer, |l| {
        Ok(points::decide(&l.state, volunteer, &release, now)?)
    })
    .await?;
    Ok(())
}

/// Undoes a reservation interrupted before its redemption was recorded: the held points and
/// the reserved stock come back.
pub async fn undo_orphan(
    app: &App,
    redemption_id: &str,
    volunteer: Option<&str>,
    item_id: Option<&str>,
) -> Result<()> {
    let ctx = RequestContext::system(format!("ledger/orphan/{redemption_id}"));
    if let Some(item_id) = item_id {
        let release = ItemCommand::Release {
            redemption_id: redemption_id.to_owned(),
        };
        execute::<Item>(app, &step(&ctx, "stock"), item_id, |l| {
            Ok(shop::decide_item(&l.state, &release)?)
        })
        .await?;
    }
    if let Some(volunteer) = volunteer {
        release_points(app, &step(&ctx, "points"), volunteer, redemption_id).await?;
    }
    Ok(())
}

/// The redemption's status as the API names it.
pub fn status_name(status: RedemptionStatus) -> &'static str {
    match status {
        RedemptionStatus::New => "new",
        RedemptionStatus::Reserved => "reserved",
        RedemptionStatus::HandedOver => "handed_over",
        RedemptionStatus::Cancelled => "cancelled",
    }
}

/// Has the code lapsed at `now`?
pub fn lapsed(redemption: &Redemption, now: OffsetDateTime) -> bool {
    redemption.expires_at.is_some_and(|e| now > e)
}
