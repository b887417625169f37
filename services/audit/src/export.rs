//! Verifiable exports: one stream's whole history (an order's), its hashes, and a proof of
//! each event's inclusion in a signed checkpoint — checkable with the system's public key and
//! nothing else (`diandan audit verify-export FILE --key PUBKEY`).
//!
//! ## Format `diandan.export.v1` (JSON)
//!
//! ```json
//! {
//!   "format": "diandan.export.v1",
//!   "stream": "order-…",
//!   "exported_at_ms": 1796000000000,
//!   "checkpoint": { …a signed checkpoint, see `checkpoint`… },
//!   "head": { "stream": "order-…", "last_revision": 20, "last_hash": "<64 hex>",
//!             "tree_size": 1234, "signature": "<base64>" },
//!   "events": [
//!     { "revision": 0, "position": 17, "leaf_index": 16,
//!       "event_id": "uuid", "event_type": "OrderPlaced", "recorded_at_ms": 1796…,
//!       "data_base64": "…", "metadata_base64": "…",
//!       "data": { …the payload, for reading… },
//!       "hash": "<64 hex>", "inclusion_proof": ["<64 hex>", …] }
//!   ]
//! }
//! ```
//!
//! A checker must, with the public key `K`:
//! 1. verify `checkpoint` with `K` (its `log_id` is SHA-256 of `K`; see `checkpoint`);
//! 2. require `events` to be revisions 0, 1, 2, … of `stream` in order, and recompute each
//!    `hash` from `data_base64` and `metadata_base64` (decoded) and the previous event's hash
//!    (32 zero bytes before revision 0) as `diandan_store::chain` specifies;
//! 3. check each event's `inclusion_proof` for its hash at `leaf_index` against the
//!    checkpoint's `root` and `tree_size` (RFC 9162 §2.1.3.2; leaf = SHA-256(0x00 || hash));
//! 4. require `data`, when present, to be the JSON that `data_base64` decodes to;
//! 5. verify `head` with `K` — Ed25519 over the text
//!    `diandan-stream-head/v1\nlog <log_id>\nstream <stream>\nrevision <last_revision>\nhash
//!    <last_hash>\nsize <tree_size>\n` — and require its stream and tree size to be the
//!    export's and the checkpoint's, and the last event to be its revision and hash: the
//!    system states which event was the stream's last, so an export cut short is refused.
//!
//! `position` and `recorded_at_ms` are informative: the chain does not cover them (the
//! inclusion proof fixes the event's place in the log by `leaf_index`). Anything else in the
//! file is not attested. CSV (for people) carries the same hashes but no proofs.

use base64::Engine as _;
use diandan_store::chain::{self, from_hex, to_hex, Hash, GENESIS};
use diandan_store::RecordedEvent;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::verify_inclusion;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The format this module writes and checks.
pub const EXPORT_FORMAT: &str = "diandan.export.v1";

/// An exported history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub format: String,
    pub stream: String,
    pub exported_at_ms: i64,
    pub checkpoint: Checkpoint,
    pub head: StreamHead,
    pub events: Vec<ExportedEvent>,
}

/// The system's statement of a stream's last event as of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamHead {
    pub stream: String,
    pub last_revision: u64,
    pub last_hash: String,
    pub tree_size: u64,
    pub signature: String,
}

impl StreamHead {
    fn text(log_id: &str, stream: &str, last_revision: u64, last_hash: &str, size: u64) -> String {
        format!(
            "diandan-stream-head/v1\nlog {log_id}\nstream {stream}\nrevision {last_revision}\nhash {last_hash}\nsize {size}\n"
        )
    }

    /// Signs that `last` was `stream`'s last event in the tree of `tree_size` events.
    pub fn sign(
        key: &ed25519_dalek::SigningKey,
        stream: &str,
        last: &RecordedEvent,
        tree_size: u64,
    ) -> StreamHead {
        use ed25519_dalek::Signer as _;
        let log_id = crate::checkpoint::log_id(&key.verifying_key());
        let hash = to_hex(&last.hash);
        let text = StreamHead::text(&log_id, stream, last.revision, &hash, tree_size);
        StreamHead {
            stream: stream.to_owned(),
            last_revision: last.revision,
            last_hash: hash,
            tree_size,
            signature: B64.encode(key.sign(text.as_bytes()).to_bytes()),
        }
    }

    fn verify(&self, log_id: &str, key: &VerifyingKey) -> bool {
        use ed25519_dalek::Verifier as _;
        let text = StreamHead::text(
            log_id,
            &self.stream,
            self.last_revision,
            &self.last_hash,
            self.tree_size,
        );
        let Some(signature) = B64
            .decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        key.verify(
            text.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .is_ok()
    }
}

/// One event of an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedEvent {
    pub revision: u64,
    pub position: u64,
    pub leaf_index: u64,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub recorded_at_ms: i64,
    pub data_base64: String,
    pub metadata_base64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    pub hash: String,
    pub inclusion_proof: Vec<String>,
}

