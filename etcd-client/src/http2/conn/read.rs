//! Frames from the socket: the driver reads whole batches, takes the state lock once per
//! batch, hands each frame to its stream, and wakes the streams that got something after
//! letting go of the lock.
//!
//! Whatever the server sends is checked before it is believed: frame sizes, the streams
//! frames name, the order of a response's parts, and the limits of
//! [`limits`](crate::http2::limits). A fault
//! that concerns one stream fails that stream (RST_STREAM); any other closes the
//! connection (GOAWAY).

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};

use super::socket::{Parked, make_room};
use super::write::flush_queued;
use super::{
    Conn, Failure, LAST_STREAM_ID, MAX_WINDOW, State, Wakes, release, stream_error, wake_waiting,
};
use crate::http2::frame::{self, Head, code, flag, kind, setting};
use crate::http2::hpack;
use crate::http2::limits::{
    MAX_CONTINUATIONS, MAX_FRAME, MAX_HEADER_BLOCK, MAX_HEADER_LIST_SIZE, MAX_IDLE_FRAMES,
    MAX_PENDING_WRITE,
};

/// Reads go into buffers of at least this size. Smaller ones (64 KiB) left more of each
/// buffer unused at the end of a big response's last frame in it, and a range response
/// of 10,000 keys peaked at 15.8 MiB of RSS against 11.4 MiB with these.
const READ_CHUNK: usize = 256 << 10;

/// DATA payloads smaller than this are copied out of the read buffer rather than shared
/// with it: a small value an application keeps must not keep a whole read buffer alive,
/// and a buffer nobody shares is reused in place. Consecutive small payloads of a stream
/// are gathered into one buffer, so a flood of tiny frames costs no allocation each.
const COPY_BELOW: usize = 4 << 10;

/// How a server that is not an HTTP/2 server usually begins its answer.
const HTTP1: &[u8] = b"HTTP/";

/// A header block being received over CONTINUATION frames.
struct Partial {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
    /// CONTINUATION frames so far.
    continuations: usize,
}

/// The driver's reading state.
pub(in crate::http2) struct Reader {
    buf: BytesMut,
    /// Read buffers responses still hold, for reuse once they let go.
    parked: Parked,
    /// The length of the frame whose start `buf` holds (0: none), header included.
    want: usize,
    /// Encrypted bytes read but not yet taken by TLS (TLS connections only).
    records: BytesMut,
    frames: Frames,
    /// The server has sent at least one byte.
    pub(in crate::http2) heard: bool,
    /// The server's preface (a SETTINGS frame) arrived.
    preface: bool,
    /// Reading stopped until our replies drain (see [`MAX_PENDING_WRITE`]).
    paused: bool,
}

/// What frames leave for the frames after them.
struct Frames {
    decoder: hpack::Decoder,
    partial: Option<Partial>,
    wakes: Wakes,
    /// Frames that carried nothing (see [`MAX_IDLE_FRAMES`]).
    idle: u32,
}

impl Reader {
    pub(in crate::http2) fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(READ_CHUNK),
            parked: Parked::default(),
            want: 0,
            records: BytesMut::new(),
            frames: Frames {
                decoder: hpack::Decoder::new(),
                partial: None,
                wakes: Wakes::default(),
                idle: 0,
            },
            heard: false,
            preface: false,
            paused: false,
        }
    }

    /// Room for the next read, and `room` bytes beyond the unread ones (see
    /// [`make_room`]).
    fn make_room(&mut self, room: usize) {
        let want = self.want.max(self.buf.len() + room);
        make_room(&mut self.buf, READ_CHUNK, want, &mut self.parked);
    }

    /// Lets go of parked read buffers nobody holds any more (the connection is quiet).
    pub(in crate::http2) fn trim(&mut self) {
        self.parked.trim(READ_CHUNK);
    }
}

/// A connection-level protocol violation by the server.
#[derive(Debug)]
pub(in crate::http2) struct ProtocolError {
    pub(in crate::http2) code: u32,
    pub(in crate::http2) what: String,
    /// The server does not speak HTTP/2 at all: it acted on no request.
    pub(in crate::http2) not_http2: bool,
}

fn violation(code: u32, what: impl Into<String>) -> ProtocolError {
    ProtocolError {
        code,
        what: what.into(),
        not_http2: false,
    }
}

