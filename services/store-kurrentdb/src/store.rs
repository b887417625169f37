//! The store itself: appends, stream reads, the global log and the origin of its positions.
//!
//! It owns every call to the KurrentDB client except the live part of subscriptions
//! (`subscription`). How stored events are laid out is `envelope`'s business, how log positions
//! map to store positions `position`'s, and how client errors map to store errors `failure`'s.

use std::sync::Arc;

use bytes::Bytes;
use diandan_store::chain::{self, Hash};
use diandan_store::{
    AppendRequest, AppendResult, Direction, EventStore, ExpectedRevision, NewEvent, RecordedEvent,
    Result, StoreError, Subscription,
};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ReadAllOptions, ReadStreamOptions,
    StreamPosition, StreamState, SubscriptionFilter,
};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::envelope::{exact_json, stored_event_id, Envelope};
use crate::failure::{actual_revision, store_error, unreadable};
use crate::position::{LogStart, Origin};

/// The stream holding the one event that pins the origin of the log's positions (see the
/// crate docs). Appends to it are refused.
pub const ORIGIN_STREAM: &str = "diandan-log-origin";

/// The type of the event in [`ORIGIN_STREAM`]. It starts with `$`, so it is a system event to
/// KurrentDB's filters: neither this store's global log nor other readers of `$all` that
/// exclude system events see it.
pub const ORIGIN_EVENT_TYPE: &str = "$diandan-log-origin";

/// How many of a stream's latest events an append reads first, to answer a retry without
/// writing.
pub const RECENT_WINDOW: usize = 64;

/// Events per read when a stream is searched to its start for a command.
const SEARCH_PAGE: usize = 256;

/// How often an `Any` append re-reads a stream that keeps moving before it gives up.
const MAX_ANY_ATTEMPTS: usize = 32;

/// The largest revision or log position the server can name (it keeps them as signed 64-bit).
const MAX_SERVER_NUMBER: u64 = i64::MAX as u64;

/// An [`EventStore`] on KurrentDB. Cheap to clone: clones share one client (one HTTP/2
/// connection to the node it picked).
#[derive(Clone)]
pub struct KurrentDbStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// Found on first need, then fixed for the life of the database (see the crate docs).
    origin: OnceCell<Origin>,
}

impl std::fmt::Debug for KurrentDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KurrentDbStore")
            .field("origin", &self.inner.origin.get())
            .finish_non_exhaustive()
    }
}

/// What one attempt to write an append came to.
enum Written {
    /// The server stored the events (or had stored them before: see `duplicate`).
    Stored(AppendResult),
    /// The stream was not at the expected revision; it is at this one (`None`: no stream).
    Conflict(Option<u64>),
}

/// What a backward search of a stream for a command found.
struct Search {
    /// The stream's last revision, if the search read it.
    newest: Option<u64>,
    /// The hash-chain link of that last event ([`chain::GENESIS`] when there is none): the
    /// next append's events chain from it.
    newest_hash: Hash,
    /// The command's append, if the search came across it.
    found: Option<AppendResult>,
    /// Where a search to the start would go on, if this one stopped before it.
    rest: Option<u64>,
}

/// How far a backward search of a stream reads.
#[derive(Debug, Clone, Copy)]
struct Reach {
    /// Where it starts.
    from: StreamPosition<u64>,
    /// It stops before events at or below this revision.
    floor: Option<u64>,
    /// Events per read.
    page: usize,
    /// At most this many reads (`None`: until the start of the stream).
    pages: Option<usize>,
}

impl Reach {
    /// The stream's last [`RECENT_WINDOW`] events.
    fn recent() -> Self {
        Self {
            from: StreamPosition::End,
            floor: None,
            page: RECENT_WINDOW,
            pages: Some(1),
        }
    }

    /// From revision `from` (the end when `None`) down to the stream's start.
    fn down_from(from: Option<u64>) -> Self {
        Self {
            from: from.map_or(StreamPosition::End, StreamPosition::Position),
            floor: None,
            page: SEARCH_PAGE,
            pages: None,
        }
    }

    /// The events after revision `floor` (all of them when `None`).
    fn above(floor: Option<u64>) -> Self {
        Self {
            floor,
            ..Self::down_from(None)
        }
    }
}

