//! Specifications of definition files: what a valid file means, and how each mistake is
//! reported (file, line, problem).
//!
//! Each spec starts from [`TINY`], a four-state cut of the open-claim workflow, changes one
//! thing and reads the answer: *given* this file, *when* it is parsed, *then* it means this /
//! is refused with this.

use time::macros::datetime;

use super::*;

/// A complete small definition: the open claim's first rows only. Line numbers matter: the
/// error specs name them.
const TINY: &str = r#"name = "open-claim"
version = 9
initial = "new"
calendar = "cn-mainland"

[[states]]
name = "new"

[[states]]
name = "placed"

[[states]]
name = "cancelled"
final = true

[[states]]
name = "rejected"
final = true

[[transitions]]
command = "place"
from = ["new"]
to = "placed"
roles = ["resident"]

[[transitions]]
command = "cancel"
from = ["placed"]
to = "cancelled"
roles = ["resident", "station_head"]

[[transitions]]
command = "triage"
outcome = "reject"
from = ["placed"]
to = "rejected"
roles = ["station_head"]

[[deadlines]]
name = "triage"
covers = ["placed"]
within = "2 working days"
"#;

/// The file after replacing `from` (which must occur) with `to`.
fn given_tiny_with(from: &str, to: &str) -> String {
    assert!(TINY.contains(from), "TINY has no {from:?}");
    TINY.replacen(from, to, 1)
}

#[track_caller]
fn then_refused(source: &str, expected: &str) {
    match Definition::parse(source, "tiny.v9.toml") {
        Ok(_) => panic!("parsed; expected {expected}"),
        Err(error) => assert_eq!(error.to_string(), expected),
    }
}

#[test]
fn a_valid_file_is_the_open_part_of_its_table() {
    let tiny = Definition::parse(TINY, "tiny.v9.toml").unwrap();
    assert_eq!(tiny.id().to_string(), "open-claim@9");
    assert_eq!(tiny.table().workflow, "open-claim");
    assert_eq!(tiny.initial(), "new");
    assert_eq!(tiny.calendar(), "cn-mainland");
    assert!(tiny.is_final("cancelled") && !tiny.is_final("placed"));
    let to = |state, command, outcome| {
        tiny.transition(state, command, outcome)
            .map(|t| t.to.as_str())
    };
    assert_eq!(to("new", "place", None), Some("placed"));
    assert_eq!(to("placed", "cancel", None), Some("cancelled"));
    assert_eq!(to("placed", "triage", Some("reject")), Some("rejected"));
    // The table has it, this file does not open it: closed for orders on this version.
    assert_eq!(to("placed", "triage", None), None);
    assert_eq!(
        to("cancelled", "cancel", None),
        None,
        "nothing leaves a final state"
    );
    let cancel = tiny.transition("placed", "cancel", None).unwrap();
    assert_eq!(cancel.roles, [Role::Resident, Role::StationHead]);
    let deadline = tiny.deadline("triage").unwrap();
    assert_eq!(deadline.within, TimeLimit::WorkingDays(2));
    assert_eq!(deadline.warn_at, 0.8, "yellow at 80% unless said otherwise");
    assert_eq!(deadline.on_expiry, OnExpiry::Supervise);
}

#[test]
fn a_transition_the_table_lacks_is_refused_at_its_line() {
    // Given a file that lets a volunteer accept a placed wish: no such row in the open claim.
    then_refused(
        &given_tiny_with(
            "[[transitions]]\ncommand = \"cancel\"",
            "[[transitions]]\ncommand = \"accept\"\nfrom = [\"placed\"]\nto = \"cancelled\"\nroles = [\"volunteer\"]\n\n[[transitions]]\ncommand = \"cancel\"",
        ),
        "tiny.v9.toml:28: transition \"accept\" from \"placed\" is not in workflow \"open-claim\"'s table",
    );
}

#[test]
fn a_transition_the_table_sends_elsewhere_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with("to = \"cancelled\"", "to = \"rejected\""),
        "tiny.v9.toml:13: state \"cancelled\" is unreachable from the initial state \"new\"\n\
         tiny.v9.toml:29: transition \"cancel\" from \"placed\" goes to \"rejected\" in this file but to \"cancelled\" in the table",
    );
}

