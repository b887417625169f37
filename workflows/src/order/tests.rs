//! Given/when/then specifications of the order workflow.
//!
//! Each spec reads as a sentence: *given* these events happened to an order, *when* this actor
//! sends this command, *then* exactly these changes are recorded — or the command is refused
//! with this error. The harness (first section) folds the given events with [`evolve`], calls
//! [`decide`] and compares; everything after it is a specification.
//!
//! The cast: residents `r1` (who places the order) and `r2` (a neighbour), the station head
//! `head`, and volunteers `v1` and `v2`, both of the station's team `team_a`. The helper unit
//! `audit_bureau` is what an order is re-dispatched to (层层派单).

mod table;

use std::collections::BTreeSet;

use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::validate::{Location, MAX_DESCRIPTION_CHARS, MAX_PHOTOS};
use crate::{Actor, Category, CommandMeta, DomainError, OrgLevel, Role};

// ---------------------------------------------------------------------------------------------
// The harness: given(events).when(command).then(changes) / .then_error(..)
// ---------------------------------------------------------------------------------------------

/// An order as its given events left it.
struct Given {
    state: OrderState,
}

/// Folds the events that already happened to the order.
fn given(events: &[OrderEvent]) -> Given {
    Given {
        state: fold(events),
    }
}

/// An order nobody has placed yet: its stream is empty.
fn given_a_new_order() -> Given {
    given(&[])
}

/// The shipped definitions.
pub(super) fn registry() -> &'static crate::definition::Registry {
    static REGISTRY: std::sync::OnceLock<crate::definition::Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(crate::definition::Registry::builtin)
}

/// The definition the order runs on: the version it was placed on; before that, the latest of
/// the workflow a placement asks for, or dispatched-order v1, the one most specs are about.
pub(super) fn definition_for(
    state: &OrderState,
    action: &Action,
) -> &'static crate::definition::Definition {
    let registry = registry();
    match (&state.workflow, action) {
        (Some(id), _) => registry.resolve(id),
        (
            None,
            Action::Place {
                workflow: Some(name),
                ..
            },
        ) => registry.latest(name),
        (None, _) => registry.get("dispatched-order", 1),
    }
    .expect("a shipped definition")
}

fn fold(events: &[OrderEvent]) -> OrderState {
    events.iter().fold(OrderState::default(), evolve)
}

impl Given {
    fn when(self, command: Command) -> Outcome {
        let result = decide(
            definition_for(&self.state, &command.action),
            &self.state,
            &command,
        );
        Outcome {
            state: self.state,
            command,
            result,
        }
    }
}

/// What `decide` answered, and the state and command it answered for.
struct Outcome {
    state: OrderState,
    command: Command,
    result: Result<Vec<OrderEvent>, DomainError>,
}

impl Outcome {
    /// The command is accepted and records exactly these changes, each at the command's time.
    #[track_caller]
    fn then(self, expected: &[OrderChange]) -> OrderState {
        let at = self.command.meta.at;
        let expected: Vec<OrderEvent> = expected
            .iter()
            .map(|change| OrderEvent::new(at, change.clone()))
            .collect();
        match self.result {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "{:?} in status {:?} recorded other events",
                    self.command.action, self.state.status
                );
                events.iter().fold(self.state, evolve)
            }
            Err(error) => panic!(
                "{:?} in status {:?} was refused: {error:?}; expected {expected:?}",
                self.command.action, self.state.status
            ),
        }
    }

    /// The command is refused with exactly this error.
    #[track_caller]
    fn then_error(self, expected: DomainError) {
        match self.result {
            Err(error) => assert_eq!(error, expected, "{:?}", self.command.action),
            Ok(events) => panic!(
                "{:?} in status {:?} was accepted with {events:?}; expected {expected:?}",
                self.command.action, self.state.status
            ),
        }
    }

    /// The command is refused with an error that `what` describes and `matches` recognises.
    #[track_caller]
    fn then_error_where(self, what: &str, matches: impl FnOnce(&DomainError) -> bool) {
        match self.result {
            Err(error) => assert!(
                matches(&error),
                "{:?}: expected {what}, got {error:?}",
                self.command.action
            ),
            Ok(events) => panic!(
                "{:?} in status {:?} was accepted with {events:?}; expected {what}",
                self.command.action, self.state.status
            ),
        }
    }

    /// The command is refused because the named field is invalid.
    #[track_caller]
    fn then_conflict(self, field: &str) {
        self.then_error_where(
            &format!("Conflict {{ field: {field:?} }}"),
            |error| matches!(error, DomainError::Conflict { field: f, .. } if *f == field),
        );
    }

    /// The command is refused because a field is invalid.
    #[track_caller]
    fn then_invalid(self, field: &str) {
        self.then_error_where(
            &format!("InvalidField {{ field: {field:?} }}"),
            |error| matches!(error, DomainError::InvalidField { field: f, .. } if *f == field),
        );
    }

    /// The command is refused because this actor may not do it.
    #[track_caller]
    fn then_forbidden(self) {
        self.then_error_where("Forbidden", |error| {
            matches!(error, DomainError::Forbidden(_))
        });
    }
}

/// The error for `action` (its Chinese name) refused in `status`.
fn illegal(action: &'static str, status: Status) -> DomainError {
    DomainError::IllegalTransition {
        action,
        status: status.name_zh(),
    }
}

// ---------------------------------------------------------------------------------------------
// The cast, the clock and the paperwork
// ---------------------------------------------------------------------------------------------

const PLACED_AT: OffsetDateTime = datetime!(2024-06-03 08:30 +8);
const TRIAGED_AT: OffsetDateTime = datetime!(2024-06-03 09:00 +8);
const DISPATCHED_AT: OffsetDateTime = datetime!(2024-06-03 09:15 +8);
const REDISPATCHED_AT: OffsetDateTime = datetime!(2024-06-03 11:00 +8);
const ACCEPTED_AT: OffsetDateTime = datetime!(2024-06-03 10:00 +8);
const DECLINED_AT: OffsetDateTime = datetime!(2024-06-03 10:30 +8);
const CHECKED_IN_AT: OffsetDateTime = datetime!(2024-06-04 14:00 +8);
const CHECKED_OUT_AT: OffsetDateTime = datetime!(2024-06-04 15:35 +8);
const COMPLETED_AT: OffsetDateTime = datetime!(2024-06-04 16:00 +8);
const REVIEWED_AT: OffsetDateTime = datetime!(2024-06-05 19:00 +8);
const CLOSED_AT: OffsetDateTime = datetime!(2024-06-06 09:00 +8);
const CANCELLED_AT: OffsetDateTime = datetime!(2024-06-03 09:05 +8);
const WANTED: OffsetDateTime = datetime!(2024-06-05 09:00 +8);
/// When commands are sent unless a spec says otherwise: after everything given.
const NOW: OffsetDateTime = datetime!(2024-06-10 10:00 +8);

const ORDER: &str = "order-yongfu-1";
const STATION: &str = "station-chezhanlu";
const PHONE: &str = "13812345678";
const PHONE_MASKED: &str = "138****5678";
const DESCRIPTION: &str = "永福巷下水道堵塞，雨后积水过膝";

