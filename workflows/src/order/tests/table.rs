//! Given/when/then for every row of every workflow's table, generated from the table, and
//! every illegal (state, command) pair.
//!
//! For each row, each of its from-states and each role the row names: *given* an order in
//! that state (on the latest definition of its workflow, which opens every row), *when* an
//! actor of that role sends the row's command with valid fields, *then* the recorded event is
//! the row's (command, outcome) and the order ends in the row's target. For each state and
//! each command (of any workflow) with no row there: *then* it is refused as illegal — never
//! as a field or permission problem, and never accepted.

use super::*;
use crate::engine::{self, Row, Table};

const ACTIVITY_SEATS: u32 = 4;

/// The latest definition of a table's workflow.
fn latest(table: &Table) -> &'static crate::definition::Definition {
    registry()
        .latest(table.workflow)
        .expect("every table has a shipped definition")
}

/// A volunteer claiming a seat (for `team_a`).
fn claim_by(volunteer: &Who) -> OrderEvent {
    event(
        ACCEPTED_AT,
        OrderChange::Claimed {
            volunteer_id: volunteer.actor.id.clone(),
            team_id: team_a().team_id,
            filled: false,
        },
    )
}

fn v3() -> Who {
    who("v3", Role::Volunteer)
}
fn v4() -> Who {
    who("v4", Role::Volunteer)
}
fn timer() -> Who {
    who("timer", Role::System)
}

/// What placing on `table`'s latest definition records.
fn placed_on(table: &Table) -> OrderEvent {
    let mut placed = placed();
    if let OrderChange::OrderPlaced {
        workflow,
        required_volunteers,
        ..
    } = &mut placed.change
    {
        *workflow = latest(table).id().clone();
        if table.workflow == crate::claim::WORKFLOW {
            *required_volunteers = ACTIVITY_SEATS;
        }
    }
    placed
}

fn poorly_reviewed() -> OrderEvent {
    event(
        REVIEWED_AT,
        OrderChange::OrderReviewed {
            rating: 2,
            comment: "积水还在".into(),
            by_default: false,
            reviewer_id: String::new(),
        },
    )
}

/// The events that leave an order of `table` in `status`, made to suit `row` where a row
/// needs more than the state (a poor review to rework, a follower to review again, a
/// claimant checked in to check out, …).
fn given(table: &Table, status: Status, row: Option<&Row>, role: Role) -> Vec<OrderEvent> {
    let command = row.map(|r| (r.command, r.outcome));
    if table.workflow == crate::claim::WORKFLOW {
        let mut events = given_claim(table, status, command);
        // The station reviews the activities it organises, not residents' wishes.
        if role == Role::StationHead && matches!(command, Some(("review", _))) {
            if let Some(OrderEvent {
                change:
                    OrderChange::OrderPlaced {
                        requester_id,
                        activity,
                        ..
                    },
                ..
            }) = events.first_mut()
            {
                *requester_id = "head".into();
                *activity = true;
            }
        }
        return events;
    }
    let mut events = if status == Status::New {
        Vec::new()
    } else {
        let mut events = history(status);
        events[0] = placed_on(table);
        events
    };
    if status == Status::Reviewed {
        match command {
            Some(("rework" | "follow_up", _)) => {
                let last = events.len() - 1;
                events[last] = poorly_reviewed();
            }
            // A merged duplicate's requester reviews after the requester did.
            Some(("review", _)) => events.push(event(
                REVIEWED_AT,
                OrderChange::DuplicateMerged {
                    order_id: "order-duplicate".into(),
                    requester_id: "r2".into(),
                    also: vec![],
                },
            )),
            _ => {}
        }
    }
    events
}

