//! A call's stream: the handle that keeps it open, its response body, and the task that
//! pipes a streaming request body onto it.
//!
//! A unary call's body (one encoded message) is ready when the call starts: it goes out
//! with the request's headers, in the same write. A streaming call's body (watch, lease
//! keep-alive) is piped by a task of its own, which stops, and resets the stream, when the
//! response is dropped.

use std::future::{Future as _, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame};
use tokio::sync::oneshot;
use tonic::body::Body;

use super::conn::{BodyPart, Conn, Failure};
use etcd_core::transport::NeverSent;

use super::error::{NotSent, StreamError};

/// A handle to an open stream; the last one dropped forgets the stream (resetting it if it
/// is still open).
pub(super) struct StreamRef {
    pub(super) conn: Arc<Conn>,
    pub(super) id: u32,
}

impl StreamRef {
    /// Another handle to the same stream.
    fn another(&self) -> Self {
        self.conn.add_ref(self.id);
        Self {
            conn: self.conn.clone(),
            id: self.id,
        }
    }
}

impl Drop for StreamRef {
    fn drop(&mut self) {
        self.conn.drop_ref(self.id);
    }
}

/// The error of a failed stream, as calls report it.
pub(super) fn failure_error(failure: Failure) -> etcd_core::BoxError {
    match failure {
        Failure::NotSent(why) => Box::new(NeverSent::new(NotSent(why))),
        Failure::Failed(why) => Box::new(StreamError(why)),
    }
}

/// What a request body had ready when its call started.
pub(super) struct Ready {
    /// Its data (several pieces are joined).
    pub(super) data: Option<Bytes>,
    /// It ended.
    pub(super) end: bool,
}

/// Takes what `body` has ready without waiting, up to about
/// [`MAX_SEND_BUFFER`](super::limits::MAX_SEND_BUFFER) (a body that is always ready goes
/// on through the pipe). A body that fails fails the call.
pub(super) async fn take_ready(body: &mut Body) -> Result<Ready, tonic::Status> {
    let mut data: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let end = loop {
        let taken = joined.as_ref().map_or(0, |all| all.len());
        if taken.max(data.as_ref().map_or(0, Bytes::len)) >= super::limits::MAX_SEND_BUFFER {
            break false;
        }
        let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                // Trailers end a request body (gRPC clients send none).
                let Ok(piece) = frame.into_data() else {
                    break true;
                };
                match (&mut joined, data.take()) {
                    (Some(all), _) => all.extend_from_slice(&piece),
                    (None, Some(first)) => {
                        let mut all = BytesMut::from(&first[..]);
                        all.extend_from_slice(&piece);
                        joined = Some(all);
                    }
                    (None, None) => data = Some(piece),
                }
            }
            Poll::Ready(Some(Err(status))) => return Err(status),
            Poll::Ready(None) => break true,
            Poll::Pending => break false,
        }
    };
    Ok(Ready {
        data: joined.map(BytesMut::freeze).or(data),
        end,
    })
}

/// Dropping it stops the task piping a streaming request body.
pub(super) type StopPipe = oneshot::Sender<()>;

/// Hands the rest of a streaming request body to a task of its own.
pub(super) fn spawn_pipe(body: Body, stream: &StreamRef) -> StopPipe {
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(pipe(body, stream.another(), stopped));
    stop
}

enum Step {
    Frame(Option<Result<Frame<Bytes>, tonic::Status>>),
    Stop,
}

/// Pipes a streaming request body onto its stream until the body ends, the stream fails,
/// or the response is dropped. Messages are written without waiting for flow-control
/// window: what the window does not allow yet is queued, and the next message is taken
/// from the body only while less than [`MAX_SEND_BUFFER`](super::limits::MAX_SEND_BUFFER)
/// waits.
async fn pipe(mut body: Body, stream: StreamRef, mut stopped: oneshot::Receiver<()>) {
    loop {
        let step = poll_fn(|cx| {
            if Pin::new(&mut stopped).poll(cx).is_ready() {
                return Poll::Ready(Step::Stop);
            }
            // The next message only once the stream's send queue has room.
            std::task::ready!(stream.conn.poll_room(cx, stream.id));
            Pin::new(&mut body).poll_frame(cx).map(Step::Frame)
        })
        .await;
        let (data, end) = match step {
            Step::Frame(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => (data, false),
                Err(_) => (Bytes::new(), true),
            },
            Step::Frame(None) => (Bytes::new(), true),
            Step::Frame(Some(Err(status))) => {
                tracing::debug!(%status, "request stream failed; resetting the stream");
                let why = format!("the request stream failed: {status}");
                stream.conn.reset(stream.id, &why);
                return;
            }
            Step::Stop => {
                stream.conn.reset(stream.id, "the call was dropped");
                return;
            }
        };
        if stream.conn.send_data(stream.id, data, end).is_err() || end {
            return;
        }
    }
}

/// A response body read from its stream: data, then trailers (where gRPC puts the
/// status). Read data is handed back to flow control.
pub(super) struct ResponseBody {
    stream: StreamRef,
    done: bool,
    _stop_pipe: Option<StopPipe>,
}

impl ResponseBody {
    pub(super) fn new(stream: StreamRef, stop_pipe: Option<StopPipe>) -> Self {
        Self {
            stream,
            done: false,
            _stop_pipe: stop_pipe,
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let part = std::task::ready!(self.stream.conn.poll_body(cx, self.stream.id));
        Poll::Ready(match part {
            BodyPart::Data(data) => Some(Ok(Frame::data(data))),
            BodyPart::Trailers(trailers) => {
                self.done = true;
                Some(Ok(Frame::trailers(trailers)))
            }
            BodyPart::End => {
                self.done = true;
                None
            }
            BodyPart::Failed(failure) => {
                self.done = true;
                let why = match failure {
                    Failure::NotSent(why) | Failure::Failed(why) => why,
                };
                Some(Err(StreamError(why)))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
