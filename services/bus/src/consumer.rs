//! A projection fed from the bus through a durable JetStream consumer shared by replicas.
//!
//! Each event is applied exactly once and in order, whichever replica receives it: a replica
//! applies an event only when the read model's checkpoint already holds its predecessor
//! (`prev_position`), and advances the checkpoint in the same transaction as the data; anything
//! else is acknowledged (already applied) or handed back (`nak`) for whoever is in order.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::{FutureExt, StreamExt};

use diandan_runtime::projections::ReadModel;

use crate::{cloudevents, relay, BusConfig, BusError};

/// Messages fetched per round (and the consumer's limit of unacknowledged messages).
const BATCH: usize = 256;

/// How long the server keeps one fetch waiting. Without it a fetch the server holds (nothing
/// deliverable yet: max ack pending reached) never ends, neither on the server, where it swallows
/// the next redeliveries, nor in the client, which waits for it forever when its server dies.
/// Short, because a fetch also waits this long for a full batch: it bounds projection lag.
const FETCH_EXPIRES: Duration = Duration::from_millis(100);

/// How long past FETCH_EXPIRES an empty fetch must have waited to count as unanswered.
const FETCH_SILENT: Duration = Duration::from_secs(1);

/// How long a replica's turn lasts without renewal (failover time).
const LEASE_TTL: Duration = Duration::from_secs(3);

/// How long an idle consumer waits before asking again.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// Creates (or finds) the durable consumer `name` on the bus stream.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    config: &BusConfig,
    name: &str,
) -> Result<jetstream::consumer::Consumer<pull::Config>, BusError> {
    let stream = relay::ensure_stream(js, config).await?;
    stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: BATCH as i64,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BusError::Unavailable(format!("consumer {name}: {e}")))
}

/// Feeds `read` from the bus until `shutdown` resolves; returns the events it applied.
pub async fn run(
    read: ReadModel,
    client: async_nats::Client,
    config: BusConfig,
    name: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<u64, BusError> {
    let (js, watchdog) = crate::context(client);
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    let mut applied_total = 0u64;
    let lease = format!("bus-consumer:{name}");
    let holder = uuid::Uuid::new_v4().to_string();
    loop {
        let round: Result<(), BusError> = async {
            let consumer = ensure_consumer(&js, &config, name).await?;
            loop {
                // Replicas take turns (a lease in the read model): interleaved deliveries would
                // only be handed back and forth. The standby takes over within LEASE_TTL.
                let holding = read
                    .hold_lease(&lease, &holder, LEASE_TTL)
                    .await
                    .map_err(|e| BusError::Local(e.to_string()))?;
                if !holding {
                    futures::select! {
                        _ = shutdown => return Ok(()),
                        _ = tokio::time::sleep(LEASE_TTL / 3).fuse() => {},
                    }
                    continue;
                }
                let fetched_at = Instant::now();
                let mut batch = consumer
                    .fetch()
                    .max_messages(BATCH)
                    .expires(FETCH_EXPIRES)
                    .messages()
                    .await
                    .map_err(|e| BusError::Unavailable(e.to_string()))?;
                let mut messages = Vec::new();
                loop {
                    futures::select! {
                        _ = shutdown => return Ok(()),
                        next = batch.next().fuse() => match next {
                            Some(Ok(m)) => messages.push(m),
                            Some(Err(e)) => return Err(BusError::Unavailable(e.to_string())),
                            None => break,
                        },
                    }
                }
                // The server ends every fetch by FETCH_EXPIRES; one that brought nothing, not
                // even that end, within a second more got no answer (async-nats ends it
                // quietly 5 s after the expiry).
                if !messages.is_empty() || fetched_at.elapsed() < FETCH_EXPIRES + FETCH_SILENT {
                    watchdog.answered();
                } else {
                    watchdog.unanswered();
                }
                if messages.is_empty() {
                    futures::select! {
                        _ = shutdown => return Ok(()),
                        _ = tokio::time::sleep(IDLE_POLL).fuse() => {},
                    }
                    continue;
                }
                let mut checkpoint = read
                    .stored_position()
                    .await
                    .map_err(|e| BusError::Local(e.to_string()))?;
                let mut in_order = Vec::new();
                let mut settled = Vec::new();
                let mut handed_back = Vec::new();
                for message in messages {
                    match cloudevents::decode(
                        message.subject.as_str(),
                        message.headers.as_ref(),
                        &message.payload,
                    ) {
                        Err(e) => {
                            tracing::warn!(error = %e, "rejected a bus message; it will not be applied");
                            message
                                .ack_with(AckKind::Term)
                                .await
                                .map_err(|e| BusError::Unavailable(e.to_string()))?;
                        }
                        Ok(bus) if bus.event.position <= checkpoint => settled.push(message),
                        Ok(bus) if bus.prev_position == checkpoint => {
                            checkpoint = bus.event.position;
                            in_order.push(bus.event);
                            settled.push(message);
                        }
                        Ok(_) => handed_back.push(message),
                    }
                }
                if !in_order.is_empty() {
                    applied_total += in_order.len() as u64;
                    read.apply_batch(in_order)
                        .await
                        .map_err(|e| BusError::Local(e.to_string()))?;
                }
                // Acknowledge the batch at once, not one round trip after another.
                futures::future::try_join_all(settled.iter().map(|m| m.ack()))
                    .await
                    .map_err(|e| BusError::Unavailable(e.to_string()))?;
                futures::future::try_join_all(
                    handed_back
                        .iter()
                        .map(|m| m.ack_with(AckKind::Nak(Some(Duration::from_millis(50))))),
                )
                .await
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
            }
        }
        .await;
        match round {
            Ok(()) => return Ok(applied_total),
            Err(e) => {
                tracing::warn!(error = %e, consumer = name, "projection consumer interrupted; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
