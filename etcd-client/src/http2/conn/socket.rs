//! The connection's socket: plain TCP, or TCP carrying TLS records.
//!
//! Both are used the same way, without an `AsyncRead`/`AsyncWrite` in between: writers
//! hand over plaintext and the socket writes what it can without waiting; the driver reads
//! whatever plaintext has arrived. Over TLS, rustls' connection state sits behind a lock
//! held only while rustls encrypts or decrypts, never through a system call: a writer
//! encrypts its bytes into records under it, then writes the records to the socket under
//! a second lock (writers take turns anyway), so the driver decrypting what it read never
//! waits for a writer's system call. Records a full socket held back wait there until it
//! is writable again ([`Socket::has_pending`]).

use std::io;
#[cfg(feature = "_tls")]
use std::io::{Read as _, Write as _};
use std::task::{Context, Poll};

#[cfg(feature = "_tls")]
use bytes::BufMut as _;
use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;

/// The connection's socket.
#[derive(Debug)]
pub(in crate::http2) enum Socket {
    /// Plain TCP (`http://`).
    Plain(TcpStream),
    /// TLS over TCP (`https://`), after the handshake.
    #[cfg(feature = "_tls")]
    Tls(Box<TlsSocket>),
}

/// TCP with rustls' client connection on it.
#[cfg(feature = "_tls")]
#[derive(Debug)]
pub(in crate::http2) struct TlsSocket {
    tcp: TcpStream,
    tls: std::sync::Mutex<TlsState>,
    /// Records encrypted and not yet taken by the socket, in order. Held by the one writer
    /// through its system calls; taken after `tls` when both are needed, never before.
    records: std::sync::Mutex<BytesMut>,
    /// Records wait (in `records` or in rustls). Read without a lock: writers ask on every
    /// submit, under the connection's state lock.
    pending: std::sync::atomic::AtomicBool,
}

#[cfg(feature = "_tls")]
#[derive(Debug)]
struct TlsState {
    conn: tokio_rustls::rustls::ClientConnection,
    /// The peer sent close_notify: no plaintext will follow.
    closed: bool,
}

/// Plaintext rustls takes from a writer at a time: the records it makes of it are written
/// before the writer hands over more, so what waits for a full socket stays about this
/// size (what is left stays in the connection's output buffer).
#[cfg(feature = "_tls")]
const MAX_TLS_PENDING: usize = 256 << 10;

/// The buffer TLS records are read into: at most this much is read, and decrypted into
/// plaintext, at a time (see [`Socket::read_room`]).
#[cfg(feature = "_tls")]
const TLS_READ_CHUNK: usize = 64 << 10;

impl Socket {
    /// TLS on a connection whose handshake is done.
    #[cfg(feature = "_tls")]
    pub(in crate::http2) fn tls(
        tcp: TcpStream,
        mut conn: tokio_rustls::rustls::ClientConnection,
    ) -> Self {
        conn.set_buffer_limit(Some(MAX_TLS_PENDING));
        Socket::Tls(Box::new(TlsSocket {
            tcp,
            tls: std::sync::Mutex::new(TlsState {
                conn,
                closed: false,
            }),
            records: std::sync::Mutex::new(BytesMut::new()),
            pending: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Socket::Plain(tcp) => tcp,
            #[cfg(feature = "_tls")]
            Socket::Tls(tls) => &tls.tcp,
        }
    }

    /// Waits until the socket may have something to read.
    pub(in crate::http2) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read_ready(cx)
    }

    /// Waits until the socket may take more bytes.
    pub(in crate::http2) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_write_ready(cx)
    }

    /// Reads what has arrived into `out` (plaintext): `Ok(0)` is the end of the
    /// connection, `WouldBlock` that nothing (or no whole TLS record) is there yet.
    /// `scratch` holds encrypted bytes between calls.
    pub(in crate::http2) fn try_read(
        &self,
        scratch: &mut BytesMut,
        out: &mut BytesMut,
    ) -> io::Result<usize> {
        #[cfg(not(feature = "_tls"))]
        let _ = scratch;
        match self {
            Socket::Plain(tcp) => read_drained(tcp, out),
            #[cfg(feature = "_tls")]
            Socket::Tls(tls) => tls.try_read(scratch, out),
        }
    }

