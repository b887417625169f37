//! The ledger's streams, and running a command against one: load → `decide` → append with the
//! expected revision, re-decided when another writer appended first (so of 50 volunteers
//! reserving the last 10 units, each decision sees the stock the previous winner left).
//! Idempotent by command id: a resent command finds its events and writes nothing.

use serde::de::DeserializeOwned;
use serde::Serialize;

use diandan_runtime::commands::{new_event, AppliedCommands, EventMetadata};
use diandan_runtime::order_cache::AnyFolded;
use diandan_runtime::{App, AppError, RequestContext, Result};
use diandan_store::{AppendRequest, Direction, ExpectedRevision, StoreError};
use diandan_workflows::ledger::hours::{self, HoursEvent, HoursRecord};
use diandan_workflows::ledger::points::{self, PointsAccount, PointsEvent};
use diandan_workflows::ledger::shop::{self, Item, ItemEvent, Redemption, RedemptionEvent};

/// How often a command is re-decided after losing a race before giving up.
const MAX_CONFLICT_RETRIES: usize = 64;

/// A stream type of the ledger: its name, its events and how they fold.
pub trait LedgerStream: Default + Clone + Send + Sync + 'static {
    type Event: Serialize + DeserializeOwned + Send + Sync;
    /// `hours-`, `points-`, `shop-item-`, `redemption-`.
    const PREFIX: &'static str;
    fn event_type(event: &Self::Event) -> &'static str;
    fn evolve(self, event: &Self::Event) -> Self;
}

impl LedgerStream for HoursRecord {
    type Event = HoursEvent;
    const PREFIX: &'static str = "hours-";
    fn event_type(event: &HoursEvent) -> &'static str {
        event.event_type()
    }
    fn evolve(self, event: &HoursEvent) -> Self {
        hours::evolve(self, event)
    }
}

impl LedgerStream for PointsAccount {
    type Event = PointsEvent;
    const PREFIX: &'static str = "points-";
    fn event_type(event: &PointsEvent) -> &'static str {
        event.event_type()
    }
    fn evolve(self, event: &PointsEvent) -> Self {
        points::evolve(self, event)
    }
}

impl LedgerStream for Item {
    type Event = ItemEvent;
    const PREFIX: &'static str = "shop-item-";
    fn event_type(event: &ItemEvent) -> &'static str {
        event.event_type()
    }
    fn evolve(self, event: &ItemEvent) -> Self {
        shop::evolve_item(self, event)
    }
}

impl LedgerStream for Redemption {
    type Event = RedemptionEvent;
    const PREFIX: &'static str = "redemption-";
    fn event_type(event: &RedemptionEvent) -> &'static str {
        event.event_type()
    }
    fn evolve(self, event: &RedemptionEvent) -> Self {
        shop::evolve_redemption(self, event)
    }
}

/// A stream as loaded.
#[derive(Debug, Clone, Default)]
pub struct Loaded<S> {
    pub state: S,
    /// Revision of the last event; `None` when the stream is empty.
    pub revision: Option<u64>,
    /// Commands already applied.
    applied: AppliedCommands,
}

impl<S> Loaded<S> {
    pub fn exists(&self) -> bool {
        self.revision.is_some()
    }
}

/// What a command did to its stream.
#[derive(Debug, Clone)]
pub struct Written<S> {
    pub state: S,
    pub stream: String,
    pub revision: Option<u64>,
    pub position: u64,
    /// A retry of a command already applied, or a command that changed nothing.
    pub duplicate: bool,
}

impl<S> Written<S> {
    pub fn ack(&self) -> diandan_proto::v1::LedgerAck {
        diandan_proto::v1::LedgerAck {
            stream: self.stream.clone(),
            revision: self.revision.unwrap_or(0),
            position: self.position,
            duplicate: self.duplicate,
        }
    }
}

/// The stream's name for an id.
pub fn stream_name<S: LedgerStream>(id: &str) -> String {
    format!("{}{id}", S::PREFIX)
}

/// Loads a stream by folding it: from where this process last folded it
/// ([`App::other_streams`]), reading every event it gained since — as fresh as folding it
/// whole.
pub async fn load<S: LedgerStream>(app: &App, id: &str) -> Result<Loaded<S>> {
    let stream = stream_name::<S>(id);
    let mut loaded = app
        .other_streams
        .get(&stream)
        .and_then(|kept| kept.get::<Loaded<S>>().cloned())
        .unwrap_or_default();
    let cached_to = loaded.revision;
    let mut from = cached_to.map_or(0, |r| r + 1);
    loop {
        let batch = app
            .store
            .read_stream(&stream, from, Direction::Forward, 512)
            .await?;
        let done = batch.len() < 512;
        for recorded in &batch {
            let event: S::Event = serde_json::from_slice(&recorded.data).map_err(|e| {
                AppError::Storage(format!("event {} payload: {e}", recorded.position))
            })?;
            let command_id = EventMetadata::command_id_of(recorded)?;
            loaded.state = std::mem::take(&mut loaded.state).evolve(&event);
            loaded.revision = Some(recorded.revision);
            loaded.applied.record(command_id, recorded);
            from = recorded.revision + 1;
        }
        if done {
            if loaded.revision != cached_to {
                let kept = AnyFolded::new(loaded.revision, loaded.clone());
                app.other_streams.put(&stream, &kept);
            }
            return Ok(loaded);
        }
    }
}

/// Runs one command against one ledger stream: `decide` sees the stream's current state and
/// returns the events to append (none: nothing to do). Re-decided on a lost race.
pub async fn execute<S: LedgerStream>(
    app: &App,
    ctx: &RequestContext,
    id: &str,
    mut decide: impl FnMut(&Loaded<S>) -> Result<Vec<S::Event>>,
) -> Result<Written<S>> {
    let stream = stream_name::<S>(id);
    let meta = ctx.command_meta(app.clock.now());
    for _ in 0..MAX_CONFLICT_RETRIES {
        let loaded = load::<S>(app, id).await?;
        if let Some((revision, position)) = loaded.applied.find(&meta.command_id) {
            return Ok(Written {
                state: loaded.state,
                stream,
                revision: Some(revision),
                position,
                duplicate: true,
            });
        }
        let events = decide(&loaded)?;
        if events.is_empty() {
            return Ok(Written {
                state: loaded.state,
                stream,
                revision: loaded.revision,
                position: 0,
                duplicate: true,
            });
        }
        let metadata = EventMetadata::new(meta.clone());
        let request = AppendRequest {
            stream: stream.clone(),
            expected: match loaded.revision {
                Some(r) => ExpectedRevision::Exact(r),
                None => ExpectedRevision::NoStream,
            },
            command_id: meta.command_id.clone(),
            events: events
                .iter()
                .map(|e| new_event(S::event_type(e), e, &metadata))
                .collect(),
        };
        match app.store.append(request).await {
            Ok(result) if result.duplicate => continue,
            Ok(result) => {
                let state = events.iter().fold(loaded.state, |s, e| s.evolve(e));
                return Ok(Written {
                    state,
                    stream,
                    revision: Some(result.last_revision),
                    position: result.last_position,
                    duplicate: false,
                });
            }
            Err(StoreError::WrongExpectedRevision { .. }) => {
                tokio::task::yield_now().await;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Conflict {
        field: None,
        message: "正被频繁修改，请稍后重试".into(),
    })
}
