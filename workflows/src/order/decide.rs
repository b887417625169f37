//! `decide`: a command and the current state in, new events or a refusal out.
//!
//! The generic part lives here: find the row of the order's workflow table (through its
//! definition) for the status, the command and its outcome; check the actor's role against
//! it; then hand over to the workflow's own `decide` ([`Table::decide`]) for the actor and
//! the fields. The checks both workflows share (placing, triage, reviewing, …) are the
//! helpers below.

use super::command::{Action, Command};
use super::event::{OrderChange, OrderEvent};
use super::state::{OrderState, Status};
use crate::definition::Definition;
use crate::engine::{Decision, Table};
use crate::permissions::workflow_role;
use crate::validate::{
    self, MAX_DESCRIPTION_CHARS, MAX_NOTE_CHARS, MAX_PHOTOS, MAX_SHORT_TEXT_CHARS,
};
use crate::{Category, DomainError, Role};

/// Decides what a command does to an order running on `definition`. Pure: no I/O, no clock
/// (time comes in the command).
///
/// Checks, in order: the definition has a transition for the action from this status, the
/// actor's role may fire it, the actor is the right person (the requester, the accepting
/// volunteer, a claimant), the fields are valid. Scope checks that need the organisation
/// tree (is this station in the head's subtree? is this volunteer in that team? may they
/// claim?) are the caller's.
pub fn decide(
    definition: &Definition,
    state: &OrderState,
    command: &Command,
) -> Result<Vec<OrderEvent>, DomainError> {
    let action = &command.action;
    match action {
        Action::FireTimer {
            deadline,
            phase,
            due_at,
        } => return super::timers::fire(definition, state, command, deadline, *phase, *due_at),
        Action::RequestExtension { .. } | Action::DecideExtension { .. } => {
            return super::timers::extension(state, command)
        }
        Action::AbsorbDuplicate {
            order_id,
            requester_ids,
        } => return absorb_duplicate(state, command, order_id, requester_ids),
        _ => {}
    }
    let table: &Table = definition.table();
    let outcome = (table.outcome)(action, state);
    let Some(transition) = definition.transition(state.status.as_str(), action.command(), outcome)
    else {
        return Err(refusal(state, action));
    };
    // Definitions name the roles of the loop; an admin acts as a head, a leader as a volunteer.
    let acting_as = workflow_role(command.meta.actor.role);
    if !transition.roles.contains(&acting_as) {
        let who: Vec<&str> = transition.roles.iter().map(|r| r.name_zh()).collect();
        return Err(DomainError::Forbidden(format!(
            "只有{}可以{}",
            who.join("或"),
            action.name_zh()
        )));
    }
    let change = (table.decide)(&Decision {
        definition,
        state,
        command,
        acting_as,
    })?;
    Ok(vec![OrderEvent::new(command.meta.at, change)])
}

/// Why a command has no row here.
fn refusal(state: &OrderState, action: &Action) -> DomainError {
    match action {
        _ if state.status == Status::New => DomainError::NotFound,
        Action::Accept { .. } if state.accepted_by.is_some() => DomainError::AlreadyAccepted,
        Action::Claim { .. } if state.status == Status::Claimed => DomainError::Full,
        _ => DomainError::IllegalTransition {
            action: action.name_zh(),
            status: state.status.name_zh(),
        },
    }
}

/// The survivor's side of a merge (no row: its status does not change). Decided under the
/// survivor's revision, so a survivor closed, cancelled or merged meanwhile refuses it.
fn absorb_duplicate(
    state: &OrderState,
    command: &Command,
    order_id: &str,
    requester_ids: &[String],
) -> Result<Vec<OrderEvent>, DomainError> {
    if workflow_role(command.meta.actor.role) != Role::StationHead {
        return Err(DomainError::Forbidden("只有站长可以合并订单".into()));
    }
    if state.status == Status::New {
        return Err(DomainError::NotFound);
    }
    if state.status.is_final() {
        return Err(DomainError::conflict(
            "into",
            format!("要并入的订单已「{}」，不能再并入", state.status.name_zh()),
        ));
    }
    validate::id("order_id", order_id)?;
    let Some((requester_id, also)) = requester_ids.split_first() else {
        return Err(DomainError::invalid("requester_ids", "没有要跟进的居民"));
    };
    for id in requester_ids {
        validate::id("requester_id", id)?;
    }
    Ok(vec![OrderEvent::new(
        command.meta.at,
        OrderChange::DuplicateMerged {
            order_id: order_id.to_owned(),
            requester_id: requester_id.clone(),
            also: also.to_vec(),
        },
    )])
}

