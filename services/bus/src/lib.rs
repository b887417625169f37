//! The NATS event bus.
//!
//! Events reach the bus by **relaying the store's global log** ([`relay`]) — never by a second
//! write beside the store's (no dual writes). Each event becomes one JetStream message on the
//! bus stream (`DIANDAN_BUS`), encoded as a CloudEvent 1.0 in the NATS protocol binding's binary
//! mode ([`cloudevents`]):
//!
//! ```text
//! subject   diandan.events.<event type>.v<schema version>.<store stream>
//!           e.g. diandan.events.OrderAccepted.v1.order-1b4e…
//! headers   ce-specversion: 1.0          ce-id: <event id>
//!           ce-type: cn.diandan.OrderAccepted.v1
//!           ce-source: /diandan/order-1b4e…  ce-subject: order-1b4e…   ce-time: <RFC 3339>
//!           ce-diandanposition / ce-diandanprevposition / ce-diandanrevision
//!           ce-diandanmeta: <envelope JSON: actor, command id, correlation id>
//!           traceparent: <W3C trace context, when traced>
//!           content-type: application/json      Nats-Msg-Id: <event id>
//! body      the event payload (JSON)
//! ```
//!
//! Consumers subscribe with subject filters (`diandan.events.Order*.>` is not valid NATS; use
//! `diandan.events.OrderAccepted.>` or `diandan.events.*.v1.>`). [`consumer`] runs a projection
//! from a durable JetStream consumer that any number of replicas share: each event is applied
//! exactly once, in order, whichever replica receives it (the read model's checkpoint is
//! advanced in the same transaction as its data, and a replica only applies an event whose
//! predecessor the checkpoint already holds).

pub mod cloudevents;
pub mod consumer;
pub mod relay;

use std::time::Duration;

use async_nats::jetstream;
use diandan_store_jetstream::watchdog::{Watchdog, PING_INTERVAL};

/// The bus's JetStream stream and how to reach it.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub url: String,
    /// JetStream stream holding the relayed events.
    pub stream: String,
    /// 1 or 3.
    pub replicas: usize,
}

impl BusConfig {
    pub fn new(url: impl Into<String>) -> BusConfig {
        BusConfig {
            url: url.into(),
            stream: "DIANDAN_BUS".into(),
            replicas: 1,
        }
    }
}

/// Subject prefix of every relayed event.
pub const SUBJECT_PREFIX: &str = "diandan.events";

/// How long JetStream remembers message ids for de-duplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long any JetStream request of the bus (a publish's acknowledgement included) waits for
/// its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The bus's JetStream context on `client`, and the watchdog that reconnects `client` when
/// its server stops answering (see `diandan_store_jetstream::watchdog`).
fn context(client: async_nats::Client) -> (jetstream::Context, Watchdog) {
    let watchdog = Watchdog::new(client.clone(), REQUEST_TIMEOUT);
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    (js, watchdog)
}

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The broker could not be reached or refused. Retried with backoff by the runners.
    #[error("NATS unavailable: {0}")]
    Unavailable(String),
    /// A message on a diandan subject is not a diandan CloudEvent. It is rejected, never applied.
    #[error("rejected message on {subject}: {reason}")]
    Rejected { subject: String, reason: String },
    /// Reading the store or writing the read model failed.
    #[error("{0}")]
    Local(String),
}

/// Connects to NATS, retrying with exponential backoff until `attempts` run out.
///
/// The client pings every [`PING_INTERVAL`] when idle, so it drops a server that stopped
/// answering within seconds and reconnects to another one of the cluster (servers announce
/// each other, so one URL is enough).
pub async fn connect(url: &str, attempts: u32) -> Result<async_nats::Client, BusError> {
    let mut delay = Duration::from_millis(100);
    let mut last_error = String::new();
    for attempt in 1..=attempts.max(1) {
        match async_nats::ConnectOptions::new()
            .name("diandan")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(PING_INTERVAL)
            .connect(url)
            .await
        {
            Ok(client) => {
                // retry_on_initial_connect returns at once; wait for a real connection.
                for _ in 0..20 {
                    if client.connection_state() == async_nats::connection::State::Connected {
                        return Ok(client);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                last_error = format!("not connected to {url} yet");
                drop(client);
            }
            Err(e) => last_error = e.to_string(),
        }
        tracing::warn!(attempt, url, error = %last_error, "NATS not reachable; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Err(BusError::Unavailable(format!(
        "无法连接消息总线 {url}：{last_error}"
    )))
}
