//! Store events ⇄ CloudEvents 1.0 in the NATS binding's binary content mode.
//!
//! Decoding is strict: a message on a diandan subject that is not a diandan CloudEvent of a
//! known schema version is rejected with the reason, so it is logged and never applied.

use async_nats::HeaderMap;
use bytes::Bytes;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use diandan_runtime::commands::{EventMetadata, SCHEMA_VERSION};
use diandan_store::RecordedEvent;

use crate::{BusError, SUBJECT_PREFIX};

const SPEC_VERSION: &str = "1.0";
const TYPE_PREFIX: &str = "cn.diandan.";

/// A relayed event and the position of the event relayed before it (0 for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEvent {
    pub event: RecordedEvent,
    pub prev_position: u64,
}

/// The subject an event is published on.
pub fn subject(event: &RecordedEvent, schema_version: u32) -> String {
    format!(
        "{SUBJECT_PREFIX}.{}.v{schema_version}.{}",
        event.event_type, event.stream
    )
}

/// Encodes an event for the bus: (subject, headers, body).
pub fn encode(event: &RecordedEvent, prev_position: u64) -> (String, HeaderMap, Bytes) {
    let meta = EventMetadata::decode(event).ok();
    let schema_version = meta.as_ref().map_or(SCHEMA_VERSION, |m| m.schema_version);
    let time =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.recorded_at_ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let id = event.event_id.to_string();
    headers.insert("ce-specversion", SPEC_VERSION);
    headers.insert("ce-id", id.as_str());
    headers.insert(
        "ce-type",
        format!("{TYPE_PREFIX}{}.v{schema_version}", event.event_type).as_str(),
    );
    headers.insert("ce-source", format!("/diandan/{}", event.stream).as_str());
    headers.insert("ce-subject", event.stream.as_str());
    headers.insert("ce-time", time.as_str());
    headers.insert("ce-diandanposition", event.position.to_string().as_str());
    headers.insert("ce-diandanprevposition", prev_position.to_string().as_str());
    headers.insert("ce-diandanrevision", event.revision.to_string().as_str());
    headers.insert(
        "ce-diandanrecordedms",
        event.recorded_at_ms.to_string().as_str(),
    );
    headers.insert(
        "ce-diandanhash",
        diandan_store::chain::to_hex(&event.hash).as_str(),
    );
    headers.insert(
        "ce-diandanmeta",
        String::from_utf8_lossy(&event.metadata).as_ref(),
    );
    if let Some(traceparent) = meta.and_then(|m| m.traceparent) {
        headers.insert("traceparent", traceparent.as_str());
    }
    headers.insert("content-type", "application/json");
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    (
        subject(event, schema_version),
        headers,
        Bytes::copy_from_slice(&event.data),
    )
}

