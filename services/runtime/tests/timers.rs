//! Deadlines on tokio's paused clock: a working week passes in milliseconds, and each timer
//! fires exactly once.

use std::time::Duration;

use time::macros::datetime;

mod support;

use diandan_runtime::auth::Claims;
use diandan_runtime::clock::Clock;
use diandan_runtime::RequestContext;
use diandan_store::{Direction, EventStore};
use diandan_workflows::order::{Action, Assignee, TeamKind};
use diandan_workflows::permissions::Scope;
use diandan_workflows::validate::Location;
use diandan_workflows::{OrgLevel, Role};
use support::app_with_v1_of_t1;

fn ctx(sub: &str, role: Role) -> RequestContext {
    let id = uuid::Uuid::new_v4().to_string();
    RequestContext {
        claims: Claims {
            sub: sub.into(),
            role,
            node: Some("s1".into()),
            acc: None,
            exp: i64::MAX,
        },
        // The scope the permission table gives the role for reading an order: its own part
        // (staff: everything — no org tree here; subtrees are tests/permissions.rs's).
        scope: match diandan_workflows::permissions::grant(
            diandan_workflows::permissions::Operation::GetOrder,
            role,
        ) {
            Some(Scope::Subtree) => Scope::All,
            scope => scope.expect("every role reads orders"),
        },
        command_id: id.clone(),
        correlation_id: id,
    }
}

async fn types(store: &dyn EventStore, order: &str) -> Vec<String> {
    store
        .read_stream(&format!("order-{order}"), 0, Direction::Forward, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let payload: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
            match payload.get("deadline").and_then(|d| d.as_str()) {
                Some(deadline) => format!("{}:{deadline}", e.event_type),
                None => e.event_type,
            }
        })
        .collect()
}

fn count(types: &[String], wanted: &str) -> usize {
    types.iter().filter(|t| *t == wanted).count()
}

/// Lets virtual time pass in `step`s (blocking SQLite work does not hold tokio's paused clock
/// back, so one long sleep could outrun the runner) until `wanted` is in the history, then a
/// while longer to catch a second firing.
async fn pass_time_until(
    store: &dyn EventStore,
    order: &str,
    step: Duration,
    wanted: &str,
) -> Vec<String> {
    for _ in 0..2000 {
        if types(store, order).await.iter().any(|t| t == wanted) {
            for _ in 0..20 {
                tokio::time::sleep(step).await;
            }
            return types(store, order).await;
        }
        tokio::time::sleep(step).await;
    }
    panic!("{wanted} never happened: {:?}", types(store, order).await);
}

