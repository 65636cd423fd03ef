//! The error type of the lease subsystem.

use etcd_core::ServerErrorKind;

/// `Result` with the lease [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a lease call or a keep-alive.
///
/// The lease-specific variants carry the lease ID; everything else is the core
/// [`etcd_core::Error`] (a server error, a timeout, a transport failure, or a request
/// refused before it was sent).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server says the lease does not exist: it expired, was revoked, or was never
    /// granted (a keep-alive reply with TTL 0, or a time-to-live of -1).
    #[error("lease {id} not found (expired, revoked or never granted)")]
    NotFound {
        /// The lease.
        id: i64,
    },
    /// No keep-alive was acknowledged before the lease's local deadline (the send time of
    /// the last acknowledged renewal + TTL, or the first-acknowledgement timeout): the
    /// lease may have expired on the server, or may still exist. Check with
    /// [`Lessor::time_to_live`](crate::Lessor::time_to_live) once the cluster is reachable.
    #[error("lease {id} may have expired: no keep-alive was acknowledged in time")]
    Expired {
        /// The lease.
        id: i64,
    },
    /// The lease was revoked through this client while the keep-alive was being set up.
    #[error("lease {id} was revoked")]
    Revoked {
        /// The lease.
        id: i64,
    },
    /// The background keep-alive task is gone (its runtime shut down).
    #[error("the lease keep-alive task has stopped")]
    Halted,
    /// The call itself failed: see [`etcd_core::Error`].
    #[error(transparent)]
    Core(#[from] etcd_core::Error),
}

impl Error {
    /// True when the server said the lease does not exist, as a keep-alive reply
    /// ([`Error::NotFound`]) or as an error status (`etcdserver: requested lease not
    /// found`, for example from a revoke).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Core(e) => e.server_kind() == Some(ServerErrorKind::LeaseNotFound),
            _ => false,
        }
    }

    /// The server error kind, when etcd answered with an error status.
    pub fn server_kind(&self) -> Option<ServerErrorKind> {
        match self {
            Error::Core(e) => e.server_kind(),
            _ => None,
        }
    }

    /// The reason a request was refused before it was sent, when it was.
    pub fn invalid_request(&self) -> Option<&etcd_core::InvalidRequest> {
        match self {
            Error::Core(e) => e.invalid_request(),
            _ => None,
        }
    }

    /// The error for a keep-alive that ended for `reason`.
    pub(crate) fn from_loss(id: i64, reason: crate::LossReason) -> Self {
        use crate::LossReason;
        match reason {
            LossReason::Expired => Error::Expired { id },
            LossReason::NotFound => Error::NotFound { id },
            LossReason::Revoked => Error::Revoked { id },
            LossReason::Halted => Error::Halted,
        }
    }
}

impl From<etcd_core::InvalidRequest> for Error {
    fn from(e: etcd_core::InvalidRequest) -> Self {
        Error::Core(e.into())
    }
}
