//! 派单规则: which teams to suggest for an order, best first, each with the reason in Chinese
//! that the dispatch event records (every 派单 says why).
//!
//! The rules, in the order they apply:
//!
//! 1. **Lineage** (hard): only teams registered at the order's station, its institute or its
//!    centre are candidates — a station never dispatches sideways into another station.
//! 2. **Escalation** (层层派单): the station's own teams first. Only when no team at a level
//!    can take the order does the search go up one level (station → institute → centre), and
//!    the suggestions say which level was used and why each lower one was passed over.
//! 3. **Skill** (hard): the team lists the order's category.
//! 4. **Capacity** (hard): the team's open orders are below its capacity.
//! 5. **Availability** (hard): the team's service windows (weekday + hours) include the
//!    decision time; a team without windows is always available.
//! 6. **Soft scores**, weighted ([`DispatchWeights`]): nearer is better (haversine distance),
//!    less loaded is better, fewer recent assignments is better (fairness). Urgent orders weigh
//!    distance more: the nearest team responds fastest.
//!
//! [`DispatchIndex`] holds the org tree, the teams grouped by the node they belong to, and the
//! volunteers, so one decision looks only at the teams of at most four nodes (the lineage),
//! whatever the size of the directory: see [`bench::bench_dispatch`] for the numbers. It is
//! fed from directory events and workload counters by the caller; it reads no clock (the
//! decision time comes in the request) and does no I/O.

pub mod bench;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use time::{OffsetDateTime, Time, UtcOffset, Weekday};

use crate::calendar::CHINA_STANDARD_TIME;
use crate::definition::Eligibility;
use crate::order::{Assignee, TeamKind};
use crate::validate::Location;
use crate::{Category, OrgLevel};

/// WGS-84 coordinates, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub lat: f64,
    pub lng: f64,
}

impl From<&Location> for GeoPoint {
    fn from(location: &Location) -> GeoPoint {
        GeoPoint {
            lat: location.lat,
            lng: location.lng,
        }
    }
}

/// Great-circle distance in kilometres (haversine, mean Earth radius).
pub fn haversine_km(a: GeoPoint, b: GeoPoint) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0088;
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let d_lat = lat2 - lat1;
    let d_lng = (b.lng - a.lng).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lng / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// A weekly service window: the team takes orders on `weekday` from `start` until `end`
/// (local time of the index's offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailabilityWindow {
    pub weekday: Weekday,
    pub start: Time,
    pub end: Time,
}

/// An org node (中心 / 所 / 站 / 点) as dispatch sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgNode {
    pub id: String,
    pub name: String,
    pub level: OrgLevel,
    /// `None` only for a centre.
    pub parent_id: Option<String>,
    /// Where the node is; teams without their own location are placed here.
    pub location: Option<GeoPoint>,
}

/// A team (志愿服务队) or helper unit (帮扶单位) as dispatch sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamProfile {
    pub team_id: String,
    pub name: String,
    pub kind: TeamKind,
    /// The org node the team belongs to.
    pub node_id: String,
    pub skills: Vec<Category>,
    /// Defaults to the node's location.
    pub location: Option<GeoPoint>,
    /// Most open orders (dispatched or accepted, not yet completed) it takes at once.
    pub capacity: u32,
    /// Open orders now.
    pub open_load: u32,
    /// Orders dispatched to it in the recent window (7 days by default), for fairness.
    pub recent_assignments: u32,
    /// Empty: always available.
    pub availability: Vec<AvailabilityWindow>,
}

/// The order to dispatch, as the rules need it.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchRequest {
    pub category: Category,
    /// The node the order was placed at (a station, or a point under one).
    pub station_id: String,
    /// Where the service is needed; defaults to the station's location.
    pub location: Option<GeoPoint>,
    /// 加急: distance weighs more.
    pub urgent: bool,
    /// When the decision is made: availability windows are checked at this instant.
    pub at: OffsetDateTime,
}

/// How the soft scores are weighed. Each score is between 0 and 1; the total is their
/// weighted mean, so it is between 0 and 1 too.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchWeights {
    pub distance: f64,
    pub load: f64,
    pub fairness: f64,
    /// The distance at which the distance score halves (1 at 0 km, ½ here, ⅓ at twice it).
    pub distance_halving_km: f64,
    /// How much more distance weighs for urgent orders.
    pub urgent_distance_factor: f64,
    /// The window `recent_assignments` counts over, for the reason text.
    pub recent_window_days: u32,
    /// How many suggestions a decision returns at most.
    pub max_suggestions: usize,
}

