//! The TCP connector under every member's connection: tonic's own, with each connection
//! watched for a server that hangs up.
//!
//! An HTTP/2 server sends its SETTINGS frame before anything else, and etcd's gRPC server
//! before it reads any request. A connection that the server closes or resets before a
//! single byte came back therefore carried no request the server acted on, unless a TCP
//! proxy stands in between: it accepts the connection itself, may pass the request on and
//! then fail before the server's first bytes come back. So such a close means "not
//! processed" only while no request was written: over TLS that holds until the server has
//! answered the handshake; in plain text the connection follows the frames it writes
//! ([`RequestSeen`]). The commonest cause is an endpoint whose scheme does not match the
//! port: `http://` on a port that serves TLS, whose server reads the client's first
//! bytes, sees no TLS handshake and hangs up, or `https://` on a plain-text port. Such
//! failures get an error that says so: [`SILENT_CLOSE`], marked
//! `etcd_core::transport::NeverSent` (a transport error that did not apply) before a
//! request was written, and [`closed_after_request`] (outcome unknown) after.
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

/// What a connection closed before the server said anything reports (for people;
/// `etcd-core` recognises such a failure by the `NeverSent` mark it carries).
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
    /// Whether a request has been written (plain text only; over TLS none can be before
    /// the server answered the handshake).
    requests: RequestSeen,
    /// A writer held back until the server speaks (plain text).
    held_writer: Option<std::task::Waker>,
}

/// Follows the frames a client writes on a plain-text HTTP/2 connection, far enough to
/// tell whether a request (a HEADERS or DATA frame) has begun to reach the socket.
#[derive(Debug)]
pub(crate) struct RequestSeen {
    /// Bytes of the connection preface still to come.
    preface_left: usize,
    /// The frame header being written.
    head: [u8; 9],
    head_len: usize,
    /// Bytes of the current frame's payload still to come.
    payload_left: usize,
    /// A request frame was written.
    seen: bool,
}

impl Default for RequestSeen {
    fn default() -> Self {
        Self {
            preface_left: 24,
            head: [0; 9],
            head_len: 0,
            payload_left: 0,
            seen: false,
        }
    }
}

/// The payload length a 9-byte frame header announces.
fn payload_len(head: &[u8]) -> usize {
    usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2])
}

/// Whether a frame header starts a request frame: DATA, HEADERS or CONTINUATION.
fn is_request(head: &[u8]) -> bool {
    matches!(head[3], 0x0 | 0x1 | 0x9)
}

impl RequestSeen {
    /// Follows `bytes`, the next ones written to the socket.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.seen {
            let skip = if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                n
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                n
            } else {
                let n = (9 - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                if self.head_len == 9 {
                    self.head_len = 0;
                    self.payload_left = payload_len(&self.head);
                    self.seen = is_request(&self.head);
                }
                n
            };
            bytes = &bytes[skip..];
        }
    }

    /// Whether a request frame has begun to reach the socket.
    pub(crate) fn seen(&self) -> bool {
        self.seen
    }

    /// How many of `bytes` (the next ones to write) come before the first request frame:
    /// what may be written while the server has not spoken. A frame header cut by the end
    /// of `bytes` is held back whole.
    pub(crate) fn passable(&self, bytes: &[u8]) -> usize {
        if self.seen {
            return 0;
        }
        let mut at = self.preface_left.min(bytes.len());
        if at < bytes.len() {
            at += self.payload_left.min(bytes.len() - at);
        }
        if self.head_len > 0 {
            // Not reached: a gated writer never writes part of a frame header.
            return at;
        }
        while at < bytes.len() {
            let Some(head) = bytes.get(at..at + 9) else {
                return at;
            };
            if is_request(head) {
                return at;
            }
            at = (at + 9 + payload_len(head)).min(bytes.len());
        }
        at
    }
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
            requests: RequestSeen::default(),
            held_writer: None,
        }
    }

    /// How much of `len` bytes may be written now: in plain text, requests wait until the
    /// server has sent its first bytes (as etcd's server sends SETTINGS before reading a
    /// request, only a TCP proxy in between makes a difference: a close before the
    /// server spoke then still means nothing was passed on). `None`: wait.
    fn allowed(&mut self, cx: &Context<'_>, buf: &[u8]) -> Option<usize> {
        if self.tls || self.heard {
            return Some(buf.len());
        }
        match self.requests.passable(buf) {
            0 if !buf.is_empty() => {
                self.held_writer = Some(cx.waker().clone());
                None
            }
            n => Some(n),
        }
    }

    /// Explains a closed-connection error while the server has said nothing: not
    /// processed ([`SILENT_CLOSE`]) while no request was written, else an unknown outcome.
    fn explain(&self, error: io::Error) -> io::Error {
        use io::ErrorKind::*;
        if !self.heard && matches!(error.kind(), ConnectionReset | BrokenPipe | UnexpectedEof) {
            self.silently_closed(error.kind())
        } else {
            error
        }
    }

    fn silently_closed(&self, kind: io::ErrorKind) -> io::Error {
        if !self.tls && self.requests.seen() {
            closed_after_request(kind, self.tls)
        } else {
            silent_close(kind, self.tls)
        }
    }
}

