//! `audit verify`: walks the log once and names every event that is not what was written.
//!
//! Three witnesses are compared, each catching what the one before cannot:
//! 1. **the hash chain** of each stream: an event whose hash does not follow from its content
//!    and its predecessor's (altered), a revision missing (removed), a revision going back
//!    (reordered);
//! 2. **the witnessed leaves** (`audit.db`), trusted only as far as a signed checkpoint's root
//!    says they are: an event not among them (inserted, or altered and re-hashed), one at
//!    another place than signed (reordered), a signed one gone (removed);
//! 3. **signed checkpoints**, the system's own and any an auditor kept: the log's Merkle root
//!    at each checkpoint's size must be the signed one, whoever recomputed what since.
//!
//! The walk holds per stream one hash, and per event only what it needs to name it if the
//! witness disagrees, so it runs in one pass at the speed the log can be read.

use std::collections::{HashMap, HashSet};
use std::fmt;

use diandan_store::chain::{Hash, GENESIS};
use diandan_store::RecordedEvent;
use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::merkle::{Frontier, Tree};

/// Something `audit verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The event's stored hash does not follow from its content and its predecessor's hash, or
    /// the event at this position is not the one signed.
    Altered {
        stream: String,
        revision: u64,
        position: u64,
    },
    /// Revisions missing from a stream (between two events still there), or a signed event
    /// that is no longer in the log.
    Removed {
        stream: Option<String>,
        revisions: Option<(u64, u64)>,
        position: Option<u64>,
    },
    /// An event that is in no signed checkpoint although it sits among signed events.
    Inserted {
        stream: String,
        revision: u64,
        position: u64,
    },
    /// An event at another place in the log than where it was signed, or after a later
    /// revision of its stream.
    Reordered {
        stream: String,
        revision: u64,
        position: u64,
        signed_position: Option<u64>,
    },
    /// The log's root at a signed checkpoint's size is not the signed root.
    CheckpointMismatch {
        tree_size: u64,
        position: u64,
        signed_at_ms: i64,
        source: String,
    },
    /// A checkpoint whose signature does not verify with the system's key.
    BadCheckpoint {
        tree_size: u64,
        source: String,
        error: String,
    },
    /// The witnessed leaves do not hash to the signed root: that record was edited too, and
    /// only the chain and the checkpoints were used.
    WitnessAltered { tree_size: u64 },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Altered { stream, revision, position } => write!(
                f,
                "已篡改：{stream} 修订 {revision}（位置 {position}）与写入时的内容或哈希不符"
            ),
            Finding::Removed { stream: Some(stream), revisions: Some((from, to)), position } => {
                write!(f, "已删除：{stream} 修订 {from}–{to} 不见了")?;
                if let Some(position) = position {
                    write!(f, "（位于位置 {position} 之前）")?;
                }
                Ok(())
            }
            Finding::Removed { position, .. } => write!(
                f,
                "已删除：签名时位于位置 {} 的事件已不在日志中",
                position.map_or("?".into(), |p| p.to_string())
            ),
            Finding::Inserted { stream, revision, position } => write!(
                f,
                "被插入：{stream} 修订 {revision}（位置 {position}）不在任何已签名的检查点中"
            ),
            Finding::Reordered { stream, revision, position, signed_position } => {
                write!(f, "顺序被改动：{stream} 修订 {revision} 现位于位置 {position}")?;
                match signed_position {
                    Some(signed) => write!(f, "，签名时位于位置 {signed}"),
                    None => write!(f, "，排在其流中更晚的修订之后"),
                }
            }
            Finding::CheckpointMismatch { tree_size, position, signed_at_ms, source } => write!(
                f,
                "检查点不符：{source} 中签于 {} 的检查点（前 {tree_size} 个事件，至位置 {position}）与现在的日志不一致：其之前的历史被改写",
                china_time(*signed_at_ms)
            ),
            Finding::BadCheckpoint { tree_size, source, error } => write!(
                f,
                "检查点无效：{source} 中大小为 {tree_size} 的检查点未通过验证（{error}）"
            ),
            Finding::WitnessAltered { tree_size } => write!(
                f,
                "见证记录被改动：audit.db 中前 {tree_size} 个叶子与已签名的根不符，已只用哈希链和检查点核验"
            ),
        }
    }
}

/// A signing time as people read it: China Standard Time, to the second.
pub fn china_time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(|t| t.to_offset(time::macros::offset!(+8)))
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// What a verification covered and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub events: u64,
    pub streams: u64,
    pub checkpoints: u64,
    pub root: String,
    pub findings: Vec<Finding>,
}

