//! The embedded default backend: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Writes: one dedicated OS thread (`store-writer`) owns the only write connection. Every
//! [`EventStore::append`] is queued to it with a reply channel. The writer takes the first
//! queued append, drains whatever else is already waiting (up to [`MAX_BATCH`]), applies them
//! all in ONE transaction, commits (one WAL fsync for the whole batch), publishes the new head
//! position, and only then answers each caller. If anything in the batch fails at the storage
//! level (disk full, read-only file, I/O error), the transaction is rolled back and every caller
//! in it gets [`StoreError::Backend`]: nothing is acknowledged that was not fsynced.
//!
//! Reads: a small pool of read-only connections used from `spawn_blocking`, so the tokio
//! runtime never waits on SQLite. WAL lets them read the last committed state while the
//! writer writes. Reads of the log's last few thousand events (those who follow the head:
//! subscriptions, the outbox, the ledger runner) are answered from memory instead: the writer
//! keeps what it just committed in memory (`live_tail.rs`).
//!
//! One process, one `SqliteStore` per file: positions are allocated by the writer thread,
//! so a second writer on the same file (in this process or another) is not supported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row};
use tokio::sync::{mpsc, oneshot, watch};

use crate::chain::{self, Hash};
use crate::live_tail::LiveTail;
use crate::wal_checkpointer::WalCheckpointer;
use crate::{
    subscription, AppendRequest, AppendResult, Direction, EventStore, ExpectedRevision,
    RecordedEvent, Result, StoreError, Subscription,
};

/// The most appends the writer puts in one transaction.
pub const MAX_BATCH: usize = 1024;
/// How many appends may wait for the writer before `append` itself waits (back-pressure).
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;
/// Read connections kept open between reads; more are opened under load and then closed.
const IDLE_READERS: usize = 8;
/// How long a connection waits on a lock held by another connection before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Database page size for new files. Every append dirties the page holding its stream's tail
/// in two indexes, and each commit writes every dirty page whole to the WAL, so smaller pages
/// mean fewer bytes written and checksummed per event; 2 KiB measured ~15% faster than 4 KiB
/// with 256 writers, while events up to ~2 KiB still fit in one page.
pub(crate) const PAGE_SIZE: u32 = 2048;
/// WAL pages after which a commit also checkpoints the WAL into the main file (128 MiB): only
/// a safety net, should the checkpointer thread (`wal_checkpointer.rs`, which copies pages
/// off the writer) fall behind. A WAL that is never reset is slower to append to.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 4 * crate::wal_checkpointer::RESTART_FRAMES as u32;
/// The writer's page cache: the hot interior and tail pages of both indexes. Not larger: when
/// an insert splits a B-tree page, SQLite parks a page at the lock page's number while it
/// reorders the siblings, and the commit that follows walks every page of the cache to drop
/// those past the end of the file — with 16 MB (8,192 pages) that walk was a fifth of the
/// writer thread's time under the HTTP flows (the writer is the one thread every append waits
/// on).
const WRITER_CACHE_KIB: i64 = 4 * 1024;
/// Page cache of each reader connection: a stream read hits memory, not `pread` (SQLite's
/// default 2 MB made every load of an order re-read its pages from the OS).
const READER_CACHE_KIB: i64 = 8 * 1024;
/// A `read_all` of at least this many events is a scan of the log (a rebuild, an audit
/// verification), not a subscriber catching up: its reader maps the file into memory
/// (`PRAGMA mmap_size`) while it reads, so the file's pages are read in place instead of by one
/// `pread` each — a tenth of a rebuild's time. Only while it reads: a mapping left on an idle
/// connection would count the whole file in the process's memory, and ordinary reads gain
/// nothing from it (measured on the HTTP flows). Pages still in the WAL are read as before.
const SCAN_EVENTS: usize = 4096;
/// How much of the file a scan maps.
const SCAN_MMAP_BYTES: i64 = 1 << 30;
/// Streams whose last revision the writer remembers, to skip an index lookup per append.
const REVISION_CACHE: usize = 1 << 16;
/// The schema this code reads and writes (`PRAGMA user_version`). Version 2 added the hash
/// chain (`events.hash`); a version 1 file is migrated on open (see [`Writer::migrate`]).
const SCHEMA_VERSION: i64 = 2;

/// The current revision of a stream is the last entry of the `(stream, revision)` unique index,
/// so no separate `streams` table has to be written on every append.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream         TEXT    NOT NULL,
    revision       INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    event_type     TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    hash           BLOB    NOT NULL,
    UNIQUE (stream, revision)
);
CREATE TABLE IF NOT EXISTS commands (
    stream         TEXT    NOT NULL,
    command_id     TEXT    NOT NULL,
    first_revision INTEGER NOT NULL,
    last_revision  INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    PRIMARY KEY (stream, command_id)
) WITHOUT ROWID;
";

