//! Who acts, and the envelope every command carries into the events it produces.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The role a user acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 居民: places and reviews orders.
    Resident,
    /// 志愿者: accepts and serves orders for a team.
    Volunteer,
    /// 站长 (or institute/centre staff): triages, dispatches and closes orders of a subtree.
    StationHead,
    /// 审计: reads the full history of orders in a subtree.
    Auditor,
    /// The system itself (timers, imports).
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::Volunteer => "volunteer",
            Role::StationHead => "station_head",
            Role::Auditor => "auditor",
            Role::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "resident" => Role::Resident,
            "volunteer" => Role::Volunteer,
            "station_head" => Role::StationHead,
            "auditor" => Role::Auditor,
            "system" => Role::System,
            _ => return None,
        })
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
