//! Frames from the socket: the driver reads whole batches, takes the state lock once per
//! batch, hands each frame to its stream, and wakes the streams that got something after
//! letting go of the lock.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};

use super::write::flush_queued;
use super::{Conn, Failure, LAST_STREAM_ID, MAX_FRAME, State, Wakes, release};
use crate::http2::frame::{self, Head, code, flag, kind, setting};
use crate::http2::hpack;

/// Reads go into buffers of at least this size. Smaller ones (64 KiB) left more of each
/// buffer unused at the end of a big response's last frame in it, and a range response
/// of 10,000 keys peaked at 15.8 MiB of RSS against 11.4 MiB with these.
const READ_CHUNK: usize = 256 << 10;

/// DATA payloads smaller than this are copied out of the read buffer rather than shared
/// with it: a small value an application keeps must not keep a whole read buffer alive,
/// and a buffer nobody shares is reused in place.
const COPY_BELOW: usize = 4 << 10;

/// A header block being received over CONTINUATION frames.
struct Partial {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

/// The driver's reading state.
pub(in crate::http2) struct Reader {
    buf: BytesMut,
    frames: Frames,
    /// The server has sent at least one byte.
    pub(in crate::http2) heard: bool,
}

/// What frames leave for the frames after them.
struct Frames {
    decoder: hpack::Decoder,
    partial: Option<Partial>,
    wakes: Wakes,
}

impl Reader {
    pub(in crate::http2) fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(READ_CHUNK),
            frames: Frames {
                decoder: hpack::Decoder::new(),
                partial: None,
                wakes: Wakes::default(),
            },
            heard: false,
        }
    }
}

/// A connection-level protocol violation by the server.
#[derive(Debug)]
pub(in crate::http2) struct ProtocolError {
    pub(in crate::http2) code: u32,
    pub(in crate::http2) what: String,
}

fn violation(code: u32, what: impl Into<String>) -> ProtocolError {
    ProtocolError {
        code,
        what: what.into(),
    }
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
            std::task::ready!(self.tcp.poll_read_ready(cx)).map_err(ReadError::Io)?;
            if reader.buf.capacity() - reader.buf.len() < 16 << 10 {
                reader.buf.reserve(READ_CHUNK);
            }
            match self.tcp.try_read_buf(&mut reader.buf) {
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(_) => {
                    reader.heard = true;
                    self.activity.record();
                    let result = self.take_frames(reader);
                    reader.frames.wakes.wake_all();
                    result.map_err(ReadError::Protocol)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(ReadError::Io(e))),
            }
        }
        // A long burst: let other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Handles the complete frames in the read buffer.
    fn take_frames(&self, reader: &mut Reader) -> Result<(), ProtocolError> {
        let mut state = self.lock();
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
                reader
                    .buf
                    .reserve((total - reader.buf.len()).max(READ_CHUNK));
                break Ok(());
            }
            reader.buf.advance(frame::HEADER_LEN);
            let result = if head.kind == kind::DATA {
                let payload = if head.len < COPY_BELOW {
                    let payload = Bytes::copy_from_slice(&reader.buf[..head.len]);
                    reader.buf.advance(head.len);
                    payload
                } else {
                    reader.buf.split_to(head.len).freeze()
                };
                on_data(&mut state, head, payload, &mut reader.frames.wakes)
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
        self.submit(state);
        result
    }
}

