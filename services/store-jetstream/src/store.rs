//! [`JetStreamStore`]: the [`EventStore`] trait on one JetStream stream.
//!
//! Appends publish one commit with `Nats-Expected-Last-Subject-Sequence` and `Nats-Msg-Id`;
//! stream reads walk a subject's commits with the stream leader's message-get API (so a read
//! after an acknowledged append sees it, also on a cluster); the global log is read with
//! short-lived consumers. This module owns the JetStream stream's configuration and must not
//! know the commit format beyond [`Commit`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, context, stream};
use async_nats::HeaderValue;
use diandan_store::{
    AppendRequest, AppendResult, Direction, EventStore, ExpectedRevision, RecordedEvent, Result,
    StoreError, Subscription,
};
use futures::StreamExt;
use tracing::{debug, warn};

use crate::commit::{self, Commit, RECENT_COMMITS};
use crate::config::JetStreamConfig;
use crate::failure;
use crate::layout::{self, Subjects, EVENTS_PER_COMMIT};
use crate::watchdog::{Watchdog, PING_INTERVAL};

/// How many commits one consumer fetch asks for while reading the global log.
const LOG_FETCH_BATCH: usize = 256;

/// How long an ephemeral consumer outlives its reader if the reader vanishes.
const CONSUMER_INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);

/// Room left in a message for the headers of a commit (about 150 bytes plus the stream name).
const HEADER_ALLOWANCE: usize = 1024;

/// JetStream's error code for "duplicate message id is in process": on a clustered stream, a
/// copy of a commit arrived while the original was still being replicated.
const DUPLICATE_IN_PROCESS: u64 = 10158;

/// An event store on a NATS JetStream stream. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct JetStreamStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JetStreamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    client: async_nats::Client,
    /// Hears how every request ended; reconnects when the server stopped answering.
    pub(crate) watchdog: Watchdog,
    jetstream: jetstream::Context,
    stream: stream::Stream,
    subjects: Subjects,
    config: JetStreamConfig,
}

impl JetStreamStore {
    /// Connects to NATS and makes sure the JetStream stream exists: creates it when missing,
    /// and refuses one whose subjects or replicas differ from `config`, or that keeps messages
    /// in memory or acknowledges them before storing them (change the stream or the config;
    /// this crate never edits an existing stream).
    ///
    /// Fails with [`StoreError::InvalidRequest`] for a bad config, [`StoreError::Unavailable`]
    /// when NATS or JetStream cannot be reached (or a cluster has no quorum yet), and
    /// [`StoreError::Backend`] when the server refuses the stream, or when `replicas > 1` and
    /// the server is older than 2.11 (older servers let two appends win the same revision on a
    /// replicated stream).
    ///
    /// The connection pings every [`PING_INTERVAL`] when idle and is reconnected, to another
    /// server of the cluster, when its server stops answering (see [`crate::watchdog`]). Every request
    /// times out after `config.request_timeout`.
    ///
    /// # Why a reconnect cannot lose or double an append
    ///
    /// A reconnect (forced by the watchdog, after missed pings, or after a broken connection)
    /// drops the requests in flight on the old connection. An append caught in it returns
    /// [`StoreError::Unavailable`] without knowing whether JetStream stored it, and nothing
    /// acknowledged is taken back: an acknowledgement is sent only after the stream (for R3 a
    /// quorum) stored the commit, so a command acknowledged before the reconnect stays in the
    /// log. The dropped publish itself may still arrive late — bytes left in the old socket are
    /// delivered if the partition heals — or never. Either way the command is stored at most
    /// once, because every copy of a commit carries
    /// - `Nats-Msg-Id`, derived from stream and command id: JetStream drops a second copy
    ///   within the duplicate window and answers with the original's sequence;
    /// - `Nats-Expected-Last-Subject-Sequence`, the subject's last commit when it was read:
    ///   once anything (the retry, or another command) was appended after it, a late copy is
    ///   rejected as a wrong last sequence, however late.
    ///
    /// A retry with the same command id (what callers do with `Unavailable`) reads the subject
    /// first and answers the stored original as a duplicate when the first copy landed.
    pub async fn connect(config: JetStreamConfig) -> Result<Self> {
        config.validate()?;
        let servers: Vec<&str> = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let client = async_nats::ConnectOptions::new()
            .name("diandan-store-jetstream")
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout))
            .ping_interval(PING_INTERVAL)
            .connect(servers)
            .await
            .map_err(|error| match error.kind() {
                async_nats::ConnectErrorKind::ServerParse => {
                    StoreError::InvalidRequest(format!("NATS url {:?}: {error}", config.url))
                }
                _ => failure::unavailable(&format!("connecting to {}", config.url), error),
            })?;
        if config.replicas > 1 {
            check_replicated_server(&client.server_info().version)?;
        }
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(config.request_timeout);
        let subjects = Subjects::new(&config.subject_prefix);
        let stream = ensure_stream(&jetstream, &config, &subjects).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                watchdog: Watchdog::new(client.clone(), config.request_timeout),
                client,
                jetstream,
                stream,
                subjects,
                config,
            }),
        })
    }

    /// The configuration this store was connected with.
    pub fn config(&self) -> &JetStreamConfig {
        &self.inner.config
    }
}