impl KurrentDbStore {
    /// Connects to the KurrentDB node or cluster a connection string names, e.g.
    /// `kurrentdb://127.0.0.1:2113?tls=false` or
    /// `kurrentdb://admin:changeit@node1:2113,node2:2113,node3:2113?nodePreference=leader`,
    /// and reads the end of `$all` once, so an unreachable server fails here rather than at
    /// the first command. Call it inside a tokio runtime.
    pub async fn connect(connection_string: &str) -> Result<Self> {
        let settings: ClientSettings =
            connection_string
                .parse()
                .map_err(|e: kurrentdb::ClientSettingsParseError| {
                    // Not the string itself: it may hold a password.
                    StoreError::InvalidRequest(format!(
                        "bad KurrentDB connection string: {}",
                        e.message()
                    ))
                })?;
        let client = Client::new(settings)
            .map_err(|e| StoreError::Unavailable(format!("creating the KurrentDB client: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                client,
                origin: OnceCell::new(),
            }),
        };
        store.last_visible_event().await?;
        Ok(store)
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The origin of positions, found (and pinned) on first need; `None` while the log shows
    /// no event at all.
    pub(crate) async fn origin(&self) -> Result<Option<Origin>> {
        if let Some(origin) = self.inner.origin.get() {
            return Ok(Some(*origin));
        }
        let origin = match self.pinned_origin().await? {
            Some(origin) => origin,
            None => {
                let Some(first) = self.first_visible_event().await? else {
                    return Ok(None);
                };
                self.pin_origin(log_position(&first)?).await?
            }
        };
        let _ = self.inner.origin.set(origin);
        Ok(Some(origin))
    }

    /// The origin, when the caller already holds an event (so there must be one).
    pub(crate) async fn require_origin(&self) -> Result<Origin> {
        self.origin().await?.ok_or_else(|| {
            StoreError::Backend("KurrentDB returned an event but shows none in $all".into())
        })
    }

    async fn pinned_origin(&self) -> Result<Option<Origin>> {
        let events = self
            .read_stream_raw(ORIGIN_STREAM, StreamPosition::Start, Direction::Forward, 1)
            .await?;
        let Some(event) = events.first() else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct Pin {
            log_position: u64,
        }
        let pin: Pin = serde_json::from_slice(&event.data)
            .map_err(|e| unreadable(ORIGIN_STREAM, event.revision, e))?;
        Ok(Some(Origin(pin.log_position)))
    }

    /// Records `first` as the origin, unless another client was first: then theirs holds.
    async fn pin_origin(&self, first: u64) -> Result<Origin> {
        let pin = EventData::json(
            ORIGIN_EVENT_TYPE,
            &serde_json::json!({ "log_position": first }),
        )
        .map_err(|e| StoreError::Backend(format!("encoding the log origin: {e}")))?
        .id(stored_event_id(ORIGIN_STREAM, "origin", 0));
        let options = AppendToStreamOptions::default()
            .stream_state(StreamState::NoStream)
            .requires_leader(true);
        match self
            .client()
            .append_to_stream(ORIGIN_STREAM, &options, pin)
            .await
        {
            Ok(_) => Ok(Origin(first)),
            Err(kurrentdb::Error::WrongExpectedVersion { .. }) => {
                self.pinned_origin().await?.ok_or_else(|| {
                    StoreError::Backend(format!("{ORIGIN_STREAM} exists but holds no event"))
                })
            }
            Err(error) => {
                // Positions stay right as long as the first event is not scavenged away.
                tracing::warn!(%error, "could not pin the log origin; using the first event's");
                Ok(Origin(first))
            }
        }
    }

    /// One read of a stream; a stream that does not exist (or was deleted) reads as empty.
    pub(crate) async fn read_stream_raw(
        &self,
        stream: &str,
        from: StreamPosition<u64>,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<kurrentdb::RecordedEvent>> {
        // `position` sets the direction for Start and End, so the direction goes after it.
        let options = ReadStreamOptions::default().position(from);
        let options = match direction {
            Direction::Forward => options.forwards(),
            Direction::Backward => options.backwards(),
        }
        .max_count(max)
        .requires_leader(true);
        let what = || format!("reading {stream}");
        let mut read = match self.client().read_stream(stream, &options).await {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound | kurrentdb::Error::ResourceDeleted) => {
                return Ok(Vec::new())
            }
            Err(error) => return Err(store_error(&what(), &error)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => events.extend(original_event(resolved)),
                Ok(None) => return Ok(events),
                Err(kurrentdb::Error::ResourceNotFound | kurrentdb::Error::ResourceDeleted) => {
                    return Ok(Vec::new())
                }
                Err(error) => return Err(store_error(&what(), &error)),
            }
        }
    }

    /// One forward read of the events of `$all` the store shows.
    pub(crate) async fn read_all_raw(
        &self,
        from: StreamPosition<kurrentdb::Position>,
        max: usize,
    ) -> Result<Vec<kurrentdb::RecordedEvent>> {
        let options = ReadAllOptions::default()
            .position(from)
            .forwards()
            .filter(visible_events())
            .max_count(max)
            .requires_leader(true);
        self.collect_all(&options).await
    }

    async fn collect_all(&self, options: &ReadAllOptions) -> Result<Vec<kurrentdb::RecordedEvent>> {
        let mut read = self
            .client()
            .read_all(options)
            .await
            .map_err(|e| store_error("reading $all", &e))?;
        let mut events = Vec::new();
        while let Some(resolved) = read
            .next()
            .await
            .map_err(|e| store_error("reading $all", &e))?
        {
            events.extend(original_event(resolved));
        }
        Ok(events)
    }

    async fn first_visible_event(&self) -> Result<Option<kurrentdb::RecordedEvent>> {
        Ok(self
            .read_all_raw(StreamPosition::Start, 1)
            .await?
            .into_iter()
            .next())
    }

    pub(crate) async fn last_visible_event(&self) -> Result<Option<kurrentdb::RecordedEvent>> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .filter(visible_events())
            .max_count(1)
            .requires_leader(true);
        Ok(self.collect_all(&options).await?.into_iter().next())
    }

