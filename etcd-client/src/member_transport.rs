//! The connection to one member: for `http://` members our direct HTTP/2 channel
//! (the `http2` module) unless tonic's was chosen, for `https://` ones tonic's channel
//! (which runs TLS), or either of them wrapped in tower layers the user added with
//! [`ClientBuilder::layer`](crate::ClientBuilder::layer).
//!
//! Without user layers, calls go straight to the channel. With them, the layered service
//! is boxed once per client and each call pays one allocation.

use std::sync::Arc;
use std::task::{Context, Poll};

use etcd_core::BoxError;
use futures_util::TryFutureExt;
use futures_util::future::{BoxFuture, Either, MapErr};
use tonic::body::Body;
use tonic::transport::Channel;

use crate::endpoint::Link;
#[cfg(feature = "builtin-http2")]
use crate::http2::H2Channel;
use tower::util::BoxCloneSyncService;

/// A user-layered transport, type-erased.
pub(crate) type BoxTransport =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>;

/// Wraps a member's channel in the user's layers.
#[derive(Clone)]
pub(crate) struct WrapChannel(Arc<dyn Fn(Link) -> BoxTransport + Send + Sync>);

impl WrapChannel {
    pub(crate) fn new(wrap: impl Fn(Link) -> BoxTransport + Send + Sync + 'static) -> Self {
        Self(Arc::new(wrap))
    }
}

impl std::fmt::Debug for WrapChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrapChannel(..)")
    }
}

/// The connection to one member, as the gRPC adapters see it (below the auth-token and
/// require-leader middleware).
#[derive(Clone, Debug)]
pub struct MemberTransport(Inner);

#[derive(Clone)]
enum Inner {
    #[cfg(feature = "builtin-http2")]
    Direct(H2Channel),
    Channel(Channel),
    Layered(BoxTransport),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(feature = "builtin-http2")]
            Inner::Direct(channel) => channel.fmt(f),
            Inner::Channel(channel) => channel.fmt(f),
            Inner::Layered(_) => f.write_str("Layered(..)"),
        }
    }
}

impl MemberTransport {
    /// The channel, wrapped in the user's layers when there are any.
    pub(crate) fn new(link: Link, wrap: Option<&WrapChannel>) -> Self {
        match (wrap, link) {
            #[cfg(feature = "builtin-http2")]
            (None, Link::Direct(channel)) => Self(Inner::Direct(channel)),
            (None, Link::Tonic(channel)) => Self(Inner::Channel(channel)),
            (Some(wrap), link) => Self(Inner::Layered((wrap.0)(link))),
        }
    }
}

fn boxed(error: tonic::transport::Error) -> BoxError {
    Box::new(error)
}

type ChannelFuture = <Channel as tower::Service<http::Request<Body>>>::Future;

impl tower::Service<http::Request<Body>> for MemberTransport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Either<
        MapErr<ChannelFuture, fn(tonic::transport::Error) -> BoxError>,
        BoxFuture<'static, Result<http::Response<Body>, BoxError>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.0 {
            #[cfg(feature = "builtin-http2")]
            Inner::Direct(channel) => channel.poll_ready(cx),
            Inner::Channel(channel) => channel.poll_ready(cx).map_err(boxed),
            Inner::Layered(service) => service.poll_ready(cx),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match &mut self.0 {
            Inner::Channel(channel) => {
                Either::Left(channel.call(request).map_err(boxed as fn(_) -> _))
            }
            #[cfg(feature = "builtin-http2")]
            Inner::Direct(channel) => Either::Right(channel.call(request)),
            Inner::Layered(service) => Either::Right(service.call(request)),
        }
    }
}
