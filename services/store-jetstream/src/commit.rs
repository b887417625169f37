//! A commit: the one JetStream message an append writes, holding all its events.
//!
//! Writing one message per append is what makes a multi-event append atomic: JetStream
//! stores a message whole or not at all. The body is a small binary frame (all integers
//! big-endian, strings and blobs length-prefixed with a `u32`):
//!
//! ```text
//! u8   format version (2; version 1 had no hashes)
//! u64  revision of the first event
//! u16  n, then n × (u64 short command key, u64 sequence): this stream's previous commits,
//!      newest first (at most RECENT_COMMITS)
//! str  event-store stream name
//! str  command id
//! u32  m, then m × ([16] event id, str event type, blob data, blob metadata, [32] hash)
//! ```
//!
//! Each event's hash is its link in the stream's hash chain ([`diandan_store::chain`]),
//! computed by the append from the previous commit's last hash, so it is written in the same
//! message as the event. Commits of format 1 (before the chain) read with 32 zero bytes,
//! which `diandan audit verify` reports as not following from their content.
//!
//! The list of previous commits links a stream's commits backwards (its first entry is the
//! previous commit), which is how streams are read backwards, and lets an append recognise a
//! retried command among the last [`RECENT_COMMITS`] commits from the last message alone.
//!
//! This module only encodes and decodes; it must not talk to a server.

use bytes::{BufMut, Bytes, BytesMut};
use diandan_store::chain::{self, Hash};
use diandan_store::{AppendResult, NewEvent, RecordedEvent};

use crate::layout;

/// How many earlier commits of its stream a commit remembers.
pub const RECENT_COMMITS: usize = 16;

const FORMAT_VERSION: u8 = 2;
/// The format before the hash chain, still read.
const UNCHAINED_FORMAT: u8 = 1;

/// An earlier commit of the same stream, as a later commit remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentCommit {
    /// [`layout::short_key`] of its command.
    pub key: u64,
    /// Its JetStream sequence.
    pub sequence: u64,
}

/// A commit as read back from JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The JetStream sequence of the message.
    pub sequence: u64,
    /// When the server stored it (Unix milliseconds).
    pub recorded_at_ms: i64,
    pub stream: String,
    pub command_id: String,
    pub first_revision: u64,
    pub recent: Vec<RecentCommit>,
    pub events: Vec<StoredEvent>,
}

/// One event inside a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    pub hash: Hash,
}

/// The body of a commit that is about to be written; `prev` is the hash of the stream's last
/// event ([`chain::GENESIS`] for a new stream).
pub fn encode(
    stream: &str,
    command_id: &str,
    first_revision: u64,
    recent: &[RecentCommit],
    prev: Hash,
    events: &[NewEvent],
) -> Bytes {
    let hashes = chain::chain(stream, first_revision, prev, events);
    let size = 64
        + stream.len()
        + command_id.len()
        + recent.len() * 16
        + events
            .iter()
            .map(|e| 60 + e.event_type.len() + e.data.len() + e.metadata.len())
            .sum::<usize>();
    let mut body = BytesMut::with_capacity(size);
    body.put_u8(FORMAT_VERSION);
    body.put_u64(first_revision);
    let recent = &recent[..recent.len().min(RECENT_COMMITS)];
    body.put_u16(recent.len() as u16);
    for commit in recent {
        body.put_u64(commit.key);
        body.put_u64(commit.sequence);
    }
    put_blob(&mut body, stream.as_bytes());
    put_blob(&mut body, command_id.as_bytes());
    body.put_u32(events.len() as u32);
    for (event, hash) in events.iter().zip(&hashes) {
        body.put_slice(event.event_id.as_bytes());
        put_blob(&mut body, event.event_type.as_bytes());
        put_blob(&mut body, &event.data);
        put_blob(&mut body, &event.metadata);
        body.put_slice(hash);
    }
    body.freeze()
}

fn put_blob(body: &mut BytesMut, blob: &[u8]) {
    body.put_u32(blob.len() as u32);
    body.put_slice(blob);
}