/// Someone acting in a role, about to send a command at a time.
#[derive(Clone)]
struct Who {
    actor: Actor,
    at: OffsetDateTime,
}

fn who(id: &str, role: Role) -> Who {
    Who {
        actor: Actor::new(id, role),
        at: NOW,
    }
}

/// The resident who places the order.
fn r1() -> Who {
    who("r1", Role::Resident)
}
/// A neighbour: a resident, but not the requester.
fn r2() -> Who {
    who("r2", Role::Resident)
}
/// The station head (站长).
fn head() -> Who {
    who("head", Role::StationHead)
}
/// A volunteer of `team_a`, the one who accepts.
fn v1() -> Who {
    who("v1", Role::Volunteer)
}
/// Another volunteer of `team_a`.
fn v2() -> Who {
    who("v2", Role::Volunteer)
}

/// The station's own volunteer team.
fn team_a() -> Assignee {
    Assignee {
        team_id: "team-a".into(),
        kind: TeamKind::Team,
        node_id: STATION.into(),
        level: OrgLevel::Station,
    }
}

/// A helper unit (帮扶单位) one level up: the district audit bureau's volunteers.
fn audit_bureau() -> Assignee {
    Assignee {
        team_id: "audit-bureau".into(),
        kind: TeamKind::HelperUnit,
        node_id: "institute-wenchang".into(),
        level: OrgLevel::Institute,
    }
}

fn yongfu_lane() -> Location {
    Location {
        lat: 29.85,
        lng: 114.32,
        address: "永福巷 12 号".into(),
    }
}

/// The 点单 form, as a resident fills it in.
#[derive(Clone)]
struct Form {
    order_id: String,
    station_id: String,
    category: String,
    description: String,
    location: Location,
    contact_phone: String,
    wanted_time: Option<OffsetDateTime>,
    on_behalf_of: Option<String>,
}

/// A correctly filled-in form.
fn form() -> Form {
    Form {
        order_id: ORDER.into(),
        station_id: STATION.into(),
        category: "health_environment".into(),
        description: DESCRIPTION.into(),
        location: yongfu_lane(),
        contact_phone: PHONE.into(),
        wanted_time: Some(WANTED),
        on_behalf_of: None,
    }
}

impl From<Form> for Action {
    fn from(form: Form) -> Action {
        Action::Place {
            order_id: form.order_id,
            station_id: form.station_id,
            category: form.category,
            description: form.description,
            location: form.location,
            contact_phone: form.contact_phone,
            wanted_time: form.wanted_time,
            on_behalf_of: form.on_behalf_of,
            required_volunteers: None,
            workflow: None,
        }
    }
}

impl Who {
    fn at(mut self, at: OffsetDateTime) -> Who {
        self.at = at;
        self
    }

    fn does(&self, action: Action) -> Command {
        Command {
            meta: CommandMeta {
                actor: self.actor.clone(),
                at: self.at,
                command_id: format!("cmd-{}-{}", self.actor.id, self.at.unix_timestamp()),
                correlation_id: format!("corr-{ORDER}"),
                causation_id: None,
            },
            action,
        }
    }

    fn places(&self, form: Form) -> Command {
        self.does(form.into())
    }
    /// 制单: staff place the order for a resident.
    fn places_on_behalf_of(&self, resident: &str, form: Form) -> Command {
        self.places(Form {
            on_behalf_of: Some(resident.into()),
            ..form
        })
    }
    fn accepts_into_queue(&self) -> Command {
        self.does(Action::Triage {
            accept: true,
            reason: String::new(),
        })
    }
    fn rejects(&self, reason: &str) -> Command {
        self.does(Action::Triage {
            accept: false,
            reason: reason.into(),
        })
    }
    fn dispatches_to(&self, assignee: Assignee) -> Command {
        self.does(Action::Dispatch {
            assignee,
            reason: "就近派单".into(),
        })
    }
    fn accepts_for(&self, team: &Assignee) -> Command {
        self.does(Action::Accept {
            team_id: team.team_id.clone(),
            member: None,
        })
    }
    fn declines_for(&self, team: &Assignee, reason: &str) -> Command {
        self.does(Action::Decline {
            team_id: team.team_id.clone(),
            reason: reason.into(),
        })
    }
    fn checks_in(&self) -> Command {
        self.checks_in_at(yongfu_lane())
    }
    fn checks_in_at(&self, location: Location) -> Command {
        self.does(Action::CheckIn { location })
    }
    fn checks_out(&self) -> Command {
        self.does(Action::CheckOut {
            location: yongfu_lane(),
        })
    }
    fn completes(&self, note: &str, photos: &[&str]) -> Command {
        self.does(Action::Complete {
            note: note.into(),
            photos: photos.iter().map(|p| (*p).to_owned()).collect(),
        })
    }
    fn reviews(&self, rating: u32, comment: &str) -> Command {
        self.does(Action::Review {
            rating,
            comment: comment.into(),
        })
    }
    fn closes(&self) -> Command {
        self.does(Action::Close)
    }
    fn cancels(&self, reason: &str) -> Command {
        self.does(Action::Cancel {
            reason: reason.into(),
        })
    }
}

// What already happened, each at its own time. `.at(..)` moves a fact to another time.

trait HappenedAt {
    fn at(self, at: OffsetDateTime) -> Self;
}

impl HappenedAt for OrderEvent {
    fn at(mut self, at: OffsetDateTime) -> OrderEvent {
        self.at = at;
        self
    }
}

fn event(at: OffsetDateTime, change: OrderChange) -> OrderEvent {
    OrderEvent::new(at, change)
}

/// What r1 placing `form()` records.
fn order_placed(requester_id: &str, placed_by_staff: bool) -> OrderChange {
    OrderChange::OrderPlaced {
        order_id: ORDER.into(),
        requester_id: requester_id.into(),
        station_id: STATION.into(),
        category: Category::HealthEnvironment,
        description: DESCRIPTION.into(),
        location: yongfu_lane(),
        contact_phone_masked: PHONE_MASKED.into(),
        wanted_time: Some(WANTED),
        placed_by_staff,
        workflow: crate::definition::DefinitionId::dispatched_order_v1(),
        required_volunteers: 1,
        activity: false,
    }
}
fn order_dispatched(assignee: Assignee) -> OrderChange {
    OrderChange::OrderDispatched {
        assignee,
        reason: "就近派单".into(),
    }
}
fn order_accepted(volunteer: &Who, team: &Assignee) -> OrderChange {
    OrderChange::OrderAccepted {
        volunteer_id: volunteer.actor.id.clone(),
        team_id: team.team_id.clone(),
    }
}
fn order_declined(
    volunteer: &Who,
    team: &Assignee,
    reason: &str,
    returned_after_accept: bool,
) -> OrderChange {
    OrderChange::OrderDeclined {
        volunteer_id: volunteer.actor.id.clone(),
        team_id: team.team_id.clone(),
        reason: reason.into(),
        returned_after_accept,
    }
}
fn checked_in_change(volunteer: &Who) -> OrderChange {
    OrderChange::VolunteerCheckedIn {
        volunteer_id: volunteer.actor.id.clone(),
        location: yongfu_lane(),
        precise: String::new(),
    }
}
fn checked_out_change(volunteer: &Who, service_minutes: u32) -> OrderChange {
    OrderChange::VolunteerCheckedOut {
        volunteer_id: volunteer.actor.id.clone(),
        location: yongfu_lane(),
        precise: String::new(),
        service_minutes,
    }
}

