//! `diandan`: run it (`up`), seed it (`up --demo`), rebuild its read models, benchmark it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tonic::transport::Endpoint;

use diandan::server::{run, shutdown_signal, Config};

/// mimalloc, not glibc's malloc: see `Cargo.toml`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "diandan",
    version,
    about = "点单 — the four-order engine of civilization practice centres"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The audit trail: verify the log and exports, the public key, checkpoints.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Residents' personal data (PIPL).
    Residents {
        #[command(subcommand)]
        command: ResidentsCommand,
    },
    /// Run every service in one process on the embedded store.
    Up {
        /// Where the event store, read models and contact vault live.
        #[arg(long, env = "DIANDAN_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, env = "DIANDAN_GRPC_ADDR", default_value = "127.0.0.1:50051")]
        grpc_addr: SocketAddr,
        #[arg(long, env = "DIANDAN_HTTP_ADDR", default_value = "127.0.0.1:8080")]
        http_addr: SocketAddr,
        /// Seed the demo district (咸安区) and orders in every state, if the store is empty.
        /// Implies `--dev`.
        #[arg(long)]
        demo: bool,
        /// With --demo: orders of history replayed over the last twelve months (0: none).
        #[arg(long, env = "DIANDAN_DEMO_HISTORY", default_value_t = diandan::history::DEFAULT_ORDERS)]
        demo_history: usize,
        /// Development mode: enables the development login (`POST /api/v1/dev/login`, any
        /// role for anyone). Never in production.
        #[arg(long, env = "DIANDAN_DEV", value_parser = clap::builder::FalseyValueParser::new())]
        dev: bool,
        /// Extra workflow definitions (e.g. a new version) beside the shipped ones.
        #[arg(long, env = "DIANDAN_WORKFLOWS_DIR")]
        workflows_dir: Option<PathBuf>,
        /// Rate limits of the HTTP API: `off`, or e.g. `address=1200/min,token=300/min,login=20/min,place=10/min`.
        #[arg(long, env = "DIANDAN_RATE_LIMITS", default_value = diandan_gateway::RateLimits::DEFAULT)]
        rate_limits: diandan_gateway::RateLimits,
    },
    /// Run one part of the system in this process (split deployments; see `diandan up` for all-in-one).
    Serve {
        #[command(subcommand)]
        part: ServePart,
    },
    /// Workflow definitions.
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Read-model maintenance.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Organisation setup, against any store (run it before or beside the parts).
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Seed the demo district (咸安区, its accounts, 112 orders) into a deployment's store, if
    /// the store is empty — for split deployments (`up --demo` does it for one process).
    Demo {
        #[command(flatten)]
        target: StoreArgs,
    },
    /// Measure durable appends and full flows, each against a baseline from the same run.
    Bench(diandan::bench::BenchArgs),
    /// Print the HTTP API's OpenAPI document (what `/api/openapi.json` serves) and exit.
    Openapi,
    /// Print the permission table (role × operation → scope) as Markdown and exit.
    Permissions,
}

