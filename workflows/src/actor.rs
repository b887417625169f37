//! Who acts, and the envelope every command carries into the events it produces.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The role a user acts in. What each role may do, and over what, is one table:
/// [`crate::permissions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 居民: places and reviews their own orders.
    Resident,
    /// 志愿者: accepts and serves orders offered to their teams.
    Volunteer,
    /// 队长 (team leader): a volunteer who also accepts for the team and assigns its members.
    TeamLeader,
    /// 站长: triages, dispatches and closes the orders of a station's subtree.
    StationHead,
    /// 所管理员 (institute admin): a station head's powers over an institute's subtree.
    InstituteAdmin,
    /// 中心管理员 (centre admin): the same over the whole centre.
    CentreAdmin,
    /// 审计: reads the full history of orders in a subtree; writes nothing.
    Auditor,
    /// The system itself (timers, imports).
    System,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Resident,
        Role::Volunteer,
        Role::TeamLeader,
        Role::StationHead,
        Role::InstituteAdmin,
        Role::CentreAdmin,
        Role::Auditor,
        Role::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::Volunteer => "volunteer",
            Role::TeamLeader => "team_leader",
            Role::StationHead => "station_head",
            Role::InstituteAdmin => "institute_admin",
            Role::CentreAdmin => "centre_admin",
            Role::Auditor => "auditor",
            Role::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role's name as users read it.
    pub fn name_zh(self) -> &'static str {
        match self {
            Role::Resident => "居民",
            Role::Volunteer => "志愿者",
            Role::TeamLeader => "队长",
            Role::StationHead => "站长",
            Role::InstituteAdmin => "所管理员",
            Role::CentreAdmin => "中心管理员",
            Role::Auditor => "审计人员",
            Role::System => "系统",
        }
    }
}

/// An authenticated user acting in a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub role: Role,
}

impl Actor {
    pub fn new(id: impl Into<String>, role: Role) -> Actor {
        Actor {
            id: id.into(),
            role,
        }
    }
}

/// What every command carries and every event it produces records: who, when, which command,
/// and which conversation (correlation) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMeta {
    pub actor: Actor,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Idempotency key: the same command id never produces events twice.
    pub command_id: String,
    pub correlation_id: String,
    /// The event or command that caused this one, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
}
