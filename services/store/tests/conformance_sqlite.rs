//! The conformance suite against `SqliteStore`, each check on a fresh file, plus what only a
//! file-backed store can show: data survives closing and reopening.

use diandan_store::conformance::{self, request};
use diandan_store::{Direction, EventStore, ExpectedRevision, SqliteStore};
use futures::StreamExt;

fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("nested/dir/events.db")).expect("open store");
    (dir, store)
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let (_dir, store) = fresh_store();
            conformance::$check(&store).await;
        }
    )*};
}

conformance_tests!(
    append_and_read_back,
    events_carry_their_hash_chain,
    rejects_malformed_appends,
    no_stream_conflicts_with_existing_stream,
    exact_conflicts_with_other_revision,
    any_appends_wherever_the_stream_is,
    concurrent_exact_appends_one_wins,
    idempotent_append,
    idempotent_append_under_concurrency,
    failed_append_writes_nothing,
    read_stream_directions_and_limits,
    global_log_order,
    subscription_catches_up_then_goes_live,
    subscription_resumes_from_checkpoint,
    subscription_follows_concurrent_appends,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_checks_share_one_store() {
    let (_dir, store) = fresh_store();
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_side_by_side_on_one_store() {
    let (_dir, store) = fresh_store();
    futures::join!(
        conformance::run_all(&store),
        conformance::run_all(&store),
        conformance::subscription_follows_concurrent_appends(&store),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_the_log_and_positions_continue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");

    let store = SqliteStore::open(&path).expect("open");
    let first = request("order-1", ExpectedRevision::NoStream, 3);
    let written = store.append(first.clone()).await.expect("append");
    assert_eq!(written.last_position, 3);
    drop(store);

    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.head_position().await.unwrap(), 3);
    let events = store
        .read_stream("order-1", 0, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        first.events.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );

    // The command is still remembered, and new events continue the log.
    let retried = store.append(first).await.expect("retry");
    assert!(retried.duplicate);
    assert_eq!(retried.last_position, 3);
    let next = store
        .append(request("order-2", ExpectedRevision::NoStream, 1))
        .await
        .expect("append after reopen");
    assert_eq!(next.last_position, 4);
    let next = store
        .append(request("order-1", ExpectedRevision::Exact(2), 1))
        .await
        .expect("append after reopen");
    assert_eq!((next.last_revision, next.last_position), (3, 5));

    let positions: Vec<u64> = store
        .subscribe_all(1)
        .take(5)
        .map(|e| e.expect("event").position)
        .collect()
        .await;
    assert_eq!(positions, [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_store_ends_its_subscriptions_after_delivering_everything() {
    let (_dir, store) = fresh_store();
    store
        .append(request("s", ExpectedRevision::NoStream, 2))
        .await
        .unwrap();
    let subscription = store.subscribe_all(1);
    drop(store);
    let delivered: Vec<_> = subscription.collect().await;
    assert_eq!(delivered.len(), 2);
    assert!(delivered.iter().all(Result::is_ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_closes_every_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).expect("open");
    store
        .append(request("s", ExpectedRevision::NoStream, 2))
        .await
        .unwrap();
    store.read_all(1, 10).await.unwrap();
    assert!(dir.path().join("events.db-wal").exists());
    drop(store);
    // SQLite checkpoints and deletes the WAL when the last connection to the file closes.
    assert!(!dir.path().join("events.db-wal").exists());
}