impl Default for DispatchWeights {
    fn default() -> DispatchWeights {
        DispatchWeights {
            distance: 0.4,
            load: 0.35,
            fairness: 0.25,
            distance_halving_km: 3.0,
            urgent_distance_factor: 3.0,
            recent_window_days: 7,
            max_suggestions: 10,
        }
    }
}

/// One suggested team, with its score and the reason to record if it is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub team_id: String,
    pub team_name: String,
    pub kind: TeamKind,
    pub node_id: String,
    pub level: OrgLevel,
    /// Between 0 and 1; higher is better.
    pub score: f64,
    pub distance_km: Option<f64>,
    pub open_load: u32,
    pub capacity: u32,
    pub recent_assignments: u32,
    /// e.g. 技能匹配：卫生环保；距离 0.8 公里；当前负载 2/5；近 7 天已派 1 单 — preceded, when
    /// the order went up a level, by why the lower levels could not take it.
    pub reason: String,
}

impl Suggestion {
    /// The assignee to put in the dispatch command.
    pub fn assignee(&self) -> Assignee {
        Assignee {
            team_id: self.team_id.clone(),
            kind: self.kind,
            node_id: self.node_id.clone(),
            level: self.level,
        }
    }
}

/// Why one level of the lineage could not take the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelReport {
    pub node_id: String,
    pub node_name: String,
    pub level: OrgLevel,
    /// Teams registered at the node.
    pub teams: u32,
    pub lacking_skill: u32,
    pub over_capacity: u32,
    pub unavailable: u32,
}

impl LevelReport {
    /// e.g. 站级「车站路社区」无可派队伍（共 3 支：2 支无「卫生环保」技能，1 支已满负荷）
    pub fn reason_zh(&self, category: Category) -> String {
        let node = format!("{}级「{}」", level_zh(self.level), self.node_name);
        if self.teams == 0 {
            return format!("{node}没有队伍");
        }
        let mut why = Vec::new();
        if self.lacking_skill > 0 {
            why.push(format!(
                "{} 支无「{}」技能",
                self.lacking_skill,
                category.name_zh()
            ));
        }
        if self.over_capacity > 0 {
            why.push(format!("{} 支已满负荷", self.over_capacity));
        }
        if self.unavailable > 0 {
            why.push(format!("{} 支当前不在服务时间", self.unavailable));
        }
        format!(
            "{node}无可派队伍（共 {} 支：{}）",
            self.teams,
            why.join("，")
        )
    }
}

/// The answer to one dispatch decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestions {
    /// The level whose teams are suggested.
    pub level: OrgLevel,
    pub node_id: String,
    /// The lower levels passed over, lowest first; empty when the station itself can take it.
    pub passed_over: Vec<LevelReport>,
    /// Best first, at most [`DispatchWeights::max_suggestions`].
    pub ranked: Vec<Suggestion>,
}

impl Suggestions {
    /// Automatic assignment: the best suggestion.
    pub fn top(&self) -> &Suggestion {
        &self.ranked[0]
    }
}

/// Why no suggestion could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The order's station is not in the index. Register the node (directory) first.
    #[error("未知的站点「{0}」")]
    UnknownNode(String),
    /// No level of the lineage has a team that can take the order now. Dispatch by hand,
    /// publish it for claiming, or wait for capacity.
    #[error("没有可派的队伍：{}", .reasons.join("；"))]
    NoCandidate {
        passed_over: Vec<LevelReport>,
        reasons: Vec<String>,
    },
}

/// A directory entry the index refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error("unknown org node \"{0}\"")]
    UnknownNode(String),
    #[error("unknown team \"{0}\"")]
    UnknownTeam(String),
    /// A centre has no parent, every other node has one, one level up.
    #[error("node \"{node}\" ({level}) cannot sit under {parent}")]
    WrongParent {
        node: String,
        level: &'static str,
        parent: String,
    },
    #[error("team \"{team}\": service window on {weekday} must end after it starts")]
    EmptyWindow { team: String, weekday: Weekday },
}

