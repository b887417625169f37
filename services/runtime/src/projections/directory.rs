//! The directory read model: org nodes with their tree paths, teams, volunteers, memberships.

use rusqlite::{params, OptionalExtension, Transaction};

use diandan_workflows::directory::DirectoryEvent;

use super::{Applied, Cached, Projection};
use crate::{AppError, Result};

pub struct DirectoryProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS org_nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    parent_id TEXT,
    path TEXT NOT NULL,
    lat REAL,
    lng REAL,
    address TEXT
);
CREATE INDEX IF NOT EXISTS org_nodes_path ON org_nodes (path);
CREATE TABLE IF NOT EXISTS teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    node_id TEXT NOT NULL,
    path TEXT NOT NULL,
    skills TEXT NOT NULL,
    leader_id TEXT
);
CREATE INDEX IF NOT EXISTS teams_path ON teams (path);
CREATE TABLE IF NOT EXISTS volunteers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    skills TEXT NOT NULL,
    phone_masked TEXT,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS memberships (
    team_id TEXT NOT NULL,
    volunteer_id TEXT NOT NULL,
    PRIMARY KEY (team_id, volunteer_id)
);
CREATE INDEX IF NOT EXISTS memberships_volunteer ON memberships (volunteer_id);
";

/// The tree path of a node already projected (`/` when unknown, so orphans stay visible).
pub(super) fn node_path(tx: &Transaction<'_>, node_id: &str) -> Result<String> {
    Ok(tx
        .query_row_cached("SELECT path FROM org_nodes WHERE id = ?1", [node_id], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or_else(|| format!("/?/{node_id}/")))
}

/// [`node_path`] for the orders of one batch, each station looked up once: the directory
/// projection applies a batch before the projections that read paths do, so the paths do not
/// change while they apply it.
pub(super) struct NodePaths<'a> {
    known: super::FastMap<&'a str, String>,
}

impl<'a> NodePaths<'a> {
    pub(super) fn new() -> NodePaths<'a> {
        NodePaths {
            known: super::FastMap::default(),
        }
    }

    pub(super) fn get(&mut self, tx: &Transaction<'_>, node_id: &'a str) -> Result<String> {
        if let Some(path) = self.known.get(node_id) {
            return Ok(path.clone());
        }
        let path = node_path(tx, node_id)?;
        self.known.insert(node_id, path.clone());
        Ok(path)
    }
}

impl Projection for DirectoryProjection {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["org_nodes", "teams", "volunteers", "memberships"]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()> {
        if !matches!(
            event.event_type.as_str(),
            "OrgNodeRegistered"
                | "TeamRegistered"
                | "VolunteerRegistered"
                | "VolunteerUpdated"
                | "VolunteerDeactivated"
                | "VolunteerReactivated"
        ) {
            return Ok(());
        }
        let decoded: DirectoryEvent = serde_json::from_slice(&event.data)
            .map_err(|e| AppError::Storage(format!("event {}: {e}", event.position)))?;
        match decoded {
            DirectoryEvent::OrgNodeRegistered {
                id,
                name,
                level,
                parent_id,
                location,
            } => {
                let parent_path = match &parent_id {
                    Some(parent) => node_path(tx, parent)?,
                    None => "/".to_owned(),
                };
                let path = format!("{parent_path}{id}/");
                tx.execute_cached(
                    "INSERT OR REPLACE INTO org_nodes (id, name, level, parent_id, path, lat, lng, address)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        id,
                        name,
                        level.as_str(),
                        parent_id,
                        path,
                        location.as_ref().map(|l| l.lat),
                        location.as_ref().map(|l| l.lng),
                        location.as_ref().map(|l| l.address.clone()),
                    ],
                )?;
            }
            DirectoryEvent::TeamRegistered {
                id,
                name,
                kind,
                node_id,
                skills,
                leader_id,
            } => {
                let path = node_path(tx, &node_id)?;
                let skills = serde_json::to_string(&skills).expect("skills serialize");
                tx.execute_cached(
                    "INSERT OR REPLACE INTO teams (id, name, kind, node_id, path, skills, leader_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![id, name, kind.as_str(), node_id, path, skills, leader_id],
                )?;
            }
            DirectoryEvent::VolunteerRegistered {
                id,
                name,
                team_ids,
                skills,
                phone_masked,
            } => {
                let skills = serde_json::to_string(&skills).expect("skills serialize");
                tx.execute_cached(
                    "INSERT OR REPLACE INTO volunteers (id, name, skills, phone_masked, active)
                     VALUES (?1, ?2, ?3, ?4, 1)",
                    params![id, name, skills, phone_masked],
                )?;
                for team_id in team_ids {
                    tx.execute_cached(
                        "INSERT OR IGNORE INTO memberships (team_id, volunteer_id) VALUES (?1, ?2)",
                        params![team_id, id],
                    )?;
                }
            }
            DirectoryEvent::VolunteerUpdated {
                id,
                name,
                team_ids,
                skills,
            } => {
                let skills = serde_json::to_string(&skills).expect("skills serialize");
                tx.execute_cached(
                    "UPDATE volunteers SET name = ?2, skills = ?3 WHERE id = ?1",
                    params![id, name, skills],
                )?;
                tx.execute_cached("DELETE FROM memberships WHERE volunteer_id = ?1", [&id])?;
                for team_id in team_ids {
                    tx.execute_cached(
                        "INSERT OR IGNORE INTO memberships (team_id, volunteer_id) VALUES (?1, ?2)",
                        params![team_id, id],
                    )?;
                }
            }
            DirectoryEvent::VolunteerDeactivated { id, .. } => {
                tx.execute_cached("UPDATE volunteers SET active = 0 WHERE id = ?1", [id])?;
            }
            DirectoryEvent::VolunteerReactivated { id } => {
                tx.execute_cached("UPDATE volunteers SET active = 1 WHERE id = ?1", [id])?;
            }
        }
        Ok(())
    }
}
