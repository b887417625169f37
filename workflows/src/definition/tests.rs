//! Specifications of definition files: what a valid file means, and how each mistake is
//! reported (file, line, problem).
//!
//! Each spec starts from [`TINY`], a four-state workflow, changes one thing and reads the
//! answer: *given* this file, *when* it is parsed, *then* it means this / is refused with this.

use time::macros::datetime;

use super::*;

/// A complete small workflow. Line numbers matter: the error specs name them.
const TINY: &str = r#"name = "tiny"
version = 1
initial = "new"
calendar = "cn-mainland"

[[states]]
name = "new"

[[states]]
name = "open"

[[states]]
name = "done"
final = true

[[states]]
name = "dropped"
final = true

[[transitions]]
command = "open"
from = ["new"]
to = "open"
roles = ["resident"]

[[transitions]]
command = "finish"
from = ["open"]
to = "done"
roles = ["volunteer", "system"]

[[transitions]]
command = "finish"
outcome = "drop"
from = ["open"]
to = "dropped"
roles = ["station_head"]

[[deadlines]]
name = "finish"
covers = ["open"]
within = "2 working days"
"#;

/// The file after replacing `from` (which must occur) with `to`.
fn given_tiny_with(from: &str, to: &str) -> String {
    assert!(TINY.contains(from), "TINY has no {from:?}");
    TINY.replacen(from, to, 1)
}

#[track_caller]
fn then_refused(source: &str, expected: &str) {
    match Definition::parse(source, "tiny.v1.toml") {
        Ok(_) => panic!("parsed; expected {expected}"),
        Err(error) => assert_eq!(error.to_string(), expected),
    }
}

#[test]
fn a_valid_file_is_the_table_it_reads_as() {
    let tiny = Definition::parse(TINY, "tiny.v1.toml").unwrap();
    assert_eq!(tiny.id().to_string(), "tiny@1");
    assert_eq!(tiny.initial(), "new");
    assert_eq!(tiny.calendar(), "cn-mainland");
    assert!(tiny.is_final("done") && !tiny.is_final("open"));
    assert_eq!(tiny.target("new", "open"), Some("open"));
    assert_eq!(tiny.target("open", "finish"), Some("done"));
    assert_eq!(
        tiny.target_of("open", "finish", Some("drop")),
        Some("dropped")
    );
    assert_eq!(
        tiny.target("done", "finish"),
        None,
        "nothing leaves a final state"
    );
    assert_eq!(tiny.target("open", "open"), None);
    assert!(tiny.allows("open", "finish", Role::Volunteer));
    assert!(
        tiny.allows("open", "finish", Role::StationHead),
        "via the drop outcome"
    );
    assert!(!tiny.allows("open", "finish", Role::Resident));
    assert!(!tiny.allows("nowhere", "finish", Role::Volunteer));
    let buttons: Vec<_> = tiny
        .available("open", Role::StationHead)
        .map(|t| (t.command.as_str(), t.outcome.as_deref()))
        .collect();
    assert_eq!(buttons, [("finish", Some("drop"))]);
    let deadline = tiny.deadline("finish").unwrap();
    assert_eq!(deadline.within, TimeLimit::WorkingDays(2));
    assert_eq!(deadline.warn_at, 0.8, "yellow at 80% unless said otherwise");
    assert_eq!(deadline.on_expiry, OnExpiry::Supervise);
}

#[test]
fn a_transition_to_nowhere_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with("to = \"done\"", "to = \"dnoe\""),
        "tiny.v1.toml:13: state \"done\" is unreachable from the initial state \"new\"\n\
         tiny.v1.toml:29: transition \"finish\" goes to unknown state \"dnoe\"",
    );
}

#[test]
fn a_transition_from_an_unknown_state_is_refused() {
    then_refused(
        &given_tiny_with("from = [\"new\"]", "from = [\"nwe\"]"),
        "tiny.v1.toml:7: state \"new\" is not final but no transition leaves it\n\
         tiny.v1.toml:10: state \"open\" is unreachable from the initial state \"new\"\n\
         tiny.v1.toml:13: state \"done\" is unreachable from the initial state \"new\"\n\
         tiny.v1.toml:17: state \"dropped\" is unreachable from the initial state \"new\"\n\
         tiny.v1.toml:22: transition \"open\" starts from unknown state \"nwe\"",
    );
}

#[test]
fn an_unreachable_state_is_refused_at_its_line() {
    let source = given_tiny_with(
        "[[states]]\nname = \"open\"\n",
        "[[states]]\nname = \"open\"\n\n[[states]]\nname = \"limbo\"\nfinal = true\n",
    );
    then_refused(
        &source,
        "tiny.v1.toml:13: state \"limbo\" is unreachable from the initial state \"new\"",
    );
}

#[test]
fn a_non_final_stage_without_a_deadline_is_refused() {
    then_refused(
        &given_tiny_with("covers = [\"open\"]", "covers = []"),
        "tiny.v1.toml:10: state \"open\" is not final but no deadline covers it\n\
         tiny.v1.toml:40: deadline \"finish\" covers no state",
    );
}

#[test]
fn an_unknown_role_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with("roles = [\"volunteer\", \"system\"]", "roles = [\"volunteer\", \"admin\"]"),
        "tiny.v1.toml:30: unknown role \"admin\": expected resident, volunteer, station_head, auditor or system",
    );
}

