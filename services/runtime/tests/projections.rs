//! The read models come out the same however the log is cut into batches: one event at a
//! time (as a live model applies a quiet log) or thousands at once (a rebuild, where the
//! order list folds each order's events in memory and writes its row once), or anything
//! between.

mod support;

use diandan_runtime::projections::{self, ReadModel};
use diandan_runtime::RequestContext;
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
    let events = store.read_all(1, 100_000).await.unwrap();
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
}
