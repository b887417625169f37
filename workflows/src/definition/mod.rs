//! 工作流定义: what a deployment configures of a workflow, read from versioned TOML.
//!
//! The engine runs the workflows it has code for, each with its transition table written once
//! in Rust ([`engine`](crate::engine): [`dispatched`](crate::dispatched),
//! [`claim`](crate::claim)). A [`Definition`] configures one of them for a deployment: the
//! labels staff read, which of the table's transitions are open and to which of the table's
//! roles, the deadlines (time limits in working or calendar time, a yellow warning at 80%, what
//! happens on expiry), the calendar the deadlines are counted in and, for claims, how many
//! volunteers are needed by default. The shipped files live in `workflows/definitions/`:
//!
//! - `dispatched-order.v1.toml`: 点单 → 审单 → 派单 → 接单 → 服务 → 办结 → 评单 → 归档, with
//!   merging duplicates at triage and rework or a follow-up after a poor review.
//! - `open-claim.v1.toml`: a wish or activity published to eligible volunteers, who claim
//!   seats until `required_volunteers` have.
//!
//! [`Definition::parse`] checks a file completely and reports every problem as `file:line:`:
//! a state, transition (from-state, command, outcome → target) or role its workflow's table
//! does not have, an unreachable state, a stage without a deadline, … A definition that parses
//! is one the engine can run. The engine uses it as the open part of its table
//! ([`Definition::transition`]) and as its timer plan ([`Definition::clock_changes`],
//! [`Deadline::schedule`]). A [`Registry`] keeps every version, so an order started on v1
//! stays on v1 after v2 ships.
//!
//! Pure: no clock, no I/O except [`Definition::load`] / [`Registry::load_dir`] reading the path
//! they are given.

pub(crate) mod error;
mod registry;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use toml::Spanned;

use crate::calendar::{Calendar, TimeLimit};
use crate::engine::Table;
use crate::order::Status;
use crate::Role;
use error::{is_snake_case, read_file, LineIndex};

pub use error::{DefinitionError, Problem, ProblemKind};
pub use registry::Registry;

/// Which definition, and which version of it: what an order records when it starts, so it is
/// decided by the same rules for its whole life.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DefinitionId {
    pub name: String,
    pub version: u32,
}

impl DefinitionId {
    /// The dispatched-order workflow every order ran on before definitions were versioned:
    /// events stored without a `workflow` field belong to it.
    pub fn dispatched_order_v1() -> DefinitionId {
        DefinitionId {
            name: "dispatched-order".into(),
            version: 1,
        }
    }
}

impl fmt::Display for DefinitionId {
    /// `dispatched-order@1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// A checked workflow definition. Only [`Definition::parse`] makes one, so every reference in it
/// resolves and every non-final state has a deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    id: DefinitionId,
    table: &'static Table,
    title: String,
    file: String,
    version_line: usize,
    initial: String,
    calendar: String,
    states: Vec<State>,
    transitions: Vec<Transition>,
    deadlines: Vec<Deadline>,
    claim: Option<ClaimPolicy>,
}

/// A stage an instance can be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// snake_case, e.g. `in_service`; what events and the engine call it.
    pub name: String,
    /// What residents and staff read, e.g. 服务中.
    pub label: String,
    /// Nothing happens after it: no transition leaves it and no clock runs in it.
    pub is_final: bool,
}

/// One open row of the workflow's table, as the file configures it: `command` moves an
/// instance from any of `from` to `to`, if the actor's role is one of `roles`. `to` and the
/// largest `roles` are the table's; a file may only narrow the roles and relabel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// snake_case, e.g. `check_in`.
    pub command: String,
    /// e.g. 签到.
    pub label: String,
    /// A command with several possible results (审单 accepts or rejects) has one row per
    /// result; the default result has no outcome, the others name theirs (`reject`).
    pub outcome: Option<String>,
    pub from: Vec<String>,
    pub to: String,
    pub roles: Vec<Role>,
}

