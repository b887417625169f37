//! The relay: the store's global log → the bus, in order, each event once.
//!
//! It resumes from the bus itself (the position in the last relayed message), so it needs no
//! checkpoint of its own; a publish that was in flight when it stopped is published again and
//! dropped by JetStream's de-duplication (`Nats-Msg-Id` = event id).
//!
//! The bus never holds a gap: each publish carries `Nats-Expected-Last-Sequence`, the bus
//! sequence its predecessor takes. Publishes are pipelined, so without it one lost in a leader
//! change (its acknowledgement times out) could be followed by later ones that land; the relay
//! would then resume after them, and every consumer would wait forever for the lost event.
//! With it, everything after a lost publish is refused too, and the relay resumes from the
//! last event that did land.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use futures::{FutureExt, StreamExt};

use diandan_store::EventStore;

use crate::{cloudevents, BusConfig, BusError, DUPLICATE_WINDOW, SUBJECT_PREFIX};

/// Publishes in flight at once before waiting for acknowledgements.
const MAX_IN_FLIGHT: usize = 256;

/// Creates (or finds) the bus stream.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: &BusConfig,
) -> Result<stream::Stream, BusError> {
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
    .map_err(|e| BusError::Unavailable(format!("bus stream {}: {e}", config.stream)))
}

/// Where the bus ends: the store position of its last event (0 when none) and the bus stream's
/// last sequence (what the next publish expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusHead {
    pub position: u64,
    pub sequence: u64,
}

/// How far back [`bus_head`] looks for the relay's last event past messages it did not publish.
const FOREIGN_SCAN: u64 = 1000;

/// The end of the bus stream: its last sequence, and the position of the last event the relay
/// put there. A message someone else published on the bus's subjects is passed over (with a
/// warning) rather than read as the relay's: otherwise it would stop the relay for good, since
/// every publish after it expects a sequence it no longer holds.
pub async fn bus_head(stream: &mut stream::Stream) -> Result<BusHead, BusError> {
    let info = stream
        .info()
        .await
        .map_err(|e| BusError::Unavailable(e.to_string()))?;
    let (messages, sequence) = (info.state.messages, info.state.last_sequence);
    if messages == 0 {
        return Ok(BusHead {
            position: 0,
            sequence,
        });
    }
    let oldest = sequence
        .saturating_sub(FOREIGN_SCAN)
        .max(info.state.first_sequence);
    for at in (oldest..=sequence).rev() {
        let message = stream
            .get_raw_message(at)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        match cloudevents::decode(&message.subject, Some(&message.headers), &message.payload) {
            Ok(decoded) => {
                return Ok(BusHead {
                    position: decoded.event.position,
                    sequence,
                })
            }
            Err(e) => tracing::warn!(
                sequence = at,
                subject = %message.subject,
                error = %e,
                "a message on the bus that is not a relayed event: passed over"
            ),
        }
    }
    Err(BusError::Local(format!(
        "none of the bus's last {} messages is a relayed event",
        sequence - oldest + 1
    )))
}

/// Relays until `shutdown` resolves; returns how many events it published.
pub async fn run(
    store: Arc<dyn EventStore>,
    client: async_nats::Client,
    config: BusConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<u64, BusError> {
    let (js, watchdog) = crate::context(client);
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    let mut published = 0u64;
    loop {
        let mut in_flight: VecDeque<PublishAckFuture> = VecDeque::new();
        let outcome: Result<(), BusError> = async {
            let mut stream = ensure_stream(&js, &config).await?;
            let head = bus_head(&mut stream).await?;
            let (mut prev, mut sequence) = (head.position, head.sequence);
            tracing::info!(from = prev + 1, "relaying the store's log to the bus");
            let mut log = store.subscribe_all(prev + 1).fuse();
            loop {
                // Wait for acknowledgements when the pipeline is full or the log is idle.
                let next = if in_flight.len() >= MAX_IN_FLIGHT {
                    None
                } else {
                    match log.next().now_or_never() {
                        Some(item) => Some(item),
                        None if !in_flight.is_empty() => None,
                        None => futures::select! {
                            _ = shutdown => return Ok(()),
                            item = log.next() => Some(item),
                        },
                    }
                };
                match next {
                    None => {
                        let ack = in_flight.pop_front().expect("pipeline not empty");
                        let ack = ack.await;
                        watchdog.observe(&ack);
                        ack.map_err(|e| BusError::Unavailable(e.to_string()))?;
                        published += 1;
                        diandan_telemetry::metrics::events_relayed(1);
                    }
                    Some(None) => return Err(BusError::Local("store subscription ended".into())),
                    Some(Some(Err(e))) => return Err(BusError::Local(e.to_string())),
                    Some(Some(Ok(event))) => {
                        let (subject, mut headers, body) = cloudevents::encode(&event, prev);
                        headers.insert(
                            async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
                            sequence.to_string().as_str(),
                        );
                        // The publish joins the trace of the command that produced the event,
                        // and hands its own context on to the consumers.
                        let span = tracing::info_span!("bus.publish", subject = %subject);
                        diandan_telemetry::propagation::set_parent(&span, |name| {
                            headers.get(name).map(|v| v.as_str().to_owned())
                        });
                        for (name, value) in
                            span.in_scope(diandan_telemetry::propagation::current_headers)
                        {
                            headers.insert(name.as_str(), value.as_str());
                        }
                        // Sending is not an answer; only its failure tells something.
                        let ack = js.publish_with_headers(subject, headers, body).await;
                        if let Err(error) = &ack {
                            watchdog.failed(error);
                        }
                        let ack = ack.map_err(|e| BusError::Unavailable(e.to_string()))?;
                        in_flight.push_back(ack);
                        prev = event.position;
                        sequence += 1;
                    }
                }
            }
        }
        .await;
        match outcome {
            Ok(()) => {
                for ack in in_flight {
                    if ack.await.is_ok() {
                        published += 1;
                    }
                }
                return Ok(published);
            }
            Err(e) => {
                tracing::warn!(error = %e, "relay interrupted; resuming from the bus in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
