//! The witness: the log's leaves as they were signed, and the checkpoints signed over them.
//!
//! `audit.db` (beside the read models) keeps, per event in log order, its leaf index, position
//! and hash, and every checkpoint signed. The leaves are authenticated by the checkpoints (their
//! root must be the signed one), which is what lets `audit verify` name the events of a
//! rewritten history. Every signed checkpoint is also appended to `checkpoints.jsonl`, one per
//! line, for whoever keeps copies outside the system.
//!
//! Several processes of one host may open the same file: writes take SQLite's write lock and
//! add only leaves the file does not have yet; each handle refreshes its in-memory tree from
//! the file before it answers.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use diandan_store::chain::Hash;
use diandan_store::EventStore;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::{params, Connection, OptionalExtension};

use crate::checkpoint::Checkpoint;
use crate::merkle::Tree;

/// The bus subject every new checkpoint is published on (JSON, as in [`Checkpoint`]).
pub const CHECKPOINT_SUBJECT: &str = "diandan.audit.checkpoints";

/// Events read from the store per transaction.
const PAGE: usize = 2000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leaves (
    leaf     INTEGER PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    hash     BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size INTEGER PRIMARY KEY,
    json      TEXT    NOT NULL
);
";

/// The witness of one system's log.
#[derive(Clone)]
pub struct Witness {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    /// The leaves read so far, as a tree for roots and proofs.
    state: Mutex<State>,
    key: SigningKey,
    journal: PathBuf,
}

/// The tree keeps the levels from blocks of `2^TREE_FLOOR` leaves up in memory (about one byte
/// per event: ten million events take ~10 MB, not the ~700 MB of every level); the leaves of a
/// block are read back from `audit.db` when a root or a proof needs them.
const TREE_FLOOR: u32 = 6;

struct State {
    tree: Tree,
    /// The position of the last leaf read.
    last_position: u64,
}

impl Default for State {
    fn default() -> State {
        State {
            tree: Tree::with_floor(TREE_FLOOR),
            last_position: 0,
        }
    }
}

/// The event hashes of leaves `lo..hi`.
fn read_leaves(conn: &Connection, lo: u64, hi: u64) -> anyhow::Result<Vec<Hash>> {
    let mut statement = conn
        .prepare_cached("SELECT hash FROM leaves WHERE leaf >= ?1 AND leaf < ?2 ORDER BY leaf")
        .map_err(storage)?;
    let mut rows = statement.query(params![lo, hi]).map_err(storage)?;
    let mut hashes = Vec::new();
    while let Some(row) = rows.next().map_err(storage)? {
        let hash: Vec<u8> = row.get(0).map_err(storage)?;
        hashes.push(
            hash.try_into()
                .map_err(|_| anyhow::anyhow!("audit.db: a leaf hash is not 32 bytes"))?,
        );
    }
    Ok(hashes)
}

/// Runs `f` with a [`merkle::Fetch`](crate::merkle::Fetch) reading leaves from `conn`; a read
/// that failed is the error.
fn with_leaves<T>(
    conn: &Connection,
    f: impl FnOnce(crate::merkle::Fetch<'_>) -> T,
) -> anyhow::Result<T> {
    let mut failed = None;
    let mut fetch = |lo: u64, hi: u64| match read_leaves(conn, lo, hi) {
        Ok(hashes) => Some(hashes),
        Err(e) => {
            failed = Some(e);
            None
        }
    };
    let result = f(&mut fetch);
    match failed {
        Some(e) => Err(e),
        None => Ok(result),
    }
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness").finish_non_exhaustive()
    }
}

fn storage(e: rusqlite::Error) -> anyhow::Error {
    anyhow::anyhow!("audit.db: {e}")
}