struct Node {
    id: String,
    name: String,
    level: OrgLevel,
    parent: Option<usize>,
    location: Option<GeoPoint>,
    /// Indexes into `DispatchIndex::teams` of the teams registered at this node.
    teams: Vec<usize>,
}

struct Team {
    profile: TeamProfile,
    node: usize,
    skills: u32,
    /// Indexes into `DispatchIndex::volunteers`.
    members: Vec<usize>,
}

struct Volunteer {
    id: String,
    skills: u32,
    teams: Vec<String>,
}

/// The org tree, the teams grouped by node, and the volunteers: everything a dispatch
/// decision reads, arranged so that it reads only the order's lineage.
pub struct DispatchIndex {
    weights: DispatchWeights,
    offset: UtcOffset,
    nodes: Vec<Node>,
    node_ix: HashMap<String, usize>,
    teams: Vec<Team>,
    team_ix: HashMap<String, usize>,
    volunteers: Vec<Volunteer>,
    volunteer_ix: HashMap<String, usize>,
}

impl fmt::Debug for DispatchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchIndex")
            .field("nodes", &self.nodes.len())
            .field("teams", &self.teams.len())
            .field("volunteers", &self.volunteers.len())
            .finish()
    }
}

impl Default for DispatchIndex {
    fn default() -> DispatchIndex {
        DispatchIndex::new()
    }
}

impl DispatchIndex {
    /// An empty index with default weights, reading availability in China Standard Time.
    pub fn new() -> DispatchIndex {
        DispatchIndex {
            weights: DispatchWeights::default(),
            offset: CHINA_STANDARD_TIME,
            nodes: Vec::new(),
            node_ix: HashMap::new(),
            teams: Vec::new(),
            team_ix: HashMap::new(),
            volunteers: Vec::new(),
            volunteer_ix: HashMap::new(),
        }
    }

    pub fn with_weights(mut self, weights: DispatchWeights) -> DispatchIndex {
        self.weights = weights;
        self
    }

    /// The offset availability windows are read in.
    pub fn with_utc_offset(mut self, offset: UtcOffset) -> DispatchIndex {
        self.offset = offset;
        self
    }

    pub fn weights(&self) -> &DispatchWeights {
        &self.weights
    }

    /// Registers or updates an org node. Its parent must be registered and one level up.
    pub fn add_node(&mut self, node: OrgNode) -> Result<(), IndexError> {
        let parent = match &node.parent_id {
            None => None,
            Some(id) => Some(
                *self
                    .node_ix
                    .get(id)
                    .ok_or_else(|| IndexError::UnknownNode(id.clone()))?,
            ),
        };
        let fits = match parent {
            None => node.level == OrgLevel::Centre,
            Some(p) => self.nodes[p].level.child() == Some(node.level),
        };
        if !fits {
            return Err(IndexError::WrongParent {
                node: node.id.clone(),
                level: node.level.as_str(),
                parent: node.parent_id.clone().unwrap_or_else(|| "no parent".into()),
            });
        }
        match self.node_ix.get(&node.id) {
            Some(&i) => {
                let existing = &mut self.nodes[i];
                existing.name = node.name;
                existing.level = node.level;
                existing.parent = parent;
                existing.location = node.location;
            }
            None => {
                self.node_ix.insert(node.id.clone(), self.nodes.len());
                self.nodes.push(Node {
                    id: node.id,
                    name: node.name,
                    level: node.level,
                    parent,
                    location: node.location,
                    teams: Vec::new(),
                });
            }
        }
        Ok(())
    }

    /// Registers a team, or replaces it (it may move to another node). Its members stay.
    pub fn add_team(&mut self, profile: TeamProfile) -> Result<(), IndexError> {
        let node = *self
            .node_ix
            .get(&profile.node_id)
            .ok_or_else(|| IndexError::UnknownNode(profile.node_id.clone()))?;
        if let Some(window) = profile.availability.iter().find(|w| w.end <= w.start) {
            return Err(IndexError::EmptyWindow {
                team: profile.team_id.clone(),
                weekday: window.weekday,
            });
        }
        let skills = skill_mask(&profile.skills);
        match self.team_ix.get(&profile.team_id) {
            Some(&i) => {
                let old_node = self.teams[i].node;
                if old_node != node {
                    self.nodes[old_node].teams.retain(|&t| t != i);
                    self.nodes[node].teams.push(i);
                }
                let team = &mut self.teams[i];
                team.profile = profile;
                team.node = node;
                team.skills = skills;
            }
            None => {
                let i = self.teams.len();
                self.team_ix.insert(profile.team_id.clone(), i);
                self.nodes[node].teams.push(i);
                self.teams.push(Team {
                    profile,
                    node,
                    skills,
                    members: Vec::new(),
                });
            }
        }
        Ok(())
    }

