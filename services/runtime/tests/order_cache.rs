//! Commands are first decided on the order as this process last knew it (the order cache),
//! without reading the store. Another writer (another process on the same log) may have moved
//! the order on since: the decision must then be taken again on the order as stored — a
//! refusal is never answered from the cache, and an acceptance loses its append.

mod support;

use std::sync::Arc;

use diandan_runtime::{App, AppError, RequestContext};
use diandan_store::{Direction, EventStore};
use diandan_workflows::Role;
use support::{app_with_v1_of_t1, ctx, the_loop};

/// A second app over the same log, with its own caches (as another process would have).
fn other_process(store: Arc<dyn EventStore>, dir: &std::path::Path) -> App {
    App::open(
        store,
        dir,
        diandan_runtime::auth::TokenSigner::new(b"test".to_vec()),
        false,
        diandan_workflows::Registry::builtin(),
    )
    .unwrap()
}

fn fresh(who: &RequestContext) -> RequestContext {
    RequestContext {
        command_id: uuid::Uuid::new_v4().to_string(),
        ..who.clone()
    }
}

async fn count(store: &dyn EventStore, event_type: &str) -> usize {
    store
        .read_stream("order-o1", 0, Direction::Forward, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cached_order_is_decided_again_on_the_stored_one() {
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let here = app_with_v1_of_t1(dir.path()).await;
    let there = other_process(here.store.clone(), other_dir.path());
    let steps = the_loop(ctx("r1", Role::Resident), "o1");
    let run = |app: &App, step: usize| {
        let (who, action) = steps[step].clone();
        let (app, who) = (app.clone(), fresh(&who));
        async move { app.execute(&who, "o1", action, None).await }
    };

    // Placed, triaged and dispatched here: this process caches the dispatched order.
    for step in 0..3 {
        run(&here, step).await.unwrap();
    }
    // Accepted and checked in by the other process.
    for step in 3..5 {
        run(&there, step).await.unwrap();
    }
    // Checking out here: refused on the cached (dispatched) order, accepted on the stored one.
    let (volunteer, check_out) = steps[5].clone();
    let volunteer = fresh(&volunteer);
    let checked_out = here
        .execute(&volunteer, "o1", check_out.clone(), None)
        .await
        .unwrap();
    assert!(!checked_out.duplicate);
    assert_eq!(count(here.store.as_ref(), "VolunteerCheckedOut").await, 1);

    // Completed by the other process; here the cache still has it checked out. The check-out
    // resent here is its first result, answered with the order as stored (completed), not as
    // cached.
    run(&there, 6).await.unwrap();
    let resent = here
        .execute(&volunteer, "o1", check_out, None)
        .await
        .unwrap();
    assert!(resent.duplicate);
    assert_eq!(
        (resent.revision, resent.position),
        (checked_out.revision, checked_out.position)
    );
    assert_eq!(
        resent.state.status,
        diandan_workflows::order::Status::Completed
    );
    assert_eq!(count(here.store.as_ref(), "VolunteerCheckedOut").await, 1);
    // Completing it again here is refused: the order is completed (the resend above brought
    // this process's cache up to date).
    let again = run(&here, 6).await;
    assert!(
        matches!(
            again,
            Err(AppError::Domain(_)) | Err(AppError::Conflict { .. })
        ),
        "{again:?}"
    );
    assert_eq!(count(here.store.as_ref(), "OrderCompleted").await, 1);

    // Both processes now agree with the log.
    let (a, b) = (
        here.load_order("o1").await.unwrap(),
        there.load_order("o1").await.unwrap(),
    );
    assert_eq!(a.state, b.state);
    assert_eq!(a.revision, b.revision);
}
