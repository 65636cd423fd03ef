//! Frames onto the socket.
//!
//! Callers write their own frames: a caller appends its frames to the connection's output
//! buffer under the state lock, and if nobody is writing at that moment it writes the
//! buffer to the socket itself (other callers' frames that arrive meanwhile go out with
//! its next write). Only when the socket is full, or one caller has written for others for
//! a few rounds, does the driver take over writing. A request therefore costs no wake-up
//! of another task.
//!
//! Data goes out as far as the flow-control windows allow; the rest waits in its stream's
//! queue for the server's WINDOW_UPDATE.

use std::collections::VecDeque;
use std::io;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use super::{Conn, State};
use crate::http2::frame;
use crate::http2::limits::{MAX_PENDING_WRITE, MAX_SEND_BUFFER};

impl Conn {
    /// Writes what is in the output buffer, unless somebody else is already at it.
    pub(super) fn submit<'a>(&'a self, mut state: MutexGuard<'a, State>) {
        // Over TLS, records a full socket held back (or that rustls made on its own)
        // wait in the socket, not in `out`.
        if state.writing || state.blocked || (state.out.is_empty() && !self.socket.has_pending()) {
            return;
        }
        // Before the server has spoken, only the preface goes out.
        if state.gate.is_some_and(|preface| state.written >= preface) {
            return;
        }
        if state.closed.is_some() || self.hung_up.load(Ordering::Relaxed) {
            state.out.clear();
            return;
        }
        state.writing = true;
        // A caller writes for others for a few rounds at most, then leaves the rest to
        // the driver (it has its own response to wait for).
        for _ in 0..4 {
            let spare = std::mem::take(&mut state.spare);
            let mut buf = std::mem::replace(&mut state.out, spare);
            let gate_left = state
                .gate
                .map(|preface| preface.saturating_sub(state.written) as usize);
            if let Some(left) = gate_left
                && buf.len() > left
            {
                // Hold back what follows the preface: it goes first once the gate opens.
                let mut held = buf.split_off(left);
                held.extend_from_slice(&state.out);
                state.out = held;
            }
            let taken = buf.len();
            state.in_flight = taken as u64;
            drop(state);
            let result = self.write_some(&mut buf);
            state = self.lock();
            state.written += (taken - buf.len()) as u64;
            state.in_flight = 0;
            match result {
                Ok(()) => {
                    buf.clear();
                    state.spare = buf;
                    if gate_left.is_some() && state.gate.is_some() {
                        // The preface is out; the rest waits for the server.
                        state.writing = false;
                        return;
                    }
                    if state.read_paused && state.out.len() < MAX_PENDING_WRITE {
                        // The driver stopped reading until what we owe the server drained.
                        state.read_paused = false;
                        if let Some(driver) = state.driver.clone() {
                            driver.wake();
                        }
                    }
                    let done = state.out.is_empty() && !self.socket.has_pending();
                    if done || state.closed.is_some() {
                        state.out.clear();
                        state.writing = false;
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // What is left goes first, the driver writes it when it can.
                    buf.extend_from_slice(&state.out);
                    state.out = buf;
                    return hand_to_driver(state);
                }
                Err(e) => {
                    // The read side reports why (a hang-up's reason arrives there): the
                    // driver is woken to read on, even if it had stopped reading until
                    // what we owed the server drained.
                    tracing::debug!(error = %e, "HTTP/2 write failed");
                    self.hung_up.store(true, Ordering::Relaxed);
                    state.out.clear();
                    state.writing = false;
                    state.read_paused = false;
                    if let Some(driver) = state.driver.clone() {
                        drop(state);
                        driver.wake();
                    }
                    return;
                }
            }
        }
        hand_to_driver(state);
    }

    /// Writes all of `buf`, or stops at a full socket (leaving the rest in `buf`).
    fn write_some(&self, buf: &mut BytesMut) -> io::Result<()> {
        self.socket.write_some(buf)
    }

    /// The driver: writes what a full socket held back, once it is writable.
    pub(in crate::http2) fn poll_write_blocked(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.lock().blocked {
            return Poll::Pending;
        }
        std::task::ready!(self.socket.poll_write_ready(cx))?;
        let mut state = self.lock();
        state.blocked = false;
        self.submit(state);
        Poll::Pending
    }
}

/// Leaves writing the output buffer to the driver (once the socket is writable).
pub(super) fn hand_to_driver(mut state: MutexGuard<'_, State>) {
    state.writing = false;
    state.blocked = true;
    if let Some(driver) = state.driver.clone() {
        drop(state);
        driver.wake();
    }
}

/// Writes `data` on stream `id` as far as the flow-control windows allow, and queues the
/// rest.
pub(super) fn send_locked(state: &mut State, id: u32, data: Bytes, end: bool) {
    let Some(slot) = state.streams.get_mut(&id) else {
        return;
    };
    if !slot.queued.is_empty() {
        slot.queued_bytes += data.len();
        slot.queued.push_back(data);
        slot.queued_end |= end;
        return;
    }
    if let Err(rest) = write_allowed(state, id, data, end)
        && let Some(slot) = state.streams.get_mut(&id)
    {
        slot.queued_bytes += rest.len();
        slot.queued.push_back(rest);
        slot.queued_end = end;
        state.blocked_streams.push_back(id);
    }
}

/// Sends queued data that the windows now allow, oldest stream first; request streams
/// that were waiting for room in their queue are woken into `wakes`.
pub(super) fn flush_queued(state: &mut State, wakes: &mut super::Wakes) {
    let mut still_blocked = VecDeque::new();
    while let Some(id) = state.blocked_streams.pop_front() {
        while let Some(slot) = state.streams.get_mut(&id)
            && let Some(data) = slot.queued.pop_front()
        {
            slot.queued_bytes -= data.len();
            let end = slot.queued.is_empty() && slot.queued_end;
            if let Err(rest) = write_allowed(state, id, data, end) {
                if let Some(slot) = state.streams.get_mut(&id) {
                    slot.queued_bytes += rest.len();
                    slot.queued.push_front(rest);
                }
                still_blocked.push_back(id);
                break;
            }
        }
        if let Some(slot) = state.streams.get_mut(&id)
            && slot.queued_bytes < MAX_SEND_BUFFER
        {
            wakes.push(slot.room_waker.take());
        }
    }
    state.blocked_streams = still_blocked;
}

/// Writes as much of `data` on stream `id` as the stream's and the connection's windows
/// allow (ending the stream with it when `end` and all of it went); what they do not allow
/// is handed back.
fn write_allowed(state: &mut State, id: u32, data: Bytes, end: bool) -> Result<(), Bytes> {
    let State {
        streams,
        out,
        send_window,
        max_frame,
        ..
    } = state;
    let Some(slot) = streams.get_mut(&id) else {
        return Ok(());
    };
    let allowed = slot.send_window.min(*send_window).max(0) as usize;
    let take = data.len().min(allowed);
    let all = take == data.len();
    if take > 0 || (all && end) {
        frame::put_data(out, id, &data[..take], all && end, *max_frame);
        slot.send_window -= take as i64;
        *send_window -= take as i64;
        slot.sent_end |= all && end;
    }
    if all { Ok(()) } else { Err(data.slice(take..)) }
}