const FIND_COMMAND: &str = "SELECT first_revision, last_revision, last_position FROM commands \
     WHERE stream = ?1 AND command_id = ?2";
const STREAM_REVISION: &str =
    "SELECT revision, hash FROM events WHERE stream = ?1 ORDER BY revision DESC LIMIT 1";
const INSERT_EVENT: &str = "INSERT INTO events \
     (position, stream, revision, event_id, event_type, data, metadata, recorded_at_ms, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const CLAIM_COMMAND: &str = "INSERT INTO commands \
     (stream, command_id, first_revision, last_revision, last_position) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING";
const HEAD_POSITION: &str = "SELECT COALESCE(MAX(position), 0) FROM events";

const READ_STREAM_FORWARD: &str = "SELECT position, stream, revision, event_id, event_type, \
     data, metadata, recorded_at_ms, hash FROM events \
     WHERE stream = ?1 AND revision >= ?2 ORDER BY revision ASC LIMIT ?3";
const READ_STREAM_BACKWARD: &str = "SELECT position, stream, revision, event_id, event_type, \
     data, metadata, recorded_at_ms, hash FROM events \
     WHERE stream = ?1 AND revision <= ?2 ORDER BY revision DESC LIMIT ?3";
const READ_ALL: &str = "SELECT position, stream, revision, event_id, event_type, \
     data, metadata, recorded_at_ms, hash FROM events \
     WHERE position >= ?1 ORDER BY position ASC LIMIT ?2";
/// [`READ_ALL`] without the metadata and the hash ([`EventStore::read_all_payloads`]): the
/// metadata is about as long as a typical payload, and a rebuild never reads it.
const READ_ALL_PAYLOADS: &str = "SELECT position, stream, revision, event_id, event_type, \
     data, X'', recorded_at_ms FROM events \
     WHERE position >= ?1 ORDER BY position ASC LIMIT ?2";

/// The SQLite event store. Cheap to share behind an `Arc`; dropping it stops the writer
/// thread after it has answered every append already queued.
pub struct SqliteStore {
    appends: Option<mpsc::Sender<PendingAppend>>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<WalCheckpointer>,
    readers: Arc<ReaderPool>,
    head: watch::Receiver<u64>,
}

impl SqliteStore {
    /// Open (or create, with its parent directories) the store at `path` and start its
    /// writer thread.
    ///
    /// This does blocking file I/O; call it at startup or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path.as_ref(), true)
    }

    /// The store without the hash chain (every hash is zero): only for the benchmark that
    /// measures what the chain costs. `diandan audit verify` reports such events as altered.
    #[doc(hidden)]
    pub fn open_unchained(path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, chained: bool) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let mut writer = Writer::open(&path)?;
        writer.chained = chained;
        let head = writer.head.subscribe();
        let checkpointer =
            WalCheckpointer::start(&path, head.clone(), Arc::clone(&writer.restart))?;
        let tail = Arc::clone(&writer.tail);
        let (appends, queue) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            appends: Some(appends),
            writer: Some(thread),
            checkpointer: Some(checkpointer),
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
                tail,
            }),
            head,
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        drop(self.checkpointer.take());
        // Closing the queue is the writer's signal to finish its batch and exit.
        drop(self.appends.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the event store's writer thread panicked");
            }
        }
    }
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult> {
        validate(&request)?;
        let appends = self.appends.as_ref().ok_or_else(writer_stopped)?;
        let (reply, answer) = oneshot::channel();
        appends
            .send(PendingAppend { request, reply })
            .await
            .map_err(|_| writer_stopped())?;
        answer.await.map_err(|_| writer_stopped())?
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // Folded to its end already and asking what came since: usually nothing.
        if direction == Direction::Forward && self.readers.tail.nothing_from(stream, from) {
            return Ok(Vec::new());
        }
        let stream = stream.to_owned();
        // Revisions are stored as SQLite integers (i64); `u64::MAX` means "from the end".
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.readers
            .read(move |conn| {
                let sql = match direction {
                    Direction::Forward => READ_STREAM_FORWARD,
                    Direction::Backward => READ_STREAM_BACKWARD,
                };
                let mut statement = conn.prepare_cached(sql)?;
                let rows = statement.query_map(params![stream, from, max], recorded_event)?;
                rows.collect()
            })
            .await
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        self.readers.read_all(from, max).await
    }

    async fn read_all_payloads(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        if max < SCAN_EVENTS {
            return self.readers.read_all(from, max).await;
        }
        self.readers
            .scan(READ_ALL_PAYLOADS, recorded_event_unhashed, from, max)
            .await
    }

    async fn head_position(&self) -> Result<u64> {
        // The writer publishes the head after each commit, so this is exactly the last
        // durable position, without a round trip to SQLite.
        Ok(*self.head.borrow())
    }

    fn subscribe_all(&self, from: u64) -> Subscription {
        let readers = Arc::clone(&self.readers);
        subscription::follow_log(
            move |from, max| {
                let readers = Arc::clone(&readers);
                async move { readers.read_all(from, max).await }
            },
            self.head.clone(),
            from,
        )
    }
}

