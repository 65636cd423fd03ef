//! The Cluster service over gRPC.

use etcd_proto::etcdserverpb as pb;
use pb::cluster_client::ClusterClient;

use super::{DEFAULT_MAX_RESPONSE_SIZE, max_response_size, unary_service};
use crate::transport::GrpcTransport;

/// etcd's Cluster service over a gRPC transport: `Service<pb::MemberListRequest>`,
/// `Service<pb::MemberAddRequest>`, `Service<pb::MemberRemoveRequest>`,
/// `Service<pb::MemberUpdateRequest>` and `Service<pb::MemberPromoteRequest>`.
///
/// It implements [`ClusterService`](crate::cluster::ClusterService).
#[derive(Clone, Debug)]
pub struct GrpcCluster<T> {
    inner: ClusterClient<T>,
}

impl<T: GrpcTransport> GrpcCluster<T> {
    /// Wraps a transport, accepting responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes
    /// (see `max_response_size`).
    pub fn new(transport: T) -> Self {
        Self {
            inner: ClusterClient::new(transport)
                .max_decoding_message_size(DEFAULT_MAX_RESPONSE_SIZE),
        }
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &ClusterClient<T> {
        &self.inner
    }
}

max_response_size!(GrpcCluster);

unary_service!(
    GrpcCluster,
    pb::MemberListRequest,
    pb::MemberListResponse,
    member_list
);
unary_service!(
    GrpcCluster,
    pb::MemberAddRequest,
    pb::MemberAddResponse,
    member_add
);
unary_service!(
    GrpcCluster,
    pb::MemberRemoveRequest,
    pb::MemberRemoveResponse,
    member_remove
);
unary_service!(
    GrpcCluster,
    pb::MemberUpdateRequest,
    pb::MemberUpdateResponse,
    member_update
);
unary_service!(
    GrpcCluster,
    pb::MemberPromoteRequest,
    pb::MemberPromoteResponse,
    member_promote
);