    async fn read_one(
        &self,
        stream: &str,
        revision: u64,
    ) -> Result<Option<kurrentdb::RecordedEvent>> {
        let events = self
            .read_stream_raw(
                stream,
                StreamPosition::Position(revision),
                Direction::Forward,
                1,
            )
            .await?;
        Ok(events.into_iter().find(|e| e.revision == revision))
    }

    /// The result of the append `event` belongs to; `duplicate` unless `attempt` wrote it.
    async fn append_of(
        &self,
        stream: &str,
        event: &kurrentdb::RecordedEvent,
        envelope: &Envelope,
        attempt: Uuid,
    ) -> Result<AppendResult> {
        let (first, last) = envelope
            .append_revisions(event.revision)
            .ok_or_else(|| unreadable(stream, event.revision, "its index is past its revision"))?;
        let last_log = if event.revision == last {
            log_position(event)?
        } else {
            let last_event = self.read_one(stream, last).await?.ok_or_else(|| {
                unreadable(
                    stream,
                    event.revision,
                    format!("event {last} of its append is gone"),
                )
            })?;
            log_position(&last_event)?
        };
        let origin = self.require_origin().await?;
        Ok(AppendResult {
            first_revision: first,
            last_revision: last,
            last_position: position_of(origin, stream, last, last_log)?,
            duplicate: envelope.attempt != attempt,
        })
    }