/// The oldest nats-server a replicated store runs on. Older servers check
/// `Nats-Expected-Last-Subject-Sequence` only before proposing a write to the stream's Raft
/// group, so two concurrent appends expecting the same revision can both be accepted
/// (nats-server#4320, fixed in 2.9.21; we saw it on 2.9.10), and an expected sequence of 0
/// could let replicas diverge (nats-server#5794, fixed in August 2024). 2.11.0 has both fixes.
const MIN_REPLICATED_SERVER: (u64, u64, u64) = (2, 11, 0);

fn check_replicated_server(version: &str) -> Result<()> {
    let mut parts = version
        .split(['.', '-', '+'])
        .map(|part| part.parse::<u64>().unwrap_or(0));
    let found = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    if found >= MIN_REPLICATED_SERVER {
        return Ok(());
    }
    let (major, minor, patch) = MIN_REPLICATED_SERVER;
    Err(StoreError::Backend(format!(
        "nats-server {version} does not enforce expected revisions on replicated streams; \
         replicas > 1 needs {major}.{minor}.{patch} or later"
    )))
}

/// The stream's configuration as this crate creates it.
fn stream_config(config: &JetStreamConfig, subjects: &Subjects) -> stream::Config {
    stream::Config {
        name: config.stream_name.clone(),
        description: Some("diandan event store: one message per append".to_owned()),
        subjects: vec![subjects.all()],
        num_replicas: config.replicas,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: config.duplicate_window,
        // Facts are not deleted: no limits, and the API may not delete or purge messages.
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    }
}

async fn ensure_stream(
    jetstream: &jetstream::Context,
    config: &JetStreamConfig,
    subjects: &Subjects,
) -> Result<stream::Stream> {
    let what = format!("creating JetStream stream {}", config.stream_name);
    let stream = jetstream
        .get_or_create_stream(stream_config(config, subjects))
        .await
        .map_err(|error| match error.kind() {
            context::CreateStreamErrorKind::JetStream(api) => failure::api(&what, &api),
            _ => failure::unavailable(&what, error),
        })?;
    let found = &stream.cached_info().config;
    let mismatch = |why: String| {
        Err(StoreError::Backend(format!(
            "JetStream stream {} exists but {why}; change the stream or the store's config",
            config.stream_name
        )))
    };
    // Exactly ours: every message in the stream must be a commit, since positions, the head
    // and the log are read off stream sequences.
    if found.subjects != [subjects.all()] {
        return mismatch(format!(
            "holds subjects {:?}, not just {}",
            found.subjects,
            subjects.all()
        ));
    }
    if found.num_replicas.max(1) != config.replicas {
        return mismatch(format!(
            "has {} replicas, not {}",
            found.num_replicas, config.replicas
        ));
    }
    if found.storage != stream::StorageType::File {
        return mismatch("keeps messages in memory, not on disk".to_owned());
    }
    if found.persist_mode == Some(stream::PersistenceMode::Async) {
        return mismatch("acknowledges writes before storing them (persist_mode async)".to_owned());
    }
    if found.duplicate_window != config.duplicate_window {
        warn!(
            stream = %config.stream_name,
            found = ?found.duplicate_window,
            configured = ?config.duplicate_window,
            "the JetStream stream's duplicate window differs from the config; using the stream's"
        );
    }
    Ok(stream)
}