    /// Registers a volunteer as a member of these teams (replacing earlier memberships).
    pub fn add_volunteer(
        &mut self,
        volunteer_id: &str,
        team_ids: &[String],
        skills: &[Category],
    ) -> Result<(), IndexError> {
        let mut teams = Vec::with_capacity(team_ids.len());
        for id in team_ids {
            teams.push(
                *self
                    .team_ix
                    .get(id)
                    .ok_or_else(|| IndexError::UnknownTeam(id.clone()))?,
            );
        }
        let v = match self.volunteer_ix.get(volunteer_id) {
            Some(&v) => {
                for old in std::mem::take(&mut self.volunteers[v].teams) {
                    if let Some(&t) = self.team_ix.get(&old) {
                        self.teams[t].members.retain(|&m| m != v);
                    }
                }
                v
            }
            None => {
                let v = self.volunteers.len();
                self.volunteer_ix.insert(volunteer_id.to_owned(), v);
                self.volunteers.push(Volunteer {
                    id: volunteer_id.to_owned(),
                    skills: 0,
                    teams: Vec::new(),
                });
                v
            }
        };
        for &t in &teams {
            if !self.teams[t].members.contains(&v) {
                self.teams[t].members.push(v);
            }
        }
        let volunteer = &mut self.volunteers[v];
        volunteer.skills = skill_mask(skills);
        volunteer.teams = team_ids.to_vec();
        Ok(())
    }

    /// Sets a team's counters, from the caller's projection of open and recent orders.
    pub fn set_workload(
        &mut self,
        team_id: &str,
        open_load: u32,
        recent_assignments: u32,
    ) -> Result<(), IndexError> {
        let profile = self.team_mut(team_id)?;
        profile.open_load = open_load;
        profile.recent_assignments = recent_assignments;
        Ok(())
    }

    /// Counts an order dispatched to the team, so the next decision sees it at once.
    pub fn record_dispatch(&mut self, team_id: &str) -> Result<(), IndexError> {
        let profile = self.team_mut(team_id)?;
        profile.open_load += 1;
        profile.recent_assignments += 1;
        Ok(())
    }

    /// Counts an order the team finished or returned.
    pub fn record_release(&mut self, team_id: &str) -> Result<(), IndexError> {
        let profile = self.team_mut(team_id)?;
        profile.open_load = profile.open_load.saturating_sub(1);
        Ok(())
    }

    fn team_mut(&mut self, team_id: &str) -> Result<&mut TeamProfile, IndexError> {
        let &i = self
            .team_ix
            .get(team_id)
            .ok_or_else(|| IndexError::UnknownTeam(team_id.to_owned()))?;
        Ok(&mut self.teams[i].profile)
    }

    pub fn team(&self, team_id: &str) -> Option<&TeamProfile> {
        self.team_ix.get(team_id).map(|&i| &self.teams[i].profile)
    }

    /// The node and its ancestors, the node first: e.g. station, institute, centre.
    pub fn lineage(&self, node_id: &str) -> Option<Vec<&str>> {
        let start = *self.node_ix.get(node_id)?;
        Some(
            self.lineage_ix(start)
                .map(|n| self.nodes[n].id.as_str())
                .collect(),
        )
    }

