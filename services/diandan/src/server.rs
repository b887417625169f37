//! `diandan up`: every service in one process — the embedded store, the projections, the gRPC
//! services (with health checking and reflection) on one port, the HTTP gateway on another.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tower::Layer as _;

use diandan_proto::v1 as pb;
use diandan_runtime::auth::TokenSigner;
use diandan_runtime::App;
use diandan_store::SqliteStore;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Issue development tokens (`DevLogin`). Never in production.
    pub dev_login: bool,
    /// Extra workflow definitions (new versions) beside the shipped ones.
    pub workflows_dir: Option<PathBuf>,
    /// Rate limits of the HTTP API.
    pub rate_limits: diandan_gateway::RateLimits,
}

/// The shipped workflow definitions plus those in `dir`; an invalid file is an error naming
/// the file and line.
pub fn workflows(dir: Option<&Path>) -> anyhow::Result<diandan_workflows::Registry> {
    let mut registry = diandan_workflows::Registry::builtin();
    if let Some(dir) = dir {
        registry
            .extend_from_dir(dir)
            .map_err(|e| anyhow::anyhow!("invalid workflow definitions:\n{e}"))?;
    }
    Ok(registry)
}

/// The token signing key: `DIANDAN_TOKEN_SECRET`, else one generated once per data dir.
///
/// Created exclusively and atomically, mode 0600 ([`diandan_runtime::secrets`]).
pub fn token_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = std::env::var("DIANDAN_TOKEN_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
    {
        anyhow::ensure!(
            secret.len() >= 32,
            "DIANDAN_TOKEN_SECRET must be at least 32 bytes"
        );
        return Ok(secret.into_bytes());
    }
    let path = data_dir.join("token.secret");
    diandan_runtime::secrets::load_or_create(&path, 32, || {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
        .into_bytes()
    })
    .with_context(|| format!("the token key {}", path.display()))
}

/// The token signer of this process: the key above, for the configured issuer
/// (`DIANDAN_TOKEN_ISSUER`, default `diandan`).
pub fn token_signer(data_dir: &Path) -> anyhow::Result<TokenSigner> {
    let issuer = std::env::var("DIANDAN_TOKEN_ISSUER")
        .unwrap_or_else(|_| diandan_runtime::auth::DEFAULT_ISSUER.to_owned());
    Ok(TokenSigner::with_issuer(token_secret(data_dir)?, &issuer))
}

/// Opens the embedded store and the app over it.
pub fn open_app(
    data_dir: &Path,
    dev_login: bool,
    workflows: diandan_workflows::Registry,
) -> anyhow::Result<App> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let store = SqliteStore::open(data_dir.join("events.db"))
        .with_context(|| format!("opening the event store in {}", data_dir.display()))?;
    app_over(Arc::new(store), data_dir, dev_login, workflows)
}

/// The app over any store, keeping read models and the contact vault in `data_dir`.
pub fn app_over(
    store: Arc<dyn diandan_store::EventStore>,
    data_dir: &Path,
    dev_login: bool,
    workflows: diandan_workflows::Registry,
) -> anyhow::Result<App> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let signer = token_signer(data_dir)?;
    tracing::info!(key_id = signer.key_id(), "token signing key");
    App::open(store, data_dir, signer, dev_login, workflows).with_context(|| {
        format!(
            "opening the read models, contact vault and outbox in {}",
            data_dir.display()
        )
    })
}

/// A running system's addresses.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