/// Why JetStream turned a commit down, when the store should look again and retry.
enum Rejected {
    /// The subject moved on since we read it.
    Moved,
    /// A copy of this very commit is still being replicated.
    CopyInFlight,
}

impl Inner {
    // ----- single commits -----------------------------------------------------------------

    async fn get(&self, request: stream::RawMessageBuilder, what: &str) -> Result<Option<Commit>> {
        let outcome = request.send().await;
        self.watchdog.observe(&outcome);
        match outcome {
            Ok(message) => decode_stored(&message).map(Some),
            Err(error) => match error.kind() {
                stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
                stream::LastRawMessageErrorKind::JetStream(api) => Err(failure::api(what, &api)),
                _ => Err(failure::unavailable(what, error)),
            },
        }
    }

    /// The commit at `sequence`, if there is one.
    async fn commit_at(&self, sequence: u64) -> Result<Option<Commit>> {
        let request = self.stream.raw_message_builder().sequence(sequence);
        self.get(request, &format!("reading message {sequence}"))
            .await
    }

    /// The last commit on `subject`: where its stream is now.
    async fn last_commit(&self, subject: &str) -> Result<Option<Commit>> {
        let request = self.stream.raw_message_builder().last_by_subject(subject);
        self.get(request, &format!("reading the last message of {subject}"))
            .await
    }

    /// The first commit on `subject` at or after `sequence`.
    async fn next_commit(&self, subject: &str, sequence: u64) -> Result<Option<Commit>> {
        let request = self
            .stream
            .raw_message_builder()
            .sequence(sequence)
            .next_by_subject(subject);
        self.get(
            request,
            &format!("reading {subject} from message {sequence}"),
        )
        .await
    }

    /// The commit before `commit` on its subject, which must exist when `commit` names it.
    async fn previous_commit(&self, commit: &Commit) -> Result<Option<Commit>> {
        let Some(sequence) = commit.previous() else {
            return Ok(None);
        };
        match self.commit_at(sequence).await? {
            Some(previous) if previous.stream == commit.stream => Ok(Some(previous)),
            _ => Err(failure::corrupt(
                commit.sequence,
                format!("its previous commit {sequence} is missing"),
            )),
        }
    }

    /// The commits of `subject` from the one holding `revision` up to some later one,
    /// ascending; `last` is the subject's last commit and must hold `revision` or a later one.
    ///
    /// Walks from whichever end of the stream is nearer by revision: backwards from `last`
    /// along each commit's link to its predecessor (returning every commit on the way, up to
    /// `last`), or forwards from the subject's first commit (returning just the one found).
    async fn seek(&self, subject: &str, last: Commit, revision: u64) -> Result<Vec<Commit>> {
        if revision >= last.first_revision {
            return Ok(vec![last]);
        }
        if revision >= last.last_revision() / 2 {
            let mut walked = vec![last];
            while walked[walked.len() - 1].first_revision > revision {
                let earlier = &walked[walked.len() - 1];
                match self.previous_commit(earlier).await? {
                    Some(previous) => walked.push(previous),
                    None => {
                        return Err(failure::corrupt(
                            earlier.sequence,
                            "its stream starts after revision 0",
                        ))
                    }
                }
            }
            walked.reverse();
            return Ok(walked);
        }
        let mut sequence = 1;
        loop {
            let Some(commit) = self.next_commit(subject, sequence).await? else {
                return Err(StoreError::Backend(format!(
                    "{subject} ended before revision {revision} though its last commit holds it"
                )));
            };
            if commit.last_revision() >= revision {
                return Ok(vec![commit]);
            }
            sequence = commit.sequence + 1;
        }
    }

    // ----- appends ------------------------------------------------------------------------

