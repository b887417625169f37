//! The behaviour every [`EventStore`] backend must show, as checks a backend's tests call.
//!
//! Each check takes a store, uses stream names of its own (a fresh UUID in each), and
//! panics when the store misbehaves, so checks can share one store and may run side by
//! side: none assumes the global log holds only its own events. Call [`run_all`] with a
//! fresh store, or each check from its own `#[tokio::test]` for finer reports. The checks
//! that subscribe use tokio timers, so call them from inside a tokio runtime.
//!
//! This is test support compiled into the library so other crates' tests can reach it; it
//! must not be called from production code.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;

use crate::{
    AppendRequest, AppendResult, Direction, EventStore, ExpectedRevision, NewEvent, RecordedEvent,
    StoreError, Subscription,
};

/// How long a subscription may take to deliver an event before a check fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Run every check, one after the other, against `store`.
pub async fn run_all(store: &dyn EventStore) {
    append_and_read_back(store).await;
    events_carry_their_hash_chain(store).await;
    rejects_malformed_appends(store).await;
    no_stream_conflicts_with_existing_stream(store).await;
    exact_conflicts_with_other_revision(store).await;
    any_appends_wherever_the_stream_is(store).await;
    concurrent_exact_appends_one_wins(store).await;
    idempotent_append(store).await;
    idempotent_append_under_concurrency(store).await;
    failed_append_writes_nothing(store).await;
    read_stream_directions_and_limits(store).await;
    global_log_order(store).await;
    subscription_catches_up_then_goes_live(store).await;
    subscription_resumes_from_checkpoint(store).await;
    subscription_follows_concurrent_appends(store).await;
}

/// A stream name no other check (or run) uses.
pub fn unique_stream(label: &str) -> String {
    format!("conformance-{label}-{}", uuid::Uuid::new_v4().simple())
}

/// An event whose payload names its stream and index, so a read-back can be checked.
pub fn event(stream: &str, index: usize) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "ConformanceTested".to_owned(),
        data: format!(r#"{{"stream":"{stream}","index":{index}}}"#).into_bytes(),
        metadata: format!(r#"{{"index":{index}}}"#).into_bytes(),
    }
}

/// An append of `count` fresh events with a fresh command id.
pub fn request(stream: &str, expected: ExpectedRevision, count: usize) -> AppendRequest {
    AppendRequest {
        stream: stream.to_owned(),
        expected,
        command_id: uuid::Uuid::new_v4().to_string(),
        events: (0..count).map(|i| event(stream, i)).collect(),
    }
}

async fn append_ok(store: &dyn EventStore, request: AppendRequest) -> AppendResult {
    let stream = request.stream.clone();
    match store.append(request).await {
        Ok(result) => result,
        Err(error) => panic!("append to {stream} failed: {error}"),
    }
}

async fn read_forward(store: &dyn EventStore, stream: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, 0, Direction::Forward, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("reading {stream} failed: {e}"))
}

fn assert_conflict(
    outcome: crate::Result<AppendResult>,
    stream: &str,
    expected: ExpectedRevision,
    actual: Option<u64>,
) {
    match outcome {
        Err(StoreError::WrongExpectedRevision {
            stream: s,
            expected: e,
            actual: a,
        }) => {
            assert_eq!(s, stream, "conflict names the wrong stream");
            assert_eq!(e, expected, "conflict reports the wrong expected revision");
            assert_eq!(a, actual, "conflict reports the wrong actual revision");
        }
        other => panic!("expected a conflict on {stream} (expected {expected}), got {other:?}"),
    }
}

async fn next_event(subscription: &mut Subscription) -> RecordedEvent {
    match tokio::time::timeout(DELIVERY_TIMEOUT, subscription.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(error))) => panic!("subscription failed: {error}"),
        Ok(None) => panic!("subscription ended"),
        Err(_) => panic!("subscription delivered nothing for {DELIVERY_TIMEOUT:?}"),
    }
}