/// The read model following the log and the timer runner, until stopped.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn start(app: &diandan_runtime::App) -> Running {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let follower = tokio::spawn(app.read.clone().follow_owned(app.store.clone(), stopped()));
        let runner = {
            let (app, stop) = (app.clone(), stopped());
            tokio::spawn(async move { app.run_timers(Duration::from_secs(3600), stop).await })
        };
        Running {
            stop,
            tasks: vec![follower, runner],
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

#[tokio::test]
async fn sign_for_goes_yellow_then_red_exactly_once_and_review_defaults_after_seven_days() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app_with_v1_of_t1(dir.path()).await;
    let store = app.store.clone();
    // Monday 2026-11-23, 09:00 China Standard Time.
    app.clock = Clock::tokio_from(datetime!(2026-11-23 01:00 UTC));
    let running = Running::start(&app);

    let here = Location {
        lat: 29.87,
        lng: 114.28,
        address: String::new(),
    };
    let place = Action::Place {
        order_id: "o1".into(),
        station_id: "s1".into(),
        category: "repair".into(),
        description: "楼道灯坏了".into(),
        location: here.clone(),
        contact_phone: "13812345678".into(),
        wanted_time: None,
        on_behalf_of: None,
        required_volunteers: None,
        workflow: None,
    };
    app.execute(&ctx("r1", Role::Resident), "o1", place, None)
        .await
        .unwrap();
    let triage = Action::Triage {
        accept: true,
        reason: String::new(),
    };
    app.execute(&ctx("head", Role::StationHead), "o1", triage, None)
        .await
        .unwrap();
    let dispatch = Action::Dispatch {
        assignee: Assignee {
            team_id: "t1".into(),
            kind: TeamKind::Team,
            node_id: "s1".into(),
            level: OrgLevel::Station,
        },
        reason: "就近".into(),
    };
    app.execute(&ctx("head", Role::StationHead), "o1", dispatch, None)
        .await
        .unwrap();

    // From here on time is tokio's paused clock: set up in real time first, so no clock jump
    // (auto-advance while SQLite works on a blocking thread) lands in the middle of it.
    tokio::time::pause();
    // Nobody signs for it. Tuesday 09:00 it is due: yellow at 80%, red after.
    let history = pass_time_until(
        store.as_ref(),
        "o1",
        Duration::from_secs(300),
        "DeadlineOverdue:sign_for",
    )
    .await;
    assert_eq!(count(&history, "DeadlineWarned:sign_for"), 1, "{history:?}");
    assert_eq!(
        count(&history, "DeadlineOverdue:sign_for"),
        1,
        "{history:?}"
    );
    let warned = history
        .iter()
        .position(|t| t == "DeadlineWarned:sign_for")
        .unwrap();
    let overdue = history
        .iter()
        .position(|t| t == "DeadlineOverdue:sign_for")
        .unwrap();
    assert!(warned < overdue);

    // The volunteer finally accepts, serves and completes; the resident never reviews.
    let volunteer = ctx("v1", Role::Volunteer);
    for action in [
        Action::Accept {
            team_id: "t1".into(),
            member: None,
        },
        Action::CheckIn {
            location: here.clone(),
        },
        Action::CheckOut {
            location: here.clone(),
        },
        Action::Complete {
            note: "已更换".into(),
            photos: vec![],
        },
    ] {
        let v = RequestContext {
            command_id: uuid::Uuid::new_v4().to_string(),
            ..volunteer.clone()
        };
        app.execute(&v, "o1", action, None).await.unwrap();
    }
    // Seven calendar days later: a default review, then closed — by the system, once.
    let history = pass_time_until(
        store.as_ref(),
        "o1",
        Duration::from_secs(1800),
        "OrderClosed",
    )
    .await;
    assert_eq!(count(&history, "DeadlineOverdue:review"), 1, "{history:?}");
    assert_eq!(count(&history, "OrderReviewed"), 1, "{history:?}");
    assert_eq!(count(&history, "OrderClosed"), 1, "{history:?}");
    let events = store
        .read_stream("order-o1", 0, Direction::Forward, 1000)
        .await
        .unwrap();
    let review = events
        .iter()
        .find(|e| e.event_type == "OrderReviewed")
        .unwrap();
    let review: serde_json::Value = serde_json::from_slice(&review.data).unwrap();
    assert_eq!(review["rating"], 5);
    assert_eq!(review["by_default"], true);
    // Clocks stopped with the stages they covered: nothing is pending any more.
    let pending = app
        .read
        .query(|c| Ok(c.query_row("SELECT COUNT(*) FROM timers", [], |r| r.get::<_, i64>(0))?))
        .await
        .unwrap();
    assert_eq!(pending, 0);

    running.stop().await;
}

/// A working day's first minute lines deadlines up: more orders than one round takes (256),
/// all due at the same instant, fired many orders at once — each yellow once, then red once.
#[tokio::test]
async fn a_burst_of_deadlines_due_at_once_fires_each_exactly_once() {
    const ORDERS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app_with_v1_of_t1(dir.path()).await;
    let store = app.store.clone();
    // Monday 2026-11-23, 09:00 China Standard Time.
    app.clock = Clock::tokio_from(datetime!(2026-11-23 01:00 UTC));
    let running = Running::start(&app);
    let orders: Vec<String> = (0..ORDERS).map(|i| format!("burst-{i}")).collect();
    futures::future::join_all(orders.iter().map(|order| {
        let app = app.clone();
        async move {
            let place = Action::Place {
                order_id: order.clone(),
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
            };
            app.execute(&ctx("r1", Role::Resident), order, place, None)
                .await
                .unwrap();
        }
    }))
    .await;

    tokio::time::pause();
    // Nobody triages: every order's clock runs out within the few seconds they were placed in.
    pass_time_until(
        store.as_ref(),
        &orders[ORDERS - 1],
        Duration::from_secs(300),
        "DeadlineOverdue:triage",
    )
    .await;
    for _ in 0..2000 {
        let pending = app
            .read
            .query(|c| Ok(c.query_row("SELECT COUNT(*) FROM timers", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(300)).await;
    }
    for order in &orders {
        let history = types(store.as_ref(), order).await;
        assert_eq!(
            count(&history, "DeadlineWarned:triage"),
            1,
            "{order}: {history:?}"
        );
        assert_eq!(
            count(&history, "DeadlineOverdue:triage"),
            1,
            "{order}: {history:?}"
        );
        assert!(
            !history.iter().any(|t| t == "TimerIgnored"),
            "{order}: {history:?}"
        );
    }
    running.stop().await;
}
