//! Telemetry for every diandan process: logs, traces and metrics.
//!
//! - [`init`]: `tracing` to stderr, plus OpenTelemetry export over OTLP/gRPC when the standard
//!   variables ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//!   `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, …). The returned [`Telemetry`]
//!   flushes on [`Telemetry::shutdown`].
//! - [`propagation`]: W3C trace context in and out of HTTP headers, gRPC metadata, NATS headers
//!   and stored events, so one trace runs from the HTTP request through the gRPC hops and NATS to
//!   the projection update.
//! - [`metrics`]: the process's counters, gauges and latency histograms, rendered for
//!   Prometheus (`/metrics`) and recorded into OTLP metrics.

pub mod metrics;
pub mod propagation;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;

/// Exporters to flush on the way out.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporters (bounded: a dead collector must not hang shutdown).
    pub fn shutdown(self) {
        let (tracer, meter) = (self.tracer, self.meter);
        let flushing = std::thread::spawn(move || {
            if let Some(tracer) = tracer {
                let _ = tracer.shutdown();
            }
            if let Some(meter) = meter {
                let _ = meter.shutdown();
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while !flushing.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn otlp_requested() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()))
}

/// Installs logging, and OTLP export when configured. Call once, inside a tokio runtime.
pub fn init(default_service_name: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,tower=warn,hyper=warn,async_nats=warn"));
    // RUST_LOG filters what is logged; exported spans are filtered on their own (info and up),
    // so quiet logs do not silence traces.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    if !otlp_requested() {
        tracing_subscriber::registry().with(fmt).init();
        return Telemetry::default();
    }
    let service_name =
        std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| default_service_name.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.clone())
        .build();
    let tracer = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map(|exporter| {
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.clone())
                .build()
        });
    let meter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .map(|exporter| {
            SdkMeterProvider::builder()
                .with_periodic_exporter(exporter)
                .with_resource(resource)
                .build()
        });
    match (tracer, meter) {
        (Ok(tracer), Ok(meter)) => {
            let otel = tracing_opentelemetry::layer()
                .with_tracer(tracer.tracer(service_name))
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            opentelemetry::global::set_meter_provider(meter.clone());
            tracing_subscriber::registry().with(fmt).with(otel).init();
            Telemetry {
                tracer: Some(tracer),
                meter: Some(meter),
            }
        }
        (tracer, meter) => {
            tracing_subscriber::registry().with(fmt).init();
            for error in [
                tracer.err().map(|e| e.to_string()),
                meter.err().map(|e| e.to_string()),
            ]
            .into_iter()
            .flatten()
            {
                tracing::error!(%error, "OpenTelemetry export disabled");
            }
            Telemetry::default()
        }
    }
}
