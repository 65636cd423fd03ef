//! Request bodies sent onto an HTTP/2 stream, and response bodies read from one.
//!
//! A unary call's body (one encoded message) is written by the caller's task before it
//! waits for the answer, the message and the end of the stream in one DATA frame. A
//! streaming call's body (watch, lease keep-alive) is piped by a task of its own, which
//! stops and resets the stream when the response is dropped.

use std::future::{Future as _, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http_body::{Body as _, Frame};
use tokio::sync::oneshot;
use tonic::body::Body;

use super::StreamError;

/// Counts a call as open on its connection until dropped (keep-alive pings only go out
/// while calls are open).
pub(super) struct OpenCall(Arc<AtomicUsize>);

impl OpenCall {
    pub(super) fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Dropping it stops the task piping a streaming request body, which then resets the
/// stream.
pub(super) type StopPipe = oneshot::Sender<()>;

/// Polls `body` once, without waiting.
async fn poll_once(body: &mut Body) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await
}

/// Sends what `body` has ready; when it has more to come, hands it to a pipe task and
/// returns that task's stop handle. Send failures are left for the response to report.
pub(super) async fn send(mut body: Body, mut stream: SendStream<Bytes>) -> Option<StopPipe> {
    // The last data frame is held back, so that the end of the stream goes with it.
    let mut held: Option<Bytes> = None;
    loop {
        match poll_once(&mut body).await {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    if let Some(previous) = held.replace(data) {
                        let _ = stream.send_data(previous, false);
                    }
                }
                Err(frame) => {
                    if let Some(previous) = held.take() {
                        let _ = stream.send_data(previous, false);
                    }
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = stream.send_trailers(trailers);
                        return None;
                    }
                }
            },
            Poll::Ready(None) => {
                let _ = stream.send_data(held.unwrap_or_default(), true);
                return None;
            }
            Poll::Ready(Some(Err(status))) => {
                tracing::debug!(%status, "request body failed; resetting the stream");
                stream.send_reset(h2::Reason::CANCEL);
                return None;
            }
            Poll::Pending => {
                if let Some(previous) = held.take() {
                    let _ = stream.send_data(previous, false);
                }
                let (stop, stopped) = oneshot::channel();
                tokio::spawn(pipe(body, stream, stopped));
                return Some(stop);
            }
        }
    }
}

enum Step {
    Frame(Option<Result<Frame<Bytes>, tonic::Status>>),
    Stop,
}

/// Pipes a streaming request body onto its stream until the body ends, the server resets
/// the stream, or the response is dropped. The messages of the streams etcd has (watch
/// and keep-alive requests) are small, so they are written without waiting for flow
/// control capacity; h2 queues what the window does not allow yet.
async fn pipe(mut body: Body, mut stream: SendStream<Bytes>, mut stopped: oneshot::Receiver<()>) {
    loop {
        let step = poll_fn(|cx| {
            if Pin::new(&mut stopped).poll(cx).is_ready() || stream.poll_reset(cx).is_ready() {
                return Poll::Ready(Step::Stop);
            }
            Pin::new(&mut body).poll_frame(cx).map(Step::Frame)
        })
        .await;
        let sent = match step {
            Step::Stop => {
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            Step::Frame(None) => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Step::Frame(Some(Err(status))) => {
                tracing::debug!(%status, "request stream failed; resetting the stream");
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            Step::Frame(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => stream.send_data(data, false),
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        let _ = stream.send_trailers(trailers);
                        return;
                    }
                    Err(_) => Ok(()),
                },
            },
        };
        if sent.is_err() {
            return;
        }
    }
}

/// A response body read from an HTTP/2 stream: its data, then its trailers (where gRPC
/// puts the status). Received data is handed back to flow control as it is read.
pub(super) struct ResponseBody {
    recv: RecvStream,
    data_done: bool,
    done: bool,
    _open: OpenCall,
    _stop_pipe: Option<StopPipe>,
}

impl ResponseBody {
    pub(super) fn new(recv: RecvStream, open: OpenCall, stop_pipe: Option<StopPipe>) -> Self {
        Self {
            recv,
            data_done: false,
            done: false,
            _open: open,
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
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(StreamError(e))));
                }
                None => this.data_done = true,
            }
        }
        let trailers = ready!(this.recv.poll_trailers(cx));
        this.done = true;
        Poll::Ready(match trailers {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(e) => Some(Err(StreamError(e))),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