/// A time limit on one or more consecutive states (时限): the clock starts when an instance
/// enters `covers` from outside and stops when it leaves `covers`.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    /// snake_case, e.g. `sign_for`.
    pub name: String,
    /// e.g. 签收.
    pub label: String,
    pub covers: Vec<String>,
    pub within: TimeLimit,
    /// The limit for urgent orders (加急), if different.
    pub urgent_within: Option<TimeLimit>,
    /// The share of the limit after which the order shows yellow (default 0.8).
    pub warn_at: f64,
    /// Commands that restart the clock although the instance stays in `covers`, e.g. a
    /// re-dispatch gives the new team a full day to sign for the order.
    pub restart_on: Vec<String>,
    pub on_expiry: OnExpiry,
}

/// What happens when a deadline passes.
#[derive(Debug, Clone, PartialEq)]
pub enum OnExpiry {
    /// 督办: the order turns red and the level above is told. The default.
    Supervise,
    /// The system fires these commands in order, with these arguments, e.g. a review with the
    /// default rating and then close (默认好评并归档).
    Fire {
        commands: Vec<String>,
        args: serde_json::Map<String, serde_json::Value>,
    },
}

/// How a claim workflow (认领 / 抢单) fills: volunteers send `command` while the instance is
/// open; it stays open until `required_volunteers` have claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPolicy {
    pub command: String,
    /// The default number of volunteers needed; an order may ask for another number.
    pub required_volunteers: u32,
    /// Who sees the published wish and may claim it.
    pub eligibility: Vec<Eligibility>,
}

/// A rule a volunteer must pass to see and claim a published wish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eligibility {
    /// The volunteer (or their team) has the order's category as a skill.
    CategorySkill,
    /// The volunteer's team belongs to the order's station, its institute or its centre.
    StationLineage,
}

/// Which clocks a transition starts and stops: what the engine turns into timer effects.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClockChanges<'a> {
    pub started: Vec<&'a Deadline>,
    pub stopped: Vec<&'a Deadline>,
}

/// A scheduled deadline for one instance: light yellow at `warn_at`, red (and act) at `due_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub deadline: String,
    pub limit: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub warn_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
}

impl Deadline {
    /// Whether the clock runs in `state`.
    pub fn covers(&self, state: &str) -> bool {
        self.covers.iter().any(|s| s == state)
    }

    /// The limit that applies: the urgent one for urgent orders, when there is one.
    pub fn limit(&self, urgent: bool) -> TimeLimit {
        match (urgent, self.urgent_within) {
            (true, Some(limit)) => limit,
            _ => self.within,
        }
    }

    /// The timer for a clock started at `started_at`, counted in `calendar`.
    pub fn schedule(&self, started_at: OffsetDateTime, urgent: bool, calendar: &Calendar) -> Timer {
        let limit = self.limit(urgent);
        let due = calendar.due(started_at, limit, self.warn_at);
        Timer {
            deadline: self.name.clone(),
            limit: limit.to_string(),
            started_at,
            warn_at: due.warn_at,
            due_at: due.due_at,
        }
    }
}

impl Definition {
    /// Parses and checks a definition. `file_name` appears in every error message.
    pub fn parse(source: &str, file_name: &str) -> Result<Definition, DefinitionError> {
        let lines = LineIndex::new(source);
        let raw: RawDefinition =
            toml::from_str(source).map_err(|error| lines.syntax(file_name, &error))?;
        let mut check = Check {
            lines: &lines,
            problems: Vec::new(),
            table_known: true,
        };
        let definition = check.definition(raw, file_name);
        if check.problems.is_empty() {
            Ok(definition)
        } else {
            Err(DefinitionError::new(file_name, check.problems))
        }
    }

