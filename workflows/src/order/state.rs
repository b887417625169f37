//! An order's state, folded from its events.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use std::collections::BTreeMap;

use super::event::{Assignee, OrderChange, OrderEvent};
use crate::definition::{DefinitionId, Timer};
use crate::engine::Table;
use crate::validate::Location;
use crate::Category;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No events yet.
    #[default]
    New,
    Placed,
    Triaged,
    Rejected,
    Dispatched,
    Accepted,
    InService,
    Served,
    Completed,
    Reviewed,
    Closed,
    Cancelled,
    /// Open claim: published to eligible volunteers, seats left (待认领).
    Published,
    /// Open claim: every seat taken (已认领).
    Claimed,
    /// Closed as a duplicate of an earlier order (已合并).
    Merged,
}

impl Status {
    /// Every status, `New` (before the first event, never shown) first.
    pub const ALL: [Status; 15] = [
        Status::New,
        Status::Placed,
        Status::Triaged,
        Status::Rejected,
        Status::Dispatched,
        Status::Accepted,
        Status::InService,
        Status::Served,
        Status::Completed,
        Status::Reviewed,
        Status::Closed,
        Status::Cancelled,
        Status::Published,
        Status::Claimed,
        Status::Merged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Placed => "placed",
            Status::Triaged => "triaged",
            Status::Rejected => "rejected",
            Status::Dispatched => "dispatched",
            Status::Accepted => "accepted",
            Status::InService => "in_service",
            Status::Served => "served",
            Status::Completed => "completed",
            Status::Reviewed => "reviewed",
            Status::Closed => "closed",
            Status::Cancelled => "cancelled",
            Status::Published => "published",
            Status::Claimed => "claimed",
            Status::Merged => "merged",
        }
    }

    /// The status as residents and staff read it.
    pub fn name_zh(self) -> &'static str {
        match self {
            Status::New => "未创建",
            Status::Placed => "待审核",
            Status::Triaged => "待派单",
            Status::Rejected => "已驳回",
            Status::Dispatched => "待接单",
            Status::Accepted => "已接单",
            Status::InService => "服务中",
            Status::Served => "已签退",
            Status::Completed => "已办结",
            Status::Reviewed => "已评价",
            Status::Closed => "已归档",
            Status::Cancelled => "已取消",
            Status::Published => "待认领",
            Status::Claimed => "已认领",
            Status::Merged => "已合并",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "new" => Status::New,
            "placed" => Status::Placed,
            "triaged" => Status::Triaged,
            "rejected" => Status::Rejected,
            "dispatched" => Status::Dispatched,
            "accepted" => Status::Accepted,
            "in_service" => Status::InService,
            "served" => Status::Served,
            "completed" => Status::Completed,
            "reviewed" => Status::Reviewed,
            "closed" => Status::Closed,
            "cancelled" => Status::Cancelled,
            "published" => Status::Published,
            "claimed" => Status::Claimed,
            "merged" => Status::Merged,
            _ => return None,
        })
    }

    /// No command applies any more: no row of any workflow's table leaves it.
    pub fn is_final(self) -> bool {
        self != Status::New
            && crate::engine::tables()
                .iter()
                .filter(|t| t.has_state(self))
                .all(|t| t.is_final(self))
    }
}

/// Everything [`decide`](super::decide) needs to know about an order, and what its detail view shows.
// Stored as JSON in every order row of the read model: a field at its default is left out
// (a just-placed order's row is a third smaller) and read back as its default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderState {
    pub status: Status,
    /// The workflow definition the order runs on (set when placed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<DefinitionId>,
    pub order_id: String,
    pub requester_id: String,
    pub station_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub contact_phone_masked: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub wanted_time: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub placed_at: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub updated_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<Assignee>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub dispatched_at: Option<OffsetDateTime>,
    /// (volunteer id, team id) of whoever accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<(String, String)>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub accepted_at: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub checked_in_at: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub checked_out_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "is_zero")]
    pub service_minutes: u32,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub completion_note: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<u32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub review_comment: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reject_reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cancel_reason: String,
    /// How many times the order was declined or returned.
    #[serde(skip_serializing_if = "is_zero")]
    pub declines: u32,
    /// Deadlines whose clock runs now, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub deadlines: BTreeMap<String, ActiveDeadline>,
    /// Open claim: seats needed (1 for a dispatched order).
    #[serde(default = "one")]
    pub required_volunteers: u32,
    /// Open claim: who holds a seat, by volunteer id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Seat>,
    /// Requesters of duplicates merged into this order: they follow and review it too.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<String>,
    /// Who has reviewed since the order was last (re)done, and their ratings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reviewed_by: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_ratings: Vec<u32>,
    /// How many times it was sent back for rework (返工).
    #[serde(skip_serializing_if = "is_zero")]
    pub reworks: u32,
    /// The last follow-up (回访) of a poor review.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub follow_up_note: String,
    /// Closed as a duplicate of this order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// An activity a station organises in its own name (活动招募).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub activity: bool,
}

