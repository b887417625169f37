//! Events: what happened to an order. Stored as JSON, `type` names the variant.

#[macro_use]
pub(super) mod decode;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::command::TimerPhase;
use crate::definition::{DefinitionId, Timer};
use crate::validate::Location;
use crate::{Category, OrgLevel};

/// The outcome of the claim that fills the last seat.
pub const FILL: &str = "fill";

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// One fact about an order, with the business time it happened at.
///
/// Who caused it, the command id and the correlation id travel in the envelope
/// ([`CommandMeta`](crate::CommandMeta)) stored beside it.
///
/// Stored as one JSON object: `at`, `type` (the variant's name), the variant's fields and,
/// when the change moves deadlines, `clocks`
/// (`{"at":"…","type":"OrderAccepted","volunteer_id":"…",…,"clocks":{…}}`). Decoding reads it
/// in one pass (see `order/event/decode.rs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub change: OrderChange,
    /// The deadlines (时限) this change stops and starts: recorded with the change that moves
    /// them, in the same event, applied after it.
    #[serde(default, skip_serializing_if = "Clocks::is_empty")]
    pub clocks: Clocks,
}

impl OrderEvent {
    /// A change that moves no deadline.
    pub fn new(at: OffsetDateTime, change: OrderChange) -> OrderEvent {
        OrderEvent {
            at,
            change,
            clocks: Clocks::default(),
        }
    }
}

/// Deadline clocks a change stops and starts (stopped first: a deadline may restart).
///
/// Before 2026-12 these were events of their own ([`OrderChange::DeadlineCleared`] and
/// [`OrderChange::DeadlineScheduled`], appended with the change); logs written then still
/// hold them and fold to the same state. Kept on the change instead, a flow's nine commands
/// append nine events instead of twenty-one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Clocks {
    /// Names of the deadlines whose clock stops (the order left the stage in time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<String>,
    /// Deadlines whose clock starts (the order entered a stage they cover).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub started: Vec<Timer>,
}

impl Clocks {
    pub fn is_empty(&self) -> bool {
        self.stopped.is_empty() && self.started.is_empty()
    }
}

/// A volunteer team (志愿服务队) or a helper unit (帮扶单位).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamKind {
    Team,
    HelperUnit,
}

impl TeamKind {
    pub const ALL: [TeamKind; 2] = [TeamKind::Team, TeamKind::HelperUnit];

    pub fn as_str(self) -> &'static str {
        match self {
            TeamKind::Team => "team",
            TeamKind::HelperUnit => "helper_unit",
        }
    }

    pub fn parse(s: &str) -> Option<TeamKind> {
        match s {
            "team" => Some(TeamKind::Team),
            "helper_unit" => Some(TeamKind::HelperUnit),
            _ => None,
        }
    }
}

/// Whom an order is dispatched to, and at which level of the tree (层层派单).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignee {
    pub team_id: String,
    pub kind: TeamKind,
    /// The org node the team belongs to.
    pub node_id: String,
    pub level: OrgLevel,
}