    /// Writes all of `buf`, or stops at a full socket (`WouldBlock`, leaving in `buf`
    /// what was not taken).
    pub(in crate::http2) fn write_some(&self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Socket::Plain(tcp) => {
                while !buf.is_empty() {
                    match tcp.try_write(buf)? {
                        0 => return Err(io::ErrorKind::WriteZero.into()),
                        n => buf.advance(n),
                    }
                }
                Ok(())
            }
            #[cfg(feature = "_tls")]
            Socket::Tls(tls) => tls.write_some(buf),
        }
    }

    /// The room a plaintext buffer needs for one [`try_read`](Self::try_read), if more
    /// than the 16 KiB every read gets: over TLS a read hands over all the plaintext of
    /// the records it took, up to [`TLS_READ_CHUNK`] of them (room for that and one
    /// more record).
    pub(in crate::http2) fn read_room(&self) -> usize {
        match self {
            Socket::Plain(_) => 0,
            #[cfg(feature = "_tls")]
            Socket::Tls(_) => TLS_READ_CHUNK + (16 << 10),
        }
    }

    /// Whether encrypted bytes wait for the socket (a full socket held them back).
    pub(in crate::http2) fn has_pending(&self) -> bool {
        match self {
            Socket::Plain(_) => false,
            #[cfg(feature = "_tls")]
            Socket::Tls(tls) => tls.pending.load(std::sync::atomic::Ordering::Acquire),
        }
    }
}

