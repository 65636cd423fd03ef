//! The Lease service over gRPC.

use std::task::{Context, Poll};

use etcd_proto::etcdserverpb as pb;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use pb::lease_client::LeaseClient;

use super::{MAX_DECODING_MESSAGE_SIZE, unary_service};
use crate::error::{Error, Result};
use crate::stream::{RequestStream, ResponseStream};
use crate::transport::GrpcTransport;

/// The metadata key etcd reads to refuse serving a stream from a member without a leader.
const HAS_LEADER: &str = "hasleader";

/// etcd's Lease service over a gRPC transport: `Service<pb::LeaseGrantRequest>`,
/// `Service<pb::LeaseRevokeRequest>`, `Service<pb::LeaseTimeToLiveRequest>`,
/// `Service<pb::LeaseLeasesRequest>` and, for keep-alives,
/// `Service<RequestStream<pb::LeaseKeepAliveRequest>>`, whose every call opens one
/// bidirectional stream.
///
/// It implements [`LeaseService`](crate::lease::LeaseService) and
/// [`LeaseKeepAliveService`](crate::lease::LeaseKeepAliveService). A broken keep-alive
/// stream ends with an [`Error`] classified like any other call's.
#[derive(Clone, Debug)]
pub struct GrpcLease<T> {
    inner: LeaseClient<T>,
    require_leader: bool,
}

impl<T: GrpcTransport> GrpcLease<T> {
    /// Wraps a transport, with no limit on the size of decoded responses.
    pub fn new(transport: T) -> Self {
        Self {
            inner: LeaseClient::new(transport).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            require_leader: false,
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

impl<T: GrpcTransport> tower::Service<RequestStream<pb::LeaseKeepAliveRequest>> for GrpcLease<T> {
    type Response = ResponseStream<pb::LeaseKeepAliveResponse>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ResponseStream<pb::LeaseKeepAliveResponse>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        // The generated client waits for the transport to be ready inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, requests: RequestStream<pb::LeaseKeepAliveRequest>) -> Self::Future {
        let client = self.inner.clone();
        let mut request = tonic::Request::new(Requests(requests));
        if self.require_leader {
            request.metadata_mut().insert(
                HAS_LEADER,
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
        Box::pin(open(client, request))
    }
}

/// Opens one keep-alive stream and maps its statuses to typed errors.
async fn open<T: GrpcTransport>(
    mut client: LeaseClient<T>,
    request: tonic::Request<Requests>,
) -> Result<ResponseStream<pb::LeaseKeepAliveResponse>> {
    fn classify(
        item: Result<pb::LeaseKeepAliveResponse, tonic::Status>,
    ) -> Result<pb::LeaseKeepAliveResponse> {
        item.map_err(Error::from)
    }
    let responses = client
        .lease_keep_alive(request)
        .await
        .map_err(Error::from)?;
    Ok(responses.into_inner().map(classify).boxed())
}

/// The outgoing stream under a concrete type (the compiler cannot prove the boxed stream
/// `Send` through tonic's generic streaming call otherwise).
struct Requests(RequestStream<pb::LeaseKeepAliveRequest>);

impl futures_core::Stream for Requests {
    type Item = pb::LeaseKeepAliveRequest;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}
