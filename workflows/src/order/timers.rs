//! Deadlines of an order (时限): when their clocks start and stop, and what a timer going off
//! means. Pure: the caller stores the events; a timer runner fires [`Action::FireTimer`] at
//! `warn_at` and `due_at`.
//!
//! A deadline is scheduled in an event (the [`Clocks`] of the change that starts it) carrying
//! its `warn_at` and `due_at`, so timers survive restarts: whatever runs them reads them back from
//! the log. Firing is idempotent by construction: a timer names its deadline and `due_at`, and
//! one that no longer matches a running deadline is recorded as ignored.

use time::OffsetDateTime;

use super::command::{Action, Command, TimerPhase};
use super::event::{Clocks, OrderChange, OrderEvent};
use super::state::{evolve, OrderState};
use crate::calendar::Calendar;
use crate::definition::{Definition, OnExpiry};
use crate::permissions::workflow_role;
use crate::{DomainError, Role};

/// Records on a command's events the clocks they move: deadlines of the stage left stop,
/// those of the stage entered start (timed by `calendar`). They go on the last event, so they
/// are stored in the same append as the change that moves them ([`OrderEvent::clocks`]).
pub fn schedule_clocks(
    definition: &Definition,
    calendar: &Calendar,
    before: &OrderState,
    command: &Command,
    events: &mut [OrderEvent],
) {
    if matches!(command.action, Action::FireTimer { .. }) {
        return;
    }
    let Some(at) = events.last().map(|e| e.at) else {
        return;
    };
    let after = events.iter().fold(before.clone(), evolve);
    let changes = definition.clock_changes(
        before.status.as_str(),
        command.action.command(),
        after.status.as_str(),
    );
    let clocks = Clocks {
        stopped: changes
            .stopped
            .into_iter()
            .filter(|deadline| before.deadlines.contains_key(&deadline.name))
            .map(|deadline| deadline.name.clone())
            .collect(),
        started: changes
            .started
            .into_iter()
            .map(|deadline| deadline.schedule(at, false, calendar))
            .collect(),
    };
    if let Some(last) = events.last_mut() {
        last.clocks = clocks;
    }
}

/// Longest extension a request may ask for.
const MAX_EXTENSION: time::Duration = time::Duration::days(30);

/// 延期申请 and its approval. The request must come before the deadline passes, from the
/// volunteer holding the order; the station head decides. An approved extension reschedules
/// the deadline (yellow again at 80% of the new span).
pub(super) fn extension(
    state: &OrderState,
    command: &Command,
) -> Result<Vec<OrderEvent>, DomainError> {
    let actor = &command.meta.actor;
    let at = command.meta.at;
    let change = match &command.action {
        Action::RequestExtension {
            deadline,
            until,
            reason,
        } => {
            let holder = state.accepted_by.as_ref().map(|(v, _)| v.as_str());
            if workflow_role(actor.role) != Role::Volunteer || holder != Some(actor.id.as_str()) {
                return Err(DomainError::Forbidden(
                    "只有接单的志愿者可以申请延期".into(),
                ));
            }
            let active = state.deadlines.get(deadline).ok_or_else(|| {
                DomainError::conflict("deadline", format!("时限「{deadline}」当前未在计时"))
            })?;
            if active.overdue || at >= active.timer.due_at {
                return Err(DomainError::conflict(
                    "deadline",
                    "时限已过，不能再申请延期",
                ));
            }
            if active.extension_requested.is_some() {
                return Err(DomainError::conflict("deadline", "已有待审批的延期申请"));
            }
            if *until <= active.timer.due_at || *until > active.timer.due_at + MAX_EXTENSION {
                return Err(DomainError::conflict(
                    "until",
                    "延期后的时限须晚于原时限，且最多延长 30 天",
                ));
            }
            OrderChange::ExtensionRequested {
                deadline: deadline.clone(),
                until: *until,
                reason: crate::validate::text(
                    "reason",
                    reason,
                    1,
                    crate::validate::MAX_SHORT_TEXT_CHARS,
                )?,
            }
        }
        Action::DecideExtension {
            deadline,
            approve,
            reason,
        } => {
            if workflow_role(actor.role) != Role::StationHead {
                return Err(DomainError::Forbidden("只有站长可以审批延期".into()));
            }
            let active = state.deadlines.get(deadline).ok_or_else(|| {
                DomainError::conflict("deadline", format!("时限「{deadline}」当前未在计时"))
            })?;
            let until = active
                .extension_requested
                .ok_or_else(|| DomainError::conflict("deadline", "没有待审批的延期申请"))?;
            if *approve {
                let started_at = active.timer.started_at;
                let span = until - started_at;
                let warn_at: OffsetDateTime = started_at + span * 0.8;
                OrderChange::ExtensionApproved {
                    timer: crate::definition::Timer {
                        deadline: deadline.clone(),
                        limit: format!("延期至 {}", china_time(until)),
                        started_at,
                        warn_at: warn_at.max(at),
                        due_at: until,
                    },
                }
            } else {
                OrderChange::ExtensionDenied {
                    deadline: deadline.clone(),
                    reason: crate::validate::text(
                        "reason",
                        reason,
                        1,
                        crate::validate::MAX_SHORT_TEXT_CHARS,
                    )?,
                }
            }
        }
        _ => unreachable!("only extension commands come here"),
    };
    Ok(vec![OrderEvent::new(at, change)])
}

