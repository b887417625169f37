//! The HTTP JSON gateway for the WeChat mini-program and the station console.
//!
//! Every route translates one HTTP call into one gRPC call on the services (`diandan.v1`),
//! forwarding the bearer token, `Idempotency-Key` and `X-Correlation-Id`; the services enforce
//! roles and org scope. Bodies are the protobuf messages as JSON; errors are RFC 9457 problem
//! details naming the field ([`problem`]); the OpenAPI 3 document is at `/api/openapi.json`
//! ([`openapi`]).

mod console;
mod contract;
pub mod input;
mod ledger;
pub mod limits;
pub mod openapi;
mod parse_errors;
pub mod problem;
mod routes;
mod trail;
mod workbench;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use diandan_proto::Upstreams;
use tokio::net::TcpListener;

pub use input::MAX_BODY_BYTES;
pub use limits::RateLimits;

/// The gateway's router, calling the services at `upstreams`, within `limits`.
pub fn router(upstreams: Upstreams, limits: &RateLimits) -> Router {
    routes::router(upstreams, limits::Limiters::new(limits))
}

/// How long a client may take to send a request's headers (slow-loris guard).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long in-flight requests may take to finish after shutdown was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the gateway on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to a bound).
///
/// Connections are served by hyper directly (not `axum::serve`) for one setting axum does not
/// expose: a header read timeout, so a client that opens a connection and trickles its headers
/// (slow-loris) is cut off instead of holding a socket forever.
/// A process's own `/metrics` (Prometheus) and `/healthz` on `listener`, until `shutdown`:
/// every part of a split deployment serves one, so what a part does (relaying, projecting,
/// answering RPCs) is seen where it happens.
pub async fn serve_metrics(
    listener: TcpListener,
    part: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(move || async move {
                axum::Json(serde_json::json!({"part": part, "status": "ok"}))
            }),
        )
        .route("/metrics", axum::routing::get(routes::prometheus_metrics));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

pub async fn run(
    listener: TcpListener,
    upstreams: Upstreams,
    limits: RateLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::Service;

    let app = router(upstreams, &limits);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                // The client address, for per-address rate limits.
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                app.clone().call(request)
            },
        );
        let connection = builder.serve_connection_with_upgrades(
            TokioIo::new(parse_errors::ProblemOnParseError::new(socket)),
            service,
        );
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish in time");
    }
    Ok(())
}