    /// Reads `stream` backwards, page by page, as far as `reach` says, for an append of
    /// `command_id`.
    async fn search(
        &self,
        stream: &str,
        command_id: &str,
        attempt: Uuid,
        reach: Reach,
    ) -> Result<Search> {
        let Reach {
            from,
            floor,
            page,
            pages,
        } = reach;
        let mut search = Search {
            newest: None,
            newest_hash: chain::GENESIS,
            found: None,
            rest: None,
        };
        let mut from = Some(from);
        let mut read_pages = 0;
        while let Some(position) = from.take() {
            if pages.is_some_and(|pages| read_pages >= pages) {
                search.rest = match position {
                    StreamPosition::Position(revision) => Some(revision),
                    _ => None,
                };
                break;
            }
            read_pages += 1;
            let events = self
                .read_stream_raw(stream, position, Direction::Backward, page)
                .await?;
            if search.newest.is_none() {
                if let Some(newest) = events.first() {
                    search.newest = Some(newest.revision);
                    search.newest_hash = Envelope::decode(&newest.custom_metadata)
                        .map_or([0; 32], |envelope| envelope.chain_hash());
                }
            }
            for event in &events {
                if floor.is_some_and(|floor| event.revision <= floor) {
                    return Ok(search);
                }
                let Some(envelope) = Envelope::decode(&event.custom_metadata) else {
                    continue;
                };
                if envelope.command_id == command_id {
                    search.found = Some(self.append_of(stream, event, &envelope, attempt).await?);
                    return Ok(search);
                }
            }
            from = match events.last() {
                Some(last) if events.len() == page && last.revision > 0 => {
                    Some(StreamPosition::Position(last.revision - 1))
                }
                _ => None,
            };
        }
        Ok(search)
    }

    /// Searches `stream` from revision `from` (its end when `None`) to its start for an append
    /// of `command_id`.
    async fn search_all(
        &self,
        stream: &str,
        command_id: &str,
        from: Option<u64>,
        attempt: Uuid,
    ) -> Result<Search> {
        self.search(stream, command_id, attempt, Reach::down_from(from))
            .await
    }

    /// Writes `request` expecting `state`, and says what came of it.
    /// `prev` is the hash of the stream's event at `state` (the chain's start for no stream).
    async fn write(
        &self,
        request: &AppendRequest,
        attempt: Uuid,
        state: StreamState,
        prev: Hash,
    ) -> Result<Written> {
        let count = request.events.len();
        let first_revision = match state {
            StreamState::StreamRevision(revision) => revision + 1,
            _ => 0,
        };
        let hashes = chain::chain(&request.stream, first_revision, prev, &request.events);
        let events: Vec<EventData> = request
            .events
            .iter()
            .zip(&hashes)
            .enumerate()
            .map(|(index, (event, hash))| event_data(request, event, attempt, index, count, hash))
            .collect();
        let options = AppendToStreamOptions::default()
            .stream_state(state)
            .requires_leader(true);
        let written = match self
            .client()
            .append_to_stream(request.stream.as_str(), &options, events)
            .await
        {
            Ok(written) => written,
            Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                return Ok(Written::Conflict(actual_revision(&current)))
            }
            Err(error) => {
                return Err(store_error(
                    &format!("appending to {}", request.stream),
                    &error,
                ))
            }
        };
        self.confirm(request, attempt, written.next_expected_version)
            .await
            .map(Written::Stored)
    }

    /// The result of an append the server acknowledged at `last_revision`. The server also
    /// acknowledges an append whose events it already holds (same ids), so the stored event
    /// tells whether this attempt wrote it; reading it also yields its global position.
    async fn confirm(
        &self,
        request: &AppendRequest,
        attempt: Uuid,
        last_revision: u64,
    ) -> Result<AppendResult> {
        let stream = request.stream.as_str();
        if let Some(event) = self.read_one(stream, last_revision).await? {
            if let Some(envelope) = Envelope::decode(&event.custom_metadata) {
                if envelope.command_id == request.command_id {
                    return self.append_of(stream, &event, &envelope, attempt).await;
                }
            }
        }
        // Not where the server said: look the command up instead.
        let search = self
            .search_all(stream, &request.command_id, None, attempt)
            .await?;
        search.found.ok_or_else(|| {
            StoreError::Backend(format!(
                "KurrentDB acknowledged command {} on {stream} at revision {last_revision}, \
                 but its events are not in the stream",
                request.command_id
            ))
        })
    }

    /// The answer to an append whose expectation does not hold: the original's result if the
    /// command is stored in the part of the stream not yet searched (`unsearched`: from that
    /// revision, or from the end, down), else the conflict.
    async fn conflict(
        &self,
        request: &AppendRequest,
        actual: Option<u64>,
        unsearched: Option<StreamPosition<u64>>,
        attempt: Uuid,
    ) -> Result<AppendResult> {
        let found = match unsearched {
            Some(from) => {
                let reach = Reach {
                    from,
                    ..Reach::down_from(None)
                };
                self.search(&request.stream, &request.command_id, attempt, reach)
                    .await?
                    .found
            }
            None => None,
        };
        match found {
            Some(original) => Ok(original),
            None => Err(StoreError::WrongExpectedRevision {
                stream: request.stream.clone(),
                expected: request.expected,
                actual,
            }),
        }
    }

    /// `Any` never conflicts on the server, so an old retry would be written again: search
    /// the whole stream first, then append at the revision found, and search what is new
    /// whenever the stream moved on in between.
    async fn append_any(
        &self,
        request: &AppendRequest,
        attempt: Uuid,
        recent: Search,
    ) -> Result<AppendResult> {
        let stream = request.stream.as_str();
        let mut tail = recent.newest;
        let mut tail_hash = recent.newest_hash;
        if let Some(rest) = recent.rest {
            let older = self
                .search_all(stream, &request.command_id, Some(rest), attempt)
                .await?;
            if let Some(original) = older.found {
                return Ok(original);
            }
        }
        for _ in 0..MAX_ANY_ATTEMPTS {
            let state = tail.map_or(StreamState::NoStream, StreamState::StreamRevision);
            match self.write(request, attempt, state, tail_hash).await? {
                Written::Stored(result) => return Ok(result),
                Written::Conflict(_) => {
                    let newer = self
                        .search(stream, &request.command_id, attempt, Reach::above(tail))
                        .await?;
                    if let Some(original) = newer.found {
                        return Ok(original);
                    }
                    tail = newer.newest;
                    tail_hash = newer.newest_hash;
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "{stream} moved on under {MAX_ANY_ATTEMPTS} attempts to append at any revision"
        )))
    }
}