/// Read from `subscription` until `wanted` events of `streams` have arrived, checking that
/// every delivered event (of any stream) comes after the one before it.
async fn collect_from(
    subscription: &mut Subscription,
    streams: &[&str],
    wanted: usize,
    last_position: &mut u64,
) -> Vec<RecordedEvent> {
    let mut found = Vec::with_capacity(wanted);
    while found.len() < wanted {
        let event = next_event(subscription).await;
        assert!(
            event.position > *last_position,
            "subscription delivered position {} after {}",
            event.position,
            last_position
        );
        *last_position = event.position;
        if streams.contains(&event.stream.as_str()) {
            found.push(event);
        }
    }
    found
}

/// Appended events read back exactly, with revisions from 0 and increasing positions.
pub async fn append_and_read_back(store: &dyn EventStore) {
    let stream = unique_stream("read-back");
    let append = request(&stream, ExpectedRevision::NoStream, 3);
    let written = append.events.clone();
    let result = append_ok(store, append).await;
    assert_eq!(result.first_revision, 0);
    assert_eq!(result.last_revision, 2);
    assert!(!result.duplicate);
    assert!(result.last_position >= 3, "positions start at 1");

    let read = read_forward(store, &stream).await;
    assert_eq!(read.len(), 3);
    for (i, (recorded, new)) in read.iter().zip(&written).enumerate() {
        assert_eq!(recorded.stream, stream);
        assert_eq!(recorded.revision, i as u64);
        assert_eq!(recorded.event_id, new.event_id);
        assert_eq!(recorded.event_type, new.event_type);
        assert_eq!(recorded.data, new.data);
        assert_eq!(recorded.metadata, new.metadata);
        assert!(
            recorded.recorded_at_ms > 0,
            "recorded_at_ms is set by the store"
        );
    }
    assert!(read.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(read[2].position, result.last_position);

    let head = store.head_position().await.expect("head position");
    assert!(
        head >= result.last_position,
        "head {head} is behind an acknowledged append"
    );
}

/// Every event carries its link in the stream's hash chain, written by the append itself:
/// over single- and multi-event appends, `Exact` and `Any`, a retry (which must not re-link
/// anything), and the same events read by stream, by log and by subscription.
pub async fn events_carry_their_hash_chain(store: &dyn EventStore) {
    let stream = unique_stream("chain");
    let first = request(&stream, ExpectedRevision::NoStream, 2);
    let mut written = first.events.clone();
    append_ok(store, first.clone()).await;
    let second = request(&stream, ExpectedRevision::Exact(1), 1);
    written.extend(second.events.clone());
    append_ok(store, second).await;
    let third = request(&stream, ExpectedRevision::Any, 3);
    written.extend(third.events.clone());
    let last = append_ok(store, third).await;
    assert!(append_ok(store, first).await.duplicate);

    let expected = crate::chain::chain(&stream, 0, crate::chain::GENESIS, &written);
    let read = read_forward(store, &stream).await;
    assert_eq!(
        read.iter().map(|e| e.hash).collect::<Vec<_>>(),
        expected,
        "stored hashes are not the chain of the appended events"
    );
    let mut prev = crate::chain::GENESIS;
    for event in &read {
        assert!(event.hash_follows(&prev), "revision {}", event.revision);
        prev = event.hash;
    }
    let backward = store
        .read_stream(&stream, u64::MAX, Direction::Backward, 2)
        .await
        .expect("read backward");
    assert_eq!(backward[0].hash, expected[5]);
    let from_log: Vec<_> = store
        .read_all(read[0].position, usize::MAX)
        .await
        .expect("read_all")
        .into_iter()
        .filter(|e| e.stream == stream)
        .map(|e| e.hash)
        .collect();
    assert_eq!(from_log, expected, "the log shows other hashes");
    let mut subscription = store.subscribe_all(last.last_position);
    assert_eq!(next_event(&mut subscription).await.hash, expected[5]);
}

/// No events, no stream name or no command id: `InvalidRequest`, nothing written.
pub async fn rejects_malformed_appends(store: &dyn EventStore) {
    let stream = unique_stream("malformed");
    let mut empty = request(&stream, ExpectedRevision::Any, 1);
    empty.events.clear();
    let mut no_command = request(&stream, ExpectedRevision::Any, 1);
    no_command.command_id.clear();
    let mut no_stream = request(&stream, ExpectedRevision::Any, 1);
    no_stream.stream.clear();
    for bad in [empty, no_command, no_stream] {
        match store.append(bad.clone()).await {
            Err(StoreError::InvalidRequest(_)) => {}
            other => panic!("expected InvalidRequest for {bad:?}, got {other:?}"),
        }
    }
    assert!(read_forward(store, &stream).await.is_empty());
}

/// `NoStream` on a stream that exists is a conflict reporting its revision.
pub async fn no_stream_conflicts_with_existing_stream(store: &dyn EventStore) {
    let stream = unique_stream("no-stream");
    append_ok(store, request(&stream, ExpectedRevision::NoStream, 2)).await;
    let outcome = store
        .append(request(&stream, ExpectedRevision::NoStream, 1))
        .await;
    assert_conflict(outcome, &stream, ExpectedRevision::NoStream, Some(1));
    assert_eq!(read_forward(store, &stream).await.len(), 2);
}

/// `Exact(n)` succeeds only at revision n; on a missing stream the conflict reports `None`.
pub async fn exact_conflicts_with_other_revision(store: &dyn EventStore) {
    let stream = unique_stream("exact");
    let missing = store
        .append(request(&stream, ExpectedRevision::Exact(0), 1))
        .await;
    assert_conflict(missing, &stream, ExpectedRevision::Exact(0), None);

    append_ok(store, request(&stream, ExpectedRevision::NoStream, 1)).await;
    for wrong in [1, 5, u64::MAX] {
        let outcome = store
            .append(request(&stream, ExpectedRevision::Exact(wrong), 1))
            .await;
        assert_conflict(outcome, &stream, ExpectedRevision::Exact(wrong), Some(0));
    }
    let result = append_ok(store, request(&stream, ExpectedRevision::Exact(0), 2)).await;
    assert_eq!((result.first_revision, result.last_revision), (1, 2));
    let result = append_ok(store, request(&stream, ExpectedRevision::Exact(2), 1)).await;
    assert_eq!((result.first_revision, result.last_revision), (3, 3));
}

/// `Any` creates a stream and appends to an existing one.
pub async fn any_appends_wherever_the_stream_is(store: &dyn EventStore) {
    let stream = unique_stream("any");
    let first = append_ok(store, request(&stream, ExpectedRevision::Any, 1)).await;
    assert_eq!(first.first_revision, 0);
    let second = append_ok(store, request(&stream, ExpectedRevision::Any, 2)).await;
    assert_eq!((second.first_revision, second.last_revision), (1, 2));
    assert!(second.last_position > first.last_position);
}

/// Of many concurrent appends expecting the same revision, exactly one wins; the others get
/// a conflict, and the stream grows by the winner's events only.
pub async fn concurrent_exact_appends_one_wins(store: &dyn EventStore) {
    for contenders in [2usize, 16] {
        let stream = unique_stream("race");
        append_ok(store, request(&stream, ExpectedRevision::NoStream, 1)).await;
        let outcomes = futures::future::join_all(
            (0..contenders).map(|_| store.append(request(&stream, ExpectedRevision::Exact(0), 2))),
        )
        .await;
        let mut winners = 0;
        for outcome in outcomes {
            match outcome {
                Ok(result) => {
                    winners += 1;
                    assert_eq!((result.first_revision, result.last_revision), (1, 2));
                }
                Err(StoreError::WrongExpectedRevision { actual, .. }) => {
                    assert_eq!(actual, Some(2), "a loser must see the winner's revision");
                }
                Err(error) => panic!("unexpected error in a race: {error}"),
            }
        }
        assert_eq!(winners, 1, "{contenders} contenders for one revision");
        assert_eq!(read_forward(store, &stream).await.len(), 3);
    }
}

/// A retried command returns the first result with `duplicate: true` and writes nothing,
/// whether its expected revision still holds or has gone stale, and whatever its events.
pub async fn idempotent_append(store: &dyn EventStore) {
    let stream = unique_stream("idempotent");
    let first = request(&stream, ExpectedRevision::NoStream, 2);
    let original = append_ok(store, first.clone()).await;
    assert!(!original.duplicate);

    let retried = append_ok(store, first.clone()).await;
    assert_eq!(
        retried,
        AppendResult {
            duplicate: true,
            ..original
        }
    );

    // The stream moves on; the retry's `NoStream` is stale now but the retry still succeeds.
    append_ok(store, request(&stream, ExpectedRevision::Exact(1), 1)).await;
    let mut stale = first.clone();
    stale.events = vec![event(&stream, 99)];
    let retried = append_ok(store, stale).await;
    assert_eq!(
        retried,
        AppendResult {
            duplicate: true,
            ..original
        }
    );
    assert_eq!(
        read_forward(store, &stream).await.len(),
        3,
        "a retry wrote events"
    );

    // A retry whose expected revision still holds (`Any`) is a retry all the same.
    let any = request(&stream, ExpectedRevision::Any, 2);
    let original = append_ok(store, any.clone()).await;
    let retried = append_ok(store, any).await;
    assert_eq!(
        retried,
        AppendResult {
            duplicate: true,
            ..original
        }
    );
    assert_eq!(
        read_forward(store, &stream).await.len(),
        5,
        "a retry wrote events"
    );

    // The same command id on another stream is another command.
    let other = unique_stream("idempotent-other");
    let mut elsewhere = first;
    elsewhere.stream = other.clone();
    let result = append_ok(store, elsewhere).await;
    assert!(!result.duplicate);
    assert_eq!(read_forward(store, &other).await.len(), 2);
}

/// The same command sent many times at once is written once; every copy gets its result.
pub async fn idempotent_append_under_concurrency(store: &dyn EventStore) {
    let stream = unique_stream("idempotent-burst");
    let command = request(&stream, ExpectedRevision::NoStream, 3);
    let outcomes = futures::future::join_all((0..16).map(|_| store.append(command.clone()))).await;
    let results: Vec<AppendResult> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|e| panic!("a copy of one command failed: {e}")))
        .collect();
    let originals: Vec<_> = results.iter().filter(|r| !r.duplicate).collect();
    assert_eq!(originals.len(), 1, "exactly one copy writes");
    let original = *originals[0];
    for result in &results {
        assert_eq!(
            AppendResult {
                duplicate: false,
                ..*result
            },
            original
        );
    }
    assert_eq!(read_forward(store, &stream).await.len(), 3);
}