/// What a timer going off does to the order.
pub(super) fn fire(
    definition: &Definition,
    state: &OrderState,
    command: &Command,
    deadline: &str,
    phase: TimerPhase,
    due_at: OffsetDateTime,
) -> Result<Vec<OrderEvent>, DomainError> {
    if command.meta.actor.role != Role::System {
        return Err(DomainError::Forbidden("只有系统计时器可以触发时限".into()));
    }
    let at = command.meta.at;
    let ignored = |reason: &str| {
        Ok(vec![OrderEvent::new(
            at,
            OrderChange::TimerIgnored {
                deadline: deadline.to_owned(),
                phase,
                reason: reason.to_owned(),
            },
        )])
    };
    let Some(active) = state.deadlines.get(deadline) else {
        return ignored("订单已离开该时限覆盖的环节");
    };
    // Timers are stored to the millisecond; a clock restarted since has another due time.
    if (active.timer.due_at - due_at).abs() >= time::Duration::milliseconds(1) {
        return ignored("该时限已重新计时");
    }
    let change = match phase {
        TimerPhase::Warn if active.warned => return ignored("已催办"),
        TimerPhase::Warn => OrderChange::DeadlineWarned {
            deadline: deadline.to_owned(),
        },
        TimerPhase::Due if active.overdue => return ignored("已督办"),
        TimerPhase::Due => OrderChange::DeadlineOverdue {
            deadline: deadline.to_owned(),
            action: match definition.deadline(deadline).map(|d| &d.on_expiry) {
                Some(OnExpiry::Fire { commands, .. }) => {
                    let labels: Vec<&str> = commands
                        .iter()
                        .map(|c| {
                            definition
                                .transitions()
                                .iter()
                                .find(|t| t.command == *c)
                                .map_or(c.as_str(), |t| t.label.as_str())
                        })
                        .collect();
                    format!("系统自动执行：{}", labels.join("、"))
                }
                _ => "督办：通知上级".to_owned(),
            },
        },
    };
    Ok(vec![OrderEvent::new(at, change)])
}

