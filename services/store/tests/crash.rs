//! Crash safety: a child process appends as fast as it can and reports every acknowledged
//! append on stdout; the parent kills it with SIGKILL mid-stream, reopens the store, and
//! checks that everything acknowledged is there, once, in a log without holes. Three rounds
//! against the same file.
//!
//! The child is this test binary re-executed on the `crash_child_writer` test with
//! `CHILD_DIR` set; in an ordinary run that test does nothing.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diandan_store::{
    AppendRequest, AppendResult, Direction, EventStore, ExpectedRevision, NewEvent, SqliteStore,
};

const CHILD_DIR: &str = "DIANDAN_STORE_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "DIANDAN_STORE_CRASH_CHILD_ROUND";
const CHILD_WRITERS: usize = 32;
/// A child that is never killed stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);
const ROUNDS: usize = 3;

fn db_path(dir: &Path) -> PathBuf {
    dir.join("events.db")
}

/// The child: 32 writers, each on its own stream with exact revisions and 1 to 3 events per
/// append, plus every fourth append to one stream all rounds share.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let round: usize = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(SqliteStore::open(db_path(Path::new(&dir))).unwrap());
        let deadline = Instant::now() + CHILD_LIFETIME;
        let writers: Vec<_> = (0..CHILD_WRITERS)
            .map(|writer| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let own = format!("crash-r{round}-w{writer}");
                    let mut expected = ExpectedRevision::NoStream;
                    for n in 0.. {
                        if Instant::now() > deadline {
                            break;
                        }
                        let shared = n % 4 == 3;
                        let stream = if shared { "crash-shared" } else { own.as_str() };
                        let command_id = format!("r{round}-w{writer}-{n}");
                        let request = AppendRequest {
                            stream: stream.to_owned(),
                            expected: if shared {
                                ExpectedRevision::Any
                            } else {
                                expected
                            },
                            events: events(&command_id, 1 + n % 3),
                            command_id: command_id.clone(),
                        };
                        let result = store.append(request).await.unwrap();
                        if !shared {
                            expected = ExpectedRevision::Exact(result.last_revision);
                        }
                        // Reported only after the acknowledgement, and in one write.
                        let line = format!(
                            "ACK {stream} {command_id} {} {} {} END\n",
                            result.first_revision, result.last_revision, result.last_position
                        );
                        let mut stdout = std::io::stdout().lock();
                        stdout.write_all(line.as_bytes()).unwrap();
                        stdout.flush().unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

fn events(command_id: &str, count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|index| NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: "CrashTested".into(),
            data: vec![b'x'; 200],
            metadata: format!("{command_id} {index} {count}").into_bytes(),
        })
        .collect()
}

#[derive(Debug)]
struct Ack {
    stream: String,
    command_id: String,
    result: AppendResult,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["ACK", stream, command_id, first, last, position, "END"] => Some(Ack {
            stream: stream.to_string(),
            command_id: command_id.to_string(),
            result: AppendResult {
                first_revision: first.parse().ok()?,
                last_revision: last.parse().ok()?,
                last_position: position.parse().ok()?,
                duplicate: false,
            },
        }),
        _ => None,
    }
}

/// Kills the child if the parent panics first.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<Ack> = Vec::new();
    for round in 0..ROUNDS {
        let kill_after = 300 + 100 * round;
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut child = ChildGuard(child);
        let stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut this_round = 0;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(ack) = parse_ack(&line) {
                acked.push(ack);
                this_round += 1;
                if this_round == kill_after {
                    // SIGKILL: no destructor, no final commit, no flush.
                    child.0.kill().unwrap();
                    // Lines already in the pipe were acknowledged too: keep reading them.
                }
            }
        }
        let status = child.0.wait().unwrap();
        assert!(
            this_round >= kill_after,
            "round {round}: the child stopped after {this_round} acks ({status})"
        );
        let head = verify(&db_path(dir.path()), &acked);
        eprintln!("round {round}: {this_round} acks read, log head {head} after SIGKILL");
    }
}

/// One stored event of a command: its place among the command's events, and in its stream.
struct Written {
    index: usize,
    count: usize,
    revision: u64,
}

/// Reopen the store and check it against every acknowledgement so far; the log's head.
fn verify(path: &Path, acked: &[Ack]) -> u64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(path).unwrap();
        let head = store.head_position().await.unwrap();
        let log = store.read_all(1, usize::MAX).await.unwrap();

        // One log, positions 1..=head, no holes, no repeats.
        let positions: Vec<u64> = log.iter().map(|e| e.position).collect();
        assert_eq!(
            positions,
            (1..=head).collect::<Vec<_>>(),
            "the log has holes"
        );

        // Every stream's revisions run 0, 1, 2, ... and every command wrote its events once,
        // together, in order.
        let mut next_revision: HashMap<&str, u64> = HashMap::new();
        let mut commands: BTreeMap<(&str, &str), Vec<Written>> = BTreeMap::new();
        for event in &log {
            let revision = next_revision.entry(&event.stream).or_insert(0);
            assert_eq!(
                event.revision, *revision,
                "{} skips a revision",
                event.stream
            );
            *revision += 1;
            let metadata = std::str::from_utf8(&event.metadata).unwrap();
            let mut fields = metadata.split(' ');
            let command = fields.next().unwrap();
            let index: usize = fields.next().unwrap().parse().unwrap();
            let count: usize = fields.next().unwrap().parse().unwrap();
            commands
                .entry((event.stream.as_str(), command))
                .or_default()
                .push(Written {
                    index,
                    count,
                    revision: event.revision,
                });
        }
        for ((stream, command), events) in &commands {
            let count = events[0].count;
            assert_eq!(
                events.len(),
                count,
                "{stream}/{command} is stored partly or twice"
            );
            for (i, event) in events.iter().enumerate() {
                assert_eq!(event.index, i, "{stream}/{command} is out of order");
                assert_eq!(event.revision, events[0].revision + i as u64);
            }
        }

        // Every acknowledged append is there, where its acknowledgement said.
        for ack in acked {
            let stored = commands
                .get(&(ack.stream.as_str(), ack.command_id.as_str()))
                .unwrap_or_else(|| panic!("acknowledged {ack:?} is missing"));
            let first = stored[0].revision;
            let last = stored[stored.len() - 1].revision;
            assert_eq!(
                (first, last),
                (ack.result.first_revision, ack.result.last_revision)
            );
            let at = &log[(ack.result.last_position - 1) as usize];
            assert_eq!(
                (at.stream.as_str(), at.revision),
                (ack.stream.as_str(), last)
            );
        }

        // The idempotency record survived too: a retry writes nothing.
        for ack in acked.iter().step_by(7) {
            let retry = AppendRequest {
                stream: ack.stream.clone(),
                expected: ExpectedRevision::NoStream,
                command_id: ack.command_id.clone(),
                events: events(&ack.command_id, 1),
            };
            let result = store.append(retry).await.unwrap();
            assert_eq!(
                result,
                AppendResult {
                    duplicate: true,
                    ..ack.result
                }
            );
        }
        assert_eq!(store.head_position().await.unwrap(), head);
        let tail = store
            .read_stream("crash-shared", u64::MAX, Direction::Backward, 1)
            .await
            .unwrap();
        assert!(!tail.is_empty());
        head
    })
}
