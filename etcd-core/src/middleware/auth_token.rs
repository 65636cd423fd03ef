//! The `token` metadata etcd reads to authenticate a call, from a shared [`TokenCell`].
//!
//! [`AuthToken<S>`] wraps any service of `http::Request<B>` (a tonic `Channel`, or a
//! channel under other tower layers) and gives every request the current token of its
//! [`TokenCell`], except `etcdserverpb.Auth/Authenticate`: old servers refuse an
//! `Authenticate` that carries a stale token (etcd #12385), and it needs none.
//!
//! The cell is shared: whoever obtains a token (the `etcd3` facade re-authenticates
//! when a token expires) stores it once, and every connection's next call sends it. Reading
//! it costs a read lock and a reference-count increment.
//!
//! ```
//! use etcd_core::middleware::{AuthTokenLayer, TokenCell};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cell = TokenCell::new();
//! let transport = tower::service_fn(|request: http::Request<()>| async move {
//!     let token = request.headers().get("token").cloned();
//!     Ok::<_, std::convert::Infallible>(token)
//! });
//! let transport = ServiceBuilder::new().layer(AuthTokenLayer::new(cell.clone())).service(transport);
//!
//! cell.set("abc.123")?;
//! let sent = transport.oneshot(http::Request::new(())).await?;
//! assert_eq!(sent.unwrap(), "abc.123");
//! assert!(!format!("{cell:?}").contains("abc")); // never in Debug output
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use http::HeaderValue;

use crate::error::{Error, InvalidRequest, Result};

/// The metadata key etcd reads the auth token from.
pub const TOKEN_METADATA: &str = "token";

/// The path of the one call that must not carry a token.
pub const AUTHENTICATE_PATH: &str = "/etcdserverpb.Auth/Authenticate";

/// A shared, replaceable auth token. Cheap to clone: clones share the token.
///
/// The token is stored as a sensitive header value (HTTP/2 never indexes it) and never
/// appears in `Debug` output. Each change bumps a [`generation`](Self::generation), so a
/// caller can tell whether the token changed since it last looked.
#[derive(Clone, Default)]
pub struct TokenCell {
    inner: Arc<RwLock<Slot>>,
}

#[derive(Default)]
struct Slot {
    token: Option<HeaderValue>,
    generation: u64,
}

impl TokenCell {
    /// A cell with no token: requests go out without one.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cell holding `token`. A token that cannot be sent as gRPC metadata (not visible
    /// ASCII) fails with [`Error::InvalidRequest`].
    pub fn with_token(token: &str) -> Result<Self> {
        let cell = Self::new();
        cell.set(token)?;
        Ok(cell)
    }

    /// Replaces the token. A token that cannot be sent as gRPC metadata fails with
    /// [`Error::InvalidRequest`], and the cell keeps its previous token.
    pub fn set(&self, token: &str) -> Result<()> {
        let mut value = HeaderValue::from_str(token).map_err(|_| {
            Error::InvalidRequest(InvalidRequest::Other(
                "the auth token is not valid gRPC metadata (visible ASCII only)".into(),
            ))
        })?;
        value.set_sensitive(true);
        let mut slot = self.write();
        slot.token = Some(value);
        slot.generation += 1;
        Ok(())
    }

    /// Removes the token: requests go out without one.
    pub fn clear(&self) {
        let mut slot = self.write();
        slot.token = None;
        slot.generation += 1;
    }

    /// The current token, as the header value sent (marked sensitive).
    pub fn get(&self) -> Option<HeaderValue> {
        self.read().token.clone()
    }

    /// Whether the cell holds a token.
    pub fn is_set(&self) -> bool {
        self.read().token.is_some()
    }

    /// How many times the token was set or cleared.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Slot> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Slot> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for TokenCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.read();
        f.debug_struct("TokenCell")
            .field("token", &slot.token.as_ref().map(|_| "<redacted>"))
            .field("generation", &slot.generation)
            .finish()
    }
}

/// A [`tower::Layer`] giving every request the token of a [`TokenCell`]; see
/// [`AuthToken`].
#[derive(Clone, Debug)]
pub struct AuthTokenLayer {
    cell: TokenCell,
}

impl AuthTokenLayer {
    /// A layer reading `cell` on every request.
    pub fn new(cell: TokenCell) -> Self {
        Self { cell }
    }
}

impl<S> tower::Layer<S> for AuthTokenLayer {
    type Service = AuthToken<S>;

    fn layer(&self, inner: S) -> AuthToken<S> {
        AuthToken::new(inner, self.cell.clone())
    }
}

