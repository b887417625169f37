//! Read models, fed from the store's global log.
//!
//! Each [`Projection`] owns some tables of the read database (`read.db`) and a checkpoint row;
//! a batch of events is applied to every projection and its checkpoint advanced in the same
//! transaction, so after a crash a projection resumes exactly where its data stands (exactly
//! once). Read models are disposable: [`rebuild`] replays the log from position 0 into a fresh
//! file, and the result must equal the live one ([`ReadModel::dump`] compares them).

pub mod access;
mod directory;
pub mod ledger;
mod orders;
mod stats;
mod timers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use rusqlite::{Connection, OptionalExtension, Transaction};
use tokio::sync::watch;

use diandan_store::{EventStore, RecordedEvent};

use diandan_workflows::order::OrderEvent;

use crate::commands::{decode_order_event, EventMetadata};
use crate::{AppError, Result};

pub(crate) use orders::open_status;
pub use orders::{list_orders, OrderFilter, OrderScope, Statuses};
pub use stats::{local_day, station_stats, StatsQuery};
pub use timers::{due_timers, due_timers_of, next_timer_ms, DueTimer};

/// One read model: its tables and how an event changes them.
pub trait Projection: Send + Sync {
    /// Its checkpoint's key.
    fn name(&self) -> &'static str;
    /// `CREATE TABLE IF NOT EXISTS …` statements, and the indexes its own writes look up by.
    fn schema(&self) -> &'static str;
    /// `CREATE INDEX IF NOT EXISTS …` of the indexes only queries read, never
    /// [`apply`](Self::apply): a [`rebuild`] creates them once its tables are loaded, from one
    /// sort, rather than inserting into them row by row.
    fn query_indexes(&self) -> &'static str {
        ""
    }
    /// Tables to compare between a live and a rebuilt read model.
    fn tables(&self) -> &'static [&'static str];
    /// Applies one event. Events of types it does not know are ignored.
    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()>;
    /// Applies a batch of events in position order; the same as applying them one by one
    /// (a projection overrides it to do less work per event).
    fn apply_all(&self, tx: &Transaction<'_>, events: &[Applied<'_>]) -> Result<()> {
        events.iter().try_for_each(|event| self.apply(tx, event))
    }
}

/// An event as the projections see it: the stored event (`Deref`), and its order payload
/// decoded once for all of them however many read it.
pub struct Applied<'a> {
    pub recorded: &'a RecordedEvent,
    order: std::cell::OnceCell<OrderEvent>,
}

impl<'a> Applied<'a> {
    pub fn new(recorded: &'a RecordedEvent) -> Applied<'a> {
        Applied {
            recorded,
            order: std::cell::OnceCell::new(),
        }
    }

    /// With the order event's payload already decoded (a rebuild decodes the next batch on
    /// another thread while this one is applied).
    pub fn decoded(recorded: &'a RecordedEvent, order: Option<OrderEvent>) -> Applied<'a> {
        Applied {
            recorded,
            order: order.map_or_else(std::cell::OnceCell::new, std::cell::OnceCell::from),
        }
    }

    /// The order event's payload, decoded on first use.
    pub fn order(&self) -> Result<&OrderEvent> {
        if let Some(decoded) = self.order.get() {
            return Ok(decoded);
        }
        let decoded = decode_order_event(self.recorded)?;
        Ok(self.order.get_or_init(|| decoded))
    }
}

impl std::ops::Deref for Applied<'_> {
    type Target = RecordedEvent;

    fn deref(&self) -> &RecordedEvent {
        self.recorded
    }
}

/// The maps a batch is folded in, keyed by ids from the batch's events: `foldhash`, several
/// times faster than the standard library's SipHash on short keys, and seeded per map.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The set of [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// What a batch leaves of each row it touches, while it is folded in memory: one entry per
/// key, in the order keys first appear (rows are then written in that order, once each).
pub(crate) struct Folds<K, T> {
    entries: Vec<(K, T)>,
    index: FastMap<K, usize>,
}

impl<K: std::hash::Hash + Eq + Copy, T> Folds<K, T> {
    pub(crate) fn new() -> Folds<K, T> {
        Folds {
            entries: Vec::new(),
            index: FastMap::default(),
        }
    }