fn placed() -> OrderEvent {
    event(PLACED_AT, order_placed("r1", false))
}
fn triaged() -> OrderEvent {
    event(TRIAGED_AT, OrderChange::OrderTriaged)
}
fn rejected() -> OrderEvent {
    event(
        TRIAGED_AT,
        OrderChange::OrderRejected {
            reason: "不属于服务范围".into(),
        },
    )
}
fn dispatched_to(assignee: Assignee) -> OrderEvent {
    event(DISPATCHED_AT, order_dispatched(assignee))
}
fn accepted_by(volunteer: &Who, team: &Assignee) -> OrderEvent {
    event(ACCEPTED_AT, order_accepted(volunteer, team))
}
fn declined_by(volunteer: &Who, team: &Assignee, returned_after_accept: bool) -> OrderEvent {
    event(
        DECLINED_AT,
        order_declined(volunteer, team, "人手不够", returned_after_accept),
    )
}
fn checked_in_by(volunteer: &Who) -> OrderEvent {
    event(CHECKED_IN_AT, checked_in_change(volunteer))
}
fn checked_out_by(volunteer: &Who) -> OrderEvent {
    event(CHECKED_OUT_AT, checked_out_change(volunteer, 95))
}
fn completed() -> OrderEvent {
    event(
        COMPLETED_AT,
        OrderChange::OrderCompleted {
            note: "疏通下水道两处，清理淤泥".into(),
            photos: vec!["photos/before.jpg".into(), "photos/after.jpg".into()],
        },
    )
}
fn reviewed() -> OrderEvent {
    event(
        REVIEWED_AT,
        OrderChange::OrderReviewed {
            rating: 5,
            comment: "满意".into(),
            by_default: false,
            reviewer_id: String::new(),
        },
    )
}
fn closed() -> OrderEvent {
    event(CLOSED_AT, OrderChange::OrderClosed)
}
fn cancelled() -> OrderEvent {
    event(
        CANCELLED_AT,
        OrderChange::OrderCancelled {
            reason: "已自行解决".into(),
        },
    )
}

/// The shortest history that leaves an order in `status` (dispatched to `team_a`, accepted by
/// `v1`), read off the transition table one step at a time.
fn history(status: Status) -> Vec<OrderEvent> {
    let after = |before: Status, next: OrderEvent| {
        let mut events = history(before);
        events.push(next);
        events
    };
    match status {
        Status::New => vec![],
        Status::Placed => vec![placed()],
        Status::Triaged => after(Status::Placed, triaged()),
        Status::Rejected => after(Status::Placed, rejected()),
        Status::Dispatched => after(Status::Triaged, dispatched_to(team_a())),
        Status::Accepted => after(Status::Dispatched, accepted_by(&v1(), &team_a())),
        Status::InService => after(Status::Accepted, checked_in_by(&v1())),
        Status::Served => after(Status::InService, checked_out_by(&v1())),
        Status::Completed => after(Status::Served, completed()),
        Status::Reviewed => after(Status::Completed, reviewed()),
        Status::Closed => after(Status::Reviewed, closed()),
        Status::Cancelled => after(Status::Placed, cancelled()),
        Status::Merged => after(
            Status::Placed,
            event(
                TRIAGED_AT,
                OrderChange::OrderMerged {
                    into: "order-earlier".into(),
                    reason: String::new(),
                },
            ),
        ),
        Status::Published | Status::Claimed => {
            unreachable!("open-claim states: see the claim specs")
        }
    }
}

#[test]
fn each_history_leaves_the_order_in_its_status() {
    for &status in crate::dispatched::TABLE.states {
        assert_eq!(fold(&history(status)).status, status);
    }
}

/// The read model stores each order's state as JSON without its fields at their defaults: every
/// state reads back equal, a state written with every field (a read model of version 8) still
/// reads, and a just-placed order's JSON has no `null`, `""`, `[]` or `0` in it.
#[test]
fn each_state_reads_back_from_its_stored_json() {
    for &status in crate::dispatched::TABLE.states {
        let state = fold(&history(status));
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(
            serde_json::from_str::<OrderState>(&json).unwrap(),
            state,
            "{json}"
        );
        let mut every_field = serde_json::to_value(&state).unwrap();
        for (field, value) in [
            ("wanted_time", serde_json::Value::Null),
            ("rating", serde_json::Value::Null),
            ("photos", serde_json::json!([])),
            ("reworks", serde_json::json!(0)),
            ("activity", serde_json::json!(false)),
            ("follow_up_note", serde_json::json!("")),
        ] {
            every_field
                .as_object_mut()
                .unwrap()
                .entry(field)
                .or_insert(value);
        }
        assert_eq!(
            serde_json::from_value::<OrderState>(every_field).unwrap(),
            state
        );
    }
    let placed = serde_json::to_string(&fold(&history(Status::Placed))).unwrap();
    for default in ["null", "\"\"", "[]", ":0,", ":false"] {
        assert!(!placed.contains(default), "{default} in {placed}");
    }
}

// ---------------------------------------------------------------------------------------------
// 点单: placing an order
// ---------------------------------------------------------------------------------------------

#[test]
fn a_resident_places_an_order_for_themself() {
    given_a_new_order()
        .when(r1().at(PLACED_AT).places(form()))
        .then(&[order_placed("r1", false)]);
}

#[test]
fn a_placed_order_records_a_trimmed_description_and_only_the_masked_phone() {
    let state = given_a_new_order()
        .when(r1().places(Form {
            description: format!("  {DESCRIPTION}\n"),
            ..form()
        }))
        .then(&[order_placed("r1", false)]);
    assert_eq!(state.status, Status::Placed);
    assert_eq!(state.requester_id, "r1");
    assert_eq!(state.contact_phone_masked, PHONE_MASKED);
    assert_eq!(state.placed_at, Some(NOW));
}

#[test]
fn a_station_head_places_an_order_on_behalf_of_a_resident() {
    // 制单: the order is the resident's; the event remembers staff typed it in.
    let state = given_a_new_order()
        .when(head().places_on_behalf_of("r1", form()))
        .then(&[order_placed("r1", true)]);
    assert_eq!(state.requester_id, "r1");
}

#[test]
fn an_order_without_a_wanted_time_is_placed_without_one() {
    let state = given_a_new_order()
        .when(r1().places(Form {
            wanted_time: None,
            ..form()
        }))
        .then(&[OrderChange::OrderPlaced {
            order_id: ORDER.into(),
            requester_id: "r1".into(),
            station_id: STATION.into(),
            category: Category::HealthEnvironment,
            description: DESCRIPTION.into(),
            location: yongfu_lane(),
            contact_phone_masked: PHONE_MASKED.into(),
            wanted_time: None,
            placed_by_staff: false,
            workflow: crate::definition::DefinitionId::dispatched_order_v1(),
            required_volunteers: 1,
            activity: false,
        }]);
    assert_eq!(state.wanted_time, None);
}

