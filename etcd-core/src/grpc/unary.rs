//! Unary gRPC calls encoded and decoded here rather than by tonic's generic client.
//!
//! A unary call needs far less than tonic's streaming codec: the request is one message
//! in one exactly sized buffer, and the response message is decoded in place from the
//! DATA frames that brought it (its `bytes` fields share those frames' buffers; only a
//! field split between two frames is copied). This skips, per call, tonic's per-call
//! extensions map, its decode buffer and the copy into it (for a large range response,
//! a second copy of the whole response), and the streaming decoder's state machine. What
//! goes over the wire is the same: `POST` of a length-prefixed message with `content-type: application/grpc` and
//! `te: trailers`, and the status read from the trailers (or from the headers of a
//! trailers-only response).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::uri::PathAndQuery;
use http_body::{Frame, SizeHint};
use tonic::{Code, Status};

use etcd_proto::etcdserverpb as pb;

use crate::transport::GrpcTransport;
use crate::{Error, Result};

/// The header or trailer with a call's gRPC status code.
const GRPC_STATUS: &str = "grpc-status";

/// The length prefix of a gRPC message: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// Calls `path` on `transport` with `request`, and decodes the single response message.
pub(crate) async fn call<T, Req, Resp>(
    mut transport: T,
    path: &'static str,
    request: Req,
) -> Result<Resp>
where
    T: GrpcTransport,
    Req: prost::Message,
    Resp: Response,
{
    poll_fn(|cx| transport.poll_ready(cx))
        .await
        .map_err(|e| Error::from(Status::from_error(e.into())))?;
    let response = transport
        .call(encode(path, &request))
        .await
        .map_err(|e| Error::from(Status::from_error(e.into())))?;
    let (head, body) = response.into_parts();
    check_head(&head)?;
    let message = read(body).await?;
    let mut response = Resp::sized_for(&message);
    response
        .merge(message)
        .map_err(|e| Error::Protocol(format!("cannot decode the response: {e}").into()))?;
    Ok(response)
}

/// Checks a response's head before its body is read, as gRPC does: an HTTP status other
/// than 200 is the call's status whatever else the head says (a proxy's error page), then
/// a `content-type` that is not gRPC's is a protocol error, then a gRPC status in the head
/// (a trailers-only response) ends the call.
fn check_head(head: &http::response::Parts) -> Result<()> {
    if head.status != http::StatusCode::OK {
        return Err(http_status(head.status).into());
    }
    let content_type = head.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
    let grpc = content_type.is_some_and(|t| {
        t.strip_prefix(b"application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
    });
    if !grpc {
        let shown = content_type.map_or("none".into(), String::from_utf8_lossy);
        return Err(Error::Protocol(
            format!("the response is not gRPC (content-type: {shown})").into(),
        ));
    }
    match grpc_status(&head.headers) {
        // A trailers-only response: an error, or (wrongly) success without a message.
        Some(Ok(())) => Err(Error::Protocol(
            "the server answered without a message".into(),
        )),
        Some(Err(status)) => Err(status.into()),
        None => Ok(()),
    }
}

/// A response message [`call`] decodes.
pub(crate) trait Response: prost::Message + Default {
    /// An empty message, its lists sized for what `message` holds when that is worth it.
    fn sized_for(_message: &Frames) -> Self {
        Self::default()
    }
}

impl Response for pb::PutResponse {}
impl Response for pb::DeleteRangeResponse {}
impl Response for pb::TxnResponse {}
impl Response for pb::CompactionResponse {}

impl Response for pb::RangeResponse {
    /// The key-values list allocated once at its size: grown by doubling, a 10,000-key
    /// answer would touch half as much again, and hold both copies while it grows.
    fn sized_for(message: &Frames) -> Self {
        let mut response = Self::default();
        if message.remaining() >= PRESIZE_FROM {
            response.kvs.reserve_exact(count_field(message.clone(), 2));
        }
        response
    }
}

/// Messages from this size on have their lists sized before decoding (a smaller one holds
/// few items, not worth a pass over it).
const PRESIZE_FROM: usize = 16 << 10;

/// How many times field `number` occurs at the top level of `message` (0 when the message
/// is malformed: decoding will say so).
fn count_field(mut message: Frames, number: u32) -> usize {
    use prost::encoding::{DecodeContext, decode_key, skip_field};
    let mut count = 0;
    while message.has_remaining() {
        let Ok((tag, wire_type)) = decode_key(&mut message) else {
            return 0;
        };
        count += usize::from(tag == number);
        if skip_field(wire_type, tag, &mut message, DecodeContext::default()).is_err() {
            return 0;
        }
    }
    count
}

/// The HTTP request of a call: the length-prefixed message in one buffer.
fn encode<M: prost::Message>(path: &'static str, message: &M) -> http::Request<tonic::body::Body> {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    message.encode_raw(&mut buf);
    let mut request = http::Request::new(tonic::body::Body::new(Once(Some(buf.freeze()))));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from(PathAndQuery::from_static(path));
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    request
}

/// Reads the response body: the message (without its prefix), then the status in the
/// trailers.
async fn read<B>(body: B) -> Result<Frames>
where
    B: http_body::Body<Data = Bytes, Error: Into<tonic::codegen::StdError>>,
{
    let mut body = std::pin::pin!(body);
    let mut message = Frames::default();
    // The length its prefix gives, once known: data past it is refused as it arrives
    // rather than gathered (a server could send without end).
    let mut expected = None;
    loop {
        let frame = poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        let frame = match frame {
            None => {
                return Err(Error::Protocol(
                    "the response ended without a gRPC status".into(),
                ));
            }
            Some(Err(e)) => return Err(Status::from_error(e.into()).into()),
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                message.push(data);
                if expected.is_none() && message.remaining() >= PREFIX {
                    expected = Some(PREFIX + message.declared_len());
                }
                if let Some(expected) = expected
                    && message.remaining() > expected
                {
                    return Err(Error::Protocol(
                        format!(
                            "the response carries more than its one message of {} bytes",
                            expected - PREFIX
                        )
                        .into(),
                    ));
                }
            }
            Err(frame) => {
                let Ok(trailers) = frame.into_trailers() else {
                    continue;
                };
                match grpc_status(&trailers) {
                    Some(Ok(())) => break,
                    Some(Err(status)) => return Err(status.into()),
                    None => {
                        return Err(Error::Protocol(
                            "the response's trailers have no gRPC status".into(),
                        ));
                    }
                }
            }
        }
    }
    unprefix(message)
}