#[test]
fn a_role_the_table_does_not_give_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with(
            "roles = [\"resident\", \"station_head\"]",
            "roles = [\"resident\", \"volunteer\"]",
        ),
        "tiny.v9.toml:30: role \"volunteer\" may not fire \"cancel\" in the table",
    );
}

#[test]
fn a_state_the_table_lacks_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with(
            "name = \"rejected\"\nfinal = true",
            "name = \"rejected\"\nfinal = true\n\n[[states]]\nname = \"limbo\"\nfinal = true",
        ),
        "tiny.v9.toml:21: state \"limbo\" is not a state of workflow \"open-claim\"\n\
         tiny.v9.toml:21: state \"limbo\" is unreachable from the initial state \"new\"",
    );
    then_refused(
        &given_tiny_with("name = \"rejected\"\nfinal = true", "name = \"rejected\""),
        "tiny.v9.toml:17: state \"rejected\" is final in workflow \"open-claim\"'s table\n\
         tiny.v9.toml:17: state \"rejected\" is not final but no transition leaves it\n\
         tiny.v9.toml:17: state \"rejected\" is not final but no deadline covers it",
    );
}

#[test]
fn a_workflow_the_engine_has_no_table_for_is_refused() {
    then_refused(
        &given_tiny_with("name = \"open-claim\"", "name = \"tiny\""),
        "tiny.v9.toml:1: workflow \"tiny\" has no transition table in the engine: expected \"dispatched-order\" or \"open-claim\"",
    );
}

#[test]
fn a_transition_to_nowhere_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with("to = \"cancelled\"", "to = \"cancled\""),
        "tiny.v9.toml:13: state \"cancelled\" is unreachable from the initial state \"new\"\n\
         tiny.v9.toml:29: transition \"cancel\" goes to unknown state \"cancled\"\n\
         tiny.v9.toml:29: transition \"cancel\" from \"placed\" goes to \"cancled\" in this file but to \"cancelled\" in the table",
    );
}

#[test]
fn a_transition_from_an_unknown_state_is_refused() {
    then_refused(
        &given_tiny_with("from = [\"new\"]", "from = [\"nwe\"]"),
        "tiny.v9.toml:7: state \"new\" is not final but no transition leaves it\n\
         tiny.v9.toml:10: state \"placed\" is unreachable from the initial state \"new\"\n\
         tiny.v9.toml:13: state \"cancelled\" is unreachable from the initial state \"new\"\n\
         tiny.v9.toml:17: state \"rejected\" is unreachable from the initial state \"new\"\n\
         tiny.v9.toml:22: transition \"place\" starts from unknown state \"nwe\"\n\
         tiny.v9.toml:22: transition \"place\" from \"nwe\" is not in workflow \"open-claim\"'s table",
    );
}

#[test]
fn an_unreachable_state_is_refused_at_its_line() {
    let source = given_tiny_with(
        "[[states]]\nname = \"placed\"\n",
        "[[states]]\nname = \"placed\"\n\n[[states]]\nname = \"closed\"\nfinal = true\n",
    );
    then_refused(
        &source,
        "tiny.v9.toml:13: state \"closed\" is unreachable from the initial state \"new\"",
    );
}

#[test]
fn a_non_final_stage_without_a_deadline_is_refused() {
    then_refused(
        &given_tiny_with("covers = [\"placed\"]", "covers = []"),
        "tiny.v9.toml:10: state \"placed\" is not final but no deadline covers it\n\
         tiny.v9.toml:40: deadline \"triage\" covers no state",
    );
}

#[test]
fn an_unknown_role_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with("roles = [\"resident\", \"station_head\"]", "roles = [\"resident\", \"admin\"]"),
        "tiny.v9.toml:30: unknown role \"admin\": expected resident, volunteer, station_head, auditor or system",
    );
}

#[test]
fn a_duplicate_state_is_refused_naming_the_first() {
    then_refused(
        &given_tiny_with("name = \"rejected\"", "name = \"cancelled\""),
        "tiny.v9.toml:17: state \"cancelled\" is defined twice (first on line 13)\n\
         tiny.v9.toml:36: transition \"triage\" goes to unknown state \"rejected\"",
    );
}

