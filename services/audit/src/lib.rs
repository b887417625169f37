//! Auditable by construction: tamper evidence over the hash-chained log.
//!
//! - [`merkle`]: the RFC 9162 Merkle tree over every event's chain hash, with inclusion and
//!   consistency proofs;
//! - [`checkpoint`]: Ed25519-signed checkpoints of the tree (size, position, root);
//! - [`witness`]: `audit.db`, the leaves and checkpoints as signed, kept by the running
//!   system and published (`checkpoints.jsonl`, the HTTP API, the bus);
//! - [`verify`]: one pass over a log naming each altered, removed, inserted or reordered event;
//! - [`export`]: an order's history with its proofs, checkable offline with the public key.
//!
//! The chain itself (what an event's hash covers) is [`diandan_store::chain`]: the store
//! writes it in the same append as the event.

pub mod checkpoint;
pub mod export;
pub mod merkle;
pub mod verify;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use witness::Witness;