impl ExportedEvent {
    /// An event with its place in the signed tree.
    pub fn new(event: &RecordedEvent, leaf_index: u64, proof: &[Hash]) -> ExportedEvent {
        ExportedEvent {
            revision: event.revision,
            position: event.position,
            leaf_index,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            recorded_at_ms: event.recorded_at_ms,
            data_base64: B64.encode(&event.data),
            metadata_base64: B64.encode(&event.metadata),
            data: serde_json::from_slice(&event.data).ok(),
            hash: to_hex(&event.hash),
            inclusion_proof: proof.iter().map(to_hex).collect(),
        }
    }
}

/// Why an export was refused: the first thing found wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    #[error("not a diandan export: {0}")]
    Unreadable(String),
    #[error("export format {0:?} is unknown (this build checks {EXPORT_FORMAT})")]
    Format(String),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("the export holds no events")]
    Empty,
    #[error("event {index}: expected revision {expected}, found {found} (an event is missing, added or moved)")]
    Revision {
        index: usize,
        expected: u64,
        found: u64,
    },
    #[error("revision {revision}: {field} is not valid base64")]
    Encoding { revision: u64, field: &'static str },
    #[error("revision {revision}: its hash does not follow from its content and the previous event (the event was altered)")]
    Hash { revision: u64 },
    #[error("revision {revision}: the readable data differs from data_base64")]
    Readable { revision: u64 },
    #[error("revision {revision}: its inclusion proof does not lead to the checkpoint's root")]
    Inclusion { revision: u64 },
    #[error("the stream's signed last event does not verify with this key, or names another stream or checkpoint")]
    HeadSignature,
    #[error("the export ends at revision {found}, but the stream's last event was revision {expected}: events were left out")]
    Incomplete { expected: u64, found: u64 },
}

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub stream: String,
    pub events: usize,
    pub tree_size: u64,
    pub signed_at_ms: i64,
}

/// Checks an export (its bytes as read from the file) with the system's public key.
pub fn verify_export(bytes: &[u8], key: &VerifyingKey) -> Result<Verified, ExportError> {
    let export: Export =
        serde_json::from_slice(bytes).map_err(|e| ExportError::Unreadable(e.to_string()))?;
    if export.format != EXPORT_FORMAT {
        return Err(ExportError::Format(export.format));
    }
    let root = export.checkpoint.verify(key)?;
    if export.events.is_empty() {
        return Err(ExportError::Empty);
    }
    let head = &export.head;
    if !head.verify(&export.checkpoint.log_id, key)
        || head.stream != export.stream
        || head.tree_size != export.checkpoint.tree_size
    {
        return Err(ExportError::HeadSignature);
    }
    let mut prev = GENESIS;
    for (index, event) in export.events.iter().enumerate() {
        let revision = event.revision;
        if revision != index as u64 {
            return Err(ExportError::Revision {
                index,
                expected: index as u64,
                found: revision,
            });
        }
        let decode = |text: &str, field: &'static str| {
            B64.decode(text)
                .map_err(|_| ExportError::Encoding { revision, field })
        };
        let data = decode(&event.data_base64, "data_base64")?;
        let metadata = decode(&event.metadata_base64, "metadata_base64")?;
        let hash = chain::event_hash(
            &prev,
            chain::EventContent {
                stream: &export.stream,
                revision,
                event_id: &event.event_id,
                event_type: &event.event_type,
                data: &data,
                metadata: &metadata,
            },
        );
        if from_hex(&event.hash) != Some(hash) {
            return Err(ExportError::Hash { revision });
        }
        if let Some(readable) = &event.data {
            if serde_json::from_slice::<serde_json::Value>(&data)
                .ok()
                .as_ref()
                != Some(readable)
            {
                return Err(ExportError::Readable { revision });
            }
        }
        let proof: Option<Vec<Hash>> = event.inclusion_proof.iter().map(|h| from_hex(h)).collect();
        let included = proof.is_some_and(|proof| {
            verify_inclusion(
                &hash,
                event.leaf_index,
                export.checkpoint.tree_size,
                &proof,
                &root,
            )
        });
        if !included {
            return Err(ExportError::Inclusion { revision });
        }
        prev = hash;
    }
    let found = export.events.len() as u64 - 1;
    if found != head.last_revision || from_hex(&head.last_hash) != Some(prev) {
        return Err(ExportError::Incomplete {
            expected: head.last_revision,
            found,
        });
    }
    Ok(Verified {
        stream: export.stream,
        events: export.events.len(),
        tree_size: export.checkpoint.tree_size,
        signed_at_ms: export.checkpoint.signed_at_ms,
    })
}

/// The CSV columns (Chinese headers: the file is for people, opened in Excel).
const CSV_HEADER: [&str; 8] = [
    "流",
    "修订",
    "位置",
    "记录时间（毫秒）",
    "事件类型",
    "事件编号",
    "哈希",
    "内容",
];

