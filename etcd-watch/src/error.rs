//! Why a watch ended.

use etcd_core::{ServerError, ServerErrorKind};

/// Why a watch ended, or could not be created.
///
/// Every error a [`WatchStream`](crate::WatchStream) yields is terminal: the stream ends
/// after it. A broken connection is **not** an error: the watch is resumed on a new stream
/// without loss or duplicates, and the stream goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The revision the watch had to continue from was compacted away: events between the
    /// last delivered one and `compact_revision` can no longer be delivered. Re-read the
    /// current state (a get at the latest revision) and watch again from its revision + 1.
    #[error("the watch's next revision was compacted (compact revision {compact_revision})")]
    Compacted {
        /// The revision the history was compacted to; the oldest revision still watchable.
        compact_revision: i64,
    },
    /// The server canceled the watch or refused to create it (for example: permission
    /// denied, or an invalid range).
    #[error("watch canceled by the server: {reason}")]
    Canceled {
        /// The server's reason, as sent.
        reason: String,
    },
    /// The stream was opened with require-leader, and its member lost its leader.
    #[error("the member serving the watch has no leader (etcdserver: no leader)")]
    NoLeader,
    /// The request was invalid, or the watcher's background task is gone.
    #[error(transparent)]
    Core(#[from] etcd_core::Error),
}

impl Error {
    /// The compact revision when the watch ended because of compaction.
    pub fn compact_revision(&self) -> Option<i64> {
        match self {
            Error::Compacted { compact_revision } => Some(*compact_revision),
            _ => None,
        }
    }

    /// The server's error behind this one: for [`Error::Canceled`], parsed from the
    /// reason (`rpc error: code = PermissionDenied desc = etcdserver: permission denied`,
    /// or a bare `etcdserver: ...` message) and classified like any status; for
    /// [`Error::Core`], the server error it holds.
    pub fn server_error(&self) -> Option<ServerError> {
        match self {
            Error::Canceled { reason } => Some(parse_reason(reason)),
            Error::Core(etcd_core::Error::Server(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// The kind of the server's error behind this one (see
    /// [`server_error`](Self::server_error)): for example
    /// [`ServerErrorKind::PermissionDenied`] for a watch on a key the user may not read.
    pub fn server_kind(&self) -> Option<ServerErrorKind> {
        match self {
            Error::Core(e) => e.server_kind(),
            _ => self.server_error().map(|e| e.kind()),
        }
    }

    /// The error used when the watcher's background task is gone (its runtime shut down).
    pub(crate) fn closed() -> Self {
        Error::Core(etcd_core::Error::Protocol(
            "the watcher's background task has stopped".into(),
        ))
    }
}

/// A cancel reason as a server error: gRPC's `rpc error: code = <Code> desc = <message>`
/// text, or a bare message (code `Unknown`).
fn parse_reason(reason: &str) -> ServerError {
    let parsed = reason
        .strip_prefix("rpc error: code = ")
        .and_then(|rest| rest.split_once(" desc = "));
    match parsed {
        Some((code, message)) => ServerError::new(code_named(code.trim()), message),
        None => ServerError::new(tonic::Code::Unknown, reason),
    }
}

/// The gRPC code of the name Go's `codes.Code.String` gives it.
fn code_named(name: &str) -> tonic::Code {
    use tonic::Code;
    match name {
        "OK" => Code::Ok,
        "Canceled" => Code::Cancelled,
        "InvalidArgument" => Code::InvalidArgument,
        "DeadlineExceeded" => Code::DeadlineExceeded,
        "NotFound" => Code::NotFound,
        "AlreadyExists" => Code::AlreadyExists,
        "PermissionDenied" => Code::PermissionDenied,
        "ResourceExhausted" => Code::ResourceExhausted,
        "FailedPrecondition" => Code::FailedPrecondition,
        "Aborted" => Code::Aborted,
        "OutOfRange" => Code::OutOfRange,
        "Unimplemented" => Code::Unimplemented,
        "Internal" => Code::Internal,
        "Unavailable" => Code::Unavailable,
        "DataLoss" => Code::DataLoss,
        "Unauthenticated" => Code::Unauthenticated,
        _ => Code::Unknown,
    }
}

/// Whether a refusal may pass with a new auth token. etcd 3.5.1 refuses a watch with an
/// expired token as "permission denied", so that counts too.
pub(crate) fn is_auth_refusal(kind: Option<ServerErrorKind>) -> bool {
    matches!(
        kind,
        Some(
            ServerErrorKind::InvalidAuthToken
                | ServerErrorKind::AuthOldRevision
                | ServerErrorKind::UserEmpty
                | ServerErrorKind::PermissionDenied
        )
    )
}

#[cfg(test)]
mod reason_tests {
    use super::*;

    #[test]
    fn cancel_reasons_are_classified() {
        let kind = |reason: &str| {
            Error::Canceled {
                reason: reason.into(),
            }
            .server_kind()
        };
        // etcd 3.5.1 (a forbidden key, or an expired token)
        assert_eq!(
            kind("rpc error: code = PermissionDenied desc = etcdserver: permission denied"),
            Some(ServerErrorKind::PermissionDenied)
        );
        assert_eq!(
            kind("etcdserver: permission denied"),
            Some(ServerErrorKind::PermissionDenied)
        );
        // etcd 3.4.23
        assert_eq!(
            kind("rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"),
            Some(ServerErrorKind::InvalidAuthToken)
        );
        assert_eq!(
            kind(
                "rpc error: code = InvalidArgument desc = etcdserver: revision of auth store is old"
            ),
            Some(ServerErrorKind::AuthOldRevision)
        );
        let parsed = Error::Canceled {
            reason: "rpc error: code = Unauthenticated desc = something new".into(),
        }
        .server_error()
        .unwrap();
        assert_eq!(parsed.code(), tonic::Code::Unauthenticated);
        assert_eq!(parsed.message(), "something new");
        assert_eq!(kind("watch creation refused"), Some(ServerErrorKind::Other));
        assert_eq!(Error::NoLeader.server_kind(), None);
        assert!(is_auth_refusal(kind("etcdserver: user name is empty")));
        assert!(!is_auth_refusal(kind("watch creation refused")));
    }
}