    async fn append(&self, request: AppendRequest) -> Result<AppendResult> {
        let subject = self.validate(&request)?;
        let key = layout::command_key(&request.stream, &request.command_id);
        let deadline = Instant::now() + self.config.request_timeout;
        let mut attempt = 0u32;
        loop {
            let last = self.last_commit(&subject).await?;
            if let Some(last) = &last {
                if let Some(original) = self.find_command(&subject, &request, key, last).await? {
                    return Ok(original.result(true));
                }
            }
            let actual = last.as_ref().map(Commit::last_revision);
            let conflict = match request.expected {
                ExpectedRevision::Any => false,
                ExpectedRevision::NoStream => actual.is_some(),
                ExpectedRevision::Exact(revision) => actual != Some(revision),
            };
            if conflict {
                return Err(StoreError::WrongExpectedRevision {
                    stream: request.stream,
                    expected: request.expected,
                    actual,
                });
            }

            let first_revision = actual.map_or(0, |revision| revision + 1);
            let recent = last
                .as_ref()
                .map(Commit::recent_for_next)
                .unwrap_or_default();
            let body = commit::encode(
                &request.stream,
                &request.command_id,
                first_revision,
                &recent,
                last.as_ref()
                    .map_or(diandan_store::chain::GENESIS, Commit::last_hash),
                &request.events,
            );
            // The server counts headers against `max_payload` too, and answers a message over
            // the limit by closing the connection, so stay clear of it.
            let max_payload = self.client.server_info().max_payload;
            let max_body = max_payload.saturating_sub(HEADER_ALLOWANCE);
            if max_payload > 0 && body.len() > max_body {
                return Err(StoreError::InvalidRequest(format!(
                    "the append is {} bytes; this server takes at most {max_body}",
                    body.len()
                )));
            }
            let expected_sequence = last.as_ref().map_or(0, |commit| commit.sequence);
            match self.publish(&subject, key, expected_sequence, body).await? {
                Ok(ack) if !ack.duplicate => {
                    let count = request.events.len();
                    return Ok(AppendResult {
                        first_revision,
                        last_revision: first_revision + count as u64 - 1,
                        last_position: layout::position(ack.sequence, count - 1),
                        duplicate: false,
                    });
                }
                Ok(ack) => return self.original_of(&request, ack.sequence).await,
                Err(rejected) => {
                    // Someone wrote in between (or, on a cluster, the subject's last write is
                    // not applied yet): look again. Conflicts and retries are decided above.
                    attempt += 1;
                    if Instant::now() >= deadline {
                        return Err(StoreError::Unavailable(format!(
                            "{} did not settle after {attempt} attempts",
                            request.stream
                        )));
                    }
                    if attempt > 1 || matches!(rejected, Rejected::CopyInFlight) {
                        tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(20)))).await;
                    }
                    debug!(stream = %request.stream, attempt, "append raced, reading the stream again");
                }
            }
        }
    }

    /// The subject to append to, once the request is known to be well formed.
    fn validate(&self, request: &AppendRequest) -> Result<String> {
        let invalid = |why: &str| Err(StoreError::InvalidRequest(why.to_owned()));
        if request.stream.is_empty() {
            return invalid("the stream name is empty");
        }
        if request.command_id.is_empty() {
            return invalid("the command id is empty");
        }
        if request.events.is_empty() {
            return invalid("an append needs at least one event");
        }
        if request.events.len() as u64 > EVENTS_PER_COMMIT {
            return invalid("an append may hold at most 65536 events");
        }
        match self.subjects.stream(&request.stream) {
            Some(subject) => Ok(subject),
            None => invalid("the stream name is too long"),
        }
    }

    /// The earlier commit of this request's command, if the stream holds one.
    ///
    /// Looks at the last commit and the [`RECENT_COMMITS`] it remembers, which costs nothing
    /// beyond reading the last commit unless a remembered key matches. Past those, it looks
    /// only where the command would have landed had it carried the same expectation as now
    /// (the first commit for `NoStream`, the commit starting at `n + 1` for `Exact(n)`): a
    /// retry of an `Any` append, or one that changed its expectation, is recognised up to
    /// [`RECENT_COMMITS`] commits later, or within JetStream's duplicate window.
    async fn find_command(
        &self,
        subject: &str,
        request: &AppendRequest,
        key: uuid::Uuid,
        last: &Commit,
    ) -> Result<Option<Commit>> {
        if last.is_command(&request.command_id) {
            return Ok(Some(last.clone()));
        }
        let short = layout::short_key(key);
        for remembered in last.recent.iter().filter(|r| r.key == short) {
            if let Some(commit) = self.commit_at(remembered.sequence).await? {
                if commit.stream == request.stream && commit.is_command(&request.command_id) {
                    return Ok(Some(commit));
                }
            }
        }
        if last.recent.len() < RECENT_COMMITS {
            // The last commit remembers the stream's whole history: nothing more to look at.
            return Ok(None);
        }
        let landed_at = match request.expected {
            ExpectedRevision::NoStream => 0,
            ExpectedRevision::Exact(revision) if revision < last.last_revision() => revision + 1,
            _ => return Ok(None),
        };
        let found = self.seek(subject, last.clone(), landed_at).await?;
        let candidate = &found[0];
        Ok(
            (candidate.first_revision == landed_at && candidate.is_command(&request.command_id))
                .then(|| candidate.clone()),
        )
    }

    /// What a resent copy of an already stored commit returns: the stored commit's result.
    async fn original_of(&self, request: &AppendRequest, sequence: u64) -> Result<AppendResult> {
        match self.commit_at(sequence).await? {
            Some(original)
                if original.stream == request.stream
                    && original.is_command(&request.command_id) =>
            {
                Ok(original.result(true))
            }
            _ => Err(StoreError::Backend(format!(
                "JetStream took command {} on {} for a duplicate of message {sequence}, \
                 which is another command",
                request.command_id, request.stream
            ))),
        }
    }

    /// Publishes one commit; `Ok(Err(_))` when JetStream turned it down and the append should
    /// look at the stream again.
    async fn publish(
        &self,
        subject: &str,
        key: uuid::Uuid,
        expected_sequence: u64,
        body: bytes::Bytes,
    ) -> Result<std::result::Result<jetstream::publish::PublishAck, Rejected>> {
        let message = jetstream::message::PublishMessage::build()
            .payload(body)
            .message_id(key.to_string())
            .expected_stream(&self.config.stream_name)
            .header(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                HeaderValue::from(expected_sequence),
            );
        let what = format!("appending to {subject}");
        let outcome = match self
            .jetstream
            .send_publish(subject.to_owned(), message)
            .await
        {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        self.watchdog.observe(&outcome);
        let error = match outcome {
            Ok(ack) => return Ok(Ok(ack)),
            Err(error) => error,
        };
        use context::PublishErrorKind as Kind;
        match error.kind() {
            Kind::WrongLastSequence => return Ok(Err(Rejected::Moved)),
            Kind::TimedOut | Kind::BrokenPipe | Kind::StreamNotFound | Kind::MaxAckPending => {
                return Err(failure::unavailable(&what, error))
            }
            Kind::WrongLastMessageId | Kind::Other => {}
        }
        match failure::api_error_of(&error) {
            Some(api)
                if api.error_code().0 == DUPLICATE_IN_PROCESS
                    || api
                        .to_string()
                        .contains("duplicate message id is in process") =>
            {
                Ok(Err(Rejected::CopyInFlight))
            }
            // Newer servers reject a write whose subject has another write in flight with a
            // variant of "wrong last sequence" that names no sequence.
            Some(api) if api.to_string().contains("wrong last sequence") => {
                Ok(Err(Rejected::Moved))
            }
            Some(api) => Err(failure::api(&what, api)),
            None => Err(failure::unavailable(&what, error)),
        }
    }

    // ----- stream reads -------------------------------------------------------------------

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let Some(subject) = self.subjects.stream(stream) else {
            return Ok(Vec::new());
        };
        let Some(last) = self.last_commit(&subject).await? else {
            return Ok(Vec::new());
        };
        match direction {
            Direction::Forward => self.read_forward(&subject, last, from, max).await,
            Direction::Backward => self.read_backward(&subject, last, from, max).await,
        }
    }

    async fn read_forward(
        &self,
        subject: &str,
        last: Commit,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        if from > last.last_revision() {
            return Ok(Vec::new());
        }
        let end = last.sequence;
        let mut commits = VecDeque::from(self.seek(subject, last, from).await?);
        let mut events = Vec::new();
        let mut read_up_to = 0;
        loop {
            let commit = match commits.pop_front() {
                Some(commit) => commit,
                None if read_up_to >= end => break,
                None => match self.next_commit(subject, read_up_to + 1).await? {
                    Some(commit) => commit,
                    None => break,
                },
            };
            read_up_to = commit.sequence;
            for event in commit.into_events().filter(|e| e.revision >= from) {
                events.push(event);
                if events.len() == max {
                    return Ok(events);
                }
            }
        }
        Ok(events)
    }

    async fn read_backward(
        &self,
        subject: &str,
        last: Commit,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let from = from.min(last.last_revision());
        let mut next = Some(self.seek(subject, last, from).await?.swap_remove(0));
        let mut events = Vec::new();
        while let Some(commit) = next.take() {
            next = self.previous_commit(&commit).await?;
            for event in commit.into_events().rev().filter(|e| e.revision <= from) {
                events.push(event);
                if events.len() == max {
                    return Ok(events);
                }
            }
        }
        Ok(events)
    }

    // ----- the global log -----------------------------------------------------------------

    /// A consumer of the global log from `sequence` on, delivering without acknowledgements.
    pub(crate) fn log_consumer(&self, sequence: u64) -> consumer::pull::Config {
        consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: sequence,
            },
            filter_subject: self.subjects.all(),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        }
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // A consumer on a replicated stream can be created before its leader answers pulls
        // ("503 no responders" for a few milliseconds), and a failover can cut a read short:
        // try again with a new consumer until the request timeout is used up.
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            match self.read_log_once(from, max).await {
                Err(StoreError::Unavailable(why)) if Instant::now() < deadline => {
                    debug!(from, %why, "reading the log failed, trying again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// One attempt at [`Inner::read_all`] on one ephemeral consumer. Returns what it read when
    /// the consumer fails part way (a correct prefix of the log), but never an empty page
    /// while the log holds more: that would read as the end of the log.
    async fn read_log_once(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        let (sequence, _) = layout::locate(from);
        let what = format!("reading the log from message {sequence}");
        let consumer = self
            .stream
            .create_consumer(self.log_consumer(sequence))
            .await;
        self.watchdog.observe(&consumer);
        let consumer = consumer.map_err(|error| match error.kind() {
            stream::ConsumerErrorKind::JetStream(api) => failure::api(&what, &api),
            _ => failure::unavailable(&what, error),
        })?;
        let name = consumer.cached_info().name.clone();
        let mut pending = consumer.cached_info().num_pending;
        let mut delivered = 0;
        let mut events = Vec::new();
        let outcome = async {
            while pending > 0 && events.len() < max {
                let wanted = (pending as usize)
                    .min(max - events.len())
                    .min(LOG_FETCH_BATCH);
                let mut batch = consumer
                    .fetch()
                    .max_messages(wanted)
                    .messages()
                    .await
                    .map_err(|error| failure::unavailable(&what, error))?;
                let mut fetched = 0;
                loop {
                    let message =
                        match tokio::time::timeout(self.config.request_timeout, batch.next()).await
                        {
                            Ok(Some(message)) => {
                                message.map_err(|error| failure::unavailable(&what, error))?
                            }
                            Ok(None) => break,
                            Err(_) => {
                                self.watchdog.unanswered();
                                return Err(failure::unavailable(&what, "no answer"));
                            }
                        };
                    let info = message.info().map_err(|error| {
                        StoreError::Backend(format!("a delivered message has no metadata: {error}"))
                    })?;
                    // Without acknowledgements, a message the server sent and we did not get
                    // is gone from this consumer; stop at a gap rather than skip events.
                    if info.consumer_sequence != delivered + 1 {
                        return Err(failure::unavailable(&what, "the consumer skipped messages"));
                    }
                    delivered = info.consumer_sequence;
                    fetched += 1;
                    // Counted down from the consumer's creation rather than taken from the
                    // message: a read of the whole log ends even while appends go on.
                    pending = pending.saturating_sub(1);
                    let commit = decode_delivered(&message)?;
                    events.extend(
                        commit
                            .into_events()
                            .filter(|event| event.position >= from)
                            .take(max - events.len()),
                    );
                }
                if fetched == 0 {
                    return Err(failure::unavailable(
                        &what,
                        "the consumer delivered nothing",
                    ));
                }
            }
            Ok(())
        }
        .await;
        // Deleting is tidiness, not correctness (the server drops an idle consumer after
        // CONSUMER_INACTIVE_THRESHOLD), so the reader does not wait for it: right after a
        // failover, consumer deletes can wait seconds for a new meta leader.
        let stream = self.stream.clone();
        tokio::spawn(async move {
            if let Err(error) = stream.delete_consumer(&name).await {
                debug!(consumer = %name, %error, "could not delete a log reader; it expires by itself");
            }
        });
        match outcome {
            Ok(()) if events.is_empty() => {
                self.confirm_end(sequence + delivered, &what).await?;
                Ok(events)
            }
            Ok(()) => Ok(events),
            Err(StoreError::Unavailable(_)) if !events.is_empty() => Ok(events),
            Err(error) => Err(error),
        }
    }

    /// Checks with the stream leader that the log holds no message from `next` on, before an
    /// empty page says so.
    ///
    /// An ephemeral consumer lives on one replica of the stream and counts its pending
    /// messages in that replica's copy. A replica that rejoins after a partition copies what
    /// it missed for seconds while the leader already lists it as current; a consumer placed
    /// there sees a shorter log. A short page is still a correct prefix of the log, but an
    /// empty one would read as its end, so the leader is asked; when it holds more, the read
    /// fails as unavailable and [`Inner::read_all`] tries again with a new consumer.
    async fn confirm_end(&self, next: u64, what: &str) -> Result<()> {
        let info = self.stream.get_info().await;
        self.watchdog.observe(&info);
        let last = info
            .map_err(|error| failure::unavailable(what, error))?
            .state
            .last_sequence;
        if last >= next {
            return Err(failure::unavailable(
                what,
                format!(
                    "the replica serving the read ends before message {next}, \
                     the stream's leader holds up to {last}"
                ),
            ));
        }
        Ok(())
    }

    async fn head_position(&self) -> Result<u64> {
        let info = self.stream.get_info().await;
        self.watchdog.observe(&info);
        let info =
            info.map_err(|error| failure::unavailable("reading the stream's state", error))?;
        let last = info.state.last_sequence;
        if last == 0 {
            return Ok(0);
        }
        match self.commit_at(last).await? {
            Some(commit) => Ok(commit.last_position()),
            None => Err(StoreError::Backend(format!(
                "the stream's last message {last} is gone"
            ))),
        }
    }

    pub(crate) fn stream_handle(&self) -> &stream::Stream {
        &self.stream
    }
}

/// The commit in a message read by sequence or subject.
fn decode_stored(message: &jetstream::message::StreamMessage) -> Result<Commit> {
    let sequence = message.sequence;
    let recorded_at_ms = (message.time.unix_timestamp_nanos() / 1_000_000) as i64;
    Commit::decode(sequence, recorded_at_ms, &message.payload)
        .map_err(|why| failure::corrupt(sequence, why))
}

/// The commit in a message delivered by a consumer.
pub(crate) fn decode_delivered(message: &jetstream::Message) -> Result<Commit> {
    let info = message.info().map_err(|error| {
        StoreError::Backend(format!("a delivered message has no metadata: {error}"))
    })?;
    let recorded_at_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
    let sequence = info.stream_sequence;
    Commit::decode(sequence, recorded_at_ms, &message.payload)
        .map_err(|why| failure::corrupt(sequence, why))
}

#[async_trait::async_trait]
impl EventStore for JetStreamStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult> {
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.inner.read_stream(stream, from, direction, max).await
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        self.inner.read_all(from, max).await
    }

    async fn head_position(&self) -> Result<u64> {
        self.inner.head_position().await
    }

    fn subscribe_all(&self, from: u64) -> Subscription {
        crate::subscription::subscribe(Arc::clone(&self.inner), from)
    }
}
