//! Scenario 8: complete four-order flows over HTTP, measured from outside: `diandan up` runs as
//! a child process (the real binary, its own data dir, rate limits off) and this process is
//! the load generator, with 64 flows in flight (closed loop), then an open loop at 80% of that
//! maximum. Each of the nine commands is timed; the server's CPU time comes from
//! `/proc/<pid>/stat`. Baseline in the same run: `GET /healthz` round trips to the same server
//! at the same concurrency (what HTTP alone costs on this machine).

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use diandan_workflows::Role;

use super::flows::{self, Driver, FlowRow, PingRow, CONCURRENCY, LOAD};
use super::{coldstart, micros};
use crate::client::OrderSpec;
use crate::demo::token;

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    /// Baseline: `GET /healthz`, 64 in flight.
    pub ping: PingRow,
    /// Closed loop, 64 flows in flight: the maximum.
    pub max: FlowRow,
    /// Open loop at 80% of the maximum.
    pub offered: FlowRow,
    /// The server process's CPU (user + system) per completed flow, ms, in each run.
    pub server_cpu_ms_per_flow_max: f64,
    pub server_cpu_ms_per_flow_offered: f64,
    /// Its CPU per baseline round trip, ms.
    pub server_cpu_ms_per_ping: f64,
    /// The load generator's own CPU per flow in the closed loop, ms (this process).
    pub client_cpu_ms_per_flow_max: f64,
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`, fields 14 and 15).
pub(super) fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it follow its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the whole line are 12 and 13 after the name; USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// The flows' HTTP driver: the same nine commands as the gRPC scenario, as the mini-program
/// and the console send them.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    api: Arc<str>,
    resident: Arc<str>,
    head: Arc<str>,
    volunteer: Arc<str>,
    spec: Arc<OrderSpec>,
}

impl Http {
    async fn post(&self, token: &str, path: &str, body: Value) -> Result<Value, String> {
        let answer = self
            .client
            .post(format!("{}{path}", self.api))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status} {}", String::from_utf8_lossy(&bytes)));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{status}: {e}"))
    }
}

impl Driver for Http {
    fn drive<'a>(
        &'a self,
        latencies: &'a mut [u32; 9],
        done: &'a mut u8,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let spec = &self.spec;
            let place = place_body(spec);
            let sent = Instant::now();
            let placed = self.post(&self.resident, "/orders", place).await;
            latencies[0] = micros(sent.elapsed());
            let placed = placed?;
            *done = 1;
            let id = placed["order_id"]
                .as_str()
                .ok_or_else(|| format!("no order_id in {placed}"))?
                .to_owned();
            let here = json!({"lat": spec.lat, "lng": spec.lng});
            let steps: [(&str, &str, Value); 8] = [
                (&self.head, "triage", json!({"accept": true})),
                (&self.head, "dispatch", json!({"team_id": flows::TEAM})),
                (&self.volunteer, "accept", json!({"team_id": flows::TEAM})),
                (&self.volunteer, "check-in", json!({"location": here})),
                (&self.volunteer, "check-out", json!({"location": here})),
                (
                    &self.volunteer,
                    "complete",
                    json!({"note": format!("已完成：{}", spec.description)}),
                ),
                (
                    &self.resident,
                    "review",
                    json!({"rating": spec.rating, "comment": spec.comment}),
                ),
                (&self.head, "close", json!({})),
            ];
            for (token, action, body) in steps {
                let sent = Instant::now();
                let answer = self
                    .post(token, &format!("/orders/{id}/{action}"), body)
                    .await;
                latencies[*done as usize] = micros(sent.elapsed());
                answer?;
                *done += 1;
            }
            Ok(())
        })
    }
}

/// `concurrency` tasks calling `GET /healthz` back to back for `window`.
async fn healthz_ping(
    client: &reqwest::Client,
    base: &str,
    concurrency: usize,
    window: Duration,
) -> anyhow::Result<PingRow> {
    let (client, url): (reqwest::Client, Arc<str>) =
        (client.clone(), format!("{base}/healthz").into());
    flows::round_trips("GET /healthz", concurrency, window, move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(&*url)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await
                .map(|_| ())
        }
    })
    .await
}

/// The bench's order as the mini-program places it (`POST /api/v1/orders`).
pub(super) fn place_body(spec: &OrderSpec) -> Value {
    json!({
        "station_id": flows::STATION,
        "category": spec.category,
        "description": spec.description,
        "location": {"lat": spec.lat, "lng": spec.lng, "address": spec.address},
        "contact_phone": spec.phone,
    })
}

/// The `diandan` binary the scenario starts: `DIANDAN_BENCH_SERVER` (another build, to compare
/// two servers under the same load generator), else this one.
pub(super) fn server_binary() -> anyhow::Result<std::path::PathBuf> {
    match std::env::var_os("DIANDAN_BENCH_SERVER") {
        Some(path) if !path.is_empty() => Ok(path.into()),
        _ => Ok(std::env::current_exe()?),
    }
}

/// `diandan up` as a child process on `dir`, until it is stopped (SIGTERM) or dropped.
pub(super) struct Child {
    process: tokio::process::Child,
    pub(super) pid: String,
    pub(super) http: String,
    grpc: String,
}

impl Child {
    pub(super) async fn start(dir: &Path) -> anyhow::Result<Child> {
        let (grpc, http) = (
            format!("127.0.0.1:{}", coldstart::free_port()?),
            format!("127.0.0.1:{}", coldstart::free_port()?),
        );
        let log = std::fs::File::create(dir.with_extension("log"))?;
        let process = tokio::process::Command::new(server_binary()?)
            .arg("up")
            .arg("--data-dir")
            .arg(dir)
            .args(["--grpc-addr", &grpc, "--http-addr", &http])
            .args(["--rate-limits", "off"])
            .env("RUST_LOG", "warn")
            .env_remove("DIANDAN_TOKEN_SECRET")
            .env_remove("DIANDAN_DEV")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let pid = process.id().unwrap_or(0).to_string();
        let child = Child {
            process,
            pid,
            http,
            grpc,
        };
        let started = Instant::now();
        coldstart::until(started, || coldstart::healthz(&child.http)).await?;
        Ok(child)
    }

    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        super::coldstart::stop(&mut self.process, Duration::from_secs(30)).await
    }
}

/// The whole scenario on a fresh data dir at `dir`.
pub async fn run(
    dir: &Path,
    window: Duration,
    ping_window: Duration,
) -> anyhow::Result<HttpReport> {
    std::fs::create_dir_all(dir)?;
    // The child reads the same key from the data dir: the tokens minted here are its own.
    let signer = crate::server::token_signer(dir)?;
    let child = Child::start(dir).await?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", child.grpc))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    crate::demo::seed(diandan_proto::Upstreams::single(channel), &signer).await?;
    eprintln!(
        "  `diandan up` (pid {}) on {}, demo district seeded",
        child.pid, child.http
    );
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://{}", child.http);
    let driver = Http {
        client: client.clone(),
        api: format!("{base}/api/v1").into(),
        resident: token(&signer, flows::RESIDENT, Role::Resident, None).into(),
        head: token(
            &signer,
            flows::HEAD,
            Role::StationHead,
            Some(flows::STATION),
        )
        .into(),
        volunteer: token(&signer, flows::VOLUNTEER, Role::Volunteer, None).into(),
        spec: Arc::new(flows::spec()),
    };

    let server_cpu = || cpu_seconds(&child.pid);
    let before = server_cpu();
    let ping = healthz_ping(&client, &base, CONCURRENCY, ping_window).await?;
    let ping_cpu = server_cpu() - before;
    eprintln!(
        "  baseline GET /healthz: {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms",
        ping.calls_per_sec, ping.p50_ms, ping.p99_ms
    );

    let (before, client_before) = (server_cpu(), cpu_seconds("self"));
    let max = flows::closed_loop(&driver, CONCURRENCY, window).await?;
    let (max_cpu, client_cpu) = (server_cpu() - before, cpu_seconds("self") - client_before);
    flows::print_row("max (closed loop, HTTP)", &max);

    let rate = (max.flows_per_sec * LOAD).max(1.0);
    let before = server_cpu();
    let offered = flows::open_loop(&driver, rate, window).await?;
    let offered_cpu = server_cpu() - before;
    flows::print_row(&format!("{:.0}% (open loop, HTTP)", LOAD * 100.0), &offered);
    child.stop().await?;

    let per = |cpu: f64, n: u64| cpu * 1000.0 / n.max(1) as f64;
    Ok(HttpReport {
        server_cpu_ms_per_flow_max: per(max_cpu, max.flows),
        server_cpu_ms_per_flow_offered: per(offered_cpu, offered.flows),
        server_cpu_ms_per_ping: per(ping_cpu, ping.calls),
        client_cpu_ms_per_flow_max: per(client_cpu, max.flows),
        ping,
        max,
        offered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_cpu_time() {
        let before = cpu_seconds("self");
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let spent = cpu_seconds("self") - before;
        assert!(spent > 0.0, "no CPU time read from /proc/self/stat");
    }
}
