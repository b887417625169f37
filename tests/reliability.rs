//! Reliability: the real `diandan up` killed under load, started on a read-only data
//! directory, run out of disk, upgraded over an older read model, and pushed against its HTTP
//! limits; plus the shape of the OpenAPI document Schemathesis tests against. Slow (about a
//! minute of wall time), so it is a test target of its own:
//! `cargo test -p diandan --test reliability`.
//!
//! Every test checks one promise from the outside: a command answered 2xx is durable and
//! applied exactly once; a command that could not be stored gets a clean problem+json (503),
//! never a 500 or a hang; and whatever happened, the data survives it.
//!
//! The read-only and full-disk tests need root (to run the server as `nobody`, to mount a
//! read-only bind and a small ext4 image); where the machine does not allow that, they say so
//! on stderr and check what they can. See `RELIABILITY.md`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{yongfu_order, Server, User};

/// The station head of the station above Yongfu Lane, and the team the load dispatches to.
const HEAD: (&str, &str) = ("head-dengxiaohu", "chezhanlu");
const TEAM: &str = "zhidui-chezhanlu";
const VOLUNTEERS: [&str; 2] = ["v-wangsen", "v-liuhong"];

/// Longest any single HTTP exchange may take before the test calls it a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator (xorshift64*), seeded from `RELIABILITY_SEED` or the clock;
/// the seed is printed so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("reliability: RELIABILITY_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// An HTTP client that gives up (instead of hanging the test) after [`REQUEST_TIMEOUT`].
fn bounded_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTP client")
}

/// Signs in with a bounded client.
async fn login(server: &Server, role: &str, user: &str, node: &str) -> User {
    let user = User::login(server, role, user, node).await;
    User {
        http: bounded_client(),
        ..user
    }
}

/// One HTTP answer: status, JSON body (or the text as a JSON string), content type.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    content_type: String,
}

impl Answer {
    fn is_problem(&self, status: u16, kind: &str) -> bool {
        self.status == status
            && self.content_type == "application/problem+json"
            && self.body["type"] == format!("https://diandan.dev/problems/{kind}")
            && self.body["status"] == status
            && !self.body["detail"].as_str().unwrap_or("").is_empty()
    }
}

/// POSTs a command with an idempotency key. `Err` when no HTTP answer came back (the process
/// died mid-request, or it hung for [`REQUEST_TIMEOUT`]).
async fn send(user: &User, path: &str, body: &Value, key: &str) -> Result<Answer, reqwest::Error> {
    let response = user
        .http
        .post(format!("{}{}", user.base, path))
        .bearer_auth(&user.token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer {
        status,
        body,
        content_type,
    })
}

/// A node's statistics once the read model reflects `position` (bounded: 30 s).
async fn stats_at(head: &User, node: &str, position: u64) -> Value {
    let path = format!("/api/v1/nodes/{node}/stats?min_position={position}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, stats) = head.get(&path).await;
        assert_eq!(status, 200, "{path}: {stats}");
        if stats["position"].as_u64().unwrap() >= position {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "the read model did not reach position {position} within 30 s: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks one order's history (as `GET /api/v1/orders/{id}/history` returns it): placed once,
/// each command's events one commit (contiguous revisions), and every key in `acknowledged`
/// there. Returns each command id's revisions.
fn check_history<'h>(
    order_id: &str,
    history: &'h Value,
    acknowledged: &[&str],
) -> BTreeMap<&'h str, Vec<u64>> {
    let events = history["events"]
        .as_array()
        .unwrap_or_else(|| panic!("history of {order_id}: {history}"));
    let placed = events
        .iter()
        .filter(|e| e["event_type"] == "OrderPlaced")
        .count();
    assert_eq!(placed, 1, "{order_id} placed {placed} times: {history}");
    let mut commits: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in events {
        commits
            .entry(event["command_id"].as_str().unwrap())
            .or_default()
            .push(event["revision"].as_u64().unwrap());
    }
    for (command_id, revisions) in &commits {
        assert!(
            revisions.windows(2).all(|w| w[1] == w[0] + 1),
            "{order_id}: command {command_id} was applied more than once: revisions \
             {revisions:?}: {history}"
        );
    }
    for key in acknowledged {
        assert!(
            commits.contains_key(key),
            "{order_id}: acknowledged command {key} is not in the store: {history}"
        );
    }
    commits
}

/// Every file of a directory and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read data dir")
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Runs a setup command; `Err` with its output when it fails (or cannot be started).
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn skip(test: &str, why: &str) {
    eprintln!("reliability: {test}: SKIPPED part: {why}");
}

/// How to run the server as a user that file modes apply to: `nobody` (through `setpriv`) when
/// the tests run as root, else as the tests' own user. `None` when root cannot drop to nobody.
fn unprivileged() -> Option<Vec<&'static str>> {
    if !running_as_root() {
        return Some(Vec::new());
    }
    let prefix = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    Command::new(prefix[0])
        .args(&prefix[1..])
        .arg(support::binary())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(prefix)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Gives a directory and everything in it to `uid` (and the group of the same number).
fn chown_all(dir: &Path, uid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(uid)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        std::os::unix::fs::chown(entry.unwrap().path(), Some(uid), Some(uid)).unwrap();
    }
}