/// The server's first bytes are not an HTTP/2 server's preface.
fn not_http2(first: &[u8]) -> ProtocolError {
    let what = if first.starts_with(HTTP1) {
        let line = first
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or_default();
        let line = String::from_utf8_lossy(&line[..line.len().min(80)]);
        format!(
            "the endpoint answered in HTTP/1 (\"{line}\"), not HTTP/2: it is not a gRPC \
             endpoint. Is this etcd's peer URL (port 2380 by default) rather than its client \
             URL (port 2379 by default)?"
        )
    } else {
        "the endpoint did not begin with HTTP/2 SETTINGS: it is not a gRPC (HTTP/2) endpoint"
            .to_owned()
    };
    ProtocolError {
        code: code::PROTOCOL_ERROR,
        what,
        not_http2: true,
    }
}

/// A stream identifier the server may name: one we opened (client streams are odd).
fn never_opened(state: &State, id: u32) -> bool {
    id.is_multiple_of(2) || id >= state.next_id
}

/// Why reading stopped.
#[derive(Debug)]
pub(in crate::http2) enum ReadError {
    Io(io::Error),
    Protocol(ProtocolError),
}

impl Conn {
    /// Reads what the socket has and hands it to the streams. `Ready(Ok(()))` is the end
    /// of the connection (the server closed it).
    pub(in crate::http2) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        reader: &mut Reader,
    ) -> Poll<Result<(), ReadError>> {
        for _ in 0..32 {
            if reader.paused {
                // The server does not read what we owe it: read nothing more until it did
                // (a writer wakes the driver once `out` drained).
                let mut state = self.lock();
                let hung_up = self.hung_up.load(std::sync::atomic::Ordering::Relaxed);
                if state.out.len() >= MAX_PENDING_WRITE && state.closed.is_none() && !hung_up {
                    state.read_paused = true;
                    return Poll::Pending;
                }
                state.read_paused = false;
                reader.paused = false;
            }
            std::task::ready!(self.socket.poll_read_ready(cx)).map_err(ReadError::Io)?;
            reader.make_room(self.socket.read_room());
            match self.socket.try_read(&mut reader.records, &mut reader.buf) {
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(_) => {
                    if !reader.heard {
                        reader.heard = true;
                        self.open_gate();
                    }
                    self.activity.record();
                    let result = self.take_frames(reader);
                    reader.frames.wakes.wake_all();
                    result.map_err(ReadError::Protocol)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(ReadError::Io(e))),
            }
            if self.socket.has_pending() {
                // Over TLS, rustls made records of its own while reading (a key update):
                // they go out now, not with the next request.
                self.submit(self.lock());
            }
        }
        // A long burst: let other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Handles the complete frames in the read buffer.
    fn take_frames(&self, reader: &mut Reader) -> Result<(), ProtocolError> {
        if !reader.preface {
            // The server's first frame must be SETTINGS; an HTTP/1 server (a wrong port)
            // answers our preface with a status line instead.
            let buf = &reader.buf[..];
            if buf.starts_with(HTTP1) {
                return Err(not_http2(buf));
            }
            if buf.len() < frame::HEADER_LEN {
                return Ok(());
            }
            let head = Head::parse(buf);
            if head.kind != kind::SETTINGS || head.flags & flag::ACK != 0 {
                return Err(not_http2(buf));
            }
            reader.preface = true;
        }
        let mut state = self.lock();
        reader.want = 0;
        let result = loop {
            if reader.buf.len() < frame::HEADER_LEN {
                break Ok(());
            }
            let head = Head::parse(&reader.buf);
            if head.len > MAX_FRAME as usize {
                break Err(violation(
                    code::FRAME_SIZE_ERROR,
                    format!("a frame of {} bytes", head.len),
                ));
            }
            let total = frame::HEADER_LEN + head.len;
            if reader.buf.len() < total {
                // The next read makes room for the rest.
                reader.want = total;
                break Ok(());
            }
            reader.buf.advance(frame::HEADER_LEN);
            let result = if head.kind == kind::DATA {
                on_data(&mut state, head, &mut reader.buf, &mut reader.frames)
            } else {
                let payload = &reader.buf[..head.len];
                let result = on_control(&mut state, head, payload, &mut reader.frames);
                reader.buf.advance(head.len);
                result
            };
            if let Err(e) = result {
                break Err(e);
            }
        };
        if std::mem::take(&mut state.pong) {
            self.pong.notify_one();
        }
        // Most batches owe the server a few bytes at most; only a large debt is looked at
        // again once the writes are done.
        let debt = state.out.len() >= MAX_PENDING_WRITE / 16;
        self.submit(state);
        if debt && self.lock().out.len() >= MAX_PENDING_WRITE {
            reader.paused = true;
        }
        result
    }
}

