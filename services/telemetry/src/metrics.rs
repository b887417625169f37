//! The process's metrics: plain atomics, rendered for Prometheus at `/metrics` and observed by
//! OpenTelemetry (OTLP) when export is on — one source, two readers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Counters and gauges of one process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Commands that produced events.
    pub commands_accepted: AtomicU64,
    /// Commands refused by the domain or by access rules.
    pub commands_refused: AtomicU64,
    /// Commands that failed in the store (nothing acknowledged).
    pub commands_failed: AtomicU64,
    /// Events this process appended to the store.
    pub events_appended: AtomicU64,
    /// Store head position minus the read model's checkpoint, last measured.
    pub projection_lag: AtomicU64,
    /// Events applied to read models by this process.
    pub events_projected: AtomicU64,
    /// Events relayed to the bus by this process.
    pub events_relayed: AtomicU64,
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// `(name, kind, help, value)` for each metric.
fn all() -> [(&'static str, &'static str, &'static str, u64); 7] {
    let m = metrics();
    [
        (
            "diandan_commands_total{outcome=\"accepted\"}",
            "counter",
            "Commands handled, by outcome.",
            read(&m.commands_accepted),
        ),
        (
            "diandan_commands_total{outcome=\"refused\"}",
            "counter",
            "",
            read(&m.commands_refused),
        ),
        (
            "diandan_commands_total{outcome=\"failed\"}",
            "counter",
            "",
            read(&m.commands_failed),
        ),
        (
            "diandan_events_appended_total",
            "counter",
            "Events appended to the store.",
            read(&m.events_appended),
        ),
        (
            "diandan_projection_lag_events",
            "gauge",
            "Store head minus read model checkpoint.",
            read(&m.projection_lag),
        ),
        (
            "diandan_events_projected_total",
            "counter",
            "Events applied to read models.",
            read(&m.events_projected),
        ),
        (
            "diandan_events_relayed_total",
            "counter",
            "Events relayed to the bus.",
            read(&m.events_relayed),
        ),
    ]
}

/// The Prometheus text exposition of every metric.
pub fn render_prometheus() -> String {
    let mut out = String::new();
    for (name, kind, help, value) in all() {
        let family = name.split('{').next().unwrap_or(name);
        if !help.is_empty() {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
        }
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// Registers OpenTelemetry observable instruments reading the same atomics.
pub(crate) fn observe_with_opentelemetry() {
    use opentelemetry::KeyValue;
    let meter = opentelemetry::global::meter("diandan");
    let m = metrics();
    let _commands = meter
        .u64_observable_counter("diandan.commands")
        .with_description("Commands handled, by outcome")
        .with_callback(move |o| {
            o.observe(
                read(&m.commands_accepted),
                &[KeyValue::new("outcome", "accepted")],
            );
            o.observe(
                read(&m.commands_refused),
                &[KeyValue::new("outcome", "refused")],
            );
            o.observe(
                read(&m.commands_failed),
                &[KeyValue::new("outcome", "failed")],
            );
        })
        .build();
    let _appended = meter
        .u64_observable_counter("diandan.events.appended")
        .with_callback(move |o| o.observe(read(&m.events_appended), &[]))
        .build();
    let _lag = meter
        .u64_observable_gauge("diandan.projection.lag")
        .with_description("Store head minus read model checkpoint, in events")
        .with_callback(move |o| o.observe(read(&m.projection_lag), &[]))
        .build();
    let _projected = meter
        .u64_observable_counter("diandan.events.projected")
        .with_callback(move |o| o.observe(read(&m.events_projected), &[]))
        .build();
    let _relayed = meter
        .u64_observable_counter("diandan.events.relayed")
        .with_callback(move |o| o.observe(read(&m.events_relayed), &[]))
        .build();
}