#[async_trait::async_trait]
impl EventStore for KurrentDbStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult> {
        validate(&request)?;
        let attempt = Uuid::new_v4();
        let recent = self
            .search(
                &request.stream,
                &request.command_id,
                attempt,
                Reach::recent(),
            )
            .await?;
        if let Some(original) = recent.found {
            return Ok(original);
        }
        let state = match request.expected {
            ExpectedRevision::Any => return self.append_any(&request, attempt, recent).await,
            ExpectedRevision::NoStream if recent.newest.is_none() => StreamState::NoStream,
            ExpectedRevision::Exact(revision) if recent.newest == Some(revision) => {
                StreamState::StreamRevision(revision)
            }
            // The stream is already elsewhere (it never goes back): a conflict, or a retry of
            // an append further back.
            _ => {
                let unsearched = recent.rest.map(StreamPosition::Position);
                return self
                    .conflict(&request, recent.newest, unsearched, attempt)
                    .await;
            }
        };
        match self
            .write(&request, attempt, state, recent.newest_hash)
            .await?
        {
            Written::Stored(result) => Ok(result),
            // Someone appended since the search; maybe a copy of this very command.
            Written::Conflict(actual) => {
                self.conflict(&request, actual, Some(StreamPosition::End), attempt)
                    .await
            }
        }
    }

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
        let events = match direction {
            Direction::Forward if from > MAX_SERVER_NUMBER => Vec::new(),
            Direction::Forward => {
                self.read_stream_raw(stream, StreamPosition::Position(from), direction, max)
                    .await?
            }
            Direction::Backward if from > MAX_SERVER_NUMBER => {
                self.read_stream_raw(stream, StreamPosition::End, direction, max)
                    .await?
            }
            Direction::Backward => {
                let events = self
                    .read_stream_raw(stream, StreamPosition::Position(from), direction, max)
                    .await?;
                // Starting past the last event reads from the last event.
                if events.is_empty() {
                    let last = self
                        .read_stream_raw(stream, StreamPosition::End, direction, max)
                        .await?;
                    if last.first().is_some_and(|e| e.revision < from) {
                        last
                    } else {
                        events
                    }
                } else {
                    events
                }
            }
        };
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let origin = self.require_origin().await?;
        events.into_iter().map(|e| recorded(origin, e)).collect()
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let Some(origin) = self.origin().await? else {
            return Ok(Vec::new());
        };
        let (start, skip_through) = match origin.start_of(from) {
            LogStart::Beginning => (StreamPosition::Start, None),
            LogStart::At(log) => (StreamPosition::Position(at_log(log)), None),
            LogStart::After(log) => (StreamPosition::Position(at_log(log)), Some(log)),
            LogStart::Beyond => return Ok(Vec::new()),
        };
        let count = if skip_through.is_some() {
            max.saturating_add(1)
        } else {
            max
        };
        let mut events = Vec::new();
        for event in self.read_all_raw(start, count).await? {
            if skip_through.is_some_and(|skip| log_position(&event).is_ok_and(|l| l <= skip)) {
                continue;
            }
            let event = recorded(origin, event)?;
            if event.position >= from {
                events.push(event);
            }
            if events.len() == max {
                break;
            }
        }
        Ok(events)
    }

    async fn head_position(&self) -> Result<u64> {
        let Some(last) = self.last_visible_event().await? else {
            return Ok(0);
        };
        let origin = self.require_origin().await?;
        position_of(
            origin,
            last.stream_id(),
            last.revision,
            log_position(&last)?,
        )
    }

    fn subscribe_all(&self, from: u64) -> Subscription {
        crate::subscription::subscribe(self.clone(), from)
    }
}