/// Runs everything until `shutdown` resolves; `ready` hears the bound addresses.
pub async fn run(
    config: Config,
    ready: impl FnOnce(Bound, App) + Send,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let registry = workflows(config.workflows_dir.as_deref())?;
    let app = open_app(&config.data_dir, config.dev_login, registry)?;
    let grpc_listener = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC on {}", config.grpc_addr))?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
    let bound = Bound {
        grpc: grpc_listener.local_addr()?,
        http: http_listener.local_addr()?,
    };

    // One signal fans out to every part; each drains and returns.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let projections = {
        let (read, store) = (app.read.clone(), app.store.clone());
        tokio::spawn(read.follow_owned(store, stopped()))
    };
    let timers = {
        let (app, stop) = (app.clone(), stopped());
        tokio::spawn(async move {
            app.run_timers(diandan_runtime::timers::MAX_IDLE, stop)
                .await
        })
    };
    let retention = {
        let (app, stop) = (app.clone(), stopped());
        tokio::spawn(async move { app.run_retention(stop).await })
    };
    let outbox_path = config.data_dir.join("outbox.db");
    let outbox = diandan_runtime::notify::outbox::Outbox::open(&outbox_path)
        .with_context(|| format!("opening the notification outbox {}", outbox_path.display()))?;
    let notifications = {
        let (app, stop) = (app.clone(), stopped());
        // One access-token cache per process, shared with sign-in (each fetch retires the
        // previous token at WeChat).
        let notifier = diandan_runtime::notify::notifier_from_env_sharing(
            app.wechat.as_ref().map(|c| c.tokens().clone()),
        );
        tokio::spawn(async move { app.run_outbox(outbox, notifier, stop).await })
    };

    let ledger = {
        let (app, stop) = (app.clone(), stopped());
        let checkpoint = ledger_checkpoint(&config.data_dir)?;
        tokio::spawn(async move { diandan_ledger::runner::run(app, checkpoint, stop).await })
    };

    let checkpoints = {
        let (witness, store, stop) = (app.witness.clone(), app.store.clone(), stopped());
        let every = diandan_audit::witness::checkpoint_interval();
        tokio::spawn(diandan_audit::witness::run(
            witness,
            store,
            every,
            |_| async {},
            stop,
        ))
    };

    let routes = grpc_routes(&app, GrpcService::ALL).await?;
    // The gateway calls the same services in place: no loopback socket, no HTTP/2, and for
    // unary calls no encoding either; the same span, metrics, deadline and panic handling as
    // a call over the network. Streams go through the routes as a tower service.
    let in_process = diandan_proto::Upstream::in_process(
        RpcMetricsLayer.layer(InProcessCall::new(routes.clone())),
    );
    let upstreams = diandan_proto::Upstreams::single(in_process).in_place(in_place_services(&app));
    let grpc = Server::builder()
        .layer(RpcMetricsLayer)
        .trace_fn(grpc_span)
        .add_routes(routes)
        .serve_with_incoming_shutdown(crate::server::grpc_incoming(grpc_listener), stopped());
    let grpc = tokio::spawn(grpc);

    let http = tokio::spawn(diandan_gateway::run(
        http_listener,
        upstreams,
        config.rate_limits.clone(),
        stopped(),
    ));

    tracing::info!(grpc = %bound.grpc, http = %bound.http, data_dir = %config.data_dir.display(), "diandan is up");
    ready(bound, app.clone());

    shutdown.await;
    tracing::info!("shutting down: draining requests");
    let _ = stop_tx.send(true);
    let (grpc, http, projections, timers, notifications, ledger, checkpoints, retention) = tokio::join!(
        grpc,
        http,
        projections,
        timers,
        notifications,
        ledger,
        checkpoints,
        retention
    );
    timers?;
    retention?;
    checkpoints?;
    notifications?;
    ledger?;
    grpc?.context("gRPC server")?;
    http?.context("HTTP gateway")?;
    projections?;
    tracing::info!("stopped");
    Ok(())
}

/// Where the ledger's process manager stands in the log (`ledger.db` in the data dir).
pub fn ledger_checkpoint(data_dir: &Path) -> anyhow::Result<diandan_ledger::runner::Checkpoint> {
    let path = data_dir.join("ledger.db");
    diandan_ledger::runner::Checkpoint::open(&path)
        .with_context(|| format!("opening the ledger checkpoint {}", path.display()))
}

/// Records `rpc.server.duration` for every gRPC call: by service, method and status code.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