/// The error of a connection the server closed before it said anything, while no request
/// had been written: nothing was processed.
pub(crate) fn silent_close(kind: io::ErrorKind, tls: bool) -> io::Error {
    io::Error::new(
        kind,
        etcd_core::transport::NeverSent::new(format!(
            "{SILENT_CLOSE} (the request was not processed; {})",
            scheme_hint(tls)
        )),
    )
}

/// The error of a connection closed before the server said anything, after a request was
/// written: a proxy in between may have passed it on, so its outcome is unknown.
pub(crate) fn closed_after_request(kind: io::ErrorKind, tls: bool) -> io::Error {
    io::Error::new(
        kind,
        format!(
            "the connection was closed before the server sent a byte, after the request was \
             written: a proxy in between may have passed it on, so its outcome is unknown ({})",
            scheme_hint(tls)
        ),
    )
}

fn scheme_hint(tls: bool) -> &'static str {
    if tls {
        "if the port does not serve TLS, use an http:// endpoint"
    } else {
        "if the port serves TLS, use an https:// endpoint"
    }
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
                if let Some(writer) = self.held_writer.take() {
                    writer.wake();
                }
                Ok(())
            }
            // End of stream before the server said anything.
            Ok(()) if !self.heard && buf.remaining() > 0 => {
                Err(self.silently_closed(io::ErrorKind::UnexpectedEof))
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
        let Some(allowed) = self.allowed(cx, buf) else {
            return Poll::Pending;
        };
        let buf = &buf[..allowed];
        let result = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        if let Ok(n) = result
            && !self.tls
        {
            self.requests.feed(&buf[..n]);
        }
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
        if !self.tls && !self.heard {
            // Gated: one buffer at a time, through `poll_write`.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let result = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs));
        if let Ok(mut n) = result
            && !self.tls
        {
            for buf in bufs {
                let part = n.min(buf.len());
                self.requests.feed(&buf[..part]);
                n -= part;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::RequestSeen;

    fn frame(kind: u8, len: usize) -> Vec<u8> {
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.resize(9 + len, 0xaa);
        f
    }

    #[test]
    fn housekeeping_frames_are_not_requests() {
        let mut seen = RequestSeen::default();
        seen.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        // SETTINGS, WINDOW_UPDATE, PING whose payloads hold bytes that look like headers.
        for (kind, len) in [(0x4, 12), (0x8, 4), (0x6, 8)] {
            seen.feed(&frame(kind, len));
        }
        assert!(!seen.seen());
        seen.feed(&frame(0x1, 40));
        assert!(seen.seen());
    }

    #[test]
    fn only_what_comes_before_the_first_request_may_pass() {
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(0x4, 18));
        stream.extend(frame(0x8, 4));
        let request_at = stream.len();
        stream.extend(frame(0x1, 70));
        stream.extend(frame(0x0, 5));
        let gate = RequestSeen::default();
        assert_eq!(gate.passable(&stream), request_at);
        // A writer offering at most `max` bytes at a time gets up to the request, never
        // into it (with `max` below a frame header's size, not past the preface).
        for max in 1..stream.len() {
            let mut gate = RequestSeen::default();
            let mut written = 0;
            loop {
                let offered = &stream[written..(written + max).min(stream.len())];
                let n = gate.passable(offered);
                if n == 0 {
                    break;
                }
                gate.feed(&offered[..n]);
                written += n;
            }
            assert!(written <= request_at, "max {max}: {written} bytes passed");
            if max >= 9 {
                assert_eq!(written, request_at, "max {max}");
            }
            assert!(!gate.seen(), "max {max}");
        }
        // A frame header cut by the end of the bytes is held back whole.
        assert_eq!(gate.passable(&stream[..request_at + 4]), request_at);
    }

    #[test]
    fn a_request_is_seen_however_the_writes_split_the_bytes() {
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(0x4, 18));
        let request_at = stream.len();
        stream.extend(frame(0x1, 70));
        for split in 1..stream.len() {
            let mut seen = RequestSeen::default();
            for chunk in stream.chunks(split) {
                seen.feed(chunk);
            }
            assert!(seen.seen(), "split {split}");
            let mut before = RequestSeen::default();
            before.feed(&stream[..request_at + 3]);
            assert!(
                !before.seen(),
                "a partial frame header is not yet a request"
            );
        }
    }
}
