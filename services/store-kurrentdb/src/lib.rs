//! An event store on KurrentDB (formerly EventStoreDB): [`KurrentDbStore`] implements
//! [`diandan_store::EventStore`] with the official `kurrentdb` gRPC client, for deployments
//! that want a database built for event sourcing, with its own clustering, UI and
//! projections, next to diandan.
//!
//! Modules:
//! - `store`: the store itself: appends, stream reads, the global log, the origin of positions;
//! - `subscription`: catch-up-then-live feeds on filtered `$all` subscriptions;
//! - `envelope`: what each stored event carries besides its payload, and its stored id;
//! - `position`: KurrentDB log positions ↔ store positions;
//! - `failure`: how `kurrentdb` errors become [`diandan_store::StoreError`]s.
//!
//! # Layout
//!
//! Each event-store stream is the KurrentDB stream of the same name (`order-<uuid>`,
//! `directory`), each event one KurrentDB event with the caller's type and data, so the
//! KurrentDB UI and its projections see diandan's streams as they are. JSON data is stored
//! as JSON (`application/json`), anything else as binary; either way it reads back byte for
//! byte. Revisions are KurrentDB's stream revisions.
//!
//! An event's KurrentDB *id* is a v5 UUID of stream, command id and the event's index in its
//! append; its *custom metadata* is a small JSON envelope with the command id, the caller's
//! event id, the event's index and count in its append, the id of the `append` call that wrote
//! it, and the caller's metadata (kept verbatim). Stream names and event types starting with
//! `$` are KurrentDB's own and are refused, as is the store's own stream
//! [`ORIGIN_STREAM`].
//!
//! # Appends and idempotency
//!
//! An append maps its expected revision to KurrentDB's stream state: `NoStream` →
//! `NoStream`, `Exact(n)` → `StreamRevision(n)`. It goes in three round trips:
//! 1. read the stream's last [`RECENT_WINDOW`] events: if the command is among them, the
//!    append is a retry and gets its original's result, `duplicate: true`, writing nothing.
//!    If the stream is not at the expected revision, it is a conflict (or a retry of an older
//!    append: the stream is searched back to its start for the command first);
//! 2. append with that expectation. A conflict the server reports is handled the same way
//!    (it may be a concurrent copy of the same command);
//! 3. read back the last event written: its envelope says whether this call wrote it — the
//!    server also acknowledges, without writing, an append whose event ids it already holds
//!    (KurrentDB's idempotent writes), which the derived ids make every resent copy — and it
//!    carries the global position the result reports.
//!
//! So a retry returns its original's result whatever its expected revision and events, as the
//! trait asks; a retry that re-decided against the current revision is recognised if its
//! original is among the stream's last [`RECENT_WINDOW`] events (diandan's command runtime
//! also checks the command ids of the stream it loads). `Any` appends, which never conflict on
//! the server, search the whole stream first and then append at the revision found, retrying
//! when the stream moves on: exact, at the cost of reading the stream.
//!
//! # Positions
//!
//! The global log is `$all` without KurrentDB's system events (event types starting with
//! `$`). Its positions come from KurrentDB's *commit position* (the byte offset of the event's
//! record in the transaction log, which is also its prepare position) as
//! `2 × (commit − origin) + 1`, where the *origin* is the commit position of the first event
//! the log shows. Positions therefore start at 1 and strictly increase in commit order, but
//! **are not contiguous**: they jump by twice each record's size, so a difference of two
//! positions (the projection lag metric, say) counts bytes, not events. Odd positions name
//! events, even ones the gap after an event, so reading from `last + 1` works (KurrentDB can
//! only start reading at an event); any other number is no position and the server refuses to
//! read from it.
//!
//! The origin is pinned once, by the first store to need it, as the one event of
//! [`ORIGIN_STREAM`] (type [`ORIGIN_EVENT_TYPE`], a system type, so no one's global log shows
//! it): scavenging the first event later does not shift anyone's positions. Events other
//! applications write to the same database appear in the log as they are (the caller's
//! metadata is then their raw custom metadata).
//!
//! # What an acknowledgement means
//!
//! KurrentDB acknowledges an append once its events are written and flushed (fsynced) to the
//! transaction log — of a majority of the nodes in a cluster — unless the server runs with
//! `--unsafe-disable-flush-to-disk`. That is what the embedded SQLite store promises, with
//! a cluster's failover on top. Reads and subscriptions go to the leader (`requires-leader`),
//! so an acknowledged append is visible to the next read; connect with
//! `?nodePreference=leader` so the client picks the leader first (otherwise a call that hits a
//! follower fails as unavailable and the client reconnects to the leader).
//!
//! Needs a server that reports the `$all` position of events it returns from stream reads, as
//! current KurrentDB does (for every event written by one append). Where a server does not,
//! reads fail with a `Backend` error saying so. `tests/conformance.rs` runs the store
//! conformance suite against a server named by `DIANDAN_KURRENTDB_URL`.
//!
//! # Errors
//!
//! A conflict becomes [`StoreError::WrongExpectedRevision`](diandan_store::StoreError) with
//! the revision the server reported. No answer at all (a refused or broken connection, a
//! deadline, a follower) is `Unavailable`: the append may or may not have been stored, and
//! retrying it with the same command id is safe. What the server refuses for good (access
//! denied, a malformed request) is `Backend`.

mod envelope;
mod failure;
mod position;
mod store;
mod subscription;

pub use store::{KurrentDbStore, ORIGIN_EVENT_TYPE, ORIGIN_STREAM, RECENT_WINDOW};
