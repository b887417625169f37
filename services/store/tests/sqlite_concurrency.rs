//! `SqliteStore` under many concurrent appenders: group commit must not blur one append's
//! outcome into another's.

use std::collections::BTreeSet;
use std::sync::Arc;

use diandan_store::conformance::request;
use diandan_store::{Direction, EventStore, ExpectedRevision, SqliteStore, StoreError};

fn fresh_store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open store");
    (dir, Arc::new(store))
}

/// 256 appenders race on one stream, each reading the stream's revision and appending with
/// `Exact` of it, a few times over. Every revision is won exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_appenders_win_each_revision_once() {
    let (_dir, store) = fresh_store();
    store
        .append(request("race", ExpectedRevision::NoStream, 1))
        .await
        .unwrap();

    let tasks: Vec<_> = (0..256)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut won = Vec::new();
                for _ in 0..4 {
                    let last = store
                        .read_stream("race", u64::MAX, Direction::Backward, 1)
                        .await
                        .unwrap()[0]
                        .revision;
                    match store
                        .append(request("race", ExpectedRevision::Exact(last), 1))
                        .await
                    {
                        Ok(result) => won.push(result.last_revision),
                        Err(StoreError::WrongExpectedRevision { actual, .. }) => {
                            assert!(actual > Some(last), "lost to nobody");
                        }
                        Err(error) => panic!("unexpected error: {error}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        won.extend(task.await.unwrap());
    }

    let distinct: BTreeSet<u64> = won.iter().copied().collect();
    assert_eq!(distinct.len(), won.len(), "a revision was won twice");
    assert_eq!(distinct, (1..=won.len() as u64).collect());
    let stream = store
        .read_stream("race", 0, Direction::Forward, usize::MAX)
        .await
        .unwrap();
    assert_eq!(stream.len(), won.len() + 1);
    assert!(won.len() >= 4, "only {} appends won", won.len());
}

/// 256 appenders all expecting revision 0 at once: one wins, 255 conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_256_simultaneous_exact_appends_wins() {
    let (_dir, store) = fresh_store();
    store
        .append(request("hot", ExpectedRevision::NoStream, 1))
        .await
        .unwrap();
    let outcomes = futures::future::join_all(
        (0..256).map(|_| store.append(request("hot", ExpectedRevision::Exact(0), 1))),
    )
    .await;
    let wins = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(wins, 1);
    assert!(outcomes.iter().all(|o| matches!(
        o,
        Ok(_)
            | Err(StoreError::WrongExpectedRevision {
                actual: Some(1),
                ..
            })
    )));
}

/// A burst large enough to fill whole batches, with conflicting appends mixed in: every
/// good append is acknowledged and stored, every bad one rejected and absent, and the log
/// has no holes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_inside_full_batches_do_not_sink_the_others() {
    let (_dir, store) = fresh_store();
    let requests: Vec<_> = (0..3000)
        .map(|i| {
            let stream = format!("stream-{i}");
            if i % 100 == 7 {
                request(&stream, ExpectedRevision::Exact(3), 2)
            } else {
                request(&stream, ExpectedRevision::NoStream, 2)
            }
        })
        .collect();
    let outcomes =
        futures::future::join_all(requests.iter().map(|request| store.append(request.clone())))
            .await;
    let mut positions = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        if i % 100 == 7 {
            assert!(
                matches!(
                    outcome,
                    Err(StoreError::WrongExpectedRevision { actual: None, .. })
                ),
                "{outcome:?}"
            );
        } else {
            let result = outcome.unwrap();
            positions.push(result.last_position);
        }
    }
    let head = store.head_position().await.unwrap();
    assert_eq!(head, 2 * positions.len() as u64);
    let log = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>()
    );
    for i in (7..3000).step_by(100) {
        assert!(store
            .read_stream(&format!("stream-{i}"), 0, Direction::Forward, 10)
            .await
            .unwrap()
            .is_empty());
    }
}
