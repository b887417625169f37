//! The organisation directory: org nodes, teams / helper units and volunteers.
//!
//! Each entry is its own stream (`node-<id>`, `team-<id>`, `volunteer-<id>`) whose first event
//! registers it, so registering an id twice is a concurrency conflict, not a silent overwrite.
//! Checks that need other entries (the parent exists, the team's node exists) are the caller's.

use serde::{Deserialize, Serialize};

use crate::order::TeamKind;
use crate::validate::{self, Location, MAX_SHORT_TEXT_CHARS};
use crate::{Category, DomainError, OrgLevel};

/// Most service teams (服务队) one volunteer belongs to. A volunteer's lists read a branch per
/// team they lead and an `IN` over their teams: the cap keeps those queries small.
pub const MAX_TEAMS_PER_VOLUNTEER: usize = 20;

/// A volunteer's teams: ids, each once, at most [`MAX_TEAMS_PER_VOLUNTEER`].
pub fn validate_team_ids(team_ids: &[String]) -> Result<(), DomainError> {
    if team_ids.len() > MAX_TEAMS_PER_VOLUNTEER {
        return Err(DomainError::invalid(
            "team_ids",
            format!(
                "最多加入 {MAX_TEAMS_PER_VOLUNTEER} 支服务队（共 {} 支）",
                team_ids.len()
            ),
        ));
    }
    for (i, team) in team_ids.iter().enumerate() {
        validate::id("team_ids", team)?;
        if team_ids[..i].contains(team) {
            return Err(DomainError::invalid(
                "team_ids",
                format!("服务队「{team}」重复"),
            ));
        }
    }
    Ok(())
}

/// A directory fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DirectoryEvent {
    OrgNodeRegistered {
        id: String,
        name: String,
        level: OrgLevel,
        parent_id: Option<String>,
        location: Option<Location>,
    },
    TeamRegistered {
        id: String,
        name: String,
        kind: TeamKind,
        node_id: String,
        skills: Vec<Category>,
        leader_id: Option<String>,
    },
    VolunteerRegistered {
        id: String,
        name: String,
        team_ids: Vec<String>,
        skills: Vec<Category>,
        /// The number they were registered with, masked (the full one is in the contact
        /// vault: their WeChat account links to them by it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone_masked: Option<String>,
    },
    /// A volunteer's details changed (all of them, as they now are).
    VolunteerUpdated {
        id: String,
        name: String,
        team_ids: Vec<String>,
        skills: Vec<Category>,
    },
    /// 停用: the volunteer accepts no order until reactivated.
    VolunteerDeactivated { id: String, reason: String },
    /// 启用 again.
    VolunteerReactivated { id: String },
}

impl DirectoryEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            DirectoryEvent::OrgNodeRegistered { .. } => "OrgNodeRegistered",
            DirectoryEvent::TeamRegistered { .. } => "TeamRegistered",
            DirectoryEvent::VolunteerRegistered { .. } => "VolunteerRegistered",
            DirectoryEvent::VolunteerUpdated { .. } => "VolunteerUpdated",
            DirectoryEvent::VolunteerDeactivated { .. } => "VolunteerDeactivated",
            DirectoryEvent::VolunteerReactivated { .. } => "VolunteerReactivated",
        }
    }

    /// The stream this entry lives in.
    pub fn stream(&self) -> String {
        match self {
            DirectoryEvent::OrgNodeRegistered { id, .. } => format!("node-{id}"),
            DirectoryEvent::TeamRegistered { id, .. } => format!("team-{id}"),
            DirectoryEvent::VolunteerRegistered { id, .. }
            | DirectoryEvent::VolunteerUpdated { id, .. }
            | DirectoryEvent::VolunteerDeactivated { id, .. }
            | DirectoryEvent::VolunteerReactivated { id } => format!("volunteer-{id}"),
        }
    }

    /// Field checks that need nothing but the event itself.
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            DirectoryEvent::OrgNodeRegistered {
                id,
                name,
                level,
                parent_id,
                location,
            } => {
                validate::id("id", id)?;
                validate::text("name", name, 1, MAX_SHORT_TEXT_CHARS)?;
                match (level, parent_id) {
                    (OrgLevel::Centre, Some(_)) => {
                        return Err(DomainError::invalid("parent_id", "中心不能有上级"))
                    }
                    (OrgLevel::Centre, None) => {}
                    (_, None) => return Err(DomainError::invalid("parent_id", "须指定上级节点")),
                    (_, Some(parent)) => validate::id("parent_id", parent)?,
                }
                if let Some(location) = location {
                    location.validate("location")?;
                }
            }
            DirectoryEvent::TeamRegistered {
                id,
                name,
                node_id,
                skills,
                leader_id,
                ..
            } => {
                validate::id("id", id)?;
                validate::text("name", name, 1, MAX_SHORT_TEXT_CHARS)?;
                validate::id("node_id", node_id)?;
                if skills.is_empty() {
                    return Err(DomainError::invalid("skills", "至少填写一个服务类别"));
                }
                if let Some(leader) = leader_id {
                    validate::id("leader_id", leader)?;
                }
            }
            DirectoryEvent::VolunteerRegistered {
                id,
                name,
                team_ids,
                phone_masked,
                ..
            } => {
                if let Some(masked) = phone_masked {
                    validate::text("phone", masked, 11, 11)?;
                }
                validate::id("id", id)?;
                validate::text("name", name, 1, MAX_SHORT_TEXT_CHARS)?;
                validate_team_ids(team_ids)?;
            }
            DirectoryEvent::VolunteerUpdated {
                id, name, team_ids, ..
            } => {
                validate::id("id", id)?;
                validate::text("name", name, 1, MAX_SHORT_TEXT_CHARS)?;
                validate_team_ids(team_ids)?;
            }
            DirectoryEvent::VolunteerDeactivated { id, reason } => {
                validate::id("id", id)?;
                validate::text("reason", reason, 1, MAX_SHORT_TEXT_CHARS)?;
            }
            DirectoryEvent::VolunteerReactivated { id } => validate::id("id", id)?,
        }
        Ok(())
    }
}