#[test]
fn a_duplicate_state_is_refused_naming_the_first() {
    then_refused(
        &given_tiny_with("name = \"dropped\"", "name = \"done\""),
        "tiny.v1.toml:17: state \"done\" is defined twice (first on line 13)\n\
         tiny.v1.toml:36: transition \"finish\" goes to unknown state \"dropped\"",
    );
}

#[test]
fn a_final_state_with_an_outgoing_transition_is_refused() {
    then_refused(
        &given_tiny_with(
            "from = [\"open\"]\nto = \"done\"",
            "from = [\"open\", \"dropped\"]\nto = \"done\"",
        ),
        "tiny.v1.toml:28: final state \"dropped\" has an outgoing transition \"finish\"",
    );
}

#[test]
fn the_same_command_twice_from_one_state_is_refused() {
    then_refused(
        &given_tiny_with("outcome = \"drop\"\n", ""),
        "tiny.v1.toml:34: transition \"finish\" from \"open\" is defined twice (first on line 27)",
    );
}

#[test]
fn a_misspelt_time_limit_is_refused() {
    then_refused(
        &given_tiny_with("within = \"2 working days\"", "within = \"2 workdays\""),
        "tiny.v1.toml:42: invalid time limit \"2 workdays\": expected e.g. \"1 working day\", \"4 working hours\", \"30 working minutes\", \"7 calendar days\" or \"24 hours\"",
    );
}

#[test]
fn an_unknown_key_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with("final = true", "fianl = true"),
        "tiny.v1.toml:14: unknown field `fianl`, expected one of `name`, `label`, `final`",
    );
}

#[test]
fn not_toml_is_refused_at_its_line() {
    let error = Definition::parse(
        &given_tiny_with("version = 1", "version = "),
        "tiny.v1.toml",
    )
    .unwrap_err();
    assert_eq!(error.line(), 2);
    assert!(matches!(error.kind(), ProblemKind::Syntax(_)), "{error}");
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let source =
        given_tiny_with("to = \"done\"", "to = \"dnoe\"").replace("\"resident\"", "\"citizen\"");
    let error = Definition::parse(&source, "tiny.v1.toml").unwrap_err();
    let lines: Vec<usize> = error.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [13, 24, 29], "{error}");
}

#[test]
fn expiry_commands_must_be_fireable_by_the_system() {
    let source = given_tiny_with(
        "within = \"2 working days\"",
        "within = \"2 working days\"\non_expiry = { fire = [\"finish\", \"finish\"] }",
    );
    then_refused(
        &source,
        "tiny.v1.toml:43: deadline \"finish\" fires \"finish\" on expiry, which the system may not do in state \"done\"",
    );
    let fine = given_tiny_with(
        "within = \"2 working days\"",
        "within = \"2 working days\"\non_expiry = { fire = [\"finish\"], args = { note = \"超时\" } }",
    );
    let tiny = Definition::parse(&fine, "tiny.v1.toml").unwrap();
    match &tiny.deadline("finish").unwrap().on_expiry {
        OnExpiry::Fire { commands, args } => {
            assert_eq!(commands, &["finish"]);
            assert_eq!(args["note"], "超时");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn warn_at_must_be_a_fraction() {
    then_refused(
        &given_tiny_with(
            "within = \"2 working days\"",
            "within = \"2 working days\"\nwarn_at = 80",
        ),
        "tiny.v1.toml:43: deadline \"finish\": warn_at must be between 0 and 1 (exclusive), got 80",
    );
    then_refused(
        &given_tiny_with("within = \"2 working days\"", "within = \"2 working days\"\nwarn_at = 1.5"),
        "tiny.v1.toml:43: deadline \"finish\": warn_at must be between 0 and 1 (exclusive), got 1.5",
    );
}

#[test]
fn clocks_start_on_entering_and_stop_on_leaving_their_states() {
    let tiny = Definition::parse(TINY, "tiny.v1.toml").unwrap();
    let names =
        |deadlines: &[&Deadline]| deadlines.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    let opened = tiny.clock_changes("new", "open", "open");
    assert_eq!(names(&opened.started), ["finish"]);
    assert!(opened.stopped.is_empty());
    let finished = tiny.clock_changes("open", "finish", "done");
    assert!(finished.started.is_empty());
    assert_eq!(names(&finished.stopped), ["finish"]);
}

#[test]
fn a_deadline_schedules_yellow_and_red_in_working_time() {
    let tiny = Definition::parse(
        &given_tiny_with(
            "within = \"2 working days\"",
            "within = \"2 working days\"\nurgent_within = \"4 working hours\"",
        ),
        "tiny.v1.toml",
    )
    .unwrap();
    let deadline = tiny.deadline("finish").unwrap();
    let calendar = Calendar::china_office_hours();
    // Given the clock starts on Friday at 16:00, then its 14 working hours (1.5 on Friday, 7 on
    // Monday, 5.5 on Tuesday) run out on Tuesday at 16:00, and 80% of them (11.2 h) on Tuesday
    // at 08:30 + 2.7 h = 11:12. The urgent 4 hours run out on Monday at 11:00.
    let normal = deadline.schedule(datetime!(2026-11-06 16:00 +8), false, &calendar);
    assert_eq!(normal.due_at, datetime!(2026-11-10 16:00 +8));
    assert_eq!(normal.warn_at, datetime!(2026-11-10 11:12 +8));
    assert_eq!(normal.limit, "2 working days");
    let urgent = deadline.schedule(datetime!(2026-11-06 16:00 +8), true, &calendar);
    assert_eq!(urgent.due_at, datetime!(2026-11-09 11:00 +8));
}
