//! Noticing a NATS server that stopped answering, and moving to another one of the cluster.
//!
//! async-nats notices a dead server only by PINGs going unanswered, and it restarts its ping
//! timer on every command it sends and every byte it receives; TCP notices a peer whose packets
//! are dropped (a network partition, a machine without power) only after `tcp_retries2`,
//! about 15 minutes. Until then every request on the connection times out, although the other
//! servers of the cluster answer. Two remedies, for every connection of the store and the bus:
//!
//! - [`PING_INTERVAL`]: a client that sends nothing for that long pings, and drops the
//!   connection (and reconnects to some server of the cluster) at the third unanswered tick,
//!   so an idle or waiting client notices a silent server within about three intervals;
//! - a [`Watchdog`] for busy clients, which never ping: it hears how each request ended and,
//!   after [`FAILURES`] requests in a row that got no answer at all ([`no_answer`]: a time-out,
//!   "no responders", a broken pipe), all within a window, forces a reconnect
//!   (`Client::force_reconnect`). async-nats then tries the servers it knows — the configured
//!   ones and those the cluster announced — in random order, skipping one that does not accept
//!   a connection within the connection time-out.
//!
//! A forced reconnect drops the requests in flight on the old connection: they fail as time-outs,
//! which the callers already handle (the store answers [`Unavailable`], to be retried with the
//! same command id). Why that cannot lose or double an append is told at
//! `JetStreamStore::connect`.
//!
//! [`Unavailable`]: diandan_store::StoreError::Unavailable

use std::error::Error;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::{context, stream};
use tracing::warn;

/// How long a connection may stay silent before the client pings: a silent server is dropped
/// after three unanswered pings, within about three intervals.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);

/// Requests in a row without an answer after which the watchdog reconnects.
pub const FAILURES: u32 = 3;

/// What the watchdog decides on, without a server: a streak of requests without an answer.
///
/// A streak counts requests that got no answer, with no answered request in between; it starts
/// over when its first failure is older than the window. When it reaches the threshold the
/// client should reconnect, and then, for a grace period, failures are not counted: requests
/// sent on the old connection are still timing out, and they say nothing about the new one.
#[derive(Debug, Clone)]
pub struct Streak {
    failures: u32,
    window: Duration,
    grace: Duration,
    count: u32,
    since: Option<Instant>,
    reconnected_at: Option<Instant>,
}

impl Streak {
    /// Reconnect after `failures` requests in a row without an answer within `window`; after a
    /// reconnect, ignore failures for `grace`.
    pub fn new(failures: u32, window: Duration, grace: Duration) -> Self {
        Self {
            failures: failures.max(1),
            window,
            grace,
            count: 0,
            since: None,
            reconnected_at: None,
        }
    }

    /// The policy for requests that time out after `request_timeout`. A caller retrying one
    /// request at a time fails once per time-out, so the window spans [`FAILURES`] of them;
    /// the grace lets the requests of the old connection time out.
    pub fn for_timeout(request_timeout: Duration) -> Self {
        Self::new(FAILURES, request_timeout * FAILURES, request_timeout * 2)
    }

    /// A request was answered (with success or with an error the server sent).
    pub fn answered(&mut self) {
        self.count = 0;
        self.since = None;
    }

    /// A request got no answer at `now`; true when the client should reconnect now.
    pub fn failed(&mut self, now: Instant) -> bool {
        if self
            .reconnected_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.grace)
        {
            return false;
        }
        match self.since {
            Some(since) if now.saturating_duration_since(since) <= self.window => self.count += 1,
            _ => {
                self.since = Some(now);
                self.count = 1;
            }
        }
        if self.count < self.failures {
            return false;
        }
        self.answered();
        self.reconnected_at = Some(now);
        true
    }
}

/// Watches one client's requests and forces a reconnect when its server stops answering.
/// Shared by everything using the client; cheap to call on every request.
#[derive(Debug)]
pub struct Watchdog {
    client: async_nats::Client,
    streak: Mutex<Streak>,
}

impl Watchdog {
    /// A watchdog for `client`, whose requests time out after `request_timeout`.
    pub fn new(client: async_nats::Client, request_timeout: Duration) -> Self {
        Self {
            client,
            streak: Mutex::new(Streak::for_timeout(request_timeout)),
        }
    }

