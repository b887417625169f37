//! 点单派单: the dispatched order (点单 → 审单 → 派单 → 接单 → 服务 → 办结 → 评单 → 归档).
//!
//! A resident places an order, the station head triages it (or merges it into an earlier
//! order about the same thing), dispatches it to a team, a volunteer of that team accepts,
//! checks in and out, and completes it; the resident reviews it. A review of at most two
//! stars may send it back for rework (返工) or be followed up (回访).
//!
//! The transition table is [`TABLE`]; the README shows it rendered (`diandan workflows`).

use crate::engine::{row, Decision, Table, Target};
use crate::order::decide::{cancel, complete, place, review, service, triage};
use crate::order::{Action, OrderChange, OrderState, Status};
use crate::validate::{self, MAX_SHORT_TEXT_CHARS};
use crate::{DomainError, Role};

use Role::{Resident, StationHead, System, Volunteer};
use Status::*;

/// The name of the workflow in definitions.
pub const WORKFLOW: &str = "dispatched-order";

/// The highest rating that still allows rework or a follow-up.
pub const POOR_RATING: u32 = 2;

/// The dispatched order's transition table.
pub static TABLE: Table = Table {
    workflow: WORKFLOW,
    title: "点单派单",
    states: &[
        New, Placed, Triaged, Rejected, Merged, Dispatched, Accepted, InService, Served, Completed,
        Reviewed, Closed, Cancelled,
    ],
    rows: &[
        row(
            "place",
            None,
            &[New],
            Target::To(Placed),
            &[Resident, StationHead],
            "点单",
        ),
        row(
            "triage",
            None,
            &[Placed],
            Target::To(Triaged),
            &[StationHead],
            "审单",
        ),
        row(
            "triage",
            Some("reject"),
            &[Placed],
            Target::To(Rejected),
            &[StationHead],
            "驳回",
        ),
        row(
            "merge",
            None,
            &[Placed, Triaged],
            Target::To(Merged),
            &[StationHead],
            "合并",
        ),
        row(
            "dispatch",
            None,
            &[Triaged, Dispatched],
            Target::To(Dispatched),
            &[StationHead, System],
            "派单",
        ),
        row(
            "accept",
            None,
            &[Dispatched],
            Target::To(Accepted),
            &[Volunteer],
            "接单",
        ),
        row(
            "decline",
            None,
            &[Dispatched, Accepted],
            Target::To(Triaged),
            &[Volunteer],
            "退单",
        ),
        row(
            "check_in",
            None,
            &[Accepted],
            Target::To(InService),
            &[Volunteer],
            "签到",
        ),
        row(
            "check_out",
            None,
            &[InService],
            Target::To(Served),
            &[Volunteer],
            "签退",
        ),
        row(
            "complete",
            None,
            &[Served],
            Target::To(Completed),
            &[Volunteer],
            "办结",
        ),
        row(
            "review",
            None,
            &[Completed],
            Target::To(Reviewed),
            &[Resident, System],
            "评单",
        ),
        // A merged duplicate's requester reviews the surviving order too.
        row(
            "review",
            None,
            &[Reviewed],
            Target::Stay,
            &[Resident],
            "评单",
        ),
        row(
            "rework",
            None,
            &[Reviewed],
            Target::To(Dispatched),
            &[StationHead],
            "返工",
        ),
        row(
            "follow_up",
            None,
            &[Reviewed],
            Target::Stay,
            &[StationHead],
            "回访",
        ),
        row(
            "close",
            None,
            &[Reviewed],
            Target::To(Closed),
            &[StationHead, System],
            "归档",
        ),
        row(
            "cancel",
            None,
            &[Placed, Triaged, Dispatched],
            Target::To(Cancelled),
            &[Resident],
            "取消",
        ),
    ],
    outcome,
    decide,
};

fn outcome(action: &Action, _: &OrderState) -> Option<&'static str> {
    match action {
        Action::Triage { accept: false, .. } => Some("reject"),
        _ => None,
    }
}