/// How a hand-started `diandan up` turned out.
enum Startup {
    /// It printed its ready line.
    Ready {
        child: Child,
        http: SocketAddr,
        stderr: std::thread::JoinHandle<String>,
    },
    /// It exited before that.
    Exited { status: ExitStatus, stderr: String },
}

/// Starts `diandan up` on `data_dir` through `prefix` (e.g. `setpriv` to run it as another
/// user), capturing stderr, and waits (bounded) for its ready line or its exit.
fn start_by_hand(prefix: &[&str], data_dir: &Path) -> Startup {
    let (program, prefix_args) = match prefix.split_first() {
        Some((program, rest)) => (*program, rest.to_vec()),
        None => (support::binary(), Vec::new()),
    };
    let mut command = Command::new(program);
    command.args(prefix_args);
    if !prefix.is_empty() {
        command.arg(support::binary());
    }
    let mut child = command
        .args([
            "up",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("DIANDAN_RATE_LIMITS", "off")
        .env("DIANDAN_DEV", "1")
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            child.kill().ok();
            panic!("diandan neither came up nor exited within 30 s")
        });
    if let Some(http) = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
    {
        let http = http.parse().expect("http address");
        return Startup::Ready {
            child,
            http,
            stderr,
        };
    }
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    Startup::Exited {
        status,
        stderr: stderr.join().unwrap(),
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("diandan did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Crash loop
// ---------------------------------------------------------------------------------------------

/// The steps the load generator pushes each order through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Place,
    Triage,
    Dispatch,
    Accept,
}

impl Step {
    fn next(self) -> Option<Step> {
        match self {
            Step::Place => Some(Step::Triage),
            Step::Triage => Some(Step::Dispatch),
            Step::Dispatch => Some(Step::Accept),
            Step::Accept => None,
        }
    }
}

/// A command of the load generator: enough to send it (again).
#[derive(Debug, Clone)]
struct LoadCommand {
    step: Step,
    /// Unknown until the order is placed.
    order_id: Option<String>,
    key: String,
    description: String,
}

impl LoadCommand {
    fn path(&self) -> String {
        match (self.step, &self.order_id) {
            (Step::Place, _) => "/api/v1/orders".to_owned(),
            (Step::Triage, Some(id)) => format!("/api/v1/orders/{id}/triage"),
            (Step::Dispatch, Some(id)) => format!("/api/v1/orders/{id}/dispatch"),
            (Step::Accept, Some(id)) => format!("/api/v1/orders/{id}/accept"),
            (step, None) => unreachable!("{step:?} without an order"),
        }
    }

    fn body(&self) -> Value {
        match self.step {
            Step::Place => yongfu_order(&self.description),
            Step::Triage => json!({"accept": true}),
            Step::Dispatch => json!({"team_id": TEAM, "reason": "崩溃测试：本社区支队"}),
            Step::Accept => json!({"team_id": TEAM}),
        }
    }
}

/// A command the server acknowledged (2xx): the load generator's own log.
#[derive(Debug, Clone)]
struct Ack {
    /// The worker that sent it (whose users send it again).
    worker: usize,
    step: Step,
    order_id: String,
    key: String,
    revision: u64,
    position: u64,
    /// Sent again after a crash and found already applied: it had been stored, but the
    /// answer was lost with the process.
    duplicate: bool,
}

/// Who sends a worker's commands.
#[derive(Clone)]
struct Cast {
    resident: User,
    head: User,
    volunteer: User,
}

impl Cast {
    fn at(&self, server: &Server) -> Cast {
        Cast {
            resident: self.resident.clone_for(server),
            head: self.head.clone_for(server),
            volunteer: self.volunteer.clone_for(server),
        }
    }

    fn sender(&self, step: Step) -> &User {
        match step {
            Step::Place => &self.resident,
            Step::Triage | Step::Dispatch => &self.head,
            Step::Accept => &self.volunteer,
        }
    }
}

/// One load generator, kept across restarts: its log, and the command in flight.
struct Worker {
    index: usize,
    orders: usize,
    /// Sent (perhaps) and not acknowledged yet: sent again, with the same key, after a restart.
    current: Option<LoadCommand>,
    acks: Vec<Ack>,
    /// Answers no command should ever get (500s, 4xx for commands that are valid).
    anomalies: Vec<String>,
}

impl Worker {
    fn next_command(&mut self) -> LoadCommand {
        self.current
            .get_or_insert_with(|| {
                self.orders += 1;
                LoadCommand {
                    step: Step::Place,
                    order_id: None,
                    key: format!("crash-w{}-o{}-Place", self.index, self.orders),
                    description: format!("崩溃测试 {} 号负载的第 {} 单", self.index, self.orders),
                }
            })
            .clone()
    }

    /// Sends one command; `false` when the server is gone.
    async fn step(&mut self, cast: &Cast) -> bool {
        let command = self.next_command();
        let answer = match send(
            cast.sender(command.step),
            &command.path(),
            &command.body(),
            &command.key,
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => return false,
        };
        match answer.status {
            200 | 201 => {
                let ack = Ack {
                    worker: self.index,
                    step: command.step,
                    order_id: answer.body["order_id"].as_str().unwrap().to_owned(),
                    key: command.key.clone(),
                    revision: answer.body["revision"].as_u64().unwrap(),
                    position: answer.body["position"].as_u64().unwrap(),
                    duplicate: answer.body["duplicate"] == true,
                };
                self.current = command.step.next().map(|step| LoadCommand {
                    step,
                    order_id: Some(ack.order_id.clone()),
                    key: format!("crash-w{}-o{}-{step:?}", self.index, self.orders),
                    description: command.description.clone(),
                });
                self.acks.push(ack);
            }
            // Not stored; the same command is sent again.
            503 if answer.is_problem(503, "unavailable") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => {
                self.anomalies.push(format!(
                    "{:?} {} ({}): {} {}",
                    command.step,
                    command.path(),
                    command.key,
                    answer.status,
                    answer.body
                ));
                self.current = None;
            }
        }
        true
    }

    /// Runs until the server is gone.
    async fn run(mut self, cast: Cast) -> Worker {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !self.step(&cast).await {
                return self;
            }
        }
        panic!("worker {}: the server was never killed", self.index);
    }

    /// After the last restart: the command in flight at the last kill is sent until answered.
    async fn settle(&mut self, cast: &Cast) {
        if let Some(command) = self.current.clone() {
            for _ in 0..100 {
                assert!(self.step(cast).await, "the last server stopped answering");
                if self.current.as_ref().map(|c| &c.key) != Some(&command.key) {
                    return;
                }
            }
            panic!("{} was never acknowledged", command.key);
        }
    }
}

/// Kills the server under load 20 times, restarting it on the same data directory; then every
/// acknowledged command is in the store exactly once, a retry is answered as a duplicate, and
/// the projections equal a rebuild from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_loses_and_duplicates_nothing() {
    const CYCLES: usize = 20;
    const WORKERS: usize = 4;
    let started = Instant::now();
    let mut rng = Rng::from_env();
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start_in(tmp.path(), true);
    first.wait_for_demo().await;

    let head = login(&first, "station_head", HEAD.0, HEAD.1).await;
    let mut casts = Vec::new();
    for w in 0..WORKERS {
        casts.push(Cast {
            resident: login(&first, "resident", &format!("r-crash-{w}"), "").await,
            head: head.clone(),
            volunteer: login(&first, "volunteer", VOLUNTEERS[w % 2], "").await,
        });
    }
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|index| Worker {
            index,
            orders: 0,
            current: None,
            acks: Vec::new(),
            anomalies: Vec::new(),
        })
        .collect();

    let mut first = Some(first);
    for cycle in 0..CYCLES {
        let server = first
            .take()
            .unwrap_or_else(|| Server::start_in(tmp.path(), true));
        let handles: Vec<_> = workers
            .drain(..)
            .zip(&casts)
            .map(|(worker, cast)| tokio::spawn(worker.run(cast.at(&server))))
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + rng.below(600))).await;
        drop(server); // SIGKILL, mid-request
        for handle in handles {
            workers.push(handle.await.expect("worker"));
        }
        let acked: usize = workers.iter().map(|w| w.acks.len()).sum();
        eprintln!("reliability: crash loop: cycle {cycle}: {acked} commands acknowledged");
    }

    // The last restart: settle what was in flight at the last kill.
    let server = Server::start_in(tmp.path(), true);
    for (worker, cast) in workers.iter_mut().zip(&casts) {
        worker.settle(&cast.at(&server)).await;
    }
    let anomalies: Vec<&String> = workers.iter().flat_map(|w| &w.anomalies).collect();
    assert!(anomalies.is_empty(), "unexpected answers: {anomalies:#?}");
    let acks: Vec<Ack> = workers.iter().flat_map(|w| w.acks.clone()).collect();
    let lost_answers = acks.iter().filter(|a| a.duplicate).count();
    let mut by_order: BTreeMap<&str, Vec<&Ack>> = BTreeMap::new();
    for ack in &acks {
        by_order.entry(&ack.order_id).or_default().push(ack);
    }
    eprintln!(
        "reliability: crash loop: {} commands on {} orders acknowledged over {CYCLES} kills; \
         {lost_answers} were stored but their answer died with the process",
        acks.len(),
        by_order.len()
    );
    assert!(
        by_order.len() >= CYCLES,
        "too little load to mean anything: {} orders",
        by_order.len()
    );

    // Every acknowledged command is in its order's stream, once, at the revision it was
    // acknowledged with; no stream was placed twice.
    let auditor = login(&server, "auditor", "audit-crash", "xianan").await;
    let histories: Vec<_> = futures::stream::iter(&by_order)
        .map(|(order_id, order_acks)| {
            let auditor = &auditor;
            async move {
                let (status, history) = auditor
                    .get(&format!("/api/v1/orders/{order_id}/history"))
                    .await;
                (*order_id, order_acks, status, history)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for (order_id, order_acks, status, history) in histories {
        assert_eq!(status, 200, "history of {order_id}: {history}");
        let keys: Vec<&str> = order_acks.iter().map(|a| a.key.as_str()).collect();
        let commits = check_history(order_id, &history, &keys);
        for ack in order_acks {
            assert_eq!(
                commits[ack.key.as_str()].last(),
                Some(&ack.revision),
                "{order_id}: {ack:?} stored at another revision"
            );
        }
    }
    eprintln!(
        "reliability: crash loop: histories checked at {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Retried after the restarts with the same key: answered as a duplicate, nothing written.
    let retries = futures::stream::iter(&acks)
        .map(|ack| {
            let cast = casts[ack.worker].at(&server);
            let command = LoadCommand {
                step: ack.step,
                order_id: (ack.step != Step::Place).then(|| ack.order_id.clone()),
                key: ack.key.clone(),
                description: String::new(),
            };
            async move {
                let mut body = command.body();
                if command.step == Step::Place {
                    // Only the key matters for a retry; the body is the same order's.
                    body["description"] = json!("重试");
                }
                let answer = send(
                    cast.sender(command.step),
                    &command.path(),
                    &body,
                    &command.key,
                )
                .await
                .expect("retry answered");
                (ack, answer)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    eprintln!(
        "reliability: crash loop: {} retries answered at {:.1} s",
        retries.len(),
        started.elapsed().as_secs_f64()
    );
    for (ack, answer) in retries {
        assert!(
            matches!(answer.status, 200 | 201)
                && answer.body["duplicate"] == true
                && answer.body["order_id"] == ack.order_id.as_str()
                && answer.body["revision"] == ack.revision,
            "retry of {ack:?} after the restarts: {} {}",
            answer.status,
            answer.body
        );
    }

    // The projections caught up: Yongfu Lane's statistics count exactly what was acknowledged
    // (no demo order is placed there).
    let last_position = acks.iter().map(|a| a.position).max().unwrap();
    let count = |step: Step| {
        acks.iter()
            .filter(|a| a.step == step)
            .map(|a| &a.order_id)
            .collect::<BTreeSet<_>>()
            .len()
    };
    let stats = stats_at(&head.clone_for(&server), "yongfu-lane", last_position).await;
    assert_eq!(stats["received"], count(Step::Place), "{stats}");
    assert_eq!(stats["dispatched"], count(Step::Dispatch), "{stats}");
    assert_eq!(stats["accepted"], count(Step::Accept), "{stats}");

    // And the live read model, built across 21 processes, equals one rebuilt from the log.
    let mut server = server;
    let status = server.stop_gracefully();
    assert!(status.success(), "graceful shutdown: {status}");
    let read_db = tmp.path().join("read.db");
    let live = diandan_runtime::projections::ReadModel::open(&read_db)
        .unwrap()
        .dump()
        .unwrap();
    let output = Command::new(support::binary())
        .args(["projections", "rebuild", "--data-dir"])
        .arg(tmp.path())
        .output()
        .expect("run rebuild");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rebuilt = diandan_runtime::projections::ReadModel::open(&read_db)
        .unwrap()
        .dump()
        .unwrap();
    assert_eq!(
        live.len(),
        rebuilt.len(),
        "live and rebuilt read models differ"
    );
    for (l, r) in live.iter().zip(&rebuilt) {
        assert_eq!(l, r, "live and rebuilt read models differ");
    }
    eprintln!(
        "reliability: crash loop took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Read-only data directory
// ---------------------------------------------------------------------------------------------

/// A read-only bind mount of a directory over itself, undone on drop.
struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    fn mount(dir: &Path) -> Result<ReadOnlyBind, String> {
        let d = dir.to_str().unwrap();
        run("mount", &["--bind", d, d])?;
        let bind = ReadOnlyBind(dir.to_owned());
        run("mount", &["-o", "remount,bind,ro", d])?;
        Ok(bind)
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let d = self.0.to_str().unwrap();
        if run("umount", &[d]).is_err() {
            let _ = run("umount", &["-l", d]);
        }
    }
}

/// What a start on a read-only data dir must look like: a clear error and a non-zero exit,
/// or a server that refuses every command with 503 problem+json while reads work.
async fn expect_read_only_refusal(
    startup: Startup,
    data_dir: &Path,
    (requester, order_id): (&str, &str),
    how: &str,
) {
    match startup {
        Startup::Exited { status, stderr } => {
            eprintln!("reliability: read-only ({how}): exited with {status}; stderr:\n{stderr}");
            assert!(!status.success(), "{how}: exited 0 on a read-only data dir");
            assert!(
                !stderr.contains("panicked"),
                "{how}: a panic is not a clear error: {stderr}"
            );
            assert!(
                stderr.contains(&data_dir.display().to_string()),
                "{how}: the error does not name the data dir: {stderr}"
            );
        }
        Startup::Ready {
            mut child,
            http,
            stderr,
        } => {
            eprintln!("reliability: read-only ({how}): came up; checking commands fail cleanly");
            let base = format!("http://{http}");
            let client = bounded_client();
            let token: Value = client
                .post(format!("{base}/api/v1/dev/login"))
                .json(&json!({"role": "resident", "user_id": requester, "org_node": ""}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let resident = User {
                http: client,
                base,
                token: token["token"].as_str().unwrap_or_default().to_owned(),
            };
            let answer = send(
                &resident,
                "/api/v1/orders",
                &yongfu_order("只读目录下的订单"),
                "readonly-1",
            )
            .await
            .expect("answered");
            assert!(
                answer.is_problem(503, "unavailable"),
                "{how}: a command on a read-only store: {answer:?}"
            );
            let (status, view) = resident.get(&format!("/api/v1/orders/{order_id}")).await;
            assert_eq!(status, 200, "{how}: reads fail: {view}");
            child.kill().ok();
            child.wait().ok();
            eprintln!("{}", stderr.join().unwrap());
        }
    }
}

/// A stopped server's data dir made read-only (by file modes for a non-root server, and by a
/// read-only mount for a root one): startup refuses it clearly and changes nothing; with write
/// access back, every acknowledged order is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_data_dir_is_refused_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    set_mode(tmp.path(), 0o755); // let `nobody` reach the data dir
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, true);
    server.wait_for_demo().await;
    let resident = login(&server, "resident", "r-readonly", "").await;
    let mut acked = Vec::new();
    for i in 0..5 {
        let description = format!("只读测试前的订单 {i}");
        let answer = send(
            &resident,
            "/api/v1/orders",
            &yongfu_order(&description),
            &format!("ro-{i}"),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 201, "{answer:?}");
        acked.push((
            answer.body["order_id"].as_str().unwrap().to_owned(),
            description,
        ));
    }
    let status = server.stop_gracefully();
    assert!(status.success(), "graceful shutdown: {status}");
    drop(server);
    let before = snapshot(&data_dir);
    let files: Vec<PathBuf> = before.keys().map(|f| data_dir.join(f)).collect();

    // 1. The directory and its files are not writable by the server's user: `nobody` when the
    // tests run as root (root ignores file modes), else the tests' own user.
    let prefix = unprivileged();
    if let Some(prefix) = prefix {
        for file in &files {
            set_mode(file, 0o444);
        }
        set_mode(&data_dir, 0o555);
        let startup = start_by_hand(&prefix, &data_dir);
        expect_read_only_refusal(startup, &data_dir, ("r-readonly", &acked[0].0), "mode 0555")
            .await;
        set_mode(&data_dir, 0o755);
        for file in &files {
            set_mode(file, 0o644);
        }
        assert_eq!(
            snapshot(&data_dir),
            before,
            "a refused start changed the data dir"
        );
    } else {
        skip(
            "read_only",
            "cannot run the server as nobody (setpriv missing, or the binary is not readable \
             by nobody)",
        );
    }

    // 2. A read-only file system (EROFS: what a disk remounted read-only after errors does),
    // which root cannot write either.
    match ReadOnlyBind::mount(&data_dir) {
        Ok(bind) => {
            let startup = start_by_hand(&[], &data_dir);
            expect_read_only_refusal(
                startup,
                &data_dir,
                ("r-readonly", &acked[0].0),
                "read-only mount",
            )
            .await;
            drop(bind);
            assert_eq!(
                snapshot(&data_dir),
                before,
                "a refused start changed the data dir"
            );
        }
        Err(e) => skip("read_only", &format!("no read-only bind mount: {e}")),
    }

    // Writable again: everything acknowledged is there, and the store takes new commands.
    let server = Server::start_in(&data_dir, true);
    let resident = resident.clone_for(&server);
    for (order_id, description) in &acked {
        let (status, view) = resident.get(&format!("/api/v1/orders/{order_id}")).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["description"], description.as_str());
        assert_eq!(view["contact_phone"], "13812345678");
    }
    let answer = send(
        &resident,
        "/api/v1/orders",
        &yongfu_order("恢复写权限后的订单"),
        "ro-after",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 201, "{answer:?}");
}

/// One file of the data dir not writable by the server (a restore with the wrong owner): with
/// the contact vault read-only the server runs, refusing placements with 503 while reads work;
/// with the read model read-only it refuses to start, naming what it could not open. Either
/// way nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_in_the_data_dir_is_refused_cleanly() {
    let Some(prefix) = unprivileged() else {
        skip("read_only_file", "cannot run the server as nobody");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    set_mode(tmp.path(), 0o755);
    let data_dir = tmp.path().join("data");
    let mut server = Server::start_in(&data_dir, true);
    server.wait_for_demo().await;
    let resident = login(&server, "resident", "r-readonly-file", "").await;
    let answer = send(
        &resident,
        "/api/v1/orders",
        &yongfu_order("只读文件测试前的订单"),
        "ro-file-0",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 201, "{answer:?}");
    let order_id = answer.body["order_id"].as_str().unwrap().to_owned();
    let status = server.stop_gracefully();
    assert!(status.success(), "graceful shutdown: {status}");
    drop(server);

    for file in ["private.db", "read.db"] {
        let path = data_dir.join(file);
        if running_as_root() {
            chown_all(&data_dir, 65534);
            std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
        }
        set_mode(&path, 0o444);
        let startup = start_by_hand(&prefix, &data_dir);
        let how = format!("{file} read-only");
        expect_read_only_refusal(startup, &data_dir, ("r-readonly-file", &order_id), &how).await;
        set_mode(&path, 0o644);
        if running_as_root() {
            chown_all(&data_dir, 0);
        }
    }

    let server = Server::start_in(&data_dir, true);
    let resident = resident.clone_for(&server);
    let (status, view) = resident.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["contact_phone"], "13812345678", "{view}");
    let answer = send(
        &resident,
        "/api/v1/orders",
        &yongfu_order("恢复后的订单"),
        "ro-file-1",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 201, "{answer:?}");
}

// ---------------------------------------------------------------------------------------------
// Full disk
// ---------------------------------------------------------------------------------------------

/// A small ext4 file system in an image file, loop-mounted; unmounted on drop.
struct LoopFs {
    mount_point: PathBuf,
    _image_dir: tempfile::TempDir,
}

impl LoopFs {
    fn mount(megabytes: u32) -> Result<LoopFs, String> {
        let image_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = image_dir.path().join("fs.img");
        let mount_point = image_dir.path().join("mnt");
        std::fs::create_dir(&mount_point).map_err(|e| e.to_string())?;
        let image_s = image.to_str().unwrap();
        run("fallocate", &["-l", &format!("{megabytes}M"), image_s])?;
        // -m 0: no blocks reserved for root (the server runs as root in the tests).
        run("mkfs.ext4", &["-q", "-m", "0", image_s])?;
        run(
            "mount",
            &["-o", "loop", image_s, mount_point.to_str().unwrap()],
        )?;
        Ok(LoopFs {
            mount_point,
            _image_dir: image_dir,
        })
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let m = self.mount_point.to_str().unwrap();
        if run("umount", &[m]).is_err() {
            let _ = run("umount", &["-l", m]);
        }
    }
}

/// Fills the file system holding `path` with one file, then frees `leave` bytes of it.
fn fill(path: &Path, leave: u64) {
    let mut filler = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match filler.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("writing the filler: {e}"),
        }
    }
    filler.sync_all().ok();
    filler
        .set_len(written.saturating_sub(leave))
        .expect("trim filler");
    filler.sync_all().ok();
}

/// The data dir on a tiny ext4 file system, filled up under load: every refusal is a clean
/// 503 problem+json (never a 500, never a hang); once space is freed the server takes commands
/// again, and every command acknowledged before, during and after is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_cleanly_and_recovers() {
    let fs = match LoopFs::mount(32) {
        Ok(fs) => fs,
        Err(e) => {
            skip(
                "full_disk",
                &format!("cannot loop-mount an ext4 image (needs root and /dev/loop*): {e}"),
            );
            return;
        }
    };
    let data_dir = fs.mount_point.join("data");
    let mut server = Server::start_in(&data_dir, true);
    server.wait_for_demo().await;
    let resident = login(&server, "resident", "r-fulldisk", "").await;
    let head = login(&server, "station_head", HEAD.0, HEAD.1).await;
    let filler = fs.mount_point.join("filler");
    fill(&filler, 256 * 1024);

    // Load until the disk has refused enough commands: placements (which write the contact
    // vault, then the event store) and triages (the event store only).
    let mut acked: Vec<(String, String)> = Vec::new(); // (order id, idempotency key)
    let mut placed = BTreeSet::new();
    let mut to_triage = std::collections::VecDeque::new();
    let mut refused = 0;
    let mut anomalies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while refused < 40 && Instant::now() < deadline {
        let batch: Vec<_> = (0..4)
            .map(|i| {
                n += 1;
                let triage = if i % 2 == 1 {
                    to_triage.pop_front()
                } else {
                    None
                };
                let (resident, head) = (&resident, &head);
                async move {
                    let key = format!("full-{n}");
                    let answer = match &triage {
                        Some(id) => {
                            let path = format!("/api/v1/orders/{id}/triage");
                            send(head, &path, &json!({"accept": true}), &key).await
                        }
                        None => {
                            let text = format!("磁盘将满时的订单 {n}：{}", "满".repeat(300));
                            send(resident, "/api/v1/orders", &yongfu_order(&text), &key).await
                        }
                    };
                    (key, triage, answer)
                }
            })
            .collect();
        for (key, triage, answer) in futures::future::join_all(batch).await {
            let answer = answer.unwrap_or_else(|e| panic!("{key}: no answer on a full disk: {e}"));
            match answer.status {
                200 | 201 => {
                    let order_id = answer.body["order_id"].as_str().unwrap().to_owned();
                    if triage.is_none() {
                        placed.insert(order_id.clone());
                        to_triage.push_back(order_id.clone());
                    }
                    acked.push((order_id, key));
                }
                _ if answer.is_problem(503, "unavailable") => {
                    refused += 1;
                    to_triage.extend(triage);
                }
                _ => anomalies.push(format!("{key}: {answer:?}")),
            }
        }
    }
    eprintln!(
        "reliability: full disk: {} commands acknowledged, {refused} refused with 503",
        acked.len()
    );
    assert!(anomalies.is_empty(), "unclean refusals: {anomalies:#?}");
    assert!(
        refused > 0,
        "the disk never filled up ({} commands acknowledged)",
        acked.len()
    );
    // Reads still work on a full disk.
    let (order_id, _) = acked.first().expect("nothing was acknowledged");
    let (status, view) = resident.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(status, 200, "reading on a full disk: {view}");

    // Space again: the same server takes commands (or, failing that, a restarted one does).
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = None;
    for attempt in 0..100 {
        let key = format!("after-full-{attempt}");
        let answer = send(
            &resident,
            "/api/v1/orders",
            &yongfu_order("磁盘清理后的订单"),
            &key,
        )
        .await
        .expect("answered");
        if answer.status == 201 {
            let order_id = answer.body["order_id"].as_str().unwrap().to_owned();
            placed.insert(order_id.clone());
            acked.push((order_id, key));
            recovered = Some(attempt);
            break;
        }
        assert!(answer.is_problem(503, "unavailable"), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match recovered {
        Some(attempt) => eprintln!(
            "reliability: full disk: the running server took commands again after {attempt} \
             refusals"
        ),
        None => eprintln!("reliability: full disk: the running server did NOT recover; restarting"),
    }
    let status = server.stop_gracefully();
    assert!(
        status.success(),
        "graceful shutdown after a full disk: {status}"
    );
    drop(server);
    let server = Server::start_in(&data_dir, true);
    let resident = resident.clone_for(&server);
    let answer = send(
        &resident,
        "/api/v1/orders",
        &yongfu_order("重启后的订单"),
        "after-restart",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 201, "after freeing space: {answer:?}");
    let order_id = answer.body["order_id"].as_str().unwrap().to_owned();
    let last_position = answer.body["position"].as_u64().unwrap();
    placed.insert(order_id.clone());
    acked.push((order_id, "after-restart".into()));

    // Everything acknowledged survived, once, and the read model (which could not be written
    // either while the disk was full) reflects every order.
    let auditor = login(&server, "auditor", "audit-full", "xianan").await;
    for order_id in &placed {
        let (status, history) = auditor
            .get(&format!("/api/v1/orders/{order_id}/history"))
            .await;
        assert_eq!(status, 200, "{order_id}: {history}");
        let keys: Vec<&str> = acked
            .iter()
            .filter(|(id, _)| id == order_id)
            .map(|(_, key)| key.as_str())
            .collect();
        check_history(order_id, &history, &keys);
    }
    let stats = stats_at(&head.clone_for(&server), "yongfu-lane", last_position).await;
    assert_eq!(stats["received"], placed.len(), "{stats}");
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Writes raw bytes on a fresh connection and reads the answer's status line (bounded).
async fn raw_status(addr: SocketAddr, head: &str, body_chunks: &[Vec<u8>]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer (and close) before it has read everything: write errors are fine.
    let _ = stream.write_all(head.as_bytes()).await;
    for chunk in body_chunks {
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .expect("no answer: the server hung");
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A normal client is served: health, a placed order, a read.
async fn served(resident: &User, label: &str) {
    let (status, body) = resident.get("/healthz").await;
    assert_eq!(status, 200, "{label}: healthz {body}");
    let answer = send(
        resident,
        "/api/v1/orders",
        &yongfu_order(&format!("{label}时的订单")),
        // Idempotency keys are visible ASCII, no spaces (the API's documented limit).
        &format!("served-{}", label.replace(' ', "-")),
    )
    .await
    .unwrap_or_else(|e| panic!("{label}: no answer: {e}"));
    assert_eq!(answer.status, 201, "{label}: {answer:?}");
}

/// Bodies over 64 KiB, descriptions over 500 characters, slow-loris and idle connections,
/// oversized headers: each gets a clean answer, and nobody else waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_and_slow_clients_do_not_block_others() {
    let server = Server::start_demo().await;
    let resident = login(&server, "resident", "r-limits", "").await;
    let post_sized = |size: usize, key: &'static str| {
        // A valid order padded with JSON whitespace to exactly `size` bytes.
        let mut body = yongfu_order("刚好 64 KiB 的请求体").to_string();
        body.push_str(&" ".repeat(size - body.len()));
        let resident = resident.clone();
        async move {
            let response = resident
                .http
                .post(format!("{}/api/v1/orders", resident.base))
                .bearer_auth(&resident.token)
                .header("content-type", "application/json")
                .header("Idempotency-Key", key)
                .body(body)
                .send()
                .await
                .expect("answered");
            let status = response.status().as_u16();
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let body: Value = response.json().await.unwrap_or_default();
            Answer {
                status,
                body,
                content_type,
            }
        }
    };

    // 64 KiB is accepted; one byte more is 413 problem+json.
    let answer = post_sized(64 * 1024, "limit-64k").await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer = post_sized(64 * 1024 + 1, "limit-64k+1").await;
    assert!(answer.is_problem(413, "body-too-large"), "{answer:?}");
    // Also when the size is not announced (chunked): the limit is on bytes read.
    let head = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.http, resident.token
    );
    let mut chunks: Vec<Vec<u8>> = (0..9)
        .map(|_| {
            let mut c = b"2000\r\n".to_vec();
            c.extend(std::iter::repeat_n(b' ', 0x2000));
            c.extend(b"\r\n");
            c
        })
        .collect();
    chunks.push(b"0\r\n\r\n".to_vec());
    let status_line = raw_status(server.http, &head, &chunks).await;
    assert!(
        status_line.starts_with("HTTP/1.1 413"),
        "a 72 KiB chunked body: {status_line:?}"
    );

    // Descriptions: 500 characters (counted as characters, not bytes) pass, 501 do not.
    for (text, expected) in [
        ("a".repeat(500), 201),
        ("字".repeat(500), 201),
        ("a".repeat(501), 400),
        ("字".repeat(501), 400),
    ] {
        let key = format!("desc-{}-{}", text.len(), expected);
        let answer = send(&resident, "/api/v1/orders", &yongfu_order(&text), &key)
            .await
            .unwrap();
        if expected == 201 {
            assert_eq!(answer.status, 201, "{answer:?}");
        } else {
            assert!(answer.is_problem(400, "invalid-request"), "{answer:?}");
            assert_eq!(answer.body["field"], "description", "{answer:?}");
        }
    }

    // Slow-loris clients dribbling a request header byte by byte: others are served meanwhile.
    let partial = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nX-Slow: ",
        server.http
    );
    let lorises: Vec<_> = (0..20)
        .map(|_| {
            let partial = partial.clone();
            let addr = server.http;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                for byte in partial.bytes() {
                    if stream.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                stream
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    served(&resident, "slow-loris dribbling").await;
    let mut held = Vec::new();
    for loris in lorises {
        held.push(loris.await.unwrap());
    }
    served(&resident, "slow-loris holding").await;

    // 200 idle connections (nothing sent at all).
    for _ in 0..200 {
        held.push(TcpStream::connect(server.http).await.expect("connect"));
    }
    served(&resident, "200 idle connections").await;
    drop(held);

    // An oversized header (1 MiB) is refused without hurting anyone.
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        server.http,
        "h".repeat(1 << 20)
    );
    let status_line = raw_status(server.http, &head, &[]).await;
    assert!(
        status_line.is_empty() || status_line.starts_with("HTTP/1.1 431"),
        "a 1 MiB header: {status_line:?}"
    );
    served(&resident, "oversized header").await;
}

/// A client that opens a connection and never finishes its request header must be
/// disconnected after a while: otherwise enough of them hold every connection (and file
/// descriptor) the process may have, and nobody else is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_header_is_disconnected() {
    const PATIENCE: Duration = Duration::from_secs(45);
    let server = Server::start_demo().await;
    let mut stream = TcpStream::connect(server.http).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the HTTP server kept a connection with an unfinished request header open for \
         {PATIENCE:?}: slow-loris clients can hold connections and file descriptors forever \
         (no header read timeout)"
    );
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI document (what scripts/schemathesis.sh tests against)
// ---------------------------------------------------------------------------------------------

/// The OpenAPI document says what the gateway does: query parameters are declared in the
/// query (a client generated from it would otherwise put `min_position` into the path, and
/// Schemathesis cannot send them), and every operation documents the 5xx problem details the
/// gateway really returns (503 when the store cannot write, as on a full disk; 504 on a
/// timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), false);
    let document: Value = reqwest::get(server.url("/api/openapi.json"))
        .await
        .expect("GET openapi.json")
        .json()
        .await
        .expect("JSON");
    let mut misplaced = Vec::new();
    let mut undocumented_5xx = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().unwrap() {
            let method = method.to_uppercase();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                if parameter["in"] == "path" && !path.contains(&format!("{{{name}}}")) {
                    misplaced.push(format!("{method} {path}: `{name}` declared in: path"));
                }
            }
            let responses = operation["responses"].as_object().unwrap();
            if !["5XX", "503"].iter().any(|s| responses.contains_key(*s)) {
                undocumented_5xx.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        misplaced.is_empty(),
        "query parameters documented as path parameters: {misplaced:#?}"
    );
    assert!(
        undocumented_5xx.is_empty(),
        "operations whose 503/504 problem details are not documented: {undocumented_5xx:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Upgrades
// ---------------------------------------------------------------------------------------------

/// A data dir written by the previous release keeps working after an upgrade. Its read model's
/// `checkpoints` table has no `applied` column (added since); read models are disposable, so an
/// outdated one must be migrated or rebuilt from the log, not left failing every batch while
/// reads serve stale data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_model_of_the_previous_release_catches_up_after_an_upgrade() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(tmp.path(), true);
    server.wait_for_demo().await;
    let status = server.stop_gracefully();
    assert!(status.success(), "graceful shutdown: {status}");
    drop(server);
    // The previous release's schema: `checkpoints (projection TEXT PRIMARY KEY, position INTEGER
    // NOT NULL)`.
    rusqlite::Connection::open(tmp.path().join("read.db"))
        .unwrap()
        // (and no schema version: releases before read-model versioning left user_version at 0)
        .execute_batch("ALTER TABLE checkpoints DROP COLUMN applied; PRAGMA user_version = 0;")
        .unwrap();

    let server = Server::start_in(tmp.path(), true);
    let resident = login(&server, "resident", "r-upgrade", "").await;
    let head = login(&server, "station_head", HEAD.0, HEAD.1).await;
    let answer = send(
        &resident,
        "/api/v1/orders",
        &yongfu_order("升级后的第一单"),
        "upgrade-1",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 201, "{answer:?}");
    let position = answer.body["position"].as_u64().unwrap();
    let stats = stats_at(&head, "yongfu-lane", position).await;
    assert_eq!(stats["received"], 1, "{stats}");
}
