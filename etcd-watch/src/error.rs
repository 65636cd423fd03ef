//! Why a watch ended: the one [`etcd_core::Error`] of every crate of the client.
//!
//! Every error a [`WatchStream`](crate::WatchStream) yields is terminal: the stream ends
//! after it. A broken connection is **not** an error: the watch is resumed on a new stream
//! without loss or duplicates, and the stream goes on. The watch endings are
//! [`Error::WatchCompacted`], [`Error::WatchCanceled`] and [`Error::WatchNoLeader`], and
//! [`Error::ResponseTooLarge`] for every watch of a stream that brought a message over the
//! client's size limit; creating a watch can also fail as any call does (a refused
//! request, a timeout).

use etcd_core::ServerErrorKind;
pub use etcd_core::{Error, Result};

/// The error used when the watcher's background task is gone (its runtime shut down).
pub(crate) fn closed() -> Error {
    Error::Protocol("the watcher's background task has stopped".into())
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
mod tests {
    use super::*;

    #[test]
    fn auth_refusals_are_told_apart() {
        let kind = |reason: &str| {
            Error::WatchCanceled {
                reason: reason.into(),
            }
            .server_kind()
        };
        assert!(is_auth_refusal(kind("etcdserver: user name is empty")));
        assert!(is_auth_refusal(kind(
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
        )));
        assert!(!is_auth_refusal(kind("watch creation refused")));
        assert!(!is_auth_refusal(Error::WatchNoLeader.server_kind()));
    }
}
