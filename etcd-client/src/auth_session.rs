//! Auth sessions: the credentials of a client, the token they give, and getting a new token
//! when the server refuses the current one.
//!
//! With [`ClientBuilder::credentials`](crate::ClientBuilder::credentials) the client
//! authenticates on its first call (nothing is sent by `connect`), and every call and
//! stream carries the token (the wire-tier
//! [`AuthToken`](etcd_core::middleware::AuthToken) layer reads it from one shared
//! [`TokenCell`]). When a call is refused because the token expired or was issued before a
//! change of users, roles or permissions ([`InvalidAuthToken`], [`AuthOldRevision`] in its
//! etcd 3.4 and 3.5 forms, or [`UserEmpty`]), the [`Reauth`] layer authenticates again
//! (once, however many calls failed at the same time) and sends the call once more — up to
//! eight times when the auth store keeps changing under one call (each refusal then follows
//! a new auth revision, and changes can follow each other within milliseconds). That is safe for writes
//! too: etcd checks the token before proposing a request, so a refused
//! call never applied. A wrong password fails with [`AuthFailed`] after one `Authenticate`,
//! without retrying; with auth disabled on the server (`AuthNotEnabled`) the client carries
//! on without a token.
//!
//! The watch stream re-authenticates the same way when the server refuses to create a
//! watch on auth grounds, and the lease keep-alive stream carries the current token each
//! time it is reopened. A token given with
//! [`ClientBuilder::token`](crate::ClientBuilder::token) is never refreshed: its refusals
//! reach the caller.
//!
//! Passwords and tokens never appear in `Debug` output or in logs.
//!
//! [`InvalidAuthToken`]: etcd_core::ServerErrorKind::InvalidAuthToken
//! [`AuthOldRevision`]: etcd_core::ServerErrorKind::AuthOldRevision
//! [`UserEmpty`]: etcd_core::ServerErrorKind::UserEmpty
//! [`AuthFailed`]: etcd_core::ServerErrorKind::AuthFailed

use std::any::TypeId;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use etcd_core::grpc::GrpcAuth;
use etcd_core::middleware::TokenCell;
use etcd_core::proto::etcdserverpb as pb;
use etcd_core::{Error, Result, ServerError, ServerErrorKind};
use futures_util::future::BoxFuture;
use tower::{Service, ServiceExt};

use crate::member_transport::AuthedTransport;
use etcd_core::layer::Failover;
use etcd_core::resend::Resend;

