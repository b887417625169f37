//! Commands: what an actor asks an order to do.

use time::OffsetDateTime;

use super::event::Assignee;
use crate::validate::Location;
use crate::CommandMeta;

/// A command for one order: who asks ([`CommandMeta`]) and what ([`Action`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub meta: CommandMeta,
    pub action: Action,
}

/// What can be asked of an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// 点单: place an order. Staff placing for a resident (制单) name them in `on_behalf_of`.
    Place {
        order_id: String,
        station_id: String,
        /// The category code as sent; unknown codes are refused.
        category: String,
        description: String,
        location: Location,
        contact_phone: String,
        wanted_time: Option<OffsetDateTime>,
        on_behalf_of: Option<String>,
        /// Open claim (活动招募): how many volunteers must claim; `None` takes the
        /// definition's default. A dispatched order has one.
        required_volunteers: Option<u32>,
        /// The workflow to run it on (`None`: the dispatched order). The caller picks that
        /// workflow's latest definition and passes it to `decide`.
        workflow: Option<String>,
    },
    /// 审单: accept into the dispatch queue, or reject with a reason.
    Triage { accept: bool, reason: String },
    /// 派单: dispatch to a team or helper unit (resolved by the caller from the directory).
    Dispatch { assignee: Assignee, reason: String },
    /// 接单: a volunteer accepts for the team the order was dispatched to; a team leader may
    /// name the `member` who will serve (派给队员; checked against the team by the caller).
    Accept {
        team_id: String,
        member: Option<String>,
    },
    /// 退单: decline (before accepting) or return (after accepting, before check-in).
    Decline { team_id: String, reason: String },
    /// 签到
    CheckIn { location: Location },
    /// 签退
    CheckOut { location: Location },
    /// 办结: close-out note and evidence.
    Complete { note: String, photos: Vec<String> },
    /// 评单: 1–5 stars and a comment.
    Review { rating: u32, comment: String },
    /// 归档: close a reviewed order.
    Close,
    /// Withdrawn by the requester before anyone accepted it; an open claim also by the
    /// station head (before anyone checked in).
    Cancel { reason: String },
    /// 认领: a volunteer claims a seat of a published wish or activity, for `team_id` (one of
    /// their teams; eligibility is checked by the caller against the directory).
    Claim { team_id: String },
    /// 放弃认领: a claimant withdraws before checking in.
    Unclaim { reason: String },
    /// 返工: after a review of at most two stars, the station head sends the order back to a
    /// team (the same or another).
    Rework { assignee: Assignee, reason: String },
    /// 回访: after a review of at most two stars, the station head records a follow-up.
    FollowUp { note: String },
    /// 合并: at triage, the order duplicates `into` (an earlier order of the same station);
    /// it closes as merged and its requester follows the surviving order.
    Merge { into: String, reason: String },
    /// The surviving side of a merge: `order_id` is merged into this order, and its requesters
    /// (its own and those of duplicates merged into it before) now follow it. Sent by the engine
    /// just before [`Action::Merge`], checked against this order's current state.
    AbsorbDuplicate {
        order_id: String,
        requester_ids: Vec<String>,
    },
    /// 延期申请: the accepting volunteer asks to move a running deadline to `until`.
    RequestExtension {
        deadline: String,
        until: OffsetDateTime,
        reason: String,
    },
    /// The station head approves or denies the pending extension request.
    DecideExtension {
        deadline: String,
        approve: bool,
        reason: String,
    },
    /// A deadline's timer went off (the system): yellow at `Warn` (催办), red at `Due` (督办).
    /// `due_at` names the timer, so a stale one (the order moved on) is recognised and ignored.
    FireTimer {
        deadline: String,
        phase: TimerPhase,
        due_at: OffsetDateTime,
    },
}

/// Which moment of a deadline a timer marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerPhase {
    /// 80% of the time used: yellow, chase (催办).
    Warn,
    /// Overdue: red, supervise (督办) or act.
    Due,
}

impl TimerPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerPhase::Warn => "warn",
            TimerPhase::Due => "due",
        }
    }
}

impl Action {
    /// The command's name in workflow definitions (`[[transitions]] command = …`).
    pub fn command(&self) -> &'static str {
        match self {
            Action::Place { .. } => "place",
            Action::Triage { .. } => "triage",
            Action::Dispatch { .. } => "dispatch",
            Action::Accept { .. } => "accept",
            Action::Decline { .. } => "decline",
            Action::CheckIn { .. } => "check_in",
            Action::CheckOut { .. } => "check_out",
            Action::Complete { .. } => "complete",
            Action::Review { .. } => "review",
            Action::Close => "close",
            Action::Cancel { .. } => "cancel",
            Action::FireTimer { .. } => "fire_timer",
            Action::RequestExtension { .. } => "request_extension",
            Action::DecideExtension { .. } => "decide_extension",
            Action::Claim { .. } => "claim",
            Action::Unclaim { .. } => "unclaim",
            Action::Rework { .. } => "rework",
            Action::FollowUp { .. } => "follow_up",
            Action::Merge { .. } => "merge",
            Action::AbsorbDuplicate { .. } => "absorb_duplicate",
        }
    }

    /// The action's name in user-facing messages.
    pub fn name_zh(&self) -> &'static str {
        match self {
            Action::Place { .. } => "点单",
            Action::Triage { .. } => "审单",
            Action::Dispatch { .. } => "派单",
            Action::Accept { .. } => "接单",
            Action::Decline { .. } => "退单",
            Action::CheckIn { .. } => "签到",
            Action::CheckOut { .. } => "签退",
            Action::Complete { .. } => "办结",
            Action::Review { .. } => "评单",
            Action::Close => "归档",
            Action::Cancel { .. } => "取消",
            Action::FireTimer { .. } => "计时",
            Action::RequestExtension { .. } => "申请延期",
            Action::DecideExtension { .. } => "审批延期",
            Action::Claim { .. } => "认领",
            Action::Unclaim { .. } => "放弃认领",
            Action::Rework { .. } => "返工",
            Action::FollowUp { .. } => "回访",
            Action::Merge { .. } => "合并",
            Action::AbsorbDuplicate { .. } => "并入重复订单",
        }
    }
}