    /// The entry of `key`, made by `first` (its row as stored, or a new one) when the batch
    /// touches it for the first time.
    pub(crate) fn entry(&mut self, key: K, first: impl FnOnce() -> Result<T>) -> Result<&mut T> {
        let at = match self.index.get(&key) {
            Some(&at) => at,
            None => {
                self.entries.push((key, first()?));
                self.index.insert(key, self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        Ok(&mut self.entries[at].1)
    }

    /// Every entry, in the order keys first appeared.
    pub(crate) fn entries(&self) -> &[(K, T)] {
        &self.entries
    }
}

/// Statements compiled once per connection and kept (`prepare_cached`): projections run the
/// same few dozen statements for every event, and compiling them each time was a third of a
/// rebuild's CPU.
pub(crate) trait Cached {
    fn execute_cached(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
    fn query_row_cached<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, row)
    }
}

/// How many compiled statements a read-model connection keeps (every projection's, with room).
const STATEMENT_CACHE: usize = 256;

/// Read connections kept open between queries. A burst opens more, closed once done: each
/// keeps a page cache of up to [`CACHE_SIZE`](crate::sqlite_file::CACHE_SIZE), so keeping every
/// one a burst opened would hold memory in proportion to the busiest moment ever seen.
const IDLE_READERS: usize = 8;

/// Length of the read model's write-ahead log past which the writer starts it over, after
/// the commit that passed it. SQLite's own checkpoints copy the log into the file but start
/// it over only at a moment no reader is using it, which under steady reads never comes: the
/// demo's replay left a 1.1 GB log beside a 27 MB file.
pub const LOG_RESTART_BYTES: u64 = 64 * 1024 * 1024;

/// How long the writer first waits for queries to leave the log when starting it over: they
/// are short, and a long one (or another process's reader) must not stall the projections.
/// After a failed attempt the writer tries again once the log has grown by another quarter of
/// the limit, waiting twice as long each time (up to [`LOG_RESTART_MAX_WAIT`]): under the
/// demo's replay dozens of queries share two cores, and all of them rarely end within 50 ms.
const LOG_RESTART_WAIT: Duration = Duration::from_millis(50);

/// The longest the writer waits for queries to leave the log (and holds new ones back).
const LOG_RESTART_MAX_WAIT: Duration = Duration::from_secs(2);

/// The writer's bookkeeping for starting the log over.
struct LogRestart {
    /// `read.db-wal`.
    wal: PathBuf,
    /// The length past which it is started over ([`LOG_RESTART_BYTES`]; tests set less).
    limit: std::sync::atomic::AtomicU64,
    /// The length at which to try (again: past the limit after an attempt that found readers).
    retry_at: std::sync::atomic::AtomicU64,
    /// Attempts that found readers since the last restart.
    failures: std::sync::atomic::AtomicU32,
    /// Held shared by every query of this process while it reads, and exclusively while the
    /// log is started over: a waiting restart holds new queries back (for the milliseconds
    /// the last frames take to copy) instead of waiting for a moment without readers.
    gate: parking_lot::RwLock<()>,
}

impl LogRestart {
    /// After a commit: when the log is longer than the limit, copies it into the file while
    /// queries go on (`wal_checkpoint(PASSIVE)`), then, with this process's queries held back
    /// for at most [`LOG_RESTART_WAIT`], copies the rest and truncates it
    /// (`wal_checkpoint(TRUNCATE)`). Costs a `stat` per batch otherwise. A failure is logged,
    /// never the batch's: the batch is committed.
    fn after_commit(&self, conn: &Connection) {
        use std::sync::atomic::Ordering;
        let limit = self.limit.load(Ordering::Relaxed);
        let length = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if length <= limit.max(self.retry_at.load(Ordering::Relaxed)) {
            return;
        }
        let failures = self.failures.load(Ordering::Relaxed);
        let wait = LOG_RESTART_WAIT
            .saturating_mul(1 << failures.min(16))
            .min(LOG_RESTART_MAX_WAIT);
        let restarted = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .and_then(|()| {
                let Some(_queries_held) = self.gate.try_write_for(wait) else {
                    return Ok(false);
                };
                conn.busy_timeout(wait)?;
                let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok(r.get::<_, i64>(0)? == 0)
                });
                conn.busy_timeout(crate::sqlite_file::BUSY_TIMEOUT)?;
                done
            });
        let wal = self.wal.display();
        match restarted {
            Ok(true) => {
                self.retry_at.store(0, Ordering::Relaxed);
                self.failures.store(0, Ordering::Relaxed);
                return;
            }
            Ok(false) => {
                tracing::debug!(%wal, length, ?wait, "readers kept the read model's log");
            }
            Err(e) => {
                tracing::warn!(error = %e, %wal, "the read model's log could not be started over");
            }
        }
        self.retry_at.store(length + limit / 4, Ordering::Relaxed);
        self.failures.store(failures + 1, Ordering::Relaxed);
    }
}

/// The read model's schema version (`PRAGMA user_version`). Bump it whenever a projection's
/// tables or meaning change: a read model of another version is dropped and rebuilt from the
/// log on open — read models are disposable, the log is not. (9: an order row's state leaves
/// out its fields at their defaults, which a build of 8 cannot read.)
pub const READ_MODEL_VERSION: i64 = 9;

fn all_projections() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(access::AccessProjection),
        Box::new(directory::DirectoryProjection),
        Box::new(ledger::LedgerProjection),
        Box::new(orders::OrdersProjection),
        Box::new(stats::StatsProjection),
        Box::new(timers::TimersProjection),
    ]
}