/// A rejected multi-event append writes none of its events.
pub async fn failed_append_writes_nothing(store: &dyn EventStore) {
    let stream = unique_stream("atomic");
    let first = append_ok(store, request(&stream, ExpectedRevision::NoStream, 2)).await;
    let rejected = request(&stream, ExpectedRevision::Exact(0), 5);
    let rejected_ids: HashSet<_> = rejected.events.iter().map(|e| e.event_id).collect();
    let outcome = store.append(rejected.clone()).await;
    assert_conflict(outcome, &stream, ExpectedRevision::Exact(0), Some(1));

    let read = read_forward(store, &stream).await;
    assert_eq!(read.len(), 2);
    assert!(read.iter().all(|e| !rejected_ids.contains(&e.event_id)));
    let log = store
        .read_all(first.last_position + 1, usize::MAX)
        .await
        .expect("read_all");
    assert!(
        log.iter().all(|e| !rejected_ids.contains(&e.event_id)),
        "a rejected append reached the global log"
    );

    // Its command id was not used up: the same command, corrected, goes through.
    let mut corrected = rejected;
    corrected.expected = ExpectedRevision::Exact(1);
    let result = append_ok(store, corrected).await;
    assert!(!result.duplicate);
    assert_eq!((result.first_revision, result.last_revision), (2, 6));
}