/// A user name and password. Its `Debug` output shows the user, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// The credentials of `user`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The auth settings of a builder: credentials, or a token of the caller's, or neither.
#[derive(Clone, Default)]
pub(crate) struct AuthSettings {
    pub(crate) credentials: Option<Credentials>,
    pub(crate) token: Option<String>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("credentials", &self.credentials)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What the last authentication gave, for the calls that waited for it.
enum Outcome {
    /// None yet, or one whose error cannot be shared (a transport failure): try again.
    Retry,
    /// A token, or auth is not enabled.
    Done,
    /// The server refused (for example a wrong password).
    Refused(ServerError),
}

struct Inner {
    cell: TokenCell,
    credentials: Option<Credentials>,
    /// The auth service `Authenticate` goes to, set once the members are known.
    authenticator: OnceLock<Failover<GrpcAuth<AuthedTransport>>>,
    /// Held while authenticating: concurrent refreshes wait and share the outcome.
    flight: tokio::sync::Mutex<Outcome>,
    /// Authentications finished (successful or not).
    attempts: AtomicU64,
    /// `Authenticate` calls sent.
    sent: AtomicU64,
    /// A first authentication has settled the matter (a token, or auth not enabled).
    ready: AtomicBool,
}

/// The auth state of a [`Client`](crate::Client): its credentials and current token, from
/// [`Client::auth_session`](crate::Client::auth_session). Cheap to clone (clones share the
/// state). Its `Debug` output shows neither the password nor the token.
///
/// With [`ClientBuilder::credentials`](crate::ClientBuilder::credentials) the client
/// authenticates on its first call (nothing is sent by `connect`), and every call and
/// stream carries the token (the wire-tier
/// [`AuthToken`](etcd_core::middleware::AuthToken) layer reads it from one shared
/// [`TokenCell`](etcd_core::middleware::TokenCell)). When a call is refused because the token expired or was issued before a
/// change of users, roles or permissions ([`InvalidAuthToken`], [`AuthOldRevision`] in its
/// etcd 3.4 and 3.5 forms, or [`UserEmpty`]), the client authenticates again
/// (once, however many calls failed at the same time) and sends the call once more — up to
/// eight times when the auth store keeps changing under one call (each refusal then follows
/// a new auth revision, and changes can follow each other within milliseconds). That is safe for writes
/// too: etcd checks the token before proposing a request, so a refused
/// call never applied. A wrong password fails with [`AuthFailed`] after one `Authenticate`,
/// without retrying; with auth disabled on the server (`AuthNotEnabled`) the client carries
/// on without a token.
///
/// The watch stream re-authenticates the same way when the server refuses to create a
/// watch on auth grounds, and the lease keep-alive stream carries the current token each
/// time it is reopened. A token given with
/// [`ClientBuilder::token`](crate::ClientBuilder::token) is never refreshed: its refusals
/// reach the caller.
///
/// Passwords and tokens never appear in `Debug` output or in logs.
///
/// [`InvalidAuthToken`]: etcd_core::ServerErrorKind::InvalidAuthToken
/// [`AuthOldRevision`]: etcd_core::ServerErrorKind::AuthOldRevision
/// [`UserEmpty`]: etcd_core::ServerErrorKind::UserEmpty
/// [`AuthFailed`]: etcd_core::ServerErrorKind::AuthFailed
#[derive(Clone)]
pub struct AuthSession {
    inner: Arc<Inner>,
}

impl Default for AuthSession {
    fn default() -> Self {
        Self::from_parts(TokenCell::new(), None)
    }
}

impl fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSession")
            .field("user", &self.user())
            .field("token", &self.inner.cell)
            .field("authentications", &self.authentications())
            .finish()
    }
}

impl AuthSession {
    /// A session from a builder's settings. A token that cannot be sent as metadata fails
    /// with [`Error::InvalidRequest`].
    pub(crate) fn new(settings: AuthSettings) -> Result<Self> {
        let cell = match &settings.token {
            Some(token) => TokenCell::with_token(token)?,
            None => TokenCell::new(),
        };
        // A caller's token wins: it is never refreshed, so credentials would not be used.
        let credentials = settings.credentials.filter(|_| settings.token.is_none());
        Ok(Self::from_parts(cell, credentials))
    }

    fn from_parts(cell: TokenCell, credentials: Option<Credentials>) -> Self {
        Self {
            inner: Arc::new(Inner {
                cell,
                credentials,
                authenticator: OnceLock::new(),
                flight: tokio::sync::Mutex::new(Outcome::Retry),
                attempts: AtomicU64::new(0),
                sent: AtomicU64::new(0),
                ready: AtomicBool::new(false),
            }),
        }
    }

    /// Sets the auth service `Authenticate` is sent to (once; later calls do nothing).
    pub(crate) fn set_authenticator(&self, auth: Failover<GrpcAuth<AuthedTransport>>) {
        let _ = self.inner.authenticator.set(auth);
    }

    /// The token cell every connection reads.
    pub(crate) fn cell(&self) -> &TokenCell {
        &self.inner.cell
    }

    /// The user of the credentials, when the client has some.
    pub fn user(&self) -> Option<&str> {
        self.inner.credentials.as_ref().map(Credentials::user)
    }

    /// True when the client has credentials, and so gets new tokens by itself.
    pub fn refreshes(&self) -> bool {
        self.inner.credentials.is_some()
    }

