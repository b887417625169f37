//! W3C trace context (`traceparent`, `tracestate`) across every hop: HTTP headers, gRPC
//! metadata, NATS headers and stored events all carry the same two strings.

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header names trace context travels in.
pub const HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The current span's context as headers to send on (empty when not traced).
pub fn current_headers() -> HashMap<String, String> {
    let mut headers = HashMap::new();
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut headers)
        });
    }
    headers
}

/// The current span's `traceparent`, to store beside the events it produces.
pub fn current_traceparent() -> Option<String> {
    current_headers().remove("traceparent")
}

/// Makes `span` a child of the trace context found by `header` (a lookup in whatever carrier).
pub fn set_parent(span: &tracing::Span, header: impl Fn(&str) -> Option<String>) {
    let headers: HashMap<String, String> = HEADERS
        .iter()
        .filter_map(|name| header(name).map(|value| ((*name).to_owned(), value)))
        .collect();
    if headers.is_empty() {
        return;
    }
    let context = opentelemetry::global::get_text_map_propagator(|p| p.extract(&headers));
    if context.span().span_context().is_valid() {
        span.set_parent(context);
    }
}
