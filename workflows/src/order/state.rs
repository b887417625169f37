//! An order's state, folded from its events.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::event::{Assignee, OrderChange, OrderEvent};
use crate::definition::{DefinitionId, Timer};
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
}

impl Status {
    /// Every status, `New` (before the first event, never shown) first.
    pub const ALL: [Status; 12] = [
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
            _ => return None,
        })
    }

    /// No command applies any more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Rejected | Status::Closed | Status::Cancelled)
    }
}

/// Everything [`decide`](super::decide) needs to know about an order, and what its detail view shows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OrderState {
    pub status: Status,
    /// The workflow definition the order runs on (set when placed).
    #[serde(default)]
    pub workflow: Option<DefinitionId>,
    pub order_id: String,
    pub requester_id: String,
    pub station_id: String,
    pub category: Option<Category>,
    pub description: String,
    pub location: Option<Location>,
    pub contact_phone_masked: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub wanted_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub placed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    pub assignee: Option<Assignee>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dispatched_at: Option<OffsetDateTime>,
    /// (volunteer id, team id) of whoever accepted.
    pub accepted_by: Option<(String, String)>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_in_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_out_at: Option<OffsetDateTime>,
    pub service_minutes: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    pub completion_note: String,
    pub photos: Vec<String>,
    pub rating: Option<u32>,
    pub review_comment: String,
    pub reject_reason: String,
    pub cancel_reason: String,
    /// How many times the order was declined or returned.
    pub declines: u32,
    /// Deadlines whose clock runs now, by name.
    #[serde(default)]
    pub deadlines: std::collections::BTreeMap<String, ActiveDeadline>,
}

/// A running deadline and how far it has gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveDeadline {
    pub timer: Timer,
    /// Yellow: 催办 sent.
    pub warned: bool,
    /// Red: 督办 sent.
    pub overdue: bool,
    /// A pending 延期申请: the requested new due time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub extension_requested: Option<OffsetDateTime>,
}

/// Folds one event into the state.
pub fn evolve(mut state: OrderState, event: &OrderEvent) -> OrderState {
    let at = event.at;
    state.updated_at = Some(at);
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
            workflow,
        } => {
            state.status = Status::Placed;
            state.workflow = Some(workflow.clone());
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
        OrderChange::OrderTriaged => state.status = Status::Triaged,
        OrderChange::OrderRejected { reason } => {
            state.status = Status::Rejected;
            state.reject_reason = reason.clone();
        }
        OrderChange::OrderDispatched { assignee, .. } => {
            state.status = Status::Dispatched;
            state.assignee = Some(assignee.clone());
            state.dispatched_at.get_or_insert(at);
        }
        OrderChange::OrderAccepted {
            volunteer_id,
            team_id,
        } => {
            state.status = Status::Accepted;
            state.accepted_by = Some((volunteer_id.clone(), team_id.clone()));
            state.accepted_at = Some(at);
        }
        OrderChange::OrderDeclined { .. } => {
            state.status = Status::Triaged;
            state.assignee = None;
            state.accepted_by = None;
            state.accepted_at = None;
            state.declines += 1;
        }
        OrderChange::VolunteerCheckedIn { .. } => {
            state.status = Status::InService;
            state.checked_in_at = Some(at);
        }
        OrderChange::VolunteerCheckedOut {
            service_minutes, ..
        } => {
            state.status = Status::Served;
            state.checked_out_at = Some(at);
            state.service_minutes = *service_minutes;
        }
        OrderChange::OrderCompleted { note, photos } => {
            state.status = Status::Completed;
            state.completed_at = Some(at);
            state.completion_note = note.clone();
            state.photos = photos.clone();
        }
        OrderChange::OrderReviewed {
            rating, comment, ..
        } => {
            state.status = Status::Reviewed;
            state.rating = Some(*rating);
            state.review_comment = comment.clone();
        }
        OrderChange::OrderClosed => state.status = Status::Closed,
        OrderChange::OrderCancelled { reason } => {
            state.status = Status::Cancelled;
            state.cancel_reason = reason.clone();
        }
        OrderChange::DeadlineScheduled { timer } => {
            state.deadlines.insert(
                timer.deadline.clone(),
                ActiveDeadline {
                    timer: timer.clone(),
                    warned: false,
                    overdue: false,
                    extension_requested: None,
                },
            );
        }
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
        OrderChange::ExtensionApproved { timer } => {
            state.deadlines.insert(
                timer.deadline.clone(),
                ActiveDeadline {
                    timer: timer.clone(),
                    warned: false,
                    overdue: false,
                    extension_requested: None,
                },
            );
        }
        OrderChange::ExtensionDenied { deadline, .. } => {
            if let Some(d) = state.deadlines.get_mut(deadline) {
                d.extension_requested = None;
            }
        }
    }
    state
}
