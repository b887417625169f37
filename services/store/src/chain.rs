//! The hash chain: every stored event carries a hash over its content and its stream
//! predecessor's hash, computed by the store in the append that writes it.
//!
//! ## Canonical encoding, version 1
//!
//! `hash = SHA-256(preimage)`, where the preimage is, in order (integers big-endian):
//!
//! ```text
//! "diandan.event.v1\n"       17 bytes, the domain tag and encoding version
//! prev                       32 bytes: the hash of the stream's event at revision - 1,
//!                            or 32 zero bytes for revision 0
//! u64  revision
//! u64  len(stream)   stream          UTF-8
//! [16] event id                      the caller's event id, as its 16 bytes
//! u64  len(type)     event type      UTF-8
//! u64  len(data)     data            the payload bytes exactly as stored
//! u64  len(metadata) metadata        the metadata bytes exactly as stored
//! ```
//!
//! The global position and the commit time are *not* part of it: JetStream and KurrentDB
//! assign both on the server, after the hash is computed. The log's order is covered instead
//! by the Merkle tree of signed checkpoints, whose leaves are these hashes in log order.
//! Encrypted fields are hashed as ciphertext, so erasing a key leaves every hash valid.

use sha2::{Digest, Sha256};

use crate::NewEvent;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The predecessor of every stream's first event.
pub const GENESIS: Hash = [0; 32];

/// The encoding this module writes, named in its domain tag.
pub const CHAIN_VERSION: u32 = 1;

const DOMAIN_TAG: &[u8] = b"diandan.event.v1\n";

/// What an event's hash covers, borrowed from wherever the event is.
#[derive(Debug, Clone, Copy)]
pub struct EventContent<'a> {
    pub stream: &'a str,
    pub revision: u64,
    pub event_id: &'a uuid::Uuid,
    pub event_type: &'a str,
    pub data: &'a [u8],
    pub metadata: &'a [u8],
}

/// The hash of an event whose stream predecessor's hash is `prev`.
pub fn event_hash(prev: &Hash, event: EventContent<'_>) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN_TAG);
    hasher.update(prev);
    hasher.update(event.revision.to_be_bytes());
    put_blob(&mut hasher, event.stream.as_bytes());
    hasher.update(event.event_id.as_bytes());
    put_blob(&mut hasher, event.event_type.as_bytes());
    put_blob(&mut hasher, event.data);
    put_blob(&mut hasher, event.metadata);
    hasher.finalize().into()
}

fn put_blob(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// The hashes of `events` appended to `stream` at `first_revision`, after an event hashed
/// `prev` (or [`GENESIS`] for a new stream).
pub fn chain(stream: &str, first_revision: u64, prev: Hash, events: &[NewEvent]) -> Vec<Hash> {
    let mut prev = prev;
    events
        .iter()
        .zip(first_revision..)
        .map(|(event, revision)| {
            prev = event_hash(
                &prev,
                EventContent {
                    stream,
                    revision,
                    event_id: &event.event_id,
                    event_type: &event.event_type,
                    data: &event.data,
                    metadata: &event.metadata,
                },
            );
            prev
        })
        .collect()
}

impl crate::RecordedEvent {
    /// What this event's hash covers.
    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            stream: &self.stream,
            revision: self.revision,
            event_id: &self.event_id,
            event_type: &self.event_type,
            data: &self.data,
            metadata: &self.metadata,
        }
    }

    /// Whether the stored hash follows from this event's content and `prev`.
    pub fn hash_follows(&self, prev: &Hash) -> bool {
        event_hash(prev, self.content()) == self.hash
    }
}

/// Lower-case hexadecimal of a hash.
pub fn to_hex(hash: &Hash) -> String {
    use std::fmt::Write as _;
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A hash from 64 hexadecimal digits.
pub fn from_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_event(n: u8) -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::from_bytes([n; 16]),
            event_type: "Tested".into(),
            data: vec![n],
            metadata: b"{}".to_vec(),
        }
    }

    #[test]
    fn the_encoding_does_not_drift() {
        // Hashes already stored were computed like this; a change must be a new version.
        let hash = chain("order-1", 0, GENESIS, &[new_event(1)])[0];
        let mut preimage = Vec::new();
        preimage.extend_from_slice(b"diandan.event.v1\n");
        preimage.extend_from_slice(&GENESIS);
        preimage.extend_from_slice(&0u64.to_be_bytes());
        preimage.extend_from_slice(&7u64.to_be_bytes());
        preimage.extend_from_slice(b"order-1");
        preimage.extend_from_slice(&[1; 16]);
        preimage.extend_from_slice(&6u64.to_be_bytes());
        preimage.extend_from_slice(b"Tested");
        preimage.extend_from_slice(&1u64.to_be_bytes());
        preimage.extend_from_slice(&[1]);
        preimage.extend_from_slice(&2u64.to_be_bytes());
        preimage.extend_from_slice(b"{}");
        let expected: Hash = Sha256::digest(&preimage).into();
        assert_eq!(hash, expected);
    }

    #[test]
    fn each_hash_covers_its_predecessor_and_every_field() {
        let events = [new_event(1), new_event(2)];
        let hashes = chain("s", 0, GENESIS, &events);
        assert_eq!(chain("s", 1, hashes[0], &events[1..])[0], hashes[1]);
        assert_ne!(chain("s", 1, GENESIS, &events[1..])[0], hashes[1]);
        assert_ne!(chain("t", 0, GENESIS, &events)[0], hashes[0]);
        assert_ne!(chain("s", 1, GENESIS, &events[..1])[0], hashes[0]);
        let mut changed = new_event(1);
        changed.metadata = b"{ }".to_vec();
        assert_ne!(chain("s", 0, GENESIS, &[changed])[0], hashes[0]);
        // Length prefixes keep field boundaries apart.
        let mut a = new_event(1);
        a.event_type = "Ab".into();
        a.data = b"c".to_vec();
        let mut b = new_event(1);
        b.event_type = "A".into();
        b.data = b"bc".to_vec();
        assert_ne!(chain("s", 0, GENESIS, &[a]), chain("s", 0, GENESIS, &[b]));
    }

    #[test]
    fn hex_round_trips() {
        let hash = chain("s", 0, GENESIS, &[new_event(3)])[0];
        assert_eq!(from_hex(&to_hex(&hash)), Some(hash));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }
}