#[test]
fn placing_an_order_that_exists_is_illegal() {
    given(&[placed()])
        .when(r1().places(form()))
        .then_error(illegal("点单", Status::Placed));
}

#[test]
fn a_resident_may_not_place_on_behalf_of_someone_else() {
    given_a_new_order()
        .when(r1().places_on_behalf_of("r2", form()))
        .then_forbidden();
}

#[test]
fn staff_placing_an_order_must_name_the_resident() {
    given_a_new_order()
        .when(head().places(form()))
        .then_forbidden();
}

#[test]
fn staff_must_name_the_resident_by_a_valid_id() {
    given_a_new_order()
        .when(head().places_on_behalf_of("李 阿姨", form()))
        .then_invalid("on_behalf_of");
}

#[test]
fn volunteers_and_auditors_may_not_place_orders() {
    for someone in [
        v1(),
        who("auditor", Role::Auditor),
        who("sys", Role::System),
    ] {
        given_a_new_order()
            .when(someone.places(form()))
            .then_forbidden();
    }
}

#[test]
fn an_order_needs_valid_ids() {
    given_a_new_order()
        .when(r1().places(Form {
            order_id: String::new(),
            ..form()
        }))
        .then_invalid("order_id");
    given_a_new_order()
        .when(r1().places(Form {
            station_id: "车站路".into(),
            ..form()
        }))
        .then_invalid("station_id");
}

#[test]
fn an_unknown_category_is_refused() {
    given_a_new_order()
        .when(r1().places(Form {
            category: "astrology".into(),
            ..form()
        }))
        .then_invalid("category");
}

#[test]
fn every_known_category_can_be_ordered() {
    for &category in Category::ALL {
        let state = given_a_new_order()
            .when(r1().places(Form {
                category: category.code().into(),
                ..form()
            }))
            .then(&[OrderChange::OrderPlaced {
                order_id: ORDER.into(),
                requester_id: "r1".into(),
                station_id: STATION.into(),
                category,
                description: DESCRIPTION.into(),
                location: yongfu_lane(),
                contact_phone_masked: PHONE_MASKED.into(),
                wanted_time: Some(WANTED),
                placed_by_staff: false,
                workflow: crate::definition::DefinitionId::dispatched_order_v1(),
                required_volunteers: 1,
                activity: false,
            }]);
        assert_eq!(state.category, Some(category));
    }
}

#[test]
fn an_empty_or_blank_description_is_refused() {
    for description in ["", "   ", "\n\t　"] {
        given_a_new_order()
            .when(r1().places(Form {
                description: description.into(),
                ..form()
            }))
            .then_invalid("description");
    }
}

#[test]
fn a_description_is_measured_in_characters_not_bytes() {
    // 500 Chinese characters are 1500 bytes, and still fit.
    let longest = "堵".repeat(MAX_DESCRIPTION_CHARS);
    given_a_new_order()
        .when(r1().places(Form {
            description: longest.clone(),
            ..form()
        }))
        .then(&[{
            let mut change = order_placed("r1", false);
            if let OrderChange::OrderPlaced { description, .. } = &mut change {
                *description = longest;
            }
            change
        }]);
}

#[test]
fn a_description_of_501_characters_is_refused() {
    given_a_new_order()
        .when(r1().places(Form {
            description: "堵".repeat(MAX_DESCRIPTION_CHARS + 1),
            ..form()
        }))
        .then_invalid("description");
}

#[test]
fn coordinates_outside_china_are_refused() {
    let swapped = Location {
        lat: 114.32,
        lng: 29.85,
        ..yongfu_lane()
    };
    let not_a_number = Location {
        lat: f64::NAN,
        ..yongfu_lane()
    };
    let infinite = Location {
        lng: f64::INFINITY,
        ..yongfu_lane()
    };
    let null_island = Location {
        lat: 0.0,
        lng: 0.0,
        ..yongfu_lane()
    };
    for location in [swapped, not_a_number, infinite, null_island] {
        given_a_new_order()
            .when(r1().places(Form { location, ..form() }))
            .then_invalid("location");
    }
}

#[test]
fn an_address_longer_than_200_characters_is_refused() {
    given_a_new_order()
        .when(r1().places(Form {
            location: Location {
                address: "巷".repeat(201),
                ..yongfu_lane()
            },
            ..form()
        }))
        .then_invalid("location");
}

#[test]
fn a_phone_must_be_an_eleven_digit_mobile_number() {
    for phone in [
        "",
        "1381234567",
        "138123456789",
        "23812345678",
        "1381234567a",
        "+8613812345",
    ] {
        given_a_new_order()
            .when(r1().places(Form {
                contact_phone: phone.into(),
                ..form()
            }))
            .then_invalid("contact_phone");
    }
}

// ---------------------------------------------------------------------------------------------
// 审单: triage
// ---------------------------------------------------------------------------------------------

#[test]
fn the_station_head_accepts_a_placed_order_into_the_queue() {
    given(&[placed()])
        .when(head().accepts_into_queue())
        .then(&[OrderChange::OrderTriaged]);
}

#[test]
fn the_station_head_rejects_a_placed_order_with_a_reason() {
    let state = given(&[placed()])
        .when(head().rejects("  不属于服务范围 "))
        .then(&[OrderChange::OrderRejected {
            reason: "不属于服务范围".into(),
        }]);
    assert_eq!(state.status, Status::Rejected);
    assert_eq!(state.reject_reason, "不属于服务范围");
    assert!(state.status.is_final());
}

#[test]
fn a_rejection_needs_a_reason() {
    for reason in ["", "  "] {
        given(&[placed()])
            .when(head().rejects(reason))
            .then_invalid("reason");
    }
}

#[test]
fn only_a_station_head_triages() {
    for someone in [r1(), r2(), v1()] {
        given(&[placed()])
            .when(someone.accepts_into_queue())
            .then_forbidden();
        given(&[placed()])
            .when(someone.rejects("不想做"))
            .then_forbidden();
    }
}

// ---------------------------------------------------------------------------------------------
// 派单: dispatch and re-dispatch
// ---------------------------------------------------------------------------------------------

#[test]
fn the_station_head_dispatches_a_triaged_order_to_a_team() {
    let state = given(&[placed(), triaged()])
        .when(head().at(DISPATCHED_AT).dispatches_to(team_a()))
        .then(&[order_dispatched(team_a())]);
    assert_eq!(state.assignee, Some(team_a()));
    assert_eq!(state.dispatched_at, Some(DISPATCHED_AT));
}

#[test]
fn the_station_head_redispatches_a_dispatched_order_to_another_team() {
    // 层层派单: nobody at the station can do it, so it goes up to a helper unit.
    let state = given(&[placed(), triaged(), dispatched_to(team_a())])
        .when(head().at(REDISPATCHED_AT).dispatches_to(audit_bureau()))
        .then(&[order_dispatched(audit_bureau())]);
    assert_eq!(state.assignee, Some(audit_bureau()));
}

#[test]
fn dispatching_to_the_team_already_assigned_is_refused() {
    given(&[placed(), triaged(), dispatched_to(team_a())])
        .when(head().dispatches_to(team_a()))
        .then_conflict("team_id");
}

