//! Bidirectional gRPC streams (watch, lease keep-alive) encoded and decoded here rather
//! than by tonic's generic client, as unary calls are ([`unary`](super::unary)).
//!
//! Outgoing, every message that is ready when the transport asks for data goes into one
//! buffer, so a burst of keep-alive renewals or watch creations is one DATA frame and one
//! write, not one each. Incoming, each message is cut from the DATA frames that brought it
//! and decoded with its event list sized first, its `bytes` fields sharing the buffer they
//! were decoded from. A message under 64 KiB is first copied into one buffer of its own
//! size: unlike a unary response, a watch response may be kept long after the next ones
//! arrived (a slow consumer's buffer, a cache's entries), and a few bytes shared with the
//! transport's frame would keep its whole read buffer, other streams' data included. A
//! larger message (a catch-up batch) spans several frames that it mostly fills, and is
//! decoded from them in place rather than held twice while copied. Between messages a
//! stream holds at most the part of one message that has arrived. What goes over
//! the wire is what tonic sends: `POST` with `content-type: application/grpc` and
//! `te: trailers`, length-prefixed messages, the status from the trailers.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http::HeaderValue;
use http_body::Frame;
use tonic::Status;

use super::frames::{Frames, PREFIX, put_prefix};
use super::head;
use super::message::{Response, decode};
use super::unary::{post, send};
use crate::stream::{RequestStream, ResponseStream};
use crate::transport::GrpcTransport;
use crate::{Error, Result};

/// The metadata key etcd reads to refuse serving a stream from a member without a leader.
const HAS_LEADER: &str = "hasleader";

/// Messages ready together are gathered into one DATA frame up to about this many bytes.
const BATCH_BYTES: usize = 16 << 10;

/// Opens the stream `path` on `transport`: `requests` go out as they come, and the
/// answer, once the server's head has arrived, is the stream of its messages (a message
/// longer than `limit` bytes ends it). With `require_leader`, the server is asked to
/// serve it only while its member has a leader.
pub(crate) async fn open<T, Req, Resp>(
    transport: T,
    path: &'static str,
    requests: RequestStream<Req>,
    require_leader: bool,
    limit: usize,
) -> Result<ResponseStream<Resp>>
where
    T: GrpcTransport,
    Req: prost::Message + 'static,
    Resp: Response + Send + 'static,
{
    let mut request = post(path, tonic::body::Body::new(Encoder(Some(requests))));
    if require_leader {
        request
            .headers_mut()
            .insert(HAS_LEADER, HeaderValue::from_static("true"));
    }
    let (body, status) = send(transport, request).await?;
    match status {
        // A trailers-only response: the stream ended (or failed) before any message.
        Some(Ok(())) => Ok(futures_util::stream::empty().boxed()),
        Some(Err(status)) => Err(status.into()),
        None => Ok(Decoder::<_, Resp>::new(body, limit).boxed()),
    }
}

/// The request body: the outgoing messages, length-prefixed, those ready together in one
/// frame. `None` once the messages have ended.
struct Encoder<M>(Option<RequestStream<M>>);

impl<M: prost::Message> http_body::Body for Encoder<M> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let mut buf = BytesMut::new();
        while let Some(messages) = self.0.as_mut() {
            match messages.as_mut().poll_next(cx) {
                Poll::Ready(Some(message)) => {
                    let len = message.encoded_len();
                    buf.reserve(PREFIX + len);
                    put_prefix(&mut buf, len);
                    message.encode_raw(&mut buf);
                    if buf.len() >= BATCH_BYTES {
                        break;
                    }
                }
                Poll::Ready(None) => self.0 = None,
                Poll::Pending => break,
            }
        }
        if !buf.is_empty() {
            Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
        } else if self.0.is_none() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// The response body cut into its messages, each decoded as soon as all of it is here.
/// It ends after the status in the trailers (an error status is its last item), and after
/// any failure.
struct Decoder<B, M> {
    body: Pin<Box<B>>,
    /// What has arrived of the next message.
    pending: Frames,
    /// The longest message accepted.
    limit: usize,
    done: bool,
    message: PhantomData<fn() -> M>,
}

impl<B, M> Decoder<B, M> {
    fn new(body: B, limit: usize) -> Self {
        Self {
            body: Box::pin(body),
            pending: Frames::default(),
            limit,
            done: false,
            message: PhantomData,
        }
    }

