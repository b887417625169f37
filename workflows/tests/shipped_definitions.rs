//! The files in `workflows/definitions/` are what the engine will run, so they are specified
//! here: they parse against their workflows' tables, the latest version of each opens every row
//! of its table (nothing in the engine is unreachable), their deadlines are the promised ones,
//! and the registry pins versions.

use std::path::PathBuf;

use diandan_workflows::calendar::TimeLimit;
use diandan_workflows::definition::{Deadline, DefinitionId, Eligibility, OnExpiry, ProblemKind};
use diandan_workflows::engine::{self, Target};
use diandan_workflows::{Definition, Registry, Role};
use time::macros::{date, datetime};

fn definitions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("definitions")
}

fn dispatched_order() -> Definition {
    Definition::load(definitions_dir().join("dispatched-order.v1.toml")).unwrap()
}

fn open_claim() -> Definition {
    Definition::load(definitions_dir().join("open-claim.v1.toml")).unwrap()
}

#[test]
fn every_shipped_definition_only_narrows_its_table() {
    let registry = Registry::load_dir(definitions_dir()).unwrap();
    for name in registry.names() {
        for version in registry.versions(name) {
            let d = registry.get(name, version).unwrap();
            let table = d.table();
            for t in d.transitions() {
                let from = diandan_workflows::order::Status::parse(&t.from[0]).unwrap();
                let row = table
                    .row(from, &t.command, t.outcome.as_deref())
                    .unwrap_or_else(|| panic!("{name}@{version}: {} from {from:?}", t.command));
                assert_eq!(t.to, row.target(from).as_str());
                assert!(t.roles.iter().all(|r| row.roles.contains(r)));
                assert!(!t.roles.contains(&Role::Auditor), "auditors only read");
            }
        }
    }
}

#[test]
fn the_latest_definitions_open_every_row_of_their_tables() {
    let registry = Registry::builtin();
    for table in engine::tables() {
        let d = registry.latest(table.workflow).unwrap();
        for row in table.rows {
            for from in row.from {
                let t = d
                    .transition(from.as_str(), row.command, row.outcome)
                    .unwrap_or_else(|| {
                        panic!("{} {} from {from:?} is closed", table.workflow, row.command)
                    });
                assert_eq!(t.roles, row.roles, "{} {}", table.workflow, row.command);
                let target = match row.to {
                    Target::To(to) => to,
                    Target::Stay => *from,
                };
                assert_eq!(t.to, target.as_str());
            }
        }
        for state in table.states {
            assert_eq!(
                d.is_final(state.as_str()),
                table.is_final(*state),
                "{} {state:?}",
                table.workflow
            );
        }
    }
}

#[test]
fn a_definition_that_adds_a_transition_is_refused_with_its_line() {
    // Given v1 of the dispatched order with a shortcut the table does not have: a volunteer
    // accepting a placed order straight away.
    let source =
        std::fs::read_to_string(definitions_dir().join("dispatched-order.v1.toml")).unwrap();
    let added = source.replacen(
        "from = [\"dispatched\"]\nto = \"accepted\"",
        "from = [\"dispatched\", \"placed\"]\nto = \"accepted\"",
        1,
    );
    assert_ne!(source, added);
    let line = added
        .lines()
        .position(|l| l.contains("\"dispatched\", \"placed\""))
        .unwrap()
        + 1;
    let error = Definition::parse(&added, "dispatched-order.v9.toml").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("dispatched-order.v9.toml:{line}: transition \"accept\" from \"placed\" is not in workflow \"dispatched-order\"'s table")
    );
}

