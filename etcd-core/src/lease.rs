//! The lease service as transport-agnostic types: four unary calls and one bidirectional
//! keep-alive stream.
//!
//! The lease subsystem (`etcd-lease`) depends only on [`LeaseService`] (grant, revoke,
//! time-to-live, list) and [`LeaseKeepAliveService`] (the keep-alive stream).
//! [`GrpcLease`](crate::grpc::GrpcLease) implements both over any gRPC transport; a
//! failover service over several members, a tower stack over either, or a scripted fake in
//! tests implements them just as well.

use std::fmt;

use etcd_proto::etcdserverpb as pb;

use crate::stream::{RequestStream, ResponseStream};

crate::service::service_alias! {
    /// etcd's unary Lease calls as tower services of their request messages:
    /// `LeaseGrant`, `LeaseRevoke`, `LeaseTimeToLive` and `LeaseLeases`.
    LeaseService {
        pb::LeaseGrantRequest => pb::LeaseGrantResponse,
        pb::LeaseRevokeRequest => pb::LeaseRevokeResponse,
        pb::LeaseTimeToLiveRequest => pb::LeaseTimeToLiveResponse,
        pb::LeaseLeasesRequest => pb::LeaseLeasesResponse,
    }
}

crate::service::service_alias! {
    /// etcd's `LeaseKeepAlive` call as a tower service: each call opens one bidirectional
    /// stream.
    ///
    /// The request is the stream of keep-alive requests to send; the response is the stream of
    /// the server's replies (one per request, in order), which ends with an
    /// [`Error`](crate::Error) when the stream breaks. Opening may complete only once the
    /// server has answered the first request, so callers must send before they wait.
    LeaseKeepAliveService {
        RequestStream<pb::LeaseKeepAliveRequest> => ResponseStream<pb::LeaseKeepAliveResponse>,
    }
}

/// Why a lease is no longer kept alive.
///
/// Two classes, told apart by [`LossReason::is_known_gone`]: the server *said* the lease is
/// gone ([`NotFound`](LossReason::NotFound), [`Revoked`](LossReason::Revoked)), or the
/// client could not renew it in time and the lease *may* be gone
/// ([`Expired`](LossReason::Expired), [`Halted`](LossReason::Halted)). In the second
/// case the lease can outlive the signal: a newly elected leader refreshes every lease, so
/// re-check with a time-to-live call before relying on
/// either answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LossReason {
    /// No keep-alive was acknowledged before the local deadline (the send time of the last
    /// acknowledged renewal + TTL; the server restarted the TTL no earlier than that send):
    /// the lease possibly expired while the cluster was unreachable.
    Expired,
    /// The server answered a keep-alive with TTL 0: the lease expired or was revoked
    /// elsewhere.
    NotFound,
    /// The lease was revoked through this client.
    Revoked,
    /// The keep-alive task stopped (its runtime shut down); the lease is no longer renewed.
    Halted,
}

impl LossReason {
    /// True when the server confirmed the lease is gone; false when it only may be gone.
    pub fn is_known_gone(self) -> bool {
        matches!(self, LossReason::NotFound | LossReason::Revoked)
    }
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossReason::Expired => "possibly expired: no keep-alive acknowledged in time",
            LossReason::NotFound => "not found on the server",
            LossReason::Revoked => "revoked",
            LossReason::Halted => "keep-alive task stopped",
        })
    }
}
