//! Catch-up-then-live feeds of the global log on one ordered JetStream consumer.
//!
//! An ordered consumer delivers every message of the store's subjects from a start sequence,
//! stored ones first, then new ones as they are acknowledged, so catching up and going live
//! are the same loop. async-nats recreates the consumer after a gap or a lost heartbeat, from
//! the message after the last one it delivered, but from the stream's very first message when
//! it had delivered none yet (async-nats 0.46). So the feed drops any message below the next
//! sequence it expects: a recreated consumer cannot deliver an event twice or out of order.
//!
//! An ordered consumer is ephemeral: a NATS server restart forgets it, and async-nats notices
//! only when 15 s heartbeats go missing. So the feed names its consumer and asks for it every
//! second ([`LIVENESS`]); when the server no longer knows it, the feed opens a new one from the
//! next sequence at once (and says so in the log) — about a second after the reconnect.
//!
//! This module reads; it must not write to the stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use diandan_store::{RecordedEvent, Result, StoreError, Subscription};
use futures::StreamExt;

use crate::failure;
use crate::layout;
use crate::store::{decode_delivered, Inner};

/// Every event with position `>= from`, in order, live after catching up. Ends after
/// yielding its first error; resubscribe from the last position processed, plus one.
pub(crate) fn subscribe(inner: Arc<Inner>, from: u64) -> Subscription {
    let from = from.max(1);
    let feed = Feed {
        inner,
        name: format!("diandan-log-{}", uuid::Uuid::new_v4().simple()),
        from,
        next_sequence: layout::locate(from).0,
        messages: None,
        buffered: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(feed, Feed::next_event))
}

/// How often a feed checks that the server still knows its consumer.
pub const LIVENESS: Duration = Duration::from_secs(1);

struct Feed {
    inner: Arc<Inner>,
    /// Its consumer's name (kept when async-nats recreates it), to ask the server about it.
    name: String,
    /// The first position to deliver.
    from: u64,
    /// The JetStream sequence of the next message to take; anything below is a redelivery.
    next_sequence: u64,
    messages: Option<pull::Ordered>,
    buffered: VecDeque<RecordedEvent>,
    finished: bool,
}

impl Feed {
    async fn next_event(mut self) -> Option<(Result<RecordedEvent>, Self)> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Some((Ok(event), self));
            }
            if self.finished {
                return None;
            }
            if let Err(error) = self.fill().await {
                self.finished = true;
                return Some((Err(error), self));
            }
        }
    }

    /// Waits for the next message and buffers its events.
    async fn fill(&mut self) -> Result<()> {
        let messages = match &mut self.messages {
            Some(messages) => messages,
            None => {
                let messages = open(&self.inner, self.next_sequence, &self.name).await?;
                self.messages.insert(messages)
            }
        };
        let what = "following the log";
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + LIVENESS, LIVENESS);
        let next = loop {
            tokio::select! {
                next = messages.next() => break next,
                _ = check.tick() => {
                    if self.inner.consumer_vanished(&self.name).await {
                        tracing::warn!(
                            consumer = %self.name,
                            from_sequence = self.next_sequence,
                            "the log's consumer vanished (a NATS server restart?): opening a new one"
                        );
                        diandan_telemetry::metrics::log_consumer_recreated();
                        self.messages = None;
                        return Ok(());
                    }
                }
            }
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(failure::unavailable(what, error)),
            None => {
                return Err(StoreError::Unavailable(format!(
                    "{what}: the consumer ended"
                )))
            }
        };
        let commit = decode_delivered(&message)?;
        if commit.sequence < self.next_sequence {
            return Ok(());
        }
        self.next_sequence = commit.sequence + 1;
        let from = self.from;
        self.buffered
            .extend(commit.into_events().filter(|event| event.position >= from));
        Ok(())
    }
}

/// An ordered consumer of the log from `sequence` on.
async fn open(inner: &Inner, sequence: u64, name: &str) -> Result<pull::Ordered> {
    let what = format!("subscribing from message {sequence}");
    let reader = inner.log_consumer(sequence);
    let config = pull::OrderedConfig {
        name: Some(name.to_owned()),
        filter_subject: reader.filter_subject,
        deliver_policy: reader.deliver_policy,
        ..Default::default()
    };
    let consumer = inner.stream_handle().create_consumer(config).await;
    inner.watchdog.observe(&consumer);
    let consumer = consumer.map_err(|error| match error.kind() {
        async_nats::jetstream::stream::ConsumerErrorKind::JetStream(api) => {
            failure::api(&what, &api)
        }
        _ => failure::unavailable(&what, error),
    })?;
    consumer
        .messages()
        .await
        .map_err(|error| failure::unavailable(&what, error))
}

impl Inner {
    /// Does the server answer that it has no consumer by this name? (No answer at all — the
    /// connection is down — is not "vanished": the connection's own watchdog handles that.)
    pub(crate) async fn consumer_vanished(&self, name: &str) -> bool {
        use async_nats::jetstream::context::ConsumerInfoErrorKind;
        match self.stream_handle().consumer_info(name).await {
            Ok(_) => false,
            Err(error) => match error.kind() {
                ConsumerInfoErrorKind::NotFound => true,
                ConsumerInfoErrorKind::JetStream(api) => {
                    api.error_code() == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND
                }
                _ => false,
            },
        }
    }
}