/// The export as CSV for people: one row per event with its hash (no proofs). A cell Excel
/// would read as a formula is written with a leading `'`.
pub fn to_csv(export: &Export) -> String {
    let cell = |text: String| {
        if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{text}")
        } else {
            text
        }
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(CSV_HEADER);
    for event in &export.events {
        let data = event
            .data
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_else(|| event.data_base64.clone());
        let _ = writer.write_record([
            cell(export.stream.clone()),
            event.revision.to_string(),
            event.position.to_string(),
            event.recorded_at_ms.to_string(),
            cell(event.event_type.clone()),
            event.event_id.to_string(),
            event.hash.clone(),
            cell(data),
        ]);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::generate_key;
    use crate::merkle::Tree;
    use diandan_store::NewEvent;

    fn export() -> (Vec<u8>, ed25519_dalek::SigningKey) {
        let key = generate_key();
        let events: Vec<NewEvent> = (0..4)
            .map(|i| NewEvent {
                event_id: uuid::Uuid::from_u128(i),
                event_type: format!("T{i}"),
                data: format!("{{\"i\":{i}}}").into_bytes(),
                metadata: b"{}".to_vec(),
            })
            .collect();
        let hashes = chain::chain("order-1", 0, GENESIS, &events);
        // The order's events among others in the log: leaves 1, 3, 4, 6 of 8.
        let mut leaves: Vec<Hash> = (0..8).map(|i| [i as u8; 32]).collect();
        let places = [1u64, 3, 4, 6];
        for (place, hash) in places.iter().zip(&hashes) {
            leaves[*place as usize] = *hash;
        }
        let tree = Tree::new(leaves);
        let checkpoint = Checkpoint::sign(&key, 8, 8, &tree.root(8), 5);
        let exported = events
            .iter()
            .zip(&hashes)
            .zip(places)
            .enumerate()
            .map(|(revision, ((new, hash), place))| {
                let recorded = RecordedEvent {
                    event_id: new.event_id,
                    stream: "order-1".into(),
                    revision: revision as u64,
                    position: place + 1,
                    event_type: new.event_type.clone(),
                    data: new.data.clone(),
                    metadata: new.metadata.clone(),
                    recorded_at_ms: 0,
                    hash: *hash,
                };
                ExportedEvent::new(&recorded, place, &tree.inclusion_proof(place, 8).unwrap())
            })
            .collect();
        let last = RecordedEvent {
            event_id: events[3].event_id,
            stream: "order-1".into(),
            revision: 3,
            position: 7,
            event_type: events[3].event_type.clone(),
            data: events[3].data.clone(),
            metadata: events[3].metadata.clone(),
            recorded_at_ms: 0,
            hash: hashes[3],
        };
        let export = Export {
            format: EXPORT_FORMAT.into(),
            stream: "order-1".into(),
            exported_at_ms: 6,
            checkpoint,
            head: StreamHead::sign(&key, "order-1", &last, 8),
            events: exported,
        };
        (serde_json::to_vec_pretty(&export).unwrap(), key)
    }

    #[test]
    fn an_export_verifies_and_any_edit_is_refused() {
        let (bytes, key) = export();
        let public = key.verifying_key();
        let verified = verify_export(&bytes, &public).unwrap();
        assert_eq!(verified.events, 4);

        let text = String::from_utf8(bytes.clone()).unwrap();
        let edits = [
            text.replace("\"i\": 2", "\"i\": 3"),
            text.replace("\"T1\"", "\"T9\""),
            text.replacen("\"revision\": 1", "\"revision\": 2", 1),
            text.replacen("\"leaf_index\": 3", "\"leaf_index\": 2", 1),
            text.replace("diandan.export.v1", "diandan.export.v9"),
        ];
        for edited in edits {
            assert_ne!(edited, text, "the edit applies");
            assert!(verify_export(edited.as_bytes(), &public).is_err());
        }
        assert!(verify_export(&bytes[..bytes.len() / 2], &public).is_err());
        assert!(matches!(
            verify_export(&bytes, &generate_key().verifying_key()),
            Err(ExportError::Checkpoint(CheckpointError::OtherSystem { .. }))
        ));
        let mut export: Export = serde_json::from_slice(&bytes).unwrap();
        export.events.remove(2);
        assert!(matches!(
            verify_export(&serde_json::to_vec(&export).unwrap(), &public),
            Err(ExportError::Revision { .. })
        ));
        // Cut short: every event left is genuine, but the last one is missing.
        let mut export: Export = serde_json::from_slice(&bytes).unwrap();
        export.events.pop();
        assert_eq!(
            verify_export(&serde_json::to_vec(&export).unwrap(), &public),
            Err(ExportError::Incomplete {
                expected: 3,
                found: 2
            })
        );
        let mut export: Export = serde_json::from_slice(&bytes).unwrap();
        export.head.last_revision = 2;
        assert_eq!(
            verify_export(&serde_json::to_vec(&export).unwrap(), &public),
            Err(ExportError::HeadSignature)
        );
        assert!(
            to_csv(&serde_json::from_slice(&bytes).unwrap())
                .lines()
                .count()
                == 5
        );
    }
}