/// A DATA frame; `buf` holds its payload first, and the payload is taken from it.
fn on_data(
    state: &mut State,
    head: Head,
    buf: &mut BytesMut,
    frames: &mut Frames,
) -> Result<(), ProtocolError> {
    let len = head.len;
    let content = if head.flags & flag::PADDED != 0 {
        unpadded(&buf[..len])?
    } else {
        0..len
    };
    if head.stream == 0 {
        return Err(violation(code::PROTOCOL_ERROR, "DATA on stream 0"));
    }
    if never_opened(state, head.stream) {
        return Err(violation(
            code::PROTOCOL_ERROR,
            format!("DATA on stream {}, which we never opened", head.stream),
        ));
    }
    // Every byte counts against the windows we gave, padding included.
    state.recv_window -= len as i64;
    if state.recv_window < 0 {
        return Err(violation(
            code::FLOW_CONTROL_ERROR,
            "the server sent more data than the connection's window allows",
        ));
    }
    let end = head.flags & flag::END_STREAM != 0;
    if content.is_empty() && !end {
        idle_frame(frames)?;
    }
    // The connection window gets padding back at once, data once its stream reads it (so
    // that what is received and not yet read stays within the window), and data nobody
    // will read at once.
    let fault = match state.streams.get_mut(&head.stream) {
        Some(slot) if slot.failure.is_none() && !slot.received_end => {
            slot.recv_window -= len as i64;
            if slot.recv_window < 0 {
                Some((
                    code::FLOW_CONTROL_ERROR,
                    "the server sent more data than the stream's window allows",
                ))
            } else if !slot.head_received {
                Some((code::PROTOCOL_ERROR, "DATA before the response's headers"))
            } else {
                let padding = len - content.len();
                if content.len() < COPY_BELOW {
                    slot.small.extend_from_slice(&buf[content]);
                    buf.advance(len);
                } else {
                    if !slot.small.is_empty() {
                        slot.data
                            .push_back(std::mem::take(&mut slot.small).freeze());
                    }
                    slot.data
                        .push_back(buf.split_to(len).freeze().slice(content));
                }
                slot.received_end = end;
                // Padding goes back to the stream's window with its next update.
                slot.unreleased += padding as u32;
                frames.wakes.push(slot.waker.take());
                release(state, padding as u32);
                return Ok(());
            }
        }
        // A stream that ended, failed or was forgotten: nobody reads this.
        _ => None,
    };
    buf.advance(len);
    release(state, len as u32);
    if let Some((code, why)) = fault {
        stream_error(state, head.stream, code, why.to_owned(), &mut frames.wakes);
    }
    Ok(())
}

/// Counts a frame that carried nothing, against [`MAX_IDLE_FRAMES`].
fn idle_frame(frames: &mut Frames) -> Result<(), ProtocolError> {
    frames.idle += 1;
    if frames.idle > MAX_IDLE_FRAMES {
        return Err(violation(
            code::ENHANCE_YOUR_CALM,
            format!("more than {MAX_IDLE_FRAMES} frames that carry nothing"),
        ));
    }
    Ok(())
}

/// Where the content of a padded DATA or HEADERS payload lies.
fn unpadded(payload: &[u8]) -> Result<Range<usize>, ProtocolError> {
    let Some(&pad) = payload.first() else {
        return Err(violation(
            code::PROTOCOL_ERROR,
            "a padded frame without padding",
        ));
    };
    let end = payload
        .len()
        .checked_sub(usize::from(pad))
        .filter(|&end| end >= 1)
        .ok_or_else(|| violation(code::PROTOCOL_ERROR, "padding longer than its frame"))?;
    Ok(1..end)
}

