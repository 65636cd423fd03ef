//! One HTTP/2 connection: its shared state and what callers do with their streams. How
//! frames get onto the socket is in [`write`], how the driver task takes apart what
//! arrives in [`read`].

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

use super::frame::{self, code, setting};
use super::hpack;
use super::limits::{
    CONNECTION_WINDOW, MAX_FRAME, MAX_HEADER_LIST_SIZE, MAX_SEND_BUFFER, STREAM_WINDOW,
};
use crate::connector::Activity;
#[cfg(test)]
pub(super) use read::PANIC_FOR_TESTS;
pub(super) use read::{ProtocolError, ReadError, Reader};

mod read;
mod socket;
mod write;

pub(super) use socket::Socket;
use write::send_locked;

/// HTTP/2's initial flow-control window and frame size, until SETTINGS say otherwise.
const DEFAULT_WINDOW: i64 = 65_535;
const DEFAULT_FRAME: usize = 16_384;
/// Stream identifiers are 31 bits, and so are flow-control windows.
const LAST_STREAM_ID: u32 = (1 << 31) - 1;
const MAX_WINDOW: i64 = (1 << 31) - 1;

/// Why a stream failed or could not be opened.
#[derive(Clone, Debug)]
pub(super) enum Failure {
    /// The server will not (or did not) act on the stream: a GOAWAY below its identifier,
    /// REFUSED_STREAM, or a connection that closed before the stream was opened.
    NotSent(Arc<str>),
    /// The stream failed after its request went out.
    Failed(Arc<str>),
}

/// One stream's state.
#[derive(Default)]
struct Slot {
    /// The response's status and headers, until taken.
    head: Option<(StatusCode, HeaderMap)>,
    /// The response's (final) head arrived.
    head_received: bool,
    /// Data received and not yet read; small payloads are gathered in `small`, which
    /// comes after `data`.
    data: VecDeque<Bytes>,
    small: BytesMut,
    trailers: Option<HeaderMap>,
    /// The server ended the stream.
    received_end: bool,
    failure: Option<Failure>,
    /// The task waiting for the response.
    waker: Option<Waker>,
    /// Data read by the consumer and not yet handed back to the server's window.
    unreleased: u32,
    /// What the server may still send on the stream.
    recv_window: i64,
    send_window: i64,
    /// Data waiting for flow-control window, and whether the end of the stream follows it.
    queued: VecDeque<Bytes>,
    queued_bytes: usize,
    queued_end: bool,
    /// The task piping the request, waiting for room in `queued`.
    room_waker: Option<Waker>,
    /// We ended our side of the stream.
    sent_end: bool,
    /// Handles to the stream (its response and the task piping its request).
    refs: u8,
    /// Where its HEADERS frame starts in the connection's byte stream: once the socket
    /// took bytes past it, the server may act on the request.
    first_byte: u64,
}

impl Slot {
    /// Fails the stream with `failure`: nothing more is sent on it, and the tasks waiting on
    /// it (its response, its request pipe) are woken.
    fn fail(&mut self, failure: Failure, wakes: &mut Wakes) {
        self.failure = Some(failure);
        self.sent_end = true;
        self.queued.clear();
        self.queued_bytes = 0;
        wakes.push(self.waker.take());
        wakes.push(self.room_waker.take());
    }
}

