//! Executing a command: load the stream, `decide`, append with the expected revision.
//!
//! Conflicts are handled, not ignored: when another writer appended first, the stream is
//! reloaded and the command decided again against the new state (so of two volunteers accepting
//! at once, the second is refused by the domain: "已被接单"). A caller that pinned an
//! `expected_revision` gets [`AppError::Conflict`] instead of a silent retry.

use serde::{Deserialize, Serialize};

use diandan_store::{
    AppendRequest, AppendResult, Direction, ExpectedRevision, NewEvent, RecordedEvent, StoreError,
};
use diandan_workflows::order::{self, Action, Command, OrderEvent, OrderState};
use diandan_workflows::permissions::Scope;
use diandan_workflows::CommandMeta;

use crate::pii;
use crate::{App, AppError, RequestContext, Result};

/// Version of the event payload schemas written by this build (in each event's metadata, and
/// in its subject and CloudEvents type on the bus). This build reads every version up to it.
///
/// 2: an order event carries the deadlines it stops and starts (`clocks`). A build that reads
/// only 1 would skip them silently; on the bus it refuses a v2 event instead.
pub const SCHEMA_VERSION: u32 = 2;

/// How often a command is re-decided after losing a race before giving up.
const MAX_CONFLICT_RETRIES: usize = 8;

/// The metadata stored beside every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    #[serde(flatten)]
    pub command: CommandMeta,
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl EventMetadata {
    /// Metadata for events produced now, inside the current trace (if any).
    pub fn new(command: CommandMeta) -> EventMetadata {
        EventMetadata {
            command,
            schema_version: SCHEMA_VERSION,
            traceparent: diandan_telemetry::propagation::current_traceparent(),
        }
    }

    pub fn decode(event: &RecordedEvent) -> Result<EventMetadata> {
        serde_json::from_slice(&event.metadata)
            .map_err(|e| AppError::Storage(format!("event {} metadata: {e}", event.position)))
    }

    /// The id of the command that produced `event`, read without the rest of its metadata:
    /// every load of a stream needs it for every event (the `flatten` of a whole decode
    /// buffers each document into a map first).
    pub fn command_id_of(event: &RecordedEvent) -> Result<String> {
        #[derive(Deserialize)]
        struct Only {
            command_id: String,
        }
        serde_json::from_slice::<Only>(&event.metadata)
            .map(|only| only.command_id)
            .map_err(|e| AppError::Storage(format!("event {} metadata: {e}", event.position)))
    }

    /// The trace `event` was produced in, if any, read without the rest of its metadata.
    pub fn traceparent_of(event: &RecordedEvent) -> Option<String> {
        #[derive(Deserialize)]
        struct Only {
            #[serde(default)]
            traceparent: Option<String>,
        }
        serde_json::from_slice::<Only>(&event.metadata)
            .ok()?
            .traceparent
    }
}

/// An order event as stored, decoded.
pub fn decode_order_event(event: &RecordedEvent) -> Result<OrderEvent> {
    serde_json::from_slice(&event.data)
        .map_err(|e| AppError::Storage(format!("event {} payload: {e}", event.position)))
}

/// Serializes a payload and its metadata for the store.
pub fn new_event(event_type: &str, payload: &impl Serialize, metadata: &EventMetadata) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: event_type.to_owned(),
        data: serde_json::to_vec(payload).expect("events serialize"),
        metadata: serde_json::to_vec(metadata).expect("metadata serializes"),
    }
}

/// The commands a stream already holds, with the revision and position each ended at: what
/// makes a resent command (the same command id) find its first result instead of running again.
#[derive(Debug, Clone, Default)]
pub struct AppliedCommands(Vec<(String, u64, u64)>);

impl AppliedCommands {
    /// Notes one stored event (events of one command are stored together).
    pub fn record(&mut self, command_id: String, recorded: &RecordedEvent) {
        self.record_at(command_id, recorded.revision, recorded.position);
    }

    /// Notes a command's event stored at `revision` and `position`.
    fn record_at(&mut self, command_id: String, revision: u64, position: u64) {
        match self.0.last_mut() {
            Some(last) if last.0 == command_id => {
                last.1 = revision;
                last.2 = position;
            }
            _ => self.0.push((command_id, revision, position)),
        }
    }

    /// The (revision, position) a command ended at, if the stream holds it.
    pub fn find(&self, command_id: &str) -> Option<(u64, u64)> {
        self.0
            .iter()
            .find(|(id, _, _)| id == command_id)
            .map(|(_, revision, position)| (*revision, *position))
    }
}