/// A checkpoint to hold the log to, and where it came from (for the report).
#[derive(Debug, Clone)]
pub struct HeldCheckpoint {
    pub checkpoint: Checkpoint,
    pub source: String,
}

/// One pass over the log, in position order.
pub struct Verifier {
    streams: HashMap<String, (u64, Hash)>,
    frontier: Frontier,
    /// Checkpoints by tree size, with their verified roots; the next to compare is first.
    checkpoints: Vec<(HeldCheckpoint, Hash)>,
    /// The witnessed leaves as far as a checkpoint vouches for them.
    witness: Vec<(u64, Hash)>,
    /// Witness leaf by hash, built at the first event that does not match in place.
    by_hash: Option<HashMap<Hash, usize>>,
    /// Witness leaves found in the log (anywhere), and those accounted for as altered.
    matched: Vec<bool>,
    explained: Vec<bool>,
    /// The furthest witness leaf seen so far in the log, and the event found there: a later
    /// event found at an earlier leaf was moved.
    furthest: Option<(usize, String, u64, u64)>,
    /// Positions already reported as moved.
    moved: HashSet<u64>,
    /// Events among signed ones whose hash was never signed: (position, stream, revision).
    unsigned: Vec<(u64, String, u64)>,
    /// Positions already named by the chain as altered.
    altered: HashSet<u64>,
    findings: Vec<Finding>,
    checked: u64,
}

impl Verifier {
    /// A verifier holding the log to `checkpoints` (any order; those that do not verify with
    /// `key` are reported and ignored) and to the `witness` leaves (position, hash).
    pub fn new(
        key: &VerifyingKey,
        checkpoints: Vec<HeldCheckpoint>,
        witness: Vec<(u64, Hash)>,
    ) -> Verifier {
        let mut findings = Vec::new();
        let mut valid: Vec<(HeldCheckpoint, Hash)> = Vec::new();
        for held in checkpoints {
            match held.checkpoint.verify(key) {
                Ok(root) => valid.push((held, root)),
                Err(error) => findings.push(Finding::BadCheckpoint {
                    tree_size: held.checkpoint.tree_size,
                    source: held.source,
                    error: error.to_string(),
                }),
            }
        }
        valid.sort_by_key(|(held, _)| held.checkpoint.tree_size);
        let checked = valid.len() as u64;
        // The witness counts only as far as the newest checkpoint whose root it reproduces.
        let tree = Tree::new(witness.iter().map(|(_, hash)| *hash));
        let mut vouched = 0;
        for (held, root) in valid.iter().rev() {
            let size = held.checkpoint.tree_size;
            if size <= tree.size() && tree.root(size) == *root {
                vouched = size;
                break;
            }
        }
        if vouched == 0 && !valid.is_empty() && !witness.is_empty() {
            findings.push(Finding::WitnessAltered {
                tree_size: valid.last().map_or(0, |(h, _)| h.checkpoint.tree_size),
            });
        }
        let mut witness = witness;
        witness.truncate(vouched as usize);
        Verifier {
            streams: HashMap::new(),
            frontier: Frontier::default(),
            matched: vec![false; witness.len()],
            explained: vec![false; witness.len()],
            checkpoints: valid,
            witness,
            by_hash: None,
            furthest: None,
            moved: HashSet::new(),
            unsigned: Vec::new(),
            altered: HashSet::new(),
            findings,
            checked,
        }
    }

    /// The next event of the log.
    pub fn push(&mut self, event: &RecordedEvent) {
        // 1. The stream's chain.
        let (expected, prev) = self
            .streams
            .get(&event.stream)
            .copied()
            .unwrap_or((0, GENESIS));
        if event.revision == expected {
            if !event.hash_follows(&prev) {
                self.altered.insert(event.position);
                self.findings.push(Finding::Altered {
                    stream: event.stream.clone(),
                    revision: event.revision,
                    position: event.position,
                });
            }
        } else if event.revision > expected {
            self.findings.push(Finding::Removed {
                stream: Some(event.stream.clone()),
                revisions: Some((expected, event.revision - 1)),
                position: Some(event.position),
            });
        } else {
            self.findings.push(Finding::Reordered {
                stream: event.stream.clone(),
                revision: event.revision,
                position: event.position,
                signed_position: None,
            });
        }
        if event.revision >= expected {
            self.streams
                .insert(event.stream.clone(), (event.revision + 1, event.hash));
        }

        // 2. The witness.
        let leaf = self.frontier.size() as usize;
        let signed_end = self.witness.last().map_or(0, |(position, _)| *position);
        if self.witness.get(leaf) == Some(&(event.position, event.hash)) {
            self.matched[leaf] = true;
            self.note_order(leaf, event);
        } else if event.position <= signed_end {
            let witness = &self.witness;
            let by_hash = self.by_hash.get_or_insert_with(|| {
                witness
                    .iter()
                    .enumerate()
                    .map(|(leaf, (_, hash))| (*hash, leaf))
                    .collect()
            });
            // Found elsewhere: a renumbered position alone is no finding (the tree covers the
            // order of events, not their numbers); an event before one signed ahead of it is.
            if let Some(&signed) = by_hash.get(&event.hash) {
                self.matched[signed] = true;
                self.note_order(signed, event);
            } else if !self.altered.contains(&event.position) {
                // Not signed anywhere: altered if the event signed at this position is gone
                // too, inserted if that one is still in the log (known once the walk is over).
                self.unsigned
                    .push((event.position, event.stream.clone(), event.revision));
            }
        }

        // 3. The tree, and the checkpoints of this size.
        self.frontier.push(&event.hash);
        while let Some((held, root)) = self.checkpoints.first() {
            if held.checkpoint.tree_size > self.frontier.size() {
                break;
            }
            if self.frontier.root() != *root {
                self.findings.push(mismatch(held));
            }
            self.checkpoints.remove(0);
        }
    }

