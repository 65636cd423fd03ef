//! The services under the client's handles, one type per etcd service.
//!
//! Each wraps the stack of layers its calls go through (namespace, retries and the call
//! deadline, re-authentication, failover across the members, the member's connection), so
//! that a handle's type, such as [`Kv`](crate::Kv) = `etcd_core::Kv<KvStack>`, stays the
//! same whatever layers the client adds or drops. They are tower services of etcd's request
//! messages, usable wherever `etcd-core`, `etcd-lease` or `etcd-watch` take one.

use std::task::{Context, Poll};

use etcd_core::grpc::{
    GrpcAuth, GrpcCluster, GrpcElection, GrpcKv, GrpcLease, GrpcLock, GrpcMaintenance, GrpcWatch,
};
use etcd_core::layer::{Failover, Monotonic};
use etcd_core::namespace::future::ResponseFuture;
use etcd_core::proto::etcdserverpb as pb;
use etcd_core::proto::{v3electionpb, v3lockpb};
use etcd_core::stream::{RequestStream, ResponseStream};
use etcd_core::{Error, Result};
use futures_util::future::BoxFuture;

use crate::auth_session::Reauth;
use crate::member_transport::AuthedTransport;
use crate::stack::{Stack, StackWithoutNamespace};

/// The future of a call through a stack without a namespace.
type Boxed<T> = BoxFuture<'static, Result<T>>;
/// The future of a call through a stack with a namespace.
type Prefixed<T> = ResponseFuture<BoxFuture<'static, Result<T>>>;

macro_rules! stack_service {
    (
        $(
            $(#[$meta:meta])*
            $name:ident($inner:ty)
        ),+ -> $future:ident $calls:tt
    ) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Debug)]
            pub struct $name(pub(crate) $inner);

            stack_service!(@calls $name $future $calls);
        )+
    };
    (@calls $name:ident $future:ident { $($request:ty => $response:ty),+ $(,)? }) => {
        $(
            impl tower::Service<$request> for $name {
                type Response = $response;
                type Error = Error;
                type Future = $future<$response>;

                fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
                    tower::Service::<$request>::poll_ready(&mut self.0, cx)
                }

                fn call(&mut self, request: $request) -> Self::Future {
                    self.0.call(request)
                }
            }
        )+
    };
}

stack_service! {
    /// The KV calls of a client (`Range`, `Put`, `DeleteRange`, `Txn`, `Compact`).
    KvStack(Stack<Monotonic<GrpcKv<AuthedTransport>>>) -> Prefixed {
        pb::RangeRequest => pb::RangeResponse,
        pb::PutRequest => pb::PutResponse,
        pb::DeleteRangeRequest => pb::DeleteRangeResponse,
        pb::TxnRequest => pb::TxnResponse,
        pb::CompactionRequest => pb::CompactionResponse,
    }
}

stack_service! {
    /// The lease calls of a client, and its keep-alive stream.
    LeaseStack(Stack<GrpcLease<AuthedTransport>>) -> Prefixed {
        pb::LeaseGrantRequest => pb::LeaseGrantResponse,
        pb::LeaseRevokeRequest => pb::LeaseRevokeResponse,
        pb::LeaseTimeToLiveRequest => pb::LeaseTimeToLiveResponse,
        pb::LeaseLeasesRequest => pb::LeaseLeasesResponse,
        RequestStream<pb::LeaseKeepAliveRequest> => ResponseStream<pb::LeaseKeepAliveResponse>,
    }
}

stack_service! {
    /// The watch stream of a client.
    WatchStack(Stack<GrpcWatch<AuthedTransport>>) -> Prefixed {
        RequestStream<pb::WatchRequest> => ResponseStream<pb::WatchResponse>,
    }
}

stack_service! {
    /// The cluster membership calls of a client.
    ClusterStack(StackWithoutNamespace<GrpcCluster<AuthedTransport>>) -> Boxed {
        pb::MemberListRequest => pb::MemberListResponse,
        pb::MemberAddRequest => pb::MemberAddResponse,
        pb::MemberRemoveRequest => pb::MemberRemoveResponse,
        pb::MemberUpdateRequest => pb::MemberUpdateResponse,
        pb::MemberPromoteRequest => pb::MemberPromoteResponse,
    }
}

stack_service! {
    /// The auth calls of a client: users, roles, permissions, tokens.
    AuthStack(StackWithoutNamespace<GrpcAuth<AuthedTransport>>) -> Boxed {
        pb::AuthEnableRequest => pb::AuthEnableResponse,
        pb::AuthDisableRequest => pb::AuthDisableResponse,
        pb::AuthStatusRequest => pb::AuthStatusResponse,
        pb::AuthenticateRequest => pb::AuthenticateResponse,
        pb::AuthUserAddRequest => pb::AuthUserAddResponse,
        pb::AuthUserGetRequest => pb::AuthUserGetResponse,
        pb::AuthUserListRequest => pb::AuthUserListResponse,
        pb::AuthUserDeleteRequest => pb::AuthUserDeleteResponse,
        pb::AuthUserChangePasswordRequest => pb::AuthUserChangePasswordResponse,
        pb::AuthUserGrantRoleRequest => pb::AuthUserGrantRoleResponse,
        pb::AuthUserRevokeRoleRequest => pb::AuthUserRevokeRoleResponse,
        pb::AuthRoleAddRequest => pb::AuthRoleAddResponse,
        pb::AuthRoleGetRequest => pb::AuthRoleGetResponse,
        pb::AuthRoleListRequest => pb::AuthRoleListResponse,
        pb::AuthRoleDeleteRequest => pb::AuthRoleDeleteResponse,
        pb::AuthRoleGrantPermissionRequest => pb::AuthRoleGrantPermissionResponse,
        pb::AuthRoleRevokePermissionRequest => pb::AuthRoleRevokePermissionResponse,
    }
}

stack_service! {
    /// The maintenance calls of a client, spread over the members with failover.
    MaintenanceStack(Reauth<Failover<GrpcMaintenance<AuthedTransport>>>),
    /// The maintenance calls of one member, without failover.
    MemberMaintenanceStack(Reauth<GrpcMaintenance<AuthedTransport>>) -> Boxed {
        pb::AlarmRequest => pb::AlarmResponse,
        pb::StatusRequest => pb::StatusResponse,
        pb::DefragmentRequest => pb::DefragmentResponse,
        pb::HashRequest => pb::HashResponse,
        pb::HashKvRequest => pb::HashKvResponse,
        pb::MoveLeaderRequest => pb::MoveLeaderResponse,
        pb::SnapshotRequest => ResponseStream<pb::SnapshotResponse>,
        pb::DowngradeRequest => pb::DowngradeResponse,
    }
}

stack_service! {
    /// The calls of etcd's server-side Lock service.
    LockStack(Stack<GrpcLock<AuthedTransport>>) -> Prefixed {
        v3lockpb::LockRequest => v3lockpb::LockResponse,
        v3lockpb::UnlockRequest => v3lockpb::UnlockResponse,
    }
}

stack_service! {
    /// The calls of etcd's server-side Election service.
    ElectionStack(Stack<GrpcElection<AuthedTransport>>) -> Prefixed {
        v3electionpb::CampaignRequest => v3electionpb::CampaignResponse,
        v3electionpb::ProclaimRequest => v3electionpb::ProclaimResponse,
        v3electionpb::LeaderRequest => v3electionpb::LeaderResponse,
        v3electionpb::ResignRequest => v3electionpb::ResignResponse,
        etcd_core::election::ObserveRequest => ResponseStream<v3electionpb::LeaderResponse>,
    }
}