/// The gRPC status in `headers` (the trailers, or the headers of a trailers-only response):
/// `None` without one. Success is told by its code alone; tonic's full parse (message,
/// details, a copy of the other headers) is kept for failures.
fn grpc_status(headers: &http::HeaderMap) -> Option<std::result::Result<(), Status>> {
    let code = headers.get(GRPC_STATUS)?;
    if code.as_bytes() == b"0" {
        return Some(Ok(()));
    }
    match Status::from_header_map(headers) {
        Some(status) if status.code() == Code::Ok => Some(Ok(())),
        Some(status) => Some(Err(status)),
        None => Some(Err(Status::unknown("a malformed grpc-status"))),
    }
}

/// The one message of a response body, its prefix checked and removed.
fn unprefix(mut data: Frames) -> Result<Frames> {
    if data.remaining() < PREFIX {
        return Err(Error::Protocol("the response has no message".into()));
    }
    let compressed = data.get_u8();
    let len = data.get_u32() as usize;
    if compressed != 0 {
        return Err(Error::Protocol(
            "the response is compressed, which was not asked for".into(),
        ));
    }
    if data.remaining() != len {
        return Err(Error::Protocol(
            format!(
                "the response's message is {} bytes long where its prefix says {len}",
                data.remaining()
            )
            .into(),
        ));
    }
    Ok(data)
}

/// A message as its DATA frames brought it, not gathered into one buffer: decoding slices
/// the `bytes` fields out of the frames themselves and copies only the few that straddle
/// two frames. A large range response thus costs its frames and nothing more.
#[derive(Clone, Debug, Default)]
pub(crate) struct Frames {
    front: Bytes,
    rest: VecDeque<Bytes>,
    remaining: usize,
}

impl Frames {
    /// The message length in the gRPC prefix at the front (at least [`PREFIX`] bytes
    /// must be there).
    fn declared_len(&self) -> usize {
        let mut prefix = [0u8; PREFIX];
        let mut at = 0;
        for piece in std::iter::once(&self.front).chain(&self.rest) {
            let take = (PREFIX - at).min(piece.len());
            prefix[at..at + take].copy_from_slice(&piece[..take]);
            at += take;
            if at == PREFIX {
                break;
            }
        }
        u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.remaining += data.len();
        if self.front.is_empty() {
            self.front = data;
        } else {
            self.rest.push_back(data);
        }
    }

    /// Moves to the next frame once the front one is used up.
    fn next_frame(&mut self) {
        while self.front.is_empty() {
            match self.rest.pop_front() {
                Some(next) => self.front = next,
                None => return,
            }
        }
    }
}

impl Buf for Frames {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        &self.front
    }

    fn advance(&mut self, mut cnt: usize) {
        if cnt < self.front.len() {
            // Within the front frame: what decoding a field does most of the time.
            self.front.advance(cnt);
            self.remaining -= cnt;
            return;
        }
        assert!(cnt <= self.remaining, "advance past the end of the message");
        self.remaining -= cnt;
        while cnt > 0 {
            let step = cnt.min(self.front.len());
            self.front.advance(step);
            cnt -= step;
            self.next_frame();
        }
        self.next_frame();
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        if len <= self.front.len() {
            let out = self.front.split_to(len);
            self.remaining -= len;
            self.next_frame();
            return out;
        }
        assert!(len <= self.remaining, "copy past the end of the message");
        let mut out = BytesMut::with_capacity(len);
        out.put((&mut *self).take(len));
        out.freeze()
    }
}

/// The status of a response whose HTTP status is not 200, as gRPC maps it.
fn http_status(status: http::StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("HTTP status {status} (not a gRPC answer)"))
}