#[test]
fn a_final_state_with_an_outgoing_transition_is_refused() {
    then_refused(
        &given_tiny_with(
            "from = [\"placed\"]\nto = \"cancelled\"",
            "from = [\"placed\", \"rejected\"]\nto = \"cancelled\"",
        ),
        "tiny.v9.toml:28: final state \"rejected\" has an outgoing transition \"cancel\"\n\
         tiny.v9.toml:28: transition \"cancel\" from \"rejected\" is not in workflow \"open-claim\"'s table",
    );
}

#[test]
fn the_same_command_twice_from_one_state_is_refused() {
    then_refused(
        &given_tiny_with("command = \"triage\"\noutcome = \"reject\"\nfrom = [\"placed\"]\nto = \"rejected\"", "command = \"cancel\"\nfrom = [\"placed\"]\nto = \"cancelled\""),
        "tiny.v9.toml:17: state \"rejected\" is unreachable from the initial state \"new\"\n\
         tiny.v9.toml:34: transition \"cancel\" from \"placed\" is defined twice (first on line 27)",
    );
}

#[test]
fn a_misspelt_time_limit_is_refused() {
    then_refused(
        &given_tiny_with("within = \"2 working days\"", "within = \"2 workdays\""),
        "tiny.v9.toml:42: invalid time limit \"2 workdays\": expected e.g. \"1 working day\", \"4 working hours\", \"30 working minutes\", \"7 calendar days\" or \"24 hours\"",
    );
}

#[test]
fn an_unknown_key_is_refused_at_its_line() {
    then_refused(
        &given_tiny_with("final = true", "fianl = true"),
        "tiny.v9.toml:14: unknown field `fianl`, expected one of `name`, `label`, `final`",
    );
}

#[test]
fn not_toml_is_refused_at_its_line() {
    let error = Definition::parse(
        &given_tiny_with("version = 9", "version = "),
        "tiny.v9.toml",
    )
    .unwrap_err();
    assert_eq!(error.line(), 2);
    assert!(matches!(error.kind(), ProblemKind::Syntax(_)), "{error}");
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let source = given_tiny_with("to = \"cancelled\"", "to = \"cancled\"")
        .replace("roles = [\"resident\"]", "roles = [\"citizen\"]");
    let error = Definition::parse(&source, "tiny.v9.toml").unwrap_err();
    let lines: Vec<usize> = error.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [13, 24, 29, 29], "{error}");
}

#[test]
fn expiry_commands_must_be_fireable_by_the_system() {
    let source = given_tiny_with(
        "within = \"2 working days\"",
        "within = \"2 working days\"\non_expiry = { fire = [\"cancel\"] }",
    );
    then_refused(
        &source,
        "tiny.v9.toml:43: deadline \"triage\" fires \"cancel\" on expiry, which the system may not do in state \"placed\"",
    );
}

#[test]
fn warn_at_must_be_a_fraction() {
    then_refused(
        &given_tiny_with(
            "within = \"2 working days\"",
            "within = \"2 working days\"\nwarn_at = 80",
        ),
        "tiny.v9.toml:43: deadline \"triage\": warn_at must be between 0 and 1 (exclusive), got 80",
    );
    then_refused(
        &given_tiny_with("within = \"2 working days\"", "within = \"2 working days\"\nwarn_at = 1.5"),
        "tiny.v9.toml:43: deadline \"triage\": warn_at must be between 0 and 1 (exclusive), got 1.5",
    );
}

#[test]
fn clocks_start_on_entering_and_stop_on_leaving_their_states() {
    let tiny = Definition::parse(TINY, "tiny.v9.toml").unwrap();
    let names =
        |deadlines: &[&Deadline]| deadlines.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    let placed = tiny.clock_changes("new", "place", "placed");
    assert_eq!(names(&placed.started), ["triage"]);
    assert!(placed.stopped.is_empty());
    let cancelled = tiny.clock_changes("placed", "cancel", "cancelled");
    assert!(cancelled.started.is_empty());
    assert_eq!(names(&cancelled.stopped), ["triage"]);
}

#[test]
fn a_deadline_schedules_yellow_and_red_in_working_time() {
    let tiny = Definition::parse(
        &given_tiny_with(
            "within = \"2 working days\"",
            "within = \"2 working days\"\nurgent_within = \"4 working hours\"",
        ),
        "tiny.v9.toml",
    )
    .unwrap();
    let deadline = tiny.deadline("triage").unwrap();
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