/// The events of `$all` the store shows: all but KurrentDB's own (types starting with `$`:
/// statistics, stream metadata, projections' links, the origin pin).
pub(crate) fn visible_events() -> SubscriptionFilter {
    SubscriptionFilter::on_event_type().exclude_system_events()
}

/// Where in `$all` to read from to start at the event at log position `log`.
pub(crate) fn at_log(log: u64) -> kurrentdb::Position {
    kurrentdb::Position {
        commit: log,
        prepare: log,
    }
}

/// The event a read returned (the link itself, for links: the store never resolves them).
pub(crate) fn original_event(
    resolved: kurrentdb::ResolvedEvent,
) -> Option<kurrentdb::RecordedEvent> {
    resolved.link.or(resolved.event)
}

/// Where `event` sits in KurrentDB's log.
pub(crate) fn log_position(event: &kurrentdb::RecordedEvent) -> Result<u64> {
    let log = event.position.commit;
    if log > MAX_SERVER_NUMBER {
        // The server sends -1 for "unknown"; current servers know it for every event.
        return Err(unreadable(
            event.stream_id(),
            event.revision,
            "the server did not say where in $all it is (current KurrentDB does)",
        ));
    }
    Ok(log)
}

fn position_of(origin: Origin, stream: &str, revision: u64, log: u64) -> Result<u64> {
    origin.position_of(log).ok_or_else(|| {
        unreadable(
            stream,
            revision,
            format!("it lies before the log's origin ({} < {})", log, origin.0),
        )
    })
}

/// A stored event as the store shows it.
pub(crate) fn recorded(origin: Origin, event: kurrentdb::RecordedEvent) -> Result<RecordedEvent> {
    let stream = event.stream_id().to_owned();
    let position = position_of(origin, &stream, event.revision, log_position(&event)?)?;
    let (event_id, metadata, hash) = match Envelope::decode(&event.custom_metadata) {
        Some(envelope) => (
            envelope.event_id,
            envelope
                .caller_metadata()
                .ok_or_else(|| unreadable(&stream, event.revision, "its metadata is not base64"))?,
            envelope.chain_hash(),
        ),
        // Not written by this store: shown as it is (with no chain link).
        None => (event.id, event.custom_metadata.to_vec(), [0; 32]),
    };
    let recorded_at_ms = event
        .metadata
        .get("created")
        .and_then(|ticks| ticks.parse::<i64>().ok())
        .map(ticks_to_unix_ms)
        .unwrap_or_else(|| event.created.timestamp_millis());
    Ok(RecordedEvent {
        event_id,
        stream,
        revision: event.revision,
        position,
        event_type: event.event_type,
        data: event.data.to_vec(),
        metadata,
        recorded_at_ms,
        hash,
    })
}

/// KurrentDB's `created` (100 ns ticks since the Unix epoch) as Unix milliseconds.
pub(crate) fn ticks_to_unix_ms(ticks: i64) -> i64 {
    ticks.div_euclid(10_000)
}

