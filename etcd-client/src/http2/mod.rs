//! The connection to a member: gRPC calls written straight onto one HTTP/2 connection of
//! our own, over plain TCP (`http://`) or TLS (`https://`, rustls driven by hand on the
//! socket, see [`conn`]).
//!
//! tonic's own channel hands every call from the caller's task to a buffer task, from
//! there to hyper's connection task, and has hyper spawn one more task per call to wait for
//! the answer. Here the caller's task opens the stream and writes the request itself, and
//! waits for the answer itself; the only other task is the one that reads the connection's
//! socket (see [`conn`] for how writes and reads are shared). The client side of HTTP/2
//! that etcd's gRPC server needs is small: requests whose headers are known up front, a
//! server that never pushes, flow control in both directions, and GOAWAY on shutdown.
//!
//! The connection is dialled on the first call and again on the first call after it
//! closed. Concurrent callers share one attempt, and its failure (see [`ConnectError`],
//! which `etcd-core` classifies as never sent).
//!
//! HTTP/2 keep-alive works as in hyper: while calls or streams are open, a PING goes out
//! when nothing was read for the interval, and a PING unanswered within the timeout closes
//! the connection, failing its calls.

mod conn;
mod driver;
mod error;
mod frame;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod hostile;
mod hpack;
mod huffman;
mod limits;
mod stream;
#[cfg(test)]
mod tests;

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use etcd_core::BoxError;
use futures_util::future::BoxFuture;
use http::uri::Authority;
use tonic::body::Body;

use crate::endpoint::ConnectOptions;
use conn::{Conn, Opening};
pub(crate) use error::ConnectError;
use stream::{ResponseBody, StreamRef};

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

/// What a TLS channel's connections need for their handshake.
#[cfg(feature = "_tls")]
type TlsSettings = crate::tls::TlsConnect;
/// Without TLS support, no channel has TLS settings.
#[cfg(not(feature = "_tls"))]
type TlsSettings = std::convert::Infallible;

struct Shared {
    authority: Authority,
    options: ConnectOptions,
    /// TLS settings for an `https://` member; `None` for plain text.
    tls: Option<TlsSettings>,
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
    conn: Arc<Conn>,
    /// Which attempt made it.
    attempt: u64,
}

impl H2Channel {
    /// A channel to `authority` (`host:port`); nothing is dialled until the first call.
    pub(crate) fn new(authority: Authority, options: ConnectOptions) -> Self {
        Self::make(authority, options, None)
    }

    /// A channel whose connections run TLS (an `https://` member).
    #[cfg(feature = "_tls")]
    pub(crate) fn with_tls(
        authority: Authority,
        options: ConnectOptions,
        tls: crate::tls::TlsConnect,
    ) -> Self {
        Self::make(authority, options, Some(tls))
    }

    fn make(authority: Authority, options: ConnectOptions, tls: Option<TlsSettings>) -> Self {
        Self {
            shared: Arc::new(Shared {
                authority,
                options,
                tls,
                current: Mutex::new(None),
                dialling: tokio::sync::Mutex::new(()),
                attempts: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        }
    }
}

#[cfg(test)]
impl H2Channel {
    /// The open connection, if any.
    fn conn(&self) -> Option<Arc<Conn>> {
        self.shared.live().map(|live| live.conn)
    }
}

impl Drop for Shared {
    /// The last handle to the channel is gone: its connection ends once the responses still
    /// being read are done (otherwise it would stay open as long as the server keeps it).
    fn drop(&mut self) {
        let current = self.current.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(live) = current.take() {
            live.conn.abandon();
        }
    }
}

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
        let result = driver::dial(self, attempt).await;
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
}

async fn call(
    shared: Arc<Shared>,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, BoxError> {
    let (head, mut body) = request.into_parts();
    let ready = stream::take_ready(&mut body).await?;
    let mut opening = Opening {
        path: head.uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: &head.headers,
        data: ready.data,
        end: ready.end,
    };
    // A connection found closing (GOAWAY, or closed before the driver forgot it) is
    // replaced once: the request was not sent on it.
    let mut closing = 0;
    let stream = loop {
        let live = shared
            .connection()
            .await
            .map_err(|e| Box::new(etcd_core::transport::NeverSent::new(e)) as BoxError)?;
        let mut queued = Queued {
            conn: &live.conn,
            ticket: None,
        };
        let opened = poll_fn(|cx| queued.conn.poll_open(cx, &mut opening, &mut queued.ticket));
        match opened.await {
            Ok(id) => {
                drop(queued);
                break StreamRef {
                    conn: live.conn,
                    id,
                };
            }
            Err(failure) => {
                shared.forget(live.attempt);
                closing += 1;
                if closing == 2 {
                    return Err(stream::failure_error(failure));
                }
            }
        }
    };
    let id = stream.id;
    let stop_pipe = (!ready.end).then(|| stream::spawn_pipe(body, &stream));
    let (status, headers) = poll_fn(|cx| stream.conn.poll_head(cx, id))
        .await
        .map_err(stream::failure_error)?;
    let mut response = http::Response::new(Body::new(ResponseBody::new(stream, stop_pipe)));
    *response.status_mut() = status;
    *response.version_mut() = http::Version::HTTP_2;
    *response.headers_mut() = headers;
    Ok(response)
}

/// A caller's place in the queue for a stream of the connection; given up when the call
/// is dropped while waiting.
struct Queued<'a> {
    conn: &'a Arc<Conn>,
    ticket: Option<u64>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            self.conn.leave_queue(ticket);
        }
    }
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