impl Commit {
    /// Decodes the body of the message at `sequence`. The error says what is wrong with it.
    pub fn decode(sequence: u64, recorded_at_ms: i64, body: &[u8]) -> Result<Self, String> {
        let mut reader = Reader { body };
        let version = reader.u8()?;
        if version != FORMAT_VERSION && version != UNCHAINED_FORMAT {
            return Err(format!("unknown commit format {version}"));
        }
        let first_revision = reader.u64()?;
        let recent = (0..reader.u16()?)
            .map(|_| {
                Ok(RecentCommit {
                    key: reader.u64()?,
                    sequence: reader.u64()?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let stream = reader.string()?;
        let command_id = reader.string()?;
        let count = reader.u32()?;
        if count == 0 || u64::from(count) > layout::EVENTS_PER_COMMIT {
            return Err(format!("a commit cannot hold {count} events"));
        }
        let events = (0..count)
            .map(|_| {
                Ok(StoredEvent {
                    event_id: uuid::Uuid::from_bytes(reader.array()?),
                    event_type: reader.string()?,
                    data: reader.blob()?.to_vec(),
                    metadata: reader.blob()?.to_vec(),
                    hash: if version == FORMAT_VERSION {
                        reader.array()?
                    } else {
                        chain::GENESIS
                    },
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if !reader.body.is_empty() {
            return Err(format!("{} bytes after the last event", reader.body.len()));
        }
        Ok(Self {
            sequence,
            recorded_at_ms,
            stream,
            command_id,
            first_revision,
            recent,
            events,
        })
    }

    /// The revision of this commit's last event: its stream's revision after it.
    pub fn last_revision(&self) -> u64 {
        self.first_revision + self.events.len() as u64 - 1
    }

    /// The global position of this commit's last event.
    pub fn last_position(&self) -> u64 {
        layout::position(self.sequence, self.events.len() - 1)
    }

    /// The sequence of the stream's commit before this one, if any.
    pub fn previous(&self) -> Option<u64> {
        self.recent.first().map(|commit| commit.sequence)
    }

    /// The hash of this commit's last event: the next commit's chain continues from it.
    pub fn last_hash(&self) -> Hash {
        self.events
            .last()
            .map_or(chain::GENESIS, |event| event.hash)
    }

    /// Whether this commit was written by `command_id`.
    pub fn is_command(&self, command_id: &str) -> bool {
        self.command_id == command_id
    }

    /// What the append that wrote this commit returned (or returns to a retry).
    pub fn result(&self, duplicate: bool) -> AppendResult {
        AppendResult {
            first_revision: self.first_revision,
            last_revision: self.last_revision(),
            last_position: self.last_position(),
            duplicate,
        }
    }

    /// What the commit after this one remembers: this commit, then what this one remembered.
    pub fn recent_for_next(&self) -> Vec<RecentCommit> {
        let this = RecentCommit {
            key: layout::short_key(layout::command_key(&self.stream, &self.command_id)),
            sequence: self.sequence,
        };
        std::iter::once(this)
            .chain(self.recent.iter().copied())
            .take(RECENT_COMMITS)
            .collect()
    }

    /// The events as the store hands them out, oldest first.
    pub fn into_events(self) -> impl DoubleEndedIterator<Item = RecordedEvent> {
        let Commit {
            sequence,
            recorded_at_ms,
            stream,
            first_revision,
            events,
            ..
        } = self;
        events
            .into_iter()
            .enumerate()
            .map(move |(index, event)| RecordedEvent {
                event_id: event.event_id,
                stream: stream.clone(),
                revision: first_revision + index as u64,
                position: layout::position(sequence, index),
                event_type: event.event_type,
                data: event.data,
                metadata: event.metadata,
                recorded_at_ms,
                hash: event.hash,
            })
    }
}

/// Reads a commit body front to back; every read fails cleanly on a short body.
struct Reader<'a> {
    body: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if self.body.len() < len {
            return Err(format!(
                "truncated: wanted {len} bytes, {} left",
                self.body.len()
            ));
        }
        let (taken, rest) = self.body.split_at(len);
        self.body = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn blob(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.blob()?.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_event(index: u8) -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: format!("Tested{index}"),
            data: vec![index; usize::from(index)],
            metadata: br#"{"actor":"t"}"#.to_vec(),
        }
    }

    #[test]
    fn a_commit_round_trips() {
        let events = vec![new_event(0), new_event(3), new_event(200)];
        let recent = vec![
            RecentCommit {
                key: 7,
                sequence: 41,
            },
            RecentCommit {
                key: 9,
                sequence: 12,
            },
        ];
        let body = encode("order-1", "cmd-1", 5, &recent, [7; 32], &events);
        let commit = Commit::decode(42, 1_700_000_000_000, &body).unwrap();
        assert_eq!(commit.stream, "order-1");
        assert_eq!(commit.command_id, "cmd-1");
        assert_eq!(commit.recent, recent);
        assert_eq!(commit.previous(), Some(41));
        assert_eq!(
            commit.result(false),
            AppendResult {
                first_revision: 5,
                last_revision: 7,
                last_position: layout::position(42, 2),
                duplicate: false,
            }
        );
        let recorded: Vec<RecordedEvent> = commit.clone().into_events().collect();
        for (i, (recorded, new)) in recorded.iter().zip(&events).enumerate() {
            assert_eq!(recorded.event_id, new.event_id);
            assert_eq!(recorded.event_type, new.event_type);
            assert_eq!(recorded.data, new.data);
            assert_eq!(recorded.metadata, new.metadata);
            assert_eq!(recorded.revision, 5 + i as u64);
            assert_eq!(recorded.position, layout::position(42, i));
            assert_eq!(recorded.recorded_at_ms, 1_700_000_000_000);
        }
        let hashes = chain::chain("order-1", 5, [7; 32], &events);
        assert_eq!(recorded.iter().map(|e| e.hash).collect::<Vec<_>>(), hashes);
        assert_eq!(commit.last_hash(), hashes[2]);

        let next = commit.recent_for_next();
        assert_eq!(next.len(), 3);
        assert_eq!(next[0].sequence, 42);
        assert_eq!(
            next[0].key,
            layout::short_key(layout::command_key("order-1", "cmd-1"))
        );
        assert_eq!(&next[1..], &recent[..]);
    }

    #[test]
    fn the_recent_list_is_bounded() {
        let recent: Vec<RecentCommit> = (0..RECENT_COMMITS as u64)
            .map(|sequence| RecentCommit { key: 1, sequence })
            .collect();
        let body = encode("s", "c", 0, &recent, chain::GENESIS, &[new_event(1)]);
        let commit = Commit::decode(99, 1, &body).unwrap();
        let next = commit.recent_for_next();
        assert_eq!(next.len(), RECENT_COMMITS);
        assert_eq!(next[0].sequence, 99);
        assert_eq!(next[RECENT_COMMITS - 1].sequence, RECENT_COMMITS as u64 - 2);
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        let body = encode("s", "c", 0, &[], chain::GENESIS, &[new_event(5)]);
        for len in 0..body.len() {
            assert!(Commit::decode(1, 1, &body[..len]).is_err(), "{len} bytes");
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(Commit::decode(1, 1, &longer).is_err());
        let mut other_version = body.to_vec();
        other_version[0] = 9;
        assert!(Commit::decode(1, 1, &other_version).is_err());
    }
}