    fn lineage_ix(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(start), |&n| self.nodes[n].parent)
    }

    /// Ranks the teams that can take the order, at the lowest level of its lineage where any
    /// can (层层派单).
    pub fn suggest(&self, request: &DispatchRequest) -> Result<Suggestions, DispatchError> {
        self.suggest_excluding(request, &[])
    }

    /// [`suggest`](Self::suggest) without some teams — those that let the order time out or
    /// declined it — so a re-dispatch goes to the next candidate, escalating if need be. An
    /// excluded team counts as unavailable in the level's report.
    pub fn suggest_excluding(
        &self,
        request: &DispatchRequest,
        excluded: &[&str],
    ) -> Result<Suggestions, DispatchError> {
        let start = *self
            .node_ix
            .get(&request.station_id)
            .ok_or_else(|| DispatchError::UnknownNode(request.station_id.clone()))?;
        let local = request.at.to_offset(self.offset);
        let (weekday, clock) = (local.weekday(), local.time());
        let wanted = skill_bit(request.category);
        let order_location = request.location.or(self.nodes[start].location);
        let mut passed_over = Vec::new();
        for n in self.lineage_ix(start) {
            let node = &self.nodes[n];
            let mut report = LevelReport {
                node_id: node.id.clone(),
                node_name: node.name.clone(),
                level: node.level,
                teams: 0,
                lacking_skill: 0,
                over_capacity: 0,
                unavailable: 0,
            };
            let mut candidates: Vec<Candidate> = Vec::new();
            for &t in &node.teams {
                let team = &self.teams[t];
                let profile = &team.profile;
                report.teams += 1;
                if excluded.contains(&profile.team_id.as_str()) {
                    report.unavailable += 1;
                } else if team.skills & wanted == 0 {
                    report.lacking_skill += 1;
                } else if profile.open_load >= profile.capacity {
                    report.over_capacity += 1;
                } else if !is_available(&profile.availability, weekday, clock) {
                    report.unavailable += 1;
                } else {
                    let team_location = profile.location.or(node.location);
                    let distance_km = match (order_location, team_location) {
                        (Some(a), Some(b)) => Some(haversine_km(a, b)),
                        _ => None,
                    };
                    candidates.push(Candidate {
                        team: t,
                        score: self.score(profile, distance_km, request.urgent),
                        distance_km,
                    });
                }
            }
            if candidates.is_empty() {
                passed_over.push(report);
                continue;
            }
            candidates.sort_by(|a, b| self.rank(a, b));
            candidates.truncate(self.weights.max_suggestions.max(1));
            let escalation = escalation_zh(&passed_over, request.category, node);
            let ranked = candidates
                .iter()
                .map(|c| self.suggestion(c, request, escalation.as_deref()))
                .collect();
            return Ok(Suggestions {
                level: node.level,
                node_id: node.id.clone(),
                passed_over,
                ranked,
            });
        }
        let reasons = passed_over
            .iter()
            .map(|r| r.reason_zh(request.category))
            .collect();
        Err(DispatchError::NoCandidate {
            passed_over,
            reasons,
        })
    }

    /// Automatic assignment (自动派单): the top suggestion.
    pub fn auto_assign(&self, request: &DispatchRequest) -> Result<Suggestion, DispatchError> {
        let mut suggestions = self.suggest(request)?;
        Ok(suggestions.ranked.swap_remove(0))
    }

    /// The volunteers a published wish (认领微心愿 / 抢单) is shown to, by the claim policy's
    /// rules: members of the station lineage's teams (`StationLineage`) whose team or who
    /// themselves have the category skill (`CategorySkill`). Sorted by id.
    pub fn claim_audience(
        &self,
        category: Category,
        station_id: &str,
        rules: &[Eligibility],
    ) -> Result<Vec<&str>, DispatchError> {
        let start = *self
            .node_ix
            .get(station_id)
            .ok_or_else(|| DispatchError::UnknownNode(station_id.to_owned()))?;
        let wanted = skill_bit(category);
        let need_skill = rules.contains(&Eligibility::CategorySkill);
        let teams: Vec<usize> = if rules.contains(&Eligibility::StationLineage) {
            self.lineage_ix(start)
                .flat_map(|n| self.nodes[n].teams.iter().copied())
                .collect()
        } else {
            (0..self.teams.len()).collect()
        };
        let mut audience: Vec<&str> = teams
            .into_iter()
            .flat_map(|t| {
                let team_skilled = self.teams[t].skills & wanted != 0;
                self.teams[t].members.iter().filter_map(move |&v| {
                    let volunteer = &self.volunteers[v];
                    let skilled = team_skilled || volunteer.skills & wanted != 0;
                    (!need_skill || skilled).then_some(volunteer.id.as_str())
                })
            })
            .collect();
        audience.sort_unstable();
        audience.dedup();
        Ok(audience)
    }

    fn score(&self, team: &TeamProfile, distance_km: Option<f64>, urgent: bool) -> f64 {
        let w = &self.weights;
        // Unknown distance is neither rewarded nor punished.
        let distance =
            distance_km.map_or(0.5, |d| 1.0 / (1.0 + d / w.distance_halving_km.max(0.001)));
        let load = 1.0 - f64::from(team.open_load) / f64::from(team.capacity.max(1));
        let fairness = 1.0 / (1.0 + f64::from(team.recent_assignments));
        let w_distance = if urgent {
            w.distance * w.urgent_distance_factor
        } else {
            w.distance
        };
        let total = w_distance + w.load + w.fairness;
        if total <= 0.0 {
            return 0.0;
        }
        (w_distance * distance + w.load * load + w.fairness * fairness) / total
    }

    /// Best score first; ties go to the nearer team, then the smaller id, so the same inputs
    /// always give the same ranking.
    fn rank(&self, a: &Candidate, b: &Candidate) -> Ordering {
        b.score
            .total_cmp(&a.score)
            .then_with(|| {
                let (da, db) = (
                    a.distance_km.unwrap_or(f64::MAX),
                    b.distance_km.unwrap_or(f64::MAX),
                );
                da.total_cmp(&db)
            })
            .then_with(|| {
                self.teams[a.team]
                    .profile
                    .team_id
                    .cmp(&self.teams[b.team].profile.team_id)
            })
    }

    fn suggestion(
        &self,
        candidate: &Candidate,
        request: &DispatchRequest,
        escalation: Option<&str>,
    ) -> Suggestion {
        let team = &self.teams[candidate.team];
        let profile = &team.profile;
        let node = &self.nodes[team.node];
        let mut parts = Vec::with_capacity(6);
        if let Some(escalation) = escalation {
            parts.push(escalation.to_owned());
        }
        parts.push(format!("技能匹配：{}", request.category.name_zh()));
        parts.push(match candidate.distance_km {
            Some(d) => format!("距离 {d:.1} 公里"),
            None => "距离未知".to_owned(),
        });
        parts.push(format!(
            "当前负载 {}/{}",
            profile.open_load, profile.capacity
        ));
        parts.push(format!(
            "近 {} 天已派 {} 单",
            self.weights.recent_window_days, profile.recent_assignments
        ));
        if request.urgent {
            parts.push("紧急单就近优先".to_owned());
        }
        Suggestion {
            team_id: profile.team_id.clone(),
            team_name: profile.name.clone(),
            kind: profile.kind,
            node_id: node.id.clone(),
            level: node.level,
            score: candidate.score,
            distance_km: candidate.distance_km,
            open_load: profile.open_load,
            capacity: profile.capacity,
            recent_assignments: profile.recent_assignments,
            reason: parts.join("；"),
        }
    }
}

