//! Dialling a member, and the task that drives its connection: reading, writes the socket
//! held back, keep-alive pings, and failing the streams when the connection ends.

use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::net::TcpStream;

use super::conn::{Closing, Conn, ReadError, Reader, Socket};
use super::frame::code;
use super::{ConnectError, Live, Shared};
use crate::connector::{closed_after_request, silent_close};

/// Connects to the member over TCP and starts HTTP/2 on the connection; a task of its own
/// drives the connection until it closes.
pub(super) async fn dial(shared: &Arc<Shared>, attempt: u64) -> Result<Live, ConnectError> {
    let address = shared.authority.as_str();
    // The TCP connection and the TLS handshake share the connect timeout.
    let deadline = tokio::time::Instant::now() + shared.options.connect_timeout;
    let connect = TcpStream::connect(address);
    let tcp = tokio::time::timeout_at(deadline, connect)
        .await
        .map_err(|_| ConnectError::timed_out())?
        .map_err(ConnectError::io)?;
    tcp.set_nodelay(true).map_err(ConnectError::io)?;
    // Whether the TLS handshake resumed an earlier session (`None` in plain text).
    let (socket, tls_resumed) = match &shared.tls {
        None => (Socket::Plain(tcp), None::<bool>),
        #[cfg(feature = "_tls")]
        Some(tls) => {
            let (socket, resumed) = handshake(tcp, tls, &shared.authority, deadline).await?;
            (socket, Some(resumed))
        }
        #[cfg(not(feature = "_tls"))]
        Some(never) => match *never {},
    };
    let conn = Conn::new(socket, address.to_owned());
    tracing::debug!(member = address, attempt, tls_resumed, "connected");
    tokio::spawn(drive(
        conn.clone(),
        shared.options.keep_alive,
        Arc::downgrade(shared),
        attempt,
    ));
    Ok(Live { conn, attempt })
}

/// The TLS handshake on a connected socket, checking the server's certificate against
/// the server name override or the member's host, and asking for HTTP/2 (ALPN `h2`; a
/// server that answers without ALPN is taken to speak it, as etcd does). Also says
/// whether the handshake resumed a session from an earlier connection to the member (each
/// member's rustls settings, and with them its session cache, live as long as the client).
#[cfg(feature = "_tls")]
async fn handshake(
    tcp: TcpStream,
    tls: &crate::tls::TlsConnect,
    authority: &http::uri::Authority,
    deadline: tokio::time::Instant,
) -> Result<(Socket, bool), ConnectError> {
    use rustls_pki_types::ServerName;
    use std::io;

    let name = match &tls.server_name {
        Some(name) => name.clone(),
        None => {
            let host = authority.host();
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            ServerName::try_from(host.to_owned()).map_err(|e| {
                ConnectError::tls(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{host:?} is not a name a certificate can be checked against ({e})"),
                ))
            })?
        }
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&tls.config));
    let stream = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
        .await
        .map_err(|_| {
            ConnectError::tls(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timeout (within the connect timeout)",
            ))
        })?
        .map_err(ConnectError::tls)?;
    let (tcp, conn) = stream.into_inner();
    if let Some(protocol) = conn.alpn_protocol()
        && protocol != b"h2"
    {
        return Err(ConnectError::tls(io::Error::other(format!(
            "HTTP/2 was not negotiated (the server chose {:?})",
            String::from_utf8_lossy(protocol)
        ))));
    }
    let resumed = conn.handshake_kind() == Some(tokio_rustls::rustls::HandshakeKind::Resumed);
    Ok((Socket::tls(tcp, conn), resumed))
}

/// Why the connection ended.
enum End {
    Read(ReadError),
    KeepAlive(Duration),
}

/// Ends the connection when the driver stops, however it stops: at its end, or when its
/// task panics or is dropped (its runtime shut down). Its streams fail at once and the
/// next call dials afresh, on the runtime it runs on.
struct Ending {
    conn: Arc<Conn>,
    shared: Weak<Shared>,
    attempt: u64,
    ended: bool,
}