/// Reject what no backend should store.
fn validate(request: &AppendRequest) -> Result<()> {
    if request.events.is_empty() {
        return Err(StoreError::InvalidRequest(format!(
            "append to {} carries no events",
            request.stream
        )));
    }
    if request.stream.is_empty() {
        return Err(StoreError::InvalidRequest("stream name is empty".into()));
    }
    if request.command_id.is_empty() {
        return Err(StoreError::InvalidRequest(format!(
            "append to {} has no command id",
            request.stream
        )));
    }
    Ok(())
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("the event store's writer has stopped".into())
}

pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Settings every connection to the file gets.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;")
}

/// One append waiting for the writer, with the channel its answer goes back on.
struct PendingAppend {
    request: AppendRequest,
    reply: oneshot::Sender<Result<AppendResult>>,
}

/// The writer thread's state: the write connection and the next position to allocate.
struct Writer {
    conn: Connection,
    /// The position the next event written gets. Kept here rather than left to SQLite so a
    /// rolled-back batch hands its positions to the next one: the committed log has no holes.
    next_position: u64,
    /// The last committed position, published after each commit.
    head: watch::Sender<u64>,
    /// Last revision and hash of recently written streams, including writes of the open
    /// transaction; emptied when a transaction is rolled back.
    revisions: HashMap<String, (u64, Hash)>,
    /// Off only in the benchmark's baseline ([`SqliteStore::open_unchained`]).
    chained: bool,
    /// The last committed events, which the readers share.
    tail: Arc<LiveTail>,
    /// Raised by the checkpointer: checkpoint between two transactions, so the WAL can start
    /// over.
    restart: Arc<AtomicBool>,
}

/// What one append of a batch came to: its answer, and the hashes of the events it wrote
/// (none when it wrote nothing: a conflict, a retry).
struct Outcome {
    answer: Result<AppendResult>,
    hashes: Vec<Hash>,
}