fn given_claim(
    table: &Table,
    status: Status,
    command: Option<(&str, Option<&str>)>,
) -> Vec<OrderEvent> {
    let placed = placed_on(table);
    // Two of four seats taken, nobody in service yet.
    let published = || vec![placed.clone(), triaged(), claim_by(&v1()), claim_by(&v2())];
    let served = |mut events: Vec<OrderEvent>| {
        events.push(checked_in_by(&v2()));
        events.push(checked_out_by(&v2()));
        events
    };
    let full = |mut events: Vec<OrderEvent>| {
        events.push(claim_by(&v3()));
        let mut last = claim_by(&v4());
        if let OrderChange::Claimed { filled, .. } = &mut last.change {
            *filled = true;
        }
        events.push(last);
        events
    };
    let mut events = match status {
        Status::New => Vec::new(),
        Status::Placed => vec![placed.clone()],
        Status::Rejected => vec![placed.clone(), rejected()],
        Status::Cancelled => vec![placed.clone(), cancelled()],
        Status::Published => published(),
        Status::Claimed => full(published()),
        Status::Completed => {
            let mut events = served(published());
            events.push(completed());
            events
        }
        Status::Reviewed => {
            let mut events = served(published());
            events.push(completed());
            events.push(reviewed());
            events
        }
        Status::Closed => {
            let mut events = served(published());
            events.extend([completed(), reviewed(), closed()]);
            events
        }
        other => unreachable!("{other:?} is not an open-claim state"),
    };
    match (status, command) {
        (Status::Published, Some(("claim", Some(_)))) => events.push(claim_by(&v3())),
        (Status::Published | Status::Claimed, Some(("check_out", _))) => {
            events.push(checked_in_by(&v2()))
        }
        (Status::Published | Status::Claimed, Some(("complete", _))) => events = served(events),
        _ => {}
    }
    events
}

/// The row's command as `role` sends it, with valid fields.
fn command(
    table: &Table,
    from: Status,
    command: &str,
    outcome: Option<&str>,
    role: Role,
) -> Command {
    let claim = table.workflow == crate::claim::WORKFLOW;
    let volunteer = || match command {
        "claim" if outcome.is_some() => v4(),
        "claim" => v3(),
        "check_out" if claim => v2(),
        _ => v1(),
    };
    let actor = match role {
        // The follower of a merged duplicate reviews after the requester did.
        Role::Resident if command == "review" && from == Status::Reviewed => r2(),
        Role::Resident => r1(),
        Role::Volunteer => volunteer(),
        Role::StationHead => head(),
        Role::System => timer(),
        other => who("someone", other),
    };
    match command {
        "place" => {
            let mut place = Action::from(form());
            if let Action::Place {
                workflow,
                required_volunteers,
                on_behalf_of,
                ..
            } = &mut place
            {
                *workflow = Some(table.workflow.to_owned());
                if claim {
                    *required_volunteers = Some(ACTIVITY_SEATS);
                } else if role == Role::StationHead {
                    *on_behalf_of = Some("r1".into());
                }
            }
            actor.does(place)
        }
        "triage" if outcome == Some("reject") => actor.rejects("不属于服务范围"),
        "triage" => actor.accepts_into_queue(),
        "merge" => actor.does(Action::Merge {
            into: "order-earlier".into(),
            reason: "同一积水点".into(),
        }),
        "dispatch" => actor.dispatches_to(audit_bureau()),
        "accept" => actor.accepts_for(&team_a()),
        "decline" => actor.declines_for(&team_a(), "临时有事"),
        "check_in" => actor.checks_in(),
        "check_out" => actor.checks_out(),
        "complete" => actor.completes("已处理", &[]),
        "review" => actor.reviews(5, "满意"),
        "rework" => actor.does(Action::Rework {
            assignee: team_a(),
            reason: "积水还在，请再疏通".into(),
        }),
        "follow_up" => actor.does(Action::FollowUp {
            note: "已电话回访".into(),
        }),
        "close" => actor.closes(),
        "cancel" => actor.cancels("不需要了"),
        "claim" => actor.does(Action::Claim {
            team_id: team_a().team_id,
        }),
        "unclaim" => actor.does(Action::Unclaim {
            reason: "临时有事".into(),
        }),
        other => panic!("no command builder for {other}: add one"),
    }
}