/// `2026-12-05 17:30`, China Standard Time: how a moved deadline reads in its limit.
fn china_time(at: OffsetDateTime) -> String {
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let t = at.to_offset(offset);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::definition::Registry;
    use crate::order::{decide, Assignee, TeamKind};
    use crate::validate::Location;
    use crate::{Actor, CommandMeta, OrgLevel};

    fn registry() -> &'static Registry {
        static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        REGISTRY.get_or_init(Registry::builtin)
    }

    fn v1() -> (&'static Definition, &'static Calendar) {
        let definition = registry().get("dispatched-order", 1).unwrap();
        (definition, registry().calendar_for(definition).unwrap())
    }

    fn command(actor: Actor, at: OffsetDateTime, action: Action) -> Command {
        Command {
            meta: CommandMeta {
                actor,
                at,
                command_id: format!("c-{}", at.unix_timestamp()),
                correlation_id: "k".into(),
                causation_id: None,
            },
            action,
        }
    }

    /// Runs commands through decide + schedule_clocks, as the engine does.
    fn run(commands: Vec<Command>) -> (OrderState, Vec<OrderEvent>) {
        let (definition, calendar) = v1();
        let mut state = OrderState::default();
        let mut all = Vec::new();
        for c in commands {
            let mut events = decide(definition, &state, &c).expect("legal");
            schedule_clocks(definition, calendar, &state, &c, &mut events);
            state = events.iter().fold(state, evolve);
            all.extend(events);
        }
        (state, all)
    }

    // Monday 2026-11-23 09:00 CST.
    const MONDAY_9: OffsetDateTime = datetime!(2026-11-23 01:00 UTC);

    fn placed_and_dispatched() -> Vec<Command> {
        let resident = Actor::new("r1", Role::Resident);
        let head = Actor::new("head", Role::StationHead);
        vec![
            command(
                resident,
                MONDAY_9,
                Action::Place {
                    order_id: "o1".into(),
                    station_id: "s1".into(),
                    category: "repair".into(),
                    description: "楼道灯坏了".into(),
                    location: Location {
                        lat: 29.87,
                        lng: 114.28,
                        address: String::new(),
                    },
                    contact_phone: "13812345678".into(),
                    wanted_time: None,
                    on_behalf_of: None,
                    required_volunteers: None,
                    workflow: None,
                },
            ),
            command(
                head.clone(),
                MONDAY_9 + time::Duration::minutes(10),
                Action::Triage {
                    accept: true,
                    reason: String::new(),
                },
            ),
            command(
                head,
                MONDAY_9 + time::Duration::minutes(20),
                Action::Dispatch {
                    assignee: Assignee {
                        team_id: "t1".into(),
                        kind: TeamKind::Team,
                        node_id: "s1".into(),
                        level: OrgLevel::Station,
                    },
                    reason: String::new(),
                },
            ),
        ]
    }

    #[test]
    fn entering_a_stage_starts_its_clock_and_leaving_it_stops_it() {
        let (state, events) = run(placed_and_dispatched());
        // Each change carries the clocks it stops and starts.
        let kinds: Vec<(&str, Vec<&str>, Vec<&str>)> = events
            .iter()
            .map(|e| {
                (
                    e.change.event_type(),
                    e.clocks.stopped.iter().map(String::as_str).collect(),
                    e.clocks
                        .started
                        .iter()
                        .map(|t| t.deadline.as_str())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("OrderPlaced", vec![], vec!["triage"]),
                ("OrderTriaged", vec!["triage"], vec!["dispatch"]),
                ("OrderDispatched", vec!["dispatch"], vec!["sign_for"]),
            ]
        );
        let sign_for = &state.deadlines["sign_for"];
        // 1 working day from Monday 09:20: Tuesday 09:20 CST; yellow at 80%.
        assert_eq!(sign_for.timer.due_at, datetime!(2026-11-24 01:20 UTC));
        assert!(sign_for.timer.warn_at < sign_for.timer.due_at);
        assert_eq!(state.deadlines.len(), 1);
    }

    /// Logs written before clocks rode on the change hold them as events of their own
    /// (`DeadlineCleared`, then `DeadlineScheduled`, after the change): they fold to the same
    /// state.
    #[test]
    fn clocks_as_events_of_their_own_fold_to_the_same_state() {
        let (state, events) = run(placed_and_dispatched());
        let old_style: Vec<OrderEvent> = events
            .iter()
            .flat_map(|e| {
                let stopped = e.clocks.stopped.iter().map(|deadline| {
                    OrderEvent::new(
                        e.at,
                        OrderChange::DeadlineCleared {
                            deadline: deadline.clone(),
                        },
                    )
                });
                let started = e.clocks.started.iter().map(|timer| {
                    OrderEvent::new(
                        e.at,
                        OrderChange::DeadlineScheduled {
                            timer: timer.clone(),
                        },
                    )
                });
                std::iter::once(OrderEvent::new(e.at, e.change.clone()))
                    .chain(stopped)
                    .chain(started)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(old_style.len(), 8);
        assert_eq!(old_style.iter().fold(OrderState::default(), evolve), state);
    }

    #[test]
    fn timers_warn_then_supervise_once_and_stale_ones_are_ignored() {
        let (definition, _) = v1();
        let (state, _) = run(placed_and_dispatched());
        let due_at = state.deadlines["sign_for"].timer.due_at;
        let system = Actor::new("system", Role::System);
        let fire = |state: &OrderState, phase, due_at| {
            let c = command(
                system.clone(),
                due_at,
                Action::FireTimer {
                    deadline: "sign_for".into(),
                    phase,
                    due_at,
                },
            );
            decide(definition, state, &c).unwrap()
        };
        let warned = fire(&state, TimerPhase::Warn, due_at);
        assert!(matches!(
            warned[0].change,
            OrderChange::DeadlineWarned { .. }
        ));
        let state = warned.iter().fold(state, evolve);
        let again = fire(&state, TimerPhase::Warn, due_at);
        assert!(matches!(again[0].change, OrderChange::TimerIgnored { .. }));
        let overdue = fire(&state, TimerPhase::Due, due_at);
        assert!(
            matches!(&overdue[0].change, OrderChange::DeadlineOverdue { action, .. } if action == "系统自动执行：派单")
        );
        let state = overdue.iter().fold(state, evolve);
        assert!(matches!(
            fire(&state, TimerPhase::Due, due_at)[0].change,
            OrderChange::TimerIgnored { .. }
        ));
        // A timer of an earlier clock (another due_at) is ignored.
        let stale = fire(&state, TimerPhase::Due, due_at - time::Duration::hours(1));
        assert!(matches!(stale[0].change, OrderChange::TimerIgnored { .. }));
        // Nobody but the system fires timers.
        let c = command(
            Actor::new("head", Role::StationHead),
            due_at,
            Action::FireTimer {
                deadline: "sign_for".into(),
                phase: TimerPhase::Due,
                due_at,
            },
        );
        assert!(matches!(
            decide(definition, &state, &c),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn a_timer_for_a_stage_already_left_is_recorded_as_ignored() {
        let (definition, _) = v1();
        let mut commands = placed_and_dispatched();
        let (before, _) = run(commands.clone());
        let due_at = before.deadlines["sign_for"].timer.due_at;
        commands.push(command(
            Actor::new("v1", Role::Volunteer),
            MONDAY_9 + time::Duration::hours(1),
            Action::Accept {
                team_id: "t1".into(),
                member: None,
            },
        ));
        let (state, _) = run(commands);
        assert!(!state.deadlines.contains_key("sign_for"));
        assert!(state.deadlines.contains_key("complete"));
        let c = command(
            Actor::new("system", Role::System),
            due_at,
            Action::FireTimer {
                deadline: "sign_for".into(),
                phase: TimerPhase::Due,
                due_at,
            },
        );
        let events = decide(definition, &state, &c).unwrap();
        assert!(
            matches!(&events[0].change, OrderChange::TimerIgnored { reason, .. } if reason.contains("离开"))
        );
    }

    #[test]
    fn an_extension_is_requested_in_time_and_approved_or_denied_by_the_head() {
        let (definition, _) = v1();
        let mut commands = placed_and_dispatched();
        let volunteer = Actor::new("v1", Role::Volunteer);
        commands.push(command(
            volunteer.clone(),
            MONDAY_9 + time::Duration::hours(1),
            Action::Accept {
                team_id: "t1".into(),
                member: None,
            },
        ));
        let (state, _) = run(commands);
        let due = state.deadlines["complete"].timer.due_at;
        let request = |at, until| {
            command(
                volunteer.clone(),
                at,
                Action::RequestExtension {
                    deadline: "complete".into(),
                    until,
                    reason: "等待配件到货".into(),
                },
            )
        };
        let in_time = MONDAY_9 + time::Duration::hours(2);
        // After the deadline passed: refused, naming the field.
        let late = decide(
            definition,
            &state,
            &request(
                due + time::Duration::minutes(1),
                due + time::Duration::days(2),
            ),
        );
        assert!(
            matches!(
                late,
                Err(DomainError::Conflict {
                    field: "deadline",
                    ..
                })
            ),
            "{late:?}"
        );
        // Not later than the current deadline: refused.
        let short = decide(definition, &state, &request(in_time, due));
        assert!(
            matches!(short, Err(DomainError::Conflict { field: "until", .. })),
            "{short:?}"
        );
        // Someone else: refused.
        let other = command(
            Actor::new("v2", Role::Volunteer),
            in_time,
            Action::RequestExtension {
                deadline: "complete".into(),
                until: due + time::Duration::days(2),
                reason: "x".into(),
            },
        );
        assert!(matches!(
            decide(definition, &state, &other),
            Err(DomainError::Forbidden(_))
        ));

        let requested = decide(
            definition,
            &state,
            &request(in_time, due + time::Duration::days(2)),
        )
        .unwrap();
        let state = requested.iter().fold(state, evolve);
        let head = Actor::new("head", Role::StationHead);
        let approve = command(
            head.clone(),
            in_time,
            Action::DecideExtension {
                deadline: "complete".into(),
                approve: true,
                reason: String::new(),
            },
        );
        let approved = decide(definition, &state, &approve).unwrap();
        let state = approved.iter().fold(state, evolve);
        assert_eq!(
            state.deadlines["complete"].timer.due_at,
            due + time::Duration::days(2)
        );
        assert!(state.deadlines["complete"].extension_requested.is_none());
        // Nothing pending any more: a second decision is refused.
        assert!(matches!(
            decide(definition, &state, &approve),
            Err(DomainError::Conflict {
                field: "deadline",
                ..
            })
        ));
        // A denial keeps the deadline.
        let requested = decide(
            definition,
            &state,
            &request(in_time, due + time::Duration::days(3)),
        )
        .unwrap();
        let state = requested.iter().fold(state, evolve);
        let deny = command(
            head,
            in_time,
            Action::DecideExtension {
                deadline: "complete".into(),
                approve: false,
                reason: "无正当理由".into(),
            },
        );
        let denied = decide(definition, &state, &deny).unwrap();
        let state = denied.iter().fold(state, evolve);
        assert_eq!(
            state.deadlines["complete"].timer.due_at,
            due + time::Duration::days(2)
        );
    }
}
