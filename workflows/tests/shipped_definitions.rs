//! The files in `workflows/definitions/` are what the engine will run, so they are specified
//! here: they parse, the dispatched-order v1 definition is exactly the hard-coded transition
//! table of `order::Status::allows`, its deadlines are the promised ones, the open-claim
//! definition fills with `required_volunteers`, and the registry pins versions.

use std::path::PathBuf;

use diandan_workflows::calendar::TimeLimit;
use diandan_workflows::definition::{Deadline, DefinitionId, Eligibility, OnExpiry, ProblemKind};
use diandan_workflows::order::{
    evolve, Action, Assignee, OrderChange, OrderEvent, OrderState, Status, TeamKind,
};
use diandan_workflows::validate::Location;
use diandan_workflows::{Calendar, Definition, OrgLevel, Registry, Role};
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

const STATUSES: [Status; 12] = Status::ALL;

fn somewhere() -> Location {
    Location {
        lat: 29.87,
        lng: 114.28,
        address: String::new(),
    }
}

fn team() -> Assignee {
    Assignee {
        team_id: "t".into(),
        kind: TeamKind::Team,
        node_id: "s".into(),
        level: OrgLevel::Station,
    }
}

/// One of every action, with the command name the definition uses for it, the outcome it
/// stands for, and the event `decide` would record for it.
fn every_action() -> Vec<(Action, &'static str, Option<&'static str>, OrderChange)> {
    vec![
        (
            Action::Place {
                order_id: "o".into(),
                station_id: "s".into(),
                category: "repair".into(),
                description: "d".into(),
                location: somewhere(),
                contact_phone: "13812345678".into(),
                wanted_time: None,
                on_behalf_of: None,
            },
            "place",
            None,
            OrderChange::OrderPlaced {
                order_id: "o".into(),
                requester_id: "r".into(),
                station_id: "s".into(),
                category: diandan_workflows::Category::Repair,
                description: "d".into(),
                location: somewhere(),
                contact_phone_masked: "138****5678".into(),
                wanted_time: None,
                placed_by_staff: false,
                workflow: diandan_workflows::definition::DefinitionId::dispatched_order_v1(),
            },
        ),
        (
            Action::Triage {
                accept: true,
                reason: String::new(),
            },
            "triage",
            None,
            OrderChange::OrderTriaged,
        ),
        (
            Action::Triage {
                accept: false,
                reason: "重复".into(),
            },
            "triage",
            Some("reject"),
            OrderChange::OrderRejected {
                reason: "重复".into(),
            },
        ),
        (
            Action::Dispatch {
                assignee: team(),
                reason: String::new(),
            },
            "dispatch",
            None,
            OrderChange::OrderDispatched {
                assignee: team(),
                reason: String::new(),
            },
        ),
        (
            Action::Accept {
                team_id: "t".into(),
                member: None,
            },
            "accept",
            None,
            OrderChange::OrderAccepted {
                volunteer_id: "v".into(),
                team_id: "t".into(),
            },
        ),
        (
            Action::Decline {
                team_id: "t".into(),
                reason: "没空".into(),
            },
            "decline",
            None,
            OrderChange::OrderDeclined {
                volunteer_id: "v".into(),
                team_id: "t".into(),
                reason: "没空".into(),
                returned_after_accept: false,
            },
        ),
        (
            Action::CheckIn {
                location: somewhere(),
            },
            "check_in",
            None,
            OrderChange::VolunteerCheckedIn {
                volunteer_id: "v".into(),
                location: somewhere(),
            },
        ),
        (
            Action::CheckOut {
                location: somewhere(),
            },
            "check_out",
            None,
            OrderChange::VolunteerCheckedOut {
                volunteer_id: "v".into(),
                location: somewhere(),
                service_minutes: 30,
            },
        ),
        (
            Action::Complete {
                note: "好了".into(),
                photos: vec![],
            },
            "complete",
            None,
            OrderChange::OrderCompleted {
                note: "好了".into(),
                photos: vec![],
            },
        ),
        (
            Action::Review {
                rating: 5,
                comment: String::new(),
            },
            "review",
            None,
            OrderChange::OrderReviewed {
                rating: 5,
                comment: String::new(),
                by_default: false,
            },
        ),
        (Action::Close, "close", None, OrderChange::OrderClosed),
        (
            Action::Cancel {
                reason: String::new(),
            },
            "cancel",
            None,
            OrderChange::OrderCancelled {
                reason: String::new(),
            },
        ),
    ]
}

#[test]
fn dispatched_order_v1_is_exactly_the_hard_coded_transition_table() {
    let definition = dispatched_order();
    let mut allowed_pairs = 0;
    for status in STATUSES {
        let state = status.as_str();
        assert!(
            definition.state(state).is_some(),
            "state {state} is defined"
        );
        assert_eq!(
            definition.is_final(state),
            status.is_final(),
            "{state} final?"
        );
        for (action, command, outcome, change) in every_action() {
            // The engine decides with this table (the order specs hold it to a hand-written
            // copy); where a transition leads must be where `evolve` takes the order.
            let target = definition.target_of(state, command, outcome);
            assert_eq!(action.command(), command);
            assert_eq!(action.outcome(), outcome);
            if let Some(target) = target {
                allowed_pairs += 1;
                let state_before = OrderState {
                    status,
                    ..OrderState::default()
                };
                let after = evolve(
                    state_before,
                    &OrderEvent {
                        at: datetime!(2026-11-02 10:00 +8),
                        change,
                    },
                );
                assert_eq!(
                    target,
                    after.status.as_str(),
                    "{state} × {command}{outcome:?}"
                );
            }
        }
    }
    assert_eq!(
        allowed_pairs, 16,
        "rows of the table in order/mod.rs, counted per from-state"
    );
    // Every command of the definition is one of the actions: nothing the engine cannot do.
    let commands: Vec<&str> = every_action().iter().map(|a| a.1).collect();
    for transition in definition.transitions() {
        assert!(
            commands.contains(&transition.command.as_str()),
            "{}",
            transition.command
        );
    }
}