/// The service [`RpcMetricsLayer`] wraps.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<tonic::codegen::http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<
        tonic::codegen::http::Request<B>,
        Response = tonic::codegen::http::Response<R>,
    >,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let started = std::time::Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await;
            // An error status comes in the headers (trailers-only); success in the trailers,
            // which a unary reply always ends with `grpc-status: 0`.
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                Err(_) => tonic::Code::Unknown as i32,
            };
            diandan_telemetry::metrics::rpc_call(&path, code, started.elapsed());
            response
        })
    }
}

/// Accepted gRPC connections, with Nagle's algorithm off.
///
/// `Server::tcp_nodelay` applies only to listeners tonic binds itself, not to an incoming
/// stream handed to it; without this, a response written in more than one segment (HEADERS,
/// DATA, trailers) waited for the peer's delayed ACK — ~40 ms on every larger reply.
pub fn grpc_incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The gRPC services a process can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GrpcService {
    /// 点单: place, cancel, get, list, history.
    Orders,
    /// 审单/派单: triage, dispatch, queue.
    Dispatch,
    /// 接单/签到/签退/办结, the organisation directory, and sign-in.
    Volunteers,
    /// 评单 and archiving.
    Reviews,
    /// Station statistics.
    Stats,
}

impl GrpcService {
    pub const ALL: &'static [GrpcService] = &[
        GrpcService::Orders,
        GrpcService::Dispatch,
        GrpcService::Volunteers,
        GrpcService::Reviews,
        GrpcService::Stats,
    ];
}

/// The routes of `services`, with gRPC health checking and server reflection.
pub async fn grpc_routes(app: &App, services: &[GrpcService]) -> anyhow::Result<Routes> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // Reflection in both dialects: `v1` for current grpcurl and grpcui, `v1alpha` for the
    // clients that still speak only it (Python's grpcio-reflection, older grpcurl, Postman).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("building gRPC reflection v1")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building gRPC reflection v1alpha")?;
    let mut routes = RoutesBuilder::default();
    routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    // Adds a service to the routes and reports it serving.
    macro_rules! serve {
        ($server:expr) => {{
            let server = $server;
            health
                .set_service_status(server_name(&server), ServingStatus::Serving)
                .await;
            routes.add_service(server);
        }};
    }
    for service in services {
        let app = app.clone();
        match service {
            GrpcService::Orders => serve!(diandan_orders::Orders::new(app).into_server()),
            GrpcService::Dispatch => serve!(diandan_dispatch::Dispatch::new(app).into_server()),
            GrpcService::Volunteers => {
                serve!(diandan_volunteers::Volunteers::new(app.clone()).into_server());
                serve!(diandan_volunteers::Organization::new(app.clone()).into_server());
                serve!(diandan_volunteers::Accounts::new(app.clone()).into_server());
                serve!(diandan_volunteers::Identity::new(app.clone()).into_server());
                serve!(diandan_ledger::Ledger::new(app).into_server());
            }
            GrpcService::Reviews => serve!(diandan_reviews::Reviews::new(app).into_server()),
            GrpcService::Stats => {
                serve!(diandan_stats::Stats::new(app.clone()).into_server());
                serve!(diandan_stats::Audit::new(app).into_server());
            }
        }
    }
    Ok(routes.routes())
}

/// Every service of [`GrpcService::ALL`], for calls made in place, guarded by [`InPlaceCalls`].
pub fn in_place_services(app: &App) -> diandan_proto::InPlaceServices {
    diandan_proto::InPlaceServices {
        orders: Arc::new(diandan_orders::Orders::new(app.clone())),
        dispatch: Arc::new(diandan_dispatch::Dispatch::new(app.clone())),
        volunteers: Arc::new(diandan_volunteers::Volunteers::new(app.clone())),
        reviews: Arc::new(diandan_reviews::Reviews::new(app.clone())),
        stats: Arc::new(diandan_stats::Stats::new(app.clone())),
        audit: Arc::new(diandan_stats::Audit::new(app.clone())),
        identity: Arc::new(diandan_volunteers::Identity::new(app.clone())),
        accounts: Arc::new(diandan_volunteers::Accounts::new(app.clone())),
        organization: Arc::new(diandan_volunteers::Organization::new(app.clone())),
        ledger: Arc::new(diandan_ledger::Ledger::new(app.clone())),
        guard: Arc::new(InPlaceCalls),
    }
}