impl Writer {
    fn open(path: &Path) -> Result<Writer> {
        let conn = Connection::open(path).map_err(backend)?;
        configure(&conn).map_err(backend)?;
        // Only a new file takes a page size, and only before it turns to WAL.
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))
            .map_err(backend)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{} cannot use write-ahead logging (journal mode is {mode})",
                path.display()
            )));
        }
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {};
             PRAGMA journal_size_limit = {};
             PRAGMA cache_size = {};",
            WAL_AUTOCHECKPOINT_PAGES,
            64 * 1024 * 1024,
            -WRITER_CACHE_KIB
        ))
        .map_err(backend)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(backend)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "{} has schema version {version}; this build knows up to {SCHEMA_VERSION}",
                path.display()
            )));
        }
        if version == 1 {
            Self::migrate(&conn).map_err(backend)?;
        }
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(backend)?;
        let head: u64 = conn
            .query_row(HEAD_POSITION, [], |row| row.get(0))
            .map_err(backend)?;
        Ok(Writer {
            conn,
            next_position: head + 1,
            head: watch::Sender::new(head),
            revisions: HashMap::new(),
            chained: true,
            tail: Arc::default(),
            restart: Arc::default(),
        })
    }

    /// Version 1 → 2: adds `events.hash` and computes the chain of every stored event, in one
    /// transaction (the only time hashes are computed after the append: those events were
    /// written before this build kept the chain).
    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE; ALTER TABLE events ADD COLUMN hash BLOB;")?;
        let result = (|| {
            let mut tails: HashMap<String, Hash> = HashMap::new();
            let mut read = conn.prepare(
                "SELECT position, stream, revision, event_id, event_type, data, metadata, \
                 recorded_at_ms, x'' FROM events ORDER BY stream, revision",
            )?;
            let mut update = conn.prepare("UPDATE events SET hash = ?1 WHERE position = ?2")?;
            let mut rows = read.query([])?;
            while let Some(row) = rows.next()? {
                let mut event = recorded_event_unhashed(row)?;
                let prev = tails.get(&event.stream).copied().unwrap_or(chain::GENESIS);
                event.hash = chain::event_hash(&prev, event.content());
                update.execute(params![&event.hash[..], event.position])?;
                tails.insert(event.stream, event.hash);
            }
            Ok(())
        })();
        match result {
            Ok(()) => conn.execute_batch("PRAGMA user_version = 2; COMMIT;"),
            Err(error) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }

    /// Serve appends until every sender is gone.
    fn run(mut self, mut queue: mpsc::Receiver<PendingAppend>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = queue.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
            if self.restart.swap(false, Ordering::Acquire) {
                // The answers are out; what waits is the next batch, for the few pages the
                // checkpointer has not copied yet.
                if let Err(error) = crate::wal_checkpointer::passive_checkpoint(&self.conn) {
                    tracing::warn!(%error, "event store WAL checkpoint failed");
                }
            }
        }
    }

    /// Apply, commit and answer one batch; leaves `batch` empty.
    fn commit_batch(&mut self, batch: &mut Vec<PendingAppend>) {
        let recorded_at_ms = now_ms();
        match self.write_batch(batch, recorded_at_ms) {
            Ok(outcomes) => {
                // Committed: into the tail before anyone can learn of these positions.
                let mut committed = Vec::new();
                for (pending, outcome) in batch.iter_mut().zip(&outcomes) {
                    if let (Ok(written), false) = (&outcome.answer, outcome.hashes.is_empty()) {
                        let events = std::mem::take(&mut pending.request.events);
                        let first_position = written.last_position + 1 - events.len() as u64;
                        committed.extend(events.into_iter().zip(&outcome.hashes).enumerate().map(
                            |(i, (event, hash))| RecordedEvent {
                                event_id: event.event_id,
                                stream: pending.request.stream.clone(),
                                revision: written.first_revision + i as u64,
                                position: first_position + i as u64,
                                event_type: event.event_type,
                                data: event.data,
                                metadata: event.metadata,
                                recorded_at_ms,
                                hash: *hash,
                            },
                        ));
                    }
                }
                self.tail.push(committed);
                let head = self.next_position - 1;
                if head != *self.head.borrow() {
                    self.head.send_replace(head);
                }
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    // The caller may have given up waiting; its append stands regardless.
                    let _ = pending.reply.send(outcome.answer);
                }
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    appends = batch.len(),
                    "event store batch failed; rolled back"
                );
                self.recover();
                let message = error.to_string();
                for pending in batch.drain(..) {
                    let _ = pending
                        .reply
                        .send(Err(StoreError::Backend(message.clone())));
                }
            }
        }
    }

    /// Run the batch in one transaction. The outer error is a storage failure that sinks the
    /// whole batch; the inner results are each append's own answer.
    ///
    /// Each append is checked (expected revision, command id) before its events are written,
    /// so a rejected append writes nothing and leaves the others in the batch untouched;
    /// later appends see the writes of earlier ones because they share the transaction. That
    /// is why no savepoint per append is needed: the only failure after the checks is a
    /// storage failure, and SQLite may already have rolled back the whole transaction for it.
    fn write_batch(
        &mut self,
        batch: &[PendingAppend],
        recorded_at_ms: i64,
    ) -> rusqlite::Result<Vec<Outcome>> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for pending in batch {
            outcomes.push(self.apply(&pending.request, recorded_at_ms)?);
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(outcomes)
    }

    /// One append inside the batch transaction. Nothing is written unless the append is new
    /// and its expected revision holds, so a rejected append needs no savepoint.
    fn apply(&mut self, request: &AppendRequest, recorded_at_ms: i64) -> rusqlite::Result<Outcome> {
        let answer = |answer| Outcome {
            answer,
            hashes: Vec::new(),
        };
        let stream = request.stream.as_str();
        let tail = self.stream_tail(stream)?;
        let current = tail.map(|(revision, _)| revision);
        let expected_holds = match request.expected {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => current.is_none(),
            ExpectedRevision::Exact(revision) => current == Some(revision),
        };
        if !expected_holds {
            // A retry's expected revision is stale by nature: answer it, not the conflict.
            return Ok(answer(match self.earlier_append(request)? {
                Some(earlier) => Ok(earlier),
                None => Err(StoreError::WrongExpectedRevision {
                    stream: request.stream.clone(),
                    expected: request.expected,
                    actual: current,
                }),
            }));
        }

        let count = request.events.len() as u64;
        let first_revision = current.map_or(0, |revision| revision + 1);
        let result = AppendResult {
            first_revision,
            last_revision: first_revision + count - 1,
            last_position: self.next_position + count - 1,
            duplicate: false,
        };
        // Claiming the command id first folds the duplicate check into the insert.
        let claimed = self.conn.prepare_cached(CLAIM_COMMAND)?.execute(params![
            stream,
            request.command_id,
            result.first_revision,
            result.last_revision,
            result.last_position,
        ])?;
        if claimed == 0 {
            return Ok(answer(self.earlier_append(request)?.ok_or_else(|| {
                StoreError::Backend(format!(
                    "command {} on {stream} is taken but not found",
                    request.command_id
                ))
            })));
        }

        let prev = tail.map_or(chain::GENESIS, |(_, hash)| hash);
        let hashes = if self.chained {
            chain::chain(stream, first_revision, prev, &request.events)
        } else {
            vec![chain::GENESIS; request.events.len()]
        };
        let mut insert = self.conn.prepare_cached(INSERT_EVENT)?;
        for (((event, revision), position), hash) in request
            .events
            .iter()
            .zip(first_revision..)
            .zip(self.next_position..)
            .zip(&hashes)
        {
            insert.execute(params![
                position,
                stream,
                revision,
                event.event_id.as_bytes(),
                event.event_type,
                event.data,
                event.metadata,
                recorded_at_ms,
                &hash[..],
            ])?;
        }
        drop(insert);
        self.next_position += count;
        let last_hash = *hashes.last().expect("an append carries events");
        self.remember_tail(stream, (result.last_revision, last_hash));
        Ok(Outcome {
            answer: Ok(result),
            hashes,
        })
    }

    /// The stream's last revision and hash as of this transaction, from the cache or the index.
    fn stream_tail(&mut self, stream: &str) -> rusqlite::Result<Option<(u64, Hash)>> {
        if let Some(tail) = self.revisions.get(stream) {
            return Ok(Some(*tail));
        }
        let tail = self
            .conn
            .prepare_cached(STREAM_REVISION)?
            .query_row(params![stream], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        if let Some(tail) = tail {
            self.remember_tail(stream, tail);
        }
        Ok(tail)
    }

    fn remember_tail(&mut self, stream: &str, tail: (u64, Hash)) {
        if let Some(cached) = self.revisions.get_mut(stream) {
            *cached = tail;
            return;
        }
        if self.revisions.len() >= REVISION_CACHE {
            // Crude but bounded; hot streams come back after one lookup each.
            self.revisions.clear();
        }
        self.revisions.insert(stream.to_owned(), tail);
    }

    /// The stored result of an earlier append of the same command to the same stream.
    fn earlier_append(&self, request: &AppendRequest) -> rusqlite::Result<Option<AppendResult>> {
        self.conn
            .prepare_cached(FIND_COMMAND)?
            .query_row(params![request.stream, request.command_id], |row| {
                Ok(AppendResult {
                    first_revision: row.get(0)?,
                    last_revision: row.get(1)?,
                    last_position: row.get(2)?,
                    duplicate: true,
                })
            })
            .optional()
    }

    /// After a failed batch: make sure no transaction is left open and re-learn the head from
    /// the file (a commit that reported an error may still have reached the disk).
    fn recover(&mut self) {
        self.revisions.clear();
        self.tail.clear();
        if !self.conn.is_autocommit() {
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(%error, "event store rollback failed");
            }
        }
        match self
            .conn
            .query_row(HEAD_POSITION, [], |row| row.get::<_, u64>(0))
        {
            Ok(head) => {
                self.next_position = head + 1;
                if head != *self.head.borrow() {
                    self.head.send_replace(head);
                }
            }
            Err(error) => {
                // Keep the positions of the failed batch unused rather than risk reusing a
                // committed one; the next batch retries the same way if it fails too.
                tracing::error!(%error, "cannot re-read the event store head");
            }
        }
    }
}