#[test]
fn dispatched_order_v1_deadlines_are_the_promised_time_limits() {
    let d = dispatched_order();
    let limit = |name: &str| {
        let deadline = d.deadline(name).unwrap();
        (deadline.within, deadline.urgent_within, deadline.warn_at)
    };
    assert_eq!(
        limit("sign_for"),
        (
            TimeLimit::WorkingDays(1),
            Some(TimeLimit::WorkingHours(4)),
            0.8
        ),
        "sign for within 1 working day, urgent the same day"
    );
    assert_eq!(limit("complete").0, TimeLimit::WorkingDays(5));
    assert_eq!(limit("review").0, TimeLimit::CalendarDays(7));
    match &d.deadline("review").unwrap().on_expiry {
        OnExpiry::Fire { commands, args } => {
            assert_eq!(commands, &["review", "close"]);
            assert_eq!(args["rating"], 5, "默认好评");
        }
        other => panic!("review expiry: {other:?}"),
    }
    assert_eq!(d.deadline("triage").unwrap().on_expiry, OnExpiry::Supervise);
    // Every waiting stage has exactly one clock.
    for state in d
        .states()
        .iter()
        .filter(|s| !s.is_final && s.name != d.initial())
    {
        assert_eq!(
            d.deadlines_covering(&state.name).count(),
            1,
            "{}",
            state.name
        );
    }
}

#[test]
fn dispatched_order_v1_clocks_follow_the_order_through_the_loop() {
    let d = dispatched_order();
    fn names(list: Vec<&Deadline>) -> Vec<&str> {
        list.into_iter().map(|x| x.name.as_str()).collect()
    }
    let placed = d.clock_changes("new", "place", "placed");
    assert_eq!(names(placed.started), ["triage"]);
    let dispatched = d.clock_changes("triaged", "dispatch", "dispatched");
    assert_eq!(
        (names(dispatched.stopped), names(dispatched.started)),
        (vec!["dispatch"], vec!["sign_for"])
    );
    let redispatched = d.clock_changes("dispatched", "dispatch", "dispatched");
    assert_eq!(
        (names(redispatched.stopped), names(redispatched.started)),
        (vec!["sign_for"], vec!["sign_for"]),
        "a new team gets the full day"
    );
    let checked_in = d.clock_changes("accepted", "check_in", "in_service");
    assert!(
        checked_in.started.is_empty() && checked_in.stopped.is_empty(),
        "completion clock runs on"
    );
    let completed = d.clock_changes("served", "complete", "completed");
    assert_eq!(
        (names(completed.stopped), names(completed.started)),
        (vec!["complete"], vec!["review"])
    );
    let closed = d.clock_changes("reviewed", "close", "closed");
    assert_eq!(names(closed.stopped), ["archive"]);
}

#[test]
fn an_order_placed_before_the_spring_festival_is_due_after_it() {
    let registry = Registry::builtin();
    let d = registry.latest("dispatched-order").unwrap();
    let calendar = registry.calendar_for(d).unwrap();
    // Given an order dispatched on Friday 13 February 2026 at 17:00, the last working day but
    // one before the holiday: Saturday 14 February is a make-up working day (调休), then
    // 15–23 February are off.
    let timer =
        d.deadline("sign_for")
            .unwrap()
            .schedule(datetime!(2026-02-13 17:00 +8), false, calendar);
    // Then half an hour counts on Friday and 6.5 hours on the make-up Saturday.
    assert_eq!(timer.due_at, datetime!(2026-02-14 17:00 +8));
    let urgent =
        d.deadline("sign_for")
            .unwrap()
            .schedule(datetime!(2026-02-14 16:00 +8), true, calendar);
    // An urgent order dispatched at 16:00 on the make-up Saturday: 1.5 h that day, the holiday,
    // then 2.5 h on Tuesday 24 February.
    assert_eq!(urgent.due_at, datetime!(2026-02-24 11:00 +8));
}

#[test]
fn open_claim_v1_recruits_volunteers_who_claim_themselves() {
    let d = open_claim();
    let claim = d.claim().unwrap();
    assert_eq!(claim.command, "claim");
    assert_eq!(claim.required_volunteers, 1);
    assert_eq!(
        claim.eligibility,
        [Eligibility::CategorySkill, Eligibility::StationLineage]
    );
    let roles =
        |state, command, outcome| d.transition(state, command, outcome).unwrap().roles.clone();
    assert_eq!(
        roles("published", "claim", None),
        [Role::Volunteer],
        "nobody claims for others"
    );
    assert_eq!(
        d.transition("published", "claim", Some("fill")).unwrap().to,
        "claimed"
    );
    assert_eq!(
        d.transition("claimed", "unclaim", None).unwrap().to,
        "published"
    );
    assert_eq!(
        roles("claimed", "complete", None),
        [Role::StationHead],
        "the organiser"
    );
    assert!(d.transition("claimed", "claim", None).is_none(), "full");
}