order_changes! {
/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrderChange {
    OrderPlaced {
        order_id: String,
        requester_id: String,
        station_id: String,
        category: Category,
        description: String,
        location: Location,
        /// Masked (138****5678). The full number is kept apart, readable only by those who
        /// need it, and can be erased without rewriting history.
        contact_phone_masked: String,
        #[serde(default, with = "time::serde::rfc3339::option")]
        wanted_time: Option<OffsetDateTime>,
        /// Placed by staff for the resident (制单).
        #[serde(default)]
        placed_by_staff: bool,
        /// The workflow definition this order runs on, for its whole life (version pinning).
        #[serde(default = "DefinitionId::dispatched_order_v1")]
        workflow: DefinitionId,
        /// Open claim: how many volunteers must claim before it is full.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        required_volunteers: u32,
        /// An activity a station organises in its own name (活动招募): the station is its
        /// requester and reviews it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        activity: bool,
    },
    OrderTriaged,
    OrderRejected {
        reason: String,
    },
    OrderDispatched {
        assignee: Assignee,
        /// Why this team was chosen.
        reason: String,
    },
    OrderAccepted {
        volunteer_id: String,
        team_id: String,
    },
    OrderDeclined {
        volunteer_id: String,
        team_id: String,
        reason: String,
        /// True when returned after it had been accepted (退单).
        returned_after_accept: bool,
    },
    VolunteerCheckedIn {
        volunteer_id: String,
        /// Where the volunteer was, coarsened (about 1 km) when the event is written.
        location: Location,
        /// The exact coordinates, sealed with the key of their retention period: readable
        /// while it is kept, unreadable once the retention job destroyed it.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        precise: String,
    },
    VolunteerCheckedOut {
        volunteer_id: String,
        /// Coarsened, as at check-in.
        location: Location,
        /// Sealed, as at check-in.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        precise: String,
        /// Minutes between check-in and check-out: the service time credited.
        service_minutes: u32,
    },
    OrderCompleted {
        note: String,
        photos: Vec<String>,
    },
    OrderReviewed {
        rating: u32,
        comment: String,
        /// Given by the system when the resident did not review in time.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_default: bool,
        /// Who reviewed, when the order has several requesters (a merged duplicate's) or is
        /// reviewed by its station (an activity); empty for the requester of a plain order.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reviewer_id: String,
    },
    OrderClosed,
    OrderCancelled {
        reason: String,
    },
    /// 认领: a volunteer took a seat; `filled` when it was the last one.
    Claimed {
        volunteer_id: String,
        team_id: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        filled: bool,
    },
    /// 放弃认领: a claimant gave the seat back before checking in.
    Unclaimed {
        volunteer_id: String,
        reason: String,
    },
    /// 返工: sent back to a team after a poor review; the review stays in the history.
    OrderReworked {
        assignee: Assignee,
        reason: String,
    },
    /// 回访: the station head followed up a poor review.
    FollowUpRecorded {
        note: String,
    },
    /// 合并: closed as a duplicate of `into`.
    OrderMerged {
        into: String,
        reason: String,
    },
    /// A duplicate was merged into this order; its requester follows and reviews it (and so do
    /// `also`, the followers it had gathered itself).
    DuplicateMerged {
        order_id: String,
        requester_id: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        also: Vec<String>,
    },
    /// A deadline's clock started (the order entered a stage it covers). Written before
    /// 2026-12; now [`Clocks::started`] of the change that starts it.
    DeadlineScheduled {
        timer: Timer,
    },
    /// A deadline's clock stopped: the order left the stage in time (or it restarted).
    /// Written before 2026-12; now [`Clocks::stopped`] of the change that stops it.
    DeadlineCleared {
        deadline: String,
    },
    /// 催办: 80% of the time is used; the order shows yellow and the station head is told.
    DeadlineWarned {
        deadline: String,
    },
    /// 督办: the deadline passed; the order shows red and the level above is told.
    DeadlineOverdue {
        deadline: String,
        /// What happens now, e.g. "督办" or "系统默认好评并归档".
        action: String,
    },
    /// 延期申请: asked to move a deadline to `until`.
    ExtensionRequested {
        deadline: String,
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
        reason: String,
    },
    /// The station head approved: the deadline runs to the new timer.
    ExtensionApproved {
        timer: Timer,
    },
    ExtensionDenied {
        deadline: String,
        reason: String,
    },
    /// A timer went off for a deadline that no longer applies: recorded, nothing changes.
    TimerIgnored {
        deadline: String,
        phase: TimerPhase,
        reason: String,
    },
}
}

