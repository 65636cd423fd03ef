//! The connection to one member: for `http://` members our direct HTTP/2 channel
//! (the `http2` module) unless tonic's was chosen, for `https://` ones tonic's channel
//! (which runs TLS), or the user's own transport
//! ([`ClientBuilder::transport`](crate::ClientBuilder::transport)); any of them wrapped in
//! tower layers the user added with [`ClientBuilder::layer`](crate::ClientBuilder::layer).
//!
//! Without user layers or a user transport, calls go straight to the channel. With them,
//! the service is boxed once per member and each call pays one allocation per layer.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_core::middleware::{AuthToken, RequireLeader};
use etcd_core::{BoxError, Error};
use futures_util::TryFutureExt;
use futures_util::future::{BoxFuture, Either, MapErr};
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;

#[cfg(feature = "builtin-http2")]
use crate::http2::H2Channel;
use tower::util::BoxCloneSyncService;

/// A member's connection: the direct HTTP/2 channel for `http://` members (unless
/// [`Http2Transport::Tonic`] was chosen), tonic's channel for the others and for
/// `https://` ones (it runs TLS), or the user's own transport when they gave one.
#[derive(Clone)]
pub(crate) enum Connection {
    /// Plain text, calls written straight onto the HTTP/2 connection.
    #[cfg(feature = "builtin-http2")]
    Direct(H2Channel),
    /// Through tonic's channel: TLS, or plain text when chosen.
    Tonic(Channel),
    /// The transport the user made for this endpoint
    /// ([`ClientBuilder::transport`](crate::ClientBuilder::transport)).
    User(BoxTransport),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(feature = "builtin-http2")]
            Connection::Direct(channel) => f.debug_tuple("Direct").field(channel).finish(),
            Connection::Tonic(channel) => f.debug_tuple("Tonic").field(channel).finish(),
            Connection::User(_) => f.write_str("User(..)"),
        }
    }
}

/// A tower service that can carry a client's calls to one member: HTTP/2 requests with
/// tonic's body in, responses with any [`TransportBody`] out, and an error that boxes. What
/// [`ClientBuilder::layer`](crate::ClientBuilder::layer) layers must give and
/// [`ClientBuilder::transport`](crate::ClientBuilder::transport) takes.
///
/// This is a trait alias: every type with the right bounds implements it.
pub trait TransportService<B>:
    tower::Service<
        http::Request<Body>,
        Response = http::Response<B>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S, B> TransportService<B> for S where
    S: tower::Service<
            http::Request<Body>,
            Response = http::Response<B>,
            Error: Into<BoxError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// A response body the client can read gRPC from: bytes, with an error that boxes (tonic's
/// body, hyper's, or one that a layer such as tower-http's trace layer wraps).
///
/// This is a trait alias: every type with the right bounds implements it.
pub trait TransportBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> TransportBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// A user transport or a user-layered one, type-erased.
pub(crate) type BoxTransport =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>;

/// Erases the type of a transport whose response body and error are any that tonic can
/// read: the body is put in tonic's [`Body`] (which keeps one that already is), the error
/// boxed.
pub(crate) fn box_transport<S, B>(service: S) -> BoxTransport
where
    S: TransportService<B>,
    B: TransportBody,
{
    BoxCloneSyncService::new(
        service
            .map_response(tonic_body as fn(http::Response<B>) -> http::Response<Body>)
            .map_err(Into::into as fn(S::Error) -> BoxError),
    )
}

fn tonic_body<B>(response: http::Response<B>) -> http::Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(Body::new)
}

/// Wraps a member's channel in the user's layers.
#[derive(Clone)]
pub(crate) struct WrapChannel(Arc<dyn Fn(Connection) -> BoxTransport + Send + Sync>);

impl WrapChannel {
    pub(crate) fn new(wrap: impl Fn(Connection) -> BoxTransport + Send + Sync + 'static) -> Self {
        Self(Arc::new(wrap))
    }
}

impl std::fmt::Debug for WrapChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrapChannel(..)")
    }
}

/// The user's function from an endpoint's URL to its transport, type-erased.
type Make = dyn Fn(&str) -> Result<BoxTransport, BoxError> + Send + Sync;

/// Makes the user's transport of one endpoint, from its URL.
#[derive(Clone)]
pub(crate) struct MakeTransport(Arc<Make>);

impl MakeTransport {
    pub(crate) fn new(
        make: impl Fn(&str) -> Result<BoxTransport, BoxError> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(make))
    }

    /// The user's transport to `address`; their refusal is an [`Error::InvalidRequest`].
    pub(crate) fn link(&self, address: &str) -> Result<Connection, Error> {
        (self.0)(address).map(Connection::User).map_err(|e| {
            crate::tls::invalid(format!(
                "endpoint {address}: the transport given to the builder refused it: {e}"
            ))
        })
    }
}

impl std::fmt::Debug for MakeTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MakeTransport(..)")
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
    /// The user's own transport.
    User(BoxTransport),
    /// A transport in the user's layers.
    Layered(BoxTransport),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(feature = "builtin-http2")]
            Inner::Direct(channel) => channel.fmt(f),
            Inner::Channel(channel) => channel.fmt(f),
            Inner::User(_) => f.write_str("User(..)"),
            Inner::Layered(_) => f.write_str("Layered(..)"),
        }
    }
}

impl MemberTransport {
    /// The channel, wrapped in the user's layers when there are any.
    pub(crate) fn new(connection: Connection, wrap: Option<&WrapChannel>) -> Self {
        match (wrap, connection) {
            #[cfg(feature = "builtin-http2")]
            (None, Connection::Direct(channel)) => Self(Inner::Direct(channel)),
            (None, Connection::Tonic(channel)) => Self(Inner::Channel(channel)),
            (None, Connection::User(service)) => Self(Inner::User(service)),
            (Some(wrap), connection) => Self(Inner::Layered((wrap.0)(connection))),
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
            Inner::User(service) | Inner::Layered(service) => service.poll_ready(cx),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match &mut self.0 {
            Inner::Channel(channel) => {
                Either::Left(channel.call(request).map_err(boxed as fn(_) -> _))
            }
            #[cfg(feature = "builtin-http2")]
            Inner::Direct(channel) => Either::Right(channel.call(request)),
            Inner::User(service) | Inner::Layered(service) => Either::Right(service.call(request)),
        }
    }
}

/// The connection to one member as the gRPC adapters see it: the member's transport, with
/// the session's auth token on every call and, when asked, the require-leader metadata.
pub(crate) type AuthedTransport = AuthToken<RequireLeader<MemberTransport>>;
