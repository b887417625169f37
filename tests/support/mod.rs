//! Test support: start the real `diandan up` on random ports in a temp dir, and talk to it
//! over real HTTP and gRPC.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// A running `diandan up` process. Killed on drop.
pub struct Server {
    child: Option<Child>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_diandan")
}

impl Server {
    /// Starts the demo district in a fresh temp dir and waits until it is seeded.
    pub async fn start_demo() -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_in(tmp.path(), true);
        server._tmp = Some(tmp);
        server.wait_for_demo().await;
        server
    }

    /// Starts `diandan up` on `data_dir` and waits for its ready line.
    pub fn start_in(data_dir: &Path, demo: bool) -> Server {
        Server::start_with_env(data_dir, demo, &[])
    }

    /// Starts `diandan up` with extra environment variables.
    pub fn start_with_env(data_dir: &Path, demo: bool, env: &[(&str, &str)]) -> Server {
        Server::start_with(data_dir, demo, env, &[])
    }

    /// Starts `diandan up` as production runs it: no development mode (no development login).
    pub fn start_production(data_dir: &Path) -> Server {
        Server::spawn(data_dir, &[], &[])
    }

    /// Starts `diandan up` with extra environment variables and arguments.
    pub fn start_with(data_dir: &Path, demo: bool, env: &[(&str, &str)], args: &[&str]) -> Server {
        // The suites sign in through the development login.
        let mode = if demo { "--demo" } else { "--dev" };
        let args: Vec<&str> = std::iter::once(mode).chain(args.iter().copied()).collect();
        Server::spawn(data_dir, env, &args)
    }

    fn spawn(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut command = Command::new(binary());
        // Tests drive load from one loopback address: limits are off unless a test sets them.
        command
            .env("DIANDAN_RATE_LIMITS", "off")
            // The showcase's 112 orders only, unless a test asks for a year of history.
            .env("DIANDAN_DEMO_HISTORY", "0")
            .env_remove("DIANDAN_DEV");
        command.envs(env.iter().copied());
        command
            .args([
                "up",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start diandan");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .parse()
                .expect("address")
        };
        Server {
            grpc: addr("grpc="),
            http: addr("http="),
            child: Some(child),
            data_dir: data_dir.to_owned(),
            _tmp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// The demo seeds the directory and then 112 orders; wait for the last of them.
    pub async fn wait_for_demo(&self) {
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(token) = try_login(&http, self, "station_head", "head-test", "xianan").await {
                let stats = http
                    .get(self.url("/api/v1/nodes/xianan/stats"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                if let Ok(r) = stats {
                    let v: Value = r.json().await.unwrap_or_default();
                    if v["received"].as_u64() == Some(112) && v["cancelled"].as_u64() == Some(1) {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("demo was not seeded within 60 s");
    }

    /// Asks the process to stop (SIGTERM) and waits for a clean exit.
    pub fn stop_gracefully(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        for _ in 0..600 {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().ok();
        panic!("diandan did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

async fn try_login(
    http: &reqwest::Client,
    server: &Server,
    role: &str,
    user: &str,
    node: &str,
) -> Result<String, String> {
    try_login_at(http, &format!("http://{}", server.http), role, user, node).await
}

pub async fn try_login_at(
    http: &reqwest::Client,
    base: &str,
    role: &str,
    user: &str,
    node: &str,
) -> Result<String, String> {
    let response = http
        .post(format!("{base}/api/v1/dev/login"))
        .json(&json!({"role": role, "user_id": user, "org_node": node}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(response.text().await.unwrap_or_default());
    }
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(body["token"].as_str().expect("token").to_owned())
}

/// A signed-in HTTP user.
#[derive(Clone)]
pub struct User {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl User {
    pub async fn login(server: &Server, role: &str, user: &str, node: &str) -> User {
        User::login_at(&format!("http://{}", server.http), role, user, node).await
    }

    /// Signs in at a gateway's base URL (`http://host:port`).
    pub async fn login_at(base: &str, role: &str, user: &str, node: &str) -> User {
        let http = reqwest::Client::new();
        let token = try_login_at(&http, base, role, user, node)
            .await
            .unwrap_or_else(|e| panic!("login {role} {user}: {e}"));
        User {
            http,
            base: base.to_owned(),
            token,
        }
    }

    /// POSTs JSON; returns (status, body).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_with(path, body, None).await
    }

    pub async fn post_with(&self, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("POST");
        split(response).await
    }

    /// POSTs raw bytes as JSON.
    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value, String) {
        let response = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let (status, body) = split(response).await;
        (status, body, content_type)
    }

    /// The statistics of `node` once the read model reflects `position` (the read waits for
    /// it): what a test reads, or waits on, after the write whose effect it checks.
    pub async fn stats_at(&self, node: &str, position: u64) -> Value {
        let (status, stats) = self
            .get(&format!(
                "/api/v1/nodes/{node}/stats?min_position={position}"
            ))
            .await;
        assert_eq!(status, 200, "{stats}");
        stats
    }

    /// GETs `path`. A read at a position (`min_position=`) that the server gave up waiting for
    /// (503 after 5 s: a read model replaying after a restart, a split deployment's relay) is
    /// asked again for up to 30 s, as a client following the problem's advice does.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let response = self
                .http
                .get(format!("{}{}", self.base, path))
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("GET");
            let answer = split(response).await;
            if answer.0 != 503
                || !path.contains("min_position=")
                || std::time::Instant::now() >= deadline
            {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn split(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A valid order at the Yongfu Lane point (no demo orders are placed there, so its statistics
/// are the tests' own).
pub fn yongfu_order(description: &str) -> Value {
    json!({
        "station_id": "yongfu-lane",
        "category": "health_environment",
        "description": description,
        "location": {"lat": 29.8711, "lng": 114.2840, "address": "永福巷 12 号"},
        "contact_phone": "13812345678"
    })
}

pub const LOCATION: fn() -> Value =
    || json!({"lat": 29.8711, "lng": 114.2840, "address": "永福巷 12 号"});

impl User {
    /// The same user (same token) against another server process on the same data dir.
    pub fn clone_for(&self, server: &Server) -> User {
        User {
            http: self.http.clone(),
            base: format!("http://{}", server.http),
            token: self.token.clone(),
        }
    }
}

/// The token secret the processes of a split deployment share in tests.
pub const SPLIT_SECRET: &str = "split-test-secret-0123456789abcdef0123456";

/// One `diandan serve <part>` process, killed on drop.
pub struct Part {
    child: Child,
    pub listen: Option<String>,
    /// Its own `/metrics` and `/healthz`.
    pub metrics: Option<String>,
}

impl Drop for Part {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Starts `diandan serve <part>` on a random port and waits for its ready line.
///
/// The deployment's settings go in as an operator's environment would give them (as the
/// Kubernetes manifests do): `--store`/`--bus` among `args` become `DIANDAN_STORE`/`DIANDAN_BUS`,
/// and every part also gets `DIANDAN_LISTEN` and `DIANDAN_DATA_DIR`; each part takes what it
/// uses (`diandan serve <part> --help`). Other `args` are passed as flags.
pub fn serve_part(part: &str, args: &[&str], data_dir: &Path) -> Part {
    let mut command = Command::new(binary());
    command.args(["serve", part]);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--store" => {
                command.env("DIANDAN_STORE", rest.next().expect("--store URL"));
            }
            "--bus" => {
                command.env("DIANDAN_BUS", rest.next().expect("--bus URL"));
            }
            other => {
                command.arg(other);
            }
        }
    }
    let mut child = command
        .env("DIANDAN_LISTEN", "127.0.0.1:0")
        .env("DIANDAN_DATA_DIR", data_dir)
        .env("DIANDAN_TOKEN_SECRET", SPLIT_SECRET)
        .env("DIANDAN_RATE_LIMITS", "off")
        .env("DIANDAN_DEV", "1")
        // The stats part signs a checkpoint every 2 s while the log grows (60 s by default).
        .env("DIANDAN_CHECKPOINT_EVERY_S", "2")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start diandan serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("ready line");
    assert!(line.starts_with("diandan ready"), "{part}: {line:?}");
    let word = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_owned)
    };
    Part {
        child,
        listen: word("listen="),
        metrics: word("metrics="),
    }
}

/// The `http://host:port` a part listens on.
pub fn part_url(part: &Part) -> String {
    format!("http://{}", part.listen.as_deref().expect("listens"))
}

/// Every part of a split deployment, each its own process on one data dir.
pub struct SplitParts {
    pub relay: Part,
    pub projections: Vec<Part>,
    pub orders: Part,
    pub dispatch: Part,
    pub volunteers: Part,
    pub reviews: Part,
    pub stats: Part,
    pub gateway: Part,
}

/// Starts every part (`projection_replicas` projection consumers) with the deployment's
/// `--store`/`--bus` in `args`, and the gateway calling the gRPC parts.
pub fn serve_split(args: &[&str], data_dir: &Path, projection_replicas: usize) -> SplitParts {
    let relay = serve_part("relay", args, data_dir);
    let projections = (0..projection_replicas)
        .map(|_| serve_part("projections", args, data_dir))
        .collect();
    let orders = serve_part("orders", args, data_dir);
    let dispatch = serve_part("dispatch", args, data_dir);
    let volunteers = serve_part("volunteers", args, data_dir);
    let reviews = serve_part("reviews", args, data_dir);
    let stats = serve_part("stats", args, data_dir);
    let gateway = serve_part(
        "gateway",
        &[
            "--orders-url",
            &part_url(&orders),
            "--dispatch-url",
            &part_url(&dispatch),
            "--volunteers-url",
            &part_url(&volunteers),
            "--reviews-url",
            &part_url(&reviews),
            "--stats-url",
            &part_url(&stats),
        ],
        data_dir,
    );
    SplitParts {
        relay,
        projections,
        orders,
        dispatch,
        volunteers,
        reviews,
        stats,
        gateway,
    }
}

impl SplitParts {
    /// The gRPC parts, as the gateway calls them.
    pub fn upstreams(&self) -> diandan_proto::Upstreams {
        let channel = |p: &Part| {
            tonic::transport::Endpoint::from_shared(part_url(p))
                .unwrap()
                .connect_lazy()
        };
        diandan_proto::Upstreams {
            orders: channel(&self.orders).into(),
            dispatch: channel(&self.dispatch).into(),
            volunteers: channel(&self.volunteers).into(),
            reviews: channel(&self.reviews).into(),
            stats: channel(&self.stats).into(),
            in_place: None,
        }
    }
}

/// Loads the demo district into a split deployment the way an operator does:
/// `diandan demo --store <store> --data-dir <data_dir>`.
pub fn seed_split_demo(store: &str, data_dir: &Path) {
    let output = Command::new(binary())
        .args(["demo", "--store", store, "--data-dir"])
        .arg(data_dir)
        .env("DIANDAN_TOKEN_SECRET", SPLIT_SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run diandan demo");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "diandan demo: {said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("with 112 orders"), "{said}");
}

/// Reads Server-Sent Events from a response: (event, JSON data) pairs, in order.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    pub fn new(response: reqwest::Response) -> Events {
        Events {
            response,
            buffer: String::new(),
        }
    }

    pub async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .filter_map(|l| l.strip_prefix(name))
                        .map(str::trim_start)
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                let (event, data) = (field("event:"), field("data:"));
                if event.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((event, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
