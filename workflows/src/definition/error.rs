//! What can be wrong with a definition or calendar file, said as `file:line: problem`.
//!
//! A definition's checks collect all its problems instead of stopping at the first, so an author
//! fixes a file in one pass (a calendar, built rule by rule, stops at its first). Byte spans
//! from [`toml::Spanned`] become line numbers through [`LineIndex`].

use std::fmt;

/// A definition or calendar file that cannot be used, with every problem found in it.
///
/// Displays one problem per line, `dispatched-order.v1.toml:42: transition "accept" goes to
/// unknown state "acepted"`. Fix the file and load it again; nothing was registered.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionError {
    /// The file name as given to `parse` or `load`.
    pub file: String,
    /// At least one problem, in the order of the file.
    pub problems: Vec<Problem>,
}

impl DefinitionError {
    pub(crate) fn new(file: &str, mut problems: Vec<Problem>) -> DefinitionError {
        problems.sort_by_key(|p| p.line);
        DefinitionError {
            file: file.to_owned(),
            problems,
        }
    }

    pub(crate) fn single(file: &str, line: usize, kind: ProblemKind) -> DefinitionError {
        DefinitionError::new(file, vec![Problem { line, kind }])
    }

    /// The first problem's kind: what most callers (and tests) look at.
    pub fn kind(&self) -> &ProblemKind {
        &self.problems[0].kind
    }

    /// The first problem's line (1-based; 0 when it concerns the whole file).
    pub fn line(&self) -> usize {
        self.problems[0].line
    }
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if problem.line == 0 {
                write!(f, "{}: {}", self.file, problem.kind)?;
            } else {
                write!(f, "{}:{}: {}", self.file, problem.line, problem.kind)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for DefinitionError {}

/// One thing wrong, and the line it is on (1-based; 0 for the whole file).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub kind: ProblemKind,
}

/// What is wrong. Messages are for the author of the file, so they are in English and quote
/// the names exactly as written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file could not be read at all.
    #[error("cannot read: {0}")]
    Unreadable(String),
    /// Not TOML, a missing or unknown key, or a value of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A name that is not a snake_case identifier (`[a-z][a-z0-9_]*`, at most 64 characters).
    #[error("{what} \"{name}\" must be snake_case: lowercase letters, digits and _")]
    InvalidName { what: &'static str, name: String },
    /// Versions start at 1.
    #[error("version must be a whole number of at least 1, got {0}")]
    InvalidVersion(i64),
    #[error("state \"{state}\" is defined twice (first on line {first_line})")]
    DuplicateState { state: String, first_line: usize },
    #[error("initial state \"{0}\" is not defined")]
    UnknownInitialState(String),
    #[error("initial state \"{0}\" cannot be final")]
    FinalInitialState(String),
    #[error("state \"{state}\" is unreachable from the initial state \"{initial}\"")]
    UnreachableState { state: String, initial: String },
    /// A non-final state nothing leaves: an instance would be stuck there for ever.
    #[error("state \"{0}\" is not final but no transition leaves it")]
    DeadEnd(String),
    /// "A transition to nowhere".
    #[error("transition \"{command}\" goes to unknown state \"{state}\"")]
    TransitionToUnknownState { command: String, state: String },
    #[error("transition \"{command}\" starts from unknown state \"{state}\"")]
    TransitionFromUnknownState { command: String, state: String },
    #[error("transition \"{command}\" starts from no state")]
    NoFromState { command: String },
    #[error("final state \"{state}\" has an outgoing transition \"{command}\"")]
    FinalStateHasTransition { state: String, command: String },
    #[error(
        "transition \"{command}\"{} from \"{state}\" is defined twice (first on line {first_line})",
        outcome.as_deref().map(|o| format!(" (outcome \"{o}\")")).unwrap_or_default()
    )]
    DuplicateTransition {
        command: String,
        outcome: Option<String>,
        state: String,
        first_line: usize,
    },
    #[error("unknown role \"{0}\": expected resident, volunteer, station_head, auditor or system")]
    UnknownRole(String),
    #[error("transition \"{command}\" names no role that may fire it")]
    NoRoles { command: String },
    #[error("state \"{0}\" is not final but no deadline covers it")]
    MissingDeadline(String),
    #[error("deadline \"{deadline}\" covers unknown state \"{state}\"")]
    DeadlineOnUnknownState { deadline: String, state: String },
    #[error("deadline \"{deadline}\" covers final state \"{state}\": nothing is waited for there")]
    DeadlineOnFinalState { deadline: String, state: String },
    #[error("deadline \"{0}\" is defined twice (first on line {1})")]
    DuplicateDeadline(String, usize),
    #[error("deadline \"{0}\" covers no state")]
    DeadlineCoversNothing(String),
    #[error("invalid time limit \"{0}\": expected e.g. \"1 working day\", \"4 working hours\", \"30 working minutes\", \"7 calendar days\" or \"24 hours\"")]
    InvalidTimeLimit(String),
    #[error("deadline \"{deadline}\": warn_at must be between 0 and 1 (exclusive), got {value}")]
    InvalidWarnAt { deadline: String, value: f64 },
    #[error("deadline \"{deadline}\" restarts on unknown command \"{command}\"")]
    UnknownRestartCommand { deadline: String, command: String },
    /// An automatic command at expiry must be one the system may fire where the clock ran out.
    #[error("deadline \"{deadline}\" fires \"{command}\" on expiry, which the system may not do in state \"{state}\"")]
    ExpiryCommandNotAllowed {
        deadline: String,
        command: String,
        state: String,
    },
    #[error("claim command \"{0}\" has no transition to another state")]
    UnknownClaimCommand(String),
    #[error("claim command \"{0}\" may not be fired by volunteers")]
    ClaimNotForVolunteers(String),
    #[error("required_volunteers must be at least 1, got {0}")]
    InvalidRequiredVolunteers(i64),
    #[error("unknown eligibility rule \"{0}\": expected category_skill or station_lineage")]
    UnknownEligibility(String),
    /// The engine runs only the workflows it has a table for.
    #[error("workflow \"{0}\" has no transition table in the engine: expected {1}")]
    UnknownWorkflow(String, String),
    #[error("state \"{state}\" is not a state of workflow \"{workflow}\"")]
    StateNotInTable { workflow: String, state: String },
    #[error("state \"{state}\" is {} in workflow \"{workflow}\"'s table", if *is_final { "final" } else { "not final" })]
    FinalityDiffers {
        workflow: String,
        state: String,
        is_final: bool,
    },
    /// A transition the table lacks: the engine could not run it.
    #[error(
        "transition \"{command}\"{} from \"{state}\" is not in workflow \"{workflow}\"'s table",
        outcome.as_deref().map(|o| format!(" (outcome \"{o}\")")).unwrap_or_default()
    )]
    TransitionNotInTable {
        workflow: String,
        command: String,
        outcome: Option<String>,
        state: String,
    },
    #[error("transition \"{command}\" from \"{from}\" goes to \"{to}\" in this file but to \"{table_to}\" in the table")]
    TargetDiffers {
        command: String,
        from: String,
        to: String,
        table_to: String,
    },
    #[error("role \"{role}\" may not fire \"{command}\" in the table")]
    RoleNotInTable { command: String, role: String },
    /// Two files register the same workflow version.
    #[error("workflow \"{name}\" version {version} is already registered (from {first_file})")]
    DuplicateVersion {
        name: String,
        version: u32,
        first_file: String,
    },
    #[error("workflow \"{workflow}\" uses calendar \"{calendar}\", which is not registered")]
    UnknownCalendar { workflow: String, calendar: String },
    /// A calendar rule broken (see [`CalendarError`](crate::calendar::CalendarError)).
    #[error("{0}")]
    Calendar(#[from] crate::calendar::CalendarError),
}

