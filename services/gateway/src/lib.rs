//! The HTTP JSON gateway for the WeChat mini-program and the station console.
//!
//! Every route translates one HTTP call into one gRPC call on the services (`diandan.v1`),
//! forwarding the bearer token, `Idempotency-Key` and `X-Correlation-Id`; the services enforce
//! roles and org scope. Bodies are the protobuf messages as JSON; errors are RFC 9457 problem
//! details naming the field ([`problem`]); the OpenAPI 3 document is at `/api/openapi.json`
//! ([`openapi`]).

pub mod openapi;
pub mod problem;
mod routes;

use std::future::Future;

use axum::Router;
use diandan_proto::Upstreams;
use tokio::net::TcpListener;

pub use routes::MAX_BODY_BYTES;

/// The gateway's router, calling the services at `upstreams`.
pub fn router(upstreams: Upstreams) -> Router {
    routes::router(upstreams)
}

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    upstreams: Upstreams,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(upstreams))
        .with_graceful_shutdown(shutdown)
        .await
}
