//! What the bidirectional stream adapters (watch, lease keep-alive) share.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;

use crate::error::Error;
use crate::stream::{RequestStream, ResponseStream};

/// The metadata key etcd reads to refuse serving a stream from a member without a leader.
const HAS_LEADER: &str = "hasleader";

/// The outgoing stream under a concrete type (the compiler cannot prove the boxed stream
/// `Send` through tonic's generic streaming call otherwise).
pub(crate) struct Requests<T>(RequestStream<T>);

impl<T> futures_core::Stream for Requests<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// The request that opens a stream, asking for a member with a leader when `require_leader`.
pub(crate) fn open_request<T>(
    requests: RequestStream<T>,
    require_leader: bool,
) -> tonic::Request<Requests<T>> {
    let mut request = tonic::Request::new(Requests(requests));
    if require_leader {
        request.metadata_mut().insert(
            HAS_LEADER,
            tonic::metadata::MetadataValue::from_static("true"),
        );
    }
    request
}

/// The incoming stream with its statuses mapped to typed errors.
pub(crate) fn responses<T: Send + 'static>(
    responses: tonic::codec::Streaming<T>,
) -> ResponseStream<T> {
    responses.map(|item| item.map_err(Error::from)).boxed()
}

/// Implements `Service<RequestStream<Request>>` for an adapter with `inner` (a generated
/// client) and `require_leader` fields: each call opens one stream through `$method`.
macro_rules! bidi_service {
    ($adapter:ident, $request:ty, $response:ty, $method:ident) => {
        impl<T: $crate::transport::GrpcTransport>
            tower::Service<$crate::stream::RequestStream<$request>> for $adapter<T>
        {
            type Response = $crate::stream::ResponseStream<$response>;
            type Error = $crate::Error;
            type Future = futures_util::future::BoxFuture<'static, $crate::Result<Self::Response>>;

            fn poll_ready(
                &mut self,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                // The generated client waits for the transport to be ready inside the call.
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, requests: $crate::stream::RequestStream<$request>) -> Self::Future {
                let mut client = self.inner.clone();
                let request = $crate::grpc::bidi::open_request(requests, self.require_leader);
                Box::pin(async move {
                    let responses = client.$method(request).await.map_err($crate::Error::from)?;
                    Ok($crate::grpc::bidi::responses(responses.into_inner()))
                })
            }
        }
    };
}
pub(crate) use bidi_service;
