//! Adapters from a gRPC transport to the typed services of the core.
//!
//! Each adapter exposes each method of one etcd service as a `tower::Service` of the request
//! message, failing with [`Error`](crate::Error); the two bidirectional streams (watch,
//! lease keep-alive) as a `tower::Service` of the stream of requests. The hot-path unary
//! calls and both streams go through codecs of ours (modules `unary` and `streaming`); the other
//! calls through the generated client the adapter wraps. Tower layers that need to see the
//! messages (retries, namespaces) stack on top of these.

mod auth;
mod cluster;
mod election;
mod frames;
mod head;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod message;
mod streaming;
mod unary;
mod watch;

pub use auth::GrpcAuth;
pub use cluster::GrpcCluster;
pub use election::GrpcElection;
pub use kv::GrpcKv;
pub use lease::GrpcLease;
pub use lock::GrpcLock;
pub use maintenance::GrpcMaintenance;
pub use watch::GrpcWatch;

/// The largest response message the adapters accept unless told otherwise
/// (`max_response_size`): 2 GiB − 1, as etcd's Go client (`MaxCallRecvMsgSize`). etcd has
/// no response limit of its own (a range over many keys can exceed gRPC's customary
/// 4 MiB), so the default only bounds what a broken or hostile server can make the client
/// buffer for one message; set a lower one where responses are known to be smaller.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = i32::MAX as usize;

/// Implements `max_response_size` for an adapter with an `inner` field (its generated
/// client), and the named field where its own codecs read the limit.
macro_rules! max_response_size {
    ($adapter:ident $(, $field:ident)?) => {
        impl<T: $crate::transport::GrpcTransport> $adapter<T> {
            /// Refuses response messages over `limit` bytes
            /// ([`DEFAULT_MAX_RESPONSE_SIZE`](crate::grpc::DEFAULT_MAX_RESPONSE_SIZE) unless
            /// set) with [`Error::ResponseTooLarge`](crate::Error::ResponseTooLarge), as
            /// soon as the message's length prefix arrives, so nothing of it is buffered
            /// (by this crate's own codecs for the KV calls and the watch and keep-alive
            /// streams, by the generated client for the others).
            pub fn max_response_size(mut self, limit: usize) -> Self {
                $(self.$field = limit;)?
                self.inner = self.inner.max_decoding_message_size(limit);
                self
            }
        }
    };
}
pub(crate) use max_response_size;

/// Implements `Service<Request>` for an adapter, in one of two ways:
/// - with a path (`"/etcdserverpb.KV/Put"`): the direct unary codec ([`unary`]) over the
///   adapter's `transport`, for the hot-path calls;
/// - with a method name: by calling that method of the adapter's generated client.
macro_rules! unary_service {
    ($adapter:ident, $request:ty, $response:ty, $path:literal) => {
        $crate::grpc::unary_service!(@impl $adapter, $request, $response, |this, request| {
            $crate::grpc::unary::call(this.transport.clone(), $path, request, this.max_response_size)
        });
    };
    ($adapter:ident, $request:ty, $response:ty, $method:ident) => {
        $crate::grpc::unary_service!(@impl $adapter, $request, $response, |this, request| {
            let mut client = this.inner.clone();
            async move {
                client
                    .$method(request)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err($crate::Error::from)
            }
        });
    };
    (@impl $adapter:ident, $request:ty, $response:ty, |$this:ident, $req:ident| $call:block) => {
        impl<T: $crate::transport::GrpcTransport> tower::Service<$request> for $adapter<T> {
            type Response = $response;
            type Error = $crate::Error;
            type Future = futures_util::future::BoxFuture<'static, $crate::Result<$response>>;

            fn poll_ready(
                &mut self,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                // The call itself waits for the transport to be ready.
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, $req: $request) -> Self::Future {
                let $this = &*self;
                Box::pin($call)
            }
        }
    };
}
pub(crate) use unary_service;