/// Byte offset → 1-based line number, by binary search over the newline offsets.
pub(crate) struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(source: &str) -> LineIndex {
        LineIndex {
            newlines: source
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }

    /// The line of a value read with [`toml::Spanned`].
    pub(crate) fn of<T>(&self, spanned: &toml::Spanned<T>) -> usize {
        self.line(spanned.span().start)
    }

    /// A TOML parse or type error, placed on the line the parser points at.
    pub(crate) fn syntax(&self, file: &str, error: &toml::de::Error) -> DefinitionError {
        let line = error.span().map_or(0, |span| self.line(span.start));
        DefinitionError::single(
            file,
            line,
            ProblemKind::Syntax(error.message().trim().to_owned()),
        )
    }
}

/// Reads a definition or calendar file. The only disk access in this crate, and only of a path
/// the caller names.
pub(crate) fn read_file(path: &std::path::Path) -> Result<(String, String), DefinitionError> {
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match std::fs::read_to_string(path) {
        Ok(source) => Ok((source, file)),
        Err(error) => Err(DefinitionError::single(
            &path.display().to_string(),
            0,
            ProblemKind::Unreadable(error.to_string()),
        )),
    }
}

/// Whether `name` is a snake_case identifier.
pub(crate) fn is_snake_case(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines() {
        let index = LineIndex::new("a\nbc\n\nd");
        assert_eq!(index.line(0), 1);
        assert_eq!(index.line(1), 1, "the newline belongs to its line");
        assert_eq!(index.line(2), 2);
        assert_eq!(index.line(5), 3);
        assert_eq!(index.line(6), 4);
    }

    #[test]
    fn an_error_displays_file_and_line_per_problem() {
        let error = DefinitionError::new(
            "dispatched-order.v1.toml",
            vec![
                Problem {
                    line: 50,
                    kind: ProblemKind::MissingDeadline("served".into()),
                },
                Problem {
                    line: 42,
                    kind: ProblemKind::TransitionToUnknownState {
                        command: "accept".into(),
                        state: "acepted".into(),
                    },
                },
            ],
        );
        assert_eq!(
            error.to_string(),
            "dispatched-order.v1.toml:42: transition \"accept\" goes to unknown state \"acepted\"\n\
             dispatched-order.v1.toml:50: state \"served\" is not final but no deadline covers it"
        );
        assert_eq!(error.line(), 42);
    }

    #[test]
    fn snake_case_names() {
        assert!(is_snake_case("in_service"));
        assert!(is_snake_case("v2_claim"));
        assert!(!is_snake_case("InService"));
        assert!(!is_snake_case("2fast"));
        assert!(!is_snake_case(""));
        assert!(!is_snake_case("check-in"));
    }
}
