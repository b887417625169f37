//! The read models come out the same however the log is cut into batches: one event at a
//! time (as a live model applies a quiet log) or thousands at once (a rebuild, where the
//! order list folds each order's events in memory and writes its row once), or anything
//! between.

mod support;

use diandan_runtime::projections::{self, ReadModel};
use diandan_runtime::RequestContext;
use diandan_workflows::order::{Action, TimerPhase};
use diandan_workflows::Role;
use support::{app_with_v1_of_t1, ctx, the_loop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_any_size_give_the_same_read_models() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_v1_of_t1(dir.path()).await;
    let store = app.store.clone();
    // Five orders, their steps interleaved: a batch holds several orders' events, and one
    // order's events are spread over it. The last order stops half way.
    let orders: Vec<(String, Vec<_>)> = (0..5)
        .map(|i| {
            let id = format!("o{i}");
            let steps = the_loop(ctx(&format!("r{i}"), Role::Resident), &id);
            (id, steps)
        })
        .collect();
    for step in 0..8 {
        for (i, (id, steps)) in orders.iter().enumerate() {
            if i == 4 && step >= 4 {
                continue;
            }
            let (who, action) = steps[step].clone();
            let who = RequestContext {
                command_id: uuid::Uuid::new_v4().to_string(),
                ..who
            };
            app.execute(&who, id, action, None).await.unwrap();
        }
    }
    // Declined orders: one left without a team, one dispatched again after the decline.
    for (id, again) in [("o5", false), ("o6", true)] {
        let steps = the_loop(ctx("r5", Role::Resident), id);
        let decline = (
            ctx("v1", Role::Volunteer),
            Action::Decline {
                team_id: "t1".into(),
                reason: "人手不足".into(),
            },
        );
        let mut history = vec![
            steps[0].clone(),
            steps[1].clone(),
            steps[2].clone(),
            decline,
        ];
        if again {
            history.push(steps[2].clone());
        }
        for (who, action) in history {
            let who = RequestContext {
                command_id: uuid::Uuid::new_v4().to_string(),
                ..who
            };
            app.execute(&who, id, action, None).await.unwrap();
        }
    }
    // Deadlines going off: every pending timer warns (yellow), and every other one then falls
    // due (red), so the folds of the timers and statistics see warnings, overdue marks and
    // timers deleted — some in the batch that scheduled them, some batches later.
    let pending = projections::rebuild(store.as_ref(), &dir.path().join("timers.db"), |_, _| {})
        .await
        .unwrap()
        .query(|c| projections::due_timers(c, i64::MAX, 1000))
        .await
        .unwrap();
    assert!(pending.len() >= 2, "{pending:?}");
    for (i, timer) in pending.iter().enumerate() {
        let due_at = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(timer.due_at_ms) * 1_000_000,
        )
        .unwrap();
        let phases = if i % 2 == 0 {
            &[TimerPhase::Warn, TimerPhase::Due][..]
        } else {
            &[TimerPhase::Warn][..]
        };
        for &phase in phases {
            let fire = Action::FireTimer {
                deadline: timer.deadline.clone(),
                phase,
                due_at,
            };
            let system = RequestContext::system(uuid::Uuid::new_v4().to_string());
            app.execute(&system, &timer.order_id, fire, None)
                .await
                .unwrap();
        }
    }
    let events = store.read_all(1, 100_000).await.unwrap();
    for wanted in ["DeadlineWarned", "DeadlineOverdue"] {
        assert!(
            events.iter().any(|e| e.event_type == wanted),
            "{wanted} in the log"
        );
    }
    // Clocks stopped and started by the changes that move them.
    for wanted in [r#""stopped":"#, r#""started":"#] {
        assert!(
            events
                .iter()
                .any(|e| String::from_utf8_lossy(&e.data).contains(wanted)),
            "{wanted} in the log"
        );
    }
    assert!(events.len() > 40, "{} events", events.len());

    let one_by_one = ReadModel::open(&dir.path().join("one-by-one.db")).unwrap();
    for event in &events {
        one_by_one.apply_batch(vec![event.clone()]).await.unwrap();
    }
    let all_at_once =
        projections::rebuild(store.as_ref(), &dir.path().join("rebuilt.db"), |_, _| {})
            .await
            .unwrap();
    let (a, b) = (one_by_one.dump().unwrap(), all_at_once.dump().unwrap());
    assert!(a.iter().any(|row| row.contains("o3")), "orders projected");
    assert_eq!(a, b, "one event per batch against one batch");

    // Batches that cut orders' histories anywhere.
    let sevens = ReadModel::open(&dir.path().join("sevens.db")).unwrap();
    for batch in events.chunks(7) {
        sevens.apply_batch(batch.to_vec()).await.unwrap();
    }
    assert_eq!(sevens.dump().unwrap(), a, "batches of seven");

    // A rebuild reading the log five events at a time: many batches in its pipeline at once.
    let fives =
        projections::rebuild_in_batches(store.as_ref(), &dir.path().join("fives.db"), 5, |_, _| {})
            .await
            .unwrap();
    assert_eq!(fives.dump().unwrap(), a, "a rebuild in batches of five");

    // Each order's fact names the team it is assigned to now, as its order row does (the
    // dispatch suggestions count recent dispatches by it): none after a decline.
    let teams: Vec<(String, Option<String>, Option<String>)> = all_at_once
        .query(|c| {
            let mut stmt = c.prepare(
                "SELECT o.order_id, o.assignee_id, f.team_id
                 FROM orders o JOIN order_facts f USING (order_id) ORDER BY o.order_id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
        .unwrap();
    assert_eq!(teams.len(), 7, "{teams:?}");
    for (order, assignee, team) in &teams {
        assert_eq!(assignee, team, "{order}");
    }
    let team_of = |id: &str| teams.iter().find(|t| t.0 == id).unwrap().2.clone();
    assert_eq!(team_of("o5"), None, "declined");
    assert_eq!(team_of("o6").as_deref(), Some("t1"), "dispatched again");
}

/// A log written before clocks rode on the changes holds them as events of their own
/// (`DeadlineCleared`, then `DeadlineScheduled`, after each change): it projects to the same
/// timers and order states as the log the engine writes now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_written_as_events_of_their_own_project_the_same() {
    use diandan_store::RecordedEvent;
    use diandan_workflows::order::{Clocks, OrderChange, OrderEvent};

    let dir = tempfile::tempdir().unwrap();
    let app = app_with_v1_of_t1(dir.path()).await;
    for i in 0..3 {
        let id = format!("o{i}");
        for (who, action) in the_loop(ctx(&format!("r{i}"), Role::Resident), &id)
            .into_iter()
            .take(3 + 2 * i)
        {
            let who = RequestContext {
                command_id: uuid::Uuid::new_v4().to_string(),
                ..who
            };
            app.execute(&who, &id, action, None).await.unwrap();
        }
    }
    let events = app.store.read_all(1, 100_000).await.unwrap();

    // The same history with each change's clocks split off into events of their own.
    let mut revisions = std::collections::HashMap::<String, u64>::new();
    let mut old_style: Vec<RecordedEvent> = Vec::new();
    let mut split = 0;
    for event in &events {
        let mut parts = vec![(event.event_type.clone(), event.data.clone())];
        if event.stream.starts_with("order-") {
            let mut decoded: OrderEvent = serde_json::from_slice(&event.data).unwrap();
            let Clocks { stopped, started } = std::mem::take(&mut decoded.clocks);
            split += stopped.len() + started.len();
            parts = std::iter::once(decoded.change.clone())
                .chain(
                    stopped
                        .into_iter()
                        .map(|deadline| OrderChange::DeadlineCleared { deadline }),
                )
                .chain(
                    started
                        .into_iter()
                        .map(|timer| OrderChange::DeadlineScheduled { timer }),
                )
                .map(|change| {
                    let data = serde_json::to_vec(&OrderEvent::new(decoded.at, change.clone()));
                    (change.event_type().to_owned(), data.unwrap())
                })
                .collect();
        }
        for (event_type, data) in parts {
            let revision = revisions.entry(event.stream.clone()).or_insert(0);
            old_style.push(RecordedEvent {
                event_id: uuid::Uuid::new_v4(),
                revision: *revision,
                position: old_style.len() as u64 + 1,
                event_type,
                data,
                ..event.clone()
            });
            *revision += 1;
        }
    }
    assert!(split >= 6, "clocks moved: {split}");

    let project = |name: &str, log: Vec<RecordedEvent>| {
        let path = dir.path().join(name);
        async move {
            let model = ReadModel::open(&path).unwrap();
            model.apply_batch(log).await.unwrap();
            model
                .query(|c| {
                    let timers = projections::due_timers(c, i64::MAX, 1000)?;
                    let mut stmt = c.prepare(
                        "SELECT order_id, status, state_json FROM orders ORDER BY order_id",
                    )?;
                    let orders = stmt
                        .query_map([], |r| {
                            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
                        })?
                        .collect::<Result<Vec<(String, String, String)>, _>>()?;
                    Ok((timers, orders))
                })
                .await
                .unwrap()
        }
    };
    let (now, old) = (
        project("now.db", events.clone()).await,
        project("old.db", old_style).await,
    );
    assert_eq!(now.1.len(), 3, "{:?}", now.1);
    assert!(!now.0.is_empty(), "timers pending");
    assert_eq!(now, old);
}

/// Under steady reads the read model's write-ahead log still starts over: SQLite starts it
/// over only at a moment no reader is in it, which never comes when readers overlap (the
/// demo's replay grew it to 1.1 GB), so the writer does once it passes its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_starts_over_under_steady_reads() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_v1_of_t1(dir.path()).await;
    for i in 0..24 {
        let id = format!("o{i}");
        for (who, action) in the_loop(ctx(&format!("r{i}"), Role::Resident), &id) {
            let who = RequestContext {
                command_id: uuid::Uuid::new_v4().to_string(),
                ..who
            };
            app.execute(&who, &id, action, None).await.unwrap();
        }
    }
    let events = app.store.read_all(1, 100_000).await.unwrap();

    let path = dir.path().join("read-under-reads.db");
    let model = ReadModel::open(&path).unwrap();
    const LIMIT: u64 = 256 * 1024;
    model.set_log_restart_bytes(LIMIT);
    // Three readers, each holding a read transaction for a few milliseconds and starting the
    // next at once: there is always one in the log.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3u64)
        .map(|i| {
            let (model, stop) = (model.clone(), stop.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(2 * i)).await;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    model
                        .query(|c| {
                            c.execute_batch("BEGIN")?;
                            let _: i64 =
                                c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))?;
                            std::thread::sleep(std::time::Duration::from_millis(6));
                            c.execute_batch("COMMIT")?;
                            Ok(())
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    let mut longest = 0;
    // One event per batch, as a live model applies a quiet log: a commit each (from the second
    // time on only the checkpoints move). Without restarts the log grows past 16 MB.
    for _ in 0..6 {
        for event in &events {
            model.apply_batch(vec![event.clone()]).await.unwrap();
            longest = longest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(events.len() > 150, "{} events", events.len());
    // A commit past the limit starts it over: never much longer than the limit (a restart
    // that found a reader — a thread of this busy machine descheduled mid-read — is tried
    // again a quarter of the limit later).
    assert!(
        longest < 8 * LIMIT,
        "the log grew to {longest} bytes (limit {LIMIT})"
    );
}

/// 查阅记录: a reader lists an order's reads right after being shown its number (the console's
/// order page) without a position to wait for, and its own read is there — the list waits for
/// the read model to reach the reader's latest read, here applied only 300 ms later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_lists_its_own_read_of_a_number_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_v1_of_t1(dir.path()).await;
    let (requester, place) = the_loop(ctx("r1", Role::Resident), "o1").remove(0);
    app.execute(&requester, "o1", place, None).await.unwrap();
    let head = RequestContext {
        scope: diandan_workflows::permissions::Scope::All,
        ..ctx("head", Role::StationHead)
    };
    let order_ids = ["o1".to_owned()];
    app.record_contact_reads(&head, &order_ids, diandan_runtime::access::purpose::ORDER)
        .await
        .unwrap();

    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let (read, store) = (app.read.clone(), app.store.clone());
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            read.follow_owned(store, async move {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let reads = app.list_contact_reads(&head, "o1", 20, 0).await.unwrap();
    assert_eq!(
        reads
            .iter()
            .map(|r| r.reader_id.as_str())
            .collect::<Vec<_>>(),
        ["head"],
        "{reads:?}"
    );
    let _ = stop.send(());
    follower.await.unwrap();
}