    /// Ends the stream with `error` as its last item.
    fn fail(&mut self, error: Error) -> Poll<Option<Result<M>>> {
        self.done = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<B, M> futures_core::Stream for Decoder<B, M>
where
    B: http_body::Body<Data = Bytes, Error: Into<tonic::codegen::StdError>>,
    M: Response,
{
    type Item = Result<M>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.pending.next_message(this.limit) {
                Ok(Some(message)) => {
                    let decoded = if message.remaining() < OWN_BUFFER_BELOW {
                        decode(own_buffer(message))
                    } else {
                        decode(message)
                    };
                    return match decoded {
                        Ok(response) => Poll::Ready(Some(Ok(response))),
                        Err(e) => this.fail(Error::Protocol(
                            format!("cannot decode a message of the stream: {e}").into(),
                        )),
                    };
                }
                Ok(None) => {}
                Err(error) => return this.fail(error),
            }
            let frame = match ready!(this.body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return this.fail(Status::from_error(e.into()).into()),
                None => {
                    return this.fail(Error::Protocol(
                        "the stream ended without a gRPC status".into(),
                    ));
                }
            };
            let trailers = match frame.into_data() {
                Ok(data) => {
                    this.pending.push(data);
                    continue;
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => trailers,
                    Err(_) => continue,
                },
            };
            return match head::grpc_status(&trailers) {
                // The server's own error says more than a message it left unfinished.
                Some(Err(status)) => this.fail(status.into()),
                Some(Ok(())) if this.pending.has_remaining() => this.fail(Error::Protocol(
                    format!(
                        "the stream ended in the middle of a message ({} bytes of it)",
                        this.pending.remaining()
                    )
                    .into(),
                )),
                Some(Ok(())) => {
                    this.done = true;
                    Poll::Ready(None)
                }
                None => this.fail(Error::Protocol(
                    "the stream's trailers have no gRPC status".into(),
                )),
            };
        }
    }
}

/// Messages under this size are copied into a buffer of their own before decoding (see
/// the module docs).
const OWN_BUFFER_BELOW: usize = 64 << 10;

/// `message` copied into one buffer of its own size (see the module docs for why).
fn own_buffer(message: Frames) -> Bytes {
    let mut own = BytesMut::with_capacity(message.remaining());
    own.put(message);
    own.freeze()
}

