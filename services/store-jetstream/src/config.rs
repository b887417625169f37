//! How to reach JetStream and which stream to keep the events in.

use std::time::Duration;

use diandan_store::StoreError;

use crate::layout;

/// Where the store keeps its events. [`JetStreamConfig::new`] fills in the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// The NATS server(s) to connect to: `nats://host:4222`, several separated by commas.
    /// Servers of a cluster announce each other, so one reachable seed is enough to start.
    pub url: String,
    /// The JetStream stream holding every commit. Default [`DEFAULT_STREAM_NAME`].
    pub stream_name: String,
    /// Copies JetStream keeps of each commit: 1 (one server) or 3 (a cluster; an append is
    /// acknowledged once two of the three hold it). Default 1.
    pub replicas: usize,
    /// The subject token after `diandan.store.`, so several stores can share one NATS account
    /// (each with its own stream name). One token of `[A-Za-z0-9_-]`. Default
    /// [`DEFAULT_SUBJECT_PREFIX`].
    pub subject_prefix: String,
    /// How long JetStream itself remembers a commit's message id to drop a resent copy. Retries
    /// older than this are still recognised by the store (see the crate docs), just at the
    /// cost of a read. Default two minutes.
    pub duplicate_window: Duration,
    /// How long to wait for any one answer from JetStream before calling it unavailable.
    /// Default five seconds.
    pub request_timeout: Duration,
}

/// The default JetStream stream name.
pub const DEFAULT_STREAM_NAME: &str = "DIANDAN_EVENTS";

/// The default subject prefix: events live under `diandan.store.events.>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "events";

impl JetStreamConfig {
    /// The defaults, pointed at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream_name: DEFAULT_STREAM_NAME.to_owned(),
            replicas: 1,
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            duplicate_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Checks what JetStream would otherwise reject later with a less helpful message.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let invalid = |why: String| Err(StoreError::InvalidRequest(why));
        if self.url.trim().is_empty() {
            return invalid("the NATS url is empty".into());
        }
        let name_ok = !self.stream_name.is_empty()
            && self
                .stream_name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>' | b'/' | b'\\'));
        if !name_ok {
            return invalid(format!(
                "stream name {:?} must be printable ASCII without `.`, `*`, `>`, `/`, `\\`",
                self.stream_name
            ));
        }
        if !matches!(self.replicas, 1 | 3 | 5) {
            return invalid(format!(
                "replicas must be 1 or 3 (or 5), not {}",
                self.replicas
            ));
        }
        if !layout::valid_prefix(&self.subject_prefix) {
            return invalid(format!(
                "subject prefix {:?} must be one token of [A-Za-z0-9_-]",
                self.subject_prefix
            ));
        }
        if self.duplicate_window.is_zero() || self.request_timeout.is_zero() {
            return invalid("the duplicate window and request timeout must be positive".into());
        }
        Ok(())
    }
}

impl Default for JetStreamConfig {
    /// The defaults, pointed at a server on this machine.
    fn default() -> Self {
        Self::new("nats://127.0.0.1:4222")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(JetStreamConfig::default().validate().is_ok());
        let bad = [
            JetStreamConfig {
                stream_name: "A.B".into(),
                ..Default::default()
            },
            JetStreamConfig {
                replicas: 2,
                ..Default::default()
            },
            JetStreamConfig {
                subject_prefix: "a.b".into(),
                ..Default::default()
            },
            JetStreamConfig {
                url: " ".into(),
                ..Default::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(StoreError::InvalidRequest(_))),
                "{config:?}"
            );
        }
    }
}
