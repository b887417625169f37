//! What a stored event carries besides its payload, and the ids it is stored under.
//!
//! KurrentDB keeps, per event, an id (a UUID), a type, the data and a "custom metadata" blob.
//! The store uses them so:
//! - the **id** is [`stored_event_id`]: a v5 UUID of stream, command id and the event's index
//!   in its append. A resent append carries the same ids, so the server itself recognises
//!   it (KurrentDB's idempotent writes);
//! - the **custom metadata** is an [`Envelope`]: the command id, the caller's own event id,
//!   the index and count of the event within its append, the attempt that wrote it, and the
//!   caller's metadata, and the event's link in its stream's hash chain
//!   ([`diandan_store::chain`], hex). From any one stored event the store can thus tell which command wrote
//!   it, which revisions that command's append spans, and whether *this* call wrote it.
//!
//! The caller's data and metadata come back byte for byte: JSON is kept as written (a
//! [`RawValue`], so neither key order nor whitespace changes), anything else as base64.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// The namespace of [`stored_event_id`]. Never change it: ids already stored were derived from
/// it, and a retry is only recognised by the server if it derives the same ones.
const STORED_EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6469_616e_6461_6e2d_6b75_7272_656e_7464);

/// The version of the envelope this crate writes (the `diandan` field).
const ENVELOPE_VERSION: u32 = 1;

/// The id event `index` of the append of `command_id` to `stream` is stored under.
///
/// The stream name is length-prefixed and the index comes last (digits only), so no two
/// (stream, command, index) triples spell the same name.
pub fn stored_event_id(stream: &str, command_id: &str, index: usize) -> Uuid {
    let name = format!("{}:{stream}:{command_id}:{index}", stream.len());
    Uuid::new_v5(&STORED_EVENT_ID_NAMESPACE, name.as_bytes())
}

/// The custom metadata of every event this store writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Marks the event as written by this crate, and with which envelope version.
    pub diandan: u32,
    /// The command whose append wrote the event.
    pub command_id: String,
    /// The caller's id of the event ([`diandan_store::NewEvent::event_id`]).
    pub event_id: Uuid,
    /// A fresh id per call of `append`: tells the call that wrote an event from its retries.
    pub attempt: Uuid,
    /// The event's place in its append, from 0.
    pub index: u64,
    /// How many events its append wrote.
    pub count: u64,
    /// The caller's metadata, when it is JSON that survives a round trip byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Box<RawValue>>,
    /// The caller's metadata otherwise, base64 (standard alphabet, padded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_base64: Option<String>,
    /// The event's hash-chain link (64 hex digits), computed before the append from the
    /// stream's last event and written with the event. Absent on events written before the
    /// chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl Envelope {
    /// The envelope of event `index` of `count` in an append of `command_id`.
    pub fn new(
        command_id: &str,
        event_id: Uuid,
        attempt: Uuid,
        index: usize,
        count: usize,
        metadata: &[u8],
        hash: &diandan_store::chain::Hash,
    ) -> Self {
        let (metadata, metadata_base64) = match exact_json(metadata) {
            Some(raw) => (Some(raw), None),
            None => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(metadata)),
            ),
        };
        Self {
            diandan: ENVELOPE_VERSION,
            command_id: command_id.to_owned(),
            event_id,
            attempt,
            index: index as u64,
            count: count as u64,
            metadata,
            metadata_base64,
            hash: Some(diandan_store::chain::to_hex(hash)),
        }
    }

    /// The stored hash-chain link; all zeros (which never verifies) when absent or malformed.
    pub fn chain_hash(&self) -> diandan_store::chain::Hash {
        self.hash
            .as_deref()
            .and_then(diandan_store::chain::from_hex)
            .unwrap_or_default()
    }

    /// The envelope in a stored event's custom metadata; `None` for events this crate did not
    /// write (or wrote with an envelope version it does not know).
    pub fn decode(custom_metadata: &[u8]) -> Option<Self> {
        let envelope: Self = serde_json::from_slice(custom_metadata).ok()?;
        (envelope.diandan == ENVELOPE_VERSION && envelope.count > envelope.index)
            .then_some(envelope)
    }

    /// The bytes to store as the event's custom metadata.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }

    /// The caller's metadata, as it was appended.
    pub fn caller_metadata(&self) -> Option<Vec<u8>> {
        match (&self.metadata, &self.metadata_base64) {
            (Some(raw), _) => Some(raw.get().as_bytes().to_vec()),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok(),
            (None, None) => None,
        }
    }

    /// The revisions of the append this event belongs to, given the event's own revision.
    pub fn append_revisions(&self, revision: u64) -> Option<(u64, u64)> {
        let first = revision.checked_sub(self.index)?;
        Some((first, first.checked_add(self.count - 1)?))
    }
}

