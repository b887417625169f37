//! `diandan serve <part>`: one part of the system per process, for deployments that outgrow
//! one machine. The same services as `diandan up`, wired differently:
//!
//! - `orders`, `dispatch`, `volunteers`, `reviews`, `stats`: one gRPC service each, over a
//!   networked store (`--store nats://…`); they read the read models in `--data-dir`;
//!   on a JetStream cluster give every node and the copies to keep, e.g.
//!   `--store 'nats://a:4222,nats://b:4222,nats://c:4222?replicas=3'` (default `replicas=1`;
//!   every process of one deployment must name the same count);
//! - `projections`: feeds the read models in `--data-dir` from the bus through a durable
//!   consumer; run several for failover — each event is applied once;
//! - `relay`: the store's global log → the bus as CloudEvents (no dual writes);
//! - `gateway`: the HTTP JSON API, calling the services at their `--*-url`s.
//!
//! The read models are SQLite files, so processes serving and projecting them share a
//! `--data-dir` on one host; spreading them over hosts needs a networked read store (not yet).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use futures::FutureExt;
use tokio::net::TcpListener;
use tonic::transport::{Endpoint, Server};

use diandan_bus::BusConfig;
use diandan_proto::Upstreams;
use diandan_runtime::projections::ReadModel;
use diandan_store::{EventStore, SqliteStore};
use diandan_store_jetstream::{JetStreamConfig, JetStreamStore};

use crate::server::{app_over, grpc_routes, GrpcService};

/// What one `diandan serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Orders,
    Dispatch,
    Volunteers,
    Reviews,
    Stats,
    Gateway,
    Projections,
    Relay,
}

/// Where each gRPC service of a split deployment listens (for the gateway).
#[derive(Debug, Clone, clap::Args)]
pub struct UpstreamUrls {
    #[arg(
        long,
        env = "DIANDAN_ORDERS_URL",
        default_value = "http://127.0.0.1:50061"
    )]
    pub orders_url: String,
    #[arg(
        long,
        env = "DIANDAN_DISPATCH_URL",
        default_value = "http://127.0.0.1:50062"
    )]
    pub dispatch_url: String,
    #[arg(
        long,
        env = "DIANDAN_VOLUNTEERS_URL",
        default_value = "http://127.0.0.1:50063"
    )]
    pub volunteers_url: String,
    #[arg(
        long,
        env = "DIANDAN_REVIEWS_URL",
        default_value = "http://127.0.0.1:50064"
    )]
    pub reviews_url: String,
    #[arg(
        long,
        env = "DIANDAN_STATS_URL",
        default_value = "http://127.0.0.1:50065"
    )]
    pub stats_url: String,
}

impl UpstreamUrls {
    pub fn connect_lazy(&self) -> anyhow::Result<Upstreams> {
        let channel = |url: &str| -> anyhow::Result<tonic::transport::Channel> {
            Ok(Endpoint::from_shared(url.to_owned())
                .with_context(|| format!("bad service URL {url}"))?
                .connect_timeout(std::time::Duration::from_secs(3))
                .tcp_nodelay(true)
                .connect_lazy())
        };
        Ok(Upstreams {
            orders: channel(&self.orders_url)?.into(),
            dispatch: channel(&self.dispatch_url)?.into(),
            volunteers: channel(&self.volunteers_url)?.into(),
            reviews: channel(&self.reviews_url)?.into(),
            stats: channel(&self.stats_url)?.into(),
            in_place: None,
        })
    }
}

/// A `diandan serve` process.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub part: Part,
    /// `nats://host:port[,nats://host:port…][?replicas=1|3|5]` (JetStream) or `sqlite:<path>`.
    pub store: String,
    /// `nats://host:port`, for `relay` and `projections`.
    pub bus: Option<String>,
    pub data_dir: PathBuf,
    /// Where a gRPC part listens, or where the gateway listens.
    pub listen: SocketAddr,
    /// Where the gRPC parts listen (the gateway's).
    pub upstreams: Option<UpstreamUrls>,
    pub dev_login: bool,
    pub workflows_dir: Option<PathBuf>,
    /// Rate limits of the HTTP API (the gateway).
    pub rate_limits: diandan_gateway::RateLimits,
    /// Where this part serves its own `/metrics` and `/healthz`.
    pub metrics_addr: SocketAddr,
}

/// Where a started part listens.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// Its gRPC port, or the gateway's HTTP port (relay and projections listen on none).
    pub listen: Option<SocketAddr>,
    /// Its `/metrics` and `/healthz`.
    pub metrics: SocketAddr,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Orders => "orders",
            Part::Dispatch => "dispatch",
            Part::Volunteers => "volunteers",
            Part::Reviews => "reviews",
            Part::Stats => "stats",
            Part::Gateway => "gateway",
            Part::Projections => "projections",
            Part::Relay => "relay",
        }
    }
}

