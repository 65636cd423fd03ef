//! The Lease service over gRPC.

use etcd_proto::etcdserverpb as pb;
use pb::lease_client::LeaseClient;

use super::streaming::bidi_service;
use super::{DEFAULT_MAX_RESPONSE_SIZE, max_response_size, unary_service};
use crate::transport::GrpcTransport;

/// etcd's Lease service over a gRPC transport: `Service<pb::LeaseGrantRequest>`,
/// `Service<pb::LeaseRevokeRequest>`, `Service<pb::LeaseTimeToLiveRequest>`,
/// `Service<pb::LeaseLeasesRequest>` and, for keep-alives,
/// `Service<RequestStream<pb::LeaseKeepAliveRequest>>`, whose every call opens one
/// bidirectional stream.
///
/// It implements [`LeaseService`](crate::lease::LeaseService) and
/// [`LeaseKeepAliveService`](crate::lease::LeaseKeepAliveService). A broken keep-alive
/// stream ends with an [`Error`](crate::Error) classified like any other call's.
#[derive(Clone, Debug)]
pub struct GrpcLease<T> {
    inner: LeaseClient<T>,
    transport: T,
    require_leader: bool,
    /// The largest response message accepted.
    max_response_size: usize,
}

impl<T: GrpcTransport> GrpcLease<T> {
    /// Wraps a transport, accepting responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes
    /// (see `max_response_size`).
    pub fn new(transport: T) -> Self {
        Self {
            inner: LeaseClient::new(transport.clone())
                .max_decoding_message_size(DEFAULT_MAX_RESPONSE_SIZE),
            transport,
            require_leader: false,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
        }
    }

    /// Asks the server to serve keep-alive streams opened through this adapter only while
    /// its member has a leader (metadata `hasleader: true`). A member that loses its leader
    /// then ends the stream with
    /// [`ServerErrorKind::NoLeader`](crate::ServerErrorKind::NoLeader) instead of keeping
    /// it open without renewing anything.
    pub fn require_leader(mut self, require: bool) -> Self {
        self.require_leader = require;
        self
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &LeaseClient<T> {
        &self.inner
    }
}

max_response_size!(GrpcLease, max_response_size);

unary_service!(
    GrpcLease,
    pb::LeaseGrantRequest,
    pb::LeaseGrantResponse,
    lease_grant
);
unary_service!(
    GrpcLease,
    pb::LeaseRevokeRequest,
    pb::LeaseRevokeResponse,
    lease_revoke
);
unary_service!(
    GrpcLease,
    pb::LeaseTimeToLiveRequest,
    pb::LeaseTimeToLiveResponse,
    lease_time_to_live
);
unary_service!(
    GrpcLease,
    pb::LeaseLeasesRequest,
    pb::LeaseLeasesResponse,
    lease_leases
);

bidi_service!(
    GrpcLease,
    pb::LeaseKeepAliveRequest,
    pb::LeaseKeepAliveResponse,
    "/etcdserverpb.Lease/LeaseKeepAlive"
);