/// Reading a stream forward and backward, from any revision, with limits.
pub async fn read_stream_directions_and_limits(store: &dyn EventStore) {
    let stream = unique_stream("read");
    let mut expected = ExpectedRevision::NoStream;
    for _ in 0..5 {
        let result = append_ok(store, request(&stream, expected, 2)).await;
        expected = ExpectedRevision::Exact(result.last_revision);
    }
    let revisions = |events: Vec<RecordedEvent>| -> Vec<u64> {
        events.into_iter().map(|e| e.revision).collect()
    };
    let read = |from, direction, max| store.read_stream(&stream, from, direction, max);
    use Direction::{Backward, Forward};

    assert_eq!(revisions(read(0, Forward, 3).await.unwrap()), [0, 1, 2]);
    assert_eq!(revisions(read(4, Forward, 3).await.unwrap()), [4, 5, 6]);
    assert_eq!(revisions(read(8, Forward, 5).await.unwrap()), [8, 9]);
    assert!(read(10, Forward, 5).await.unwrap().is_empty());
    assert!(read(0, Forward, 0).await.unwrap().is_empty());
    assert_eq!(read(0, Forward, usize::MAX).await.unwrap().len(), 10);

    assert_eq!(
        revisions(read(u64::MAX, Backward, 3).await.unwrap()),
        [9, 8, 7]
    );
    assert_eq!(
        revisions(read(4, Backward, 10).await.unwrap()),
        [4, 3, 2, 1, 0]
    );
    assert_eq!(revisions(read(0, Backward, 10).await.unwrap()), [0]);
    assert!(read(u64::MAX, Backward, 0).await.unwrap().is_empty());

    let forward = read(0, Forward, usize::MAX).await.unwrap();
    assert!(forward.windows(2).all(|w| w[0].position < w[1].position));

    let missing = unique_stream("missing");
    for direction in [Forward, Backward] {
        let events = store
            .read_stream(&missing, 0, direction, 10)
            .await
            .expect("reading a missing stream");
        assert!(events.is_empty(), "a missing stream reads as empty");
    }
}