/// Opens the store a `--store` URL names: `nats://host:port` (JetStream; several servers
/// separated by commas, then optionally `?replicas=3` for a replicated stream) or
/// `sqlite:<path>`.
pub async fn open_store(spec: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    if spec.starts_with("nats://") {
        let config = jetstream_config(spec)?;
        let store = JetStreamStore::connect(config)
            .await
            .with_context(|| format!("connecting to the JetStream store at {spec}"))?;
        return Ok(Arc::new(store));
    }
    if spec.starts_with("kurrentdb://") || spec.starts_with("esdb://") {
        let store = diandan_store_kurrentdb::KurrentDbStore::connect(spec)
            .await
            .with_context(|| format!("connecting to KurrentDB at {spec}"))?;
        return Ok(Arc::new(store));
    }
    if let Some(path) = spec.strip_prefix("sqlite:") {
        let store = SqliteStore::open(path).with_context(|| format!("opening {path}"))?;
        return Ok(Arc::new(store));
    }
    anyhow::bail!(
        "--store must be nats://host:port[,nats://host:port…][?replicas=N], \
         kurrentdb://host:2113?tls=false or sqlite:<path>, not {spec:?}"
    )
}

/// The JetStream store's config from `nats://a:4222,nats://b:4222?replicas=3`: the servers
/// before the `?`, the stream's replica count (default 1) after it.
pub fn jetstream_config(spec: &str) -> anyhow::Result<JetStreamConfig> {
    let (servers, options) = spec.split_once('?').unwrap_or((spec, ""));
    let mut config = JetStreamConfig::new(servers);
    for option in options.split('&').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("replicas", count)) => {
                config.replicas = count.parse().with_context(|| {
                    format!("--store {spec:?}: replicas must be 1, 3 or 5, not {count:?}")
                })?;
            }
            _ => anyhow::bail!(
                "--store {spec:?}: unknown option {option:?}; the JetStream store takes \
                 ?replicas=1|3|5"
            ),
        }
    }
    Ok(config)
}

fn bus_url(config: &ServeConfig) -> anyhow::Result<&str> {
    config.bus.as_deref().with_context(|| {
        format!(
            "diandan serve {:?} needs --bus nats://host:port",
            config.part
        )
    })
}

/// Runs one part until `shutdown` resolves; `ready` hears where it listens.
pub async fn serve(
    config: ServeConfig,
    ready: impl FnOnce(Ready) + Send,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = shutdown.boxed().shared();
    let metrics_listener = TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics address {}", config.metrics_addr))?;
    let metrics = metrics_listener.local_addr()?;
    let metrics_server = tokio::spawn(diandan_gateway::serve_metrics(
        metrics_listener,
        config.part.name(),
        shutdown.clone(),
    ));
    let ready = move |listen: Option<SocketAddr>| ready(Ready { listen, metrics });
    serve_part(config, ready, shutdown).await?;
    metrics_server.await??;
    Ok(())
}