/// Any frame but DATA.
fn on_control(
    state: &mut State,
    head: Head,
    payload: &[u8],
    frames: &mut Frames,
) -> Result<(), ProtocolError> {
    if frames.partial.is_some() && head.kind != kind::CONTINUATION {
        return Err(violation(
            code::PROTOCOL_ERROR,
            "a frame inside a header block",
        ));
    }
    let on_stream = matches!(
        head.kind,
        kind::HEADERS | kind::CONTINUATION | kind::RST_STREAM | kind::PRIORITY
    );
    let on_connection = matches!(head.kind, kind::SETTINGS | kind::PING | kind::GOAWAY);
    if (on_stream && head.stream == 0) || (on_connection && head.stream != 0) {
        let (name, zero) = (kind_name(head.kind), head.stream == 0);
        let which = if zero { "on stream 0" } else { "on a stream" };
        return Err(violation(code::PROTOCOL_ERROR, format!("{name} {which}")));
    }
    let fixed = match head.kind {
        kind::RST_STREAM | kind::WINDOW_UPDATE => Some(4),
        kind::PING => Some(8),
        kind::PRIORITY => Some(5),
        kind::SETTINGS if head.flags & flag::ACK != 0 => Some(0),
        _ => None,
    };
    if fixed.is_some_and(|n| n != payload.len())
        || (head.kind == kind::GOAWAY && payload.len() < 8)
        || (head.kind == kind::SETTINGS && !payload.len().is_multiple_of(6))
    {
        return Err(violation(
            code::FRAME_SIZE_ERROR,
            format!(
                "a {} frame of {} bytes",
                kind_name(head.kind),
                payload.len()
            ),
        ));
    }
    let names_idle = matches!(
        head.kind,
        kind::HEADERS | kind::RST_STREAM | kind::WINDOW_UPDATE
    ) && head.stream != 0
        && never_opened(state, head.stream);
    if names_idle {
        return Err(violation(
            code::PROTOCOL_ERROR,
            format!(
                "{} on stream {}, which we never opened",
                kind_name(head.kind),
                head.stream
            ),
        ));
    }
    match head.kind {
        kind::HEADERS => {
            let mut block = payload;
            if head.flags & flag::PADDED != 0 {
                block = &block[unpadded(block)?];
            }
            if head.flags & flag::PRIORITY != 0 {
                block = block.get(5..).ok_or_else(|| {
                    violation(code::PROTOCOL_ERROR, "HEADERS too short for its priority")
                })?;
            }
            let end_stream = head.flags & flag::END_STREAM != 0;
            if head.flags & flag::END_HEADERS != 0 {
                on_headers(state, frames, head.stream, end_stream, block)
            } else {
                frames.partial = Some(Partial {
                    stream: head.stream,
                    end_stream,
                    block: block.to_vec(),
                    continuations: 0,
                });
                Ok(())
            }
        }
        kind::CONTINUATION => {
            let Some(partial) = frames.partial.as_mut() else {
                return Err(violation(code::PROTOCOL_ERROR, "CONTINUATION out of place"));
            };
            if partial.stream != head.stream {
                return Err(violation(
                    code::PROTOCOL_ERROR,
                    "CONTINUATION of another stream",
                ));
            }
            partial.continuations += 1;
            if partial.continuations > MAX_CONTINUATIONS {
                return Err(violation(
                    code::ENHANCE_YOUR_CALM,
                    format!("a header block in more than {MAX_CONTINUATIONS} CONTINUATION frames"),
                ));
            }
            partial.block.extend_from_slice(payload);
            if partial.block.len() > MAX_HEADER_BLOCK {
                return Err(violation(
                    code::ENHANCE_YOUR_CALM,
                    format!("a header block over {MAX_HEADER_BLOCK} bytes"),
                ));
            }
            if head.flags & flag::END_HEADERS != 0
                && let Some(partial) = frames.partial.take()
            {
                on_headers(
                    state,
                    frames,
                    partial.stream,
                    partial.end_stream,
                    &partial.block,
                )?;
            }
            Ok(())
        }
        kind::RST_STREAM => {
            let code = read_u32(payload);
            if let Some(slot) = state.streams.get_mut(&head.stream)
                && slot.failure.is_none()
                && !slot.received_end
            {
                let why = format!("the server reset the stream ({})", code::name(code));
                let failure = if code == code::REFUSED_STREAM {
                    Failure::NotSent(why.into())
                } else {
                    Failure::Failed(why.into())
                };
                slot.fail(failure, &mut frames.wakes);
            }
            Ok(())
        }
        kind::SETTINGS => {
            if head.flags & flag::ACK != 0 {
                return Ok(());
            }
            for entry in payload.chunks_exact(6) {
                let id = u16::from_be_bytes([entry[0], entry[1]]);
                let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                apply_setting(state, id, value, &mut frames.wakes)?;
            }
            frame::put_head(&mut state.out, 0, kind::SETTINGS, flag::ACK, 0);
            flush_queued(state, &mut frames.wakes);
            Ok(())
        }
        kind::PING => {
            if head.flags & flag::ACK != 0 {
                state.pong = true;
            } else {
                let payload: [u8; 8] = payload.try_into().unwrap_or_default();
                frame::put_ping(&mut state.out, payload, true);
            }
            Ok(())
        }
        kind::GOAWAY => {
            let last = read_u32(payload) & LAST_STREAM_ID;
            let code = read_u32(&payload[4..]);
            let message = String::from_utf8_lossy(&payload[8..payload.len().min(264)]);
            tracing::debug!(last, code = code::name(code), %message, "GOAWAY received");
            state.goaway = Some(state.goaway.map_or(last, |l| l.min(last)));
            let why: Arc<str> = format!(
                "the server is closing the connection (GOAWAY, {})",
                code::name(code)
            )
            .into();
            for (&id, slot) in state.streams.iter_mut() {
                if id > last && slot.failure.is_none() {
                    slot.fail(Failure::NotSent(why.clone()), &mut frames.wakes);
                }
            }
            frames
                .wakes
                .0
                .extend(state.waiting.drain(..).map(|(_, waker)| waker));
            Ok(())
        }
        kind::WINDOW_UPDATE => {
            let increment = i64::from(read_u32(payload) & 0x7fff_ffff);
            if head.stream == 0 {
                if increment == 0 {
                    return Err(violation(
                        code::PROTOCOL_ERROR,
                        "a WINDOW_UPDATE of 0 on the connection",
                    ));
                }
                state.send_window += increment;
                if state.send_window > MAX_WINDOW {
                    return Err(violation(
                        code::FLOW_CONTROL_ERROR,
                        "the connection window overflowed",
                    ));
                }
            } else if let Some(slot) = state.streams.get_mut(&head.stream) {
                let fault = if increment == 0 {
                    Some((code::PROTOCOL_ERROR, "a WINDOW_UPDATE of 0"))
                } else if slot.send_window + increment > MAX_WINDOW {
                    Some((code::FLOW_CONTROL_ERROR, "the stream's window overflowed"))
                } else {
                    slot.send_window += increment;
                    None
                };
                if let Some((code, why)) = fault {
                    stream_error(state, head.stream, code, why.to_owned(), &mut frames.wakes);
                }
            }
            flush_queued(state, &mut frames.wakes);
            Ok(())
        }
        #[cfg(test)]
        PANIC_FOR_TESTS => panic!("a frame that makes the driver panic (tests only)"),
        kind::PUSH_PROMISE => Err(violation(
            code::PROTOCOL_ERROR,
            "PUSH_PROMISE although push is disabled",
        )),
        // PRIORITY and frame types HTTP/2 does not define are ignored, up to a limit.
        _ => idle_frame(frames),
    }
}