fn one() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A claimant's seat on an open-claim order: each serves, and earns hours, on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    pub team_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub checked_in_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub checked_out_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub service_minutes: u32,
}

impl OrderState {
    /// The workflow table the order runs on (the dispatched order's before it is placed).
    pub fn table(&self) -> &'static Table {
        self.workflow
            .as_ref()
            .and_then(|w| crate::engine::table(&w.name))
            .unwrap_or(&crate::dispatched::TABLE)
    }

    /// `timer`'s clock runs from now on, from green (replacing a clock of the same name).
    fn start_clock(&mut self, timer: &Timer) {
        self.deadlines.insert(
            timer.deadline.clone(),
            ActiveDeadline {
                timer: timer.clone(),
                warned: false,
                overdue: false,
                extension_requested: None,
            },
        );
    }

    /// Whether `who` placed the order or follows it through a merged duplicate.
    pub fn is_requester(&self, who: &str) -> bool {
        self.requester_id == who || self.followers.iter().any(|f| f == who)
    }
}

/// A running deadline and how far it has gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveDeadline {
    pub timer: Timer,
    /// Yellow: 催办 sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warned: bool,
    /// Red: 督办 sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overdue: bool,
    /// A pending 延期申请: the requested new due time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub extension_requested: Option<OffsetDateTime>,
}