/// The KurrentDB event for event `index` of `request`.
fn event_data(
    request: &AppendRequest,
    event: &NewEvent,
    attempt: Uuid,
    index: usize,
    count: usize,
    hash: &Hash,
) -> EventData {
    let envelope = Envelope::new(
        &request.command_id,
        event.event_id,
        attempt,
        index,
        count,
        &event.metadata,
        hash,
    );
    // JSON is marked as such (KurrentDB's projections and UI read it); the bytes are the
    // caller's either way.
    let data = match exact_json(&event.data) {
        Some(json) => {
            EventData::json(&event.event_type, &json).expect("a raw JSON value always serialises")
        }
        None => EventData::binary(&event.event_type, Bytes::from(event.data.clone())),
    };
    data.id(stored_event_id(&request.stream, &request.command_id, index))
        .metadata(Bytes::from(envelope.encode()))
}

/// Refuses what the server would refuse or the store could not read back.
fn validate(request: &AppendRequest) -> Result<()> {
    let invalid = |why: String| Err(StoreError::InvalidRequest(why));
    if request.events.is_empty() {
        return invalid(format!("append to {} carries no events", request.stream));
    }
    if request.stream.is_empty() {
        return invalid("stream name is empty".into());
    }
    if request.command_id.is_empty() {
        return invalid(format!("append to {} has no command id", request.stream));
    }
    if request.stream.starts_with('$') {
        return invalid(format!(
            "stream {} starts with `$`: KurrentDB keeps those for itself",
            request.stream
        ));
    }
    if request.stream == ORIGIN_STREAM {
        return invalid(format!(
            "stream {ORIGIN_STREAM} belongs to the store itself"
        ));
    }
    if let Some(event) = request
        .events
        .iter()
        .find(|e| e.event_type.starts_with('$'))
    {
        return invalid(format!(
            "event type {} starts with `$`: KurrentDB keeps those for itself",
            event.event_type
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(stream: &str, command_id: &str, event_types: &[&str]) -> AppendRequest {
        AppendRequest {
            stream: stream.to_owned(),
            expected: ExpectedRevision::Any,
            command_id: command_id.to_owned(),
            events: event_types
                .iter()
                .map(|t| NewEvent {
                    event_id: Uuid::new_v4(),
                    event_type: (*t).to_owned(),
                    data: b"{}".to_vec(),
                    metadata: b"{}".to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn validation_refuses_what_the_store_cannot_keep() {
        assert!(validate(&request("order-1", "c", &["OrderPlaced"])).is_ok());
        for bad in [
            request("order-1", "c", &[]),
            request("", "c", &["OrderPlaced"]),
            request("order-1", "", &["OrderPlaced"]),
            request("$stats", "c", &["OrderPlaced"]),
            request(ORIGIN_STREAM, "c", &["OrderPlaced"]),
            request("order-1", "c", &["OrderPlaced", "$>"]),
        ] {
            match validate(&bad) {
                Err(StoreError::InvalidRequest(_)) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn created_ticks_become_milliseconds() {
        // 2024-01-01T00:00:00Z is 1_704_067_200_000 ms after the epoch.
        assert_eq!(ticks_to_unix_ms(17_040_672_000_000_000), 1_704_067_200_000);
        assert_eq!(ticks_to_unix_ms(17_040_672_000_009_999), 1_704_067_200_000);
        assert_eq!(ticks_to_unix_ms(0), 0);
    }

    #[test]
    fn event_data_carries_the_envelope_and_a_derived_id() {
        let request = request("order-9", "cmd-9", &["OrderPlaced", "OrderTriaged"]);
        let attempt = Uuid::new_v4();
        // EventData keeps its fields to itself; its Debug output shows them.
        let data = event_data(&request, &request.events[1], attempt, 1, 2, &[3; 32]);
        let shown = format!("{data:?}");
        assert!(shown.contains(&stored_event_id("order-9", "cmd-9", 1).to_string()));
        assert!(shown.contains("application/json"), "{shown}");
    }

    #[test]
    fn reads_start_at_an_events_log_position() {
        assert_eq!(
            at_log(4_242),
            kurrentdb::Position {
                commit: 4_242,
                prepare: 4_242
            }
        );
    }
}