/// A frame type that makes the driver panic, in tests of what a panic leaves behind.
#[cfg(test)]
pub(in crate::http2) const PANIC_FOR_TESTS: u8 = 0xfe;

/// A frame type's name, for errors.
fn kind_name(kind: u8) -> &'static str {
    match kind {
        kind::DATA => "DATA",
        kind::HEADERS => "HEADERS",
        kind::PRIORITY => "PRIORITY",
        kind::RST_STREAM => "RST_STREAM",
        kind::SETTINGS => "SETTINGS",
        kind::PUSH_PROMISE => "PUSH_PROMISE",
        kind::PING => "PING",
        kind::GOAWAY => "GOAWAY",
        kind::WINDOW_UPDATE => "WINDOW_UPDATE",
        kind::CONTINUATION => "CONTINUATION",
        _ => "an unknown frame",
    }
}

/// The first four bytes of a payload whose length was checked.
fn read_u32(payload: &[u8]) -> u32 {
    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
}

fn apply_setting(
    state: &mut State,
    id: u16,
    value: u32,
    wakes: &mut Wakes,
) -> Result<(), ProtocolError> {
    match id {
        setting::ENABLE_PUSH if value != 0 => {
            return Err(violation(
                code::PROTOCOL_ERROR,
                format!("a server's SETTINGS with ENABLE_PUSH {value}"),
            ));
        }
        setting::MAX_CONCURRENT_STREAMS => {
            state.max_streams = value as usize;
            wake_waiting(state, wakes);
        }
        setting::INITIAL_WINDOW_SIZE => {
            if i64::from(value) > MAX_WINDOW {
                return Err(violation(
                    code::FLOW_CONTROL_ERROR,
                    "an initial window over 2^31-1",
                ));
            }
            let delta = i64::from(value) - state.initial_window;
            state.initial_window = i64::from(value);
            for slot in state.streams.values_mut() {
                slot.send_window += delta;
                if slot.send_window > MAX_WINDOW {
                    return Err(violation(
                        code::FLOW_CONTROL_ERROR,
                        "a new initial window made a stream's window overflow",
                    ));
                }
            }
        }
        setting::MAX_FRAME_SIZE => {
            if !(16_384..=16_777_215).contains(&value) {
                return Err(violation(
                    code::PROTOCOL_ERROR,
                    format!("a maximum frame size of {value}"),
                ));
            }
            state.max_frame = value as usize;
        }
        // HEADER_TABLE_SIZE (our encoder uses no dynamic table), MAX_HEADER_LIST_SIZE (our
        // requests are small) and unknown settings change nothing here.
        _ => {}
    }
    Ok(())
}

