//! 认领微心愿 / 活动招募: the open claim.
//!
//! A resident makes a wish (or a station head organises an activity), the station head
//! publishes it (审核发布) to the volunteers eligible for it, and volunteers claim seats
//! themselves: one for a micro-wish, N for an activity (a Saturday clean-up needing 12).
//! The claim that takes the last seat fills it (`claimed`); a later claim is refused
//! ([`DomainError::Full`]). Each claim is one append with the expected revision, so two
//! volunteers racing for the last seat cannot both win. A claimant may withdraw before
//! checking in; each claimant checks in and out on their own and earns their own hours; the
//! organiser (the station head) completes it once someone has served; the resident — or the
//! station, for its own activity — reviews it.
//!
//! The transition table is [`TABLE`].

use crate::engine::{row, Decision, Table, Target};
use crate::order::decide::{cancel, complete, place, review, service, triage};
use crate::order::{Action, OrderChange, OrderState, Status, FILL};
use crate::validate::{self, MAX_SHORT_TEXT_CHARS};
use crate::{DomainError, Role};

use Role::{Resident, StationHead, System, Volunteer};
use Status::*;

/// The name of the workflow in definitions.
pub const WORKFLOW: &str = "open-claim";

/// The open claim's transition table.
pub static TABLE: Table = Table {
    workflow: WORKFLOW,
    title: "认领微心愿 / 活动招募",
    states: &[
        New, Placed, Rejected, Published, Claimed, Completed, Reviewed, Closed, Cancelled,
    ],
    rows: &[
        row(
            "place",
            None,
            &[New],
            Target::To(Placed),
            &[Resident, StationHead],
            "许愿",
        ),
        row(
            "triage",
            None,
            &[Placed],
            Target::To(Published),
            &[StationHead],
            "审核发布",
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
            "claim",
            None,
            &[Published],
            Target::Stay,
            &[Volunteer],
            "认领",
        ),
        row(
            "claim",
            Some(FILL),
            &[Published],
            Target::To(Claimed),
            &[Volunteer],
            "认领满员",
        ),
        row(
            "unclaim",
            None,
            &[Published],
            Target::Stay,
            &[Volunteer],
            "放弃认领",
        ),
        row(
            "unclaim",
            None,
            &[Claimed],
            Target::To(Published),
            &[Volunteer],
            "放弃认领",
        ),
        row(
            "check_in",
            None,
            &[Published, Claimed],
            Target::Stay,
            &[Volunteer],
            "签到",
        ),
        row(
            "check_out",
            None,
            &[Published, Claimed],
            Target::Stay,
            &[Volunteer],
            "签退",
        ),
        row(
            "complete",
            None,
            &[Published, Claimed],
            Target::To(Completed),
            &[StationHead],
            "办结",
        ),
        row(
            "review",
            None,
            &[Completed],
            Target::To(Reviewed),
            &[Resident, StationHead, System],
            "评单",
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
            &[Placed, Published, Claimed],
            Target::To(Cancelled),
            &[Resident, StationHead],
            "撤回",
        ),
    ],
    outcome,
    decide,
};

/// The claim that takes the last seat fills the order.
fn outcome(action: &Action, state: &OrderState) -> Option<&'static str> {
    match action {
        Action::Triage { accept: false, .. } => Some("reject"),
        Action::Claim { .. } if state.claims.len() + 1 >= state.required_volunteers as usize => {
            Some(FILL)
        }
        _ => None,
    }
}

fn decide(d: &Decision<'_>) -> Result<OrderChange, DomainError> {
    let state = d.state;
    let actor = &d.command.meta.actor;
    Ok(match &d.command.action {
        // A station head organises an activity in the station's own name.
        Action::Place { .. } => place(d, true)?,
        Action::Triage { .. } => triage(d)?,
        Action::Claim { team_id } => {
            validate::id("team_id", team_id)?;
            if state.claims.contains_key(&actor.id) {
                return Err(DomainError::conflict("order_id", "你已认领该订单"));
            }
            OrderChange::Claimed {
                volunteer_id: actor.id.clone(),
                team_id: team_id.clone(),
                filled: outcome(&d.command.action, state) == Some(FILL),
            }
        }
        Action::Unclaim { reason } => {
            let seat = seat(state, &actor.id)?;
            if seat.checked_in_at.is_some() {
                return Err(DomainError::conflict("order_id", "已签到，不能再放弃认领"));
            }
            OrderChange::Unclaimed {
                volunteer_id: actor.id.clone(),
                reason: validate::text("reason", reason, 0, MAX_SHORT_TEXT_CHARS)?,
            }
        }
        Action::CheckIn { .. } => {
            if seat(state, &actor.id)?.checked_in_at.is_some() {
                return Err(DomainError::conflict("order_id", "你已签到"));
            }
            service(d, None)?
        }
        Action::CheckOut { .. } => {
            let seat = seat(state, &actor.id)?;
            if seat.checked_in_at.is_none() {
                return Err(DomainError::conflict("order_id", "尚未签到，不能签退"));
            }
            if seat.checked_out_at.is_some() {
                return Err(DomainError::conflict("order_id", "你已签退"));
            }
            service(d, seat.checked_in_at)?
        }
        // A claimant who never checks out does not hold the activity hostage: the organiser
        // completes once someone has served; an open seat earns nothing (its hours can be
        // corrected by hand, with a reason).
        Action::Complete { note, photos } => {
            if !state.claims.values().any(|s| s.checked_out_at.is_some()) {
                return Err(DomainError::conflict(
                    "order_id",
                    "还没有志愿者完成服务（签到并签退），不能办结",
                ));
            }
            complete(note, photos)?
        }
        Action::Review { .. } => review(d, true)?,
        Action::Close => OrderChange::OrderClosed,
        Action::Cancel { reason } => {
            if d.acting_as == Resident && actor.id != state.requester_id {
                return Err(DomainError::Forbidden("只有许愿的居民可以撤回".into()));
            }
            if state.claims.values().any(|s| s.checked_in_at.is_some()) {
                return Err(DomainError::conflict(
                    "order_id",
                    "已有志愿者签到服务，不能撤回",
                ));
            }
            cancel(reason)?
        }
        other => unreachable!("{} has no row in {WORKFLOW}", other.command()),
    })
}

fn seat<'a>(
    state: &'a OrderState,
    volunteer_id: &str,
) -> Result<&'a crate::order::Seat, DomainError> {
    state
        .claims
        .get(volunteer_id)
        .ok_or_else(|| DomainError::Forbidden("你没有认领该订单".into()))
}