    /// Notes how a request ended: an error that is [`no_answer`] counts against the server,
    /// anything else (a result, an error the server sent) shows it answers.
    pub fn observe<T, E: Error + 'static>(&self, outcome: &Result<T, E>) {
        match outcome {
            Ok(_) => self.answered(),
            Err(error) => self.failed(error),
        }
    }

    /// Notes a request that failed with `error`, as [`Watchdog::observe`] does.
    pub fn failed(&self, error: &(dyn Error + 'static)) {
        if no_answer(error) {
            self.unanswered();
        } else {
            self.answered();
        }
    }

    /// The server answered a request.
    pub fn answered(&self) {
        self.lock().answered();
    }

    /// A request got no answer. May start a reconnect in the background (so it needs a Tokio
    /// runtime); not while the client is reconnecting anyway.
    pub fn unanswered(&self) {
        if self.client.connection_state() != State::Connected {
            return;
        }
        if !self.lock().failed(Instant::now()) {
            return;
        }
        let client = self.client.clone();
        let server = client.server_info();
        warn!(
            server = %server.server_name,
            host = %server.host,
            port = server.port,
            failures = FAILURES,
            "NATS server does not answer; reconnecting to another server of the cluster"
        );
        tokio::spawn(async move {
            // Not awaited by the caller: the command queue of a stuck connection can be full.
            if let Err(error) = client.force_reconnect().await {
                warn!(%error, "could not ask the NATS client to reconnect");
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streak> {
        // The streak is plain data, valid even if a holder panicked.
        self.streak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether an async-nats error means the request got no answer at all: it timed out, nobody
/// was listening for it ("no responders": a server cut off from JetStream answers so), or the
/// connection broke. Errors the server sent (a JetStream API error, a wrong sequence) are
/// answers.
pub fn no_answer(error: &(dyn Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(error) = error.downcast_ref::<async_nats::RequestError>() {
            use async_nats::RequestErrorKind as Kind;
            return matches!(error.kind(), Kind::TimedOut | Kind::NoResponders);
        }
        if let Some(error) = error.downcast_ref::<context::RequestError>() {
            use context::RequestErrorKind as Kind;
            return matches!(error.kind(), Kind::TimedOut | Kind::NoResponders);
        }
        if let Some(error) = error.downcast_ref::<context::PublishError>() {
            // A publish nobody answers with "no responders" is reported as StreamNotFound.
            use context::PublishErrorKind as Kind;
            if matches!(
                error.kind(),
                Kind::TimedOut | Kind::BrokenPipe | Kind::StreamNotFound
            ) {
                return true;
            }
        }
        if let Some(error) = error.downcast_ref::<stream::ConsumerError>() {
            if error.kind() == stream::ConsumerErrorKind::TimedOut {
                return true;
            }
        }
        if let Some(error) = error.downcast_ref::<context::CreateStreamError>() {
            use context::CreateStreamErrorKind as Kind;
            if matches!(error.kind(), Kind::TimedOut | Kind::JetStreamUnavailable) {
                return true;
            }
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn streak() -> Streak {
        Streak::new(3, 15 * SECOND, 10 * SECOND)
    }

    #[test]
    fn three_failures_in_a_row_reconnect_once() {
        let start = Instant::now();
        let mut streak = streak();
        assert!(!streak.failed(start));
        assert!(!streak.failed(start + SECOND));
        assert!(streak.failed(start + 2 * SECOND));
        // The old connection's requests keep failing for a while: no second reconnect.
        for i in 3..12 {
            assert!(!streak.failed(start + i * SECOND), "{i} s");
        }
    }

    #[test]
    fn an_answer_breaks_the_streak() {
        let start = Instant::now();
        let mut streak = streak();
        assert!(!streak.failed(start));
        assert!(!streak.failed(start + SECOND));
        streak.answered();
        assert!(!streak.failed(start + 2 * SECOND));
        assert!(!streak.failed(start + 3 * SECOND));
        assert!(streak.failed(start + 4 * SECOND));
    }

    #[test]
    fn failures_further_apart_than_the_window_do_not_add_up() {
        let start = Instant::now();
        let mut streak = streak();
        for i in 0..10 {
            assert!(!streak.failed(start + i * 8 * SECOND), "failure {i}");
        }
        // A caller retrying one request at a time, each timing out after 5 s, does add up.
        let later = start + 200 * SECOND;
        assert!(!streak.failed(later));
        assert!(!streak.failed(later + 5 * SECOND));
        assert!(streak.failed(later + 10 * SECOND));
    }

    #[test]
    fn after_the_grace_a_dead_new_server_is_left_too() {
        let start = Instant::now();
        let mut streak = streak();
        for i in 0..3 {
            streak.failed(start + i * SECOND);
        }
        let after_grace = start + 2 * SECOND + 10 * SECOND;
        assert!(!streak.failed(after_grace));
        assert!(!streak.failed(after_grace + SECOND));
        assert!(streak.failed(after_grace + 2 * SECOND));
    }

    #[test]
    fn the_policy_follows_the_request_timeout() {
        let start = Instant::now();
        let mut streak = Streak::for_timeout(5 * SECOND);
        assert!(!streak.failed(start));
        assert!(!streak.failed(start + 5 * SECOND));
        assert!(streak.failed(start + 11 * SECOND));
        assert!(!streak.failed(start + 20 * SECOND), "within the grace");
    }

    #[test]
    fn only_requests_without_an_answer_count() {
        use async_nats::jetstream::context::{PublishError, PublishErrorKind, RequestError};
        let timed_out = RequestError::new(context::RequestErrorKind::TimedOut);
        assert!(no_answer(&timed_out));
        let no_responders = RequestError::new(context::RequestErrorKind::NoResponders);
        assert!(no_answer(&no_responders));
        // Wrapped, as a message read reports it.
        let wrapped = stream::LastRawMessageError::with_source(
            stream::LastRawMessageErrorKind::Other,
            RequestError::new(context::RequestErrorKind::TimedOut),
        );
        assert!(no_answer(&wrapped));
        assert!(no_answer(&PublishError::new(PublishErrorKind::TimedOut)));
        assert!(no_answer(&PublishError::new(
            PublishErrorKind::StreamNotFound
        )));
        assert!(!no_answer(&PublishError::new(
            PublishErrorKind::WrongLastSequence
        )));
        assert!(!no_answer(&stream::LastRawMessageError::new(
            stream::LastRawMessageErrorKind::NoMessageFound
        )));
        assert!(!no_answer(&RequestError::new(
            context::RequestErrorKind::Other
        )));
    }
}
