//! `decide`: a command and the current state in, new events or a refusal out.

use super::command::{Action, Command};
use super::event::{OrderChange, OrderEvent};
use super::state::{OrderState, Status};
use crate::definition::Definition;
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
/// volunteer), the fields are valid. Scope checks that need the organisation tree (is this
/// station in the head's subtree? is this volunteer in that team?) are the caller's.
pub fn decide(
    definition: &Definition,
    state: &OrderState,
    command: &Command,
) -> Result<Vec<OrderEvent>, DomainError> {
    let action = &command.action;
    if let Action::FireTimer {
        deadline,
        phase,
        due_at,
    } = action
    {
        return super::timers::fire(definition, state, command, deadline, *phase, *due_at);
    }
    if matches!(
        action,
        Action::RequestExtension { .. } | Action::DecideExtension { .. }
    ) {
        return super::timers::extension(state, command);
    }
    let Some(transition) =
        definition.transition(state.status.as_str(), action.command(), action.outcome())
    else {
        if state.status == Status::New {
            return Err(DomainError::NotFound);
        }
        if matches!(action, Action::Accept { .. }) && state.accepted_by.is_some() {
            return Err(DomainError::AlreadyAccepted);
        }
        return Err(DomainError::IllegalTransition {
            action: action.name_zh(),
            status: state.status.name_zh(),
        });
    };
    let actor = &command.meta.actor;
    // Definitions name the roles of the loop; an admin acts as a head, a leader as a volunteer.
    let acting_as = workflow_role(actor.role);
    if !transition.roles.contains(&acting_as) {
        let who: Vec<&str> = transition.roles.iter().map(|r| r.name_zh()).collect();
        return Err(DomainError::Forbidden(format!(
            "只有{}可以{}",
            who.join("或"),
            action.name_zh()
        )));
    }
    let at = command.meta.at;
    let change = match action {
        Action::Place {
            order_id,
            station_id,
            category,
            description,
            location,
            contact_phone,
            wanted_time,
            on_behalf_of,
        } => {
            let requester_id = match (acting_as, on_behalf_of) {
                (Role::Resident, None) => actor.id.clone(),
                // Who may fill in `on_behalf_of` depends on who is calling: a permission, not
                // a malformed request.
                (Role::Resident, Some(_)) => {
                    return Err(DomainError::Forbidden(
                        "on_behalf_of：只有工作人员可以代居民下单".into(),
                    ))
                }
                (Role::StationHead, Some(resident)) => {
                    validate::id("on_behalf_of", resident)?;
                    resident.clone()
                }
                (Role::StationHead, None) => {
                    return Err(DomainError::Forbidden(
                        "on_behalf_of：工作人员只能代居民下单（制单），须填写居民编号".into(),
                    ))
                }
                _ => return Err(DomainError::Forbidden("只有居民或站长可以下单".into())),
            };
            validate::id("order_id", order_id)?;
            validate::id("station_id", station_id)?;
            let category = Category::parse(category).ok_or_else(|| {
                DomainError::invalid("category", format!("未知的服务类别「{category}」"))
            })?;
            let description = validate::text("description", description, 1, MAX_DESCRIPTION_CHARS)?;
            location.validate("location")?;
            validate::phone("contact_phone", contact_phone)?;
            OrderChange::OrderPlaced {
                order_id: order_id.clone(),
                requester_id,
                station_id: station_id.clone(),
                category,
                description,
                location: location.clone(),
                contact_phone_masked: validate::mask_phone(contact_phone),
                wanted_time: *wanted_time,
                placed_by_staff: acting_as == Role::StationHead,
                workflow: definition.id().clone(),
            }
        }
        Action::Triage { accept, reason } => {
            if *accept {
                OrderChange::OrderTriaged
            } else {
                OrderChange::OrderRejected {
                    reason: validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?,
                }
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
            let returned_after_accept = state.status == Status::Accepted;
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
        Action::CheckIn { location } => {
            require_accepting_volunteer(state, &actor.id)?;
            location.validate("location")?;
            OrderChange::VolunteerCheckedIn {
                volunteer_id: actor.id.clone(),
                location: location.clone(),
            }
        }
        Action::CheckOut { location } => {
            require_accepting_volunteer(state, &actor.id)?;
            location.validate("location")?;
            let checked_in_at = state.checked_in_at.unwrap_or(at);
            let minutes = (at - checked_in_at).whole_minutes().max(0);
            OrderChange::VolunteerCheckedOut {
                volunteer_id: actor.id.clone(),
                location: location.clone(),
                service_minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
            }
        }
        Action::Complete { note, photos } => {
            require_accepting_volunteer(state, &actor.id)?;
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
            OrderChange::OrderCompleted {
                note,
                photos: photos.clone(),
            }
        }
        Action::Review { rating, comment } => {
            let by_default = actor.role == Role::System;
            if !by_default && actor.id != state.requester_id {
                return Err(DomainError::Forbidden("只有下单的居民可以评价".into()));
            }
            if !(1..=5).contains(rating) {
                return Err(DomainError::invalid("rating", "评分须为 1 到 5 星"));
            }
            OrderChange::OrderReviewed {
                rating: *rating,
                comment: validate::text("comment", comment, 0, MAX_SHORT_TEXT_CHARS)?,
                by_default,
            }
        }
        Action::Close => OrderChange::OrderClosed,
        Action::FireTimer { .. }
        | Action::RequestExtension { .. }
        | Action::DecideExtension { .. } => unreachable!("deadline commands are decided above"),
        Action::Cancel { reason } => {
            if actor.id != state.requester_id {
                return Err(DomainError::Forbidden("只有下单的居民可以取消订单".into()));
            }
            OrderChange::OrderCancelled {
                reason: validate::text("reason", reason, 0, MAX_SHORT_TEXT_CHARS)?,
            }
        }
    };
    Ok(vec![OrderEvent { at, change }])
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