#[test]
fn dispatched_order_v1_roles_are_the_ones_decide_enforces() {
    let d = dispatched_order();
    let may = |state: &str, command: &str| -> Vec<Role> {
        [
            Role::Resident,
            Role::Volunteer,
            Role::StationHead,
            Role::Auditor,
            Role::System,
        ]
        .into_iter()
        .filter(|&role| d.allows(state, command, role))
        .collect()
    };
    assert_eq!(may("new", "place"), [Role::Resident, Role::StationHead]);
    assert_eq!(may("placed", "triage"), [Role::StationHead]);
    // The system re-dispatches an order nobody signed for in time.
    assert_eq!(
        may("dispatched", "dispatch"),
        [Role::StationHead, Role::System]
    );
    assert_eq!(may("dispatched", "accept"), [Role::Volunteer]);
    assert_eq!(may("accepted", "decline"), [Role::Volunteer]);
    assert_eq!(may("served", "complete"), [Role::Volunteer]);
    assert_eq!(may("completed", "review"), [Role::Resident, Role::System]);
    assert_eq!(may("reviewed", "close"), [Role::StationHead, Role::System]);
    assert_eq!(may("placed", "cancel"), [Role::Resident]);
    assert!(
        may("accepted", "cancel").is_empty(),
        "not once someone accepted"
    );
    for transition in d.transitions() {
        assert!(
            !transition.roles.contains(&Role::Auditor),
            "auditors only read"
        );
    }
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
fn open_claim_v1_stays_open_until_enough_volunteers_claim() {
    let d = open_claim();
    let claim = d.claim().unwrap();
    assert_eq!(claim.command, "claim");
    assert_eq!(claim.required_volunteers, 1);
    assert_eq!(
        claim.eligibility,
        [Eligibility::CategorySkill, Eligibility::StationLineage]
    );
    assert!(d.allows("published", "claim", Role::Volunteer));
    assert!(
        !d.allows("published", "claim", Role::StationHead),
        "nobody claims for others"
    );

    // Given a wish needing three volunteers, then the first two claims keep it published and
    // the third fills it; a fourth is too late.
    assert_eq!(d.after_claim("published", 1, 3), Some("published"));
    assert_eq!(d.after_claim("published", 2, 3), Some("published"));
    assert_eq!(d.after_claim("published", 3, 3), Some("claimed"));
    assert_eq!(d.after_claim("claimed", 4, 3), None);
    // With the default of one, the first valid claim wins.
    assert_eq!(
        d.after_claim("published", 1, claim.required_volunteers),
        Some("claimed")
    );
    // A claimant dropping out of a full wish opens it again.
    assert_eq!(d.target("claimed", "unclaim"), Some("published"));
}

#[test]
fn the_builtin_registry_is_the_shipped_directory() {
    let builtin = Registry::builtin();
    let loaded = Registry::load_dir(definitions_dir()).unwrap();
    for name in ["dispatched-order", "open-claim"] {
        assert_eq!(builtin.latest(name), loaded.latest(name), "{name}");
        assert_eq!(builtin.versions(name), [1]);
    }
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
    // Given v2 lets a volunteer decline only before accepting.
    let v1_source =
        std::fs::read_to_string(definitions_dir().join("dispatched-order.v1.toml")).unwrap();
    let v2_source = v1_source
        .replacen("version = 1", "version = 2", 1)
        .replacen(
        "from = [\"dispatched\", \"accepted\"]      # after accepting: returned before check-in",
        "from = [\"dispatched\"]",
        1,
    );
    let mut registry = Registry::new();
    registry.add_calendar(
        Calendar::parse(
            &std::fs::read_to_string(definitions_dir().join("calendar-cn-mainland.toml")).unwrap(),
            "calendar-cn-mainland.toml",
        )
        .unwrap(),
    );
    registry.add(dispatched_order()).unwrap();
    registry
        .add(Definition::parse(&v2_source, "dispatched-order.v2.toml").unwrap())
        .unwrap();

    // When an order started on v1 is decided, then v1's table applies; new orders get v2.
    let pinned = DefinitionId {
        name: "dispatched-order".into(),
        version: 1,
    };
    assert_eq!(registry.latest("dispatched-order").unwrap().version(), 2);
    assert!(registry
        .resolve(&pinned)
        .unwrap()
        .allows("accepted", "decline", Role::Volunteer));
    assert!(!registry.latest("dispatched-order").unwrap().allows(
        "accepted",
        "decline",
        Role::Volunteer
    ));
    assert_eq!(registry.versions("dispatched-order"), [1, 2]);
    assert_eq!(pinned.to_string(), "dispatched-order@1");
    assert!(registry.get("dispatched-order", 3).is_none());

    // A published version is never replaced.
    let error = registry.add(dispatched_order()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "dispatched-order.v1.toml:14: workflow \"dispatched-order\" version 1 is already registered (from dispatched-order.v1.toml)"
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