#[test]
fn a_dispatch_reason_may_be_empty_but_not_too_long() {
    given(&[placed(), triaged()])
        .when(head().does(Action::Dispatch {
            assignee: team_a(),
            reason: "   ".into(),
        }))
        .then(&[OrderChange::OrderDispatched {
            assignee: team_a(),
            reason: String::new(),
        }]);
    given(&[placed(), triaged()])
        .when(head().does(Action::Dispatch {
            assignee: team_a(),
            reason: "因".repeat(201),
        }))
        .then_invalid("reason");
}

#[test]
fn after_a_decline_the_order_may_go_back_to_the_same_team() {
    given(&[
        placed(),
        triaged(),
        dispatched_to(team_a()),
        declined_by(&v2(), &team_a(), false),
    ])
    .when(head().dispatches_to(team_a()))
    .then(&[order_dispatched(team_a())]);
}

#[test]
fn only_a_station_head_dispatches() {
    for someone in [r1(), v1()] {
        given(&[placed(), triaged()])
            .when(someone.dispatches_to(team_a()))
            .then_forbidden();
    }
}

// ---------------------------------------------------------------------------------------------
// 接单 / 退单: accept, decline, return
// ---------------------------------------------------------------------------------------------

#[test]
fn a_volunteer_of_the_assigned_team_accepts() {
    let state = given(&history(Status::Dispatched))
        .when(v1().at(ACCEPTED_AT).accepts_for(&team_a()))
        .then(&[order_accepted(&v1(), &team_a())]);
    assert_eq!(state.accepted_by, Some(("v1".into(), "team-a".into())));
    assert_eq!(state.accepted_at, Some(ACCEPTED_AT));
}

#[test]
fn a_volunteer_may_not_accept_for_a_team_the_order_was_not_dispatched_to() {
    given(&history(Status::Dispatched))
        .when(v2().accepts_for(&audit_bureau()))
        .then_forbidden();
}

#[test]
fn only_a_volunteer_accepts() {
    for someone in [r1(), head()] {
        given(&history(Status::Dispatched))
            .when(someone.accepts_for(&team_a()))
            .then_forbidden();
    }
}

#[test]
fn once_accepted_nobody_else_can_accept() {
    // The loser of an accept race is told plainly: 已被接单.
    for status in [Status::Accepted, Status::InService, Status::Completed] {
        given(&history(status))
            .when(v2().accepts_for(&team_a()))
            .then_error(DomainError::AlreadyAccepted);
    }
}

#[test]
fn a_volunteer_of_the_assigned_team_declines_a_dispatched_order() {
    let state = given(&history(Status::Dispatched))
        .when(v2().declines_for(&team_a(), " 人手不够 "))
        .then(&[order_declined(&v2(), &team_a(), "人手不够", false)]);
    assert_eq!(state.status, Status::Triaged);
}

#[test]
fn the_accepting_volunteer_returns_an_accepted_order() {
    // 退单 after accepting, before check-in.
    let state = given(&history(Status::Accepted))
        .when(v1().declines_for(&team_a(), "临时有事"))
        .then(&[order_declined(&v1(), &team_a(), "临时有事", true)]);
    assert_eq!(state.status, Status::Triaged);
}

#[test]
fn a_decline_needs_a_reason() {
    given(&history(Status::Dispatched))
        .when(v2().declines_for(&team_a(), " "))
        .then_invalid("reason");
}

#[test]
fn a_volunteer_of_another_team_may_not_decline() {
    given(&history(Status::Dispatched))
        .when(v2().declines_for(&audit_bureau(), "不是我们的"))
        .then_forbidden();
}

#[test]
fn only_the_accepting_volunteer_returns_an_accepted_order() {
    given(&history(Status::Accepted))
        .when(v2().declines_for(&team_a(), "他不去了"))
        .then_forbidden();
}

#[test]
fn only_a_volunteer_declines() {
    given(&history(Status::Dispatched))
        .when(head().declines_for(&team_a(), "撤回"))
        .then_forbidden();
}

// ---------------------------------------------------------------------------------------------
// 签到 / 签退 / 办结: serve and complete
// ---------------------------------------------------------------------------------------------

#[test]
fn the_accepting_volunteer_checks_in() {
    let state = given(&history(Status::Accepted))
        .when(v1().at(CHECKED_IN_AT).checks_in())
        .then(&[checked_in_change(&v1())]);
    assert_eq!(state.checked_in_at, Some(CHECKED_IN_AT));
}

#[test]
fn checking_in_at_an_impossible_place_is_refused() {
    given(&history(Status::Accepted))
        .when(v1().checks_in_at(Location {
            lat: 114.32,
            lng: 29.85,
            ..yongfu_lane()
        }))
        .then_invalid("location");
}

#[test]
fn checking_out_credits_the_minutes_since_check_in() {
    // Checked in at 14:00, out at 15:35.
    let state = given(&history(Status::InService))
        .when(v1().at(CHECKED_OUT_AT).checks_out())
        .then(&[checked_out_change(&v1(), 95)]);
    assert_eq!(state.service_minutes, 95);
    assert_eq!(state.checked_out_at, Some(CHECKED_OUT_AT));
}

#[test]
fn service_minutes_round_down_to_whole_minutes() {
    given(&history(Status::InService))
        .when(v1().at(datetime!(2024-06-04 14:59:59 +8)).checks_out())
        .then(&[checked_out_change(&v1(), 59)]);
}

#[test]
fn service_minutes_do_not_depend_on_the_time_zone_the_clock_reports() {
    // 15:35 in Beijing is 07:35 UTC.
    given(&history(Status::InService))
        .when(v1().at(datetime!(2024-06-04 07:35 UTC)).checks_out())
        .then(&[checked_out_change(&v1(), 95)]);
}

#[test]
fn a_clock_running_backwards_credits_no_minutes() {
    given(&history(Status::InService))
        .when(v1().at(datetime!(2024-06-04 13:00 +8)).checks_out())
        .then(&[checked_out_change(&v1(), 0)]);
}

#[test]
fn checking_out_before_checking_in_is_illegal() {
    given(&history(Status::Accepted))
        .when(v1().checks_out())
        .then_error(illegal("签退", Status::Accepted));
}

#[test]
fn the_accepting_volunteer_completes_with_a_note_and_photos() {
    let state = given(&history(Status::Served))
        .when(v1().at(COMPLETED_AT).completes(
            " 疏通下水道两处，清理淤泥 ",
            &["photos/before.jpg", "photos/after.jpg"],
        ))
        .then(&[completed().change]);
    assert_eq!(state.completed_at, Some(COMPLETED_AT));
    assert_eq!(state.photos.len(), 2);
}

#[test]
fn completing_without_photos_is_fine() {
    given(&history(Status::Served))
        .when(v1().completes("已处理", &[]))
        .then(&[OrderChange::OrderCompleted {
            note: "已处理".into(),
            photos: vec![],
        }]);
}

#[test]
fn completing_needs_a_note() {
    for note in ["", "   "] {
        given(&history(Status::Served))
            .when(v1().completes(note, &["photos/after.jpg"]))
            .then_invalid("note");
    }
}

