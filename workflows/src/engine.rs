//! The engine's transition tables: each workflow's table written once, as data.
//!
//! A [`Table`] lists a workflow's states and its rows (from-states, command, outcome →
//! target, the roles that may fire it). Everything else reads it:
//!
//! - [`order::decide`](crate::order::decide) finds the row for the order's status, the
//!   command and its outcome (through the order's [`Definition`](crate::Definition), which may
//!   only narrow the table: drop rows, relabel, remove roles);
//! - [`order::evolve`](crate::order::evolve) moves the status to the row's target — no event
//!   names its target state anywhere else;
//! - [`Definition::parse`](crate::Definition::parse) refuses, with file:line, a file naming a
//!   state, transition or role its workflow's table does not have;
//! - [`Table::markdown`] renders the table the README shows (a test holds them equal);
//! - the given/when/then tests are generated from the rows, and so are the illegal pairs.
//!
//! The workflows themselves live in [`dispatched`](crate::dispatched) and
//! [`claim`](crate::claim), one module each.

use std::fmt::Write as _;

use crate::order::{Action, Command, OrderChange, OrderState, Status};
use crate::{DomainError, Role};

/// Where a row leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// To this state.
    To(Status),
    /// The state does not change (a claimant checking in while the wish stays open).
    Stay,
}

/// One row of a transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// snake_case, e.g. `check_in`; what [`Action::command`] returns.
    pub command: &'static str,
    /// A command with several results has one row per result; the default has none.
    pub outcome: Option<&'static str>,
    pub from: &'static [Status],
    pub to: Target,
    /// Who may fire it (the workflow roles: resident, volunteer, station_head, system).
    pub roles: &'static [Role],
    /// What staff read, e.g. 签到.
    pub label: &'static str,
}

/// A row, as the tables write it.
pub const fn row(
    command: &'static str,
    outcome: Option<&'static str>,
    from: &'static [Status],
    to: Target,
    roles: &'static [Role],
    label: &'static str,
) -> Row {
    Row {
        command,
        outcome,
        from,
        to,
        roles,
        label,
    }
}

impl Row {
    /// The state the row leads to from `from`.
    pub fn target(&self, from: Status) -> Status {
        match self.to {
            Target::To(status) => status,
            Target::Stay => from,
        }
    }
}

/// The part of `decide` that differs between workflows: given the row that applies and the
/// actor's workflow role, check the actor and the fields and say what happened.
pub type DecideFn = fn(&Decision<'_>) -> Result<OrderChange, DomainError>;

/// Which row of a command applies in a state (e.g. the claim that fills a wish).
pub type OutcomeFn = fn(&Action, &OrderState) -> Option<&'static str>;

/// What a workflow's `decide` is given.
#[derive(Debug)]
pub struct Decision<'a> {
    pub definition: &'a crate::Definition,
    pub state: &'a OrderState,
    pub command: &'a Command,
    /// The actor's role as the table names it (an admin acts as a station head).
    pub acting_as: Role,
}

/// A workflow as the engine runs it.
pub struct Table {
    /// The workflow's name in definitions, e.g. `dispatched-order`.
    pub workflow: &'static str,
    pub title: &'static str,
    /// Every state, the initial one (`new`) first.
    pub states: &'static [Status],
    pub rows: &'static [Row],
    pub outcome: OutcomeFn,
    pub decide: DecideFn,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("workflow", &self.workflow)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Table {
    /// One table per workflow.
    fn eq(&self, other: &Table) -> bool {
        self.workflow == other.workflow
    }
}

/// Every workflow the engine runs.
pub fn tables() -> [&'static Table; 2] {
    [&crate::dispatched::TABLE, &crate::claim::TABLE]
}

/// The table of the workflow called `name` in definitions.
pub fn table(name: &str) -> Option<&'static Table> {
    tables().into_iter().find(|t| t.workflow == name)
}

impl Table {
    /// The row `command` with `outcome` takes from `from`.
    pub fn row(&self, from: Status, command: &str, outcome: Option<&str>) -> Option<&'static Row> {
        self.rows
            .iter()
            .find(|r| r.command == command && r.outcome == outcome && r.from.contains(&from))
    }

    pub fn has_state(&self, status: Status) -> bool {
        self.states.contains(&status)
    }

    /// No row leaves it.
    pub fn is_final(&self, status: Status) -> bool {
        !self.rows.iter().any(|r| r.from.contains(&status))
    }

    /// Every command the table knows, in row order, once each.
    pub fn commands(&self) -> Vec<&'static str> {
        let mut commands: Vec<&'static str> = Vec::new();
        for row in self.rows {
            if !commands.contains(&row.command) {
                commands.push(row.command);
            }
        }
        commands
    }

    /// The table as the README shows it.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "`{}` ({}):\n\n| from | command | outcome | to | roles |\n|---|---|---|---|---|\n",
            self.workflow, self.title
        );
        for row in self.rows {
            let from: Vec<&str> = row.from.iter().map(|s| s.as_str()).collect();
            let to = match row.to {
                Target::To(status) => status.as_str(),
                Target::Stay => "(stays)",
            };
            let roles: Vec<&str> = row.roles.iter().map(|r| r.as_str()).collect();
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {} |",
                from.join(", "),
                row.command,
                row.label,
                row.outcome.unwrap_or("—"),
                to,
                roles.join(", ")
            );
        }
        out
    }
}

/// Every workflow's table, as the README shows them.
pub fn markdown() -> String {
    tables()
        .iter()
        .map(|t| t.markdown())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_shows_these_tables() {
        let readme = include_str!("../../README.md");
        let begin = readme
            .find("<!-- transitions:begin")
            .and_then(|i| readme[i..].find('\n').map(|j| i + j + 1))
            .expect("README has the transition tables");
        let end = readme.find("<!-- transitions:end -->").expect("tables end");
        assert_eq!(
            readme[begin..end].trim(),
            markdown().trim(),
            "README.md's transition tables are stale: paste `cargo run -q -- workflows tables`"
        );
    }

    #[test]
    fn every_table_starts_new_and_names_each_state_once() {
        for table in tables() {
            assert_eq!(table.states[0], Status::New, "{}", table.workflow);
            for (i, state) in table.states.iter().enumerate() {
                assert!(!table.states[..i].contains(state), "{state:?} twice");
            }
            for row in table.rows {
                for from in row.from {
                    assert!(table.has_state(*from), "{} from {from:?}", row.command);
                }
                if let Target::To(to) = row.to {
                    assert!(table.has_state(to), "{} to {to:?}", row.command);
                }
            }
        }
    }

    #[test]
    fn no_two_rows_share_a_from_state_command_and_outcome() {
        for table in tables() {
            for (i, a) in table.rows.iter().enumerate() {
                for b in &table.rows[i + 1..] {
                    let overlap = a.from.iter().any(|f| b.from.contains(f));
                    assert!(
                        !(overlap && a.command == b.command && a.outcome == b.outcome),
                        "{} {}",
                        table.workflow,
                        a.command
                    );
                }
            }
        }
    }
}
