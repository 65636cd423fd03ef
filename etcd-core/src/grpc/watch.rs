//! The Watch service over gRPC.

use std::task::{Context, Poll};

use etcd_proto::etcdserverpb as pb;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use pb::watch_client::WatchClient;

use super::MAX_DECODING_MESSAGE_SIZE;
use crate::error::{Error, Result};
use crate::stream::{RequestStream, ResponseStream};
use crate::transport::GrpcTransport;

/// The metadata key etcd reads to refuse serving a stream from a member without a leader.
const HAS_LEADER: &str = "hasleader";

/// etcd's Watch service over a gRPC transport: a
/// `Service<RequestStream<pb::WatchRequest>>` whose every call opens one bidirectional
/// watch stream.
///
/// Responses are decoded without a size limit, so a batch of large events at one revision
/// (etcd sends those in one message) is never refused. A broken stream ends with an
/// [`Error`] classified like any other call's.
#[derive(Clone, Debug)]
pub struct GrpcWatch<T> {
    inner: WatchClient<T>,
    require_leader: bool,
}

impl<T: GrpcTransport> GrpcWatch<T> {
    /// Wraps a transport, with no limit on the size of decoded responses.
    pub fn new(transport: T) -> Self {
        Self {
            inner: WatchClient::new(transport).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            require_leader: false,
        }
    }

    /// Asks the server to serve the streams opened through this adapter only while its
    /// member has a leader (metadata `hasleader: true`). A member that loses its leader
    /// ends the stream with [`ServerErrorKind::NoLeader`](crate::ServerErrorKind::NoLeader)
    /// instead of keeping it silently open.
    pub fn require_leader(mut self, require: bool) -> Self {
        self.require_leader = require;
        self
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &WatchClient<T> {
        &self.inner
    }
}

impl<T: GrpcTransport> tower::Service<RequestStream<pb::WatchRequest>> for GrpcWatch<T> {
    type Response = ResponseStream<pb::WatchResponse>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ResponseStream<pb::WatchResponse>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        // The generated client waits for the transport to be ready inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, requests: RequestStream<pb::WatchRequest>) -> Self::Future {
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

/// Maps the stream's statuses to typed errors.
fn into_response_stream(
    responses: tonic::codec::Streaming<pb::WatchResponse>,
) -> ResponseStream<pb::WatchResponse> {
    fn classify(item: Result<pb::WatchResponse, tonic::Status>) -> Result<pb::WatchResponse> {
        item.map_err(Error::from)
    }
    responses.map(classify).boxed()
}

/// Opens one watch stream.
async fn open<T: GrpcTransport>(
    mut client: WatchClient<T>,
    request: tonic::Request<Requests>,
) -> Result<ResponseStream<pb::WatchResponse>> {
    let responses = client.watch(request).await.map_err(Error::from)?;
    Ok(into_response_stream(responses.into_inner()))
}

/// The outgoing stream under a concrete type (the compiler cannot prove the boxed stream
/// `Send` through tonic's generic streaming call otherwise).
struct Requests(RequestStream<pb::WatchRequest>);

impl futures_core::Stream for Requests {
    type Item = pb::WatchRequest;

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