/// A transport that sends the current token of a [`TokenCell`] as `token` metadata with
/// every request, except `Authenticate` (see the [module docs](self)).
///
/// A request that already carries `token` metadata keeps it. With an empty cell requests
/// pass unchanged.
#[derive(Clone, Debug)]
pub struct AuthToken<S> {
    inner: S,
    cell: TokenCell,
}

impl<S> AuthToken<S> {
    /// Wraps `inner`, reading `cell` on every request.
    pub fn new(inner: S, cell: TokenCell) -> Self {
        Self { inner, cell }
    }

    /// The token cell read on every request.
    pub fn cell(&self) -> &TokenCell {
        &self.cell
    }

    /// The wrapped transport.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped transport, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the transport.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether a request is `etcdserverpb.Auth/Authenticate`, by its path or by the method
/// tonic's generated clients record on it.
fn is_authenticate<B>(request: &http::Request<B>) -> bool {
    if request.uri().path().ends_with(AUTHENTICATE_PATH) {
        return true;
    }
    request
        .extensions()
        .get::<tonic::GrpcMethod<'static>>()
        .is_some_and(|m| m.service() == "etcdserverpb.Auth" && m.method() == "Authenticate")
}

impl<S, B> tower::Service<http::Request<B>> for AuthToken<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> S::Future {
        if !is_authenticate(&request)
            && !request.headers().contains_key(TOKEN_METADATA)
            && let Some(token) = self.cell.get()
        {
            request.headers_mut().insert(TOKEN_METADATA, token);
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    /// A transport answering with the token header it received.
    fn echo() -> impl tower::Service<
        http::Request<()>,
        Response = Option<HeaderValue>,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone {
        tower::service_fn(|request: http::Request<()>| async move {
            Ok(request.headers().get(TOKEN_METADATA).cloned())
        })
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(format!("http://127.0.0.1:2379{path}"))
            .body(())
            .unwrap()
    }

    #[tokio::test]
    async fn sends_the_current_token_except_on_authenticate() {
        let cell = TokenCell::new();
        let transport = AuthToken::new(echo(), cell.clone());
        let put = "/etcdserverpb.KV/Put";

        assert_eq!(transport.clone().oneshot(request(put)).await.unwrap(), None);

        cell.set("tok-1").unwrap();
        let sent = transport
            .clone()
            .oneshot(request(put))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sent, "tok-1");
        assert!(sent.is_sensitive());
        assert_eq!(
            transport
                .clone()
                .oneshot(request(AUTHENTICATE_PATH))
                .await
                .unwrap(),
            None
        );

        // Marked by tonic's method extension alone.
        let mut marked = request("/other");
        marked
            .extensions_mut()
            .insert(tonic::GrpcMethod::new("etcdserverpb.Auth", "Authenticate"));
        assert_eq!(transport.clone().oneshot(marked).await.unwrap(), None);

        // Replaced, then cleared, for every clone of the transport.
        cell.set("tok-2").unwrap();
        let sent = transport.clone().oneshot(request(put)).await.unwrap();
        assert_eq!(sent.unwrap(), "tok-2");
        cell.clear();
        assert_eq!(transport.clone().oneshot(request(put)).await.unwrap(), None);
        assert_eq!(cell.generation(), 3);

        // A request's own token wins.
        cell.set("tok-3").unwrap();
        let mut own = request(put);
        own.headers_mut()
            .insert(TOKEN_METADATA, HeaderValue::from_static("mine"));
        assert_eq!(transport.oneshot(own).await.unwrap().unwrap(), "mine");
    }

    #[test]
    fn tokens_never_appear_in_debug_output() {
        let cell = TokenCell::with_token("secret-token.42").unwrap();
        let layer = AuthTokenLayer::new(cell.clone());
        let transport = AuthToken::new((), cell.clone());
        for shown in [
            format!("{cell:?}"),
            format!("{layer:?}"),
            format!("{transport:?}"),
            format!("{:?}", cell.get()),
        ] {
            assert!(!shown.contains("secret"), "{shown}");
        }
        assert!(format!("{cell:?}").contains("<redacted>"));
    }

    #[test]
    fn refuses_tokens_that_are_not_metadata() {
        let cell = TokenCell::with_token("good").unwrap();
        assert!(matches!(
            cell.set("bad\ntoken"),
            Err(Error::InvalidRequest(_))
        ));
        assert_eq!(cell.get().unwrap(), "good");
        assert!(cell.is_set());
    }
}