/// An order as loaded from its stream.
#[derive(Debug, Clone, Default)]
pub struct LoadedOrder {
    pub state: OrderState,
    /// Revision of the last event; `None` when the stream is empty.
    pub revision: Option<u64>,
    pub position: u64,
    /// Commands already applied.
    applied: AppliedCommands,
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub state: OrderState,
    pub revision: u64,
    pub position: u64,
    /// A retry of a command already applied: nothing was written now.
    pub duplicate: bool,
}

impl App {
    /// Seals a placement's address and masked number with its resident's key before they are
    /// written anywhere ([`crate::pii`]), and coarsens check-in and check-out locations,
    /// sealing the exact ones for their retention period ([`crate::retention`]); other
    /// events carry no personal data.
    async fn seal_personal_data(&self, events: &mut [order::OrderEvent]) -> Result<()> {
        if !self.sealing {
            return Ok(());
        }
        for event in events.iter_mut() {
            if let order::OrderChange::VolunteerCheckedIn {
                location, precise, ..
            }
            | order::OrderChange::VolunteerCheckedOut {
                location, precise, ..
            } = &mut event.change
            {
                *precise = self.seal_location(location).await?;
            }
        }
        for event in events {
            if let order::OrderChange::OrderPlaced {
                requester_id,
                location,
                contact_phone_masked,
                ..
            } = &mut event.change
            {
                let key = self.vault.resident_key(requester_id).await?;
                location.address =
                    pii::seal(&key, requester_id, pii::field::ADDRESS, &location.address);
                *contact_phone_masked = pii::seal(
                    &key,
                    requester_id,
                    pii::field::PHONE_MASKED,
                    contact_phone_masked,
                );
            }
        }
        Ok(())
    }

    /// Loads an order by folding its stream: from where it was last folded (the order
    /// cache), reading every event it gained since.
    pub async fn load_order(&self, order_id: &str) -> Result<LoadedOrder> {
        let stream = order::stream_name(order_id);
        let mut loaded = self.orders.get(order_id).unwrap_or_default();
        let mut from = loaded.revision.map_or(0, |r| r + 1);
        loop {
            let batch = self
                .store
                .read_stream(&stream, from, Direction::Forward, 512)
                .await?;
            let done = batch.len() < 512;
            for recorded in &batch {
                let event = decode_order_event(recorded)?;
                let command_id = EventMetadata::command_id_of(recorded)?;
                loaded.state = order::evolve(std::mem::take(&mut loaded.state), &event);
                loaded.revision = Some(recorded.revision);
                loaded.position = recorded.position;
                loaded.applied.record(command_id, recorded);
                from = recorded.revision + 1;
            }
            if done {
                self.orders.put(order_id, &loaded);
                return Ok(loaded);
            }
        }
    }

    /// Runs one command against one order.
    ///
    /// `expected_revision`: when given, the command applies only if the order is still at
    /// that revision (the client's view is current); otherwise it is re-decided on conflict.
    pub async fn execute(
        &self,
        ctx: &RequestContext,
        order_id: &str,
        action: Action,
        expected_revision: Option<u64>,
    ) -> Result<Outcome> {
        use diandan_telemetry::metrics::{command, CommandOutcome};
        let name = action.command();
        let result = self
            .execute_once(ctx, order_id, action, expected_revision)
            .await;
        let outcome = match &result {
            Ok(_) => CommandOutcome::Accepted,
            Err(AppError::Store(_) | AppError::Storage(_)) => CommandOutcome::Failed,
            Err(_) => CommandOutcome::Refused,
        };
        command(name, outcome);
        result
    }