fn server_name<S: tonic::server::NamedService>(_: &S) -> &'static str {
    S::NAME
}

/// A span per gRPC request, child of the trace context in its metadata.
pub fn grpc_span(request: &tonic::codegen::http::Request<()>) -> tracing::Span {
    span_of(request.uri().path(), request.headers())
}

fn span_of(path: &str, headers: &tonic::codegen::http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!("grpc.request", path = %path);
    diandan_telemetry::propagation::set_parent(&span, |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    span
}

/// A call made in place (`diandan up`'s gateway) treated as tonic's transport treats one that
/// came over the network: the same [`grpc_span`] around it, its `grpc-timeout` enforced (a
/// call past it answers `DEADLINE_EXCEEDED`, which the gateway makes a 504), and a panicking
/// handler answered with `INTERNAL` instead of unwinding into the gateway's connection.
#[derive(Debug, Clone)]
pub struct InProcessCall<S> {
    inner: S,
}

impl<S> InProcessCall<S> {
    pub fn new(inner: S) -> InProcessCall<S> {
        InProcessCall { inner }
    }
}

/// The `grpc-timeout` header's duration (`<up to 8 digits><H|M|S|m|u|n>`), if well formed.
fn grpc_timeout(headers: &tonic::codegen::http::HeaderMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl<S, B> tower::Service<tonic::codegen::http::Request<B>> for InProcessCall<S>
where
    S: tower::Service<
        tonic::codegen::http::Request<B>,
        Response = tonic::codegen::http::Response<tonic::body::Body>,
    >,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        use tracing::Instrument as _;
        let span = span_of(request.uri().path(), request.headers());
        let timeout = grpc_timeout(request.headers());
        let call = span.in_scope(|| self.inner.call(request));
        let guarded = async move {
            contained(timeout, call)
                .await
                .unwrap_or_else(|status| Ok(status.into_http()))
        };
        Box::pin(guarded.instrument(span))
    }
}

/// A handler's call run as tonic's transport runs one: past `timeout` it is dropped and
/// answered `DEADLINE_EXCEEDED`; a panic is caught and answered `INTERNAL`.
async fn contained<T>(
    timeout: Option<std::time::Duration>,
    call: impl Future<Output = T>,
) -> Result<T, tonic::Status> {
    let call = std::panic::AssertUnwindSafe(call).catch_unwind();
    let outcome = match timeout {
        Some(limit) => tokio::time::timeout(limit, call)
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("处理超时，请稍后重试"))?,
        None => call.await,
    };
    outcome.map_err(|_| {
        tracing::error!("a gRPC handler panicked");
        tonic::Status::internal("服务内部错误")
    })
}

/// What [`InProcessCall`] and [`RpcMetricsLayer`] do around a call through the routes, done
/// around a unary call the gateway makes in place (no encoding, no routes): the same span, the
/// `grpc-timeout` enforced, a panic answered `INTERNAL`, `rpc.server.duration` recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct InPlaceCalls;

impl diandan_proto::InPlaceGuard for InPlaceCalls {
    fn guard(
        &self,
        path: &'static str,
        metadata: tonic::metadata::MetadataMap,
        call: diandan_proto::InPlaceFuture,
    ) -> diandan_proto::InPlaceFuture {
        use tracing::Instrument as _;
        let headers = metadata.into_headers();
        let span = span_of(path, &headers);
        let timeout = grpc_timeout(&headers);
        let started = std::time::Instant::now();
        let guarded = async move {
            let answer = match contained(timeout, call).await {
                Ok(answer) => answer,
                Err(status) => Err(status),
            };
            let code = match &answer {
                Ok(_) => tonic::Code::Ok,
                Err(status) => status.code(),
            };
            diandan_telemetry::metrics::rpc_call(path, code as i32, started.elapsed());
            answer
        };
        Box::pin(guarded.instrument(span))
    }
}