fn decide(d: &Decision<'_>) -> Result<OrderChange, DomainError> {
    let state = d.state;
    let actor = &d.command.meta.actor;
    Ok(match &d.command.action {
        Action::Place { .. } => place(d, false)?,
        Action::Triage { .. } => triage(d)?,
        Action::Merge { into, reason } => {
            validate::id("into", into)?;
            if *into == state.order_id {
                return Err(DomainError::conflict("into", "不能把订单合并到它自己"));
            }
            OrderChange::OrderMerged {
                into: into.clone(),
                reason: validate::text("reason", reason, 0, MAX_SHORT_TEXT_CHARS)?,
            }
        }
        Action::Dispatch { assignee, reason } => {
            if state.assignee.as_ref().map(|a| &a.team_id) == Some(&assignee.team_id) {
                return Err(DomainError::conflict("team_id", "订单已派给该队伍"));
            }
            OrderChange::OrderDispatched {
                assignee: assignee.clone(),
                reason: validate::text("reason", reason, 0, MAX_SHORT_TEXT_CHARS)?,
            }
        }
        Action::Accept { team_id, member } => {
            require_assigned_team(state, team_id)?;
            if let Some(member) = member {
                validate::id("volunteer_id", member)?;
            }
            OrderChange::OrderAccepted {
                volunteer_id: member.clone().unwrap_or_else(|| actor.id.clone()),
                team_id: team_id.clone(),
            }
        }
        Action::Decline { team_id, reason } => {
            require_assigned_team(state, team_id)?;
            let returned_after_accept = state.status == Accepted;
            if returned_after_accept {
                require_accepting_volunteer(state, &actor.id)?;
            }
            OrderChange::OrderDeclined {
                volunteer_id: actor.id.clone(),
                team_id: team_id.clone(),
                reason: validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?,
                returned_after_accept,
            }
        }
        Action::CheckIn { .. } | Action::CheckOut { .. } => {
            require_accepting_volunteer(state, &actor.id)?;
            service(d, state.checked_in_at)?
        }
        Action::Complete { note, photos } => {
            require_accepting_volunteer(state, &actor.id)?;
            complete(note, photos)?
        }
        Action::Review { .. } => review(d, false)?,
        Action::Rework { assignee, reason } => {
            require_poor_rating(state)?;
            OrderChange::OrderReworked {
                assignee: assignee.clone(),
                reason: validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?,
            }
        }
        Action::FollowUp { note } => {
            require_poor_rating(state)?;
            OrderChange::FollowUpRecorded {
                note: validate::text("note", note, 1, MAX_SHORT_TEXT_CHARS)?,
            }
        }
        Action::Close => OrderChange::OrderClosed,
        Action::Cancel { reason } => {
            if actor.id != state.requester_id {
                return Err(DomainError::Forbidden("只有下单的居民可以取消订单".into()));
            }
            if !state.followers.is_empty() {
                return Err(DomainError::conflict(
                    "order_id",
                    "其他居民反映的同一问题已并入本单，不能取消",
                ));
            }
            cancel(reason)?
        }
        other => unreachable!("{} has no row in {WORKFLOW}", other.command()),
    })
}

/// A merge's surviving order: an earlier, still open order of the same station and workflow.
/// The caller loads it and asks before appending [`Action::Merge`].
pub fn check_merge_target(
    duplicate: &OrderState,
    survivor: &OrderState,
) -> Result<(), DomainError> {
    if survivor.status == New {
        return Err(DomainError::invalid("into", "要并入的订单不存在"));
    }
    if survivor.order_id == duplicate.order_id {
        return Err(DomainError::conflict("into", "不能把订单合并到它自己"));
    }
    if survivor.station_id != duplicate.station_id {
        return Err(DomainError::conflict("into", "只能并入同一实践站的订单"));
    }
    if survivor.workflow.as_ref().map(|w| &w.name) != duplicate.workflow.as_ref().map(|w| &w.name) {
        return Err(DomainError::conflict("into", "只能并入同一类工作流的订单"));
    }
    if survivor.status.is_final() || survivor.status == Reviewed {
        return Err(DomainError::conflict(
            "into",
            format!(
                "要并入的订单已「{}」，不能再并入",
                survivor.status.name_zh()
            ),
        ));
    }
    if survivor.placed_at > duplicate.placed_at {
        return Err(DomainError::conflict("into", "只能并入更早的订单"));
    }
    Ok(())
}

/// The round's lowest rating decides: one requester's complaint is not hidden by another's
/// praise.
fn require_poor_rating(state: &OrderState) -> Result<(), DomainError> {
    match state.round_ratings.iter().min() {
        Some(&rating) if rating <= POOR_RATING => Ok(()),
        _ => Err(DomainError::conflict(
            "rating",
            format!("只有 {POOR_RATING} 星及以下的评价可以返工或回访"),
        )),
    }
}

fn require_assigned_team(state: &OrderState, team_id: &str) -> Result<(), DomainError> {
    match &state.assignee {
        Some(assignee) if assignee.team_id == team_id => Ok(()),
        _ => Err(DomainError::Forbidden("该订单没有派给你所在的队伍".into())),
    }
}

fn require_accepting_volunteer(state: &OrderState, volunteer_id: &str) -> Result<(), DomainError> {
    match &state.accepted_by {
        Some((accepted_by, _)) if accepted_by == volunteer_id => Ok(()),
        _ => Err(DomainError::Forbidden("只有接单的志愿者可以操作".into())),
    }
}