    /// Notes that `event` was signed as leaf `signed`; reports it, and the event it overtook,
    /// when an event after it in the log was signed after it.
    fn note_order(&mut self, signed: usize, event: &RecordedEvent) {
        match self.furthest.clone() {
            Some((furthest, stream, revision, position)) if signed < furthest => {
                self.report_reordered(event, Some(self.witness[signed].0));
                let overtaken = RecordedEvent {
                    stream,
                    revision,
                    position,
                    ..event.clone()
                };
                self.report_reordered(&overtaken, Some(self.witness[furthest].0));
            }
            _ => {
                self.furthest =
                    Some((signed, event.stream.clone(), event.revision, event.position));
            }
        }
    }

    fn report_reordered(&mut self, event: &RecordedEvent, signed_position: Option<u64>) {
        if self.moved.insert(event.position) {
            self.findings.push(Finding::Reordered {
                stream: event.stream.clone(),
                revision: event.revision,
                position: event.position,
                signed_position,
            });
        }
    }

    /// The report, once the whole log was pushed.
    pub fn finish(mut self) -> Report {
        // Checkpoints larger than the log: events were removed from its end.
        for (held, _) in std::mem::take(&mut self.checkpoints) {
            self.findings.push(mismatch(&held));
        }
        for (position, stream, revision) in std::mem::take(&mut self.unsigned) {
            let signed_here = self
                .witness
                .binary_search_by_key(&position, |(p, _)| *p)
                .ok()
                .filter(|leaf| !self.matched[*leaf] && !self.explained[*leaf]);
            match signed_here {
                Some(leaf) => {
                    self.explained[leaf] = true;
                    self.findings.push(Finding::Altered {
                        stream,
                        revision,
                        position,
                    });
                }
                None => self.findings.push(Finding::Inserted {
                    stream,
                    revision,
                    position,
                }),
            }
        }
        for (leaf, (position, _)) in self.witness.iter().enumerate() {
            if !self.matched[leaf] && !self.explained[leaf] {
                self.findings.push(Finding::Removed {
                    stream: None,
                    revisions: None,
                    position: Some(*position),
                });
            }
        }
        Report {
            events: self.frontier.size(),
            streams: self.streams.len() as u64,
            checkpoints: self.checked,
            root: diandan_store::chain::to_hex(&self.frontier.root()),
            findings: self.findings,
        }
    }
}