#[derive(Subcommand)]
enum WorkflowsCommand {
    /// Check definition files without starting anything: errors name the file and line.
    Validate {
        /// Definition files (`*.toml`); calendars are `calendar-*.toml`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print every workflow's transition table (Markdown), as the engine runs it.
    Tables,
}

/// The parts of a split deployment, each with the flags it uses.
#[derive(Subcommand, Clone)]
enum ServePart {
    /// 点单: placing, cancelling and reading orders (gRPC).
    Orders(GrpcPartArgs),
    /// 审单/派单: triage, dispatch, the station queue, extensions — and the deadline timers (gRPC).
    Dispatch(GrpcPartArgs),
    /// 接单…办结, the organisation directory, sign-in and accounts (gRPC).
    Volunteers(GrpcPartArgs),
    /// 评单 and archiving (gRPC).
    Reviews(GrpcPartArgs),
    /// Station statistics (gRPC).
    Stats(StatsPartArgs),
    /// The HTTP JSON API, calling the gRPC parts.
    Gateway(GatewayPartArgs),
    /// The store's global log → the bus, as CloudEvents (no dual writes).
    Relay(RelayPartArgs),
    /// The bus → the read models in --data-dir (run several for failover).
    Projections(ProjectionsPartArgs),
}

/// The event store of a part.
#[derive(clap::Args, Debug, Clone)]
struct StoreFlag {
    /// The event store: nats://host:port[,…][?replicas=3] (JetStream), kurrentdb://host:2113?tls=false (KurrentDB) or sqlite:<path>.
    #[arg(long, env = "DIANDAN_STORE", default_value = "nats://127.0.0.1:4222")]
    store: String,
}

/// The event bus of a part.
#[derive(clap::Args, Debug, Clone)]
struct BusFlag {
    /// The event bus: nats://host:port.
    #[arg(long, env = "DIANDAN_BUS")]
    bus: String,
}

/// The data dir of a part.
#[derive(clap::Args, Debug, Clone)]
struct DataDirFlag {
    /// Read models and the contact vault (shared by the processes of one host).
    #[arg(long, env = "DIANDAN_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

/// Where a part listens for its own metrics.
#[derive(clap::Args, Debug, Clone)]
struct MetricsFlag {
    /// Where this part serves its own Prometheus `/metrics` and `/healthz` (port 0: any free
    /// port, printed in the ready line).
    #[arg(long, env = "DIANDAN_METRICS_ADDR", default_value = "127.0.0.1:0")]
    metrics_addr: SocketAddr,
}

#[derive(clap::Args, Debug, Clone)]
struct GrpcPartArgs {
    #[command(flatten)]
    store: StoreFlag,
    #[command(flatten)]
    data_dir: DataDirFlag,
    /// Where this part serves gRPC.
    #[arg(long, env = "DIANDAN_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Development mode: enables the development login. Never in production.
    #[arg(long, env = "DIANDAN_DEV", value_parser = clap::builder::FalseyValueParser::new())]
    dev: bool,
    /// Extra workflow definitions (e.g. a new version) beside the shipped ones.
    #[arg(long, env = "DIANDAN_WORKFLOWS_DIR")]
    workflows_dir: Option<PathBuf>,
    #[command(flatten)]
    metrics: MetricsFlag,
}

#[derive(clap::Args, Debug, Clone)]
struct StatsPartArgs {
    #[command(flatten)]
    grpc: GrpcPartArgs,
    /// The event bus (nats://host:port), to publish each signed checkpoint of the log on
    /// (`diandan.audit.checkpoints`); none: checkpoints are only kept and served.
    #[arg(long, env = "DIANDAN_BUS")]
    bus: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
struct GatewayPartArgs {
    /// Where the HTTP API listens.
    #[arg(long, env = "DIANDAN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    upstreams: diandan::serve::UpstreamUrls,
    /// Rate limits of the HTTP API: `off`, or e.g. `address=1200/min,token=300/min,login=20/min,place=10/min`.
    #[arg(long, env = "DIANDAN_RATE_LIMITS", default_value = diandan_gateway::RateLimits::DEFAULT)]
    rate_limits: diandan_gateway::RateLimits,
    #[command(flatten)]
    metrics: MetricsFlag,
}

#[derive(clap::Args, Debug, Clone)]
struct RelayPartArgs {
    #[command(flatten)]
    store: StoreFlag,
    #[command(flatten)]
    bus: BusFlag,
    #[command(flatten)]
    metrics: MetricsFlag,
}

#[derive(clap::Args, Debug, Clone)]
struct ProjectionsPartArgs {
    #[command(flatten)]
    bus: BusFlag,
    #[command(flatten)]
    data_dir: DataDirFlag,
    #[command(flatten)]
    metrics: MetricsFlag,
}

impl ServePart {
    /// The one configuration of a `serve` process, from this part's flags.
    fn config(self) -> diandan::serve::ServeConfig {
        use diandan::serve::{Part, ServeConfig};
        let base = |part: Part, metrics: MetricsFlag| ServeConfig {
            part,
            store: String::new(),
            bus: None,
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstreams: None,
            dev_login: false,
            workflows_dir: None,
            rate_limits: diandan_gateway::RateLimits::off(),
            metrics_addr: metrics.metrics_addr,
        };
        let grpc = |part: Part, a: GrpcPartArgs| ServeConfig {
            store: a.store.store,
            data_dir: a.data_dir.data_dir,
            listen: a.listen,
            dev_login: a.dev,
            workflows_dir: a.workflows_dir,
            ..base(part, a.metrics)
        };
        match self {
            ServePart::Orders(a) => grpc(Part::Orders, a),
            ServePart::Dispatch(a) => grpc(Part::Dispatch, a),
            ServePart::Volunteers(a) => grpc(Part::Volunteers, a),
            ServePart::Reviews(a) => grpc(Part::Reviews, a),
            ServePart::Stats(a) => ServeConfig {
                bus: a.bus,
                ..grpc(Part::Stats, a.grpc)
            },
            ServePart::Gateway(a) => ServeConfig {
                listen: a.listen,
                upstreams: Some(a.upstreams),
                rate_limits: a.rate_limits,
                ..base(Part::Gateway, a.metrics)
            },
            ServePart::Relay(a) => ServeConfig {
                store: a.store.store,
                bus: Some(a.bus.bus),
                ..base(Part::Relay, a.metrics)
            },
            ServePart::Projections(a) => ServeConfig {
                bus: Some(a.bus.bus),
                data_dir: a.data_dir.data_dir,
                ..base(Part::Projections, a.metrics)
            },
        }
    }

