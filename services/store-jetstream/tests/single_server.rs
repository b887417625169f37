//! The conformance suite against one nats-server of each version we can find, plus what only
//! this backend needs shown: the log survives a server crash and restart, retries are
//! recognised after JetStream's duplicate window, awkward stream names are stored safely, and
//! a stream configured differently is refused.

mod support;

use std::time::{Duration, Instant};

use diandan_store::conformance::{self, request};
use diandan_store::{Direction, EventStore, ExpectedRevision, StoreError};
use diandan_store_jetstream::{JetStreamConfig, JetStreamStore, EVENTS_PER_COMMIT};
use futures::StreamExt;
use support::{NatsServer, NatsServerBinary};

/// The position of event `index` of the message at `sequence` (see the crate docs).
fn position(sequence: u64, index: u64) -> u64 {
    (sequence - 1) * EVENTS_PER_COMMIT + index + 1
}

/// The whole suite, then the suite twice side by side with a subscription, on one server.
async fn conformance_on(binary: &NatsServerBinary) {
    let server = NatsServer::start(binary).await;
    let store = support::connect(support::config(&server.url)).await;
    let started = Instant::now();
    conformance::run_all(&store).await;
    eprintln!(
        "{}: run_all took {:?}",
        binary.describe(),
        started.elapsed()
    );
    futures::join!(
        conformance::run_all(&store),
        conformance::run_all(&store),
        conformance::subscription_follows_concurrent_appends(&store),
    );
    eprintln!(
        "{}: with two more side by side, {:?}",
        binary.describe(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_the_server_found() {
    let Some(binary) = support::primary_or_skip("conformance_on_the_server_found") else {
        return;
    };
    conformance_on(&binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_the_legacy_server() {
    let test = "conformance_on_the_legacy_server";
    if let Some(binary) = support::env_binary_or_skip(test, "NATS_SERVER_BIN_LEGACY") {
        conformance_on(&binary).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_the_current_server() {
    let test = "conformance_on_the_current_server";
    if let Some(binary) = support::env_binary_or_skip(test, "NATS_SERVER_BIN_CURRENT") {
        conformance_on(&binary).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_survives_a_crash_and_positions_continue() {
    let Some(binary) = support::primary_or_skip("reopen") else {
        return;
    };
    let mut server = NatsServer::start(&binary).await;
    let mut config = support::config(&server.url);

    let store = support::connect(config.clone()).await;
    let first = request("order-1", ExpectedRevision::NoStream, 3);
    let written = store.append(first.clone()).await.expect("append");
    assert_eq!(written.last_position, 3);
    drop(store);

    // SIGKILL, then a new process on the same store directory.
    server.restart().await;
    config.url = server.url.clone();
    let store = support::connect(config).await;
    assert_eq!(store.head_position().await.unwrap(), 3);
    let events = store
        .read_stream("order-1", 0, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        first.events.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );

    // The command is still remembered, and new commits continue the log.
    let retried = store.append(first).await.expect("retry");
    assert_eq!(
        retried,
        diandan_store::AppendResult {
            duplicate: true,
            ..written
        }
    );
    let next = store
        .append(request("order-2", ExpectedRevision::NoStream, 1))
        .await
        .expect("append after restart");
    assert_eq!(next.last_position, position(2, 0));
    let next = store
        .append(request("order-1", ExpectedRevision::Exact(2), 1))
        .await
        .expect("append after restart");
    assert_eq!(
        (next.last_revision, next.last_position),
        (3, position(3, 0))
    );

    let positions: Vec<u64> = store
        .subscribe_all(1)
        .take(5)
        .map(|e| e.expect("event").position)
        .collect()
        .await;
    assert_eq!(positions, [1, 2, 3, position(2, 0), position(3, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_recognised_after_the_duplicate_window() {
    let Some(binary) = support::primary_or_skip("duplicate_window") else {
        return;
    };
    let server = NatsServer::start(&binary).await;
    let window = Duration::from_millis(200);
    let store = support::connect(JetStreamConfig {
        duplicate_window: window,
        ..support::config(&server.url)
    })
    .await;
    let stream = conformance::unique_stream("late-retry");
    let append = |expected| store.append(request(&stream, expected, 1));

    // Commits 0..=40 (revisions); remember a NoStream, an Exact and two Any commands.
    let created = request(&stream, ExpectedRevision::NoStream, 1);
    let created_result = store.append(created.clone()).await.unwrap();
    for revision in 0..10 {
        append(ExpectedRevision::Exact(revision)).await.unwrap();
    }
    let exact = request(&stream, ExpectedRevision::Exact(10), 2);
    let exact_result = store.append(exact.clone()).await.unwrap();
    let any_old = request(&stream, ExpectedRevision::Any, 1);
    let any_old_result = store.append(any_old.clone()).await.unwrap();
    for revision in 13..30 {
        append(ExpectedRevision::Exact(revision)).await.unwrap();
    }
    let any_recent = request(&stream, ExpectedRevision::Any, 1);
    let any_recent_result = store.append(any_recent.clone()).await.unwrap();
    for revision in 31..40 {
        append(ExpectedRevision::Exact(revision)).await.unwrap();
    }
    tokio::time::sleep(window * 3).await;

    let duplicate = |r: diandan_store::AppendResult| diandan_store::AppendResult {
        duplicate: true,
        ..r
    };
    // A NoStream retry finds the stream's first commit, an Exact(n) retry the commit at n + 1,
    // however many commits came after.
    assert_eq!(
        store.append(created).await.unwrap(),
        duplicate(created_result)
    );
    assert_eq!(store.append(exact).await.unwrap(), duplicate(exact_result));
    // An Any retry is found among the last commit and the 16 it remembers.
    assert_eq!(
        store.append(any_recent).await.unwrap(),
        duplicate(any_recent_result)
    );
    let length = store
        .read_stream(&stream, 0, Direction::Forward, usize::MAX)
        .await
        .unwrap()
        .len();
    assert_eq!(length, 41, "a late retry wrote events");

    // The documented limit: an Any retry more than 16 commits and the duplicate window after
    // its original is a new append.
    let again = store.append(any_old).await.unwrap();
    assert!(!again.duplicate);
    assert_ne!(again.first_revision, any_old_result.first_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_stream_names_are_kept_apart() {
    let Some(binary) = support::primary_or_skip("stream_names") else {
        return;
    };
    let server = NatsServer::start(&binary).await;
    let store = support::connect(support::config(&server.url)).await;
    let names = [
        "a.b", "a%2Eb", "a b", "a*", "a>", "派单-1", "a\tb", ">", "%",
    ];
    for name in names {
        store
            .append(request(name, ExpectedRevision::NoStream, 2))
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
    for name in names {
        let events = store
            .read_stream(name, 0, Direction::Forward, 10)
            .await
            .unwrap();
        assert_eq!(events.len(), 2, "{name:?}");
        assert!(events.iter().all(|e| e.stream == name));
    }
    let too_long = "x".repeat(2000);
    assert!(matches!(
        store
            .append(request(&too_long, ExpectedRevision::Any, 1))
            .await,
        Err(StoreError::InvalidRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_appends_and_mismatched_streams_are_refused() {
    let Some(binary) = support::primary_or_skip("refusals") else {
        return;
    };
    let server = NatsServer::start(&binary).await;
    let config = support::config(&server.url);
    let store = support::connect(config.clone()).await;

    let mut big = request("big", ExpectedRevision::Any, 1);
    big.events[0].data = vec![b'x'; 2 << 20];
    assert!(matches!(
        store.append(big).await,
        Err(StoreError::InvalidRequest(_))
    ));

    match JetStreamStore::connect(JetStreamConfig {
        replicas: 3,
        ..config.clone()
    })
    .await
    {
        Err(StoreError::Backend(why)) => assert!(why.contains("replicas"), "{why}"),
        other => panic!("a stream with other replicas was accepted: {other:?}"),
    }
    match JetStreamStore::connect(JetStreamConfig {
        subject_prefix: "other".to_owned(),
        ..config
    })
    .await
    {
        Err(StoreError::Backend(why)) => assert!(why.contains("subjects"), "{why}"),
        other => panic!("a stream with other subjects was accepted: {other:?}"),
    }

    drop(server);
    match JetStreamStore::connect(support::config("nats://127.0.0.1:1")).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("connecting to nothing: {other:?}"),
    }
}

/// Not a check: prints what appends cost on this machine, for the crate docs and reviews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_latency_report() {
    let Some(binary) = support::primary_or_skip("latency") else {
        return;
    };
    let server = NatsServer::start(&binary).await;
    let store = support::connect(support::config(&server.url)).await;
    let stream = conformance::unique_stream("latency");
    let mut expected = ExpectedRevision::NoStream;
    let mut latencies = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        let result = store.append(request(&stream, expected, 2)).await.unwrap();
        latencies.push(started.elapsed());
        expected = ExpectedRevision::Exact(result.last_revision);
    }
    let started = Instant::now();
    let events = store
        .read_stream(&stream, 0, Direction::Forward, usize::MAX)
        .await
        .unwrap();
    let read_stream = started.elapsed();
    let started = Instant::now();
    let log = store.read_all(1, usize::MAX).await.unwrap();
    let read_all = started.elapsed();
    assert_eq!((events.len(), log.len()), (600, 600));

    // Sixteen writers, each on its own stream, at once.
    let started = Instant::now();
    futures::future::join_all((0..16).map(|_| {
        let store = &store;
        async move {
            let stream = conformance::unique_stream("latency-concurrent");
            let mut expected = ExpectedRevision::NoStream;
            for _ in 0..50 {
                let result = store.append(request(&stream, expected, 2)).await.unwrap();
                expected = ExpectedRevision::Exact(result.last_revision);
            }
        }
    }))
    .await;
    let concurrent = started.elapsed();

    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{} (sync always: {}): sequential 2-event Exact appends p50 {:?} p90 {:?} p99 {:?} max {:?}; \
         read_stream of 300 commits {read_stream:?}; read_all of 600 events {read_all:?}; \
         16 writers x 50 appends in {concurrent:?} ({:.0} appends/s)",
        binary.describe(),
        binary.supports_sync_always(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        800.0 / concurrent.as_secs_f64(),
    );
}
