//! The lease service as transport-agnostic types: four unary calls and one bidirectional
//! keep-alive stream.
//!
//! The lease subsystem (`etcd-lease`) depends only on [`LeaseService`] (grant, revoke,
//! time-to-live, list) and [`LeaseKeepAliveService`] (the keep-alive stream).
//! [`GrpcLease`](crate::grpc::GrpcLease) implements both over any gRPC transport; a
//! failover service over several members, a tower stack over either, or a scripted fake in
//! tests implements them just as well.

use etcd_proto::etcdserverpb as pb;

use crate::idempotency::Idempotency;
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

/// Granting twice grants two leases (or fails with "lease already exists" for a chosen ID).
impl Idempotency for pb::LeaseGrantRequest {
    fn is_read_only(&self) -> bool {
        false
    }
}

/// Revoking deletes the lease's keys.
impl Idempotency for pb::LeaseRevokeRequest {
    fn is_read_only(&self) -> bool {
        false
    }
}

impl Idempotency for pb::LeaseTimeToLiveRequest {
    fn is_read_only(&self) -> bool {
        true
    }
}

impl Idempotency for pb::LeaseLeasesRequest {
    fn is_read_only(&self) -> bool {
        true
    }
}