    /// Development mode asked for.
    fn dev(&self) -> bool {
        match self {
            ServePart::Orders(a)
            | ServePart::Dispatch(a)
            | ServePart::Volunteers(a)
            | ServePart::Reviews(a) => a.dev,
            ServePart::Stats(a) => a.grpc.dev,
            _ => false,
        }
    }
}

/// The store and data dir a maintenance command works on: the same as the deployment's.
#[derive(clap::Args, Debug, Clone)]
struct StoreArgs {
    /// The deployment's event store, as its parts name it (nats://…, kurrentdb://…,
    /// sqlite:<path>). Default: the embedded store in --data-dir (`diandan up`).
    #[arg(long, env = "DIANDAN_STORE")]
    store: Option<String>,
    /// The deployment's data dir (read models, contact vault, token key).
    #[arg(long, env = "DIANDAN_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

impl StoreArgs {
    /// The store URL, the embedded store in the data dir by default.
    fn store_or_embedded(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("events.db").display()))
    }

    /// The store URL; the embedded default must already exist (never create an empty one).
    fn existing_store(&self) -> anyhow::Result<String> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        let embedded = self.data_dir.join("events.db");
        anyhow::ensure!(
            embedded.exists(),
            "no embedded event store in {} (events.db): for a split deployment give --store \
             (the same URL as its parts, e.g. nats://127.0.0.1:4222)",
            self.data_dir.display()
        );
        Ok(format!("sqlite:{}", embedded.display()))
    }
}

#[derive(Subcommand)]
enum ResidentsCommand {
    /// Forget a resident: destroy the key their address and numbers are sealed with, so every
    /// copy becomes unreadable; the fact is recorded in the log. Stop `diandan up` first, or
    /// use the API (`POST /api/v1/residents/{id}/forget`) while it runs.
    Forget {
        /// The resident's id.
        resident_id: String,
        /// Why (kept in the audit trail).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: StoreArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every event's hash chain, the witnessed leaves and every signed checkpoint (the
    /// system's and any you kept) against the log, online (a live store) or offline (a data
    /// dir); names each altered, removed, inserted or reordered event. Exit status 1 when
    /// anything was found.
    Verify {
        #[command(flatten)]
        target: StoreArgs,
        /// The system's public key (base64, or a file holding it); default: the data dir's.
        #[arg(long)]
        key: Option<String>,
        /// A checkpoint you kept outside the system (JSON, the API's answer, or
        /// checkpoints.jsonl); repeatable.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check an exported history (`GET /api/v1/audit/orders/{id}/proof`) with nothing but the
    /// system's public key.
    VerifyExport {
        /// The export (JSON, format diandan.export.v1).
        file: PathBuf,
        /// The system's public key (base64, or a file holding it).
        #[arg(long)]
        key: String,
    },
    /// Print the system's public key (what auditors pass to --key).
    Key {
        #[arg(long, env = "DIANDAN_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Sign a checkpoint of the log now and print it (JSON).
    Checkpoint {
        #[command(flatten)]
        target: StoreArgs,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Register the centre (中心) and open its first centre admin's account. Safe to repeat.
    Bootstrap {
        #[command(flatten)]
        target: StoreArgs,
        /// The centre's id, e.g. `xianan`.
        #[arg(long)]
        centre_id: String,
        /// Its name, e.g. 咸安区新时代文明实践中心.
        #[arg(long)]
        centre_name: String,
        /// The centre admin's username.
        #[arg(long, default_value = "admin")]
        admin_username: String,
        /// The centre admin's display name.
        #[arg(long, default_value = "中心管理员")]
        admin_name: String,
        /// Their first password (8–128 characters; they should change it). Default: a random
        /// one, printed once.
        #[arg(long, env = "DIANDAN_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Rebuild every read model from the event log. Refused while a process has the read
    /// models open (stop `up`, or every `serve` part on this data dir, first), when they were
    /// built from another store than --store, and when the store holds fewer events than they
    /// reflect (unless --force).
    Rebuild {
        #[command(flatten)]
        target: StoreArgs,
        /// Rebuild even when the store ends before the read models' position (they will
        /// reflect less than before).
        #[arg(long)]
        force: bool,
    },
}

/// Says loudly, on stderr, that anyone can sign in as anyone.
fn warn_development_mode() {
    eprintln!(
        "\n  ⚠  DEVELOPMENT MODE: POST /api/v1/dev/login issues a token for ANY role to ANYONE.\n  \
         ⚠  Never run a real station like this: drop --dev / --demo (and DIANDAN_DEV).\n"
    );
    tracing::warn!("development mode: the development login is enabled");
}

/// `diandan projections rebuild`: every read model again from the log, into a fresh file that
/// replaces the old one only when complete — and only when that is safe.
async fn rebuild(target: &StoreArgs, force: bool) -> anyhow::Result<()> {
    use diandan_runtime::projections;
    let data_dir = &target.data_dir;
    let live = data_dir.join("read.db");
    let spec = target.existing_store()?;
    let _exclusive = projections::lock_exclusive(&live)?.with_context(|| {
        format!(
            "the read models in {} are in use: stop `diandan up`, or every `diandan serve` \
             part on this data dir, before rebuilding them",
            data_dir.display()
        )
    })?;
    let store = diandan::serve::open_store(&spec).await?;
    let total = store.head_position().await?;
    let first = store.read_all(1, 1).await?.into_iter().next();
    if let Some(before) = projections::inspect(&live)? {
        if let Some((origin, _)) = &before.origin {
            let this = first.as_ref().map(|e| e.event_id.to_string());
            anyhow::ensure!(
                this.as_deref() == Some(origin.as_str()),
                "the read models in {} were built from another event store than {spec} \
                 (their log starts with event {origin}, this one {}): give the deployment's \
                 own --store. Nothing was changed.",
                data_dir.display(),
                this.as_deref().unwrap_or("— it is empty")
            );
        }
        anyhow::ensure!(
            force || total >= before.position,
            "{spec} ends at position {total}, but the read models in {} reflect position {}: \
             rebuilding would leave them emptier than they are. Wrong --store? (--force \
             rebuilds anyway.) Nothing was changed.",
            data_dir.display(),
            before.position
        );
    }
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, {eta})")
            .expect("valid template"),
    );
    let fresh = data_dir.join("read.db.rebuild");
    drop(projections::rebuild(store.as_ref(), &fresh, |done, _| bar.set_position(done)).await?);
    bar.finish();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data_dir.join(format!("read.db{suffix}")));
    }
    std::fs::rename(&fresh, &live)?;
    for suffix in ["-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(data_dir.join(format!("read.db.rebuild{suffix}")));
    }
    println!("rebuilt read models up to log position {total} of {spec}");
    Ok(())
}

/// `diandan audit …`.
async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            target,
            key,
            checkpoints,
            json,
        } => {
            let store = diandan::serve::open_store(&target.existing_store()?).await?;
            let args = diandan::audit::VerifyArgs {
                data_dir: target.data_dir.clone(),
                key: key.as_deref().map(diandan::audit::public_key).transpose()?,
                held: checkpoints,
                progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let report = diandan::audit::verify(store.as_ref(), &args).await?;
            if json {
                print_all(&serde_json::to_string_pretty(&report)?)?;
            } else {
                print_all(&diandan::audit::describe(&report))?;
            }
            if !report.findings.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        AuditCommand::VerifyExport { file, key } => {
            let key = diandan::audit::public_key(&key)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            match diandan_audit::export::verify_export(&bytes, &key) {
                Ok(verified) => {
                    println!(
                        "验证通过：{} 的全部 {} 个事件未被改动、无遗漏，均包含在签于 {} 的检查点（前 {} 个事件）中",
                        verified.stream,
                        verified.events,
                        diandan_audit::verify::china_time(verified.signed_at_ms),
                        verified.tree_size
                    );
                    Ok(())
                }
                Err(error) => {
                    eprintln!("验证失败：{error}");
                    std::process::exit(1);
                }
            }
        }
        AuditCommand::Key { data_dir } => {
            println!("{}", diandan::audit::print_key(&data_dir)?);
            Ok(())
        }
        AuditCommand::Checkpoint { target } => {
            let store = diandan::serve::open_store(&target.existing_store()?).await?;
            let key = diandan_runtime::secrets::existing_audit_key(&target.data_dir)?;
            let witness = diandan_audit::Witness::open(&target.data_dir, key)?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            let checkpoint = witness
                .checkpoint(store.as_ref(), now as i64)
                .await?
                .context("the log is empty: nothing to sign")?;
            println!("{}", serde_json::to_string(&checkpoint)?);
            Ok(())
        }
    }
}

/// Writes a document to stdout (`diandan openapi | head` is fine).
fn print_all(document: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match writeln!(std::io::stdout().lock(), "{document}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

/// The demo's accounts, so a newcomer can sign in at once.
fn print_demo_accounts(http: SocketAddr) {
    eprintln!("  演示账号 (demo accounts) — POST http://{http}/api/v1/auth/login");
    for (username, name, role, node, password) in diandan::demo::DEMO_ACCOUNTS {
        eprintln!("    {username:<14} 密码 {password:<22} {role:<15} @{node:<10} {name}");
    }
    eprintln!();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let service_name = match &cli.command {
        Command::Serve { part } => format!("diandan-{}", part.clone().config().part.name()),
        _ => "diandan".to_owned(),
    };
    let telemetry = diandan_telemetry::init(&service_name);
    let result = run_command(cli.command).await;
    telemetry.shutdown();
    result
}

async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up {
            data_dir,
            grpc_addr,
            http_addr,
            demo,
            demo_history,
            dev,
            workflows_dir,
            rate_limits,
        } => {
            let dev = dev || demo;
            if dev {
                warn_development_mode();
            }
            let config = Config {
                data_dir,
                grpc_addr,
                http_addr,
                dev_login: dev,
                workflows_dir,
                rate_limits,
            };
            run(
                config,
                move |bound, app| {
                    // Tests and scripts read this line to find the ports.
                    println!("diandan ready grpc={} http={}", bound.grpc, bound.http);
                    if demo {
                        print_demo_accounts(bound.http);
                    }
                    if demo {
                        tokio::spawn(async move {
                            if app.store.head_position().await.unwrap_or(0) > 0 {
                                tracing::info!("data already present: demo not seeded again");
                                return;
                            }
                            let seeded = async {
                                let channel =
                                    Endpoint::from_shared(format!("http://{}", bound.grpc))?
                                        .connect()
                                        .await?;
                                diandan::demo::seed(
                                    diandan_proto::Upstreams::single(channel),
                                    &app.signer,
                                )
                                .await
                            };
                            match seeded.await {
                                Ok(n) => tracing::info!(
                                    orders = n,
                                    "demo district seeded: 咸安区 with {n} orders"
                                ),
                                Err(e) => {
                                    tracing::error!(error = %e, "demo seeding failed");
                                    return;
                                }
                            }
                            match diandan::history::seed(&app, demo_history).await {
                                Ok(0) => {}
                                Ok(n) => {
                                    eprintln!(
                                        "  演示历史已生成: {n} orders over the last twelve months"
                                    );
                                    match diandan::history::seed_redemptions(&app).await {
                                        Ok(r) => eprintln!(
                                            "  爱心超市: {r} volunteers redeemed their points"
                                        ),
                                        Err(e) => {
                                            tracing::error!(error = %e, "demo redemptions failed")
                                        }
                                    }
                                }
                                Err(e) => tracing::error!(error = %e, "demo history failed"),
                            }
                        });
                    }
                },
                shutdown_signal(),
            )
            .await
        }
        Command::Serve { part } => {
            if part.dev() {
                warn_development_mode();
            }
            let config = part.config();
            diandan::serve::serve(
                config,
                |ready| match ready.listen {
                    Some(addr) => println!("diandan ready listen={addr} metrics={}", ready.metrics),
                    None => println!("diandan ready metrics={}", ready.metrics),
                },
                shutdown_signal(),
            )
            .await
        }
        Command::Workflows {
            command: WorkflowsCommand::Validate { files },
        } => {
            let mut registry = diandan_workflows::Registry::builtin();
            let mut failed = 0;
            for file in &files {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let result = if name.starts_with("calendar-") {
                    diandan_workflows::Calendar::load(file)
                        .map(|c| registry.add_calendar(c))
                        .map_err(|e| e.to_string())
                } else {
                    diandan_workflows::Definition::load(file)
                        .map_err(|e| e.to_string())
                        .and_then(|d| {
                            let id = d.id().clone();
                            match registry.add(d) {
                                Ok(()) => Ok(()),
                                // Validating a shipped version again is fine.
                                Err(_) if registry.resolve(&id).is_some() => Ok(()),
                                Err(e) => Err(e.to_string()),
                            }
                        })
                };
                match result {
                    Ok(()) => println!("{}: ok", file.display()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} of {} file(s) invalid", files.len());
            Ok(())
        }
        Command::Projections {
            command: ProjectionsCommand::Rebuild { target, force },
        } => rebuild(&target, force).await,
        Command::Org {
            command:
                OrgCommand::Bootstrap {
                    target,
                    centre_id,
                    centre_name,
                    admin_username,
                    admin_name,
                    admin_password,
                },
        } => {
            let generated = admin_password.is_none();
            let password = admin_password.unwrap_or_else(|| {
                format!("dd-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
            });
            let what = diandan::bootstrap::Bootstrap {
                centre_id: centre_id.clone(),
                centre_name,
                admin_username: admin_username.clone(),
                admin_name,
                admin_password: password.clone(),
            };
            let done = diandan::bootstrap::with_services(
                &target.store_or_embedded(),
                &target.data_dir,
                |u, s, _| diandan::bootstrap::bootstrap(u, s, what),
            )
            .await?;
            let said = |created: bool| {
                if created {
                    "已创建 created"
                } else {
                    "已存在 already there"
                }
            };
            println!("中心 centre {centre_id}: {}", said(done.centre_created));
            println!(
                "中心管理员 centre admin {admin_username} ({}): {}",
                done.admin_account_id,
                said(done.admin_created)
            );
            if done.admin_created && generated {
                println!(
                    "初始密码 first password (shown once; change it after signing in): {password}"
                );
            }
            Ok(())
        }
        Command::Demo { target } => {
            let seeded = diandan::bootstrap::with_services(
                &target.store_or_embedded(),
                &target.data_dir,
                diandan::bootstrap::demo,
            )
            .await?;
            if seeded == 0 {
                println!("the store already holds events: the demo was not seeded again");
            } else {
                println!("demo district seeded: 咸安区 with {seeded} orders");
                for (username, name, role, node, password) in diandan::demo::DEMO_ACCOUNTS {
                    println!("  {username:<14} 密码 {password:<22} {role:<15} @{node:<10} {name}");
                }
            }
            Ok(())
        }
        Command::Audit { command } => audit(command).await,
        Command::Residents {
            command:
                ResidentsCommand::Forget {
                    resident_id,
                    reason,
                    target,
                },
        } => {
            let store = target.existing_store()?;
            let done = diandan::bootstrap::with_services(&store, &target.data_dir, |u, s, _| {
                diandan::bootstrap::forget_resident(u, s, resident_id.clone(), reason)
            })
            .await?;
            println!(
                "居民 {resident_id} 的个人信息已删除（{}，日志位置 {}）",
                done.forgotten_at, done.position
            );
            Ok(())
        }
        Command::Openapi => {
            let document = serde_json::to_string_pretty(&diandan_gateway::openapi::document())?;
            print_all(&document)
        }
        Command::Permissions => print_all(&diandan_workflows::permissions::markdown()),
        Command::Workflows {
            command: WorkflowsCommand::Tables,
        } => print_all(&diandan_workflows::engine::markdown()),
        Command::Bench(args) => {
            let report = diandan::bench::run(&(&args).into()).await?;
            println!("{}", diandan::bench::markdown(&report));
            println!("written to {}", args.out.display());
            Ok(())
        }
    }
}