struct Candidate {
    team: usize,
    score: f64,
    distance_km: Option<f64>,
}

/// Why the order went up, e.g. 站级「车站路社区」无可派队伍（…），上报所级「温泉所」.
fn escalation_zh(passed_over: &[LevelReport], category: Category, used: &Node) -> Option<String> {
    if passed_over.is_empty() {
        return None;
    }
    let why: Vec<String> = passed_over.iter().map(|r| r.reason_zh(category)).collect();
    Some(format!(
        "{}，上报{}级「{}」",
        why.join("；"),
        level_zh(used.level),
        used.name
    ))
}

fn level_zh(level: OrgLevel) -> &'static str {
    match level {
        OrgLevel::Centre => "中心",
        OrgLevel::Institute => "所",
        OrgLevel::Station => "站",
        OrgLevel::Point => "点",
    }
}

fn skill_bit(category: Category) -> u32 {
    // Fieldless enum: its discriminant is its position in Category::ALL, fewer than 32.
    1 << (category as u32)
}

fn skill_mask(skills: &[Category]) -> u32 {
    skills.iter().fold(0, |mask, &c| mask | skill_bit(c))
}

fn is_available(windows: &[AvailabilityWindow], weekday: Weekday, clock: Time) -> bool {
    windows.is_empty()
        || windows
            .iter()
            .any(|w| w.weekday == weekday && w.start <= clock && clock < w.end)
}

#[cfg(test)]
mod tests;