/// Reads what `tcp` has into the spare room of `buf`, as `try_read_buf` does; a read that
/// leaves room over also clears the socket's read readiness, as tokio's own `AsyncRead`
/// does where readiness is edge-triggered (epoll, kqueue). The socket was drained, so the
/// reading task next waits for the next readiness event, instead of spending a system call
/// on being told that nothing is there (one per response at low concurrency).
fn read_drained(tcp: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    if !EDGE_TRIGGERED {
        return tcp.try_read_buf(buf);
    }
    let mut short = None;
    let result = tcp.try_io(tokio::io::Interest::READABLE, || {
        let room = buf.capacity() - buf.len();
        let n = tcp.try_read_buf(buf)?;
        if 0 < n && n < room {
            // Answering `WouldBlock` is how `try_io` is told to clear the readiness.
            short = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match short {
        Some(n) => Ok(n),
        None => result,
    }
}

/// Room in `buf` for the next read, and for `want` bytes in all from its start (a frame
/// whose start it holds, or what one read may bring): a buffer whose bytes were all taken
/// and that nobody shares any more is read into from its start again, so the same few
/// pages serve every read instead of each read touching the next ones (up to `chunk` of
/// resident memory per buffer for no gain; pages a burst reached stay resident). Otherwise,
/// with less than 16 KiB left (or too little for `want`), a buffer nobody shares makes room
/// in place (moving its unread bytes to its start) where it can. One that responses still
/// hold parts of is parked, and reading goes on in a parked buffer they have all let go of
/// since, or else in a new one.
///
/// A busy stream (watches catching up) has responses hold parts of dozens of read
/// buffers at once; reusing parked ones saves allocating a new buffer for each and
/// freeing it later (the README's performance section gives the measured memory). When
/// the burst is over (a read whose bytes were all taken and let go of, or the connection
/// quiet for its keep-alive interval: [`Parked::trim`]), at most [`KEEP_FREE`] free
/// buffers stay parked.
pub(super) fn make_room(buf: &mut BytesMut, chunk: usize, want: usize, parked: &mut Parked) {
    if buf.is_empty() && buf.try_reclaim(chunk.max(want)) {
        // Everything read was taken and let go of: a burst is over.
        parked.trim(chunk);
        return;
    }
    let room = MIN_ROOM.max(want.saturating_sub(buf.len()));
    if buf.capacity() - buf.len() >= room || buf.try_reclaim(room) {
        return;
    }
    let size = chunk.max(buf.len() + room);
    let next = parked
        .take_free(size)
        .unwrap_or_else(|| BytesMut::with_capacity(size));
    let mut held = std::mem::replace(buf, next);
    buf.extend_from_slice(&held);
    held.clear();
    parked.park(held);
}

impl Parked {
    /// A parked buffer nobody holds any more, with room for `size` bytes from its start.
    fn take_free(&mut self, size: usize) -> Option<BytesMut> {
        let free = self.0.iter_mut().position(|p| p.try_reclaim(size))?;
        Some(self.0.swap_remove(free))
    }

    /// Parks an emptied buffer that responses may still hold parts of, unless
    /// [`MAX_PARKED`] are parked already (then it goes when they let go of it).
    fn park(&mut self, held: BytesMut) {
        if self.0.len() < MAX_PARKED {
            self.0.push(held);
        }
    }

    /// How many buffers are parked.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Lets go of the parked buffers nobody holds any more, but [`KEEP_FREE`] of them.
    pub(super) fn trim(&mut self, chunk: usize) {
        if self.0.len() <= KEEP_FREE {
            return;
        }
        let mut free = 0;
        self.0.retain_mut(|p| {
            if !p.try_reclaim(chunk) {
                return true;
            }
            free += 1;
            free <= KEEP_FREE
        });
    }
}

/// A read with less room than this left in its buffer makes room first.
const MIN_ROOM: usize = 16 << 10;

/// Read buffers a connection keeps parked (see [`make_room`]): during a burst, at most
/// this many stay allocated for reuse once free (a read chunk each, 8 MiB in all, or the
/// size of a frame larger than a chunk); more are let go of as usual.
const MAX_PARKED: usize = 32;

/// Free parked buffers a connection keeps once a burst is over.
const KEEP_FREE: usize = 2;

/// Read buffers that responses still held when reading moved on from them, kept to be
/// read into again once they are free (see [`make_room`]).
#[derive(Debug, Default)]
pub(super) struct Parked(Vec<BytesMut>);

/// Whether the platform's readiness events are edge-triggered (see [`read_drained`]).
const EDGE_TRIGGERED: bool = cfg!(any(
    target_os = "android",
    target_os = "linux",
    target_os = "illumos",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "ios",
));

#[cfg(feature = "_tls")]
impl TlsSocket {
    fn lock(&self) -> std::sync::MutexGuard<'_, TlsState> {
        self.tls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_read(&self, scratch: &mut BytesMut, out: &mut BytesMut) -> io::Result<usize> {
        // rustls copies the records it takes: the buffer is never shared, so never parked.
        make_room(scratch, TLS_READ_CHUNK, 0, &mut Parked::default());
        let eof = match read_drained(&self.tcp, scratch) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => return Err(e),
        };
        let mut state = self.lock();
        let start = out.len();
        loop {
            let mut taken = 0;
            if !scratch.is_empty() {
                let mut records = &scratch[..];
                taken = state.conn.read_tls(&mut records)?;
                scratch.advance(taken);
            }
            let io_state = state
                .conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if io_state.peer_has_closed() {
                state.closed = true;
            }
            // Take the plaintext out at once: rustls holds only a little.
            let plaintext = io_state.plaintext_bytes_to_read();
            if plaintext > 0 {
                let len = out.len();
                out.resize(len + plaintext, 0);
                state.conn.reader().read_exact(&mut out[len..])?;
            }
            if scratch.is_empty() || (taken == 0 && plaintext == 0) {
                break;
            }
        }
        if state.conn.wants_write() {
            // rustls answers some records itself (a key update): the flag has the reading
            // task submit them at once.
            self.pending
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let read = out.len() - start;
        let closed = state.closed;
        drop(state);
        if read > 0 {
            Ok(read)
        } else if eof || closed {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Encrypts `buf` (all of it, or [`MAX_TLS_PENDING`] at a time) and writes the
    /// records, after any that were waiting; stops at a full socket (`WouldBlock`, leaving
    /// in `buf` what was not encrypted yet and the records pending).
    fn write_some(&self, buf: &mut BytesMut) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            // Cleared before the records are taken from rustls: a reader that has rustls
            // make more afterwards (under its lock) sets it again.
            self.pending.store(false, Ordering::Release);
            self.write_records(&mut records)?;
            let mut state = self.lock();
            let taken = if buf.is_empty() {
                0
            } else {
                match state.conn.writer().write(buf)? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    n => n,
                }
            };
            buf.advance(taken);
            let mut out = (&mut *records).writer();
            while state.conn.wants_write() {
                state.conn.write_tls(&mut out)?;
            }
            drop(state);
            self.write_records(&mut records)?;
            if buf.is_empty() {
                return Ok(());
            }
        }
    }

    /// Writes the waiting records, or stops at a full socket (`WouldBlock`, and they are
    /// pending).
    fn write_records(&self, records: &mut BytesMut) -> io::Result<()> {
        while !records.is_empty() {
            match self.tcp.try_write(records) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => records.advance(n),
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.pending
                            .store(true, std::sync::atomic::Ordering::Release);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
