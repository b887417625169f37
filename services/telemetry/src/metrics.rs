//! The process's metrics, recorded once and read twice: rendered for Prometheus at `/metrics`
//! (the `prometheus-client` crate, OpenMetrics text, real histograms) and sent over OTLP when
//! OpenTelemetry export is on (the same recordings, into OpenTelemetry instruments).
//!
//! Names follow the OpenTelemetry semantic conventions where one exists —
//! `http.server.request.duration` (by route, method and status), `rpc.server.duration` (by
//! service, method and gRPC status) — rendered the Prometheus way
//! (`http_server_request_duration_seconds`); the rest are ours, prefixed `diandan`.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Latency buckets in seconds: 0.25 ms to ~8 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_25, 2.0, 16)
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    http_request_method: String,
    http_route: String,
    http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc_system: &'static str,
    rpc_service: String,
    rpc_method: String,
    rpc_grpc_status_code: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    outcome: &'static str,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// It produced events (or was a duplicate answered from them).
    Accepted,
    /// The domain or the access rules refused it; nothing was written.
    Refused,
    /// The store failed; nothing was acknowledged.
    Failed,
}

impl CommandOutcome {
    fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Accepted => "accepted",
            CommandOutcome::Refused => "refused",
            CommandOutcome::Failed => "failed",
        }
    }
}

struct Prometheus {
    registry: Registry,
    http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    rpc: Family<RpcLabels, Histogram, fn() -> Histogram>,
    commands: Family<CommandLabels, Counter>,
    store_append: Histogram,
    events_appended: Counter,
    events_projected: Counter,
    events_relayed: Counter,
    log_consumers_recreated: Counter,
    projection_lag: Gauge,
}

struct OpenTelemetry {
    http: opentelemetry::metrics::Histogram<f64>,
    rpc: opentelemetry::metrics::Histogram<f64>,
    commands: opentelemetry::metrics::Counter<u64>,
    store_append: opentelemetry::metrics::Histogram<f64>,
    events_appended: opentelemetry::metrics::Counter<u64>,
    events_projected: opentelemetry::metrics::Counter<u64>,
    events_relayed: opentelemetry::metrics::Counter<u64>,
    log_consumers_recreated: opentelemetry::metrics::Counter<u64>,
    projection_lag: opentelemetry::metrics::Gauge<u64>,
}

struct Metrics {
    prometheus: Prometheus,
    otel: OpenTelemetry,
}

/// This process's metrics. The OpenTelemetry instruments bind to the meter provider installed
/// by [`crate::init`], which runs before anything records.
fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        prometheus: Prometheus::new(),
        otel: OpenTelemetry::new(),
    })
}

impl Prometheus {
    fn new() -> Prometheus {
        let mut registry = Registry::default();
        let http = Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP server requests, by route, method and status.",
            Unit::Seconds,
            http.clone(),
        );
        let rpc = Family::<RpcLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "rpc_server_duration",
            "Duration of gRPC server calls, by service, method and status code.",
            Unit::Seconds,
            rpc.clone(),
        );
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "diandan_commands",
            "Commands handled, by command and outcome (accepted, refused, failed).",
            commands.clone(),
        );
        let store_append = latency_histogram();
        registry.register_with_unit(
            "diandan_store_append_duration",
            "Duration of event-store appends (durable on return).",
            Unit::Seconds,
            store_append.clone(),
        );
        let events_appended = Counter::default();
        registry.register(
            "diandan_events_appended",
            "Events appended to the store.",
            events_appended.clone(),
        );
        let events_projected = Counter::default();
        registry.register(
            "diandan_events_projected",
            "Events applied to read models.",
            events_projected.clone(),
        );
        let events_relayed = Counter::default();
        registry.register(
            "diandan_events_relayed",
            "Events relayed to the bus.",
            events_relayed.clone(),
        );
        let log_consumers_recreated = Counter::default();
        registry.register(
            "diandan_log_consumers_recreated",
            "Feeds of the store's log whose consumer the server forgot (a restart), reopened.",
            log_consumers_recreated.clone(),
        );
        let projection_lag = Gauge::default();
        registry.register(
            "diandan_projection_lag_events",
            "Store head minus read model checkpoint, in events.",
            projection_lag.clone(),
        );
        Prometheus {
            registry,
            http,
            rpc,
            commands,
            store_append,
            events_appended,
            events_projected,
            events_relayed,
            log_consumers_recreated,
            projection_lag,
        }
    }
}