/// A DATA frame.
fn on_data(
    state: &mut State,
    head: Head,
    mut payload: Bytes,
    wakes: &mut Wakes,
) -> Result<(), ProtocolError> {
    if head.stream == 0 {
        return Err(violation(code::PROTOCOL_ERROR, "DATA on stream 0"));
    }
    if head.flags & flag::PADDED != 0 {
        payload = payload.slice(unpadded(&payload)?);
    }
    // The connection window gets padding back at once, data once its stream reads it
    // (so that what is received and not yet read stays within the window), and data
    // nobody will read at once.
    let reading = state
        .streams
        .get_mut(&head.stream)
        .filter(|slot| !slot.received_end && slot.failure.is_none());
    let Some(slot) = reading else {
        release(state, head.len as u32);
        return Ok(());
    };
    let unread = payload.len();
    if unread > 0 {
        slot.data.push_back(payload);
    }
    if head.flags & flag::END_STREAM != 0 {
        slot.received_end = true;
    }
    wakes.push(slot.waker.take());
    release(state, (head.len - unread) as u32);
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
    reader: &mut Frames,
) -> Result<(), ProtocolError> {
    if reader.partial.is_some() && head.kind != kind::CONTINUATION {
        return Err(violation(
            code::PROTOCOL_ERROR,
            "a frame inside a header block",
        ));
    }
    match head.kind {
        kind::HEADERS => {
            if head.stream == 0 {
                return Err(violation(code::PROTOCOL_ERROR, "HEADERS on stream 0"));
            }
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
                on_headers(state, reader, head.stream, end_stream, block)
            } else {
                reader.partial = Some(Partial {
                    stream: head.stream,
                    end_stream,
                    block: block.to_vec(),
                });
                Ok(())
            }
        }
        kind::CONTINUATION => {
            let Some(partial) = reader.partial.as_mut() else {
                return Err(violation(code::PROTOCOL_ERROR, "CONTINUATION out of place"));
            };
            if partial.stream != head.stream {
                return Err(violation(
                    code::PROTOCOL_ERROR,
                    "CONTINUATION of another stream",
                ));
            }
            partial.block.extend_from_slice(payload);
            if partial.block.len() > 1 << 20 {
                return Err(violation(code::PROTOCOL_ERROR, "a header block over 1 MiB"));
            }
            if head.flags & flag::END_HEADERS != 0
                && let Some(partial) = reader.partial.take()
            {
                on_headers(
                    state,
                    reader,
                    partial.stream,
                    partial.end_stream,
                    &partial.block,
                )?;
            }
            Ok(())
        }
        kind::RST_STREAM => {
            let code = read_u32(payload, "RST_STREAM")?;
            if let Some(slot) = state.streams.get_mut(&head.stream)
                && slot.failure.is_none()
                && !slot.received_end
            {
                let why = format!("the server reset the stream ({})", code::name(code));
                slot.failure = Some(if code == code::REFUSED_STREAM {
                    Failure::NotSent(why.into())
                } else {
                    Failure::Failed(why.into())
                });
                slot.sent_end = true;
                slot.queued.clear();
                reader.wakes.push(slot.waker.take());
            }
            Ok(())
        }
        kind::SETTINGS => {
            if head.flags & flag::ACK != 0 {
                return Ok(());
            }
            if head.stream != 0 || !payload.len().is_multiple_of(6) {
                return Err(violation(
                    code::FRAME_SIZE_ERROR,
                    "a malformed SETTINGS frame",
                ));
            }
            for entry in payload.chunks_exact(6) {
                let id = u16::from_be_bytes([entry[0], entry[1]]);
                let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                apply_setting(state, id, value, &mut reader.wakes)?;
            }
            frame::put_head(&mut state.out, 0, kind::SETTINGS, flag::ACK, 0);
            flush_queued(state);
            Ok(())
        }
        kind::PING => {
            let payload: [u8; 8] = payload
                .try_into()
                .map_err(|_| violation(code::FRAME_SIZE_ERROR, "a PING not of 8 bytes"))?;
            if head.flags & flag::ACK != 0 {
                state.pong = true;
            } else {
                frame::put_ping(&mut state.out, payload, true);
            }
            Ok(())
        }
        kind::GOAWAY => {
            let last = read_u32(payload, "GOAWAY")? & LAST_STREAM_ID;
            let code = payload
                .get(4..8)
                .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            let message = String::from_utf8_lossy(payload.get(8..).unwrap_or_default());
            tracing::debug!(last, code = code::name(code), %message, "GOAWAY received");
            state.goaway = Some(state.goaway.map_or(last, |l| l.min(last)));
            let why: Arc<str> = format!(
                "the server is closing the connection (GOAWAY, {})",
                code::name(code)
            )
            .into();
            for (&id, slot) in state.streams.iter_mut() {
                if id > last && slot.failure.is_none() {
                    slot.failure = Some(Failure::NotSent(why.clone()));
                    reader.wakes.push(slot.waker.take());
                }
            }
            reader.wakes.0.extend(state.waiting.drain(..));
            Ok(())
        }
        kind::WINDOW_UPDATE => {
            let increment = i64::from(read_u32(payload, "WINDOW_UPDATE")? & 0x7fff_ffff);
            if head.stream == 0 {
                state.send_window += increment;
                if state.send_window > i64::from(LAST_STREAM_ID) {
                    return Err(violation(
                        code::FLOW_CONTROL_ERROR,
                        "the connection window overflowed",
                    ));
                }
            } else if let Some(slot) = state.streams.get_mut(&head.stream) {
                slot.send_window += increment;
            }
            flush_queued(state);
            Ok(())
        }
        kind::PUSH_PROMISE => Err(violation(
            code::PROTOCOL_ERROR,
            "PUSH_PROMISE although push is disabled",
        )),
        // PRIORITY and unknown frame types are ignored.
        _ => Ok(()),
    }
}

fn read_u32(payload: &[u8], what: &str) -> Result<u32, ProtocolError> {
    payload
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| violation(code::FRAME_SIZE_ERROR, format!("a short {what} frame")))
}

fn apply_setting(
    state: &mut State,
    id: u16,
    value: u32,
    wakes: &mut Wakes,
) -> Result<(), ProtocolError> {
    match id {
        setting::MAX_CONCURRENT_STREAMS => {
            state.max_streams = value as usize;
            wakes.0.extend(state.waiting.drain(..));
        }
        setting::INITIAL_WINDOW_SIZE => {
            if value > LAST_STREAM_ID {
                return Err(violation(
                    code::FLOW_CONTROL_ERROR,
                    "an initial window over 2^31-1",
                ));
            }
            let delta = i64::from(value) - state.initial_window;
            state.initial_window = i64::from(value);
            for slot in state.streams.values_mut() {
                slot.send_window += delta;
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
        // HEADER_TABLE_SIZE (our encoder uses no dynamic table), ENABLE_PUSH (a client's
        // setting) and unknown settings change nothing here.
        _ => {}
    }
    Ok(())
}

/// A complete header block: the response's head, or its trailers.
fn on_headers(
    state: &mut State,
    reader: &mut Frames,
    stream: u32,
    end_stream: bool,
    block: &[u8],
) -> Result<(), ProtocolError> {
    // Decoded even for streams we forgot: the dynamic table must follow the server's.
    let decoded = reader
        .decoder
        .decode(block)
        .map_err(|e| violation(code::COMPRESSION_ERROR, e.to_string()))?;
    let Some(slot) = state.streams.get_mut(&stream) else {
        return Ok(());
    };
    if slot.received_end || slot.failure.is_some() {
        return Ok(());
    }
    if slot.head.is_none() && !slot.head_taken {
        match decoded.status {
            Some(status) => slot.head = Some((status, decoded.fields)),
            None => {
                slot.failure = Some(Failure::Failed("the response has no :status header".into()));
            }
        }
    } else {
        slot.trailers = Some(decoded.fields);
        slot.received_end = true;
    }
    if end_stream {
        slot.received_end = true;
    }
    reader.wakes.push(slot.waker.take());
    Ok(())
}