fn mismatch(held: &HeldCheckpoint) -> Finding {
    Finding::CheckpointMismatch {
        tree_size: held.checkpoint.tree_size,
        position: held.checkpoint.position,
        signed_at_ms: held.checkpoint.signed_at_ms,
        source: held.source.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::generate_key;
    use diandan_store::chain;
    use diandan_store::NewEvent;

    /// A log of three streams, chained as a store writes it.
    fn log() -> Vec<RecordedEvent> {
        let mut tails: HashMap<String, (u64, Hash)> = HashMap::new();
        (1..=30u64)
            .map(|position| {
                let stream = format!("s{}", position % 3);
                let (revision, prev) = tails.get(&stream).copied().unwrap_or((0, GENESIS));
                let new = NewEvent {
                    event_id: uuid::Uuid::from_u128(position as u128),
                    event_type: "T".into(),
                    data: format!("{{\"n\":{position}}}").into_bytes(),
                    metadata: b"{}".to_vec(),
                };
                let hash = chain::chain(&stream, revision, prev, std::slice::from_ref(&new))[0];
                tails.insert(stream.clone(), (revision + 1, hash));
                RecordedEvent {
                    event_id: new.event_id,
                    stream,
                    revision,
                    position,
                    event_type: new.event_type,
                    data: new.data,
                    metadata: new.metadata,
                    recorded_at_ms: 0,
                    hash,
                }
            })
            .collect()
    }

    fn verify(
        log: &[RecordedEvent],
        signed: &[RecordedEvent],
        key: &ed25519_dalek::SigningKey,
    ) -> Report {
        let tree = Tree::new(signed.iter().map(|e| e.hash));
        let checkpoint = Checkpoint::sign(
            key,
            tree.size(),
            signed.last().unwrap().position,
            &tree.root(tree.size()),
            1,
        );
        let witness = signed.iter().map(|e| (e.position, e.hash)).collect();
        let mut verifier = Verifier::new(
            &key.verifying_key(),
            vec![HeldCheckpoint {
                checkpoint,
                source: "test".into(),
            }],
            witness,
        );
        for event in log {
            verifier.push(event);
        }
        verifier.finish()
    }

    #[test]
    fn an_untouched_log_verifies() {
        let key = generate_key();
        let log = log();
        let report = verify(&log, &log, &key);
        assert_eq!(report.findings, vec![]);
        assert_eq!(
            (report.events, report.streams, report.checkpoints),
            (30, 3, 1)
        );
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let key = generate_key();
        let signed = log();

        let mut altered = signed.clone();
        altered[4].data = b"{\"n\":99}".to_vec();
        let findings = verify(&altered, &signed, &key).findings;
        assert!(findings.contains(&Finding::Altered {
            stream: "s2".into(),
            revision: 1,
            position: 5
        }));

        let mut removed = signed.clone();
        removed.remove(10);
        let findings = verify(&removed, &signed, &key).findings;
        assert!(
            findings.contains(&Finding::Removed {
                stream: Some("s2".into()),
                revisions: Some((3, 3)),
                position: Some(14)
            }),
            "{findings:?}"
        );

        let mut swapped = signed.clone();
        let (a, b) = (swapped[6].position, swapped[7].position);
        swapped.swap(6, 7);
        swapped[6].position = a;
        swapped[7].position = b;
        let findings = verify(&swapped, &signed, &key).findings;
        assert!(findings.iter().any(|f| matches!(f, Finding::Reordered { position, signed_position: Some(8), .. } if *position == 7)), "{findings:?}");
        assert!(findings
            .iter()
            .any(|f| matches!(f, Finding::CheckpointMismatch { .. })));

        // A whole stream's chain recomputed after an edit: only the witness and the checkpoint
        // can tell.
        let mut rewritten = signed.clone();
        rewritten[4].data = b"{\"n\":99}".to_vec();
        let mut prev = GENESIS;
        for event in rewritten.iter_mut().filter(|e| e.stream == "s2") {
            event.hash = chain::event_hash(&prev, event.content());
            prev = event.hash;
        }
        let findings = verify(&rewritten, &signed, &key).findings;
        assert!(
            findings.contains(&Finding::Altered {
                stream: "s2".into(),
                revision: 1,
                position: 5
            }),
            "{findings:?}"
        );
        assert!(findings
            .iter()
            .any(|f| matches!(f, Finding::CheckpointMismatch { .. })));

        // An event inserted among signed ones, in a stream of its own.
        let mut inserted = signed.clone();
        let mut extra = signed[0].clone();
        extra.stream = "forged".into();
        extra.position = 31;
        extra.hash = chain::event_hash(&GENESIS, extra.content());
        inserted.insert(3, extra);
        for (i, event) in inserted.iter_mut().enumerate() {
            event.position = i as u64 + 1;
        }
        let findings = verify(&inserted, &signed, &key).findings;
        assert!(findings.iter().any(|f| matches!(f, Finding::Inserted { stream, .. } | Finding::Altered { stream, .. } if stream == "forged")), "{findings:?}");
    }

    #[test]
    fn a_checkpoint_of_another_system_is_refused() {
        let key = generate_key();
        let log = log();
        let other = generate_key();
        let tree = Tree::new(log.iter().map(|e| e.hash));
        let foreign = Checkpoint::sign(&other, 30, 30, &tree.root(30), 1);
        let verifier = Verifier::new(
            &key.verifying_key(),
            vec![HeldCheckpoint {
                checkpoint: foreign,
                source: "held.json".into(),
            }],
            Vec::new(),
        );
        assert!(matches!(
            verifier.finish().findings.as_slice(),
            [Finding::BadCheckpoint { .. }]
        ));
    }
}