impl OrderChange {
    /// The stored event type, equal to the JSON `type` tag.
    pub fn event_type(&self) -> &'static str {
        match self {
            OrderChange::OrderPlaced { .. } => "OrderPlaced",
            OrderChange::OrderTriaged => "OrderTriaged",
            OrderChange::OrderRejected { .. } => "OrderRejected",
            OrderChange::OrderDispatched { .. } => "OrderDispatched",
            OrderChange::OrderAccepted { .. } => "OrderAccepted",
            OrderChange::OrderDeclined { .. } => "OrderDeclined",
            OrderChange::VolunteerCheckedIn { .. } => "VolunteerCheckedIn",
            OrderChange::VolunteerCheckedOut { .. } => "VolunteerCheckedOut",
            OrderChange::OrderCompleted { .. } => "OrderCompleted",
            OrderChange::OrderReviewed { .. } => "OrderReviewed",
            OrderChange::OrderClosed => "OrderClosed",
            OrderChange::OrderCancelled { .. } => "OrderCancelled",
            OrderChange::DeadlineScheduled { .. } => "DeadlineScheduled",
            OrderChange::DeadlineCleared { .. } => "DeadlineCleared",
            OrderChange::DeadlineWarned { .. } => "DeadlineWarned",
            OrderChange::DeadlineOverdue { .. } => "DeadlineOverdue",
            OrderChange::TimerIgnored { .. } => "TimerIgnored",
            OrderChange::ExtensionRequested { .. } => "ExtensionRequested",
            OrderChange::ExtensionApproved { .. } => "ExtensionApproved",
            OrderChange::ExtensionDenied { .. } => "ExtensionDenied",
            OrderChange::Claimed { .. } => "Claimed",
            OrderChange::Unclaimed { .. } => "Unclaimed",
            OrderChange::OrderReworked { .. } => "OrderReworked",
            OrderChange::FollowUpRecorded { .. } => "FollowUpRecorded",
            OrderChange::OrderMerged { .. } => "OrderMerged",
            OrderChange::DuplicateMerged { .. } => "DuplicateMerged",
        }
    }

    /// The table row the event records: its command and outcome. `None` for bookkeeping
    /// (deadlines, a merged duplicate's requester joining) that moves no state.
    pub fn transition(&self) -> Option<(&'static str, Option<&'static str>)> {
        Some(match self {
            OrderChange::OrderPlaced { .. } => ("place", None),
            OrderChange::OrderTriaged => ("triage", None),
            OrderChange::OrderRejected { .. } => ("triage", Some("reject")),
            OrderChange::OrderDispatched { .. } => ("dispatch", None),
            OrderChange::OrderAccepted { .. } => ("accept", None),
            OrderChange::OrderDeclined { .. } => ("decline", None),
            OrderChange::VolunteerCheckedIn { .. } => ("check_in", None),
            OrderChange::VolunteerCheckedOut { .. } => ("check_out", None),
            OrderChange::OrderCompleted { .. } => ("complete", None),
            OrderChange::OrderReviewed { .. } => ("review", None),
            OrderChange::OrderClosed => ("close", None),
            OrderChange::OrderCancelled { .. } => ("cancel", None),
            OrderChange::Claimed { filled, .. } => ("claim", filled.then_some(FILL)),
            OrderChange::Unclaimed { .. } => ("unclaim", None),
            OrderChange::OrderReworked { .. } => ("rework", None),
            OrderChange::FollowUpRecorded { .. } => ("follow_up", None),
            OrderChange::OrderMerged { .. } => ("merge", None),
            OrderChange::DuplicateMerged { .. }
            | OrderChange::DeadlineScheduled { .. }
            | OrderChange::DeadlineCleared { .. }
            | OrderChange::DeadlineWarned { .. }
            | OrderChange::DeadlineOverdue { .. }
            | OrderChange::ExtensionRequested { .. }
            | OrderChange::ExtensionApproved { .. }
            | OrderChange::ExtensionDenied { .. }
            | OrderChange::TimerIgnored { .. } => return None,
        })
    }
}