impl Ending {
    fn end(&mut self, closing: &Closing) {
        self.ended = true;
        self.conn.close(closing);
        if let Some(shared) = self.shared.upgrade() {
            shared.forget(self.attempt);
            tracing::debug!(member = %shared.authority, reason = %closing.sent, "connection ended");
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let reason = if std::thread::panicking() {
            "the connection's task panicked"
        } else {
            "the connection's task was stopped (its runtime shut down)"
        };
        self.end(&Closing::because(reason));
    }
}

/// Runs the connection until it ends (the member hung up or sent GOAWAY and its streams
/// finished, a protocol error, or a keep-alive ping went unanswered), fails what is still
/// open, and forgets the connection so that the next call dials again.
async fn drive(
    conn: Arc<Conn>,
    keep_alive: Option<(Duration, Duration)>,
    shared: Weak<Shared>,
    attempt: u64,
) {
    let mut ending = Ending {
        conn: conn.clone(),
        shared,
        attempt,
        ended: false,
    };
    let mut reader = Reader::new();
    // Set when the connection was quiet for its keep-alive interval: the reading then
    // lets go of the read buffers it no longer needs (it is polled right after).
    let quiet = AtomicBool::new(false);
    let io = poll_fn(|cx| {
        if conn.register_driver(cx) {
            return Poll::Ready(Ok(()));
        }
        if quiet.load(Ordering::Relaxed) {
            quiet.store(false, Ordering::Relaxed);
            reader.trim();
        }
        if let Poll::Ready(Err(e)) = conn.poll_write_blocked(cx) {
            return Poll::Ready(Err(ReadError::Io(e)));
        }
        conn.poll_read(cx, &mut reader)
    });
    let result = match keep_alive {
        Some((interval, timeout)) => {
            let on_quiet = || quiet.store(true, Ordering::Relaxed);
            pinging(io, &conn, interval, timeout, on_quiet).await
        }
        None => io.await.map_err(End::Read),
    };
    let heard = reader.heard;
    let closing = match result {
        Ok(()) if heard => Closing::because("the server closed the connection"),
        Ok(()) => silently_closed(std::io::ErrorKind::UnexpectedEof),
        Err(End::Read(ReadError::Io(e))) => {
            use std::io::ErrorKind::*;
            if !heard && matches!(e.kind(), ConnectionReset | BrokenPipe | UnexpectedEof) {
                silently_closed(e.kind())
            } else {
                Closing::because(&format!("connection error: {e}"))
            }
        }
        Err(End::Read(ReadError::Protocol(error))) if error.not_http2 => Closing {
            nothing_processed: true,
            ..Closing::because(&error.what)
        },
        Err(End::Read(ReadError::Protocol(error))) => {
            conn.go_away(&error);
            let name = code::name(error.code);
            Closing::because(&format!("HTTP/2 protocol error ({name}): {}", error.what))
        }
        Err(End::KeepAlive(timeout)) => Closing::because(&format!(
            "keep-alive timed out: no answer to a ping within {timeout:?}"
        )),
    };
    ending.end(&closing);
}

/// A connection closed before the server sent a byte. etcd's server sends its SETTINGS
/// before it reads a request, so on a direct connection nothing was processed; but a TCP
/// proxy in between may have passed the request on before the server's first bytes came
/// back. Requests that reached the socket therefore have an unknown outcome; the others
/// were not sent.
fn silently_closed(kind: std::io::ErrorKind) -> Closing {
    Closing {
        sent: closed_after_request(kind, false).to_string().into(),
        unsent: silent_close(kind, false).to_string().into(),
        nothing_processed: false,
    }
}

/// Drives `io`, pinging when streams are open and nothing was read for `interval`; a ping
/// unanswered for `timeout` ends it. `quiet` is called each time nothing was read for
/// `interval`.
async fn pinging(
    io: impl Future<Output = Result<(), ReadError>>,
    conn: &Conn,
    interval: Duration,
    timeout: Duration,
    mut quiet: impl FnMut(),
) -> Result<(), End> {
    let mut io = std::pin::pin!(io);
    loop {
        let quiet_since = conn.activity.last_read();
        let due = tokio::time::Instant::from_std(quiet_since + interval);
        tokio::select! {
            ended = &mut io => return ended.map_err(End::Read),
            () = tokio::time::sleep_until(due) => {}
        }
        if conn.activity.last_read() > quiet_since {
            continue;
        }
        quiet();
        if conn.open_streams() == 0 {
            // Idle: no pings (etcd refuses pings on idle connections); look again later.
            tokio::select! {
                ended = &mut io => return ended.map_err(End::Read),
                () = tokio::time::sleep(interval) => continue,
            }
        }
        conn.ping();
        tokio::select! {
            ended = &mut io => return ended.map_err(End::Read),
            answered = tokio::time::timeout(timeout, conn.pong.notified()) => {
                if answered.is_err() {
                    return Err(End::KeepAlive(timeout));
                }
            }
        }
    }
}