#[test]
fn completing_with_nine_photos_is_fine_and_ten_are_too_many() {
    let nine: Vec<String> = (1..=MAX_PHOTOS)
        .map(|i| format!("photos/{i}.jpg"))
        .collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    given(&history(Status::Served))
        .when(v1().completes("已处理", &nine))
        .then(&[OrderChange::OrderCompleted {
            note: "已处理".into(),
            photos: nine.iter().map(|p| (*p).to_owned()).collect(),
        }]);

    let ten: Vec<String> = (1..=MAX_PHOTOS + 1)
        .map(|i| format!("photos/{i}.jpg"))
        .collect();
    let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
    given(&history(Status::Served))
        .when(v1().completes("已处理", &ten))
        .then_invalid("photos");
}

#[test]
fn an_empty_photo_reference_is_refused() {
    given(&history(Status::Served))
        .when(v1().completes("已处理", &["photos/after.jpg", " "]))
        .then_invalid("photos");
}

#[test]
fn only_the_accepting_volunteer_checks_in_checks_out_and_completes() {
    for someone in [v2(), r1(), head()] {
        given(&history(Status::Accepted))
            .when(someone.checks_in())
            .then_forbidden();
        given(&history(Status::InService))
            .when(someone.checks_out())
            .then_forbidden();
        given(&history(Status::Served))
            .when(someone.completes("已处理", &[]))
            .then_forbidden();
    }
}

// ---------------------------------------------------------------------------------------------
// 评单 / 归档: review and close
// ---------------------------------------------------------------------------------------------

#[test]
fn the_requester_reviews_a_completed_order() {
    let state = given(&history(Status::Completed))
        .when(r1().at(REVIEWED_AT).reviews(5, " 满意 "))
        .then(&[reviewed().change]);
    assert_eq!(state.rating, Some(5));
    assert_eq!(state.review_comment, "满意");
}

#[test]
fn the_requester_of_an_order_placed_by_staff_reviews_it() {
    let mut events = history(Status::Completed);
    events[0] = event(PLACED_AT, order_placed("r1", true));
    given(&events)
        .when(r1().reviews(4, ""))
        .then(&[OrderChange::OrderReviewed {
            rating: 4,
            comment: String::new(),
            by_default: false,
            reviewer_id: String::new(),
        }]);
}

#[test]
fn ratings_run_from_one_to_five_stars() {
    for rating in 1..=5 {
        given(&history(Status::Completed))
            .when(r1().reviews(rating, ""))
            .then(&[OrderChange::OrderReviewed {
                rating,
                comment: String::new(),
                by_default: false,
                reviewer_id: String::new(),
            }]);
    }
    for rating in [0, 6, u32::MAX] {
        given(&history(Status::Completed))
            .when(r1().reviews(rating, ""))
            .then_invalid("rating");
    }
}

#[test]
fn a_review_comment_longer_than_200_characters_is_refused() {
    given(&history(Status::Completed))
        .when(r1().reviews(3, &"好".repeat(201)))
        .then_invalid("comment");
}

#[test]
fn only_the_requester_reviews() {
    // A neighbour, the head who could have placed it for them, the volunteer who served it.
    for someone in [r2(), head(), v1()] {
        given(&history(Status::Completed))
            .when(someone.reviews(5, "满意"))
            .then_forbidden();
    }
}

#[test]
fn the_requester_acting_in_another_role_may_not_review() {
    given(&history(Status::Completed))
        .when(who("r1", Role::Volunteer).reviews(5, "满意"))
        .then_forbidden();
}

#[test]
fn the_station_head_closes_a_reviewed_order() {
    let state = given(&history(Status::Reviewed))
        .when(head().closes())
        .then(&[OrderChange::OrderClosed]);
    assert!(state.status.is_final());
}

#[test]
fn only_a_station_head_closes() {
    for someone in [r1(), v1()] {
        given(&history(Status::Reviewed))
            .when(someone.closes())
            .then_forbidden();
    }
}

// ---------------------------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------------------------

#[test]
fn the_requester_cancels_before_anyone_accepted() {
    for status in [Status::Placed, Status::Triaged, Status::Dispatched] {
        let state = given(&history(status))
            .when(r1().cancels(" 已自行解决 "))
            .then(&[OrderChange::OrderCancelled {
                reason: "已自行解决".into(),
            }]);
        assert_eq!(state.status, Status::Cancelled);
        assert_eq!(state.cancel_reason, "已自行解决");
    }
}

#[test]
fn a_cancel_reason_is_optional() {
    given(&[placed()])
        .when(r1().cancels(""))
        .then(&[OrderChange::OrderCancelled {
            reason: String::new(),
        }]);
}

#[test]
fn only_the_requester_cancels() {
    for status in [Status::Placed, Status::Triaged, Status::Dispatched] {
        for someone in [r2(), head(), v1()] {
            given(&history(status))
                .when(someone.cancels("不需要了"))
                .then_forbidden();
        }
    }
}

#[test]
fn once_accepted_the_order_can_no_longer_be_cancelled() {
    given(&history(Status::Accepted))
        .when(r1().cancels("不需要了"))
        .then_error(illegal("取消", Status::Accepted));
}

// ---------------------------------------------------------------------------------------------
// evolve: what the state remembers
// ---------------------------------------------------------------------------------------------

#[test]
fn each_decline_or_return_is_counted() {
    let state = fold(&[
        placed(),
        triaged(),
        dispatched_to(team_a()),
        declined_by(&v2(), &team_a(), false),
        dispatched_to(audit_bureau()).at(REDISPATCHED_AT),
        accepted_by(&who("auditor-7", Role::Volunteer), &audit_bureau()),
        declined_by(&who("auditor-7", Role::Volunteer), &audit_bureau(), true),
    ]);
    assert_eq!(state.declines, 2);
    assert_eq!(state.status, Status::Triaged);
}

#[test]
fn a_decline_forgets_the_assignee_and_who_accepted() {
    let accepted = fold(&history(Status::Accepted));
    assert_eq!(accepted.assignee, Some(team_a()));
    assert_eq!(accepted.accepted_by, Some(("v1".into(), "team-a".into())));

    let returned = evolve(accepted, &declined_by(&v1(), &team_a(), true));
    assert_eq!(returned.status, Status::Triaged);
    assert_eq!(returned.assignee, None);
    assert_eq!(returned.accepted_by, None);
    assert_eq!(returned.accepted_at, None);
    assert_eq!(returned.declines, 1);
    assert_eq!(returned.updated_at, Some(DECLINED_AT));
}

#[test]
fn a_returned_order_must_be_dispatched_again_before_anyone_accepts() {
    given(&[
        placed(),
        triaged(),
        dispatched_to(team_a()),
        accepted_by(&v1(), &team_a()),
        declined_by(&v1(), &team_a(), true),
    ])
    .when(v2().accepts_for(&team_a()))
    .then_error(illegal("接单", Status::Triaged));
}