/// The global log holds every stream's events in the order their appends were acknowledged,
/// and can be paged through with `read_all`.
pub async fn global_log_order(store: &dyn EventStore) {
    let a = unique_stream("log-a");
    let b = unique_stream("log-b");
    let mut acknowledged = Vec::new();
    let (mut next_a, mut next_b) = (ExpectedRevision::NoStream, ExpectedRevision::NoStream);
    for round in 0..6 {
        let (stream, next) = if round % 2 == 0 {
            (&a, &mut next_a)
        } else {
            (&b, &mut next_b)
        };
        let result = append_ok(store, request(stream, *next, 1 + round % 3)).await;
        *next = ExpectedRevision::Exact(result.last_revision);
        for revision in result.first_revision..=result.last_revision {
            acknowledged.push((stream.clone(), revision));
        }
    }
    let first = store
        .read_stream(&a, 0, Direction::Forward, 1)
        .await
        .unwrap()[0]
        .position;

    // Page through the log three events at a time.
    let mut seen = Vec::new();
    let mut from = first;
    let mut last_position = 0;
    while seen.len() < acknowledged.len() {
        let page = store.read_all(from, 3).await.expect("read_all");
        assert!(!page.is_empty(), "the log ended before our events did");
        assert!(page.len() <= 3, "read_all ignored its limit");
        for event in page {
            assert!(
                event.position >= from,
                "read_all returned a position before `from`"
            );
            assert!(event.position > last_position, "read_all is out of order");
            last_position = event.position;
            from = event.position + 1;
            if event.stream == a || event.stream == b {
                seen.push((event.stream, event.revision));
            }
        }
    }
    assert_eq!(seen, acknowledged);
    assert!(store.read_all(first, 0).await.unwrap().is_empty());

    // Payloads only (a rebuild's read), in small pages and in one large one (a scan): the same
    // events, with the metadata as stored or left out.
    let full = store.read_all(first, acknowledged.len()).await.unwrap();
    for max in [3, 5000] {
        let mut payloads: Vec<RecordedEvent> = Vec::new();
        while payloads.len() < full.len() {
            let from = payloads.last().map_or(first, |e| e.position + 1);
            let page = store
                .read_all_payloads(from, max)
                .await
                .expect("read_all_payloads");
            assert!(
                !page.is_empty() && page.len() <= max,
                "read_all_payloads paging"
            );
            payloads.extend(page);
        }
        for (light, whole) in payloads.iter().zip(&full) {
            assert_eq!(
                (
                    light.position,
                    &light.stream,
                    light.revision,
                    light.event_id
                ),
                (
                    whole.position,
                    &whole.stream,
                    whole.revision,
                    whole.event_id
                )
            );
            assert_eq!(
                (&light.event_type, &light.data),
                (&whole.event_type, &whole.data)
            );
            assert_eq!(light.recorded_at_ms, whole.recorded_at_ms);
            assert!(light.metadata.is_empty() || light.metadata == whole.metadata);
        }
    }
}