/// The names of every read model (their checkpoints' keys).
pub fn projection_names() -> Vec<&'static str> {
    all_projections().iter().map(|p| p.name()).collect()
}

struct Inner {
    path: PathBuf,
    /// A shared lock on `<read.db>.lock` while this process has the read model open: a
    /// rebuild (which replaces the file) needs it exclusively, so it never runs under a
    /// process that would go on writing to the replaced file.
    _in_use: std::fs::File,
    projections: Vec<Box<dyn Projection>>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    position: watch::Sender<u64>,
    log: LogRestart,
}

/// The read database and the position it reflects.
#[derive(Clone)]
pub struct ReadModel {
    inner: Arc<Inner>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    // FULL: a checkpoint acknowledged to a reader must not move backwards after a crash.
    let conn = crate::sqlite_file::open(path)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

impl ReadModel {
    /// Opens (creating if need be) the file at `path`; processes starting together set it up
    /// one after another.
    pub fn open(path: &Path) -> Result<ReadModel> {
        crate::sqlite_file::initialize(path, || Self::open_unlocked(path, true))
    }

    /// [`open`](Self::open), creating the [`query_indexes`](Projection::query_indexes) too
    /// when `query_indexes` is set (a rebuild leaves them for its end).
    fn open_unlocked(path: &Path, query_indexes: bool) -> Result<ReadModel> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| AppError::Storage(format!("{}: {e}", dir.display())))?;
        }
        let in_use = lock_file(path)?;
        in_use
            .lock_shared()
            .map_err(|e| AppError::Storage(format!("locking {}.lock: {e}", path.display())))?;
        let projections = all_projections();
        let conn = open_connection(path)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let has_tables: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if has_tables && version != READ_MODEL_VERSION {
            tracing::warn!(
                found = version,
                expected = READ_MODEL_VERSION,
                path = %path.display(),
                "read model from another version: dropping it to rebuild from the log"
            );
            let mut tables = vec!["checkpoints", "origin"];
            for p in &projections {
                tables.extend_from_slice(p.tables());
            }
            let drops: String = tables
                .iter()
                .map(|t| format!("DROP TABLE IF EXISTS {t};"))
                .collect();
            conn.execute_batch(&format!("BEGIN; {drops} COMMIT;"))?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {READ_MODEL_VERSION};"))?;
        // Who may feed this read model now, when several processes could (not a read model).
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS leases (
                 name TEXT PRIMARY KEY,
                 holder TEXT NOT NULL,
                 expires_ms INTEGER NOT NULL
             );",
        )?;
        // Which log this read model was built from: its first event (see `inspect`).
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS origin (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 event_id TEXT NOT NULL,
                 position INTEGER NOT NULL
             );",
        )?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS checkpoints (
                 projection TEXT PRIMARY KEY,
                 position INTEGER NOT NULL,
                 -- events applied: equals the events seen iff each was applied exactly once
                 applied INTEGER NOT NULL DEFAULT 0
             );",
        )?;
        for p in &projections {
            conn.execute_batch(p.schema())?;
            if query_indexes {
                conn.execute_batch(p.query_indexes())?;
            }
            conn.execute(
                "INSERT OR IGNORE INTO checkpoints (projection, position) VALUES (?1, 0)",
                [p.name()],
            )?;
        }
        let position: u64 =
            conn.query_row("SELECT MIN(position) FROM checkpoints", [], |r| r.get(0))?;
        Ok(ReadModel {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                _in_use: in_use,
                projections,
                writer: Mutex::new(conn),
                readers: Mutex::new(Vec::new()),
                position: watch::channel(position).0,
                log: LogRestart {
                    wal: PathBuf::from(format!("{}-wal", path.display())),
                    limit: LOG_RESTART_BYTES.into(),
                    retry_at: 0.into(),
                    failures: 0.into(),
                    gate: parking_lot::RwLock::new(()),
                },
            }),
        })
    }

    /// Takes or renews the lease `name` for `holder` for `ttl`; true while `holder` has it.
    /// Replicas feeding one read model take turns by it, so only one applies at a time and
    /// another takes over within `ttl` when the holder dies.
    pub async fn hold_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.query(move |c| {
            let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            c.execute(
                "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
                 WHERE leases.holder = excluded.holder OR leases.expires_ms < ?4",
                rusqlite::params![name, holder, now + ttl.as_millis() as i64, now],
            )?;
            let current: String =
                c.query_row("SELECT holder FROM leases WHERE name = ?1", [&name], |r| r.get(0))?;
            Ok(current == holder)
        })
        .await
    }

    /// Starts the write-ahead log over once it is longer than `bytes` (default
    /// [`LOG_RESTART_BYTES`]); tests set a small limit.
    #[doc(hidden)]
    pub fn set_log_restart_bytes(&self, bytes: u64) {
        self.inner
            .log
            .limit
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Notified whenever this process advances the read model.
    pub fn subscribe_position(&self) -> watch::Receiver<u64> {
        self.inner.position.subscribe()
    }

    /// The last position every projection has applied.
    pub fn position(&self) -> u64 {
        *self.inner.position.borrow()
    }

    /// Waits (up to `timeout`) until the read model reflects `position`; returns where it is.
    ///
    /// Another process may be the one applying events (`diandan serve projections`), so the
    /// checkpoint is re-read from the database, not only from this process's notifications.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> u64 {
        self.wait_polling(position, Duration::from_millis(20), timeout)
            .await
    }

    /// [`wait_for`](Self::wait_for), looking at the stored checkpoint every `poll` (this
    /// process's own progress wakes it at once): a long-lived watcher polls less often.
    pub async fn wait_polling(&self, position: u64, poll: Duration, timeout: Duration) -> u64 {
        // Already there by this process's own progress: no need to look at the store.
        let known = self.position();
        if known >= position {
            return known;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.inner.position.subscribe();
        // The stored checkpoint is read at once and then once per `poll`; a notification of
        // this process's own progress is checked against memory only. (Reading the file at
        // every notification made each applied batch cost one query per waiter: with a
        // hundred waiters, a tenth of the demo's replay went to that.)
        let mut look_at = tokio::time::Instant::now();
        loop {
            let now = if tokio::time::Instant::now() >= look_at {
                look_at = tokio::time::Instant::now() + poll;
                self.stored_position()
                    .await
                    .unwrap_or_else(|_| self.position())
            } else {
                self.position()
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if now >= position || left.is_zero() {
                return now;
            }
            let until_look = look_at.saturating_duration_since(tokio::time::Instant::now());
            let _ = tokio::time::timeout(until_look.min(left), rx.changed()).await;
        }
    }

    /// The checkpoint as stored (every projection has applied up to it).
    pub async fn stored_position(&self) -> Result<u64> {
        let position = self
            .query(|c| Ok(c.query_row("SELECT MIN(position) FROM checkpoints", [], |r| r.get(0))?))
            .await?;
        self.inner.position.send_if_modified(|p| {
            let advanced = position > *p;
            if advanced {
                *p = position;
            }
            advanced
        });
        Ok(position)
    }

    /// Runs a read-only query on a pooled connection, off the async runtime.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().expect("pool poisoned").pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path)?,
            };
            let result = {
                let _reading = inner.log.gate.read();
                f(&conn)
            };
            let mut idle = inner.readers.lock().expect("pool poisoned");
            // More were opened for a burst of queries: closed again, caches and all.
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| AppError::Storage(e.to_string()))?
    }

    /// Applies a batch of log events (in position order) to every projection in one transaction.
    pub fn apply_batch_blocking(&self, events: &[RecordedEvent]) -> Result<u64> {
        self.apply_decoded_blocking(events.iter().map(Applied::new).collect())
    }

    /// [`apply_batch_blocking`](Self::apply_batch_blocking) of events whose order payloads
    /// may be decoded already.
    fn apply_decoded_blocking(&self, batch: Vec<Applied<'_>>) -> Result<u64> {
        let Some(last) = batch.last() else {
            return Ok(self.position());
        };
        let last_position = last.position;
        let mut conn = self.inner.writer.lock().expect("writer poisoned");
        // IMMEDIATE: take the write lock before reading the checkpoint, so replicas in other
        // processes applying the same events serialize here and each event applies once.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let before: u64 =
            tx.query_row_cached("SELECT MIN(position) FROM checkpoints", [], |r| r.get(0))?;
        if before == 0 {
            // The first events ever applied: the start of the log this model is built from.
            let first = &batch[0];
            tx.execute_cached(
                "INSERT OR IGNORE INTO origin (id, event_id, position) VALUES (1, ?1, ?2)",
                rusqlite::params![first.event_id.to_string(), first.position],
            )?;
        }
        if batch.windows(2).any(|w| w[0].position >= w[1].position) {
            return Err(AppError::Storage(
                "a batch for the read model must be in position order".into(),
            ));
        }
        for p in &self.inner.projections {
            let checkpoint: u64 = tx.query_row_cached(
                "SELECT position FROM checkpoints WHERE projection = ?1",
                [p.name()],
                |r| r.get(0),
            )?;
            // Events come in position order: what this projection has not seen is a suffix.
            let pending = &batch[batch.partition_point(|e| e.position <= checkpoint)..];
            p.apply_all(&tx, pending)?;
            let applied = pending.len() as u64;
            tx.execute_cached(
                "UPDATE checkpoints SET position = MAX(position, ?2), applied = applied + ?3
                 WHERE projection = ?1",
                rusqlite::params![p.name(), last_position, applied],
            )?;
        }
        let position: u64 =
            tx.query_row_cached("SELECT MIN(position) FROM checkpoints", [], |r| r.get(0))?;
        tx.commit()?;
        self.inner.position.send_replace(position);
        self.inner.log.after_commit(&conn);
        Ok(position)
    }

    /// Applies a batch off the async runtime. Each event that was produced inside a trace gets
    /// a `projection.apply` span in that trace, lasting while its batch is applied.
    pub async fn apply_batch(&self, events: Vec<RecordedEvent>) -> Result<u64> {
        let spans: Vec<tracing::Span> = events
            .iter()
            .filter_map(|event| {
                let traceparent = EventMetadata::traceparent_of(event)?;
                let span = tracing::info_span!(
                    "projection.apply",
                    event_type = %event.event_type,
                    stream = %event.stream,
                    position = event.position,
                    batch = events.len()
                );
                diandan_telemetry::propagation::set_parent(&span, |name| {
                    (name == "traceparent").then(|| traceparent.clone())
                });
                Some(span)
            })
            .collect();
        let count = events.len() as u64;
        let this = self.clone();
        let position = tokio::task::spawn_blocking(move || this.apply_batch_blocking(&events))
            .await
            .map_err(|e| AppError::Storage(e.to_string()))??;
        diandan_telemetry::metrics::events_projected(count);
        drop(spans);
        Ok(position)
    }

    /// Runs `f` on the writer connection.
    pub(crate) fn with_writer<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&self.inner.writer.lock().expect("writer poisoned"))
    }

    /// The schema (every table and index), then every row of every projection table (and the
    /// checkpoints), sorted: two read models with equal dumps are equal.
    pub fn dump(&self) -> Result<Vec<String>> {
        let conn = self.inner.writer.lock().expect("writer poisoned");
        let mut tables = vec!["checkpoints"];
        for p in &self.inner.projections {
            tables.extend_from_slice(p.tables());
        }
        let mut rows: Vec<String> = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")?
            .query_map([], |r| {
                Ok(format!(
                    "sqlite_master: {} {} {:?}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for table in tables {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {table}"))?;
            let columns = stmt.column_count();
            let mut table_rows: Vec<String> = stmt
                .query_map([], |row| {
                    let mut line = format!("{table}:");
                    for i in 0..columns {
                        let value: rusqlite::types::Value = row.get(i)?;
                        line.push_str(&format!(" {value:?}"));
                    }
                    Ok(line)
                })?
                .collect::<rusqlite::Result<_>>()?;
            table_rows.sort();
            rows.extend(table_rows);
        }
        Ok(rows)
    }

    /// [`follow`](Self::follow) for a spawned task.
    pub async fn follow_owned(
        self,
        store: Arc<dyn EventStore>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        self.follow(store, shutdown).await
    }

    /// Follows the store's log until `shutdown` resolves, applying events in batches.
    pub async fn follow(
        &self,
        store: Arc<dyn EventStore>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        loop {
            let mut subscription = store.subscribe_all(self.position() + 1).fuse();
            loop {
                let first = futures::select! {
                    _ = shutdown => return,
                    next = subscription.next() => next,
                };
                let mut batch = match first {
                    Some(Ok(event)) => vec![event],
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "projection subscription failed; resubscribing");
                        break;
                    }
                    None => break,
                };
                while batch.len() < 2048 {
                    match subscription.next().now_or_never() {
                        Some(Some(Ok(event))) => batch.push(event),
                        _ => break,
                    }
                }
                if let Err(e) = self.apply_batch(batch).await {
                    tracing::error!(error = %e, "projection batch failed; retrying");
                    break;
                }
                if let Ok(head) = store.head_position().await {
                    diandan_telemetry::metrics::projection_lag(
                        head.saturating_sub(self.position()),
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The lock file beside a read model (`read.db.lock`).
fn lock_file(path: &Path) -> Result<std::fs::File> {
    let lock = PathBuf::from(format!("{}.lock", path.display()));
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| AppError::Storage(format!("{}: {e}", lock.display())))
}

/// The read model at `path` exclusively, or `None` while a process has it open (`up`, a
/// `serve` part, a projections consumer): held by a rebuild until it has replaced the file.
pub fn lock_exclusive(path: &Path) -> Result<Option<std::fs::File>> {
    let file = lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(AppError::Storage(format!(
            "locking {}.lock: {e}",
            path.display()
        ))),
    }
}

/// What a read model file says of itself, read without taking it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The first event of the log it was built from (id, position); `None` for a model built
    /// before origins were recorded, or one that applied nothing yet.
    pub origin: Option<(String, u64)>,
    /// The position every projection has applied.
    pub position: u64,
}

/// Inspects the read model at `path`; `None` when there is none.
pub fn inspect(path: &Path) -> Result<Option<Inspection>> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let table = |name: &str| -> Result<bool> {
        Ok(conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )?)
    };
    let origin = if table("origin")? {
        conn.query_row(
            "SELECT event_id, position FROM origin WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
    } else {
        None
    };
    let position = if table("checkpoints")? {
        conn.query_row(
            "SELECT COALESCE(MIN(position), 0) FROM checkpoints",
            [],
            |r| r.get(0),
        )?
    } else {
        0
    };
    Ok(Some(Inspection { origin, position }))
}