/// Read connections, reused across `spawn_blocking` calls.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// The writer's last committed events.
    tail: Arc<LiveTail>,
}

impl ReaderPool {
    async fn read_all(self: &Arc<Self>, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let scan = max >= SCAN_EVENTS;
        // A scan (a rebuild, `diandan audit verify`) always reads the file itself.
        if !scan {
            if let Some(events) = self.tail.read(from, max) {
                return Ok(events);
            }
        }
        self.read_file(from, max).await
    }

    /// [`ReaderPool::read_all`] from the file, whatever the tail holds.
    async fn read_file(self: &Arc<Self>, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        self.scan(READ_ALL, recorded_event, from, max).await
    }

    /// Up to `max` events of the log from `from` on, read from the file by `sql` (a query like
    /// [`READ_ALL`]) and `row`; a scan (`max` of at least [`SCAN_EVENTS`]) maps the file.
    async fn scan(
        self: &Arc<Self>,
        sql: &'static str,
        row: fn(&Row<'_>) -> rusqlite::Result<RecordedEvent>,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let scan = max >= SCAN_EVENTS;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.read(move |conn| {
            if scan {
                conn.execute_batch(&format!("PRAGMA mmap_size = {SCAN_MMAP_BYTES}"))?;
            }
            let read = conn
                .prepare_cached(sql)
                .and_then(|mut statement| statement.query_map(params![from, max], row)?.collect());
            if scan {
                // Unmapped again whatever the read gave: an idle connection keeps nothing mapped.
                conn.execute_batch("PRAGMA mmap_size = 0")?;
            }
            read
        })
        .await
    }

    /// Run `query` on a read connection on the blocking thread pool.
    async fn read<T, F>(self: &Arc<Self>, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = query(&conn).map_err(backend);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }

    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let conn = Connection::open(&self.path).map_err(backend)?;
                configure(&conn).map_err(backend)?;
                conn.execute_batch(&format!(
                    "PRAGMA query_only = ON; PRAGMA cache_size = {};",
                    -READER_CACHE_KIB
                ))
                .map_err(backend)?;
                Ok(conn)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

