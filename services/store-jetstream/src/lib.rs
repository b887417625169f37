//! An event store on NATS JetStream: [`JetStreamStore`] implements
//! [`diandan_store::EventStore`] on one JetStream stream, for deployments that already run NATS
//! or want the log replicated across machines.
//!
//! Modules:
//! - `config`: [`JetStreamConfig`], where the store connects and which stream it uses;
//! - `store`: the store itself: appends, stream reads, the global log;
//! - `subscription`: catch-up-then-live feeds on an ordered consumer;
//! - `commit`: the one message an append writes, and its binary body;
//! - `layout`: subjects, global positions and idempotency keys;
//! - `failure`: how async-nats errors become [`diandan_store::StoreError`]s;
//! - [`watchdog`]: pings and a forced reconnect, so a client leaves a server that stopped
//!   answering (shared with the bus);
//! - [`bench`](mod@bench): appends against raw JetStream publishes on the same server, in one run.
//!
//! # Layout
//!
//! One JetStream stream (default `DIANDAN_EVENTS`) holds the subjects
//! `diandan.store.<prefix>.>`. Each event-store stream is one subject,
//! `diandan.store.<prefix>.<name>`, with the name escaped into a single token (`[A-Za-z0-9_-]`
//! kept, every other byte `%XX`), so `order-<uuid>` keeps its name.
//!
//! Each append is **one message** (a *commit*) holding all its events, so a multi-event
//! append is atomic. It is published with
//! - `Nats-Expected-Last-Subject-Sequence`: the sequence of the subject's last commit (0 when
//!   there is none), read just before. This is the optimistic-concurrency check; every append
//!   carries it, `Any` included, because a commit records the revision of its first event;
//! - `Nats-Msg-Id`: a v5 UUID of stream and command id, so JetStream drops a resent copy within
//!   the stream's duplicate window (default two minutes) and answers with the original's
//!   sequence.
//!
//! Retries older than the duplicate window are recognised by the store: every commit remembers
//! the command keys of its stream's previous 16 commits, so reading the last commit (which an
//! append does anyway) shows whether the command is among the last 17; and a retry carrying the
//! same `NoStream`/`Exact(n)` as its original is checked against the one commit it would have
//! written, however old. What escapes both is an `Any` retry (or one that changed its expected
//! revision) more than 16 commits and more than the duplicate window after its original.
//!
//! # Positions
//!
//! A commit at JetStream sequence `s` owns the global positions `(s - 1) * 2^16 + 1 ..= s * 2^16`;
//! its event `i` is at `(s - 1) * 2^16 + i + 1`. Positions start at 1, strictly increase in
//! commit order and are stable, but have gaps (an append of three events at sequence 2 takes
//! 65537..=65539). Hence at most 65536 events per append. The head position is the position of
//! the last event of the stream's last message.
//!
//! # Reads
//!
//! Stream reads walk a subject's commits one message-get at a time through the stream leader
//! (`STREAM.MSG.GET`, never a possibly lagging replica): forwards with `next_by_subj`,
//! backwards along each commit's link to its predecessor. That is one round trip per commit,
//! right for aggregates of tens of commits. `read_all` uses a short-lived ephemeral consumer,
//! which may sit on a replica that is still catching up, so an empty page is checked against
//! the leader before it counts as the end of the log; subscriptions an ordered consumer,
//! catch-up then live (a lagging replica only delays them: it holds a prefix of the log). A subscription holds its own
//! consumer and a handle on the connection: it outlives the store it came from and ends only
//! when dropped or after yielding an error.
//!
//! # What an acknowledgement means
//!
//! [`EventStore::append`](diandan_store::EventStore::append) returns once JetStream
//! acknowledged the commit:
//! - **R1** (`replicas: 1`): the one server wrote the message to its file store. Whether that
//!   is on disk depends on the *server's* configuration: by default JetStream fsyncs lazily,
//!   every `sync_interval` (two minutes), so an acknowledged append survives a crash of the
//!   server process but not a power loss or kernel crash within that interval. With
//!   `jetstream { sync_interval: always }` (nats-server 2.10 and later) every write is fsynced
//!   before the acknowledgement, which is what the embedded SQLite store promises. nats-server
//!   2.9 (Debian 12's package) has no per-write fsync at all.
//! - **R3** (`replicas: 3`): a quorum, two of the three servers (the stream leader and one
//!   follower), has appended the message to its Raft log before the acknowledgement; that is
//!   the page cache unless the servers run with `sync_interval: always`. An acknowledged append
//!   survives losing any one server, and a power loss of all three only if they fsync on every
//!   write. While a new stream leader is elected (seconds), appends fail with
//!   [`StoreError::Unavailable`](diandan_store::StoreError::Unavailable).
//!
//! Leave the stream's `persist_mode` (2.12+) at its default: `async` acknowledges before the
//! write reaches the file store at all.
//!
//! Replicated stores need **nats-server 2.11 or later**; [`JetStreamStore::connect`] refuses
//! `replicas > 1` on older servers, because they check `Nats-Expected-Last-Subject-Sequence`
//! only before a write enters the stream's Raft group, so two concurrent appends expecting the
//! same revision can both be accepted (nats-server#4320; seen on Debian's 2.9.10). Single
//! server stores work on 2.9.
//!
//! The tests run nats-server with `sync_interval: always` whenever it supports it (2.10+).
//!
//! # Errors
//!
//! A commit JetStream rejects because the subject moved on is read again: it becomes
//! [`StoreError::WrongExpectedRevision`](diandan_store::StoreError::WrongExpectedRevision),
//! a duplicate, or (for `Any`) a new attempt. Time-outs and lost connections are
//! [`StoreError::Unavailable`](diandan_store::StoreError::Unavailable): the append may or
//! may not have been stored, and retrying it with the same command id is safe.

pub mod bench;
mod commit;
mod config;
mod failure;
mod layout;
mod store;
mod subscription;
pub mod watchdog;

pub use config::{JetStreamConfig, DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX};
pub use layout::EVENTS_PER_COMMIT;
pub use store::JetStreamStore;