impl Witness {
    /// Opens (creating) `audit.db` in `data_dir`, signing with `key`.
    pub fn open(data_dir: &Path, key: SigningKey) -> anyhow::Result<Witness> {
        std::fs::create_dir_all(data_dir)?;
        let conn = Connection::open(data_dir.join("audit.db")).map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(storage)?;
        conn.execute_batch(&format!("PRAGMA journal_mode = WAL; {SCHEMA}"))
            .map_err(storage)?;
        let witness = Witness {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                state: Mutex::default(),
                key,
                journal: data_dir.join("checkpoints.jsonl"),
            }),
        };
        // No leaves are read here: every use refreshes first, so a process that never signs
        // or proves (every part but stats) never loads them.
        Ok(witness)
    }

    /// Signs that `last` is `stream`'s last event in the tree of `tree_size` events (for an
    /// export).
    pub fn sign_head(
        &self,
        stream: &str,
        last: &diandan_store::RecordedEvent,
        tree_size: u64,
    ) -> crate::export::StreamHead {
        crate::export::StreamHead::sign(&self.inner.key, stream, last, tree_size)
    }

    /// The key checkpoints are verified with.
    pub fn public_key(&self) -> VerifyingKey {
        self.inner.key.verifying_key()
    }

    /// Reads into memory the leaves other handles added to the file.
    fn refresh(&self) -> anyhow::Result<()> {
        let conn = self.inner.conn.lock().expect("witness poisoned");
        let mut state = self.inner.state.lock().expect("witness poisoned");
        let mut statement = conn
            .prepare_cached(
                "SELECT leaf, position, hash FROM leaves WHERE leaf >= ?1 ORDER BY leaf",
            )
            .map_err(storage)?;
        let mut rows = statement.query([state.tree.size()]).map_err(storage)?;
        while let Some(row) = rows.next().map_err(storage)? {
            let hash: Vec<u8> = row.get(2).map_err(storage)?;
            let hash: Hash = hash
                .try_into()
                .map_err(|_| anyhow::anyhow!("audit.db: a leaf hash is not 32 bytes"))?;
            state.tree.push(&hash);
            state.last_position = row.get(1).map_err(storage)?;
        }
        Ok(())
    }

    /// Adds the leaves of every event the store holds beyond those already witnessed.
    ///
    /// The file work (reading other handles' leaves, inserting and syncing new ones) runs on
    /// the blocking pool: a minute's events are thousands of leaves, and the async workers it
    /// would otherwise hold up are the ones answering HTTP requests.
    pub async fn catch_up(&self, store: &dyn EventStore) -> anyhow::Result<u64> {
        loop {
            let from = self.blocking(|witness| witness.next_position()).await?;
            let events = store.read_all(from, PAGE).await?;
            if events.is_empty() {
                return Ok(self.size());
            }
            self.blocking(move |witness| witness.add_leaves(&events))
                .await?;
        }
    }

    /// Runs `work` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Witness) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let witness = self.clone();
        tokio::task::spawn_blocking(move || work(&witness)).await?
    }

    /// The position of the first event not witnessed yet (after reading other handles' leaves).
    fn next_position(&self) -> anyhow::Result<u64> {
        self.refresh()?;
        let state = self.inner.state.lock().expect("witness poisoned");
        Ok(state.last_position + 1)
    }

    /// Adds the leaves of `events` (in position order) that the file does not hold yet.
    fn add_leaves(&self, events: &[diandan_store::RecordedEvent]) -> anyhow::Result<()> {
        let mut conn = self.inner.conn.lock().expect("witness poisoned");
        // IMMEDIATE: take the write lock first (waiting for another process's), so the
        // leaf count read below is the one the inserts follow.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(storage)?;
        {
            let next: u64 = tx
                .query_row("SELECT COALESCE(MAX(leaf) + 1, 0) FROM leaves", [], |r| {
                    r.get(0)
                })
                .map_err(storage)?;
            let last: u64 = tx
                .query_row("SELECT COALESCE(MAX(position), 0) FROM leaves", [], |r| {
                    r.get(0)
                })
                .map_err(storage)?;
            let mut insert = tx
                .prepare_cached("INSERT INTO leaves (leaf, position, hash) VALUES (?1, ?2, ?3)")
                .map_err(storage)?;
            // Another process may have added some of these since the refresh above.
            for (leaf, event) in (next..).zip(events.iter().filter(|e| e.position > last)) {
                insert
                    .execute(params![leaf, event.position, &event.hash[..]])
                    .map_err(storage)?;
            }
        }
        tx.commit().map_err(storage)?;
        Ok(())
    }

    /// How many leaves are witnessed.
    pub fn size(&self) -> u64 {
        self.inner
            .state
            .lock()
            .expect("witness poisoned")
            .tree
            .size()
    }

    /// Signs a checkpoint of everything the store holds now (after catching up), unless the
    /// latest checkpoint already covers it; returns the checkpoint that covers it.
    pub async fn checkpoint(
        &self,
        store: &dyn EventStore,
        now_ms: i64,
    ) -> anyhow::Result<Option<Checkpoint>> {
        let size = self.catch_up(store).await?;
        self.blocking(move |witness| witness.sign(size, now_ms))
            .await
    }

    /// Signs a checkpoint of the first `size` leaves unless one of at least that size exists.
    fn sign(&self, size: u64, now_ms: i64) -> anyhow::Result<Option<Checkpoint>> {
        if let Some(latest) = self.latest()? {
            if latest.tree_size >= size {
                return Ok(Some(latest));
            }
        }
        if size == 0 {
            return Ok(None);
        }
        let checkpoint = {
            let conn = self.inner.conn.lock().expect("witness poisoned");
            let state = self.inner.state.lock().expect("witness poisoned");
            let position: u64 = conn
                .query_row(
                    "SELECT position FROM leaves WHERE leaf = ?1",
                    [size - 1],
                    |r| r.get(0),
                )
                .map_err(storage)?;
            let root = with_leaves(&conn, |fetch| state.tree.root_with(size, fetch))?
                .ok_or_else(|| anyhow::anyhow!("audit.db: the leaves of the tree are missing"))?;
            Checkpoint::sign(&self.inner.key, size, position, &root, now_ms)
        };
        let json = serde_json::to_string(&checkpoint)?;
        let inserted = self
            .inner
            .conn
            .lock()
            .expect("witness poisoned")
            .execute(
                "INSERT INTO checkpoints (tree_size, json) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![size, json],
            )
            .map_err(storage)?;
        if inserted == 0 {
            // Another process signed this size first.
            return self.latest();
        }
        let mut journal = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.inner.journal)?;
        // One write per line: lines of processes signing at once never interleave.
        journal.write_all(format!("{json}\n").as_bytes())?;
        tracing::info!(tree_size = size, root = %checkpoint.root, "signed a checkpoint of the log");
        Ok(Some(checkpoint))
    }

    /// The newest checkpoint signed, if any.
    pub fn latest(&self) -> anyhow::Result<Option<Checkpoint>> {
        let json: Option<String> = self
            .inner
            .conn
            .lock()
            .expect("witness poisoned")
            .query_row(
                "SELECT json FROM checkpoints ORDER BY tree_size DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        json.map(|json| serde_json::from_str(&json).map_err(Into::into))
            .transpose()
    }

    /// Every checkpoint signed, oldest first.
    pub fn checkpoints(&self) -> anyhow::Result<Vec<Checkpoint>> {
        signed_checkpoints(&self.inner.conn.lock().expect("witness poisoned"), None)
    }

    /// The checkpoint of exactly `tree_size` events, if one was signed.
    pub fn checkpoint_of(&self, tree_size: u64) -> anyhow::Result<Option<Checkpoint>> {
        // SQLite integers are i64: a larger size names no checkpoint (not a storage error).
        if i64::try_from(tree_size).is_err() {
            return Ok(None);
        }
        let conn = self.inner.conn.lock().expect("witness poisoned");
        Ok(signed_checkpoints(&conn, Some(tree_size))?.pop())
    }

    /// The consistency proof from the tree of `old` leaves to that of `new` (RFC 9162).
    pub fn consistency_proof(&self, old: u64, new: u64) -> anyhow::Result<Option<Vec<Hash>>> {
        self.refresh()?;
        let conn = self.inner.conn.lock().expect("witness poisoned");
        let state = self.inner.state.lock().expect("witness poisoned");
        with_leaves(&conn, |fetch| {
            state.tree.consistency_proof_with(old, new, fetch)
        })
    }

    /// The leaf index of the event at `position`, and its inclusion proof in the tree of
    /// `size` leaves.
    pub fn inclusion(&self, position: u64, size: u64) -> anyhow::Result<Option<(u64, Vec<Hash>)>> {
        self.refresh()?;
        let conn = self.inner.conn.lock().expect("witness poisoned");
        let state = self.inner.state.lock().expect("witness poisoned");
        // SQLite integers are i64: a larger position names no leaf.
        let Ok(position) = i64::try_from(position) else {
            return Ok(None);
        };
        let leaf: Option<u64> = conn
            .query_row(
                "SELECT leaf FROM leaves WHERE position = ?1",
                [position],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        let Some(leaf) = leaf else {
            return Ok(None);
        };
        Ok(with_leaves(&conn, |fetch| {
            state.tree.inclusion_proof_with(leaf, size, fetch)
        })?
        .map(|proof| (leaf, proof)))
    }
}

/// Witnessed leaves: (position, event hash), in leaf order.
pub type Leaves = Vec<(u64, Hash)>;

/// The witnessed leaves of a data dir, read without a key (for `audit verify`): (position,
/// hash) in leaf order, and the checkpoints signed. Empty when there is no `audit.db`.
pub fn read_witness(data_dir: &Path) -> anyhow::Result<(Leaves, Vec<Checkpoint>)> {
    let path = data_dir.join("audit.db");
    if !path.exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(storage)?;
    let mut leaves = Vec::new();
    let mut statement = conn
        .prepare("SELECT position, hash FROM leaves ORDER BY leaf")
        .map_err(storage)?;
    let mut rows = statement.query([]).map_err(storage)?;
    while let Some(row) = rows.next().map_err(storage)? {
        let hash: Vec<u8> = row.get(1).map_err(storage)?;
        leaves.push((
            row.get(0).map_err(storage)?,
            hash.try_into().unwrap_or([0xff; 32]),
        ));
    }
    Ok((leaves, signed_checkpoints(&conn, None)?))
}

/// The checkpoints kept in `audit.db`, oldest first (only the one of `size` events, if given).
fn signed_checkpoints(conn: &Connection, size: Option<u64>) -> anyhow::Result<Vec<Checkpoint>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT json FROM checkpoints WHERE ?1 IS NULL OR tree_size = ?1 ORDER BY tree_size",
        )
        .map_err(storage)?;
    let rows = statement
        .query_map([size], |r| r.get::<_, String>(0))
        .map_err(storage)?;
    let mut out = Vec::new();
    for json in rows {
        out.push(serde_json::from_str(&json.map_err(storage)?)?);
    }
    Ok(out)
}

/// How often the running system signs a checkpoint when the log grew
/// (`DIANDAN_CHECKPOINT_EVERY_S`, default 60 s).
pub fn checkpoint_interval() -> std::time::Duration {
    let seconds = std::env::var("DIANDAN_CHECKPOINT_EVERY_S")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(60);
    std::time::Duration::from_secs(seconds)
}

/// Signs a checkpoint every `every` while the log grows, handing each new one to `publish`
/// (the bus), until `stop` resolves; then signs a last one.
pub async fn run<F, Fut>(
    witness: Witness,
    store: Arc<dyn EventStore>,
    every: std::time::Duration,
    publish: F,
    stop: impl std::future::Future<Output = ()>,
) where
    F: Fn(Checkpoint) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut last = witness.latest().ok().flatten().map(|c| c.tree_size);
    let mut round = async || {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        match witness.checkpoint(store.as_ref(), now as i64).await {
            Ok(Some(checkpoint)) if Some(checkpoint.tree_size) != last => {
                last = Some(checkpoint.tree_size);
                publish(checkpoint).await;
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "signing a checkpoint failed; retrying"),
        }
    };
    round().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(every) => round().await,
        }
    }
    round().await;
}