    /// Reads and parses a definition file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Definition, DefinitionError> {
        let (source, file) = read_file(path.as_ref())?;
        Definition::parse(&source, &file)
    }

    pub fn id(&self) -> &DefinitionId {
        &self.id
    }

    /// The engine's table for this workflow.
    pub fn table(&self) -> &'static Table {
        self.table
    }

    /// e.g. `dispatched-order`.
    pub fn name(&self) -> &str {
        &self.id.name
    }

    pub fn version(&self) -> u32 {
        self.id.version
    }

    /// What staff read, e.g. 点单派单.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The file it was read from, for messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The state before the first command: no instance exists yet, so no clock runs there.
    pub fn initial(&self) -> &str {
        &self.initial
    }

    /// The name of the [`Calendar`] the deadlines are counted in.
    pub fn calendar(&self) -> &str {
        &self.calendar
    }

    pub fn states(&self) -> &[State] {
        &self.states
    }

    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.iter().find(|s| s.name == name)
    }

    /// Whether `state` is final. Unknown states are not.
    pub fn is_final(&self, state: &str) -> bool {
        self.state(state).is_some_and(|s| s.is_final)
    }

    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    pub fn deadlines(&self) -> &[Deadline] {
        &self.deadlines
    }

    pub fn deadline(&self, name: &str) -> Option<&Deadline> {
        self.deadlines.iter().find(|d| d.name == name)
    }

    /// How claims fill, for claim workflows.
    pub fn claim(&self) -> Option<&ClaimPolicy> {
        self.claim.as_ref()
    }

    /// The rows `command` can take from `state` (one per outcome).
    pub fn transitions_from<'a, 'q>(
        &'a self,
        state: &'q str,
        command: &'q str,
    ) -> impl Iterator<Item = &'a Transition> + 'q
    where
        'a: 'q,
    {
        self.transitions
            .iter()
            .filter(move |t| t.command == command && t.from.iter().any(|f| f == state))
    }

    /// The row for `command` with this `outcome` from `state`: its target and, since outcomes
    /// of one command may be open to different roles, who may fire it.
    pub fn transition(
        &self,
        state: &str,
        command: &str,
        outcome: Option<&str>,
    ) -> Option<&Transition> {
        self.transitions_from(state, command)
            .find(|t| t.outcome.as_deref() == outcome)
    }

    /// The deadlines whose clock runs in `state`.
    pub fn deadlines_covering<'a, 'q>(
        &'a self,
        state: &'q str,
    ) -> impl Iterator<Item = &'a Deadline> + 'q
    where
        'a: 'q,
    {
        self.deadlines.iter().filter(move |d| d.covers(state))
    }

    /// The clocks that `command`, moving an instance from `from` to `to`, starts and stops.
    ///
    /// A clock starts on entering its states from outside and stops on leaving them; a
    /// `restart_on` command stops and starts it again (it is listed in both).
    pub fn clock_changes(&self, from: &str, command: &str, to: &str) -> ClockChanges<'_> {
        let mut changes = ClockChanges::default();
        for deadline in &self.deadlines {
            let (was, is) = (deadline.covers(from), deadline.covers(to));
            let restarted = was && is && deadline.restart_on.iter().any(|c| c == command);
            if was && (!is || restarted) {
                changes.stopped.push(deadline);
            }
            if is && (!was || restarted) {
                changes.started.push(deadline);
            }
        }
        changes
    }
}

