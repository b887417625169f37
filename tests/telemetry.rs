//! OpenTelemetry: one trace from the HTTP request through the gRPC hop to the projection
//! update, exported over OTLP to a collector (a real OTLP/gRPC server in this test), and the
//! Prometheus `/metrics` endpoint.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;

use support::{yongfu_order, Server, User};

/// (trace id hex, span name, service name) of every span received.
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

struct Collector(Received);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let trace: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    received.push((trace, span.name, service.clone()));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_http_through_grpc_to_the_projection() {
    let received: Received = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let collector = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(received.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let tmp = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{collector_addr}");
    let server = Server::start_with_env(
        tmp.path(),
        true,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "diandan-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    server.wait_for_demo().await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resident = User::login(&server, "resident", "r-traced", "").await;
    let response = resident
        .http
        .post(server.url("/api/v1/orders"))
        .bearer_auth(&resident.token)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&yongfu_order("请求带着 traceparent 进来"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let wanted = ["http.request", "grpc.request", "projection.apply"];
    let mut names = Vec::new();
    for _ in 0..100 {
        names = received
            .lock()
            .unwrap()
            .iter()
            .filter(|(trace, _, _)| trace == trace_id)
            .map(|(_, name, _)| name.clone())
            .collect();
        if wanted.iter().all(|w| names.iter().any(|n| n == w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in wanted {
        assert!(
            names.iter().any(|n| n == w),
            "no {w} span in trace {trace_id}: {names:?}"
        );
    }
    assert!(received
        .lock()
        .unwrap()
        .iter()
        .any(|(_, _, s)| s.contains("diandan-test")));

    // Prometheus metrics on the HTTP port.
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for wanted in [
        "# TYPE http_server_request_duration_seconds histogram",
        "# TYPE rpc_server_duration_seconds histogram",
        "# TYPE diandan_store_append_duration_seconds histogram",
        "# TYPE diandan_projection_lag_events gauge",
        "rpc_method=\"PlaceOrder\"",
        "http_route=\"/api/v1/dev/login\"",
    ] {
        assert!(metrics.contains(wanted), "no {wanted} in\n{metrics}");
    }
    // Commands by type and outcome; the accepted ones, summed over types.
    let accepted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("diandan_commands_total{") && l.contains("outcome=\"accepted\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        accepted > 100,
        "the demo alone ran hundreds of commands: {accepted}"
    );
    collector.abort();
}