    async fn execute_once(
        &self,
        ctx: &RequestContext,
        order_id: &str,
        action: Action,
        expected_revision: Option<u64>,
    ) -> Result<Outcome> {
        let command = Command {
            meta: ctx.command_meta(self.clock.now()),
            action,
        };
        // The first decision is taken on the order as this process last knew it (the order
        // cache), without reading the store: a state another writer has moved on since loses
        // its append (expected revision), and a refusal is never answered from the cache —
        // both are decided again on the order read from the store.
        let mut cached = self.orders.get(order_id);
        for _ in 0..MAX_CONFLICT_RETRIES {
            let (loaded, verified) = match cached.take() {
                Some(loaded) => (loaded, false),
                None => (self.load_order(order_id).await?, true),
            };
            let decided = self
                .decide_command(ctx, &command, &loaded, expected_revision)
                .await;
            let mut events = match decided {
                Ok(Decided::Events(events)) => events,
                // Answered with the order as stored now, as a resent command always was.
                Ok(Decided::Duplicate(_)) if !verified => continue,
                Ok(Decided::Duplicate(outcome)) => return Ok(*outcome),
                Err(_) if !verified => continue,
                Err(e) => return Err(e),
            };
            self.seal_personal_data(&mut events).await?;
            let metadata = EventMetadata::new(command.meta.clone());
            let request = AppendRequest {
                stream: order::stream_name(order_id),
                expected: match loaded.revision {
                    Some(r) => ExpectedRevision::Exact(r),
                    None => ExpectedRevision::NoStream,
                },
                command_id: command.meta.command_id.clone(),
                events: events
                    .iter()
                    .map(|e| new_event(e.change.event_type(), e, &metadata))
                    .collect(),
            };
            let payloads: Vec<Vec<u8>> = request.events.iter().map(|e| e.data.clone()).collect();
            let started = std::time::Instant::now();
            let appended = self.store.append(request).await;
            if appended.is_ok() {
                diandan_telemetry::metrics::store_append(
                    appended.as_ref().map_or(
                        0,
                        |r| {
                            if r.duplicate {
                                0
                            } else {
                                events.len() as u64
                            }
                        },
                    ),
                    started.elapsed(),
                );
            }
            match appended {
                Ok(result) if result.duplicate => continue, // a concurrent retry won: reload
                Ok(result) => {
                    // The append is durable: whatever happens to the cache, the answer is Ok.
                    let stored: Result<Vec<order::OrderEvent>> = payloads
                        .iter()
                        .map(|data| {
                            serde_json::from_slice(data)
                                .map_err(|e| AppError::Storage(format!("order event payload: {e}")))
                        })
                        .collect();
                    let state = match stored {
                        Ok(stored) => {
                            let written = remember_written(
                                loaded,
                                &stored,
                                &result,
                                &command.meta.command_id,
                            );
                            self.orders.put(order_id, &written);
                            written.state
                        }
                        Err(error) => {
                            tracing::warn!(%error, order = order_id, "order written but not cached");
                            events.iter().fold(loaded.state, order::evolve)
                        }
                    };
                    return Ok(Outcome {
                        state,
                        revision: result.last_revision,
                        position: result.last_position,
                        duplicate: false,
                    });
                }
                Err(StoreError::WrongExpectedRevision { actual, .. }) => {
                    if let Some(expected) = expected_revision {
                        return Err(stale(expected, actual));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict {
            field: None,
            message: "订单正被频繁修改，请稍后重试".into(),
        })
    }
}

/// What a command decided on a loaded order.
enum Decided {
    /// The events to append (the change, with the deadlines it stops and starts).
    Events(Vec<order::OrderEvent>),
    /// The order already holds this command: its first result.
    Duplicate(Box<Outcome>),
}

impl App {
    /// Decides a command on `loaded`: its scope, the client's expected revision, the
    /// workflow's rules, and the deadlines the change moves.
    async fn decide_command(
        &self,
        ctx: &RequestContext,
        command: &Command,
        loaded: &LoadedOrder,
        expected_revision: Option<u64>,
    ) -> Result<Decided> {
        if let Some((revision, position)) = loaded.applied.find(&command.meta.command_id) {
            return Ok(Decided::Duplicate(Box::new(Outcome {
                state: loaded.state.clone(),
                revision,
                position,
                duplicate: true,
            })));
        }
        self.require_order_scope(ctx, &command.action, &loaded.state)
            .await?;
        if let Some(expected) = expected_revision {
            if loaded.revision != Some(expected) {
                return Err(stale(expected, loaded.revision));
            }
        }
        let definition = self.definition_for_command(&loaded.state, &command.action)?;
        let mut events = order::decide(definition, &loaded.state, command)?;
        let calendar = self.workflows.calendar_for(definition).ok_or_else(|| {
            AppError::Storage(format!("calendar {} is not loaded", definition.calendar()))
        })?;
        // Deadlines start and stop in the same append as the change that moves them.
        order::schedule_clocks(definition, calendar, &loaded.state, command, &mut events);
        Ok(Decided::Events(events))
    }
}

/// `loaded` after an append of `stored` (the events decoded from the payloads as stored: the
/// state is folded from the same bytes a load would read back, not from the events in memory).
fn remember_written(
    mut written: LoadedOrder,
    stored: &[order::OrderEvent],
    result: &AppendResult,
    command_id: &str,
) -> LoadedOrder {
    for event in stored {
        written.state = order::evolve(std::mem::take(&mut written.state), event);
    }
    // A command's events are stored together: it ends at the append's last revision and
    // position (positions need not be consecutive: a store may number its log otherwise).
    written.applied.record_at(
        command_id.to_owned(),
        result.last_revision,
        result.last_position,
    );
    written.revision = Some(result.last_revision);
    written.position = result.last_position;
    written
}

impl App {
    /// Is this existing order within the scope the permission table gave the caller? A
    /// resident acts on their own orders, staff on their subtree's; outside, the order is as
    /// good as absent (404). Field volunteers are checked against the command itself (the team
    /// they act for: `require_member`; the accepted order's holder: `decide`). A placement
    /// names a new order: a clash with an existing id is `decide`'s conflict (409).
    async fn require_order_scope(
        &self,
        ctx: &RequestContext,
        action: &Action,
        state: &OrderState,
    ) -> Result<()> {
        if state.status == order::Status::New || matches!(action, Action::Place { .. }) {
            return Ok(());
        }
        let inside = match ctx.scope {
            Scope::Own => state.is_requester(&ctx.claims.sub),
            Scope::Subtree => self
                .directory
                .require_scope(ctx, &state.station_id)
                .await
                .is_ok(),
            // A field volunteer acts on what they hold, are offered, lead or may claim — or
            // what was offered to their team (a late accept is told it lost, 409).
            Scope::Team => self.field_reach(ctx, state, true).await?,
            Scope::All => true,
            Scope::Public => false,
        };
        if inside {
            Ok(())
        } else {
            Err(AppError::NotFound("订单不存在".into()))
        }
    }
}

/// The workflow new orders start on.
pub const DEFAULT_WORKFLOW: &str = "dispatched-order";

impl App {
    /// The definition a command is decided on: the order's, or for a placement the latest
    /// of the workflow it asks for.
    pub fn definition_for_command(
        &self,
        state: &OrderState,
        action: &Action,
    ) -> Result<&diandan_workflows::Definition> {
        match (&state.workflow, action) {
            (
                None,
                Action::Place {
                    workflow: Some(name),
                    ..
                },
            ) => self.workflows.latest(name).ok_or_else(|| {
                let known: Vec<&str> = diandan_workflows::engine::tables()
                    .iter()
                    .map(|t| t.workflow)
                    .collect();
                AppError::invalid(
                    "workflow",
                    format!("未知的工作流「{name}」，可选：{}", known.join("、")),
                )
            }),
            _ => self.definition_for(state),
        }
    }

    /// The definition an order runs on: the one it was placed on, or the latest for a new one.
    pub fn definition_for(&self, state: &OrderState) -> Result<&diandan_workflows::Definition> {
        let definition = match &state.workflow {
            Some(id) => self.workflows.resolve(id),
            None => self.workflows.latest(DEFAULT_WORKFLOW),
        };
        definition.ok_or_else(|| {
            AppError::Storage(format!(
                "workflow definition {} is not loaded",
                state
                    .workflow
                    .as_ref()
                    .map_or(DEFAULT_WORKFLOW.to_owned(), |id| id.to_string())
            ))
        })
    }
}

fn stale(expected: u64, actual: Option<u64>) -> AppError {
    AppError::Conflict {
        field: Some("expected_revision"),
        message: format!(
            "订单已被他人修改：期望版本 {expected}，当前版本 {}，请刷新后重试",
            actual.map_or("无".to_owned(), |a| a.to_string())
        ),
    }
}

impl Outcome {
    /// The reply to the command, as the RPC's response message.
    pub fn reply<R: diandan_proto::CommandResponse>(&self, order_id: &str) -> R {
        R::from_ack(self.ack(order_id))
    }

    /// The command's acknowledgement.
    pub fn ack(&self, order_id: &str) -> diandan_proto::v1::CommandAck {
        diandan_proto::v1::CommandAck {
            order_id: order_id.to_owned(),
            revision: self.revision,
            position: self.position,
            status: self.state.status.as_str().to_owned(),
            duplicate: self.duplicate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(metadata: &EventMetadata) -> RecordedEvent {
        RecordedEvent {
            event_id: uuid::Uuid::nil(),
            stream: "order-o1".into(),
            revision: 0,
            position: 1,
            event_type: "OrderPlaced".into(),
            data: b"{}".to_vec(),
            metadata: serde_json::to_vec(metadata).unwrap(),
            recorded_at_ms: 0,
            hash: Default::default(),
        }
    }

    #[test]
    fn the_partial_reads_agree_with_the_whole_decode() {
        let ctx = crate::RequestContext::system("timer/o1/triage");
        let mut metadata = EventMetadata::new(ctx.command_meta(time::OffsetDateTime::UNIX_EPOCH));
        for traceparent in [
            None,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
        ] {
            metadata.traceparent = traceparent;
            let event = stored(&metadata);
            let whole = EventMetadata::decode(&event).unwrap();
            assert_eq!(
                EventMetadata::command_id_of(&event).unwrap(),
                whole.command.command_id
            );
            assert_eq!(EventMetadata::traceparent_of(&event), whole.traceparent);
        }
        let broken = RecordedEvent {
            metadata: b"{\"actor\":1}".to_vec(),
            ..stored(&metadata)
        };
        assert!(EventMetadata::command_id_of(&broken).is_err());
        assert_eq!(EventMetadata::traceparent_of(&broken), None);
    }
}