/// Implements `Service<RequestStream<Request>>` for an adapter with `transport`,
/// `require_leader` and `max_response_size` fields: each call opens one stream `$path` through [`open`].
macro_rules! bidi_service {
    ($adapter:ident, $request:ty, $response:ty, $path:literal) => {
        impl<T: $crate::transport::GrpcTransport>
            tower::Service<$crate::stream::RequestStream<$request>> for $adapter<T>
        {
            type Response = $crate::stream::ResponseStream<$response>;
            type Error = $crate::Error;
            type Future = futures_util::future::BoxFuture<'static, $crate::Result<Self::Response>>;

            fn poll_ready(
                &mut self,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                // The call waits for the transport to be ready.
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, requests: $crate::stream::RequestStream<$request>) -> Self::Future {
                Box::pin($crate::grpc::streaming::open(
                    self.transport.clone(),
                    $path,
                    requests,
                    self.require_leader,
                    self.max_response_size,
                ))
            }
        }
    };
}
pub(crate) use bidi_service;

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_proto::etcdserverpb as pb;
    use std::collections::VecDeque;
    use std::future::poll_fn;

    use http_body::Body as _;

    /// A response body of the given frames.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<std::result::Result<Frame<Bytes>, Status>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn encoded(responses: &[pb::LeaseKeepAliveResponse]) -> Bytes {
        let mut buf = BytesMut::new();
        for response in responses {
            let len = prost::Message::encoded_len(response);
            put_prefix(&mut buf, len);
            prost::Message::encode_raw(response, &mut buf);
        }
        buf.freeze()
    }

    fn trailers(status: &'static str) -> Frame<Bytes> {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(status));
        Frame::trailers(trailers)
    }

    fn renewal(id: i64) -> pb::LeaseKeepAliveResponse {
        pb::LeaseKeepAliveResponse {
            id,
            ttl: 5,
            ..Default::default()
        }
    }

    async fn decode(frames: Vec<Frame<Bytes>>) -> Vec<Result<pb::LeaseKeepAliveResponse>> {
        Decoder::new(Frames(frames.into()), usize::MAX)
            .collect()
            .await
    }

    #[tokio::test]
    async fn messages_are_cut_wherever_frames_end() {
        let all = encoded(&[renewal(1), renewal(2), renewal(3)]);
        // Split across frames at every byte boundary in turn.
        for at in 1..all.len() {
            let frames = vec![
                Frame::data(all.slice(..at)),
                Frame::data(all.slice(at..)),
                trailers("0"),
            ];
            let got: Vec<_> = decode(frames)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, [renewal(1), renewal(2), renewal(3)], "split at {at}");
        }
    }

    #[tokio::test]
    async fn a_message_over_the_limit_ends_the_stream_once_its_prefix_is_here() {
        let first = encoded(&[renewal(1)]);
        let limit = first.len() - PREFIX;
        // A message that fits, then the prefix alone of one a byte too long: no status
        // and no rest of it are needed to end the stream.
        let mut long = BytesMut::new();
        put_prefix(&mut long, limit + 1);
        let got: Vec<_> = Decoder::<_, pb::LeaseKeepAliveResponse>::new(
            Frames(vec![Frame::data(first), Frame::data(long.freeze())].into()),
            limit,
        )
        .collect()
        .await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].as_ref().unwrap(), &renewal(1));
        let error = got[1].as_ref().unwrap_err();
        assert!(
            matches!(error, Error::ResponseTooLarge { size, limit: l } if *size == limit + 1 && *l == limit),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_ends_with_its_status() {
        let got = decode(vec![Frame::data(encoded(&[renewal(1)])), trailers("14")]).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap(), &renewal(1));
        let error = got[1].as_ref().unwrap_err();
        assert!(!matches!(error, Error::Protocol(_)), "{error:?}");
    }

    #[tokio::test]
    async fn the_servers_error_wins_over_a_message_it_left_unfinished() {
        let whole = encoded(&[renewal(1)]);
        let half = whole.slice(..whole.len() - 1);
        let got = decode(vec![Frame::data(half), trailers("14")]).await;
        let error = got.last().unwrap().as_ref().unwrap_err();
        assert!(!matches!(error, Error::Protocol(_)), "{error:?}");
    }

    #[tokio::test]
    async fn a_response_keeps_a_buffer_of_its_own_not_the_frames() {
        let response = pb::WatchResponse {
            watch_id: 1,
            events: vec![etcd_proto::mvccpb::Event {
                kv: Some(etcd_proto::mvccpb::KeyValue {
                    key: Bytes::from_static(b"key"),
                    value: Bytes::from(vec![b'v'; 100]),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        // The message inside a large read buffer, as a transport's frame would be.
        let mut buf = BytesMut::from(&[0u8; 4096][..]);
        put_prefix(&mut buf, prost::Message::encoded_len(&response));
        prost::Message::encode_raw(&response, &mut buf);
        buf.extend_from_slice(&[0u8; 4096]);
        let read = buf.freeze();
        let frame = read.slice(4096..read.len() - 4096);
        let mut decoder = Decoder::<_, pb::WatchResponse>::new(
            Frames(vec![Frame::data(frame), trailers("0")].into()),
            usize::MAX,
        );
        let got = decoder.next().await.unwrap().unwrap();
        assert_eq!(got, response);
        let value = got.events[0].kv.as_ref().unwrap().value.as_ptr() as usize;
        let within = read.as_ptr() as usize..read.as_ptr() as usize + read.len();
        assert!(
            !within.contains(&value),
            "the value points into the read buffer"
        );
    }

    #[tokio::test]
    async fn broken_streams_end_with_a_protocol_error() {
        let whole = encoded(&[renewal(1)]);
        let half = whole.slice(..whole.len() - 1);
        let cases = [
            // No trailers at all.
            vec![Frame::data(whole.clone())],
            // Trailers in the middle of a message.
            vec![Frame::data(half), trailers("0")],
            // Trailers without a status.
            vec![
                Frame::data(whole.clone()),
                Frame::trailers(http::HeaderMap::new()),
            ],
            // A message that is not the message it should be.
            vec![
                Frame::data(Bytes::from_static(b"\0\0\0\0\x02\xff\xff")),
                trailers("0"),
            ],
            // Compressed without being asked.
            vec![
                Frame::data(Bytes::from_static(b"\x01\0\0\0\0")),
                trailers("0"),
            ],
        ];
        for frames in cases {
            let got = decode(frames).await;
            let error = got.last().unwrap().as_ref().unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "{error:?}");
        }
    }

    #[tokio::test]
    async fn ready_requests_go_out_in_one_frame() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let requests: Vec<_> = (1..=3).map(|id| pb::LeaseKeepAliveRequest { id }).collect();
        for request in &requests {
            tx.send(*request).unwrap();
        }
        let mut encoder = Encoder(Some(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed(),
        ));
        let first = poll_fn(|cx| Pin::new(&mut encoder).poll_frame(cx)).await;
        let data = first.unwrap().unwrap().into_data().unwrap();
        let mut expected = BytesMut::new();
        for request in &requests {
            put_prefix(&mut expected, prost::Message::encoded_len(request));
            prost::Message::encode_raw(request, &mut expected);
        }
        assert_eq!(data, expected);
        // Nothing more is ready yet; once the requests end, so does the body.
        let waker = futures_util::task::noop_waker();
        let pending = Pin::new(&mut encoder).poll_frame(&mut Context::from_waker(&waker));
        assert!(pending.is_pending());
        drop(tx);
        assert!(
            poll_fn(|cx| Pin::new(&mut encoder).poll_frame(cx))
                .await
                .is_none()
        );
        assert!(http_body::Body::is_end_stream(&encoder));
    }
}