// ---------------------------------------------------------------------------------------------
// The TOML form, with spans for line numbers
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    name: Spanned<String>,
    version: Spanned<i64>,
    #[serde(default)]
    title: String,
    initial: Spanned<String>,
    calendar: Spanned<String>,
    #[serde(default)]
    states: Vec<RawState>,
    #[serde(default)]
    transitions: Vec<RawTransition>,
    #[serde(default)]
    deadlines: Vec<RawDeadline>,
    claim: Option<RawClaim>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    name: Spanned<String>,
    #[serde(default)]
    label: String,
    #[serde(default, rename = "final")]
    is_final: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransition {
    command: Spanned<String>,
    #[serde(default)]
    label: String,
    outcome: Option<Spanned<String>>,
    from: Vec<Spanned<String>>,
    /// Omitted: the instance stays where it is (a claimant checking in).
    to: Option<Spanned<String>>,
    roles: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadline {
    name: Spanned<String>,
    #[serde(default)]
    label: String,
    covers: Vec<Spanned<String>>,
    within: Spanned<String>,
    urgent_within: Option<Spanned<String>>,
    warn_at: Option<Spanned<f64>>,
    #[serde(default)]
    restart_on: Vec<Spanned<String>>,
    on_expiry: Option<RawExpiry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpiry {
    fire: Vec<Spanned<String>>,
    #[serde(default)]
    args: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    command: Spanned<String>,
    required_volunteers: Spanned<i64>,
    #[serde(default)]
    eligibility: Vec<Spanned<String>>,
}

/// The yellow light's default: 80% of the limit used.
const DEFAULT_WARN_AT: f64 = 0.8;

/// Turns the raw form into a [`Definition`], collecting every problem on the way.
struct Check<'a> {
    lines: &'a LineIndex,
    problems: Vec<Problem>,
    /// False when the workflow has no table: its rows are not checked against another's.
    table_known: bool,
}

impl Check<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, kind: ProblemKind) {
        self.problems.push(Problem {
            line: self.lines.of(at),
            kind,
        });
    }

    fn snake_case(&mut self, what: &'static str, name: &Spanned<String>) {
        if !is_snake_case(name.get_ref()) {
            self.problem(
                name,
                ProblemKind::InvalidName {
                    what,
                    name: name.get_ref().clone(),
                },
            );
        }
    }

    fn definition(&mut self, raw: RawDefinition, file: &str) -> Definition {
        let name = raw.name.get_ref().clone();
        let kebab = name.replace('-', "_");
        if !is_snake_case(&kebab) || name.starts_with('-') || name.ends_with('-') {
            self.problem(
                &raw.name,
                ProblemKind::InvalidName {
                    what: "workflow",
                    name: name.clone(),
                },
            );
        }
        let version = match u32::try_from(*raw.version.get_ref()) {
            Ok(v) if v >= 1 => v,
            _ => {
                self.problem(
                    &raw.version,
                    ProblemKind::InvalidVersion(*raw.version.get_ref()),
                );
                0
            }
        };

        let table = match crate::engine::table(&name) {
            Some(table) => table,
            None => {
                let known: Vec<String> = crate::engine::tables()
                    .iter()
                    .map(|t| format!("\"{}\"", t.workflow))
                    .collect();
                self.problem(
                    &raw.name,
                    ProblemKind::UnknownWorkflow(name.clone(), known.join(" or ")),
                );
                self.table_known = false;
                &crate::dispatched::TABLE
            }
        };
        let states = self.states(table, &raw.states);
        let is_final = |name: &str| states.get(name).map(|&(_, is_final)| is_final);

        let initial = raw.initial.get_ref().clone();
        match is_final(&initial) {
            None => self.problem(
                &raw.initial,
                ProblemKind::UnknownInitialState(initial.clone()),
            ),
            Some(true) => self.problem(
                &raw.initial,
                ProblemKind::FinalInitialState(initial.clone()),
            ),
            Some(false) => {}
        }

        let transitions = self.transitions(table, &raw.transitions, &is_final);
        self.reachability(&raw, &transitions, &initial);
        let deadlines = self.deadlines(&raw.deadlines, &transitions, &is_final);
        for state in &raw.states {
            let state_name = state.name.get_ref();
            let uncovered = !state.is_final
                && *state_name != initial
                && !deadlines.iter().any(|d| d.covers(state_name));
            if uncovered {
                self.problem(
                    &state.name,
                    ProblemKind::MissingDeadline(state_name.clone()),
                );
            }
        }
        let claim = raw
            .claim
            .as_ref()
            .map(|claim| self.claim(claim, &transitions));

        Definition {
            id: DefinitionId { name, version },
            table,
            title: raw.title,
            file: file.to_owned(),
            version_line: self.lines.of(&raw.version),
            initial,
            calendar: raw.calendar.into_inner(),
            states: raw
                .states
                .into_iter()
                .map(|s| State {
                    name: s.name.into_inner(),
                    label: s.label,
                    is_final: s.is_final,
                })
                .collect(),
            transitions,
            deadlines,
            claim,
        }
    }

    /// State name → (line, is final), reporting bad and duplicate names and states the
    /// table does not have (or has with another finality).
    fn states(
        &mut self,
        table: &'static Table,
        raw: &[RawState],
    ) -> BTreeMap<String, (usize, bool)> {
        let mut states = BTreeMap::new();
        for state in raw {
            let name = &state.name;
            self.snake_case("state", name);
            let line = self.lines.of(name);
            match Status::parse(name.get_ref()).filter(|s| table.has_state(*s)) {
                _ if !self.table_known => {}
                None => self.problem(
                    name,
                    ProblemKind::StateNotInTable {
                        workflow: table.workflow.to_owned(),
                        state: name.get_ref().clone(),
                    },
                ),
                Some(status) if table.is_final(status) != state.is_final => self.problem(
                    name,
                    ProblemKind::FinalityDiffers {
                        workflow: table.workflow.to_owned(),
                        state: name.get_ref().clone(),
                        is_final: table.is_final(status),
                    },
                ),
                Some(_) => {}
            }
            match states.get(name.get_ref()) {
                Some(&(first_line, _)) => self.problem(
                    name,
                    ProblemKind::DuplicateState {
                        state: name.get_ref().clone(),
                        first_line,
                    },
                ),
                None => {
                    states.insert(name.get_ref().clone(), (line, state.is_final));
                }
            }
        }
        states
    }

    /// The file's transitions, one per from-state, each checked against the table's row.
    fn transitions(
        &mut self,
        table: &'static Table,
        raw: &[RawTransition],
        is_final: &dyn Fn(&str) -> Option<bool>,
    ) -> Vec<Transition> {
        // (from, command, outcome) → line of its first definition.
        let mut seen: BTreeMap<(String, String, Option<String>), usize> = BTreeMap::new();
        let mut transitions = Vec::new();
        for t in raw {
            let command = t.command.get_ref().clone();
            self.snake_case("command", &t.command);
            if let Some(outcome) = &t.outcome {
                self.snake_case("outcome", outcome);
            }
            let outcome = t.outcome.as_ref().map(|o| o.get_ref().clone());
            if t.from.is_empty() {
                self.problem(
                    &t.command,
                    ProblemKind::NoFromState {
                        command: command.clone(),
                    },
                );
            }
            if t.roles.is_empty() {
                self.problem(
                    &t.command,
                    ProblemKind::NoRoles {
                        command: command.clone(),
                    },
                );
            }
            let mut roles = Vec::new();
            for role in &t.roles {
                match Role::parse(role.get_ref()) {
                    Some(r) if !roles.contains(&r) => roles.push(r),
                    Some(_) => {}
                    None => self.problem(role, ProblemKind::UnknownRole(role.get_ref().clone())),
                }
            }
            if let Some(to) = &t.to {
                if is_final(to.get_ref()).is_none() {
                    self.problem(
                        to,
                        ProblemKind::TransitionToUnknownState {
                            command: command.clone(),
                            state: to.get_ref().clone(),
                        },
                    );
                }
            }
            for from in &t.from {
                match is_final(from.get_ref()) {
                    None => self.problem(
                        from,
                        ProblemKind::TransitionFromUnknownState {
                            command: command.clone(),
                            state: from.get_ref().clone(),
                        },
                    ),
                    Some(true) => self.problem(
                        from,
                        ProblemKind::FinalStateHasTransition {
                            state: from.get_ref().clone(),
                            command: command.clone(),
                        },
                    ),
                    Some(false) => {}
                }
                let key = (from.get_ref().clone(), command.clone(), outcome.clone());
                match seen.get(&key) {
                    Some(&first_line) => self.problem(
                        from,
                        ProblemKind::DuplicateTransition {
                            command: command.clone(),
                            outcome: outcome.clone(),
                            state: from.get_ref().clone(),
                            first_line,
                        },
                    ),
                    None => {
                        seen.insert(key, self.lines.of(&t.command));
                    }
                }
                let to =
                    t.to.as_ref()
                        .map_or(from.get_ref(), |to| to.get_ref())
                        .clone();
                // The table decides what exists; the file may only open what is there.
                let row = Status::parse(from.get_ref()).and_then(|status| {
                    table
                        .row(status, &command, outcome.as_deref())
                        .map(|r| (status, r))
                });
                match row {
                    _ if !self.table_known => {}
                    None => self.problem(
                        from,
                        ProblemKind::TransitionNotInTable {
                            workflow: table.workflow.to_owned(),
                            command: command.clone(),
                            outcome: outcome.clone(),
                            state: from.get_ref().clone(),
                        },
                    ),
                    Some((status, row)) => {
                        let table_to = row.target(status).as_str();
                        if to != table_to {
                            let at = t.to.as_ref().unwrap_or(from);
                            self.problem(
                                at,
                                ProblemKind::TargetDiffers {
                                    command: command.clone(),
                                    from: from.get_ref().clone(),
                                    to: to.clone(),
                                    table_to: table_to.to_owned(),
                                },
                            );
                        }
                        for role in &t.roles {
                            let known = Role::parse(role.get_ref());
                            if known.is_some_and(|r| !row.roles.contains(&r)) {
                                self.problem(
                                    role,
                                    ProblemKind::RoleNotInTable {
                                        command: command.clone(),
                                        role: role.get_ref().clone(),
                                    },
                                );
                            }
                        }
                    }
                }
                transitions.push(Transition {
                    command: command.clone(),
                    label: t.label.clone(),
                    outcome: outcome.clone(),
                    from: vec![from.get_ref().clone()],
                    to,
                    roles: roles.clone(),
                });
            }
        }
        transitions
    }

    /// Every state must be reachable from the initial one; every non-final one must be left.
    fn reachability(&mut self, raw: &RawDefinition, transitions: &[Transition], initial: &str) {
        let mut reached = BTreeSet::from([initial.to_owned()]);
        let mut queue = VecDeque::from([initial.to_owned()]);
        while let Some(state) = queue.pop_front() {
            for t in transitions.iter().filter(|t| t.from.contains(&state)) {
                if reached.insert(t.to.clone()) {
                    queue.push_back(t.to.clone());
                }
            }
        }
        for state in &raw.states {
            let name = state.name.get_ref();
            if !reached.contains(name) {
                self.problem(
                    &state.name,
                    ProblemKind::UnreachableState {
                        state: name.clone(),
                        initial: initial.to_owned(),
                    },
                );
            } else if !state.is_final && !transitions.iter().any(|t| t.from.contains(name)) {
                self.problem(&state.name, ProblemKind::DeadEnd(name.clone()));
            }
        }
    }

    fn deadlines(
        &mut self,
        raw: &[RawDeadline],
        transitions: &[Transition],
        is_final: &dyn Fn(&str) -> Option<bool>,
    ) -> Vec<Deadline> {
        let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
        let mut deadlines = Vec::new();
        for d in raw {
            let name = d.name.get_ref().clone();
            self.snake_case("deadline", &d.name);
            if let Some(&first) = first_lines.get(&name) {
                self.problem(&d.name, ProblemKind::DuplicateDeadline(name.clone(), first));
            } else {
                first_lines.insert(name.clone(), self.lines.of(&d.name));
            }
            if d.covers.is_empty() {
                self.problem(&d.name, ProblemKind::DeadlineCoversNothing(name.clone()));
            }
            for state in &d.covers {
                match is_final(state.get_ref()) {
                    None => self.problem(
                        state,
                        ProblemKind::DeadlineOnUnknownState {
                            deadline: name.clone(),
                            state: state.get_ref().clone(),
                        },
                    ),
                    Some(true) => self.problem(
                        state,
                        ProblemKind::DeadlineOnFinalState {
                            deadline: name.clone(),
                            state: state.get_ref().clone(),
                        },
                    ),
                    Some(false) => {}
                }
            }
            let within = self
                .time_limit(&d.within)
                .unwrap_or(TimeLimit::WorkingDays(1));
            let urgent_within = d.urgent_within.as_ref().and_then(|u| self.time_limit(u));
            let warn_at = match &d.warn_at {
                None => DEFAULT_WARN_AT,
                Some(w) if *w.get_ref() > 0.0 && *w.get_ref() < 1.0 => *w.get_ref(),
                Some(w) => {
                    self.problem(
                        w,
                        ProblemKind::InvalidWarnAt {
                            deadline: name.clone(),
                            value: *w.get_ref(),
                        },
                    );
                    DEFAULT_WARN_AT
                }
            };
            for command in &d.restart_on {
                if !transitions.iter().any(|t| t.command == *command.get_ref()) {
                    self.problem(
                        command,
                        ProblemKind::UnknownRestartCommand {
                            deadline: name.clone(),
                            command: command.get_ref().clone(),
                        },
                    );
                }
            }
            let covers: Vec<String> = d.covers.iter().map(|s| s.get_ref().clone()).collect();
            let on_expiry = match &d.on_expiry {
                None => OnExpiry::Supervise,
                Some(expiry) => {
                    self.expiry_chain(&name, &covers, &expiry.fire, transitions);
                    OnExpiry::Fire {
                        commands: expiry.fire.iter().map(|c| c.get_ref().clone()).collect(),
                        args: expiry.args.clone(),
                    }
                }
            };
            deadlines.push(Deadline {
                name,
                label: d.label.clone(),
                covers,
                within,
                urgent_within,
                warn_at,
                restart_on: d.restart_on.iter().map(|c| c.get_ref().clone()).collect(),
                on_expiry,
            });
        }
        deadlines
    }

    fn time_limit(&mut self, text: &Spanned<String>) -> Option<TimeLimit> {
        let limit = TimeLimit::parse(text.get_ref());
        if limit.is_none() {
            self.problem(text, ProblemKind::InvalidTimeLimit(text.get_ref().clone()));
        }
        limit
    }

    /// From every state the clock can run out in, the system must be allowed to fire the
    /// expiry commands one after another.
    fn expiry_chain(
        &mut self,
        deadline: &str,
        covers: &[String],
        fire: &[Spanned<String>],
        transitions: &[Transition],
    ) {
        for start in covers {
            let mut state = start.clone();
            for command in fire {
                let next = transitions.iter().find(|t| {
                    t.command == *command.get_ref()
                        && t.outcome.is_none()
                        && t.from.contains(&state)
                        && t.roles.contains(&Role::System)
                });
                match next {
                    Some(t) => state = t.to.clone(),
                    None => {
                        self.problem(
                            command,
                            ProblemKind::ExpiryCommandNotAllowed {
                                deadline: deadline.to_owned(),
                                command: command.get_ref().clone(),
                                state,
                            },
                        );
                        return;
                    }
                }
            }
        }
    }

    fn claim(&mut self, c: &RawClaim, transitions: &[Transition]) -> ClaimPolicy {
        let command = c.command.get_ref().clone();
        let rows: Vec<&Transition> = transitions
            .iter()
            .filter(|t| t.command == command && t.from.iter().any(|f| *f != t.to))
            .collect();
        if rows.is_empty() {
            self.problem(
                &c.command,
                ProblemKind::UnknownClaimCommand(command.clone()),
            );
        } else if !rows.iter().all(|t| t.roles.contains(&Role::Volunteer)) {
            self.problem(
                &c.command,
                ProblemKind::ClaimNotForVolunteers(command.clone()),
            );
        }
        let required = *c.required_volunteers.get_ref();
        let required_volunteers = match u32::try_from(required) {
            Ok(n) if n >= 1 => n,
            _ => {
                self.problem(
                    &c.required_volunteers,
                    ProblemKind::InvalidRequiredVolunteers(required),
                );
                1
            }
        };
        let mut eligibility = Vec::new();
        for rule in &c.eligibility {
            match rule.get_ref().as_str() {
                "category_skill" => eligibility.push(Eligibility::CategorySkill),
                "station_lineage" => eligibility.push(Eligibility::StationLineage),
                other => self.problem(rule, ProblemKind::UnknownEligibility(other.to_owned())),
            }
        }
        ClaimPolicy {
            command,
            required_volunteers,
            eligibility,
        }
    }
}

#[cfg(test)]
mod tests;
