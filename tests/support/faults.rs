//! Broker faults for the split deployment's tests (`tests/distributed.rs`, `tests/cluster.rs`):
//!
//! - [`NatsProcess`]: a `nats-server` at a fixed address (so it can be stopped and started
//!   again where its clients look for it), optionally inside a network namespace;
//! - [`Netns`]: network namespaces on a bridge, created and removed by the test itself, with
//!   [`Netns::cut`] / [`Netns::heal`] to partition one of them;
//! - [`http_flow`]: one order through the whole loop over HTTP at the gateway, retrying clean
//!   refusals (503) with the same idempotency key, recording every answer;
//! - [`audit`], [`caught_up`], [`equals_rebuild`]: what must hold afterwards.
//!
//! Included with `#[path = "support/faults.rs"] mod faults;`.

#![allow(dead_code)] // each test target uses its own part of this module

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use diandan_runtime::projections::ReadModel;
use diandan_store::{EventStore, RecordedEvent, StoreError};

// ------------------------------------------------------------------------------------------
// nats-server at a fixed address
// ------------------------------------------------------------------------------------------

/// A `nats-server` with JetStream on a fixed client address and its own store directory,
/// killed (SIGKILL) on drop. [`NatsProcess::kill`] then [`NatsProcess::start`] again brings it
/// back where its clients reconnect to, on the same store.
pub struct NatsProcess {
    pub name: String,
    binary: PathBuf,
    fsync_always: bool,
    dir: tempfile::TempDir,
    /// `ip netns exec <ns>` prefix, when the server runs in a namespace.
    netns: Option<String>,
    /// `host:port` of the client listener.
    pub client: String,
    /// `host:port` of the monitoring listener.
    pub monitoring: String,
    /// `cluster { … }` block, if any.
    cluster: Option<String>,
    child: Option<Child>,
}