/// Sets the journal mode of `conn`'s file, failing if SQLite kept another.
fn journal_mode(conn: &Connection, mode: &str) -> Result<()> {
    let set: String = conn.query_row(&format!("PRAGMA journal_mode={mode}"), [], |r| r.get(0))?;
    if set.eq_ignore_ascii_case(mode) {
        Ok(())
    } else {
        Err(AppError::Storage(format!(
            "the read model stayed in journal mode {set}, not {mode}"
        )))
    }
}

/// Events read from the store and applied in one transaction while rebuilding.
pub const REBUILD_BATCH: usize = 16384;

/// Rebuilds the read model at `path` from position 0, calling `progress(done, total)`.
pub async fn rebuild(
    store: &dyn EventStore,
    path: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<ReadModel> {
    rebuild_in_batches(store, path, REBUILD_BATCH, progress).await
}

/// [`rebuild`], reading the log `batch` events at a time (tests cut a small log into many).
pub async fn rebuild_in_batches(
    store: &dyn EventStore,
    path: &Path,
    batch: usize,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReadModel> {
    let batch = batch.max(1);
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file)
                .map_err(|e| AppError::Storage(format!("{}: {e}", file.display())))?;
        }
    }
    let read = crate::sqlite_file::initialize(path, || ReadModel::open_unlocked(path, false))?;
    // A file being built from scratch needs neither a journal nor a sync at every batch: a
    // crash or a failed batch leaves a file nobody uses (`diandan rebuild` renames it into
    // place only once it is complete; the next rebuild starts it over). It is synced once at
    // the end. And a larger page cache: a million orders' rows and indexes, updated in the
    // order events come, are a random walk over a file far larger than the usual 16 MB.
    // With the journal off a failed batch cannot be rolled back: an error ends the rebuild
    // (never retry a batch on this read model).
    read.with_writer(|c| {
        journal_mode(c, "off")?;
        Ok(c.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;")?)
    })?;
    let total = store.head_position().await?;
    // Three batches at once, each stage on its own blocking thread: this one applied, the
    // next one's order payloads decoded, the one after read from the store (the store and
    // the read model are different files). No `projection.apply` spans: the traces these
    // events were made in ended long ago.
    let fetch = |from: u64| async move {
        if from > total {
            return Ok(Vec::new());
        }
        // Projections read payloads only: neither the metadata nor the hash is copied out.
        Ok::<_, AppError>(store.read_all_payloads(from, batch).await?)
    };
    let decode = |events: Vec<RecordedEvent>| async move {
        tokio::task::spawn_blocking(move || {
            let decoded: Vec<Option<OrderEvent>> = events
                .iter()
                .map(|e| {
                    e.stream
                        .starts_with("order-")
                        .then(|| decode_order_event(e).ok())
                        .flatten()
                })
                .collect();
            (events, decoded)
        })
        .await
        .map_err(|e| AppError::Storage(e.to_string()))
    };
    let after = |events: &[RecordedEvent]| events.last().map_or(total + 1, |e| e.position + 1);
    let first = fetch(1).await?;
    let second = after(&first);
    let (decoded, raw) = tokio::join!(decode(first), fetch(second));
    let ((mut events, mut decoded), mut raw) = (decoded?, raw?);
    while let Some(last) = events.last() {
        let done = last.position;
        let count = events.len() as u64;
        let next_from = after(&raw);
        let this = read.clone();
        let applying = tokio::task::spawn_blocking(move || {
            let batch = events
                .iter()
                .zip(decoded)
                .map(|(e, d)| Applied::decoded(e, d))
                .collect();
            this.apply_decoded_blocking(batch)
        });
        let (applied, next, further) =
            tokio::join!(applying, decode(std::mem::take(&mut raw)), fetch(next_from));
        applied.map_err(|e| AppError::Storage(e.to_string()))??;
        diandan_telemetry::metrics::events_projected(count);
        progress(done, total);
        (events, decoded) = next?;
        raw = further?;
    }
    // The indexes only queries read, each from one sort of its table now that it is loaded;
    // SQLite sorts with helper threads, one per core, and goes back to sorting alone after
    // (with `sqlite3` on a read model of 111,000 orders here: 1.24 → 1.08 s for its indexes).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    read.with_writer(|c| {
        c.execute_batch(&format!("PRAGMA threads = {cores};"))?;
        for p in &read.inner.projections {
            c.execute_batch(p.query_indexes())?;
        }
        Ok(c.execute_batch("PRAGMA threads = 0;")?)
    })?;
    // Journaled and synced as every live read model from here on, and synced now (after the
    // switch to WAL, which rewrites the file's header).
    read.with_writer(|c| {
        c.execute_batch(&format!(
            "PRAGMA synchronous=FULL; PRAGMA cache_size={};",
            crate::sqlite_file::CACHE_SIZE
        ))?;
        journal_mode(c, "wal")
    })?;
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| AppError::Storage(format!("{}: {e}", path.display())))?;
    Ok(read)
}