/// A request body of one buffer.
struct Once(Option<Bytes>);

impl http_body::Body for Once {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |data| data.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&'static [u8]]) -> Frames {
        let mut frames = Frames::default();
        for part in parts {
            frames.push(Bytes::from_static(part));
        }
        frames
    }

    #[test]
    fn a_message_is_read_back_from_its_prefix() {
        let request = encode(
            "/etcdserverpb.KV/Put",
            &etcd_proto::etcdserverpb::PutRequest {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                ..Default::default()
            },
        );
        assert_eq!(request.uri().path(), "/etcdserverpb.KV/Put");
        assert_eq!(request.headers()[CONTENT_TYPE], "application/grpc");
        let mut one = unprefix(frames(&[b"\0\0\0\0\x03abc"])).unwrap();
        assert_eq!(one.copy_to_bytes(3), Bytes::from_static(b"abc"));
        // The prefix and the message split over frames, one frame empty.
        let mut split = unprefix(frames(&[b"\0\0", b"", b"\0\0\x05a", b"bc", b"de"])).unwrap();
        assert_eq!(split.remaining(), 5);
        assert_eq!(split.copy_to_bytes(1), Bytes::from_static(b"a"));
        assert_eq!(split.copy_to_bytes(3), Bytes::from_static(b"bcd"));
        split.advance(1);
        assert_eq!(split.remaining(), 0);
    }

    #[test]
    fn a_message_over_many_frames_decodes_in_place() {
        use prost::Message as _;
        let response = etcd_proto::etcdserverpb::RangeResponse {
            kvs: (0..100) // 30 KB: sized before decoding
                .map(|i| etcd_proto::mvccpb::KeyValue {
                    key: Bytes::from(format!("key/{i:03}")),
                    value: Bytes::from(vec![b'v'; 300]),
                    ..Default::default()
                })
                .collect(),
            count: 100,
            ..Default::default()
        };
        let mut body = BytesMut::new();
        body.put_u8(0);
        body.put_u32(response.encoded_len() as u32);
        response.encode(&mut body).unwrap();
        let body = body.freeze();
        let mut message = Frames::default();
        for chunk in body.chunks(1000) {
            message.push(body.slice_ref(chunk));
        }
        let message = unprefix(message).unwrap();
        let mut decoded = etcd_proto::etcdserverpb::RangeResponse::sized_for(&message);
        assert_eq!(decoded.kvs.capacity(), 100, "sized before decoding");
        decoded.merge(message).unwrap();
        assert_eq!(decoded, response);
        assert_eq!(decoded.kvs.capacity(), 100, "never grown");
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        assert!(matches!(
            unprefix(frames(&[b"\0\0"])),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            unprefix(frames(&[b"\0\0\0\0\x09abc"])),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            unprefix(frames(&[b"\x01\0\0\0\x03abc"])),
            Err(Error::Protocol(_))
        ));
        assert_eq!(
            http_status(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
    }

    #[tokio::test]
    async fn data_past_the_one_message_is_refused_as_it_arrives() {
        let body = Once(Some(Bytes::from_static(b"\0\0\0\0\x03abc and more")));
        let error = read(body).await.unwrap_err();
        assert!(matches!(error, Error::Protocol(_)), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("more than its one message of 3 bytes"),
            "{error}"
        );
    }

    fn head(status: u16, headers: &[(&'static str, &'static str)]) -> http::response::Parts {
        let mut response = http::Response::builder().status(status);
        for &(name, value) in headers {
            response = response.header(name, value);
        }
        response.body(()).unwrap().into_parts().0
    }

    #[test]
    fn heads_are_checked_as_grpc_does() {
        const GRPC: (&str, &str) = ("content-type", "application/grpc");
        assert!(check_head(&head(200, &[GRPC])).is_ok());
        assert!(check_head(&head(200, &[("content-type", "application/grpc+proto")])).is_ok());
        // A non-200 status wins over a gRPC status in the same head.
        let error = check_head(&head(503, &[GRPC, ("grpc-status", "0")])).unwrap_err();
        assert!(error.to_string().contains("503"), "{error}");
        assert!(!matches!(error, Error::Protocol(_)), "{error:?}");
        // Not gRPC at all: a web page, or no content-type.
        for headers in [&[("content-type", "text/html")][..], &[][..]] {
            let error = check_head(&head(200, headers)).unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "{error:?}");
            assert!(error.to_string().contains("not gRPC"), "{error}");
        }
        let error = check_head(&head(200, &[("content-type", "application/grpcx")])).unwrap_err();
        assert!(matches!(error, Error::Protocol(_)), "{error:?}");
        // A trailers-only answer.
        let error = check_head(&head(200, &[GRPC, ("grpc-status", "14")])).unwrap_err();
        assert!(!matches!(error, Error::Protocol(_)), "{error:?}");
        let error = check_head(&head(200, &[GRPC, ("grpc-status", "0")])).unwrap_err();
        assert!(matches!(error, Error::Protocol(_)), "{error:?}");
    }
}