/// Decodes a bus message, refusing anything that is not a diandan CloudEvent we understand.
pub fn decode(
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<BusEvent, BusError> {
    let reject = |reason: String| BusError::Rejected {
        subject: subject.to_owned(),
        reason,
    };
    let headers = headers.ok_or_else(|| reject("no CloudEvents headers".into()))?;
    let header = |name: &str| -> Result<String, BusError> {
        headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| reject(format!("missing header {name}")))
    };
    let number = |name: &str| -> Result<u64, BusError> {
        header(name)?
            .parse()
            .map_err(|_| reject(format!("header {name} is not a number")))
    };
    if header("ce-specversion")? != SPEC_VERSION {
        return Err(reject("unsupported CloudEvents specversion".into()));
    }
    let ce_type = header("ce-type")?;
    let (event_type, version) = ce_type
        .strip_prefix(TYPE_PREFIX)
        .and_then(|t| t.rsplit_once(".v"))
        .ok_or_else(|| reject(format!("foreign event type {ce_type}")))?;
    let version: u32 = version
        .parse()
        .map_err(|_| reject(format!("bad schema version in {ce_type}")))?;
    if version == 0 || version > SCHEMA_VERSION {
        return Err(reject(format!(
            "unknown schema version {version} of {event_type} (this build reads up to v{SCHEMA_VERSION})"
        )));
    }
    let stream = header("ce-subject")?;
    let expected_subject = format!("{SUBJECT_PREFIX}.{event_type}.v{version}.{stream}");
    if subject != expected_subject {
        return Err(reject(format!(
            "subject does not match its CloudEvent ({expected_subject})"
        )));
    }
    let event_id = uuid::Uuid::parse_str(&header("ce-id")?)
        .map_err(|_| reject("ce-id is not a UUID".into()))?;
    let metadata = header("ce-diandanmeta")?.into_bytes();
    serde_json::from_slice::<serde_json::Value>(payload)
        .map_err(|e| reject(format!("payload is not JSON: {e}")))?;
    let recorded_at_ms = header("ce-diandanrecordedms")?
        .parse()
        .map_err(|_| reject("bad ce-diandanrecordedms".into()))?;
    let event = RecordedEvent {
        event_id,
        stream,
        revision: number("ce-diandanrevision")?,
        position: number("ce-diandanposition")?,
        event_type: event_type.to_owned(),
        data: payload.to_vec(),
        metadata,
        recorded_at_ms,
        // The event's hash-chain link, when the publisher carried it (older ones did not).
        hash: match headers.get("ce-diandanhash") {
            Some(hex) => diandan_store::chain::from_hex(hex.as_str())
                .ok_or_else(|| reject("bad ce-diandanhash".into()))?,
            None => [0; 32],
        },
    };
    let prev_position = number("ce-diandanprevposition")?;
    if prev_position >= event.position {
        return Err(reject(
            "previous position is not before the position".into(),
        ));
    }
    Ok(BusEvent {
        event,
        prev_position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> RecordedEvent {
        let meta = serde_json::json!({
            "actor": {"id": "r1", "role": "resident"},
            "at": "2026-11-22T09:00:00+08:00",
            "command_id": "c1",
            "correlation_id": "k1",
            "schema_version": 1,
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        });
        RecordedEvent {
            event_id: uuid::Uuid::new_v4(),
            stream: "order-o1".into(),
            revision: 3,
            position: 42,
            event_type: "OrderAccepted".into(),
            data: br#"{"type":"OrderAccepted","at":"2026-11-22T09:00:00+08:00","volunteer_id":"v1","team_id":"t1"}"#.to_vec(),
            metadata: serde_json::to_vec(&meta).unwrap(),
            recorded_at_ms: 1_795_000_000_000,
            hash: [0xab; 32],
        }
    }

    #[test]
    fn round_trip_with_subject_scheme_and_trace_context() {
        let e = event();
        let (subject, headers, body) = encode(&e, 40);
        assert_eq!(subject, "diandan.events.OrderAccepted.v1.order-o1");
        assert_eq!(
            headers.get("ce-type").unwrap().as_str(),
            "cn.diandan.OrderAccepted.v1"
        );
        assert_eq!(headers.get("ce-specversion").unwrap().as_str(), "1.0");
        assert!(headers
            .get("traceparent")
            .unwrap()
            .as_str()
            .starts_with("00-4bf92f35"));
        let msg_id = headers.get(async_nats::header::NATS_MESSAGE_ID).unwrap();
        assert_eq!(msg_id.as_str(), e.event_id.to_string());
        let back = decode(&subject, Some(&headers), &body).unwrap();
        assert_eq!(back.event, e);
        assert_eq!(back.prev_position, 40);
    }

    fn rejected(subject: &str, headers: Option<&HeaderMap>, body: &[u8]) -> String {
        match decode(subject, headers, body) {
            Err(BusError::Rejected { reason, .. }) => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn malformed_foreign_and_unknown_messages_are_rejected_with_the_reason() {
        let e = event();
        let (subject, headers, body) = encode(&e, 40);
        // No headers at all (a plain NATS publish on a diandan subject).
        assert!(rejected(&subject, None, b"{}").contains("headers"));
        // A foreign CloudEvent.
        let mut foreign = headers.clone();
        foreign.insert("ce-type", "com.example.Other.v1");
        assert!(rejected(&subject, Some(&foreign), &body).contains("foreign"));
        // A schema version this build does not know.
        let mut future = headers.clone();
        future.insert("ce-type", "cn.diandan.OrderAccepted.v9");
        let future_subject = "diandan.events.OrderAccepted.v9.order-o1";
        assert!(rejected(future_subject, Some(&future), &body).contains("unknown schema version"));
        // Another CloudEvents version.
        let mut old = headers.clone();
        old.insert("ce-specversion", "0.3");
        assert!(rejected(&subject, Some(&old), &body).contains("specversion"));
        // Published on a subject that does not match its attributes.
        assert!(rejected(
            "diandan.events.OrderClosed.v1.order-o1",
            Some(&headers),
            &body
        )
        .contains("subject"));
        // A body that is not JSON.
        assert!(rejected(&subject, Some(&headers), b"\xff\x00").contains("JSON"));
        // A broken id, a broken position.
        let mut bad_id = headers.clone();
        bad_id.insert("ce-id", "not-a-uuid");
        assert!(rejected(&subject, Some(&bad_id), &body).contains("UUID"));
        let mut bad_position = headers.clone();
        bad_position.insert("ce-diandanposition", "forty-two");
        assert!(rejected(&subject, Some(&bad_position), &body).contains("number"));
    }
}