/// Folds one event into the state. The status comes from the row of the order's workflow
/// table the event records ([`OrderChange::transition`]); the arms below keep the details.
pub fn evolve(mut state: OrderState, event: &OrderEvent) -> OrderState {
    let at = event.at;
    state.updated_at = Some(at);
    if let OrderChange::OrderPlaced { workflow, .. } = &event.change {
        state.workflow = Some(workflow.clone());
    }
    if let Some((command, outcome)) = event.change.transition() {
        // Events were decided against a definition that may only narrow its table, so the
        // row exists; a stored event no table knows leaves the status as it was.
        if let Some(row) = state.table().row(state.status, command, outcome) {
            state.status = row.target(state.status);
        }
    }
    match &event.change {
        OrderChange::OrderPlaced {
            order_id,
            requester_id,
            station_id,
            category,
            description,
            location,
            contact_phone_masked,
            wanted_time,
            placed_by_staff: _,
            workflow: _,
            required_volunteers,
            activity,
        } => {
            state.required_volunteers = *required_volunteers;
            state.activity = *activity;
            state.order_id = order_id.clone();
            state.requester_id = requester_id.clone();
            state.station_id = station_id.clone();
            state.category = Some(*category);
            state.description = description.clone();
            state.location = Some(location.clone());
            state.contact_phone_masked = contact_phone_masked.clone();
            state.wanted_time = *wanted_time;
            state.placed_at = Some(at);
        }
        OrderChange::OrderTriaged | OrderChange::OrderClosed => {}
        OrderChange::OrderRejected { reason } => {
            state.reject_reason = reason.clone();
        }
        OrderChange::OrderDispatched { assignee, .. } => {
            state.assignee = Some(assignee.clone());
            state.dispatched_at.get_or_insert(at);
        }
        OrderChange::OrderAccepted {
            volunteer_id,
            team_id,
        } => {
            state.accepted_by = Some((volunteer_id.clone(), team_id.clone()));
            state.accepted_at = Some(at);
        }
        OrderChange::OrderDeclined { .. } => {
            state.assignee = None;
            state.accepted_by = None;
            state.accepted_at = None;
            state.declines += 1;
        }
        OrderChange::VolunteerCheckedIn { volunteer_id, .. } => {
            match state.claims.get_mut(volunteer_id) {
                Some(seat) => seat.checked_in_at = Some(at),
                None => state.checked_in_at = Some(at),
            }
        }
        OrderChange::VolunteerCheckedOut {
            volunteer_id,
            service_minutes,
            ..
        } => match state.claims.get_mut(volunteer_id) {
            Some(seat) => {
                seat.checked_out_at = Some(at);
                seat.service_minutes = *service_minutes;
                state.service_minutes = state.claims.values().map(|s| s.service_minutes).sum();
            }
            None => {
                state.checked_out_at = Some(at);
                state.service_minutes = *service_minutes;
            }
        },
        OrderChange::OrderCompleted { note, photos } => {
            state.completed_at = Some(at);
            state.completion_note = note.clone();
            state.photos = photos.clone();
        }
        OrderChange::OrderReviewed {
            rating,
            comment,
            reviewer_id,
            ..
        } => {
            state.rating = Some(*rating);
            state.review_comment = comment.clone();
            let reviewer = match reviewer_id.as_str() {
                "" => state.requester_id.clone(),
                id => id.to_owned(),
            };
            state.reviewed_by.push(reviewer);
            state.round_ratings.push(*rating);
        }
        OrderChange::Claimed {
            volunteer_id,
            team_id,
            ..
        } => {
            state.claims.insert(
                volunteer_id.clone(),
                Seat {
                    team_id: team_id.clone(),
                    claimed_at: at,
                    checked_in_at: None,
                    checked_out_at: None,
                    service_minutes: 0,
                },
            );
        }
        OrderChange::Unclaimed { volunteer_id, .. } => {
            state.claims.remove(volunteer_id);
        }
        OrderChange::OrderReworked { assignee, .. } => {
            state.assignee = Some(assignee.clone());
            state.accepted_by = None;
            state.accepted_at = None;
            state.checked_in_at = None;
            state.checked_out_at = None;
            state.completed_at = None;
            // The new round is reviewed afresh; the first review stays in the history.
            state.completion_note.clear();
            state.photos.clear();
            state.rating = None;
            state.review_comment.clear();
            state.reviewed_by.clear();
            state.round_ratings.clear();
            state.reworks += 1;
        }
        OrderChange::FollowUpRecorded { note } => state.follow_up_note = note.clone(),
        OrderChange::OrderMerged { into, .. } => state.merged_into = Some(into.clone()),
        OrderChange::DuplicateMerged {
            requester_id, also, ..
        } => {
            for who in std::iter::once(requester_id).chain(also) {
                if !state.is_requester(who) {
                    state.followers.push(who.clone());
                }
            }
        }
        OrderChange::OrderCancelled { reason } => {
            state.cancel_reason = reason.clone();
        }
        OrderChange::DeadlineScheduled { timer } => state.start_clock(timer),
        OrderChange::DeadlineCleared { deadline } => {
            state.deadlines.remove(deadline);
        }
        OrderChange::DeadlineWarned { deadline } => {
            if let Some(d) = state.deadlines.get_mut(deadline) {
                d.warned = true;
            }
        }
        OrderChange::DeadlineOverdue { deadline, .. } => {
            if let Some(d) = state.deadlines.get_mut(deadline) {
                d.warned = true;
                d.overdue = true;
            }
        }
        OrderChange::TimerIgnored { .. } => {}
        OrderChange::ExtensionRequested {
            deadline, until, ..
        } => {
            if let Some(d) = state.deadlines.get_mut(deadline) {
                d.extension_requested = Some(*until);
            }
        }
        OrderChange::ExtensionApproved { timer } => state.start_clock(timer),
        OrderChange::ExtensionDenied { deadline, .. } => {
            if let Some(d) = state.deadlines.get_mut(deadline) {
                d.extension_requested = None;
            }
        }
    }
    for deadline in &event.clocks.stopped {
        state.deadlines.remove(deadline);
    }
    for timer in &event.clocks.started {
        state.start_clock(timer);
    }
    state
}
