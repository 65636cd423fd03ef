//! The connection to a plain-text (`http://`) member: gRPC calls written straight onto one
//! HTTP/2 connection with the `h2` crate.
//!
//! tonic's own channel hands every call from the caller's task to a buffer task, from
//! there to hyper's connection task, and has hyper spawn one more task per call to wait for
//! the answer. Here the caller's task opens the stream and writes the request itself (h2
//! shares the connection state behind a lock), and waits for the answer itself; the only
//! other task is the one that drives the connection's socket. That saves three task
//! hand-offs and a spawned task per call, which is most of a client's CPU per call.
//!
//! The connection is dialled on the first call and again on the first call after it
//! closed. Concurrent callers share one attempt, and its failure (see [`ConnectError`],
//! which `etcd-core` classifies as never sent).
//!
//! HTTP/2 keep-alive works as in hyper: while calls or streams are open, a PING goes out
//! when nothing was read for the interval, and a PING unanswered within the timeout closes
//! the connection, failing its calls.

mod body;
mod connection;
mod error;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_core::BoxError;
use futures_util::future::BoxFuture;
use http::uri::{Authority, Scheme};
use tonic::body::Body;

use crate::endpoint::ConnectOptions;
use body::{OpenCall, ResponseBody};
pub(crate) use error::{ConnectError, NotSent, StreamError};

/// A lazily connecting HTTP/2 connection to one member; clones share it.
#[derive(Clone)]
pub(crate) struct H2Channel {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for H2Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Channel")
            .field("authority", &self.shared.authority)
            .finish_non_exhaustive()
    }
}

struct Shared {
    authority: Authority,
    options: ConnectOptions,
    /// The open connection, if any.
    current: Mutex<Option<Live>>,
    /// Held while dialling, so that concurrent callers share one attempt.
    dialling: tokio::sync::Mutex<()>,
    /// Finished connection attempts, and the error of the last failed one.
    attempts: AtomicU64,
    last_error: Mutex<Option<ConnectError>>,
}

/// An open connection.
#[derive(Clone)]
struct Live {
    send: h2::client::SendRequest<Bytes>,
    /// Calls and streams open on it (keep-alive pings only while there are some).
    open: Arc<AtomicUsize>,
    /// Which attempt made it.
    attempt: u64,
}

impl H2Channel {
    /// A channel to `authority` (`host:port`); nothing is dialled until the first call.
    pub(crate) fn new(authority: Authority, options: ConnectOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                authority,
                options,
                current: Mutex::new(None),
                dialling: tokio::sync::Mutex::new(()),
                attempts: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        }
    }
}

/// How a request's stream was opened.
type Opened = (
    h2::client::ResponseFuture,
    h2::SendStream<Bytes>,
    Arc<AtomicUsize>,
);

impl Shared {
    fn live(&self) -> Option<Live> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets connection `attempt` once it is known to be closed.
    fn forget(&self, attempt: u64) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|live| live.attempt == attempt) {
            *current = None;
        }
    }

    /// The open connection, dialling one when there is none. A caller that waited for
    /// somebody else's failed attempt gets its error rather than dialling again.
    async fn connection(self: &Arc<Self>) -> Result<Live, ConnectError> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let seen = self.attempts.load(Ordering::Acquire);
        let _dialling = self.dialling.lock().await;
        if let Some(live) = self.live() {
            return Ok(live);
        }
        if self.attempts.load(Ordering::Acquire) != seen
            && let Some(error) = self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        {
            return Err(error);
        }
        let attempt = self.attempts.load(Ordering::Acquire) + 1;
        let result = connection::dial(self, attempt).await;
        match &result {
            Ok(live) => {
                *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
            }
            Err(error) => {
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
            }
        }
        self.attempts.store(attempt, Ordering::Release);
        result
    }

    /// Opens the request's stream on the open connection without waiting, when it can:
    /// the one `SendRequest` is used under the lock, not cloned (h2 locks its own state to
    /// clone and drop one).
    #[allow(clippy::result_large_err)] // the request handed back, moved not copied
    fn open_now(
        &self,
        request: http::Request<()>,
    ) -> Result<Result<Opened, NotSent>, http::Request<()>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let Some(live) = current.as_mut() else {
            return Err(request);
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match live.send.poll_ready(&mut cx) {
            Poll::Pending => Err(request),
            Poll::Ready(Err(e)) => {
                *current = None;
                Ok(Err(NotSent(e)))
            }
            Poll::Ready(Ok(())) => Ok(match live.send.send_request(request, false) {
                Ok((response, stream)) => Ok((response, stream, live.open.clone())),
                Err(e) => {
                    *current = None;
                    Err(NotSent(e))
                }
            }),
        }
    }

    /// Opens the request's stream, dialling or waiting for the connection as needed.
    async fn open(self: &Arc<Self>, request: http::Request<()>) -> Result<Opened, BoxError> {
        let request = match self.open_now(request) {
            Ok(opened) => return Ok(opened?),
            Err(request) => request,
        };
        let live = self.connection().await?;
        let attempt = live.attempt;
        let not_sent = |e| {
            self.forget(attempt);
            NotSent(e)
        };
        let mut send = live.send.ready().await.map_err(not_sent)?;
        let (response, stream) = send.send_request(request, false).map_err(not_sent)?;
        Ok((response, stream, live.open))
    }
}

async fn call(
    shared: Arc<Shared>,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, BoxError> {
    let (mut head, body) = request.into_parts();
    let mut uri = std::mem::take(&mut head.uri).into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(shared.authority.clone());
    head.uri = http::Uri::from_parts(uri)?;
    head.version = http::Version::HTTP_2;
    let (response, stream, open) = shared.open(http::Request::from_parts(head, ())).await?;
    let open = OpenCall::new(open);
    let cancel = body::send(body, stream).await;
    let response = response.await.map_err(StreamError)?;
    // The response's headers came first; its message and trailers are most likely in the
    // same read, still being taken apart by the connection task. Letting it finish first
    // saves this task a wake-up (and the lock of h2's state) per frame.
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return Poll::Ready(());
        }
        // Rescheduled behind the tasks already queued (tokio's own `yield_now` would wait
        // for a poll of the I/O driver as well).
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    let (head, recv) = response.into_parts();
    Ok(http::Response::from_parts(
        head,
        Body::new(ResponseBody::new(recv, open, cancel)),
    ))
}

impl tower::Service<http::Request<Body>> for H2Channel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(call(self.shared.clone(), request))
    }
}