#[test]
fn redispatching_keeps_the_first_dispatch_time() {
    // Time to dispatch is measured to the first dispatch, however often the order moves on.
    let state = fold(&[
        placed(),
        triaged(),
        dispatched_to(team_a()),
        dispatched_to(audit_bureau()).at(REDISPATCHED_AT),
    ]);
    assert_eq!(state.dispatched_at, Some(DISPATCHED_AT));
    assert_eq!(state.assignee, Some(audit_bureau()));
    assert_eq!(state.updated_at, Some(REDISPATCHED_AT));

    let after_a_decline = fold(&[
        placed(),
        triaged(),
        dispatched_to(team_a()),
        declined_by(&v2(), &team_a(), false),
        dispatched_to(audit_bureau()).at(REDISPATCHED_AT),
    ]);
    assert_eq!(after_a_decline.dispatched_at, Some(DISPATCHED_AT));
}

#[test]
fn the_whole_story_folds_into_the_detail_view() {
    let state = fold(&history(Status::Closed));
    assert_eq!(
        state,
        OrderState {
            status: Status::Closed,
            workflow: Some(crate::definition::DefinitionId::dispatched_order_v1()),
            order_id: ORDER.into(),
            requester_id: "r1".into(),
            station_id: STATION.into(),
            category: Some(Category::HealthEnvironment),
            description: DESCRIPTION.into(),
            location: Some(yongfu_lane()),
            contact_phone_masked: PHONE_MASKED.into(),
            wanted_time: Some(WANTED),
            placed_at: Some(PLACED_AT),
            updated_at: Some(CLOSED_AT),
            assignee: Some(team_a()),
            dispatched_at: Some(DISPATCHED_AT),
            accepted_by: Some(("v1".into(), "team-a".into())),
            accepted_at: Some(ACCEPTED_AT),
            checked_in_at: Some(CHECKED_IN_AT),
            checked_out_at: Some(CHECKED_OUT_AT),
            service_minutes: 95,
            completed_at: Some(COMPLETED_AT),
            completion_note: "疏通下水道两处，清理淤泥".into(),
            photos: vec!["photos/before.jpg".into(), "photos/after.jpg".into()],
            rating: Some(5),
            review_comment: "满意".into(),
            reject_reason: String::new(),
            cancel_reason: String::new(),
            declines: 0,
            deadlines: Default::default(),
            required_volunteers: 1,
            activity: false,
            claims: Default::default(),
            followers: Vec::new(),
            reviewed_by: vec!["r1".into()],
            round_ratings: vec![5],
            reworks: 0,
            follow_up_note: String::new(),
            merged_into: None,
        }
    );
}

#[test]
fn the_whole_story_as_decided() {
    // 点单 → 审单 → 派单 → 接单 → 签到 → 签退 → 办结 → 评单 → 归档, each step deciding on the
    // state the previous steps left.
    let steps = [
        r1().at(PLACED_AT).places(form()),
        head().at(TRIAGED_AT).accepts_into_queue(),
        head().at(DISPATCHED_AT).dispatches_to(team_a()),
        v1().at(ACCEPTED_AT).accepts_for(&team_a()),
        v1().at(CHECKED_IN_AT).checks_in(),
        v1().at(CHECKED_OUT_AT).checks_out(),
        v1().at(COMPLETED_AT).completes(
            "疏通下水道两处，清理淤泥",
            &["photos/before.jpg", "photos/after.jpg"],
        ),
        r1().at(REVIEWED_AT).reviews(5, "满意"),
        head().at(CLOSED_AT).closes(),
    ];
    let mut events = Vec::new();
    for command in steps {
        let state = fold(&events);
        events.extend(
            decide(definition_for(&state, &command.action), &state, &command)
                .expect("each step is legal"),
        );
    }
    assert_eq!(events, history(Status::Closed));
}

// ---------------------------------------------------------------------------------------------
// Events as stored: JSON
// ---------------------------------------------------------------------------------------------

/// One of every change, each filled in.
fn one_change_of_each_kind() -> Vec<OrderChange> {
    vec![
        order_placed("r1", false),
        {
            let mut by_staff_whenever = order_placed("r1", true);
            if let OrderChange::OrderPlaced { wanted_time, .. } = &mut by_staff_whenever {
                *wanted_time = None;
            }
            by_staff_whenever
        },
        OrderChange::OrderTriaged,
        rejected().change,
        order_dispatched(team_a()),
        order_dispatched(audit_bureau()),
        order_accepted(&v1(), &team_a()),
        order_declined(&v1(), &team_a(), "临时有事", true),
        checked_in_change(&v1()),
        checked_out_change(&v1(), 95),
        completed().change,
        reviewed().change,
        OrderChange::OrderClosed,
        cancelled().change,
        OrderChange::DeadlineScheduled {
            timer: crate::definition::Timer {
                deadline: "sign_for".into(),
                limit: "1 working day".into(),
                started_at: NOW,
                warn_at: NOW,
                due_at: NOW,
            },
        },
        OrderChange::DeadlineCleared {
            deadline: "sign_for".into(),
        },
        OrderChange::DeadlineWarned {
            deadline: "sign_for".into(),
        },
        OrderChange::DeadlineOverdue {
            deadline: "sign_for".into(),
            action: "督办".into(),
        },
        OrderChange::TimerIgnored {
            deadline: "sign_for".into(),
            phase: crate::order::TimerPhase::Due,
            reason: "已督办".into(),
        },
        OrderChange::ExtensionRequested {
            deadline: "complete".into(),
            until: NOW,
            reason: "材料未到".into(),
        },
        OrderChange::ExtensionApproved {
            timer: crate::definition::Timer {
                deadline: "complete".into(),
                limit: "延期".into(),
                started_at: NOW,
                warn_at: NOW,
                due_at: NOW,
            },
        },
        OrderChange::ExtensionDenied {
            deadline: "complete".into(),
            reason: "无正当理由".into(),
        },
        OrderChange::Claimed {
            volunteer_id: "v1".into(),
            team_id: "team-a".into(),
            filled: true,
        },
        OrderChange::Unclaimed {
            volunteer_id: "v1".into(),
            reason: "临时有事".into(),
        },
        OrderChange::OrderReworked {
            assignee: team_a(),
            reason: "排水仍不畅".into(),
        },
        OrderChange::FollowUpRecorded {
            note: "已电话回访，居民认可".into(),
        },
        OrderChange::OrderMerged {
            into: "order-earlier".into(),
            reason: "同一积水点".into(),
        },
        OrderChange::DuplicateMerged {
            order_id: "order-later".into(),
            requester_id: "r2".into(),
            also: vec![],
        },
    ]
}

/// Each change as stored: alone, and with the deadlines it stops and starts.
fn stored_forms(changes: Vec<OrderChange>) -> Vec<OrderEvent> {
    let clocks = crate::order::Clocks {
        stopped: vec!["triage".into()],
        started: vec![crate::definition::Timer {
            deadline: "sign_for".into(),
            limit: "1 working day".into(),
            started_at: NOW,
            warn_at: NOW,
            due_at: NOW,
        }],
    };
    changes
        .into_iter()
        .flat_map(|change| {
            let mut moved = OrderEvent::new(NOW, change.clone());
            moved.clocks = clocks.clone();
            [OrderEvent::new(NOW, change), moved]
        })
        .collect()
}