/// `bytes` as a JSON value that serialises back to exactly `bytes`, if there is one.
pub fn exact_json(bytes: &[u8]) -> Option<Box<RawValue>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let raw = RawValue::from_string(text.to_owned()).ok()?;
    (raw.get().as_bytes() == bytes).then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_ids_are_stable_and_distinct() {
        let id = stored_event_id("order-1", "cmd-1", 0);
        assert_eq!(id, stored_event_id("order-1", "cmd-1", 0), "deterministic");
        assert_eq!(id.get_version_num(), 5);
        let others = [
            stored_event_id("order-1", "cmd-1", 1),
            stored_event_id("order-2", "cmd-1", 0),
            stored_event_id("order-1", "cmd-2", 0),
            // Separators inside names cannot make two triples collide.
            stored_event_id("order-1:cmd", "1", 0),
            stored_event_id("order-1", ":cmd-1", 0),
            stored_event_id("order-1", "cmd-1:0", 0),
        ];
        for other in others {
            assert_ne!(id, other);
        }
    }

    #[test]
    fn stored_ids_do_not_drift() {
        // Ids already in databases were derived like this; a change would break retries.
        assert_eq!(
            stored_event_id("order-1", "cmd-1", 0),
            Uuid::new_v5(&STORED_EVENT_ID_NAMESPACE, b"7:order-1:cmd-1:0")
        );
    }

    #[test]
    fn json_metadata_round_trips_byte_for_byte() {
        for metadata in [
            &br#"{"b":1,"a":[1, 2 ,3],"c":"\u4e2d"}"#[..],
            br#"{"actor":"r-yongfu","command_id":"k1"}"#,
            b"[]",
            b"42",
        ] {
            let envelope = Envelope::new("cmd", Uuid::nil(), Uuid::nil(), 0, 1, metadata, &[1; 32]);
            assert!(envelope.metadata.is_some(), "kept as JSON");
            let decoded = Envelope::decode(&envelope.encode()).expect("decodes");
            assert_eq!(decoded.caller_metadata().as_deref(), Some(metadata));
        }
    }

    #[test]
    fn other_metadata_round_trips_as_base64() {
        for metadata in [
            &b""[..],
            b" {\"a\":1}",
            b"{\"a\":1}\n",
            b"not json",
            &[0xff, 0x00, 0xfe],
        ] {
            let envelope = Envelope::new("cmd", Uuid::nil(), Uuid::nil(), 0, 1, metadata, &[1; 32]);
            assert!(
                envelope.metadata_base64.is_some(),
                "{metadata:?} kept as base64"
            );
            let decoded = Envelope::decode(&envelope.encode()).expect("decodes");
            assert_eq!(decoded.caller_metadata().as_deref(), Some(metadata));
        }
    }

    #[test]
    fn envelope_names_its_append() {
        let attempt = Uuid::new_v4();
        let event_id = Uuid::new_v4();
        let envelope = Envelope::new("cmd-7", event_id, attempt, 1, 3, b"{}", &[9; 32]);
        let decoded = Envelope::decode(&envelope.encode()).unwrap();
        assert_eq!(decoded.command_id, "cmd-7");
        assert_eq!(decoded.event_id, event_id);
        assert_eq!(decoded.attempt, attempt);
        assert_eq!(decoded.chain_hash(), [9; 32]);
        // Event 1 of 3 stored at revision 5: the append wrote 4..=6.
        assert_eq!(decoded.append_revisions(5), Some((4, 6)));
        assert_eq!(decoded.append_revisions(0), None, "cannot start before 0");
    }

    #[test]
    fn foreign_metadata_is_no_envelope() {
        for foreign in [
            &b""[..],
            b"{}",
            br#"{"$correlationId":"x"}"#,
            br#"{"diandan":2,"command_id":"c","event_id":"00000000-0000-0000-0000-000000000000","attempt":"00000000-0000-0000-0000-000000000000","index":0,"count":1}"#,
            br#"{"diandan":1,"command_id":"c","event_id":"00000000-0000-0000-0000-000000000000","attempt":"00000000-0000-0000-0000-000000000000","index":1,"count":1}"#,
        ] {
            assert!(Envelope::decode(foreign).is_none(), "{foreign:?}");
        }
    }
}