/// A port nobody listens on right now, on `host`.
pub fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl NatsProcess {
    /// A server on `127.0.0.1` (ports picked now and kept across restarts), not yet started.
    pub fn loopback(binary: &Path, version: (u32, u32, u32)) -> Self {
        let client = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        let monitoring = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        Self::new("n1", binary, version, None, client, monitoring, None)
    }

    /// A server in namespace `netns`, listening on `ip` (client 4222, monitoring 8222, routes
    /// 6222), routed to `peers` (their IPs), not yet started.
    pub fn in_netns(
        name: &str,
        binary: &Path,
        version: (u32, u32, u32),
        netns: &str,
        ip: &str,
        peers: &[String],
    ) -> Self {
        let routes: Vec<String> = peers
            .iter()
            .map(|p| format!("\"nats-route://{p}:6222\""))
            .collect();
        let cluster = format!(
            "cluster {{\n  name: diandan-partition\n  listen: \"{ip}:6222\"\n  routes: [{}]\n}}\n",
            routes.join(", ")
        );
        Self::new(
            name,
            binary,
            version,
            Some(netns.to_owned()),
            format!("{ip}:4222"),
            format!("{ip}:8222"),
            Some(cluster),
        )
    }

    fn new(
        name: &str,
        binary: &Path,
        version: (u32, u32, u32),
        netns: Option<String>,
        client: String,
        monitoring: String,
        cluster: Option<String>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            binary: binary.to_owned(),
            fsync_always: version >= (2, 10, 0),
            dir: tempfile::tempdir().expect("temp dir"),
            netns,
            client,
            monitoring,
            cluster,
            child: None,
        }
    }

    /// `nats://host:port`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.client)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process (again) and waits until it accepts connections.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let dir = self.dir.path();
        let mut config = format!(
            "server_name: {}\nlisten: \"{}\"\nhttp: \"{}\"\n",
            self.name, self.client, self.monitoring
        );
        if self.fsync_always {
            config.push_str("jetstream {\n  sync_interval: always\n}\n");
        }
        if let Some(cluster) = &self.cluster {
            config.push_str(cluster);
        }
        let config_path = dir.join("nats-server.conf");
        std::fs::write(&config_path, config).expect("write config");
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log file");
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .arg("-c")
            .arg(&config_path)
            .arg("-js")
            .arg("-sd")
            .arg(dir.join("store"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "{} exited with {status} while starting:\n{}",
                    self.name,
                    self.log()
                );
            }
            if TcpStream::connect_timeout(
                &self.client.parse().expect("client address"),
                Duration::from_millis(500),
            )
            .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start within 20 s:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.fsync_always {
            let varz = self.monitor("/varz").unwrap_or_default();
            assert!(
                varz.contains("\"sync_always\": true"),
                "{} does not fsync every write: {varz}",
                self.name
            );
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// GET on the monitoring port; the body.
    pub fn monitor(&self, path: &str) -> Result<String, String> {
        let address = self.monitoring.parse().map_err(|e| format!("{e}"))?;
        let mut connection = TcpStream::connect_timeout(&address, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        connection
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        connection
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut response = String::new();
        connection
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        Ok(response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or(response))
    }

    /// How many client connections of each name (`diandan-store-jetstream`, `diandan`, …)
    /// the server has.
    pub fn clients(&self) -> BTreeMap<String, usize> {
        let mut names = BTreeMap::new();
        let connz: Value = self
            .monitor("/connz?limit=1024")
            .ok()
            .and_then(|body| serde_json::from_str(&body).ok())
            .unwrap_or_default();
        for c in connz["connections"].as_array().into_iter().flatten() {
            *names
                .entry(c["name"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        names
    }

    /// The server's log so far (every run of it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------------------------------------
// network namespaces
// ------------------------------------------------------------------------------------------

/// Runs `ip <args>`; its stderr on failure.
fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Namespaces made by a test process are named after it, so a later run can remove what a
/// killed one left behind.
const NETNS_PREFIX: &str = "diandan-test-";

/// `n` network namespaces, each with one veth into a bridge in the root namespace; the bridge
/// holds `10.213.X.1/24`, namespace `i` holds `10.213.X.(i + 2)`. Processes in the root
/// namespace reach every namespace through the bridge, and the namespaces each other. Removed
/// (namespaces, veths, bridge) on drop, panicking or not.
pub struct Netns {
    pub namespaces: Vec<String>,
    pub ips: Vec<String>,
    bridge: String,
    /// Root-namespace end of each namespace's veth (in the bridge).
    outer: Vec<String>,
}

impl Netns {
    /// Whether this machine lets the test make namespaces: `Err(why)` when it does not (no
    /// `ip`, not root, no CAP_NET_ADMIN / CAP_SYS_ADMIN).
    pub fn probe() -> Result<(), String> {
        let name = format!("{NETNS_PREFIX}{}-probe", std::process::id());
        ip(&["netns", "add", &name])?;
        let exec = ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        let _ = ip(&["netns", "del", &name]);
        exec.map(|_| ())
    }

    /// Creates `n` namespaces on a fresh bridge.
    pub fn create(n: usize) -> Result<Netns, String> {
        remove_stale();
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::SeqCst) % 16;
        // Interface names: at most 15 bytes. `ddb` + pid (≤ 6 hex digits) + seq.
        let tag = format!("{pid:x}{seq:x}");
        let routes = ip(&["-4", "route", "show"])?;
        let octet = (0..250u32)
            .map(|i| (pid + seq as u32 * 37 + i) % 250 + 1)
            .find(|o| !routes.contains(&format!("10.213.{o}.")))
            .ok_or("no free 10.213.X.0/24 subnet")?;
        let mut netns = Netns {
            namespaces: Vec::new(),
            ips: Vec::new(),
            bridge: format!("ddb{tag}"),
            outer: Vec::new(),
        };
        // From here on, drop removes whatever was made.
        ip(&["link", "add", &netns.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.213.{octet}.1/24"),
            "dev",
            &netns.bridge,
        ])?;
        ip(&["link", "set", &netns.bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{NETNS_PREFIX}{pid}-{seq}-n{}", i + 1);
            ip(&["netns", "add", &ns])?;
            netns.namespaces.push(ns.clone());
            let (outer, inner) = (format!("ddv{tag}{i}"), format!("ddp{tag}{i}"));
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
            ])?;
            netns.outer.push(outer.clone());
            ip(&["link", "set", &outer, "master", &netns.bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            let address = format!("10.213.{octet}.{}", i + 2);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            netns.ips.push(address);
        }
        // The bridge forwards once its ports are up; wait until every namespace answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        for address in &netns.ips {
            while !reachable(address) {
                if Instant::now() > deadline {
                    return Err(format!("{address} unreachable over {}", netns.bridge));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(netns)
    }

    /// Cuts namespace `i` off from everyone (the others and the root namespace): its veth's
    /// outer end goes down, so its packets are dropped silently; connections are not reset.
    pub fn cut(&self, i: usize) {
        ip(&["link", "set", &self.outer[i], "down"]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Undoes [`Netns::cut`].
    pub fn heal(&self, i: usize) {
        ip(&["link", "set", &self.outer[i], "up"]).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// One ping, one second at most.
fn reachable(address: &str) -> bool {
    // No ping binary on a minimal machine: a TCP connect that is refused proves the route.
    match TcpStream::connect_timeout(
        &format!("{address}:9").parse().expect("address"),
        Duration::from_millis(300),
    ) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        // Deleting a namespace deletes its veth ends, and with them the outer ones.
        for outer in &self.outer {
            let _ = ip(&["link", "del", outer]);
        }
        if let Err(e) = ip(&["link", "del", &self.bridge]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Removes namespaces and bridges of test processes that no longer run.
fn remove_stale() {
    let alive = |pid: &str| {
        pid.parse::<u32>()
            .map(|p| Path::new(&format!("/proc/{p}")).exists())
            .unwrap_or(true)
    };
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or_default();
            if !alive(pid) {
                // The servers a killed test left running in it go first.
                let pids = ip(&["netns", "pids", name]).unwrap_or_default();
                eprintln!("removing stale namespace {name} (processes {pids:?})");
                for pid in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show", "type", "bridge"]) {
        for name in list
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(str::trim)
        {
            let Some(tag) = name.strip_prefix("ddb") else {
                continue;
            };
            // pid in hex, then one hex digit of sequence.
            let pid = &tag[..tag.len().saturating_sub(1)];
            let stale = u32::from_str_radix(pid, 16)
                .map(|p| !Path::new(&format!("/proc/{p}")).exists())
                .unwrap_or(false);
            if stale {
                eprintln!("removing stale bridge {name}");
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// flows over HTTP
// ------------------------------------------------------------------------------------------

/// The steps of one order through the loop: (name, who, path after the order, body).
fn steps() -> Vec<(&'static str, Who, &'static str, Value)> {
    let here = json!({"lat": 29.8711, "lng": 114.2840, "address": "永福巷 12 号"});
    let team = json!({"team_id": "zhidui-chezhanlu"});
    vec![
        ("place", Who::Resident, "", Value::Null),
        ("triage", Who::Head, "/triage", json!({"accept": true})),
        ("dispatch", Who::Head, "/dispatch", team.clone()),
        ("accept", Who::Volunteer, "/accept", team),
        (
            "check-in",
            Who::Volunteer,
            "/check-in",
            json!({"location": here}),
        ),
        (
            "check-out",
            Who::Volunteer,
            "/check-out",
            json!({"location": here}),
        ),
        (
            "complete",
            Who::Volunteer,
            "/complete",
            json!({"note": "已完成"}),
        ),
        ("review", Who::Resident, "/review", json!({"rating": 5})),
        ("close", Who::Head, "/close", json!({})),
    ]
}

/// Commands in one flow.
pub const STEPS: usize = 9;

#[derive(Debug, Clone, Copy)]
enum Who {
    Resident,
    Head,
    Volunteer,
}

/// A signed-in HTTP caller: base URL and bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub base: String,
    pub token: String,
}

impl Caller {
    /// Signs in at the gateway (`/api/v1/dev/login`), retrying for up to 30 s.
    pub async fn login(
        http: &reqwest::Client,
        base: &str,
        role: &str,
        user: &str,
        node: &str,
    ) -> Caller {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = http
                .post(format!("{base}/api/v1/dev/login"))
                .json(&json!({"role": role, "user_id": user, "org_node": node}))
                .send()
                .await;
            let failure = match response {
                Ok(r) if r.status().is_success() => {
                    let body: Value = r.json().await.expect("login body");
                    return Caller {
                        base: base.to_owned(),
                        token: body["token"].as_str().expect("token").to_owned(),
                    };
                }
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            assert!(Instant::now() < deadline, "login {role} {user}: {failure}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The people of one flow: its own resident, and a station head and volunteer it may share.
#[derive(Debug, Clone)]
pub struct FlowCast {
    pub resident: Caller,
    pub head: Caller,
    pub volunteer: Caller,
}

/// One acknowledged (2xx) command.
#[derive(Debug, Clone)]
pub struct Acked {
    pub flow: usize,
    pub step: &'static str,
    pub key: String,
    pub order_id: String,
    pub revision: u64,
    pub position: u64,
    pub duplicate: bool,
    pub status: String,
    pub at: Instant,
}

/// What one flow saw.
#[derive(Debug, Default)]
pub struct FlowOutcome {
    pub flow: usize,
    pub order_id: String,
    pub acked: Vec<Acked>,
    /// 503 problem+json answers (retried with the same key).
    pub unavailable: usize,
    /// Answers that break the promise: a 5xx other than 503, a 503 that is not problem+json,
    /// no answer within the client's time-out, a broken connection to the gateway.
    pub dirty: Vec<String>,
    /// The flow stopped here: a 4xx, or 503s for longer than the retry budget.
    pub refused: Option<String>,
    /// The key of the command the flow stopped at: stored at most once, maybe not at all.
    pub in_doubt: Option<String>,
    /// When a retried command first failed, and its key.
    pub failures: Vec<(Instant, String)>,
    pub finished: bool,
}

/// How long the client waits for one answer: well beyond the gateway's own 10 s call
/// time-out, so a missing answer is a hang, not impatience.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Drives flow `flow` (idempotency keys `<tag>-<flow>-<step>`) through the loop at the
/// gateway, retrying a 503 (and, counted as dirty, any other failure to answer cleanly) with
/// the same key for up to `retry_for` per command; `progress` counts acknowledged commands.
pub async fn http_flow(
    http: reqwest::Client,
    tag: String,
    flow: usize,
    cast: FlowCast,
    retry_for: Duration,
    progress: Arc<AtomicUsize>,
) -> FlowOutcome {
    let mut outcome = FlowOutcome {
        flow,
        ..Default::default()
    };
    for (step, who, path, body) in steps() {
        let key = format!("{tag}-{flow}-{step}");
        let caller = match who {
            Who::Resident => &cast.resident,
            Who::Head => &cast.head,
            Who::Volunteer => &cast.volunteer,
        };
        let (url, body) = if step == "place" {
            (
                format!("{}/api/v1/orders", caller.base),
                json!({
                    "station_id": "yongfu-lane",
                    "category": "health_environment",
                    "description": format!("故障测试 {tag} 第 {flow} 单"),
                    "location": {"lat": 29.8711, "lng": 114.2840, "address": "永福巷 12 号"},
                    "contact_phone": "13812345678"
                }),
            )
        } else {
            (
                format!("{}/api/v1/orders/{}{path}", caller.base, outcome.order_id),
                body,
            )
        };
        let started = Instant::now();
        let mut retried = false;
        loop {
            let answer = tokio::time::timeout(
                ANSWER_WITHIN,
                http.post(&url)
                    .bearer_auth(&caller.token)
                    .header("Idempotency-Key", &key)
                    .json(&body)
                    .send(),
            )
            .await;
            let retry = match answer {
                Err(_) => {
                    outcome
                        .dirty
                        .push(format!("{key}: no answer within {ANSWER_WITHIN:?}"));
                    true
                }
                Ok(Err(e)) => {
                    outcome.dirty.push(format!("{key}: {e}"));
                    true
                }
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let problem = response
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
                    let text = response.text().await.unwrap_or_default();
                    match status {
                        200 | 201 => {
                            let ack: Value = serde_json::from_str(&text)
                                .unwrap_or_else(|e| panic!("{key}: ack {text:?}: {e}"));
                            let order_id = ack["order_id"].as_str().expect("order_id").to_owned();
                            if step == "place" {
                                outcome.order_id = order_id.clone();
                            }
                            assert_eq!(order_id, outcome.order_id, "{key}: {ack}");
                            outcome.acked.push(Acked {
                                flow,
                                step,
                                key: key.clone(),
                                order_id,
                                revision: ack["revision"].as_u64().expect("revision"),
                                position: ack["position"].as_u64().expect("position"),
                                duplicate: ack["duplicate"].as_bool().unwrap_or(false),
                                status: ack["status"].as_str().unwrap_or_default().to_owned(),
                                at: Instant::now(),
                            });
                            progress.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        503 => {
                            if !problem {
                                outcome
                                    .dirty
                                    .push(format!("{key}: 503 without problem+json: {text}"));
                            }
                            outcome.unavailable += 1;
                            true
                        }
                        400..=499 => {
                            if !problem {
                                outcome
                                    .dirty
                                    .push(format!("{key}: {status} without problem+json: {text}"));
                            }
                            outcome.refused = Some(format!("{key}: {status} {text}"));
                            outcome.in_doubt = Some(key.clone());
                            return outcome;
                        }
                        _ => {
                            outcome.dirty.push(format!("{key}: {status} {text}"));
                            true
                        }
                    }
                }
            };
            if retry {
                if !retried {
                    outcome.failures.push((Instant::now(), key.clone()));
                    retried = true;
                }
                if started.elapsed() >= retry_for {
                    outcome.refused = Some(format!(
                        "{key}: still unavailable after {:?}",
                        started.elapsed()
                    ));
                    outcome.in_doubt = Some(key.clone());
                    return outcome;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    outcome.finished = true;
    outcome
}

/// Drives flows `<worker> * 1000 + n` one after another with the same cast until `stop` is
/// set (a flow that has started is driven to its end); what each saw.
pub async fn http_worker(
    http: reqwest::Client,
    tag: String,
    worker: usize,
    cast: FlowCast,
    retry_for: Duration,
    progress: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<FlowOutcome> {
    let mut outcomes = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let flow = worker * 1000 + outcomes.len();
        outcomes.push(
            http_flow(
                http.clone(),
                tag.clone(),
                flow,
                cast.clone(),
                retry_for,
                progress.clone(),
            )
            .await,
        );
    }
    outcomes
}

/// Prints what the flows saw, one line; returns (finished, refused).
pub fn summarize(label: &str, outcomes: &[FlowOutcome], since: Instant) -> (usize, usize) {
    let finished = outcomes.iter().filter(|o| o.finished).count();
    let refused = outcomes.iter().filter(|o| o.refused.is_some()).count();
    let acked: usize = outcomes.iter().map(|o| o.acked.len()).sum();
    let duplicates: usize = outcomes
        .iter()
        .flat_map(|o| &o.acked)
        .filter(|a| a.duplicate)
        .count();
    let unavailable: usize = outcomes.iter().map(|o| o.unavailable).sum();
    let retried: usize = outcomes.iter().map(|o| o.failures.len()).sum();
    let dirty: usize = outcomes.iter().map(|o| o.dirty.len()).sum();
    println!(
        "{label}: {} flows in {:?}: {finished} finished, {refused} refused cleanly; {acked} \
         commands acknowledged ({duplicates} as duplicates of a stored original), {retried} \
         commands retried, {unavailable} answers 503, {dirty} unclean answers",
        outcomes.len(),
        since.elapsed()
    );
    for o in outcomes {
        if let Some(why) = &o.refused {
            println!("{label}: flow {} refused: {why}", o.flow);
        }
        for d in &o.dirty {
            println!("{label}: flow {} UNCLEAN: {d}", o.flow);
        }
    }
    (finished, refused)
}

// ------------------------------------------------------------------------------------------
// what must hold afterwards
// ------------------------------------------------------------------------------------------

/// The whole global log, retrying for up to 60 s while the store cannot answer.
pub async fn whole_log(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut log, mut from) = (Vec::new(), 1u64);
    loop {
        match store.read_all(from, 1000).await {
            Ok(batch) => {
                let Some(last) = batch.last() else {
                    return log;
                };
                from = last.position + 1;
                log.extend(batch);
            }
            Err(StoreError::Unavailable(why)) if Instant::now() < deadline => {
                eprintln!("read_all unavailable, retrying: {why}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => panic!("read_all: {error}"),
        }
    }
}

fn command_id(event: &RecordedEvent) -> String {
    let meta: Value = serde_json::from_slice(&event.metadata).unwrap_or_default();
    meta["command_id"].as_str().unwrap_or_default().to_owned()
}

/// What [`audit`] counted.
#[derive(Debug, Default)]
pub struct Audit {
    pub events: usize,
    /// Commands in doubt (their flow stopped there) that turned out stored / not stored.
    pub in_doubt_stored: usize,
    pub in_doubt_absent: usize,
    /// Events of the flows' orders by type.
    pub by_type: BTreeMap<String, u64>,
}

/// Checks the log against what was acknowledged: every acknowledged command's events are in
/// the log, in its order's stream, at the acknowledged revision and position, as one commit
/// (consecutive revisions and positions, nothing else with its key); every command of the
/// flows in the log was acknowledged or is its flow's one command in doubt; every order
/// stream has revisions `0..n` without gaps and one `OrderPlaced`.
pub fn audit(log: &[RecordedEvent], outcomes: &[FlowOutcome], tag: &str) -> Audit {
    let by_position: HashMap<u64, &RecordedEvent> = log.iter().map(|e| (e.position, e)).collect();
    let mut by_key: HashMap<String, Vec<&RecordedEvent>> = HashMap::new();
    for e in log {
        by_key.entry(command_id(e)).or_default().push(e);
    }
    let prefix = format!("{tag}-");
    let mut audit = Audit {
        events: log.len(),
        ..Default::default()
    };
    let mut expected_keys: HashMap<String, bool> = HashMap::new();
    for o in outcomes {
        for a in &o.acked {
            let stream = format!("order-{}", a.order_id);
            let event = by_position.get(&a.position).unwrap_or_else(|| {
                panic!("{} acknowledged at {} is lost: {a:?}", a.key, a.position)
            });
            assert_eq!(
                (event.stream.as_str(), event.revision, command_id(event)),
                (stream.as_str(), a.revision, a.key.clone()),
                "{} acknowledged as {a:?}, the log holds {event:?} there",
                a.key
            );
            expected_keys.insert(a.key.clone(), true);
        }
        if let Some(key) = &o.in_doubt {
            expected_keys.entry(key.clone()).or_insert(false);
        }
    }
    for (key, events) in &by_key {
        if !key.starts_with(&prefix) {
            continue;
        }
        let acked = *expected_keys
            .get(key)
            .unwrap_or_else(|| panic!("{key} is in the log but was never sent: {events:?}"));
        let one_commit = events.windows(2).all(|w| {
            w[0].stream == w[1].stream
                && w[1].revision == w[0].revision + 1
                && w[1].position == w[0].position + 1
        });
        assert!(
            one_commit,
            "{key} was applied more than once: {:?}",
            events
                .iter()
                .map(|e| (&e.stream, e.revision, e.position))
                .collect::<Vec<_>>()
        );
        if !acked {
            audit.in_doubt_stored += 1;
        }
    }
    for o in outcomes {
        if let Some(key) = &o.in_doubt {
            if !o.acked.iter().any(|a| &a.key == key) && !by_key.contains_key(key) {
                audit.in_doubt_absent += 1;
            }
        }
    }
    let orders: std::collections::HashSet<String> = outcomes
        .iter()
        .filter(|o| !o.order_id.is_empty())
        .map(|o| format!("order-{}", o.order_id))
        .collect();
    let mut streams: BTreeMap<&str, Vec<&RecordedEvent>> = BTreeMap::new();
    for e in log.iter().filter(|e| orders.contains(&e.stream)) {
        streams.entry(e.stream.as_str()).or_default().push(e);
        *audit.by_type.entry(e.event_type.clone()).or_default() += 1;
    }
    for (stream, events) in &streams {
        let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
        assert_eq!(
            revisions,
            (0..events.len() as u64).collect::<Vec<_>>(),
            "{stream} has gaps or repeats"
        );
        let placed = events
            .iter()
            .filter(|e| e.event_type == "OrderPlaced")
            .count();
        assert_eq!(placed, 1, "{stream} placed {placed} times");
    }
    audit
}

/// Waits (up to `limit`) until the bus-fed read model holds `head`; panics with `context()`
/// otherwise. Returns how long it took.
pub async fn caught_up(
    read: &ReadModel,
    head: u64,
    limit: Duration,
    context: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    loop {
        let at = read.stored_position().await.unwrap_or(0);
        if at >= head {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "projections stuck at {at} after {limit:?}; the store's head is {head}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every projection applied each of the log's `events` once (its `applied` count), and the
/// live read model equals one rebuilt from the store in `scratch`.
pub async fn equals_rebuild(
    live: &ReadModel,
    store: &dyn EventStore,
    events: usize,
    scratch: &Path,
) {
    let live_dump = live.dump().unwrap();
    let applied: Vec<&String> = live_dump
        .iter()
        .filter(|l| l.starts_with("checkpoints:"))
        .collect();
    let names = diandan_runtime::projections::projection_names();
    assert_eq!(applied.len(), names.len(), "{names:?}: {applied:?}");
    for line in &applied {
        assert!(
            line.ends_with(&format!(" Integer({events})")),
            "each of {events} events applied once: {line}"
        );
    }
    let rebuilt =
        diandan_runtime::projections::rebuild(store, &scratch.join("rebuilt.db"), |_, _| {})
            .await
            .unwrap();
    let rebuilt = rebuilt.dump().unwrap();
    if live_dump != rebuilt {
        let only_live: Vec<&String> = live_dump.iter().filter(|l| !rebuilt.contains(l)).collect();
        let only_rebuilt: Vec<&String> =
            rebuilt.iter().filter(|l| !live_dump.contains(l)).collect();
        panic!(
            "the read models differ from a rebuild ({events} events):\nonly live: \
             {only_live:#?}\nonly rebuilt: {only_rebuilt:#?}"
        );
    }
}

/// 永福巷's statistics (as the head sees them at the gateway, once they hold `position`)
/// against the flows' events in the log: received, dispatched, accepted, completed, reviewed.
pub async fn stats_match(
    http: &reqwest::Client,
    head: &Caller,
    position: u64,
    audit: &Audit,
) -> Value {
    let url = format!(
        "{}/api/v1/nodes/yongfu-lane/stats?min_position={position}",
        head.base
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let report: Value = loop {
        let answer = http
            .get(&url)
            .bearer_auth(&head.token)
            .timeout(ANSWER_WITHIN)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => break r.json().await.expect("stats"),
            Ok(r) if Instant::now() < deadline => {
                eprintln!(
                    "stats: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )
            }
            other => panic!("stats: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let count = |t: &str| audit.by_type.get(t).copied().unwrap_or(0);
    for (field, event) in [
        ("received", "OrderPlaced"),
        ("dispatched", "OrderDispatched"),
        ("accepted", "OrderAccepted"),
        ("completed", "OrderCompleted"),
        ("reviewed", "OrderReviewed"),
    ] {
        assert_eq!(
            report[field].as_u64(),
            Some(count(event)),
            "{field} against the log's {event} events: {report}"
        );
    }
    report
}
