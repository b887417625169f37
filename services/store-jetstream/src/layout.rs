//! Where things live in JetStream: which subject holds an event-store stream, how global
//! positions map to JetStream sequences, and the idempotency key of a command.
//!
//! This module is pure arithmetic and string work; it must not talk to a server.

use std::fmt::Write as _;

/// The first tokens of every subject this crate writes: `diandan.store.<prefix>.<stream>`.
const SUBJECT_ROOT: &str = "diandan.store";

/// The longest subject an append may write to. NATS has no hard subject limit, but a subject
/// rides in every protocol line, and the server's default `max_control_line` is 4 KiB.
const MAX_SUBJECT_LEN: usize = 1024;

/// How many global positions one JetStream message (one commit) spans, and so the most events
/// one append may carry.
pub const EVENTS_PER_COMMIT: u64 = 1 << 16;

/// The subjects one store owns: `diandan.store.<prefix>.>`, one token per event-store stream
/// (deeper subjects are reserved).
#[derive(Debug, Clone)]
pub struct Subjects {
    /// `diandan.store.<prefix>`
    base: String,
}

impl Subjects {
    /// `prefix` must be one subject token of `[A-Za-z0-9_-]`; see [`valid_prefix`].
    pub fn new(prefix: &str) -> Self {
        debug_assert!(valid_prefix(prefix));
        Self {
            base: format!("{SUBJECT_ROOT}.{prefix}"),
        }
    }

    /// The filter matching every stream of this store, for the JetStream stream's config and
    /// for consumers of the global log.
    pub fn all(&self) -> String {
        format!("{}.>", self.base)
    }

    /// The subject holding `stream`'s commits, or `None` when the name cannot be stored (empty
    /// or too long once escaped).
    ///
    /// The stream name becomes one token: `[A-Za-z0-9_-]` stay as they are (so `order-<uuid>`
    /// reads as itself in `nats` tooling), every other byte, `%` included, becomes `%XX`. The
    /// result never holds `.`, `*`, `>` or whitespace, and different names never share a
    /// subject.
    pub fn stream(&self, stream: &str) -> Option<String> {
        if stream.is_empty() {
            return None;
        }
        let mut subject = String::with_capacity(self.base.len() + 1 + stream.len());
        subject.push_str(&self.base);
        subject.push('.');
        for byte in stream.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
                subject.push(char::from(byte));
            } else {
                let _ = write!(subject, "%{byte:02X}");
            }
        }
        (subject.len() <= MAX_SUBJECT_LEN).then_some(subject)
    }
}

/// Whether `prefix` may be used as the store's subject token.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The global position of event `index` of the commit at JetStream sequence `sequence`.
///
/// A commit is one JetStream message and may hold several events, so each message owns a
/// block of [`EVENTS_PER_COMMIT`] positions: `(sequence - 1) * 2^16 + index + 1`. Positions
/// are strictly increasing in commit order and start at 1 (the first event of the first
/// message), but they have gaps: the next commit's first event is at the next block.
pub fn position(sequence: u64, index: usize) -> u64 {
    debug_assert!(sequence >= 1 && (index as u64) < EVENTS_PER_COMMIT);
    (sequence - 1) * EVENTS_PER_COMMIT + index as u64 + 1
}

/// The JetStream sequence and event index a position falls on (`position(s, i)` inverted).
/// Position 0 reads as position 1.
pub fn locate(position: u64) -> (u64, usize) {
    let offset = position.max(1) - 1;
    (
        offset / EVENTS_PER_COMMIT + 1,
        (offset % EVENTS_PER_COMMIT) as usize,
    )
}

/// The idempotency key of a command on a stream: a name-based (v5) UUID of both, stable across
/// processes and versions. It is the commit's `Nats-Msg-Id`, and its first eight bytes are
/// what later commits remember of it (see `commit::RecentCommit`).
pub fn command_key(stream: &str, command_id: &str) -> uuid::Uuid {
    /// A fixed namespace, so keys differ from any other v5 UUIDs built from the same names.
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5d1c_0b7e_6a2f_4e0c_9c8e_d1a9_da9d_a4e1);
    // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    let name = format!("{}:{stream}{command_id}", stream.len());
    uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The short form of [`command_key`] that commits carry for their predecessors.
pub fn short_key(key: uuid::Uuid) -> u64 {
    (key.as_u128() >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_become_one_safe_token() {
        let subjects = Subjects::new("prod");
        assert_eq!(subjects.all(), "diandan.store.prod.>");
        let order = "order-2b1f0c1e-8c4e-4f43-9d0e-6a1d2f3b4c5d";
        assert_eq!(
            subjects.stream(order).unwrap(),
            format!("diandan.store.prod.{order}")
        );
        assert_eq!(
            subjects.stream("a.b*c> d%").unwrap(),
            "diandan.store.prod.a%2Eb%2Ac%3E%20d%25"
        );
        assert_eq!(
            subjects.stream("派单").unwrap(),
            "diandan.store.prod.%E6%B4%BE%E5%8D%95"
        );
        // `%` is escaped too, so an escaped-looking name cannot collide with its source.
        assert_ne!(subjects.stream("%2E"), subjects.stream("."));
        assert_eq!(subjects.stream(""), None);
        assert_eq!(subjects.stream(&".".repeat(400)), None);
    }

    #[test]
    fn prefixes_are_single_tokens() {
        assert!(valid_prefix("prod"));
        assert!(valid_prefix("tenant_1-a"));
        for bad in ["", "a.b", "*", ">", "a b", "a\n"] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }

    #[test]
    fn positions_start_at_one_and_round_trip() {
        assert_eq!(position(1, 0), 1);
        assert_eq!(position(1, 2), 3);
        assert_eq!(position(2, 0), EVENTS_PER_COMMIT + 1);
        assert_eq!(
            position(1, (EVENTS_PER_COMMIT - 1) as usize),
            EVENTS_PER_COMMIT
        );
        for (sequence, index) in [(1, 0), (1, 5), (7, 0), (7, 65535), (1 << 40, 3)] {
            assert_eq!(locate(position(sequence, index)), (sequence, index));
        }
        assert_eq!(locate(0), (1, 0));
    }

    #[test]
    fn command_keys_depend_on_stream_and_command() {
        let key = command_key("order-1", "cmd");
        assert_eq!(key, command_key("order-1", "cmd"));
        assert_ne!(key, command_key("order-2", "cmd"));
        assert_ne!(command_key("ab", "c"), command_key("a", "bc"));
    }
}