/// A subscription from position 1 delivers everything stored, then what is appended later.
pub async fn subscription_catches_up_then_goes_live(store: &dyn EventStore) {
    let stream = unique_stream("subscribe");
    let stored = append_ok(store, request(&stream, ExpectedRevision::NoStream, 3)).await;

    let mut subscription = store.subscribe_all(1);
    let first = next_event(&mut subscription).await;
    assert_eq!(
        first.position, 1,
        "a subscription from 1 starts at the first event"
    );
    let mut last_position = first.position;
    let caught_up = if first.stream == stream {
        let mut events = vec![first];
        events.extend(collect_from(&mut subscription, &[&stream], 2, &mut last_position).await);
        events
    } else {
        collect_from(&mut subscription, &[&stream], 3, &mut last_position).await
    };
    let revisions: Vec<u64> = caught_up.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [0, 1, 2]);
    assert_eq!(caught_up[2].position, stored.last_position);

    // Live: appended after the subscription caught up.
    let live = append_ok(store, request(&stream, ExpectedRevision::Exact(2), 2)).await;
    let delivered = collect_from(&mut subscription, &[&stream], 2, &mut last_position).await;
    let revisions: Vec<u64> = delivered.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [3, 4]);
    assert_eq!(delivered[1].position, live.last_position);
}

/// A subscription from position k delivers exactly the events at k and after.
pub async fn subscription_resumes_from_checkpoint(store: &dyn EventStore) {
    let stream = unique_stream("resume");
    let mut expected = ExpectedRevision::NoStream;
    for _ in 0..5 {
        let result = append_ok(store, request(&stream, expected, 1)).await;
        expected = ExpectedRevision::Exact(result.last_revision);
    }
    let events = read_forward(store, &stream).await;
    let checkpoint = events[2].position;

    let mut subscription = store.subscribe_all(checkpoint);
    let first = next_event(&mut subscription).await;
    assert_eq!(first.position, checkpoint, "resumed at the wrong position");
    assert_eq!(
        (first.stream.as_str(), first.revision),
        (stream.as_str(), 2)
    );
    let mut last_position = first.position;
    let rest = collect_from(&mut subscription, &[&stream], 2, &mut last_position).await;
    let revisions: Vec<u64> = rest.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [3, 4]);

    // A checkpoint past the head waits for the next event.
    let head = store.head_position().await.expect("head position");
    let mut subscription = store.subscribe_all(head + 1);
    let appended = append_ok(store, request(&stream, ExpectedRevision::Exact(4), 1)).await;
    let mut last_position = head;
    let live = collect_from(&mut subscription, &[&stream], 1, &mut last_position).await;
    assert_eq!(live[0].position, appended.last_position);
}

/// While many appends race, a live subscription delivers each acknowledged event once, in
/// position order.
pub async fn subscription_follows_concurrent_appends(store: &dyn EventStore) {
    let streams: Vec<String> = (0..8).map(|_| unique_stream("follow")).collect();
    let names: Vec<&str> = streams.iter().map(String::as_str).collect();
    let head = store.head_position().await.expect("head position");
    let mut subscription = store.subscribe_all(head + 1);

    let appends = streams.iter().map(|stream| async move {
        let mut expected = ExpectedRevision::NoStream;
        let mut acknowledged = Vec::new();
        for _ in 0..10 {
            let result = append_ok(store, request(stream, expected, 2)).await;
            expected = ExpectedRevision::Exact(result.last_revision);
            acknowledged.push((stream.as_str(), result.last_revision, result.last_position));
        }
        acknowledged
    });
    let mut last_position = head;
    let (acknowledged, delivered) = futures::join!(
        futures::future::join_all(appends),
        collect_from(&mut subscription, &names, 8 * 10 * 2, &mut last_position),
    );

    // Each stream arrives whole, once, in revision order...
    for stream in &names {
        let revisions: Vec<u64> = delivered
            .iter()
            .filter(|e| e.stream == *stream)
            .map(|e| e.revision)
            .collect();
        assert_eq!(revisions, (0..20).collect::<Vec<u64>>(), "{stream}");
    }
    // ...and every acknowledged append sits where its result said.
    for (stream, revision, position) in acknowledged.into_iter().flatten() {
        let event = delivered
            .iter()
            .find(|e| e.position == position)
            .unwrap_or_else(|| panic!("position {position} was acknowledged, not delivered"));
        assert_eq!((event.stream.as_str(), event.revision), (stream, revision));
    }
}