/// How SQLite runs `sql` (every parameter 0) on a fresh read model, one line per step: what
/// tests of the queries' index use read.
#[cfg(test)]
pub(crate) fn query_plan(sql: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let read = ReadModel::open(&dir.path().join("read.db")).unwrap();
    let sql = format!("EXPLAIN QUERY PLAN {sql}");
    read.with_writer(|c| {
        let mut stmt = c.prepare(&sql)?;
        let parameters = stmt.parameter_count();
        let rows = stmt.query_map(
            rusqlite::params_from_iter(std::iter::repeat_n(0i64, parameters)),
            |r| r.get::<_, String>(3),
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_queries_leaves_a_bounded_pool() {
        let dir = tempfile::tempdir().unwrap();
        let read = ReadModel::open(&dir.path().join("read.db")).unwrap();
        // Every query holds its connection until all of them have one: as many open at once.
        let queries = 3 * IDLE_READERS;
        let barrier = Arc::new(std::sync::Barrier::new(queries));
        let burst = (0..queries).map(|_| {
            let barrier = barrier.clone();
            read.query(move |c| {
                barrier.wait();
                Ok(c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get::<_, i64>(0))?)
            })
        });
        for counted in futures::future::join_all(burst).await {
            assert_eq!(counted.unwrap(), 0);
        }
        let idle = read.inner.readers.lock().unwrap().len();
        assert_eq!(idle, IDLE_READERS, "{queries} opened at once, {idle} kept");
    }
}