    /// True when calls currently carry a token.
    pub fn has_token(&self) -> bool {
        self.inner.cell.is_set()
    }

    /// How many `Authenticate` calls the client has sent for its credentials.
    pub fn authentications(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// Authenticates now, replacing the token; when another refresh is under way, waits
    /// for it and shares its outcome instead. Without credentials it does nothing.
    ///
    /// Fails with the server's error, such as
    /// [`AuthFailed`](etcd_core::ServerErrorKind::AuthFailed) for a wrong password.
    pub async fn refresh(&self) -> Result<()> {
        if !self.refreshes() {
            return Ok(());
        }
        self.refresh_after(self.attempts()).await
    }

    /// Authentications finished so far: a call reads it before it is sent, and asks for a
    /// refresh after that one.
    pub(crate) fn attempts(&self) -> u64 {
        self.inner.attempts.load(Ordering::Acquire)
    }

    /// Authenticates before a first call, when credentials are set and no authentication
    /// has succeeded yet.
    pub(crate) async fn ensure(&self) -> Result<()> {
        if !self.refreshes() || self.inner.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.refresh_after(self.attempts()).await
    }

    /// Authenticates, unless an authentication finished after `seen` attempts: then its
    /// outcome is shared (single flight).
    pub(crate) async fn refresh_after(&self, seen: u64) -> Result<()> {
        let Some(credentials) = &self.inner.credentials else {
            return Ok(());
        };
        let mut outcome = self.inner.flight.lock().await;
        if self.attempts() != seen {
            match &*outcome {
                Outcome::Done => return Ok(()),
                Outcome::Refused(error) => return Err(Error::Server(error.clone())),
                Outcome::Retry => {}
            }
        }
        let Some(authenticator) = self.inner.authenticator.get() else {
            return Err(Error::Protocol("the client has no auth service".into()));
        };
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(user = %credentials.user, "authenticating");
        let result = etcd_core::Auth::new(authenticator.clone())
            .authenticate(credentials.user.clone(), credentials.password.clone())
            .await;
        let result = match result {
            Ok(response) => self.inner.cell.set(&response.into_token()).map(|()| {
                self.inner.ready.store(true, Ordering::Release);
                *outcome = Outcome::Done;
            }),
            Err(error) if error.server_kind() == Some(ServerErrorKind::AuthNotEnabled) => {
                tracing::debug!("auth is not enabled on the server: calls carry no token");
                self.inner.cell.clear();
                self.inner.ready.store(true, Ordering::Release);
                *outcome = Outcome::Done;
                Ok(())
            }
            Err(Error::Server(error)) => {
                tracing::warn!(user = %credentials.user, %error, "authentication refused");
                if error.kind() == ServerErrorKind::AuthFailed {
                    self.inner.cell.clear();
                }
                *outcome = Outcome::Refused(error.clone());
                Err(Error::Server(error))
            }
            Err(error) => {
                tracing::debug!(%error, "authentication failed");
                *outcome = Outcome::Retry;
                Err(error)
            }
        };
        self.inner.attempts.fetch_add(1, Ordering::AcqRel);
        result
    }
}

/// Gives a watcher the session's re-authentication (see
/// [`Watcher::with_reauthentication`](etcd_watch::Watcher::with_reauthentication)), when the
/// session has credentials.
pub(crate) fn reauthenticating<S: etcd_core::watch::WatchService>(
    watcher: etcd_watch::Watcher<S>,
    session: &AuthSession,
) -> etcd_watch::Watcher<S> {
    if !session.refreshes() {
        return watcher;
    }
    let session = session.clone();
    watcher.with_reauthentication(Arc::new(move || {
        let session = session.clone();
        Box::pin(async move { session.refresh().await.is_ok() })
    }))
}

/// Whether a call refused with `error` may succeed with a new token. etcd checks the token
/// before proposing anything, so such a call never applied.
pub(crate) fn needs_new_token(error: &Error) -> bool {
    matches!(
        error.server_kind(),
        Some(
            ServerErrorKind::InvalidAuthToken
                | ServerErrorKind::AuthOldRevision
                | ServerErrorKind::UserEmpty
        )
    )
}

/// A typed service that authenticates before the first call and, when a call is refused
/// for its token, authenticates again and sends the call once more, at most eight times
/// (see the [module docs](self)). Streams (requests that cannot be copied) are not sent again, but
/// the next one opened carries the new token.
#[derive(Clone, Debug)]
pub(crate) struct Reauth<S> {
    inner: S,
    session: AuthSession,
}

impl<S> Reauth<S> {
    /// Wraps `inner`, getting tokens through `session`.
    pub(crate) fn new(inner: S, session: AuthSession) -> Self {
        Self { inner, session }
    }
}

/// How many times one call may get a new token and be sent again.
const MAX_REFRESHES: u32 = 8;

impl<S, R> Service<R> for Reauth<S>
where
    S: Service<R, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Response: Send,
    R: Resend + Send + 'static,
{
    type Response = S::Response;
    type Error = Error;
    type Future = BoxFuture<'static, Result<S::Response>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        // The inner service is made ready inside the call (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> Self::Future {
        let inner = self.inner.clone();
        if !self.session.refreshes() || TypeId::of::<R>() == TypeId::of::<pb::AuthenticateRequest>()
        {
            return Box::pin(inner.oneshot(request));
        }
        let session = self.session.clone();
        Box::pin(async move {
            session.ensure().await?;
            let mut request = request;
            let mut refreshes = 0;
            loop {
                let seen = session.attempts();
                let copy = request.copy_for_resend();
                match inner.clone().oneshot(request).await {
                    // Refused before it was applied: a new token, then the same request
                    // again. More than once only when the auth store keeps changing
                    // under the call (each change outdates every older token).
                    Err(error) if needs_new_token(&error) && refreshes < MAX_REFRESHES => {
                        tracing::debug!(%error, "token refused: authenticating again");
                        session.refresh_after(seen).await?;
                        refreshes += 1;
                        match copy {
                            Some(again) => request = again,
                            None => return Err(error),
                        }
                    }
                    other => return other,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let settings = AuthSettings {
            credentials: Some(Credentials::new("alice", "hunter2-password")),
            token: Some("tok.secret.99".into()),
        };
        let shown = format!("{settings:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok.secret"),
            "{shown}"
        );

        let session = AuthSession::new(settings).unwrap();
        let shown = format!("{session:?}");
        assert!(!shown.contains("tok.secret"), "{shown}");
        // A caller's token is never refreshed: the credentials are dropped.
        assert!(!session.refreshes());
        assert!(session.has_token());
    }

    #[test]
    fn refused_tokens_are_recognised_in_both_versions_forms() {
        let refused = |code, message: &str| Error::Server(ServerError::new(code, message));
        use tonic::Code;
        for error in [
            refused(Code::Unauthenticated, "etcdserver: invalid auth token"),
            // etcd 3.4.23
            refused(
                Code::InvalidArgument,
                "etcdserver: revision of auth store is old",
            ),
            // etcd 3.5.1 (not in its status map, so it arrives as Unknown)
            refused(Code::Unknown, "auth: revision in header is old"),
            refused(Code::InvalidArgument, "etcdserver: user name is empty"),
        ] {
            assert!(needs_new_token(&error), "{error}");
            assert_eq!(error.applied(), etcd_core::Applied::No, "{error}");
        }
        for error in [
            refused(
                Code::InvalidArgument,
                "etcdserver: authentication failed, invalid user ID or password",
            ),
            refused(Code::PermissionDenied, "etcdserver: permission denied"),
            refused(
                Code::FailedPrecondition,
                "etcdserver: authentication is not enabled",
            ),
        ] {
            assert!(!needs_new_token(&error), "{error}");
        }
    }
}
