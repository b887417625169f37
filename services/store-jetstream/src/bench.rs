//! How fast [`JetStreamStore::append`] is, against the raw JetStream publish it is built on,
//! in the same run on the same server, so the ratio between the two is an honest one.
//!
//! - **store**: `writers` tasks, each appending one event at a time to its own event-store
//!   stream with [`ExpectedRevision::Exact`] (`NoStream` first), waiting for each append;
//! - **raw**: `writers` tasks, each publishing one payload of the same size at a time to its
//!   own subject with `jetstream::Context::publish` and waiting for JetStream's ack, into a
//!   second stream created with the store stream's own configuration (storage, replicas,
//!   duplicate window, limits) and only the name and subjects changed.
//!
//! An append costs more than a publish: it first reads the stream's last commit from the
//! stream leader (the optimistic-concurrency check and retry detection), then publishes with
//! `Nats-Expected-Last-Subject-Sequence` and `Nats-Msg-Id` headers, and its message carries
//! the commit envelope around the event. Durability is the server's in both cases (run it
//! with `jetstream { sync_interval: always }` for an fsync per write).
//!
//! The two sides take turns, [`ROUNDS`] slices of `duration / ROUNDS` each, so a change in
//! background load during the run (a shared machine, the server compacting) weighs on both
//! alike. Each call creates two streams with fresh names and deletes them afterwards. No bench
//! framework: wall-clock windows and a count of acknowledgements.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use diandan_store::{AppendRequest, EventStore, ExpectedRevision, NewEvent};

use crate::{JetStreamConfig, JetStreamStore};

/// How many turns each side gets.
pub const ROUNDS: u32 = 3;

/// Measures `writers` concurrent writers for `duration` each side against the NATS server(s)
/// at `url` (`nats://host:port`, several separated by commas); returns
/// `(store events/s, raw publishes/s)`. Every append holds one event of `event_size` bytes of
/// data; every raw publish a payload of `event_size` bytes.
///
/// The store's stream is R1 on file storage, the default [`JetStreamConfig`].
///
/// # Panics
///
/// When NATS cannot be reached, a stream cannot be created, or an append or publish fails:
/// a benchmark with failures in it measures nothing.
pub async fn appends_vs_raw_publish(
    url: &str,
    writers: usize,
    duration: Duration,
    event_size: usize,
) -> (f64, f64) {
    let writers = writers.max(1);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let config = JetStreamConfig {
        stream_name: format!("BENCH_STORE_{run}"),
        subject_prefix: format!("bench{run}"),
        ..JetStreamConfig::new(url)
    };
    let store = JetStreamStore::connect(config.clone())
        .await
        .unwrap_or_else(|e| panic!("connecting the store to {url}: {e}"));

    let servers: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let client = async_nats::ConnectOptions::new()
        .name("diandan-store-jetstream-bench")
        .request_timeout(Some(config.request_timeout))
        .connect(servers)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let mut js = jetstream::new(client);
    js.set_timeout(config.request_timeout);

    // The raw side's stream: the store's stream as it was created, renamed.
    let mut store_stream = js
        .get_stream(&config.stream_name)
        .await
        .unwrap_or_else(|e| panic!("looking up {}: {e}", config.stream_name));
    let mut raw_config = store_stream
        .info()
        .await
        .unwrap_or_else(|e| panic!("reading {}: {e}", config.stream_name))
        .config
        .clone();
    raw_config.name = format!("BENCH_RAW_{run}");
    raw_config.subjects = vec![format!("bench.raw.{run}.>")];
    raw_config.description = Some("diandan store bench: raw publishes".to_owned());
    js.create_stream(raw_config.clone())
        .await
        .unwrap_or_else(|e| panic!("creating {}: {e}", raw_config.name));

    let slice = duration / ROUNDS;
    let mut revisions = vec![ExpectedRevision::NoStream; writers];
    let (mut store_count, mut store_time) = (0u64, Duration::ZERO);
    let (mut raw_count, mut raw_time) = (0u64, Duration::ZERO);
    for _ in 0..ROUNDS {
        let (count, took) = store_appends(&store, &mut revisions, slice, event_size).await;
        store_count += count;
        store_time += took;
        let (count, took) = raw_publishes(&js, &run, writers, slice, event_size).await;
        raw_count += count;
        raw_time += took;
    }
    let store_rate = store_count as f64 / store_time.as_secs_f64();
    let raw_rate = raw_count as f64 / raw_time.as_secs_f64();

    for name in [&config.stream_name, &raw_config.name] {
        if let Err(error) = js.delete_stream(name).await {
            tracing::warn!(stream = %name, %error, "could not delete the bench stream");
        }
    }
    (store_rate, raw_rate)
}

/// One append at a time per writer until `duration` is over, writer `i` to stream
/// `bench-<i>` from `revisions[i]` on (left at where each stream is now); (events, time taken).
async fn store_appends(
    store: &JetStreamStore,
    revisions: &mut [ExpectedRevision],
    duration: Duration,
    event_size: usize,
) -> (u64, Duration) {
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = revisions
        .iter()
        .enumerate()
        .map(|(writer, &expected)| {
            let store = store.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let stream = format!("bench-{writer}");
                let mut expected = expected;
                while Instant::now() < deadline {
                    let request = AppendRequest {
                        stream: stream.clone(),
                        expected,
                        command_id: uuid::Uuid::new_v4().to_string(),
                        events: vec![NewEvent {
                            event_id: uuid::Uuid::new_v4(),
                            event_type: "BenchEvent".to_owned(),
                            data: vec![b'x'; event_size],
                            metadata: Vec::new(),
                        }],
                    };
                    let result = store
                        .append(request)
                        .await
                        .unwrap_or_else(|e| panic!("append to {stream}: {e}"));
                    expected = ExpectedRevision::Exact(result.last_revision);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                expected
            })
        })
        .collect();
    for (slot, task) in revisions.iter_mut().zip(tasks) {
        *slot = task.await.expect("store writer");
    }
    (count.load(Ordering::Relaxed), started.elapsed())
}

/// One publish at a time per writer, each ack awaited, until `duration` is over;
/// (publishes, time taken).
async fn raw_publishes(
    js: &jetstream::Context,
    run: &str,
    writers: usize,
    duration: Duration,
    event_size: usize,
) -> (u64, Duration) {
    let count = Arc::new(AtomicU64::new(0));
    let payload = bytes::Bytes::from(vec![b'x'; event_size]);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let js = js.clone();
            let count = count.clone();
            let payload = payload.clone();
            let subject = format!("bench.raw.{run}.{writer}");
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    js.publish(subject.clone(), payload.clone())
                        .await
                        .unwrap_or_else(|e| panic!("publish to {subject}: {e}"))
                        .await
                        .unwrap_or_else(|e| panic!("ack from {subject}: {e}"));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("raw writer");
    }
    (count.load(Ordering::Relaxed), started.elapsed())
}