fn recorded_event(row: &Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let mut event = recorded_event_unhashed(row)?;
    // A hash that is missing or not 32 bytes (an edited row) reads as one that cannot verify.
    // Read in place: a copy of it would be one more allocation per event read.
    let hash = row.get_ref(8)?.as_blob_or_null().ok().flatten();
    event.hash = hash
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .unwrap_or([0xff; 32]);
    Ok(event)
}

fn recorded_event_unhashed(row: &Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let event_id: [u8; 16] = row.get(3)?;
    Ok(RecordedEvent {
        position: row.get(0)?,
        stream: row.get(1)?,
        revision: row.get(2)?,
        event_id: uuid::Uuid::from_bytes(event_id),
        event_type: row.get(4)?,
        data: row.get(5)?,
        metadata: row.get(6)?,
        recorded_at_ms: row.get(7)?,
        hash: chain::GENESIS,
    })
}

#[cfg(test)]
mod tests {
    //! The writer's batch handling, driven directly so a batch's contents are certain.

    use super::*;
    use crate::conformance::request;

    struct Harness {
        _dir: tempfile::TempDir,
        writer: Writer,
    }

    fn harness() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::open(&dir.path().join("events.db")).unwrap();
        Harness { _dir: dir, writer }
    }

    /// Commit `requests` as one batch; the answers in order.
    fn commit(writer: &mut Writer, requests: &[AppendRequest]) -> Vec<Result<AppendResult>> {
        let (mut batch, answers): (Vec<_>, Vec<_>) = requests
            .iter()
            .map(|request| {
                let (reply, answer) = oneshot::channel();
                let pending = PendingAppend {
                    request: request.clone(),
                    reply,
                };
                (pending, answer)
            })
            .unzip();
        writer.commit_batch(&mut batch);
        assert!(batch.is_empty());
        answers
            .into_iter()
            .map(|mut answer| answer.try_recv().expect("every append is answered"))
            .collect()
    }

    fn positions(writer: &Writer) -> Vec<(u64, String, u64)> {
        let mut statement = writer
            .conn
            .prepare("SELECT position, stream, revision FROM events ORDER BY position")
            .unwrap();
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn ok(first_revision: u64, last_revision: u64, last_position: u64) -> AppendResult {
        AppendResult {
            first_revision,
            last_revision,
            last_position,
            duplicate: false,
        }
    }

    #[test]
    fn one_batch_sees_its_own_writes_and_a_conflict_sinks_only_itself() {
        let Harness { _dir, mut writer } = harness();
        let create_a = request("a", ExpectedRevision::NoStream, 1);
        let requests = [
            create_a.clone(),
            request("b", ExpectedRevision::NoStream, 2),
            // Sees `create_a` although it is not committed yet.
            request("a", ExpectedRevision::Exact(5), 1),
            request("a", ExpectedRevision::NoStream, 1),
            request("a", ExpectedRevision::Exact(0), 2),
            // Retries inside the same batch, with a stale and with a still-valid expectation.
            create_a,
            request("c", ExpectedRevision::Any, 1),
        ];
        let requests = [requests.to_vec(), vec![requests[6].clone()]].concat();
        let answers = commit(&mut writer, &requests);

        assert_eq!(answers[0].as_ref().unwrap(), &ok(0, 0, 1));
        assert_eq!(answers[1].as_ref().unwrap(), &ok(0, 1, 3));
        assert!(matches!(
            answers[2],
            Err(StoreError::WrongExpectedRevision {
                actual: Some(0),
                ..
            })
        ));
        assert!(matches!(
            answers[3],
            Err(StoreError::WrongExpectedRevision {
                actual: Some(0),
                ..
            })
        ));
        assert_eq!(answers[4].as_ref().unwrap(), &ok(1, 2, 5));
        assert_eq!(
            answers[5].as_ref().unwrap(),
            &AppendResult {
                duplicate: true,
                ..ok(0, 0, 1)
            }
        );
        assert_eq!(answers[6].as_ref().unwrap(), &ok(0, 0, 6));
        assert_eq!(
            answers[7].as_ref().unwrap(),
            &AppendResult {
                duplicate: true,
                ..ok(0, 0, 6)
            }
        );
        let stored = positions(&writer);
        let expected: Vec<(u64, String, u64)> = vec![
            (1, "a".into(), 0),
            (2, "b".into(), 0),
            (3, "b".into(), 1),
            (4, "a".into(), 1),
            (5, "a".into(), 2),
            (6, "c".into(), 0),
        ];
        assert_eq!(stored, expected);
        assert_eq!(*writer.head.borrow(), 6);
    }

    #[test]
    fn a_version_1_file_gets_its_chain_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&SCHEMA.replace("    hash           BLOB    NOT NULL,\n", ""))
            .unwrap();
        let events = [
            ("a", 0, "{\"n\":1}"),
            ("b", 0, "{\"n\":2}"),
            ("a", 1, "{\"n\":3}"),
        ];
        for (position, (stream, revision, data)) in events.iter().enumerate() {
            old.execute(
                "INSERT INTO events (position, stream, revision, event_id, event_type, data, \
                 metadata, recorded_at_ms) VALUES (?1, ?2, ?3, ?4, 'Old', ?5, x'7b7d', 1)",
                params![
                    position as i64 + 1,
                    stream,
                    revision,
                    &[position as u8; 16][..],
                    data.as_bytes()
                ],
            )
            .unwrap();
        }
        old.execute_batch("PRAGMA user_version = 1").unwrap();
        drop(old);

        let mut writer = Writer::open(&path).unwrap();
        let version: i64 = writer
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // New appends chain on from the migrated tail.
        assert!(commit(&mut writer, &[request("a", ExpectedRevision::Exact(1), 1)])[0].is_ok());
        let mut statement = writer
            .conn
            .prepare(&READ_ALL.replace("?1", "0").replace("?2", "100"))
            .unwrap();
        let stored: Vec<RecordedEvent> = statement
            .query_map([], recorded_event)
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(stored.len(), 4);
        let mut tails: HashMap<&str, Hash> = HashMap::new();
        for event in &stored {
            let prev = tails
                .get(event.stream.as_str())
                .copied()
                .unwrap_or_default();
            assert!(
                event.hash_follows(&prev),
                "{} {}",
                event.stream,
                event.revision
            );
            tails.insert(&event.stream, event.hash);
        }
    }

    #[test]
    fn a_failed_commit_acknowledges_nothing_and_the_writer_carries_on() {
        let Harness { _dir, mut writer } = harness();
        assert!(commit(&mut writer, &[request("a", ExpectedRevision::NoStream, 1)])[0].is_ok());

        // A deferred foreign key fails at COMMIT, after every append in the batch succeeded.
        writer
            .conn
            .execute_batch(
                "PRAGMA foreign_keys = ON;
                 CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (parent INTEGER
                     REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
                 CREATE TRIGGER orphan AFTER INSERT ON events
                     BEGIN INSERT INTO child VALUES (NEW.position); END;",
            )
            .unwrap();
        let doomed = [
            request("a", ExpectedRevision::Exact(0), 2),
            request("b", ExpectedRevision::NoStream, 1),
            request("a", ExpectedRevision::Exact(9), 1),
        ];
        for answer in commit(&mut writer, &doomed) {
            assert!(
                matches!(answer, Err(StoreError::Backend(_))),
                "got {answer:?}"
            );
        }
        assert!(
            writer.conn.is_autocommit(),
            "the failed transaction was left open"
        );
        assert_eq!(positions(&writer).len(), 1);
        assert_eq!(*writer.head.borrow(), 1);

        writer.conn.execute_batch("DROP TRIGGER orphan").unwrap();
        // The same commands are not remembered as done, and positions carry on without a hole.
        let answers = commit(&mut writer, &doomed[..2]);
        assert_eq!(answers[0].as_ref().unwrap(), &ok(1, 2, 3));
        assert_eq!(answers[1].as_ref().unwrap(), &ok(0, 0, 4));
        assert_eq!(*writer.head.borrow(), 4);
    }

    #[test]
    fn a_full_disk_acknowledges_nothing_and_the_writer_carries_on() {
        let Harness { _dir, mut writer } = harness();
        assert!(commit(&mut writer, &[request("a", ExpectedRevision::NoStream, 1)])[0].is_ok());
        let pages: u64 = writer
            .conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        writer
            .conn
            .execute_batch(&format!("PRAGMA max_page_count = {pages}"))
            .unwrap();
        let mut big = request("a", ExpectedRevision::Exact(0), 1);
        big.events[0].data = vec![b'x'; 1 << 20];
        let answers = commit(
            &mut writer,
            &[request("b", ExpectedRevision::NoStream, 1), big.clone()],
        );
        for answer in answers {
            assert!(
                matches!(answer, Err(StoreError::Backend(_))),
                "got {answer:?}"
            );
        }
        assert_eq!(positions(&writer).len(), 1);

        writer
            .conn
            .execute_batch("PRAGMA max_page_count = 1073741823")
            .unwrap();
        assert_eq!(
            commit(&mut writer, &[big])[0].as_ref().unwrap(),
            &ok(1, 1, 2)
        );
    }

    /// What the writer keeps in its tail is what it stored: the same events, read from memory
    /// or from the file, through conflicts, retries, a failed batch and one the file took.
    #[tokio::test]
    async fn the_live_tail_reads_as_the_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut writer = Writer::open(&path).unwrap();
        let readers = Arc::new(ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
            tail: Arc::clone(&writer.tail),
        });
        let same = |from: u64, max: usize| {
            let readers = Arc::clone(&readers);
            async move {
                let remembered = readers.tail.read(from, max);
                let stored = readers.read_file(from, max).await.unwrap();
                if let Some(remembered) = remembered {
                    assert_eq!(remembered, stored, "from {from}, {max} at most");
                }
                readers.read_all(from, max).await.unwrap() == stored
            }
        };
        // What the tail says a stream lacks, the file lacks; and it knows every stream written
        // since it was last emptied (`known`).
        let streams_agree = |writer: &Writer, known: &[&str]| {
            for stream in ["a", "b", "c", "d"] {
                let last: Option<u64> = writer
                    .conn
                    .query_row(
                        "SELECT MAX(revision) FROM events WHERE stream = ?1",
                        [stream],
                        |row| row.get(0),
                    )
                    .unwrap();
                for from in 0..6 {
                    let nothing = readers.tail.nothing_from(stream, from);
                    let lacks = last.is_none_or(|last| last < from);
                    if known.contains(&stream) {
                        assert_eq!(nothing, lacks, "{stream} from {from}");
                    } else {
                        assert!(!nothing, "{stream} is not known");
                    }
                }
            }
        };

        let create_b = request("b", ExpectedRevision::NoStream, 1);
        let answers = commit(
            &mut writer,
            &[
                request("a", ExpectedRevision::NoStream, 2),
                create_b.clone(),
                request("a", ExpectedRevision::NoStream, 1),
                request("a", ExpectedRevision::Exact(1), 3),
            ],
        );
        assert!(answers[2].is_err());
        let answers = commit(
            &mut writer,
            &[create_b, request("c", ExpectedRevision::Any, 2)],
        );
        assert!(answers[0].as_ref().unwrap().duplicate);
        assert_eq!(*writer.head.borrow(), 8);
        assert_eq!(readers.tail.read(1, 100).unwrap().len(), 8);
        for from in 0..=10 {
            for max in [1, 3, 100] {
                assert!(same(from, max).await);
            }
        }
        streams_agree(&writer, &["a", "b", "c"]);

        // A failed batch empties the tail: reads go to the file until commits refill it.
        writer
            .conn
            .execute_batch(
                "CREATE TABLE full (x); CREATE TRIGGER nope AFTER INSERT ON events
                 BEGIN SELECT RAISE(FAIL, 'no'); END;",
            )
            .unwrap();
        assert!(commit(&mut writer, &[request("d", ExpectedRevision::Any, 1)])[0].is_err());
        assert_eq!(readers.tail.read(8, 100), None);
        assert!(
            !readers.tail.nothing_from("a", 5),
            "forgotten after a failure"
        );
        writer.conn.execute_batch("DROP TRIGGER nope").unwrap();
        assert!(commit(&mut writer, &[request("d", ExpectedRevision::Any, 2)])[0].is_ok());
        assert_eq!(
            readers.tail.read(8, 100),
            None,
            "before the refilled window"
        );
        assert_eq!(readers.tail.read(9, 100).unwrap().len(), 2);
        for from in 0..=12 {
            assert!(same(from, 100).await);
        }
        streams_agree(&writer, &["d"]);
    }

    /// A scan (`read_all` of `SCAN_EVENTS` or more, read through a mapping of the file) gives
    /// what small reads give, and leaves its connection unmapped.
    #[tokio::test]
    async fn a_scan_reads_what_small_reads_read_and_maps_nothing_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut writer = Writer::open(&path).unwrap();
        let streams = SCAN_EVENTS / 100 + 3;
        let requests: Vec<_> = (0..streams)
            .map(|i| request(&format!("s{i}"), ExpectedRevision::NoStream, 100))
            .collect();
        assert!(commit(&mut writer, &requests).iter().all(Result::is_ok));
        drop(writer);
        let readers = Arc::new(ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
            tail: Arc::default(),
        });

        let scanned = readers.read_all(1, SCAN_EVENTS * 2).await.unwrap();
        assert_eq!(scanned.len(), streams * 100);
        let mut small = Vec::new();
        while small.len() < scanned.len() {
            small.extend(readers.read_all(small.len() as u64 + 1, 97).await.unwrap());
        }
        assert_eq!(scanned, small);

        let idle = readers.idle.lock().unwrap();
        assert!(!idle.is_empty());
        for conn in idle.iter() {
            let mapped: i64 = conn
                .query_row("PRAGMA mmap_size", [], |row| row.get(0))
                .unwrap();
            assert_eq!(mapped, 0);
        }
    }
}
