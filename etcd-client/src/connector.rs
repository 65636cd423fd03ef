//! The TCP connector under every member's connection: tonic's own, with each connection
//! watched for a server that hangs up.
//!
//! An HTTP/2 server sends its SETTINGS frame before anything else, and etcd's gRPC server
//! before it reads any request. A connection that the server closes or resets before a
//! single byte came back therefore carried no request the server acted on. The commonest
//! cause is an endpoint whose scheme does not match the port: `http://` on a port that
//! serves TLS, whose server reads the client's first bytes, sees no TLS handshake and
//! hangs up, or `https://` on a plain-text port. Such failures get an error that says so
//! ([`SILENT_CLOSE`]), which `etcd-core` classifies as a transport error that did not
//! apply.
//!
//! A write that fails because the server hung up is reported by the next read instead:
//! HTTP/2 gives its streams a bare "broken pipe" for a failed write, but the reason for a
//! failed read, such as the TLS alert with which a server refused a client certificate.

use std::future::Future;
use std::io;
use std::pin::Pin;
#[cfg(feature = "builtin-http2")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
#[cfg(feature = "builtin-http2")]
use std::time::Instant;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower::Service;

/// What a connection closed before the server said anything reports. `etcd-core`'s
/// classification of transport errors recognises it.
pub(crate) const SILENT_CLOSE: &str = "the server closed the connection before sending a byte";

/// Connects over TCP like tonic does, and watches each connection (see the module docs).
/// For `https://` endpoints, tonic runs TLS over the connections it makes.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    http: HttpConnector,
    tls: bool,
}

impl Connector {
    pub(crate) fn new(connect_timeout: Duration, tls: bool) -> Self {
        // The settings of tonic's own connector.
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        Self { http, tls }
    }
}

type ConnectFuture = Pin<
    Box<
        dyn Future<Output = Result<TokioIo<Watched>, <HttpConnector as Service<Uri>>::Error>>
            + Send,
    >,
>;

impl Service<Uri> for Connector {
    type Response = TokioIo<Watched>;
    type Error = <HttpConnector as Service<Uri>>::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = self.http.call(uri);
        let tls = self.tls;
        Box::pin(async move {
            let io = connect.await?;
            Ok(TokioIo::new(Watched::new(io.into_inner(), tls)))
        })
    }
}

/// A TCP connection that knows whether the server has sent anything yet.
#[derive(Debug)]
pub(crate) struct Watched {
    inner: TcpStream,
    /// TLS runs over the connection.
    tls: bool,
    /// The server has sent at least one byte.
    heard: bool,
    /// A write failed because the server hung up before saying anything.
    hung_up: bool,
}

/// When a connection last read anything (keep-alive pings go out after a quiet interval).
#[cfg(feature = "builtin-http2")]
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// Nanoseconds after `start` of the last read.
    last_read: AtomicU64,
}

#[cfg(feature = "builtin-http2")]
impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last_read: AtomicU64::new(0),
        }
    }

    /// Records a read now.
    pub(crate) fn record(&self) {
        let nanos = self.start.elapsed().as_nanos() as u64;
        self.last_read.store(nanos, Ordering::Relaxed);
    }

    /// When the connection last read anything (or was made).
    pub(crate) fn last_read(&self) -> Instant {
        self.start + Duration::from_nanos(self.last_read.load(Ordering::Relaxed))
    }
}

impl Watched {
    /// Watches `inner`.
    pub(crate) fn new(inner: TcpStream, tls: bool) -> Self {
        Self {
            inner,
            tls,
            heard: false,
            hung_up: false,
        }
    }

    /// Replaces a closed-connection error by [`SILENT_CLOSE`] while the server has said
    /// nothing.
    fn explain(&self, error: io::Error) -> io::Error {
        use io::ErrorKind::*;
        if !self.heard && matches!(error.kind(), ConnectionReset | BrokenPipe | UnexpectedEof) {
            silent_close(error.kind(), self.tls)
        } else {
            error
        }
    }
}

/// The error of a connection the server closed before it said anything.
pub(crate) fn silent_close(kind: io::ErrorKind, tls: bool) -> io::Error {
    let hint = if tls {
        "if the port does not serve TLS, use an http:// endpoint"
    } else {
        "if the port serves TLS, use an https:// endpoint"
    };
    io::Error::new(
        kind,
        format!("{SILENT_CLOSE} (the request was not processed; {hint})"),
    )
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        Poll::Ready(match result {
            Ok(()) if buf.filled().len() > before => {
                self.heard = true;
                Ok(())
            }
            // End of stream before the server said anything.
            Ok(()) if !self.heard && buf.remaining() > 0 => {
                Err(silent_close(io::ErrorKind::UnexpectedEof, self.tls))
            }
            Ok(()) => Ok(()),
            Err(e) => Err(self.explain(e)),
        })
    }
}

impl Watched {
    /// A write that failed because the server hung up is reported by the next read
    /// instead (see the module docs); the bytes could not be delivered anyway, and the
    /// read fails too, now or once it has read what the server sent before hanging up.
    fn wrote(&mut self, result: io::Result<usize>, len: usize) -> io::Result<usize> {
        use io::ErrorKind::*;
        match result {
            Err(e) if matches!(e.kind(), ConnectionReset | BrokenPipe) => {
                self.hung_up = true;
                Ok(len)
            }
            other => other,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.hung_up {
            return Poll::Ready(Ok(buf.len()));
        }
        let result = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        Poll::Ready(self.wrote(result, buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        if self.hung_up {
            return Poll::Ready(Ok(len));
        }
        let result = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs));
        Poll::Ready(self.wrote(result, len))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.hung_up {
            return Poll::Ready(Ok(()));
        }
        let result = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        Poll::Ready(result.map_err(|e| self.explain(e)))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
