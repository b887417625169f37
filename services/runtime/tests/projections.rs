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
    for wanted in ["DeadlineWarned", "DeadlineOverdue", "DeadlineCleared"] {
        assert!(
            events.iter().any(|e| e.event_type == wanted),
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
}