async fn serve_part(
    config: ServeConfig,
    ready: impl FnOnce(Option<SocketAddr>) + Send,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grpc_service = match config.part {
        Part::Orders => Some(GrpcService::Orders),
        Part::Dispatch => Some(GrpcService::Dispatch),
        Part::Volunteers => Some(GrpcService::Volunteers),
        Part::Reviews => Some(GrpcService::Reviews),
        Part::Stats => Some(GrpcService::Stats),
        _ => None,
    };
    if let Some(service) = grpc_service {
        let store = open_store(&config.store).await?;
        let registry = crate::server::workflows(config.workflows_dir.as_deref())?;
        let app = app_over(store, &config.data_dir, config.dev_login, registry)?;
        let routes = grpc_routes(&app, &[service]).await?;
        // The dispatch service owns the deadlines (时限): it runs the timers. Replicas may all
        // run them; a timer fired twice is answered as a duplicate.
        let (stop_timers, timers_stopped) = tokio::sync::oneshot::channel::<()>();
        let timers = (service == GrpcService::Dispatch).then(|| {
            let app = app.clone();
            tokio::spawn(async move {
                // It also runs the location retention job (a key destroyed twice is a no-op;
                // the record of a period is one command).
                let (stop_retention, retention_stopped) = tokio::sync::oneshot::channel::<()>();
                let retention = {
                    let app = app.clone();
                    tokio::spawn(async move {
                        app.run_retention(async {
                            let _ = retention_stopped.await;
                        })
                        .await
                    })
                };
                app.run_timers(diandan_runtime::timers::MAX_IDLE, async {
                    let _ = timers_stopped.await;
                })
                .await;
                let _ = stop_retention.send(());
                let _ = retention.await;
            })
        });
        // The volunteers service owns the ledger: it runs the ledger's process manager
        // (replicas may all run it; every step it takes is idempotent).
        let (stop_ledger, ledger_stopped) = tokio::sync::oneshot::channel::<()>();
        let ledger = if service == GrpcService::Volunteers {
            let checkpoint = crate::server::ledger_checkpoint(&config.data_dir)?;
            let app = app.clone();
            Some(tokio::spawn(async move {
                diandan_ledger::runner::run(app, checkpoint, async {
                    let _ = ledger_stopped.await;
                })
                .await
            }))
        } else {
            None
        };
        // The stats service owns the audit trail: it signs checkpoints of the log, and
        // publishes each on the bus (`diandan.audit.checkpoints`) when it has one.
        let (stop_checkpoints, checkpoints_stopped) = tokio::sync::oneshot::channel::<()>();
        let checkpoints = if service == GrpcService::Stats {
            let bus = match &config.bus {
                Some(url) => Some(diandan_bus::connect(url, 30).await?),
                None => None,
            };
            Some(tokio::spawn(diandan_audit::witness::run(
                app.witness.clone(),
                app.store.clone(),
                diandan_audit::witness::checkpoint_interval(),
                move |checkpoint| {
                    let bus = bus.clone();
                    async move {
                        let Some(bus) = bus else { return };
                        let body = serde_json::to_vec(&checkpoint).unwrap_or_default();
                        if let Err(error) = bus
                            .publish(diandan_audit::witness::CHECKPOINT_SUBJECT, body.into())
                            .await
                        {
                            tracing::warn!(%error, "publishing a checkpoint on the bus failed");
                        }
                    }
                },
                async {
                    let _ = checkpoints_stopped.await;
                },
            )))
        } else {
            None
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        ready(Some(listener.local_addr()?));
        Server::builder()
            .layer(crate::server::RpcMetricsLayer)
            .trace_fn(crate::server::grpc_span)
            .add_routes(routes)
            .serve_with_incoming_shutdown(crate::server::grpc_incoming(listener), shutdown)
            .await?;
        let _ = stop_timers.send(());
        let _ = stop_ledger.send(());
        let _ = stop_checkpoints.send(());
        if let Some(checkpoints) = checkpoints {
            checkpoints.await?;
        }
        if let Some(timers) = timers {
            timers.await?;
        }
        if let Some(ledger) = ledger {
            ledger.await?;
        }
        return Ok(());
    }
    match config.part {
        Part::Gateway => {
            let upstreams = config
                .upstreams
                .as_ref()
                .context("the gateway needs the gRPC parts' URLs")?
                .connect_lazy()?;
            let listener = TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            ready(Some(listener.local_addr()?));
            diandan_gateway::run(
                listener,
                upstreams,
                config.rate_limits.clone(),
                shutdown.boxed(),
            )
            .await?;
        }
        Part::Relay => {
            let store = open_store(&config.store).await?;
            let url = bus_url(&config)?;
            let client = diandan_bus::connect(url, 30).await?;
            ready(None);
            let published =
                diandan_bus::relay::run(store, client, BusConfig::new(url), shutdown).await?;
            tracing::info!(published, "relay stopped");
        }
        Part::Projections => {
            let url = bus_url(&config)?;
            let read = ReadModel::open(&config.data_dir.join("read.db"))?;
            let client = diandan_bus::connect(url, 30).await?;
            ready(None);
            let applied = diandan_bus::consumer::run(
                read,
                client,
                BusConfig::new(url),
                "projections",
                shutdown,
            )
            .await?;
            tracing::info!(applied, "projection consumer stopped");
        }
        _ => unreachable!("gRPC parts are served above"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::jetstream_config;

    #[test]
    fn store_url_names_servers_and_replicas() {
        let one = jetstream_config("nats://127.0.0.1:4222").unwrap();
        assert_eq!(
            (one.url.as_str(), one.replicas),
            ("nats://127.0.0.1:4222", 1)
        );
        let three =
            jetstream_config("nats://a:4222,nats://b:4222,nats://c:4222?replicas=3").unwrap();
        assert_eq!(three.url, "nats://a:4222,nats://b:4222,nats://c:4222");
        assert_eq!(three.replicas, 3);
        assert!(jetstream_config("nats://a:4222?replicas=three").is_err());
        assert!(jetstream_config("nats://a:4222?stream=X").is_err());
    }
}