#[test]
fn every_row_of_every_table_moves_the_order_to_its_target() {
    let mut cases = 0;
    for table in engine::tables() {
        let definition = latest(table);
        for row in table.rows {
            for &from in row.from {
                for &role in row.roles {
                    let events = given(table, from, Some(row), role);
                    let state = fold(&events);
                    assert_eq!(state.status, from, "{} given {from:?}", table.workflow);
                    let command = command(table, from, row.command, row.outcome, role);
                    let what = format!(
                        "{}: {from:?} × {}{} by {role:?}",
                        table.workflow,
                        row.command,
                        row.outcome.map(|o| format!("/{o}")).unwrap_or_default()
                    );
                    let recorded = decide(definition, &state, &command)
                        .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
                    assert_eq!(recorded.len(), 1, "{what}");
                    assert_eq!(
                        recorded[0].change.transition(),
                        Some((row.command, row.outcome)),
                        "{what}: recorded {:?}",
                        recorded[0].change
                    );
                    let after = recorded.iter().fold(state, evolve);
                    assert_eq!(after.status, row.target(from), "{what}");
                    cases += 1;
                }
            }
        }
    }
    let expected: usize = engine::tables()
        .iter()
        .flat_map(|t| t.rows.iter())
        .map(|r| r.from.len() * r.roles.len())
        .sum();
    assert_eq!(cases, expected);
}

#[test]
fn every_command_a_state_has_no_row_for_is_illegal_there() {
    // Every (command, outcome) of every workflow, tried on every state of every workflow.
    let mut pairs: Vec<(&str, Option<&str>)> = Vec::new();
    for table in engine::tables() {
        for row in table.rows {
            if !pairs.contains(&(row.command, row.outcome)) {
                pairs.push((row.command, row.outcome));
            }
        }
    }
    let mut refused = 0;
    for table in engine::tables() {
        let definition = latest(table);
        for &status in table.states {
            let state = fold(&given(table, status, None, Role::StationHead));
            for &(name, outcome) in &pairs {
                let command = command(table, status, name, outcome, Role::StationHead);
                let outcome_here = (table.outcome)(&command.action, &state);
                if table.row(status, name, outcome_here).is_some() {
                    continue;
                }
                let what = format!("{}: {status:?} × {name}", table.workflow);
                match decide(definition, &state, &command) {
                    Err(DomainError::NotFound) => assert_eq!(status, Status::New, "{what}"),
                    Err(DomainError::IllegalTransition { .. })
                    | Err(DomainError::AlreadyAccepted)
                    | Err(DomainError::Full) => {}
                    other => panic!("{what}: expected illegal, got {other:?}"),
                }
                refused += 1;
            }
        }
    }
    assert!(refused > 100, "{refused} illegal pairs tried");
}

#[test]
fn final_states_are_those_no_row_leaves() {
    for table in engine::tables() {
        for &status in table.states {
            let leaves = table.rows.iter().any(|r| r.from.contains(&status));
            assert_eq!(table.is_final(status), !leaves, "{status:?}");
            assert_eq!(status.is_final(), !leaves, "{status:?}");
        }
    }
}

