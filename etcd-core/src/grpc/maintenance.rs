//! The Maintenance service over gRPC.

use std::task::{Context, Poll};

use etcd_proto::etcdserverpb as pb;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use pb::maintenance_client::MaintenanceClient;

use super::{DEFAULT_MAX_RESPONSE_SIZE, max_response_size, unary_service};
use crate::error::{Error, Result};
use crate::stream::ResponseStream;
use crate::transport::GrpcTransport;

/// etcd's Maintenance service over a gRPC transport: `Service<pb::AlarmRequest>`,
/// `Service<pb::StatusRequest>`, `Service<pb::DefragmentRequest>`,
/// `Service<pb::HashRequest>`, `Service<pb::HashKvRequest>`,
/// `Service<pb::MoveLeaderRequest>`, `Service<pb::DowngradeRequest>` and, for snapshots,
/// `Service<pb::SnapshotRequest>` answered with the stream of snapshot chunks.
///
/// It implements [`MaintenanceService`](crate::maintenance::MaintenanceService). Snapshot
/// chunks are decoded up to the adapter's response limit; a broken snapshot stream ends with an
/// [`Error`] classified like any other call's.
#[derive(Clone, Debug)]
pub struct GrpcMaintenance<T> {
    inner: MaintenanceClient<T>,
}

impl<T: GrpcTransport> GrpcMaintenance<T> {
    /// Wraps a transport, accepting responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes
    /// (see `max_response_size`).
    pub fn new(transport: T) -> Self {
        Self {
            inner: MaintenanceClient::new(transport)
                .max_decoding_message_size(DEFAULT_MAX_RESPONSE_SIZE),
        }
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &MaintenanceClient<T> {
        &self.inner
    }
}

max_response_size!(GrpcMaintenance);

unary_service!(GrpcMaintenance, pb::AlarmRequest, pb::AlarmResponse, alarm);
unary_service!(
    GrpcMaintenance,
    pb::StatusRequest,
    pb::StatusResponse,
    status
);
unary_service!(
    GrpcMaintenance,
    pb::DefragmentRequest,
    pb::DefragmentResponse,
    defragment
);
unary_service!(GrpcMaintenance, pb::HashRequest, pb::HashResponse, hash);
unary_service!(
    GrpcMaintenance,
    pb::HashKvRequest,
    pb::HashKvResponse,
    hash_kv
);
unary_service!(
    GrpcMaintenance,
    pb::MoveLeaderRequest,
    pb::MoveLeaderResponse,
    move_leader
);
unary_service!(
    GrpcMaintenance,
    pb::DowngradeRequest,
    pb::DowngradeResponse,
    downgrade
);

impl<T: GrpcTransport> tower::Service<pb::SnapshotRequest> for GrpcMaintenance<T> {
    type Response = ResponseStream<pb::SnapshotResponse>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ResponseStream<pb::SnapshotResponse>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        // The generated client waits for the transport to be ready inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: pb::SnapshotRequest) -> Self::Future {
        let mut client = self.inner.clone();
        Box::pin(async move {
            let responses = client.snapshot(request).await.map_err(Error::from)?;
            Ok(responses
                .into_inner()
                .map(|item| item.map_err(Error::from))
                .boxed())
        })
    }
}