#[cfg(test)]
mod in_process_tests {
    use super::*;
    use std::time::Duration;

    fn headers(value: &str) -> tonic::codegen::http::HeaderMap {
        let mut h = tonic::codegen::http::HeaderMap::new();
        h.insert("grpc-timeout", value.parse().unwrap());
        h
    }

    #[test]
    fn reads_grpc_timeouts() {
        assert_eq!(grpc_timeout(&headers("10S")), Some(Duration::from_secs(10)));
        assert_eq!(
            grpc_timeout(&headers("250m")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            grpc_timeout(&headers("2H")),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(grpc_timeout(&headers("7n")), Some(Duration::from_nanos(7)));
        for bad in ["", "S", "10", "10x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(grpc_timeout(&headers(bad)), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&tonic::codegen::http::HeaderMap::new()), None);
    }

    /// A handler that never answers, one that panics, and one that answers.
    #[derive(Clone)]
    struct Handler;

    impl tower::Service<tonic::codegen::http::Request<()>> for Handler {
        type Response = tonic::codegen::http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: tonic::codegen::http::Request<()>) -> Self::Future {
            Box::pin(async move {
                match request.uri().path() {
                    "/hang" => futures::future::pending().await,
                    "/panic" => panic!("a handler bug"),
                    _ => Ok(tonic::Status::ok("").into_http()),
                }
            })
        }
    }

    fn status_of(response: &tonic::codegen::http::Response<tonic::body::Body>) -> String {
        response.headers()["grpc-status"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_or_a_panic_gets_a_status() {
        use tower::ServiceExt as _;
        let call = |path: &str, timeout: Option<&str>| {
            let mut request = tonic::codegen::http::Request::new(());
            *request.uri_mut() = path.parse().unwrap();
            if let Some(t) = timeout {
                request
                    .headers_mut()
                    .insert("grpc-timeout", t.parse().unwrap());
            }
            InProcessCall::new(Handler).oneshot(request)
        };
        let late = call("/hang", Some("50m")).await.unwrap();
        assert_eq!(
            status_of(&late),
            (tonic::Code::DeadlineExceeded as i32).to_string()
        );
        let broken = call("/panic", None).await.unwrap();
        assert_eq!(
            status_of(&broken),
            (tonic::Code::Internal as i32).to_string()
        );
        let fine = call("/ok", Some("10S")).await.unwrap();
        assert_eq!(status_of(&fine), "0");
    }

    /// A review service whose handler hangs, panics or answers, as the comment says.
    struct Reviews;

    #[tonic::async_trait]
    impl pb::review_service_server::ReviewService for Reviews {
        async fn review_order(
            &self,
            request: tonic::Request<pb::ReviewOrderRequest>,
        ) -> Result<tonic::Response<pb::ReviewOrderResponse>, tonic::Status> {
            let token = request.metadata().get("authorization").cloned();
            match request.into_inner().comment.as_str() {
                "hang" => futures::future::pending().await,
                "panic" => panic!("a handler bug"),
                "big" => Ok(tonic::Response::new(pb::ReviewOrderResponse {
                    ack: Some(pb::CommandAck {
                        order_id: "大".repeat(2 * 1024 * 1024),
                        ..Default::default()
                    }),
                })),
                comment => Ok(tonic::Response::new(pb::ReviewOrderResponse {
                    ack: Some(pb::CommandAck {
                        // What the handler was given, sent back to be compared.
                        order_id: format!("{comment}|{token:?}"),
                        revision: 7,
                        ..Default::default()
                    }),
                })),
            }
        }

        async fn close_order(
            &self,
            _: tonic::Request<pb::CloseOrderRequest>,
        ) -> Result<tonic::Response<pb::CloseOrderResponse>, tonic::Status> {
            Err(tonic::Status::failed_precondition("订单尚未评价"))
        }
    }

    #[tokio::test]
    async fn unary_calls_in_place_reach_the_handler_within_the_guard() {
        use pb::review_service_calls::ReviewServiceCalls;
        // Whatever reaches the upstream fails: an answer below came in place, or not at all.
        let nowhere = || {
            diandan_proto::Upstream::in_process(tower::service_fn(
                |_: tonic::codegen::http::Request<tonic::body::Body>| async {
                    Err::<tonic::codegen::http::Response<tonic::body::Body>, _>(
                        std::io::Error::other("not called in place"),
                    )
                },
            ))
        };
        let in_place = || {
            let service: Arc<dyn pb::review_service_calls::ReviewServiceUnary> = Arc::new(Reviews);
            Some(diandan_proto::InPlace::new(service, Arc::new(InPlaceCalls)))
        };
        let review = |comment: &str, timeout: Option<Duration>| {
            let mut request = tonic::Request::new(pb::ReviewOrderRequest {
                comment: comment.to_owned(),
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("authorization", "Bearer t".parse().unwrap());
            if let Some(t) = timeout {
                request.set_timeout(t);
            }
            request
        };
        let mut calls = ReviewServiceCalls::new(nowhere(), in_place());

        let ack = calls
            .review_order(review("很好 \u{1F600}", None))
            .await
            .unwrap()
            .into_inner()
            .ack
            .unwrap();
        assert_eq!(ack.revision, 7);
        assert_eq!(ack.order_id, "很好 \u{1F600}|Some(\"Bearer t\")");

        let refused = calls
            .close_order(pb::CloseOrderRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(refused.message(), "订单尚未评价");

        let late = calls
            .review_order(review("hang", Some(Duration::from_millis(50))))
            .await
            .unwrap_err();
        assert_eq!(late.code(), tonic::Code::DeadlineExceeded);
        let broken = calls.review_order(review("panic", None)).await.unwrap_err();
        assert_eq!(broken.code(), tonic::Code::Internal);
        assert_eq!(broken.message(), "服务内部错误");

        // An answer past tonic's default 4 MB limit (6 MB) arrives whole in place and
        // through the routes alike: `diandan up` and `diandan serve` answer the same.
        let big = calls.review_order(review("big", None)).await.unwrap();
        assert_eq!(
            big.into_inner().ack.unwrap().order_id.len(),
            6 * 1024 * 1024
        );
        let routes = tonic::service::Routes::new(
            pb::review_service_server::ReviewServiceServer::new(Reviews),
        );
        let mut through_routes = ReviewServiceCalls::new(
            diandan_proto::Upstream::in_process(InProcessCall::new(routes)),
            None,
        );
        let big = through_routes
            .review_order(review("big", None))
            .await
            .unwrap();
        assert_eq!(
            big.into_inner().ack.unwrap().order_id.len(),
            6 * 1024 * 1024
        );

        // Without services in place the same calls go to the upstream.
        let mut remote = ReviewServiceCalls::new(nowhere(), None);
        let unreachable = remote.review_order(review("fine", None)).await.unwrap_err();
        assert!(
            unreachable.message().contains("not called in place"),
            "{unreachable:?}"
        );
    }
}

/// Resolves on the first ctrl-c or SIGTERM.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    /// Parts started at the same instant on a fresh data dir all end up with the one key.
    #[test]
    fn concurrent_starts_share_one_token_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|_| scope.spawn(|| super::token_secret(dir.path()).unwrap()))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(keys.windows(2).all(|w| w[0] == w[1]), "keys differ");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir.path().join("token.secret"))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
    }

    /// Accepted gRPC connections have Nagle off: with it on, a reply written in several
    /// segments waited ~40 ms for the peer's delayed ACK (every idle GET took ~44 ms).
    #[tokio::test]
    async fn accepted_grpc_connections_have_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = super::grpc_incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
