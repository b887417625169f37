//! The organisation directory: org nodes, teams / helper units, volunteers.
//!
//! Entries are registered as events (one stream each, see
//! [`diandan_workflows::directory::DirectoryEvent`]) and never change after,
//! so they are cached in memory after the first read of their stream. Lookups read the stream,
//! not a projection, so a node registered a moment ago is already visible to scope checks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

use diandan_store::{AppendRequest, Direction, EventStore, ExpectedRevision, StoreError};
use diandan_workflows::directory::DirectoryEvent;
use diandan_workflows::order::TeamKind;
use diandan_workflows::permissions::Scope;
use diandan_workflows::validate::Location;
use diandan_workflows::{Category, OrgLevel};

use crate::commands::{new_event, EventMetadata};
use crate::{AppError, RequestContext, Result};

/// A registered org node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub level: OrgLevel,
    pub parent_id: Option<String>,
    pub location: Option<Location>,
}

/// A registered team or helper unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub kind: TeamKind,
    pub node_id: String,
    pub skills: Vec<Category>,
    pub leader_id: Option<String>,
}

/// A registered volunteer.
#[derive(Debug, Clone, PartialEq)]
pub struct Volunteer {
    pub id: String,
    pub name: String,
    pub team_ids: Vec<String>,
    pub skills: Vec<Category>,
    pub phone_masked: Option<String>,
    /// False once deactivated (停用): accepts no order.
    pub active: bool,
    /// The revision of the volunteer's stream this reflects.
    pub revision: u64,
}

/// Deepest tree allowed (centre → institute → station → point), guarding against cycles.
const MAX_DEPTH: usize = 8;

/// Nodes and teams never change once registered, so they are cached; volunteers change
/// (edits, 停用), so their stream is read each time, from the revision their cached fold
/// reflects on: every process sees what the store holds, and a volunteer who did not change
/// costs no decoding (and, in the process that writes the store, no query).
#[derive(Default)]
struct Cache {
    nodes: HashMap<String, Arc<Node>>,
    teams: HashMap<String, Arc<Team>>,
    volunteers: HashMap<String, Arc<Volunteer>>,
}

/// Volunteers whose folds are kept; all are dropped when more are read.
const CACHED_VOLUNTEERS: usize = 1 << 16;

/// Directory lookups and registrations.
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn EventStore>,
    cache: Arc<RwLock<Cache>>,
}

impl Directory {
    pub fn new(store: Arc<dyn EventStore>) -> Directory {
        Directory {
            store,
            cache: Arc::default(),
        }
    }

    async fn load(&self, stream: String) -> Result<Option<DirectoryEvent>> {
        let events = self
            .store
            .read_stream(&stream, 0, Direction::Forward, 1)
            .await?;
        let Some(first) = events.first() else {
            return Ok(None);
        };
        let event = serde_json::from_slice(&first.data)
            .map_err(|e| AppError::Storage(format!("{stream}: {e}")))?;
        self.remember(&event);
        Ok(Some(event))
    }

    /// Puts a registration into the cache (also called by the projection of the live log).
    pub fn remember(&self, event: &DirectoryEvent) {
        let mut cache = self.cache.write().expect("directory cache poisoned");
        match event.clone() {
            DirectoryEvent::OrgNodeRegistered {
                id,
                name,
                level,
                parent_id,
                location,
            } => {
                cache.nodes.insert(
                    id.clone(),
                    Arc::new(Node {
                        id,
                        name,
                        level,
                        parent_id,
                        location,
                    }),
                );
            }
            DirectoryEvent::TeamRegistered {
                id,
                name,
                kind,
                node_id,
                skills,
                leader_id,
            } => {
                cache.teams.insert(
                    id.clone(),
                    Arc::new(Team {
                        id,
                        name,
                        kind,
                        node_id,
                        skills,
                        leader_id,
                    }),
                );
            }
            DirectoryEvent::VolunteerRegistered { .. }
            | DirectoryEvent::VolunteerUpdated { .. }
            | DirectoryEvent::VolunteerDeactivated { .. }
            | DirectoryEvent::VolunteerReactivated { .. } => {}
        }
    }

    pub async fn node(&self, id: &str) -> Result<Option<Arc<Node>>> {
        if !is_id(id) {
            return Ok(None);
        }
        if let Some(node) = self.cache.read().expect("poisoned").nodes.get(id) {
            return Ok(Some(node.clone()));
        }
        self.load(format!("node-{id}")).await?;
        Ok(self.cache.read().expect("poisoned").nodes.get(id).cloned())
    }

