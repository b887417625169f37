//! How async-nats failures become [`StoreError`]s.
//!
//! The rule: when the server answered with a JetStream API error, it is a
//! [`StoreError::Backend`] unless the error says JetStream is (for now) unavailable (HTTP-like
//! code 503, e.g. a stream without a leader during an election) or timed out; every failure to
//! get an answer at all (time-outs, no responders, a broken connection) is
//! [`StoreError::Unavailable`]. Nothing here decides about conflicts; the append path reads
//! those off the publish error itself.

use std::fmt::Display;

use async_nats::jetstream;
use diandan_store::StoreError;

/// The server refused `what` with a JetStream API error.
pub fn api(what: &str, error: &jetstream::Error) -> StoreError {
    match error.code() {
        503 | 408 | 504 => StoreError::Unavailable(format!("{what}: {error}")),
        _ => StoreError::Backend(format!("{what}: {error}")),
    }
}

/// `what` got no usable answer.
pub fn unavailable(what: &str, error: impl Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {error}"))
}

/// Something stored in the stream is not what this crate writes.
pub fn corrupt(sequence: u64, why: impl Display) -> StoreError {
    StoreError::Backend(format!("message {sequence} is not a diandan commit: {why}"))
}

/// The JetStream API error behind an async-nats error, if the server sent one.
pub fn api_error_of<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a jetstream::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(api) = error.downcast_ref::<jetstream::Error>() {
            return Some(api);
        }
        current = error.source();
    }
    None
}