/// A complete header block: the response's head (or an informational 1xx head, which is
/// skipped), or its trailers.
fn on_headers(
    state: &mut State,
    frames: &mut Frames,
    stream: u32,
    end_stream: bool,
    block: &[u8],
) -> Result<(), ProtocolError> {
    // Decoded even for streams we forgot: the dynamic table must follow the server's.
    let decoded = frames
        .decoder
        .decode(block, MAX_HEADER_LIST_SIZE as usize)
        .map_err(|e| violation(code::COMPRESSION_ERROR, e.to_string()))?;
    let Some(slot) = state.streams.get_mut(&stream) else {
        return Ok(());
    };
    if slot.failure.is_some() {
        return Ok(());
    }
    let fault = if slot.received_end {
        Some((code::STREAM_CLOSED, "headers after the end of the stream"))
    } else if let Some(why) = decoded.malformed {
        Some((code::PROTOCOL_ERROR, why))
    } else if !slot.head_received {
        match decoded.status {
            None => Some((code::PROTOCOL_ERROR, "the response has no :status header")),
            Some(status) if status == http::StatusCode::SWITCHING_PROTOCOLS => Some((
                code::PROTOCOL_ERROR,
                "the response switches protocols (101)",
            )),
            Some(status) if status.is_informational() && end_stream => Some((
                code::PROTOCOL_ERROR,
                "an informational (1xx) head ends the stream",
            )),
            // An informational head: the response's own head is still to come.
            Some(status) if status.is_informational() => return Ok(()),
            Some(status) => {
                slot.head = Some((status, decoded.fields));
                slot.head_received = true;
                slot.received_end = end_stream;
                None
            }
        }
    } else if !end_stream {
        Some((code::PROTOCOL_ERROR, "trailers that do not end the stream"))
    } else if decoded.status.is_some() {
        Some((code::PROTOCOL_ERROR, "trailers with a :status"))
    } else {
        slot.trailers = Some(decoded.fields);
        slot.received_end = true;
        None
    };
    match fault {
        Some((code, why)) => stream_error(state, stream, code, why.to_owned(), &mut frames.wakes),
        None => frames.wakes.push(slot.waker.take()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Buf as _;

    use super::{READ_CHUNK, Reader};

    #[test]
    fn an_emptied_read_buffer_is_read_into_from_its_start() {
        let mut reader = Reader::new();
        let start = reader.buf.as_ptr();
        reader.buf.extend_from_slice(&[1; 1000]);
        reader.buf.advance(1000);
        reader.make_room(0);
        assert_eq!(reader.buf.as_ptr(), start);
        // A payload somebody still holds keeps its bytes: reading goes on after it.
        reader.buf.extend_from_slice(&[2; 5000]);
        let held = reader.buf.split_to(5000).freeze();
        reader.make_room(0);
        assert_eq!(reader.buf.as_ptr(), start.wrapping_add(5000));
        assert!(reader.buf.capacity() >= 16 << 10);
        drop(held);
        reader.make_room(0);
        assert_eq!(reader.buf.as_ptr(), start);
    }

    #[test]
    fn a_buffer_responses_hold_is_parked_and_read_into_again_once_free() {
        let mut reader = Reader::new();
        let first = reader.buf.as_ptr();
        reader.buf.extend_from_slice(&vec![1; READ_CHUNK - 1000]);
        let held = reader.buf.split_to(READ_CHUNK - 1000).freeze();
        reader.make_room(0);
        assert_ne!(
            reader.buf.as_ptr(),
            first,
            "the held buffer is not read into"
        );
        assert!(reader.buf.capacity() >= READ_CHUNK);
        fill(&mut reader, 5);
        assert!(held.iter().all(|&b| b == 1), "held bytes stay as they were");
        reader.buf.clear();
        // The first buffer is let go of while the second fills up and is held in turn:
        // reading goes back to the first, no third is allocated.
        drop(held);
        // (Were the first buffer freed, this would take its place.)
        let occupy = Vec::<u8>::with_capacity(READ_CHUNK);
        reader.buf.extend_from_slice(&vec![2; READ_CHUNK - 1000]);
        let second = reader.buf.split_to(READ_CHUNK - 1000).freeze();
        reader.make_room(0);
        assert_eq!(reader.buf.as_ptr(), first);
        fill(&mut reader, 6);
        assert!(
            second.iter().all(|&b| b == 2),
            "held bytes stay as they were"
        );
        drop(occupy);
    }

    #[test]
    fn parked_buffers_are_let_go_of_once_a_burst_is_over() {
        let mut reader = Reader::new();
        let mut held = Vec::new();
        for _ in 0..6 {
            reader.buf.extend_from_slice(&vec![3; READ_CHUNK - 1000]);
            held.push(reader.buf.split_to(READ_CHUNK - 1000).freeze());
            reader.make_room(0);
        }
        assert_eq!(reader.parked.len(), 6);
        // Four are let go of; one read's bytes are taken and nobody keeps them: two of
        // the free ones stay, and the ones still held.
        held.truncate(2);
        reader.buf.extend_from_slice(b"small");
        reader.buf.advance(5);
        reader.make_room(0);
        assert_eq!(reader.parked.len(), 4);
        // Reading through the free ones (and new ones) leaves the held ones alone.
        for _ in 0..4 {
            fill(&mut reader, 9);
            let _ = reader.buf.split().freeze();
            reader.make_room(0);
        }
        assert!(held.iter().all(|h| h.iter().all(|&b| b == 3)));
        // A connection quiet for its keep-alive interval lets go of the free ones too.
        drop(held);
        reader.trim();
        assert_eq!(reader.parked.len(), 2);
    }

    #[test]
    fn a_tls_read_gets_room_for_all_it_may_decrypt() {
        let mut reader = Reader::new();
        reader.buf.extend_from_slice(&vec![0; READ_CHUNK - 20_000]);
        reader.buf.advance(READ_CHUNK - 20_100);
        reader.make_room(80 << 10);
        assert_eq!(reader.buf.len(), 100);
        assert!(reader.buf.capacity() - reader.buf.len() >= 80 << 10);
    }

    /// Fills the read buffer's room with `byte`, as a read would.
    fn fill(reader: &mut Reader, byte: u8) {
        let room = reader.buf.capacity() - reader.buf.len();
        reader.buf.extend_from_slice(&vec![byte; room]);
    }

    #[test]
    fn a_frame_cut_by_the_end_of_a_read_gets_room_without_a_new_buffer() {
        let mut reader = Reader::new();
        let start = reader.buf.as_ptr();
        let frame_start: Vec<u8> = (0..3900u32).map(|i| i as u8).collect();
        reader.buf.extend_from_slice(&vec![0; READ_CHUNK - 4000]);
        reader.buf.extend_from_slice(&frame_start);
        reader.buf.advance(READ_CHUNK - 4000);
        reader.want = 40_000;
        reader.make_room(0);
        assert_eq!(
            reader.buf.as_ptr(),
            start,
            "moved to the start, not copied away"
        );
        assert_eq!(&reader.buf[..], &frame_start[..]);
        assert!(reader.buf.capacity() >= 40_000);
        // A frame larger than a read chunk gets a buffer it fits in.
        reader.want = 2 * READ_CHUNK;
        reader.make_room(0);
        assert_eq!(&reader.buf[..], &frame_start[..]);
        assert!(reader.buf.capacity() >= 2 * READ_CHUNK);
    }
}