/// Stream identifiers are unique, so they hash as themselves.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, id: u32) {
        // Client streams are odd: spread them over all buckets.
        self.0 = u64::from(id >> 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Streams = HashMap<u32, Slot, BuildHasherDefault<IdHasher>>;

/// Why a connection ended, as its streams are told.
#[derive(Clone, Debug)]
pub(in crate::http2) struct Closing {
    /// For streams whose request may have reached the server.
    pub(in crate::http2) sent: Arc<str>,
    /// For streams whose request never left.
    pub(in crate::http2) unsent: Arc<str>,
    /// The peer proved it acted on no request (it does not speak HTTP/2): every stream
    /// fails as not sent.
    pub(in crate::http2) nothing_processed: bool,
}

impl Closing {
    /// The same reason for every stream.
    pub(in crate::http2) fn because(reason: &str) -> Self {
        Self {
            sent: reason.into(),
            unsent: reason.into(),
            nothing_processed: false,
        }
    }
}

struct State {
    streams: Streams,
    next_id: u32,
    /// Frames waiting to be written, and a spare buffer to swap in while they are.
    out: BytesMut,
    spare: BytesMut,
    /// Somebody is writing `out` right now.
    writing: bool,
    /// Bytes handed to the socket so far.
    written: u64,
    /// Bytes a writer took out of `out` and has not accounted for yet: they may be in
    /// the socket already.
    in_flight: u64,
    /// Until the server has sent its first bytes, only the connection preface (this many
    /// bytes) is written; requests wait. A connection closed before the server said
    /// anything then carried no request, even through a TCP proxy that accepted it.
    gate: Option<u64>,
    /// The socket is full: the driver writes once it is writable.
    blocked: bool,
    /// Scratch space for encoding header blocks.
    block: BytesMut,
    /// The server's settings.
    max_frame: usize,
    max_streams: usize,
    initial_window: i64,
    /// Our send window on the connection.
    send_window: i64,
    /// Data received and not yet handed back to the connection window.
    unreleased: u32,
    /// What the server may still send on the connection.
    recv_window: i64,
    /// Streams with data waiting for flow-control window, oldest first.
    blocked_streams: VecDeque<u32>,
    /// Callers waiting for the server's stream limit, first come first.
    waiting: VecDeque<(u64, Waker)>,
    /// The next waiting caller's ticket.
    next_ticket: u64,
    /// The last stream the server said it would act on.
    goaway: Option<u32>,
    /// The connection is closed: why.
    closed: Option<Arc<str>>,
    /// The driver task.
    driver: Option<Waker>,
    /// A keep-alive ping's answer arrived in the batch being read.
    pong: bool,
    /// The driver stopped reading until `out` drains (the server does not read).
    read_paused: bool,
    /// Nobody will open another stream (the channel was dropped): the connection ends
    /// with its last stream.
    abandoned: bool,
}

/// An HTTP/2 connection to one member; streams and the driver share it.
pub(super) struct Conn {
    socket: Socket,
    state: Mutex<State>,
    /// The `:authority` of requests.
    authority: String,
    /// When the socket last read anything (keep-alive).
    pub(super) activity: Activity,
    /// Writes failed because the server hung up; the read side reports why.
    hung_up: AtomicBool,
    /// A keep-alive ping's answer arrived.
    pub(super) pong: tokio::sync::Notify,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl State {
    /// No new stream will be opened: the server sent GOAWAY, or the channel was dropped.
    fn winding_down(&self) -> bool {
        self.goaway.is_some() || self.abandoned
    }
}

/// Hands `n` received bytes back to the connection's window, in updates of half of it.
fn release(state: &mut State, n: u32) {
    state.unreleased += n;
    if state.unreleased >= CONNECTION_WINDOW / 2 {
        frame::put_window_update(&mut state.out, 0, state.unreleased);
        state.recv_window += i64::from(state.unreleased);
        state.unreleased = 0;
    }
}

/// Fails stream `id` for a fault of the server's (a stream error): its call gets `why`,
/// what it received and did not read goes back to the connection window, and the server
/// is told with RST_STREAM(`code`).
fn stream_error(state: &mut State, id: u32, code: u32, why: String, wakes: &mut Wakes) {
    let Some(slot) = state.streams.get_mut(&id) else {
        return;
    };
    if slot.failure.is_some() {
        return;
    }
    tracing::debug!(stream = id, code = code::name(code), %why, "HTTP/2 stream error");
    let why = format!("{why} ({}, stream reset)", code::name(code));
    slot.fail(Failure::Failed(why.into()), wakes);
    slot.head = None;
    let unread = slot.data.drain(..).map(|d| d.len()).sum::<usize>() + slot.small.len();
    slot.small = BytesMut::new();
    frame::put_reset(&mut state.out, id, code);
    release(state, unread as u32);
}

/// Tasks to wake once the state lock is let go.
#[derive(Default)]
struct Wakes(Vec<Waker>);

impl Wakes {
    fn push(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            self.0.push(waker);
        }
    }

    fn wake_all(&mut self) {
        for waker in self.0.drain(..) {
            waker.wake();
        }
    }
}

impl Conn {
    /// Starts HTTP/2 on a connected socket: the preface, our settings and the connection
    /// window go out with the first write.
    pub(super) fn new(socket: Socket, authority: String) -> Arc<Self> {
        let mut out = BytesMut::with_capacity(16 << 10);
        out.extend_from_slice(frame::PREFACE);
        frame::put_settings(
            &mut out,
            &[
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (setting::MAX_FRAME_SIZE, MAX_FRAME),
                (setting::MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE),
            ],
        );
        frame::put_window_update(&mut out, 0, CONNECTION_WINDOW - DEFAULT_WINDOW as u32);
        let preface_len = out.len() as u64;
        let conn = Arc::new(Self {
            socket,
            state: Mutex::new(State {
                streams: Streams::default(),
                next_id: 1,
                out,
                spare: BytesMut::with_capacity(16 << 10),
                writing: false,
                written: 0,
                in_flight: 0,
                gate: Some(preface_len),
                blocked: false,
                block: BytesMut::with_capacity(256),
                max_frame: DEFAULT_FRAME,
                max_streams: usize::MAX,
                initial_window: DEFAULT_WINDOW,
                send_window: DEFAULT_WINDOW,
                unreleased: 0,
                recv_window: i64::from(CONNECTION_WINDOW),
                blocked_streams: VecDeque::new(),
                waiting: VecDeque::new(),
                next_ticket: 0,
                goaway: None,
                closed: None,
                driver: None,
                pong: false,
                read_paused: false,
                abandoned: false,
            }),
            authority,
            activity: Activity::new(),
            hung_up: AtomicBool::new(false),
            pong: tokio::sync::Notify::new(),
        });
        conn.submit(conn.lock());
        conn
    }

    /// The server has sent its first bytes: requests may go out.
    pub(super) fn open_gate(&self) {
        let mut state = self.lock();
        if state.gate.take().is_some() {
            self.submit(state);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the driver's waker (for blocked writes and for a stream dropped after a
    /// GOAWAY). Returns whether the connection is done: closed by the server's GOAWAY, or
    /// abandoned by its channel, and with no streams left.
    pub(super) fn register_driver(&self, cx: &mut Context<'_>) -> bool {
        let mut state = self.lock();
        set_waker(&mut state.driver, cx);
        state.winding_down() && state.streams.is_empty()
    }

    /// The channel is gone: the connection ends once its open streams (responses still
    /// being read) are done.
    pub(super) fn abandon(&self) {
        let mut state = self.lock();
        state.abandoned = true;
        let driver = state.driver.clone();
        drop(state);
        if let Some(driver) = driver {
            driver.wake();
        }
    }

    /// Ends the connection: every stream and every caller waiting to open one fails.
    /// Streams none of whose bytes reached the socket fail as not sent (with `ending`'s
    /// reason for them); so do all streams when the peer proved not to be an HTTP/2
    /// server. The others fail with `ending`'s reason for a request that may have been
    /// acted on. Nothing else is written.
    pub(super) fn close(&self, ending: &Closing) {
        let mut wakes = Wakes::default();
        {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(ending.sent.clone());
            state.out.clear();
            // Bytes a writer holds may be in the socket: count them as sent.
            let sent_up_to = state.written + state.in_flight;
            for slot in state.streams.values_mut() {
                if !slot.received_end && slot.failure.is_none() {
                    let failure = if ending.nothing_processed || slot.first_byte >= sent_up_to {
                        Failure::NotSent(ending.unsent.clone())
                    } else {
                        Failure::Failed(ending.sent.clone())
                    };
                    slot.fail(failure, &mut wakes);
                } else {
                    wakes.push(slot.room_waker.take());
                }
            }
            wakes
                .0
                .extend(state.waiting.drain(..).map(|(_, waker)| waker));
        }
        wakes.wake_all();
    }

    /// Tells the server why we are closing the connection (best effort). The last stream
    /// named is 0: a client acts on no stream the server opened.
    pub(super) fn go_away(&self, error: &ProtocolError) {
        let mut state = self.lock();
        frame::put_goaway(&mut state.out, 0, error.code);
        self.submit(state);
    }

    /// Sends a keep-alive ping; [`Conn::pong`] is notified of its answer.
    pub(super) fn ping(&self) {
        let mut state = self.lock();
        frame::put_ping(&mut state.out, *b"etcd-ka!", false);
        self.submit(state);
    }

    /// How many streams are open.
    pub(super) fn open_streams(&self) -> usize {
        self.lock().streams.len()
    }

    /// Opens a stream: writes the request's headers and, when given, its first data.
    /// Waits while the server's stream limit is reached: callers get streams in the order
    /// they came, `ticket` holding the caller's place (see [`Conn::leave_queue`]).
    pub(super) fn poll_open(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        open: &mut Opening<'_>,
        ticket: &mut Option<u64>,
    ) -> Poll<Result<u32, Failure>> {
        let mut state = self.lock();
        if let Some(reason) = &state.closed {
            return Poll::Ready(Err(Failure::NotSent(reason.clone())));
        }
        if state.goaway.is_some() {
            let reason = "the server is closing the connection (GOAWAY)";
            return Poll::Ready(Err(Failure::NotSent(reason.into())));
        }
        if state.next_id > LAST_STREAM_ID {
            let reason = "the connection has used up its stream identifiers";
            return Poll::Ready(Err(Failure::NotSent(reason.into())));
        }
        let free = state.max_streams.saturating_sub(state.streams.len());
        let place = ticket.and_then(|t| state.waiting.iter().position(|(w, _)| *w == t));
        let may_open = match place {
            Some(i) => i < free,
            None => free > 0 && state.waiting.is_empty(),
        };
        if !may_open {
            match place {
                Some(i) => {
                    let waiting = &mut state.waiting[i].1;
                    if !waiting.will_wake(cx.waker()) {
                        *waiting = cx.waker().clone();
                    }
                }
                None => {
                    let t = state.next_ticket;
                    state.next_ticket += 1;
                    state.waiting.push_back((t, cx.waker().clone()));
                    *ticket = Some(t);
                }
            }
            return Poll::Pending;
        }
        if let Some(i) = place {
            state.waiting.remove(i);
            *ticket = None;
        }
        let id = state.next_id;
        state.next_id += 2;
        let state_ref = &mut *state;
        state_ref.block.clear();
        hpack::encode_request(
            &mut state_ref.block,
            open.path,
            &self.authority,
            open.headers,
        );
        let end_with_headers = open.end && open.data.is_none();
        let first_byte = state_ref.written + state_ref.in_flight + state_ref.out.len() as u64;
        frame::put_headers(
            &mut state_ref.out,
            &state_ref.block,
            id,
            end_with_headers,
            state_ref.max_frame,
        );
        let slot = Slot {
            send_window: state_ref.initial_window,
            recv_window: i64::from(STREAM_WINDOW),
            sent_end: end_with_headers,
            refs: 1,
            first_byte,
            ..Slot::default()
        };
        state_ref.streams.insert(id, slot);
        if let Some(data) = open.data.take() {
            send_locked(state_ref, id, data, open.end);
        }
        self.submit(state);
        Poll::Ready(Ok(id))
    }

    /// A caller gives up its place in the queue for a stream (its call was dropped, or it
    /// goes to another connection); the next caller may take the stream it would have.
    pub(super) fn leave_queue(&self, ticket: u64) {
        let mut wakes = Wakes::default();
        {
            let mut state = self.lock();
            let Some(i) = state.waiting.iter().position(|(t, _)| *t == ticket) else {
                return;
            };
            state.waiting.remove(i);
            wake_waiting(&mut state, &mut wakes);
        }
        wakes.wake_all();
    }

    /// Whether a streaming request may queue more data on stream `id` (less than
    /// [`MAX_SEND_BUFFER`] waits for flow-control window); otherwise the task is woken once
    /// there is room, or once the stream failed.
    pub(super) fn poll_room(&self, cx: &mut Context<'_>, id: u32) -> Poll<()> {
        let mut state = self.lock();
        match state.streams.get_mut(&id) {
            Some(slot) if slot.queued_bytes >= MAX_SEND_BUFFER && slot.failure.is_none() => {
                set_waker(&mut slot.room_waker, cx);
                if state.closed.is_some() {
                    return Poll::Ready(());
                }
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }

    /// Sends data on stream `id` (queued while flow control does not allow it yet).
    pub(super) fn send_data(&self, id: u32, data: Bytes, end: bool) -> Result<(), Failure> {
        let mut state = self.lock();
        if let Some(reason) = &state.closed {
            return Err(Failure::Failed(reason.clone()));
        }
        match state.streams.get(&id) {
            Some(slot) if slot.failure.is_none() && !slot.sent_end && !slot.queued_end => {}
            Some(Slot {
                failure: Some(failure),
                ..
            }) => return Err(failure.clone()),
            _ => return Err(Failure::Failed("the stream is closed".into())),
        }
        send_locked(&mut state, id, data, end);
        self.submit(state);
        Ok(())
    }

    /// Resets stream `id`: its request stream failed or its response was dropped. A
    /// response still being read fails with `why`.
    pub(super) fn reset(&self, id: u32, why: &str) {
        let mut state = self.lock();
        let Some(slot) = state.streams.get_mut(&id) else {
            return;
        };
        if slot.failure.is_some() || (slot.received_end && slot.sent_end) {
            return;
        }
        let mut wakes = Wakes::default();
        slot.fail(Failure::Failed(why.into()), &mut wakes);
        frame::put_reset(&mut state.out, id, code::CANCEL);
        self.submit(state);
        wakes.wake_all();
    }

    /// A new handle to stream `id`.
    pub(super) fn add_ref(&self, id: u32) {
        if let Some(slot) = self.lock().streams.get_mut(&id) {
            slot.refs += 1;
        }
    }

    /// Drops a handle to stream `id`; the last one forgets the stream, resetting it if it
    /// is still open.
    pub(super) fn drop_ref(&self, id: u32) {
        let mut state = self.lock();
        let Some(slot) = state.streams.get_mut(&id) else {
            return;
        };
        slot.refs -= 1;
        if slot.refs > 0 {
            return;
        }
        let open = !(slot.received_end && slot.sent_end) && slot.failure.is_none();
        let unread = slot.data.iter().map(Bytes::len).sum::<usize>() + slot.small.len();
        state.streams.remove(&id);
        release(&mut state, unread as u32);
        if open && state.closed.is_none() {
            frame::put_reset(&mut state.out, id, code::CANCEL);
        }
        // The first caller waiting for the stream limit may take the stream, and after a
        // GOAWAY the driver ends the connection with its last stream.
        let mut wakes = Wakes::default();
        wake_waiting(&mut state, &mut wakes);
        if state.winding_down() && state.streams.is_empty() {
            wakes.push(state.driver.clone());
        }
        self.submit(state);
        wakes.wake_all();
    }

    /// The response's status and headers, once they arrived.
    pub(super) fn poll_head(
        &self,
        cx: &mut Context<'_>,
        id: u32,
    ) -> Poll<Result<(StatusCode, HeaderMap), Failure>> {
        let mut state = self.lock();
        let Some(slot) = state.streams.get_mut(&id) else {
            return Poll::Ready(Err(Failure::Failed("the stream is closed".into())));
        };
        if let Some(head) = slot.head.take() {
            return Poll::Ready(Ok(head));
        }
        if let Some(failure) = &slot.failure {
            return Poll::Ready(Err(failure.clone()));
        }
        if slot.received_end {
            let why = "the stream ended without a response";
            return Poll::Ready(Err(Failure::Failed(why.into())));
        }
        set_waker(&mut slot.waker, cx);
        Poll::Pending
    }

    /// The response body's next piece: data, then trailers, then the end.
    pub(super) fn poll_body(&self, cx: &mut Context<'_>, id: u32) -> Poll<BodyPart> {
        let mut state = self.lock();
        let state_ref = &mut *state;
        let Some(slot) = state_ref.streams.get_mut(&id) else {
            return Poll::Ready(BodyPart::End);
        };
        let data = match slot.data.pop_front() {
            Some(data) => Some(data),
            None if !slot.small.is_empty() => Some(std::mem::take(&mut slot.small).freeze()),
            None => None,
        };
        if let Some(data) = data {
            slot.unreleased += data.len() as u32;
            if slot.unreleased >= STREAM_WINDOW / 2 && !slot.received_end {
                frame::put_window_update(&mut state_ref.out, id, slot.unreleased);
                slot.recv_window += i64::from(slot.unreleased);
                slot.unreleased = 0;
            }
            release(state_ref, data.len() as u32);
            // Writes the window updates, if any were due.
            self.submit(state);
            return Poll::Ready(BodyPart::Data(data));
        }
        if let Some(failure) = &slot.failure {
            return Poll::Ready(BodyPart::Failed(failure.clone()));
        }
        if let Some(trailers) = slot.trailers.take() {
            return Poll::Ready(BodyPart::Trailers(trailers));
        }
        if slot.received_end {
            return Poll::Ready(BodyPart::End);
        }
        set_waker(&mut slot.waker, cx);
        Poll::Pending
    }
}

#[cfg(test)]
impl Conn {
    /// Bytes waiting to be written.
    pub(in crate::http2) fn pending_write(&self) -> usize {
        self.lock().out.len()
    }

    /// How many buffers hold stream `id`'s received and unread data.
    pub(in crate::http2) fn received_pieces(&self, id: u32) -> Option<usize> {
        let state = self.lock();
        let slot = state.streams.get(&id)?;
        Some(slot.data.len() + usize::from(!slot.small.is_empty()))
    }
}

/// A piece of a response body.
pub(super) enum BodyPart {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    Failed(Failure),
}

/// A request's stream being opened.
pub(super) struct Opening<'a> {
    pub(super) path: &'a str,
    pub(super) headers: &'a HeaderMap,
    /// The request's first data, when it was ready.
    pub(super) data: Option<Bytes>,
    /// The request ends with that data (or with the headers when there is none).
    pub(super) end: bool,
}

/// Keeps the waker of `cx` in `slot` (cloned only when it changed).
fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// Wakes the callers waiting for the stream limit that may now open a stream: as many of
/// the first as there are free streams.
fn wake_waiting(state: &mut State, wakes: &mut Wakes) {
    let free = state.max_streams.saturating_sub(state.streams.len());
    for (_, waker) in state.waiting.iter().take(free) {
        wakes.0.push(waker.clone());
    }
}