impl OpenTelemetry {
    fn new() -> OpenTelemetry {
        let meter = opentelemetry::global::meter("diandan");
        OpenTelemetry {
            http: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests")
                .build(),
            rpc: meter
                .f64_histogram("rpc.server.duration")
                .with_unit("s")
                .with_description("Duration of gRPC server calls")
                .build(),
            commands: meter
                .u64_counter("diandan.commands")
                .with_description("Commands handled, by command and outcome")
                .build(),
            store_append: meter
                .f64_histogram("diandan.store.append.duration")
                .with_unit("s")
                .build(),
            events_appended: meter.u64_counter("diandan.events.appended").build(),
            events_projected: meter.u64_counter("diandan.events.projected").build(),
            events_relayed: meter.u64_counter("diandan.events.relayed").build(),
            log_consumers_recreated: meter.u64_counter("diandan.log_consumers.recreated").build(),
            projection_lag: meter
                .u64_gauge("diandan.projection.lag")
                .with_description("Store head minus read model checkpoint, in events")
                .build(),
        }
    }
}

/// One HTTP request served (`route` is the matched route template, e.g. `/api/v1/orders/{id}`).
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    // Bounded label values: an unknown method is `_OTHER` (semantic conventions).
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    let method = if KNOWN.contains(&method) {
        method
    } else {
        "_OTHER"
    };
    let m = metrics();
    let seconds = took.as_secs_f64();
    m.prometheus
        .http
        .get_or_create(&HttpLabels {
            http_request_method: method.to_owned(),
            http_route: route.to_owned(),
            http_response_status_code: status,
        })
        .observe(seconds);
    m.otel.http.record(
        seconds,
        &[
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
}

/// One gRPC call served (`path` is `/package.Service/Method`).
pub fn rpc_call(path: &str, grpc_status: i32, took: Duration) {
    let m = metrics();
    let seconds = took.as_secs_f64();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("unknown", "unknown"));
    m.prometheus
        .rpc
        .get_or_create(&RpcLabels {
            rpc_system: "grpc",
            rpc_service: service.to_owned(),
            rpc_method: method.to_owned(),
            rpc_grpc_status_code: grpc_status,
        })
        .observe(seconds);
    m.otel.rpc.record(
        seconds,
        &[
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_owned()),
            KeyValue::new("rpc.method", method.to_owned()),
            KeyValue::new("rpc.grpc.status_code", i64::from(grpc_status)),
        ],
    );
}

/// One command handled.
pub fn command(command: &str, outcome: CommandOutcome) {
    let m = metrics();
    m.prometheus
        .commands
        .get_or_create(&CommandLabels {
            command: command.to_owned(),
            outcome: outcome.as_str(),
        })
        .inc();
    m.otel.commands.add(
        1,
        &[
            KeyValue::new("command", command.to_owned()),
            KeyValue::new("outcome", outcome.as_str()),
        ],
    );
}

/// One append to the event store, and the events it wrote.
pub fn store_append(events: u64, took: Duration) {
    let m = metrics();
    m.prometheus.store_append.observe(took.as_secs_f64());
    m.otel.store_append.record(took.as_secs_f64(), &[]);
    m.prometheus.events_appended.inc_by(events);
    m.otel.events_appended.add(events, &[]);
}

/// Events applied to read models.
pub fn events_projected(events: u64) {
    let m = metrics();
    m.prometheus.events_projected.inc_by(events);
    m.otel.events_projected.add(events, &[]);
}

/// Events relayed to the bus.
pub fn events_relayed(events: u64) {
    let m = metrics();
    m.prometheus.events_relayed.inc_by(events);
    m.otel.events_relayed.add(events, &[]);
}

/// A feed of the store's log found its consumer gone (a server restart) and reopened it.
pub fn log_consumer_recreated() {
    let m = metrics();
    m.prometheus.log_consumers_recreated.inc();
    m.otel.log_consumers_recreated.add(1, &[]);
}

/// The read model's distance from the store's head, last measured.
pub fn projection_lag(events: u64) {
    let m = metrics();
    m.prometheus
        .projection_lag
        .set(i64::try_from(events).unwrap_or(i64::MAX));
    m.otel.projection_lag.record(events, &[]);
}

/// The content type of [`render_prometheus`].
pub const PROMETHEUS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric in the OpenMetrics text format.
pub fn render_prometheus() -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &metrics().prometheus.registry)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_render_as_histograms_and_counters() {
        http_request("GET", "/api/v1/orders/{id}", 200, Duration::from_millis(3));
        rpc_call(
            "/diandan.v1.OrderService/GetOrder",
            0,
            Duration::from_millis(2),
        );
        command("place", CommandOutcome::Accepted);
        store_append(2, Duration::from_millis(1));
        projection_lag(7);
        let text = render_prometheus();
        for wanted in [
            "# TYPE http_server_request_duration_seconds histogram",
            "http_server_request_duration_seconds_bucket{",
            "http_route=\"/api/v1/orders/{id}\"",
            "# TYPE rpc_server_duration_seconds histogram",
            "rpc_service=\"diandan.v1.OrderService\",rpc_method=\"GetOrder\"",
            "diandan_commands_total{command=\"place\",outcome=\"accepted\"} 1",
            "diandan_store_append_duration_seconds_count 1",
            "diandan_events_appended_total 2",
            "diandan_projection_lag_events 7",
        ] {
            assert!(text.contains(wanted), "no {wanted:?} in\n{text}");
        }
    }
}
