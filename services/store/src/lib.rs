//! The event store: the one place where diandan's facts are kept.
//!
//! Every change to an order (and to the organisation directory) is an event appended to a
//! stream (`order-<id>`, `directory`). This crate defines the [`EventStore`] trait every
//! backend implements, its [`StoreError`], and the embedded default backend:
//!
//! - [`sqlite`]: SQLite in WAL mode with `synchronous=FULL` and group commit: one writer
//!   thread gathers concurrent appends into one transaction and one fsync, and answers
//!   nobody before that fsync returned.
//! - [`subscription`]: catch-up-then-live feeds of the global log, shared by backends that
//!   can read the log by position and publish their committed head.
//! - [`conformance`]: the behaviour every backend must show, as a suite any backend's tests
//!   call with a fresh store.
//! - [`bench`](mod@bench): durable-append throughput of this crate against plain SQLite inserts.
//!
//! Guarantees every backend gives:
//! - per-stream optimistic concurrency ([`ExpectedRevision`]);
//! - idempotent appends keyed by command id: a retry returns the first result and writes nothing;
//! - atomic multi-event appends;
//! - a hash chain per stream ([`chain`]): each event's [`RecordedEvent::hash`] covers its
//!   content and its predecessor's hash, computed and stored in the append that writes it;
//! - one global, gap-free-in-order log ([`RecordedEvent::position`], starting at 1) that can be
//!   read and subscribed to from any position (catch-up, then live).

pub mod bench;
pub mod chain;
pub mod conformance;
mod live_tail;
pub mod sqlite;
pub mod subscription;
mod wal_checkpointer;

pub use sqlite::SqliteStore;

use std::fmt;
use std::pin::Pin;

use futures::Stream;
use serde::{Deserialize, Serialize};

/// A store result; the error is [`StoreError`] unless said otherwise.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The revision a writer expects a stream to be at when it appends.
///
/// Revisions count events in a stream from 0; a stream with three events is at revision 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this revision.
    Exact(u64),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::Exact(r) => write!(f, "{r}"),
        }
    }
}

/// An event to append: the type name and two opaque JSON documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id of this event (backends may use it for their own de-duplication).
    pub event_id: uuid::Uuid,
    /// The event's type, e.g. `OrderPlaced`.
    pub event_type: String,
    /// The payload (JSON).
    pub data: Vec<u8>,
    /// Envelope metadata (JSON): actor, time, command id, correlation id.
    pub metadata: Vec<u8>,
}

/// One append: which stream, what the writer expects, the idempotency key, the events.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// The stream to append to. Must not be empty.
    pub stream: String,
    pub expected: ExpectedRevision,
    /// The command that produced these events. A second append with the same stream and
    /// command id returns the first append's result and writes nothing, whatever its
    /// `expected` and `events`. Must not be empty.
    pub command_id: String,
    /// At least one event. All are written, or none.
    pub events: Vec<NewEvent>,
}

/// What an acknowledged append wrote. Returned only once the events are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Revision of the first event written.
    pub first_revision: u64,
    /// Revision of the last event written: the stream's revision after this append.
    pub last_revision: u64,
    /// Global position of the last event written.
    pub last_position: u64,
    /// True when this was a retry of an append already stored (nothing was written now).
    pub duplicate: bool,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub event_id: uuid::Uuid,
    pub stream: String,
    /// Position within its stream, from 0.
    pub revision: u64,
    /// Position in the global log, from 1, strictly increasing in commit order.
    pub position: u64,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    /// Commit time as Unix milliseconds, set by the store.
    pub recorded_at_ms: i64,
    /// [`chain::event_hash`] of this event after its stream predecessor, stored with it.
    pub hash: chain::Hash,
}

/// Which way to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A live feed of the global log: catch-up from a position, then new events as they commit.
pub type Subscription = Pin<Box<dyn Stream<Item = Result<RecordedEvent>> + Send>>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected revision. Reload the stream, decide again, retry.
    #[error("stream {stream} is at revision {actual:?}, expected {expected}")]
    WrongExpectedRevision {
        stream: String,
        expected: ExpectedRevision,
        /// `None` when the stream does not exist.
        actual: Option<u64>,
    },
    /// The request itself was malformed (no events, empty stream name or command id).
    /// Fix the caller.
    #[error("invalid append: {0}")]
    InvalidRequest(String),
    /// The store could not be reached or did not answer. Retry later; nothing was acknowledged.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store failed, e.g. the disk is full or read-only. Nothing was acknowledged.
    #[error("store failure: {0}")]
    Backend(String),
}

/// The interface every event store backend implements.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Append events atomically to one stream. Returns only when they are durable.
    async fn append(&self, request: AppendRequest) -> Result<AppendResult>;

    /// Read up to `max` events of one stream starting at revision `from` (inclusive).
    /// For [`Direction::Backward`], `from = u64::MAX` starts at the end.
    /// A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>>;

    /// Read up to `max` events of the global log with position `>= from`, in order.
    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>>;

    /// [`read_all`](Self::read_all) for a reader that folds payloads only (a rebuild of the
    /// read models): each event's `metadata` may come back empty and its `hash` unset, so a
    /// backend that stores them beside the payload need not copy them out. By default, every
    /// field as `read_all` reads it.
    async fn read_all_payloads(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        self.read_all(from, max).await
    }

    /// The position of the last committed event (0 when the log is empty).
    async fn head_position(&self) -> Result<u64>;

    /// Every event with position `>= from`: first those stored, then new ones as they commit.
    fn subscribe_all(&self, from: u64) -> Subscription;
}