fn variant_index(change: &OrderChange) -> usize {
    match change {
        OrderChange::OrderPlaced { .. } => 0,
        OrderChange::OrderTriaged => 1,
        OrderChange::OrderRejected { .. } => 2,
        OrderChange::OrderDispatched { .. } => 3,
        OrderChange::OrderAccepted { .. } => 4,
        OrderChange::OrderDeclined { .. } => 5,
        OrderChange::VolunteerCheckedIn { .. } => 6,
        OrderChange::VolunteerCheckedOut { .. } => 7,
        OrderChange::OrderCompleted { .. } => 8,
        OrderChange::OrderReviewed { .. } => 9,
        OrderChange::OrderClosed => 10,
        OrderChange::OrderCancelled { .. } => 11,
        OrderChange::DeadlineScheduled { .. } => 12,
        OrderChange::DeadlineCleared { .. } => 13,
        OrderChange::DeadlineWarned { .. } => 14,
        OrderChange::DeadlineOverdue { .. } => 15,
        OrderChange::TimerIgnored { .. } => 16,
        OrderChange::ExtensionRequested { .. } => 17,
        OrderChange::ExtensionApproved { .. } => 18,
        OrderChange::ExtensionDenied { .. } => 19,
        OrderChange::Claimed { .. } => 20,
        OrderChange::Unclaimed { .. } => 21,
        OrderChange::OrderReworked { .. } => 22,
        OrderChange::FollowUpRecorded { .. } => 23,
        OrderChange::OrderMerged { .. } => 24,
        OrderChange::DuplicateMerged { .. } => 25,
    }
}

#[test]
fn every_change_serializes_with_its_event_type_and_round_trips() {
    let changes = one_change_of_each_kind();
    let covered: BTreeSet<usize> = changes.iter().map(variant_index).collect();
    assert_eq!(covered.len(), 26, "every OrderChange variant is exercised");

    for stored in stored_forms(changes) {
        let change = stored.change.clone();
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["type"], change.event_type(), "{json}");
        assert_eq!(json["at"], "2024-06-10T10:00:00+08:00", "{json}");
        let back: OrderEvent = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, stored, "{json}");

        let text = serde_json::to_string(&stored).unwrap();
        let back: OrderEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, stored, "{text}");

        // The bare change carries the same tag.
        let bare = serde_json::to_value(&change).unwrap();
        assert_eq!(bare["type"], change.event_type());
    }
}

/// The one-pass decoder (`at` and `type` first, as written) agrees with serde's derived
/// decoding of the same shape on every kind of change, in any key order, and refuses what it
/// refuses.
#[test]
fn stored_events_decode_as_the_derived_shape_in_any_key_order() {
    use super::event::decode::Derived;
    let decode = |text: &str| serde_json::from_str::<OrderEvent>(text);
    let derived = |text: &str| serde_json::from_str::<Derived>(text).map(OrderEvent::from);
    for stored in stored_forms(one_change_of_each_kind()) {
        let written = serde_json::to_string(&stored).unwrap();
        assert!(written.starts_with(r#"{"at":"#), "{written}");
        let serde_json::Value::Object(fields) = serde_json::to_value(&stored).unwrap() else {
            panic!("an event is an object");
        };
        // As written; `type` before `at`; `at` last; `type` last; with a field nobody knows.
        let mut orders: Vec<Vec<(String, serde_json::Value)>> = Vec::new();
        let entries: Vec<(String, serde_json::Value)> = fields.into_iter().collect();
        let key = |k: &str| entries.iter().find(|(n, _)| n == k).cloned().unwrap();
        let others: Vec<_> = entries
            .iter()
            .filter(|(n, _)| n != "at" && n != "type")
            .cloned()
            .collect();
        orders.push([vec![key("at"), key("type")], others.clone()].concat());
        orders.push([vec![key("type"), key("at")], others.clone()].concat());
        orders.push([vec![key("type")], others.clone(), vec![key("at")]].concat());
        orders.push([vec![key("at")], others.clone(), vec![key("type")]].concat());
        orders.push(
            [
                vec![
                    key("at"),
                    key("type"),
                    ("later".into(), serde_json::json!([1, {"a": 2}])),
                ],
                others.clone(),
            ]
            .concat(),
        );
        for entries in orders {
            let text = format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            assert_eq!(decode(&text).unwrap(), stored, "{text}");
            assert_eq!(derived(&text).unwrap(), stored, "{text}");
        }
        assert_eq!(decode(&written).unwrap(), stored);
    }

    // What the derived decoding refuses, this refuses too.
    let at = r#""at":"2024-06-10T10:00:00+08:00""#;
    for bad in [
        format!("{{{at}}}"),
        r#"{"type":"OrderClosed"}"#.to_owned(),
        format!(r#"{{{at},"type":"OrderVanished"}}"#),
        format!(r#"{{{at},"type":"OrderAccepted","volunteer_id":"v1"}}"#),
        format!(r#"{{{at},"type":"OrderAccepted","volunteer_id":7,"team_id":"t1"}}"#),
        format!(r#"{{"volunteer_id":"v1",{at},"type":"OrderAccepted"}}"#),
        r#"{"at":"yesterday","type":"OrderClosed"}"#.to_owned(),
        format!(r#"{{{at},"type":7}}"#),
        format!(r#"{{{at},{at},"type":"OrderClosed"}}"#),
        "[]".to_owned(),
        format!(r#"{{{at},"type":"OrderClosed""#),
        format!(r#"{{{at},"type":"OrderClosed","clocks":{{}},"clocks":{{}}}}"#),
        format!(r#"{{"clocks":{{}},{at},"type":"OrderClosed","clocks":{{}}}}"#),
        format!(r#"{{{at},"type":"OrderClosed",{at}}}"#),
        format!(r#"{{{at},"type":"OrderRejected","reason":"重复",{at}}}"#),
        format!(r#"{{{at},"type":"OrderTriaged","clocks":"triage"}}"#),
        format!(
            r#"{{{at},"type":"OrderRejected","reason":"重复","clocks":{{"stopped":"triage"}}}}"#
        ),
    ] {
        assert!(derived(&bad).is_err(), "derived accepts {bad}");
        assert!(decode(&bad).is_err(), "accepted {bad}");
    }
    // A key written with escapes is the same key.
    let escaped =
        format!(r#"{{{at},"type":"OrderTriaged","cl\u006fcks":{{"stopped":["triage"]}}}}"#);
    let plain = escaped.replace(r"\u006f", "o");
    assert_eq!(decode(&escaped).unwrap(), decode(&plain).unwrap());
    assert_eq!(decode(&escaped).unwrap(), derived(&escaped).unwrap());
    assert_eq!(decode(&plain).unwrap().clocks.stopped, ["triage"]);

    let unknown = decode(&format!(r#"{{{at},"type":"OrderVanished"}}"#)).unwrap_err();
    assert!(unknown.to_string().contains("OrderVanished"), "{unknown}");
    let missing = decode(&format!(
        r#"{{{at},"type":"OrderAccepted","volunteer_id":"v1"}}"#
    ))
    .unwrap_err();
    assert!(missing.to_string().contains("team_id"), "{missing}");
}