#[test]
fn each_event_names_the_row_it_records() {
    // evolve reads the status from the table; the event's (command, outcome) is the key.
    for table in engine::tables() {
        for row in table.rows {
            assert_eq!(
                latest(table)
                    .table()
                    .row(row.from[0], row.command, row.outcome),
                Some(row)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input on the new rows: refused, naming the problem
// ---------------------------------------------------------------------------------------------

fn decide_on(
    table: &Table,
    events: &[OrderEvent],
    command: Command,
) -> Result<Vec<OrderEvent>, DomainError> {
    decide(latest(table), &fold(events), &command)
}

fn claim_table() -> &'static Table {
    &crate::claim::TABLE
}

fn dispatched_table() -> &'static Table {
    &crate::dispatched::TABLE
}

#[test]
fn claiming_twice_is_a_conflict() {
    let events = given(claim_table(), Status::Published, None, Role::Volunteer);
    let again = v1().does(Action::Claim {
        team_id: "team-a".into(),
    });
    assert!(matches!(
        decide_on(claim_table(), &events, again),
        Err(DomainError::Conflict {
            field: "order_id",
            ..
        })
    ));
}

#[test]
fn claiming_a_full_order_is_refused_as_full() {
    let events = given(claim_table(), Status::Claimed, None, Role::Volunteer);
    let late = who("v5", Role::Volunteer).does(Action::Claim {
        team_id: "team-a".into(),
    });
    assert_eq!(
        decide_on(claim_table(), &events, late),
        Err(DomainError::Full)
    );
}

#[test]
fn the_claim_that_takes_the_last_seat_fills_the_order() {
    let mut events = given(claim_table(), Status::Published, None, Role::Volunteer);
    events.push(claim_by(&v3()));
    let last = v4().does(Action::Claim {
        team_id: "team-a".into(),
    });
    let recorded = decide_on(claim_table(), &events, last).unwrap();
    assert!(matches!(
        recorded[0].change,
        OrderChange::Claimed { filled: true, .. }
    ));
    let state = fold(&[events, recorded].concat());
    assert_eq!(state.status, Status::Claimed);
    assert_eq!(state.claims.len(), ACTIVITY_SEATS as usize);
}

#[test]
fn unclaiming_after_check_in_is_a_conflict() {
    let mut events = given(claim_table(), Status::Published, None, Role::Volunteer);
    events.push(checked_in_by(&v1()));
    let result = decide_on(
        claim_table(),
        &events,
        v1().does(Action::Unclaim {
            reason: String::new(),
        }),
    );
    assert!(
        matches!(result, Err(DomainError::Conflict { .. })),
        "{result:?}"
    );
}

#[test]
fn checking_in_without_a_claim_is_forbidden() {
    // v3 holds no seat: nobody checks in on someone else's claim.
    let events = given(claim_table(), Status::Published, None, Role::Volunteer);
    let result = decide_on(claim_table(), &events, v3().checks_in());
    assert!(
        matches!(result, Err(DomainError::Forbidden(_))),
        "{result:?}"
    );
}

#[test]
fn each_claimant_earns_their_own_minutes() {
    let mut events = given(claim_table(), Status::Published, None, Role::Volunteer);
    events.push(checked_in_by(&v1()));
    events.push(checked_in_by(&v2()));
    let v1_out = v1()
        .at(CHECKED_IN_AT + time::Duration::minutes(30))
        .checks_out();
    events.extend(decide_on(claim_table(), &events, v1_out).unwrap());
    let v2_out = v2()
        .at(CHECKED_IN_AT + time::Duration::minutes(90))
        .checks_out();
    events.extend(decide_on(claim_table(), &events, v2_out).unwrap());
    let state = fold(&events);
    assert_eq!(state.claims["v1"].service_minutes, 30);
    assert_eq!(state.claims["v2"].service_minutes, 90);
    assert_eq!(state.service_minutes, 120);
}

#[test]
fn completing_before_anyone_served_is_a_conflict_but_a_forgetful_claimant_blocks_nothing() {
    let events = given(claim_table(), Status::Published, None, Role::Volunteer);
    let nobody_served = decide_on(claim_table(), &events, head().completes("活动结束", &[]));
    assert!(matches!(nobody_served, Err(DomainError::Conflict { .. })));
    let mut events = events;
    events.push(checked_in_by(&v1()));
    let still_serving = decide_on(claim_table(), &events, head().completes("活动结束", &[]));
    assert!(matches!(still_serving, Err(DomainError::Conflict { .. })));
    // v2 served; v1 never checks out: the organiser completes all the same.
    events.push(checked_in_by(&v2()));
    events.push(checked_out_by(&v2()));
    assert!(decide_on(claim_table(), &events, head().completes("活动结束", &[])).is_ok());
}

#[test]
fn rework_needs_a_review_of_at_most_two_stars() {
    let events = given(
        dispatched_table(),
        Status::Reviewed,
        None,
        Role::StationHead,
    );
    let rework = head().does(Action::Rework {
        assignee: team_a(),
        reason: "再修一次".into(),
    });
    assert!(matches!(
        decide_on(dispatched_table(), &events, rework),
        Err(DomainError::Conflict {
            field: "rating",
            ..
        })
    ));
    let follow_up = head().does(Action::FollowUp {
        note: "回访".into(),
    });
    assert!(matches!(
        decide_on(dispatched_table(), &events, follow_up),
        Err(DomainError::Conflict {
            field: "rating",
            ..
        })
    ));
}

#[test]
fn a_reworked_order_is_served_and_reviewed_again_and_the_first_review_stays_in_history() {
    let table = dispatched_table();
    let reworked = head().at(CLOSED_AT).does(Action::Rework {
        assignee: audit_bureau(),
        reason: "积水还在".into(),
    });
    let mut events = given(
        table,
        Status::Reviewed,
        Some(&table.rows[12]),
        Role::StationHead,
    );
    assert_eq!(table.rows[12].command, "rework");
    events.extend(decide_on(table, &events, reworked).unwrap());
    let state = fold(&events);
    assert_eq!(state.status, Status::Dispatched);
    assert_eq!(state.assignee, Some(audit_bureau()));
    assert_eq!(state.accepted_by, None);
    assert_eq!(state.reworks, 1);
    // The second round: accepted by the new team, served, reviewed by the requester again.
    let v9 = who("v9", Role::Volunteer);
    for step in [
        v9.accepts_for(&audit_bureau()),
        v9.checks_in(),
        v9.checks_out(),
        v9.completes("重新疏通", &[]),
        r1().reviews(4, "这次好了"),
    ] {
        let recorded = decide_on(table, &events, step).unwrap();
        events.extend(recorded);
    }
    let state = fold(&events);
    assert_eq!((state.status, state.rating), (Status::Reviewed, Some(4)));
    let ratings: Vec<u32> = events
        .iter()
        .filter_map(|e| match e.change {
            OrderChange::OrderReviewed { rating, .. } => Some(rating),
            _ => None,
        })
        .collect();
    assert_eq!(ratings, [2, 4], "both reviews stay in the history");
}

#[test]
fn merging_into_itself_is_a_conflict() {
    let events = given(dispatched_table(), Status::Placed, None, Role::StationHead);
    let merge = head().does(Action::Merge {
        into: ORDER.into(),
        reason: String::new(),
    });
    assert!(matches!(
        decide_on(dispatched_table(), &events, merge),
        Err(DomainError::Conflict { field: "into", .. })
    ));
}

#[test]
fn a_merge_target_must_be_an_earlier_open_order_of_the_same_station() {
    let table = dispatched_table();
    let duplicate = fold(&given(table, Status::Placed, None, Role::StationHead));
    let mut survivor = fold(&given(table, Status::Triaged, None, Role::StationHead));
    survivor.order_id = "order-earlier".into();
    survivor.placed_at = Some(PLACED_AT - time::Duration::hours(1));
    assert_eq!(
        crate::dispatched::check_merge_target(&duplicate, &survivor),
        Ok(())
    );
    let closed = OrderState {
        status: Status::Closed,
        ..survivor.clone()
    };
    assert!(crate::dispatched::check_merge_target(&duplicate, &closed).is_err());
    let elsewhere = OrderState {
        station_id: "station-other".into(),
        ..survivor.clone()
    };
    assert!(crate::dispatched::check_merge_target(&duplicate, &elsewhere).is_err());
    let later = OrderState {
        placed_at: Some(PLACED_AT + time::Duration::hours(1)),
        ..survivor
    };
    assert!(crate::dispatched::check_merge_target(&duplicate, &later).is_err());
}

#[test]
fn a_merged_duplicate_s_requester_follows_and_reviews_once() {
    let table = dispatched_table();
    let mut events = given(table, Status::Completed, None, Role::Resident);
    events.push(event(
        TRIAGED_AT,
        OrderChange::DuplicateMerged {
            order_id: "order-duplicate".into(),
            requester_id: "r2".into(),
            also: vec![],
        },
    ));
    for reviewer in [r1(), r2()] {
        let recorded = decide_on(table, &events, reviewer.reviews(3, "")).unwrap();
        events.extend(recorded);
    }
    // The round's lowest rating decides: one requester's 3 stars and another's would not
    // hide a complaint.
    let again = decide_on(table, &events, r2().reviews(1, ""));
    assert!(
        matches!(again, Err(DomainError::Conflict { .. })),
        "{again:?}"
    );
    let stranger = decide_on(table, &events, who("r3", Role::Resident).reviews(1, ""));
    assert!(matches!(
        stranger,
        Err(DomainError::Forbidden(_) | DomainError::IllegalTransition { .. })
    ));
}

#[test]
fn the_station_reviews_its_activities_but_not_residents_wishes() {
    let table = claim_table();
    let wish = given(table, Status::Completed, None, Role::Resident);
    let result = decide_on(table, &wish, head().reviews(5, ""));
    assert!(
        matches!(result, Err(DomainError::Forbidden(_))),
        "{result:?}"
    );
    let row = table.rows.iter().find(|r| r.command == "review").unwrap();
    let activity = given(table, Status::Completed, Some(row), Role::StationHead);
    assert!(fold(&activity).activity);
    assert!(decide_on(table, &activity, head().reviews(5, "")).is_ok());
}

#[test]
fn a_station_head_placing_an_open_claim_without_a_resident_organises_an_activity() {
    let mut place = Action::from(form());
    if let Action::Place {
        workflow,
        required_volunteers,
        ..
    } = &mut place
    {
        *workflow = Some(crate::claim::WORKFLOW.into());
        *required_volunteers = Some(12);
    }
    let recorded = decide_on(claim_table(), &[], head().does(place)).unwrap();
    let state = fold(&recorded);
    assert!(state.activity);
    assert_eq!(state.requester_id, "head");
    assert_eq!(state.required_volunteers, 12);
}

#[test]
fn one_poor_review_of_a_round_allows_rework_whatever_the_other_requester_said() {
    let table = dispatched_table();
    let mut events = given(table, Status::Completed, None, Role::Resident);
    events.push(event(
        TRIAGED_AT,
        OrderChange::DuplicateMerged {
            order_id: "order-duplicate".into(),
            requester_id: "r2".into(),
            also: vec![],
        },
    ));
    for (reviewer, rating) in [(r1(), 1), (r2(), 5)] {
        let recorded = decide_on(table, &events, reviewer.reviews(rating, "")).unwrap();
        events.extend(recorded);
    }
    let rework = head().does(Action::Rework {
        assignee: team_a(),
        reason: "一位居民仍不满意".into(),
    });
    assert!(decide_on(table, &events, rework).is_ok());
}

#[test]
fn a_survivor_with_followers_cannot_be_cancelled_and_a_final_one_absorbs_nothing() {
    let table = dispatched_table();
    let mut events = given(table, Status::Placed, None, Role::Resident);
    let absorb = head().does(Action::AbsorbDuplicate {
        order_id: "order-duplicate".into(),
        requester_ids: vec!["r2".into(), "r3".into()],
    });
    events.extend(decide_on(table, &events, absorb.clone()).unwrap());
    let state = fold(&events);
    assert_eq!(state.followers, ["r2", "r3"]);
    let cancel = decide_on(table, &events, r1().cancels("不需要了"));
    assert!(
        matches!(cancel, Err(DomainError::Conflict { .. })),
        "{cancel:?}"
    );
    let closed = given(table, Status::Closed, None, Role::StationHead);
    assert!(matches!(
        decide_on(table, &closed, absorb),
        Err(DomainError::Conflict { field: "into", .. })
    ));
}
