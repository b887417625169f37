//! How `kurrentdb` client errors become [`StoreError`]s.
//!
//! The rule: whatever means "no usable answer" — a broken or refused connection, a deadline, a
//! node that is not the leader (the client reconnects to the leader for the next call), a
//! server that is not ready — is [`StoreError::Unavailable`], so the caller retries (with the
//! same command id, which is safe). What the server refused for good — access denied, a
//! request it cannot serve, a client-side fault — is [`StoreError::Backend`]. Conflicts
//! (`WrongExpectedVersion`) and missing streams are not decided here: the append and read
//! paths read those off the error themselves.

use diandan_store::StoreError;
use kurrentdb::Error;
use tonic::Code;

/// `what` failed with `error`.
pub fn store_error(what: &str, error: &Error) -> StoreError {
    let unavailable = match error {
        Error::ConnectionClosed
        | Error::GrpcConnectionError(_)
        | Error::NotLeaderException(_)
        | Error::DeadlineExceeded
        // The client folds Unavailable, Internal, Unknown and DataLoss into this one; all of
        // them leave the caller nothing to fix, so it retries.
        | Error::ServerError(_) => true,
        Error::Grpc { code, .. } => matches!(
            code,
            Code::Unavailable
                | Code::Cancelled
                | Code::Aborted
                | Code::ResourceExhausted
                | Code::DeadlineExceeded
        ),
        _ => false,
    };
    let message = match error {
        Error::AccessDenied => {
            format!("{what}: access denied (check the user and password in the connection string)")
        }
        other => format!("{what}: {other}"),
    };
    if unavailable {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// The revision a `WrongExpectedVersion` says the stream is at (`None`: no stream).
pub fn actual_revision(current: &kurrentdb::CurrentRevision) -> Option<u64> {
    match current {
        kurrentdb::CurrentRevision::Current(revision) => Some(*revision),
        kurrentdb::CurrentRevision::NoStream => None,
    }
}

/// A stored event is not what this crate can read.
pub fn unreadable(stream: &str, revision: u64, why: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!(
        "event {revision} of {stream} cannot be read: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_unavailable(error: Error) -> bool {
        matches!(store_error("append", &error), StoreError::Unavailable(_))
    }

    #[test]
    fn no_answer_is_unavailable() {
        assert!(is_unavailable(Error::ConnectionClosed));
        assert!(is_unavailable(Error::DeadlineExceeded));
        assert!(is_unavailable(Error::ServerError(
            "status: Unavailable".into()
        )));
        assert!(is_unavailable(Error::NotLeaderException(
            kurrentdb::Endpoint {
                host: "node-2".into(),
                port: 2113,
            }
        )));
        assert!(is_unavailable(Error::GrpcConnectionError(
            kurrentdb::GrpcConnectionError::MaxDiscoveryAttemptReached(3)
        )));
        for code in [Code::Unavailable, Code::Aborted, Code::ResourceExhausted] {
            assert!(is_unavailable(Error::Grpc {
                code,
                message: "busy".into()
            }));
        }
    }

    #[test]
    fn refusals_are_backend_failures() {
        assert!(!is_unavailable(Error::AccessDenied));
        assert!(!is_unavailable(Error::UnsupportedFeature));
        assert!(!is_unavailable(Error::InternalClientError));
        assert!(!is_unavailable(Error::Grpc {
            code: Code::InvalidArgument,
            message: "bad position".into()
        }));
        match store_error("read", &Error::AccessDenied) {
            StoreError::Backend(message) => {
                assert!(message.starts_with("read: access denied"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conflicts_report_the_actual_revision() {
        assert_eq!(
            actual_revision(&kurrentdb::CurrentRevision::Current(4)),
            Some(4)
        );
        assert_eq!(actual_revision(&kurrentdb::CurrentRevision::NoStream), None);
    }
}
