//! How fast durable appends are: this crate's [`SqliteStore`] against plain SQLite inserts
//! with the same durability settings, so the ratio between the two is an honest one.
//!
//! Both write to files in a directory the caller gives and owns (a temporary one, usually);
//! each run first deletes the files of its previous run there. No bench framework: a fixed
//! wall-clock window, a count, and latency percentiles.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use crate::sqlite::{backend, SqliteStore, BUSY_TIMEOUT, PAGE_SIZE};
use crate::wal_checkpointer::RESTART_FRAMES;
use crate::{AppendRequest, EventStore, ExpectedRevision, NewEvent, Result, StoreError};

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppendBench {
    /// Concurrent writers.
    pub writers: usize,
    /// Events acknowledged as durable.
    pub events: u64,
    /// Wall-clock seconds from the first write to the last acknowledgement.
    pub seconds: f64,
    pub events_per_sec: f64,
    /// Median time one write waited for its acknowledgement.
    pub p50_latency: Duration,
    /// 99th-percentile time one write waited for its acknowledgement.
    pub p99_latency: Duration,
}

impl AppendBench {
    fn from_latencies(writers: usize, elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        let percentile = |p: usize| {
            latencies
                .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        let seconds = elapsed.as_secs_f64();
        AppendBench {
            writers,
            events: latencies.len() as u64,
            seconds,
            events_per_sec: latencies.len() as f64 / seconds.max(f64::EPSILON),
            p50_latency: percentile(50),
            p99_latency: percentile(99),
        }
    }
}

impl fmt::Display for AppendBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>4} writers: {:>9} events in {:.2}s = {:>9.0} events/s, p50 {:.2?}, p99 {:.2?}",
            self.writers,
            self.events,
            self.seconds,
            self.events_per_sec,
            self.p50_latency,
            self.p99_latency
        )
    }
}

/// `writers` tasks, each appending one `event_size`-byte event at a time to its own stream
/// with exact expected revisions, for `duration`, through a fresh [`SqliteStore`] in `dir`.
///
/// Run it on a multi-threaded tokio runtime, as the service would.
pub async fn durable_appends(
    dir: &Path,
    writers: usize,
    duration: Duration,
    event_size: usize,
) -> Result<AppendBench> {
    durable_appends_with(dir, writers, duration, event_size, true).await
}

/// [`durable_appends`], with the hash chain on (as always in service) or off (the baseline
/// that measures what the chain costs).
pub async fn durable_appends_with(
    dir: &Path,
    writers: usize,
    duration: Duration,
    event_size: usize,
    chained: bool,
) -> Result<AppendBench> {
    let path = fresh_file(dir, "durable-appends.db")?;
    let store = Arc::new(if chained {
        SqliteStore::open(&path)?
    } else {
        SqliteStore::open_unchained(&path)?
    });
    let payload = vec![b'x'; event_size];
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = Arc::clone(&store);
            let payload = payload.clone();
            tokio::spawn(async move {
                let stream = format!("bench-{writer}");
                let mut expected = ExpectedRevision::NoStream;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let request = AppendRequest {
                        stream: stream.clone(),
                        expected,
                        command_id: format!("{writer}-{}", latencies.len()),
                        events: vec![NewEvent {
                            event_id: uuid::Uuid::new_v4(),
                            event_type: "BenchEventAppended".into(),
                            data: payload.clone(),
                            metadata: b"{}".to_vec(),
                        }],
                    };
                    let sent = Instant::now();
                    let result = store.append(request).await?;
                    latencies.push(sent.elapsed());
                    expected = ExpectedRevision::Exact(result.last_revision);
                }
                Ok::<_, StoreError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        let task = task
            .await
            .map_err(|e| StoreError::Backend(format!("bench writer failed: {e}")))?;
        latencies.extend(task?);
    }
    let elapsed = started.elapsed();
    // Closing the store joins its writer thread: keep that off the async worker.
    tokio::task::spawn_blocking(move || drop(store))
        .await
        .map_err(|e| StoreError::Backend(format!("closing the bench store failed: {e}")))?;
    Ok(AppendBench::from_latencies(writers, elapsed, latencies))
}

/// The baseline: `writers` threads, each with its own connection, each inserting one row of
/// the same shape and size as an event, one transaction per insert, with the store's
/// durability and layout settings (WAL, `synchronous=FULL`, page size), checkpointing where the
/// store's WAL starts over (plain SQLite has no checkpointer thread: its writers checkpoint).
/// SQLite's own locking (busy timeout) serialises them.
pub fn raw_sqlite_inserts(
    dir: &Path,
    writers: usize,
    duration: Duration,
    event_size: usize,
) -> Result<AppendBench> {
    let path = fresh_file(dir, "raw-inserts.db")?;
    let setup = connect(&path).map_err(backend)?;
    setup
        .execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE};
             PRAGMA journal_mode = WAL;
             PRAGMA wal_autocheckpoint = {RESTART_FRAMES};
             CREATE TABLE raw (
                 position       INTEGER PRIMARY KEY,
                 stream         TEXT    NOT NULL,
                 revision       INTEGER NOT NULL,
                 event_id       BLOB    NOT NULL,
                 event_type     TEXT    NOT NULL,
                 data           BLOB    NOT NULL,
                 metadata       BLOB    NOT NULL,
                 recorded_at_ms INTEGER NOT NULL,
                 UNIQUE (stream, revision)
             );"
        ))
        .map_err(backend)?;
    let payload = vec![b'x'; event_size];
    let started = Instant::now();
    let deadline = started + duration;
    let per_writer: Vec<rusqlite::Result<Vec<Duration>>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..writers)
            .map(|writer| {
                let (path, payload) = (&path, &payload);
                scope.spawn(move || -> rusqlite::Result<Vec<Duration>> {
                    let conn = connect(path)?;
                    // Hundreds of threads queue on one lock; let them wait rather than fail.
                    conn.busy_timeout(BUSY_TIMEOUT * 12)?;
                    let stream = format!("bench-{writer}");
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        conn.execute_batch("BEGIN IMMEDIATE")?;
                        conn.prepare_cached(
                            "INSERT INTO raw (stream, revision, event_id, event_type, data, \
                             metadata, recorded_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )?
                        .execute(params![
                            stream,
                            latencies.len() as u64,
                            uuid::Uuid::new_v4().as_bytes(),
                            "BenchEventAppended",
                            payload,
                            b"{}".as_slice(),
                            0i64,
                        ])?;
                        conn.execute_batch("COMMIT")?;
                        latencies.push(sent.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a bench thread panicked"))
            .collect()
    });
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    for writer in per_writer {
        latencies.extend(writer.map_err(backend)?);
    }
    Ok(AppendBench::from_latencies(writers, elapsed, latencies))
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA synchronous = FULL;")?;
    Ok(conn)
}

/// `dir/name`, with the database files of an earlier run there removed.
fn fresh_file(dir: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let file = PathBuf::from(file);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot remove {}: {e}",
                    file.display()
                )))
            }
        }
    }
    Ok(path)
}