#[test]
fn the_builtin_registry_is_the_shipped_directory() {
    let builtin = Registry::builtin();
    let loaded = Registry::load_dir(definitions_dir()).unwrap();
    for name in ["dispatched-order", "open-claim"] {
        assert_eq!(builtin.latest(name), loaded.latest(name), "{name}");
    }
    assert_eq!(builtin.versions("dispatched-order"), [1, 2]);
    assert_eq!(builtin.versions("open-claim"), [1]);
    let names: Vec<&str> = builtin.names().collect();
    assert_eq!(names, ["dispatched-order", "open-claim"]);
    let calendar = builtin.calendar("cn-mainland").unwrap();
    assert!(calendar.covers_year(2026));
    assert_eq!(calendar.holiday(date!(2026 - 02 - 17)), Some("春节"));
    assert!(
        calendar.is_working_day(date!(2026 - 02 - 28)),
        "调休 Saturday"
    );
}

#[test]
fn an_order_started_on_v1_stays_on_v1_after_v2_ships() {
    // Given v2 adds rework after a poor review, which v1 did not have.
    let registry = Registry::builtin();
    let pinned = DefinitionId {
        name: "dispatched-order".into(),
        version: 1,
    };
    // When an order started on v1 is decided, then v1's rows apply; new orders get v2's.
    assert_eq!(registry.latest("dispatched-order").unwrap().version(), 2);
    let v1 = registry.resolve(&pinned).unwrap();
    assert!(v1.transition("reviewed", "rework", None).is_none());
    assert!(registry
        .latest("dispatched-order")
        .unwrap()
        .transition("reviewed", "rework", None)
        .is_some());
    assert_eq!(pinned.to_string(), "dispatched-order@1");
    assert!(registry.get("dispatched-order", 3).is_none());

    // A published version is never replaced.
    let mut registry = registry;
    let error = registry.add(dispatched_order()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "dispatched-order.v1.toml:16: workflow \"dispatched-order\" version 1 is already registered (from dispatched-order.v1.toml)"
    );
}

#[test]
fn a_definition_needs_its_calendar_registered() {
    let mut registry = Registry::new();
    let error = registry.add(dispatched_order()).unwrap_err();
    assert!(
        matches!(error.kind(), ProblemKind::UnknownCalendar { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "dispatched-order.v1.toml: workflow \"dispatched-order\" uses calendar \"cn-mainland\", which is not registered"
    );
}

#[test]
fn a_missing_file_is_reported_with_its_path() {
    let error = Definition::load(definitions_dir().join("nope.v1.toml")).unwrap_err();
    assert!(matches!(error.kind(), ProblemKind::Unreadable(_)));
    assert!(
        error.to_string().contains("nope.v1.toml: cannot read"),
        "{error}"
    );
}

#[test]
fn a_typo_in_the_shipped_file_would_be_caught_with_its_line() {
    let source =
        std::fs::read_to_string(definitions_dir().join("dispatched-order.v1.toml")).unwrap();
    let typo = source.replacen("to = \"accepted\"", "to = \"acepted\"", 1);
    let line = typo.lines().position(|l| l.contains("acepted")).unwrap() + 1;

    let error = Definition::parse(&typo, "dispatched-order.v1.toml").unwrap_err();

    let message = format!(
        "dispatched-order.v1.toml:{line}: transition \"accept\" goes to unknown state \"acepted\""
    );
    assert!(error.to_string().lines().any(|l| l == message), "{error}");
    // The state nothing leads to any more is reported too, in the same pass.
    assert!(error.problems.iter().any(|p| p.kind
        == ProblemKind::UnreachableState {
            state: "accepted".into(),
            initial: "new".into()
        }));
}