    pub async fn team(&self, id: &str) -> Result<Option<Arc<Team>>> {
        if !is_id(id) {
            return Ok(None);
        }
        if let Some(team) = self.cache.read().expect("poisoned").teams.get(id) {
            return Ok(Some(team.clone()));
        }
        self.load(format!("team-{id}")).await?;
        Ok(self.cache.read().expect("poisoned").teams.get(id).cloned())
    }

    /// A volunteer as their stream now has them (registration folded with every change).
    pub async fn volunteer(&self, id: &str) -> Result<Option<Arc<Volunteer>>> {
        if !is_id(id) {
            return Ok(None);
        }
        let stream = format!("volunteer-{id}");
        let cached = self
            .cache
            .read()
            .expect("poisoned")
            .volunteers
            .get(id)
            .cloned();
        let from = cached.as_ref().map_or(0, |v| v.revision + 1);
        let events = self
            .store
            .read_stream(&stream, from, Direction::Forward, 10_000)
            .await?;
        if events.is_empty() {
            return Ok(cached);
        }
        let mut volunteer: Option<Volunteer> = cached.map(Arc::unwrap_or_clone);
        for recorded in &events {
            let event: DirectoryEvent = serde_json::from_slice(&recorded.data)
                .map_err(|e| AppError::Storage(format!("{stream}: {e}")))?;
            volunteer = fold_volunteer(volunteer, event, recorded.revision);
        }
        let volunteer = volunteer.map(Arc::new);
        if let Some(folded) = &volunteer {
            let mut cache = self.cache.write().expect("poisoned");
            let newer = cache
                .volunteers
                .get(id)
                .is_some_and(|kept| kept.revision >= folded.revision);
            if !newer {
                if cache.volunteers.len() >= CACHED_VOLUNTEERS {
                    cache.volunteers.clear();
                }
                cache.volunteers.insert(id.to_owned(), Arc::clone(folded));
            }
        }
        Ok(volunteer)
    }

    /// The teams a volunteer leads (队长): those of their teams that name them as leader.
    pub async fn led_teams(&self, volunteer_id: &str) -> Result<Vec<String>> {
        let Some(volunteer) = self.volunteer(volunteer_id).await? else {
            return Ok(Vec::new());
        };
        let mut led = Vec::new();
        for team_id in &volunteer.team_ids {
            if let Some(team) = self.team(team_id).await? {
                if team.leader_id.as_deref() == Some(volunteer_id) {
                    led.push(team.id.clone());
                }
            }
        }
        Ok(led)
    }

