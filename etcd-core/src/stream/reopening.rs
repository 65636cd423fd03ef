//! One bidirectional stream that is opened when needed, takes requests while it opens, and
//! is reopened after a pause when it breaks: what the watch and the lease keep-alive share.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, TryFutureExt};
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::{RequestStream, ResponseStream};
use crate::{BoxError, Error, Result};

/// A bidirectional stream through its life: none, waiting before reopening, opening (the
/// service was called; requests already queue), open.
///
/// The owner decides when to open and how long to wait after a failure (with a
/// [`Backoff`](crate::layer::Backoff)); the stream tells it what happened through
/// [`poll_event`](Self::poll_event). Opening calls the service again, so a failover
/// service below sends the new stream to the next healthy member.
///
/// ```
/// # async fn example<S>(service: S) where S: etcd_core::watch::WatchService {
/// use etcd_core::proto::etcdserverpb as pb;
/// use etcd_core::stream::{ReopeningStream, StreamEvent};
///
/// let mut stream = ReopeningStream::<pb::WatchRequest, pb::WatchResponse>::new();
/// stream.open(service.clone());
/// stream.send(pb::WatchRequest::default());
/// match stream.next_event().await {
///     StreamEvent::Opened => { /* the server took the stream */ }
///     StreamEvent::Response(response) => { /* ... */ }
///     StreamEvent::Broken(_) => stream.wait(std::time::Duration::from_millis(100)),
///     StreamEvent::WaitOver => stream.open(service),
/// }
/// # }
/// ```
pub struct ReopeningStream<Req, Resp> {
    state: State<Resp>,
    /// Where requests go while the stream is opening or open.
    requests: Option<mpsc::UnboundedSender<Req>>,
}

enum State<Resp> {
    Idle,
    Waiting(Pin<Box<tokio::time::Sleep>>),
    Opening(BoxFuture<'static, Result<ResponseStream<Resp>>>),
    Open(ResponseStream<Resp>),
}

/// What happened to a [`ReopeningStream`].
#[derive(Debug)]
pub enum StreamEvent<Resp> {
    /// The pause after a failure is over: time to open again.
    WaitOver,
    /// The service answered the call: the stream is open.
    Opened,
    /// A message from the server.
    Response(Resp),
    /// The stream failed to open, failed, or ended (`None`). It is closed now.
    Broken(Option<Error>),
}

impl<Req, Resp> Default for ReopeningStream<Req, Resp> {
    fn default() -> Self {
        Self {
            state: State::Idle,
            requests: None,
        }
    }
}

impl<Req, Resp> std::fmt::Debug for ReopeningStream<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Waiting(_) => "waiting",
            State::Opening(_) => "opening",
            State::Open(_) => "open",
        };
        f.debug_tuple("ReopeningStream").field(&state).finish()
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> ReopeningStream<Req, Resp> {
    /// No stream yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a new stream by calling `service` (closing the current one, if any).
    pub fn open<S>(&mut self, service: S)
    where
        S: tower::Service<RequestStream<Req>, Response = ResponseStream<Resp>> + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.open_with(|requests| {
            service
                .oneshot(requests)
                .map_err(|e| Error::from_boxed(e.into()))
                .boxed()
        });
    }

    /// Opens a new stream with `open`, which gets the outgoing half and answers with the
    /// incoming one: for an owner that must do something first (get a new auth token).
    pub fn open_with(
        &mut self,
        open: impl FnOnce(RequestStream<Req>) -> BoxFuture<'static, Result<ResponseStream<Resp>>>,
    ) {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let requests: RequestStream<Req> = Box::pin(futures_util::stream::poll_fn(move |cx| {
            receiver.poll_recv(cx)
        }));
        self.state = State::Opening(open(requests));
        self.requests = Some(sender);
    }

    /// Sends `request` on the stream being opened or open; false when there is none (or
    /// it has just ended).
    pub fn send(&self, request: Req) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|requests| requests.send(request).is_ok())
    }

    /// Closes the stream (the server sees the outgoing half end).
    pub fn close(&mut self) {
        self.state = State::Idle;
        self.requests = None;
    }

    /// Closes the stream and waits `pause` before telling the owner to open again
    /// ([`StreamEvent::WaitOver`]).
    pub fn wait(&mut self, pause: Duration) {
        self.close();
        self.state = State::Waiting(Box::pin(tokio::time::sleep(pause)));
    }

    /// No stream, and no wait for one.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Waiting before opening again.
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, State::Waiting(_))
    }

    /// Opening or open: requests are taken.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Opening(_) | State::Open(_))
    }

    /// What happened next; pending while there is no stream and no wait.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<StreamEvent<Resp>> {
        let event = match &mut self.state {
            State::Idle => return Poll::Pending,
            State::Waiting(sleep) => {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.state = State::Idle;
                StreamEvent::WaitOver
            }
            State::Opening(opening) => match std::task::ready!(opening.as_mut().poll(cx)) {
                Ok(responses) => {
                    self.state = State::Open(responses);
                    StreamEvent::Opened
                }
                Err(error) => {
                    self.close();
                    StreamEvent::Broken(Some(error))
                }
            },
            State::Open(responses) => match std::task::ready!(responses.as_mut().poll_next(cx)) {
                Some(Ok(response)) => StreamEvent::Response(response),
                Some(Err(error)) => {
                    self.close();
                    StreamEvent::Broken(Some(error))
                }
                None => {
                    self.close();
                    StreamEvent::Broken(None)
                }
            },
        };
        Poll::Ready(event)
    }

    /// [`poll_event`](Self::poll_event) as a future.
    pub async fn next_event(&mut self) -> StreamEvent<Resp> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// A service that echoes each request back as a response, and fails its first call.
    fn echo(
        fail_first: bool,
    ) -> impl tower::Service<
        RequestStream<u32>,
        Response = ResponseStream<u32>,
        Error = Error,
        Future = BoxFuture<'static, Result<ResponseStream<u32>>>,
    > + Clone {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        tower::service_fn(move |requests: RequestStream<u32>| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if fail_first && n == 0 {
                    return Err(Error::Protocol("refused".into()));
                }
                Ok(requests.map(Ok).boxed())
            }
            .boxed()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn requests_sent_while_opening_arrive_and_a_failure_closes() {
        let mut stream = ReopeningStream::<u32, u32>::new();
        assert!(stream.is_idle());
        assert!(!stream.send(1), "no stream: nothing taken");
        stream.open(echo(true));
        assert!(stream.send(1));
        assert!(matches!(
            stream.next_event().await,
            StreamEvent::Broken(Some(Error::Protocol(_)))
        ));
        assert!(stream.is_idle());

        stream.wait(Duration::from_millis(50));
        assert!(stream.is_waiting() && !stream.send(2));
        let started = tokio::time::Instant::now();
        assert!(matches!(stream.next_event().await, StreamEvent::WaitOver));
        assert_eq!(started.elapsed(), Duration::from_millis(50));

        stream.open(echo(false));
        assert!(stream.send(7));
        assert!(matches!(stream.next_event().await, StreamEvent::Opened));
        assert!(stream.is_connected());
        assert!(matches!(
            stream.next_event().await,
            StreamEvent::Response(7)
        ));
        stream.close();
        assert!(stream.is_idle() && !stream.send(8));
    }
}