/// 点单: who the order is for and its fields. Staff may place only for a resident (制单),
/// unless the workflow lets a station place its own (an activity: `own_allowed`).
pub(crate) fn place(d: &Decision<'_>, own_allowed: bool) -> Result<OrderChange, DomainError> {
    let Action::Place {
        order_id,
        station_id,
        category,
        description,
        location,
        contact_phone,
        wanted_time,
        on_behalf_of,
        required_volunteers,
        workflow: _,
    } = &d.command.action
    else {
        unreachable!("place rows come with place actions")
    };
    let actor = &d.command.meta.actor;
    let activity = own_allowed && d.acting_as == Role::StationHead && on_behalf_of.is_none();
    let requester_id = match (d.acting_as, on_behalf_of) {
        (Role::Resident, None) => actor.id.clone(),
        // Who may fill in `on_behalf_of` depends on who is calling: a permission, not a
        // malformed request.
        (Role::Resident, Some(_)) => {
            return Err(DomainError::Forbidden(
                "on_behalf_of：只有工作人员可以代居民下单".into(),
            ))
        }
        (Role::StationHead, Some(resident)) => {
            validate::id("on_behalf_of", resident)?;
            resident.clone()
        }
        (Role::StationHead, None) if own_allowed => actor.id.clone(),
        (Role::StationHead, None) => {
            return Err(DomainError::Forbidden(
                "on_behalf_of：工作人员只能代居民下单（制单），须填写居民编号".into(),
            ))
        }
        _ => return Err(DomainError::Forbidden("只有居民或站长可以下单".into())),
    };
    validate::id("order_id", order_id)?;
    validate::id("station_id", station_id)?;
    let category = Category::parse(category)
        .ok_or_else(|| DomainError::invalid("category", format!("未知的服务类别「{category}」")))?;
    let description = validate::text("description", description, 1, MAX_DESCRIPTION_CHARS)?;
    location.validate("location")?;
    validate::phone("contact_phone", contact_phone)?;
    let required_volunteers = match (d.definition.claim(), required_volunteers) {
        (None, None | Some(1)) => 1,
        (None, Some(_)) => {
            return Err(DomainError::invalid(
                "required_volunteers",
                "派单类订单由一名志愿者服务，不能指定招募人数",
            ))
        }
        (Some(policy), None) => policy.required_volunteers,
        (Some(_), Some(n)) if (1..=MAX_SEATS).contains(n) => *n,
        (Some(_), Some(_)) => {
            return Err(DomainError::invalid(
                "required_volunteers",
                format!("招募人数须为 1 到 {MAX_SEATS}"),
            ))
        }
    };
    Ok(OrderChange::OrderPlaced {
        order_id: order_id.clone(),
        requester_id,
        station_id: station_id.clone(),
        category,
        description,
        location: location.clone(),
        contact_phone_masked: validate::mask_phone(contact_phone),
        wanted_time: *wanted_time,
        placed_by_staff: d.acting_as == Role::StationHead,
        workflow: d.definition.id().clone(),
        required_volunteers,
        activity,
    })
}

/// The most volunteers one activity may recruit.
pub const MAX_SEATS: u32 = 500;

/// 审单: accept (into the queue, or publish) or reject with a reason.
pub(crate) fn triage(d: &Decision<'_>) -> Result<OrderChange, DomainError> {
    let Action::Triage { accept, reason } = &d.command.action else {
        unreachable!("triage rows come with triage actions")
    };
    Ok(if *accept {
        OrderChange::OrderTriaged
    } else {
        OrderChange::OrderRejected {
            reason: validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?,
        }
    })
}

/// 办结: the close-out note and evidence.
pub(crate) fn complete(note: &str, photos: &[String]) -> Result<OrderChange, DomainError> {
    let note = validate::text("note", note, 1, MAX_NOTE_CHARS)?;
    if photos.len() > MAX_PHOTOS {
        return Err(DomainError::invalid(
            "photos",
            format!("最多 {MAX_PHOTOS} 张照片"),
        ));
    }
    for photo in photos {
        validate::text("photos", photo, 1, MAX_SHORT_TEXT_CHARS)?;
    }
    Ok(OrderChange::OrderCompleted {
        note,
        photos: photos.to_vec(),
    })
}

/// 评单: by a requester (a follower of a merged duplicate too), once each per round; by the
/// system when nobody reviewed in time; by a station head when `station_reviews` and the
/// order is an activity the station organised.
pub(crate) fn review(d: &Decision<'_>, station_reviews: bool) -> Result<OrderChange, DomainError> {
    let Action::Review { rating, comment } = &d.command.action else {
        unreachable!("review rows come with review actions")
    };
    let actor = &d.command.meta.actor;
    let by_default = actor.role == Role::System;
    let by_station = station_reviews && d.state.activity && d.acting_as == Role::StationHead;
    if !by_default && !by_station && !d.state.is_requester(&actor.id) {
        return Err(DomainError::Forbidden("只有下单的居民可以评价".into()));
    }
    if d.state.reviewed_by.contains(&actor.id) {
        return Err(DomainError::conflict("rating", "你已评价过该订单"));
    }
    if !(1..=5).contains(rating) {
        return Err(DomainError::invalid("rating", "评分须为 1 到 5 星"));
    }
    let reviewer_id = if by_default || actor.id == d.state.requester_id {
        String::new()
    } else {
        actor.id.clone()
    };
    Ok(OrderChange::OrderReviewed {
        rating: *rating,
        comment: validate::text("comment", comment, 0, MAX_SHORT_TEXT_CHARS)?,
        by_default,
        reviewer_id,
    })
}

/// A check-in or check-out's location, and the minutes served since `checked_in_at`.
pub(crate) fn service(
    d: &Decision<'_>,
    checked_in_at: Option<time::OffsetDateTime>,
) -> Result<OrderChange, DomainError> {
    let volunteer_id = d.command.meta.actor.id.clone();
    Ok(match &d.command.action {
        Action::CheckIn { location } => {
            location.validate("location")?;
            OrderChange::VolunteerCheckedIn {
                volunteer_id,
                location: location.clone(),
                precise: String::new(),
            }
        }
        Action::CheckOut { location } => {
            location.validate("location")?;
            let at = d.command.meta.at;
            let minutes = (at - checked_in_at.unwrap_or(at)).whole_minutes().max(0);
            OrderChange::VolunteerCheckedOut {
                volunteer_id,
                location: location.clone(),
                precise: String::new(),
                service_minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
            }
        }
        _ => unreachable!("service rows come with check-in and check-out actions"),
    })
}

/// Withdrawn: the reason as given.
pub(crate) fn cancel(reason: &str) -> Result<OrderChange, DomainError> {
    Ok(OrderChange::OrderCancelled {
        reason: validate::text("reason", reason, 0, MAX_SHORT_TEXT_CHARS)?,
    })
}