    /// The node and its ancestors, nearest first.
    pub async fn lineage(&self, node_id: &str) -> Result<Vec<Arc<Node>>> {
        let mut lineage = Vec::new();
        let mut next = Some(node_id.to_owned());
        while let Some(id) = next {
            if lineage.len() >= MAX_DEPTH {
                return Err(AppError::Storage(format!("org tree too deep at {id}")));
            }
            let node = self
                .node(&id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("组织节点「{id}」不存在")))?;
            next = node.parent_id.clone();
            lineage.push(node);
        }
        Ok(lineage)
    }

    /// Is `node_id` equal to or below `ancestor_id`?
    pub async fn is_within(&self, node_id: &str, ancestor_id: &str) -> Result<bool> {
        Ok(self
            .lineage(node_id)
            .await?
            .iter()
            .any(|n| n.id == ancestor_id))
    }

    /// The `/centre/institute/station/` path of a node, for subtree queries.
    pub async fn path(&self, node_id: &str) -> Result<String> {
        let lineage = self.lineage(node_id).await?;
        Ok(path_of(lineage.iter().rev().map(|n| n.id.as_str())))
    }

    /// Requires `node_id` to lie in the caller's scope: their subtree (staff: their node or
    /// below it), or anywhere for the system.
    pub async fn require_scope(&self, ctx: &RequestContext, node_id: &str) -> Result<()> {
        match ctx.scope {
            Scope::All => return Ok(()),
            Scope::Subtree => {}
            Scope::Public | Scope::Own | Scope::Team => {
                return Err(AppError::Forbidden("当前账号没有负责的组织节点".into()))
            }
        }
        let Some(head_node) = ctx.claims.node.as_deref() else {
            return Err(AppError::Forbidden("当前账号没有负责的组织节点".into()));
        };
        if self.is_within(node_id, head_node).await? {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "节点「{node_id}」不在你负责的范围内"
            )))
        }
    }

    /// Registers a node, team or volunteer. Staff may register within their subtree.
    pub async fn register(&self, ctx: &RequestContext, event: DirectoryEvent) -> Result<u64> {
        event.validate()?;
        match &event {
            DirectoryEvent::OrgNodeRegistered {
                level, parent_id, ..
            } => {
                if let Some(parent_id) = parent_id {
                    let parent = self.node(parent_id).await?.ok_or_else(|| {
                        AppError::missing("parent_id", format!("上级节点「{parent_id}」不存在"))
                    })?;
                    // Well formed, but it does not fit where it would go in the existing tree.
                    if parent.level.child() != Some(*level) {
                        return Err(AppError::Conflict {
                            field: Some("level"),
                            message: format!(
                                "「{}」级节点下不能设立「{}」级节点",
                                parent.level.as_str(),
                                level.as_str()
                            ),
                        });
                    }
                    self.require_scope(ctx, parent_id).await?;
                } else if ctx.scope != Scope::All {
                    return Err(AppError::Forbidden("只有系统可以设立中心".into()));
                }
            }
            DirectoryEvent::TeamRegistered { node_id, .. } => {
                if self.node(node_id).await?.is_none() {
                    return Err(AppError::missing(
                        "node_id",
                        format!("组织节点「{node_id}」不存在"),
                    ));
                }
                self.require_scope(ctx, node_id).await?;
            }
            DirectoryEvent::VolunteerRegistered { team_ids, .. } => {
                self.require_teams_in_scope(ctx, team_ids).await?;
            }
            DirectoryEvent::VolunteerUpdated { .. }
            | DirectoryEvent::VolunteerDeactivated { .. }
            | DirectoryEvent::VolunteerReactivated { .. } => {
                return Err(AppError::Storage(
                    "changes to a volunteer go through Directory::change_volunteer".into(),
                ))
            }
        }
        let metadata = EventMetadata::new(ctx.command_meta(OffsetDateTime::now_utc()));
        let request = AppendRequest {
            stream: event.stream(),
            expected: ExpectedRevision::NoStream,
            command_id: ctx.command_id.clone(),
            events: vec![new_event(event.event_type(), &event, &metadata)],
        };
        match self.store.append(request).await {
            // A retry answers what was stored the first time; its body (which may differ) is
            // never remembered: a duplicate changes nothing, not even this cache.
            Ok(result) if result.duplicate => {
                self.load(event.stream()).await?;
                Ok(result.last_position)
            }
            Ok(result) => {
                self.remember(&event);
                Ok(result.last_position)
            }
            Err(StoreError::WrongExpectedRevision { .. }) => Err(AppError::Conflict {
                field: Some("id"),
                message: "该编号已被登记".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

impl Directory {
    /// Every team must exist and lie in the caller's subtree.
    pub async fn require_teams_in_scope(
        &self,
        ctx: &RequestContext,
        team_ids: &[String],
    ) -> Result<()> {
        for team_id in team_ids {
            let team = self
                .team(team_id)
                .await?
                .ok_or_else(|| AppError::missing("team_ids", format!("队伍「{team_id}」不存在")))?;
            self.require_scope(ctx, &team.node_id).await?;
        }
        Ok(())
    }

    /// A volunteer the caller may manage: registered, and in at least one team of their
    /// subtree (or any, for the system).
    pub async fn managed_volunteer(&self, ctx: &RequestContext, id: &str) -> Result<Volunteer> {
        let volunteer = self
            .volunteer(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("志愿者「{id}」不存在")))?;
        if ctx.scope == Scope::All {
            return Ok((*volunteer).clone());
        }
        for team_id in &volunteer.team_ids {
            if let Some(team) = self.team(team_id).await? {
                if self.require_scope(ctx, &team.node_id).await.is_ok() {
                    return Ok((*volunteer).clone());
                }
            }
        }
        Err(AppError::Forbidden(format!(
            "志愿者「{id}」不在你负责的范围内"
        )))
    }

    /// Edits, deactivates or reactivates a volunteer the caller manages, appended after the
    /// revision it was checked at (a concurrent change is a conflict, never overwritten).
    /// Returns the position, or 0 when the volunteer already was so (nothing written).
    pub async fn change_volunteer(
        &self,
        ctx: &RequestContext,
        event: DirectoryEvent,
    ) -> Result<u64> {
        let (DirectoryEvent::VolunteerUpdated { id, .. }
        | DirectoryEvent::VolunteerDeactivated { id, .. }
        | DirectoryEvent::VolunteerReactivated { id }) = &event
        else {
            return Err(AppError::Storage("not a change to a volunteer".into()));
        };
        let current = self.managed_volunteer(ctx, id).await?;
        event.validate()?;
        match &event {
            DirectoryEvent::VolunteerUpdated {
                name,
                team_ids,
                skills,
                ..
            } => {
                if team_ids.is_empty() {
                    return Err(AppError::invalid("team_ids", "至少加入一支队伍"));
                }
                self.require_teams_in_scope(ctx, team_ids).await?;
                if *name == current.name
                    && *team_ids == current.team_ids
                    && *skills == current.skills
                {
                    return Ok(0);
                }
            }
            DirectoryEvent::VolunteerDeactivated { .. } if !current.active => return Ok(0),
            DirectoryEvent::VolunteerReactivated { .. } if current.active => return Ok(0),
            _ => {}
        }
        let metadata = EventMetadata::new(ctx.command_meta(OffsetDateTime::now_utc()));
        let request = AppendRequest {
            stream: event.stream(),
            expected: ExpectedRevision::Exact(current.revision),
            command_id: ctx.command_id.clone(),
            events: vec![new_event(event.event_type(), &event, &metadata)],
        };
        match self.store.append(request).await {
            Ok(result) => Ok(result.last_position),
            Err(StoreError::WrongExpectedRevision { .. }) => Err(AppError::Conflict {
                field: Some("id"),
                message: "该志愿者刚被他人修改，请刷新后重试".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

impl crate::App {
    /// The order staff act on: it must exist and lie in their subtree.
    pub async fn order_in_scope(
        &self,
        ctx: &RequestContext,
        order_id: &str,
    ) -> Result<diandan_workflows::order::OrderState> {
        let loaded = self.load_order(order_id).await?;
        if loaded.revision.is_none() {
            return Err(AppError::NotFound("订单不存在".into()));
        }
        self.directory
            .require_scope(ctx, &loaded.state.station_id)
            .await?;
        Ok(loaded.state)
    }

    /// [`order_in_scope`](Self::order_in_scope) before a command, for what a placement fixed
    /// (station, category, place): from the order cache when it is kept there and in scope,
    /// without reading the store. Those facts never change, and the command itself is decided
    /// (and its scope checked again) on the order as stored; a refusal is never answered from
    /// the cache.
    pub async fn placed_order_in_scope(
        &self,
        ctx: &RequestContext,
        order_id: &str,
    ) -> Result<diandan_workflows::order::OrderState> {
        if let Some(cached) = self.orders.get(order_id) {
            if self
                .directory
                .require_scope(ctx, &cached.state.station_id)
                .await
                .is_ok()
            {
                return Ok(cached.state);
            }
        }
        self.order_in_scope(ctx, order_id).await
    }
}

/// Could this be an id at all? (Anything else names nothing, and is not looked up.)
fn is_id(id: &str) -> bool {
    diandan_workflows::validate::id("id", id).is_ok()
}

/// `["xianan", "wenquan", "chezhanlu"]` → `/xianan/wenquan/chezhanlu/`.
pub fn path_of<'a>(ids_from_root: impl Iterator<Item = &'a str>) -> String {
    let mut path = String::from("/");
    for id in ids_from_root {
        path.push_str(id);
        path.push('/');
    }
    path
}

/// Folds one event of a volunteer's stream.
fn fold_volunteer(
    volunteer: Option<Volunteer>,
    event: DirectoryEvent,
    revision: u64,
) -> Option<Volunteer> {
    match (volunteer, event) {
        (
            None,
            DirectoryEvent::VolunteerRegistered {
                id,
                name,
                team_ids,
                skills,
                phone_masked,
            },
        ) => Some(Volunteer {
            id,
            name,
            team_ids,
            skills,
            phone_masked,
            active: true,
            revision,
        }),
        (
            Some(v),
            DirectoryEvent::VolunteerUpdated {
                name,
                team_ids,
                skills,
                ..
            },
        ) => Some(Volunteer {
            name,
            team_ids,
            skills,
            revision,
            ..v
        }),
        (Some(v), DirectoryEvent::VolunteerDeactivated { .. }) => Some(Volunteer {
            active: false,
            revision,
            ..v
        }),
        (Some(v), DirectoryEvent::VolunteerReactivated { .. }) => Some(Volunteer {
            active: true,
            revision,
            ..v
        }),
        (v, _) => v,
    }
}
