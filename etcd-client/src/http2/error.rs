//! The errors of the direct HTTP/2 channel. Those of requests that never reached the
//! server are wrapped in `etcd_core::transport::NeverSent` where calls fail, which is how
//! `etcd-core` knows they may be sent again; the messages are for people.

use std::io;
use std::sync::Arc;

/// A connection that could not be made: no request went out on it. Clones share the
/// cause, so that callers that waited for one attempt all get its error.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", describe(*.tls, io))]
pub(crate) struct ConnectError {
    #[source]
    io: Arc<io::Error>,
    /// The TCP connection was made, its TLS handshake failed.
    tls: bool,
}

fn describe(tls: bool, io: &io::Error) -> String {
    match (tls, io.kind()) {
        (false, _) => format!("tcp connect error: {io}"),
        (
            true,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe,
        ) => format!(
            "TLS handshake failed: the server closed the connection during the handshake; \
             if this port does not serve TLS, use an http:// endpoint ({io})"
        ),
        (true, _) => format!("TLS handshake failed: {io}"),
    }
}

impl ConnectError {
    pub(crate) fn io(io: io::Error) -> Self {
        Self {
            io: Arc::new(io),
            tls: false,
        }
    }

    /// The TLS handshake failed (or timed out) on a connected socket.
    #[cfg(feature = "_tls")]
    pub(crate) fn tls(io: io::Error) -> Self {
        Self {
            io: Arc::new(io),
            tls: true,
        }
    }

    pub(crate) fn timed_out() -> Self {
        Self::io(io::Error::new(
            io::ErrorKind::TimedOut,
            "connecting timed out",
        ))
    }
}

/// The request's stream was not acted on: the connection closed before it was opened, or
/// the server refused it (GOAWAY, REFUSED_STREAM).
#[derive(Debug, thiserror::Error)]
#[error("the request was not sent: {0}")]
pub(crate) struct NotSent(pub(crate) Arc<str>);

/// A stream that failed after its request went out (it may have been acted on).
#[derive(Debug, thiserror::Error)]
#[error("HTTP/2 stream failed: {0}")]
pub(crate) struct StreamError(pub(crate) Arc<str>);
