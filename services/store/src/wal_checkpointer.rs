//! Checkpoints of the SQLite store's write-ahead log, off the writer thread.
//!
//! A WAL checkpoint copies the pages committed to the WAL into the main file and syncs that
//! file. Left to SQLite (`wal_autocheckpoint`), the commit that crosses the threshold runs it
//! on the writer thread, and every append queued behind that commit waits: under the HTTP
//! flows the writer synced the main file every ~0.8 s, each sync alone 9–54 ms (`perf trace`),
//! and those pauses were most of the command p99 at 80% load.
//!
//! Here a thread of its own with its own connection runs a passive checkpoint every
//! [`CHECKPOINT_EVERY`] while the log grows, and syncs the main file after it. A passive
//! checkpoint never blocks the writer: it copies what was committed when it started, while
//! new frames keep coming. Under steady writes it therefore seldom catches up with the writer,
//! and SQLite syncs the main file, and starts the WAL over from its beginning, only when a
//! checkpoint copied every frame. So once the WAL is [`RESTART_FRAMES`] long, the
//! checkpointer asks the writer (a flag) to run one more checkpoint itself, between two of its
//! transactions: that one copies only what was committed since the checkpointer's — a few
//! milliseconds of writes — syncs the little it wrote, and lets the next transaction start the
//! WAL over.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::watch;

use crate::{Result, StoreError};

/// How often the checkpointer looks at the log.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// WAL frames after which the writer is asked to let the WAL start over (32 MiB of 2 KiB
/// pages). Larger means fewer pauses of the writer and a longer file.
pub(crate) const RESTART_FRAMES: i64 = 16384;

/// The checkpointer thread; dropping it stops the thread and waits for it.
pub(crate) struct WalCheckpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WalCheckpointer {
    /// Starts checkpointing the store file at `path` whenever `head` (the last committed
    /// position) has moved since the last checkpoint; raises `restart` when the writer should
    /// checkpoint.
    pub(crate) fn start(
        path: &Path,
        head: watch::Receiver<u64>,
        restart: Arc<AtomicBool>,
    ) -> Result<WalCheckpointer> {
        let failed =
            |e: &dyn std::fmt::Display| StoreError::Backend(format!("{}: {e}", path.display()));
        let conn = Connection::open(path)
            .and_then(|conn| super::sqlite::configure(&conn).map(|()| conn))
            .map_err(|e| failed(&e))?;
        // Syncs what the checkpoints copied; on Linux a sync through any descriptor of a file
        // writes all of its cached pages.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| failed(&e))?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-checkpointer".into())
            .spawn(move || run(&conn, &file, &head, &restart, &stopped))
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the checkpointer thread: {e}"))
            })?;
        Ok(WalCheckpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn run(
    conn: &Connection,
    file: &std::fs::File,
    head: &watch::Receiver<u64>,
    restart: &AtomicBool,
    stopped: &mpsc::Receiver<()>,
) {
    let mut checkpointed = *head.borrow();
    // Until told to stop (a message, or the store dropping its end).
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        let now = *head.borrow();
        if now == checkpointed {
            continue;
        }
        match passive_checkpoint(conn) {
            Ok(Some(frames)) => {
                checkpointed = now;
                // SQLite syncs the main file only after a checkpoint that copied every frame:
                // left to the writer's, this sync would be all of it.
                if let Err(error) = file.sync_data() {
                    tracing::warn!(%error, "syncing the event store file failed");
                }
                if frames >= RESTART_FRAMES {
                    restart.store(true, Ordering::Release);
                }
            }
            // Another checkpoint was running (the writer's): the next round tries again.
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "event store WAL checkpoint failed"),
        }
    }
}

/// Copies every frame committed so far that no reader still needs into the main file, never
/// waiting for a lock (SQLite syncs the file only when that was every frame); the WAL's length
/// in frames, or `None` when another checkpoint held it.
pub(crate) fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let (busy, frames): (i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok((busy == 0).then_some(frames))
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the event store's checkpointer thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checkpointer driven through a real store on disk: it copies pages while the writer
    //! is left alone, and the WAL starts over long before the writer's own safety net would.

    use super::*;
    use crate::conformance::request;
    use crate::{EventStore, ExpectedRevision, SqliteStore};

    #[tokio::test]
    async fn copies_the_log_into_the_file_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let store = SqliteStore::open(&path).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for i in 0..200 {
            let stream = format!("order-{i}");
            store
                .append(request(&stream, ExpectedRevision::NoStream, 3))
                .await
                .unwrap();
        }
        // Far below the writer's own threshold: only the checkpointer copies anything.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < before + 100 * 1024 {
            assert!(
                std::time::Instant::now() < deadline,
                "the main file stayed at {} bytes",
                std::fs::metadata(&path).unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The WAL's checkpoint sequence number (its header's fourth word, big-endian): SQLite
    /// adds one each time the log starts over.
    fn wal_sequence(wal: &Path) -> u32 {
        use std::io::Read;
        let mut header = [0u8; 16];
        std::fs::File::open(wal)
            .and_then(|mut file| file.read_exact(&mut header))
            .unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }

    /// Appenders that never let the writer rest (a passive checkpoint alone then never
    /// catches up): the WAL must start over soon after [`RESTART_FRAMES`], long before the
    /// writer's own threshold (four times as long).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let wal = dir.path().join("events.db-wal");
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        store
            .append(request("first", ExpectedRevision::NoStream, 1))
            .await
            .unwrap();
        let first = wal_sequence(&wal);
        let stop = Arc::new(AtomicBool::new(false));
        let appenders: Vec<_> = (0..16)
            .map(|n| {
                let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
                tokio::spawn(async move {
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let stream = format!("order-{n}-{i}");
                        store
                            .append(request(&stream, ExpectedRevision::NoStream, 2))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        // A frame is a page (2 KiB) and its 24-byte header.
        let too_long = 2 * RESTART_FRAMES as u64 * (2048 + 24);
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        let longest = loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let length = std::fs::metadata(&wal).unwrap().len();
            if wal_sequence(&wal) != first {
                break length;
            }
            assert!(
                length < too_long && std::time::Instant::now() < deadline,
                "the WAL grew to {length} bytes without starting over"
            );
        };
        stop.store(true, Ordering::Relaxed);
        for appender in appenders {
            appender.await.unwrap();
        }
        assert!(longest < too_long, "{longest} bytes");
    }
}
