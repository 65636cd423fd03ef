//! Unary gRPC calls encoded and decoded here rather than by tonic's generic client.
//!
//! A unary call needs far less than tonic's streaming codec: the request is one message
//! in one exactly sized buffer, and the response is usually one DATA frame, from which
//! the message is decoded in place (its `bytes` fields share that frame's buffer). This
//! skips, per call, tonic's per-call extensions map, its 8 KiB decode buffer and the copy
//! into it, and the streaming decoder's state machine. What goes over the wire is the
//! same: `POST` of a length-prefixed message with `content-type: application/grpc` and
//! `te: trailers`, and the status read from the trailers (or from the headers of a
//! trailers-only response).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::uri::PathAndQuery;
use http_body::{Frame, SizeHint};
use tonic::{Code, Status};

use crate::transport::GrpcTransport;
use crate::{Error, Result};

/// The length prefix of a gRPC message: a compression flag and a big-endian length.
const PREFIX: usize = 5;
/// The most a response buffer is sized to up front from its prefix; larger messages grow
/// it as they arrive (a prefix is no proof that the bytes will follow).
const MAX_PRESIZE: usize = 64 << 20;

/// Calls `path` on `transport` with `request`, and decodes the single response message.
pub(crate) async fn call<T, Req, Resp>(
    mut transport: T,
    path: &'static str,
    request: Req,
) -> Result<Resp>
where
    T: GrpcTransport,
    Req: prost::Message,
    Resp: prost::Message + Default,
{
    poll_fn(|cx| transport.poll_ready(cx))
        .await
        .map_err(|e| Error::from(Status::from_error(e.into())))?;
    let response = transport
        .call(encode(path, &request))
        .await
        .map_err(|e| Error::from(Status::from_error(e.into())))?;
    let (head, body) = response.into_parts();
    if let Some(status) = Status::from_header_map(&head.headers) {
        // A trailers-only response: an error, or (wrongly) success without a message.
        return Err(if status.code() == Code::Ok {
            Error::Protocol("the server answered without a message".into())
        } else {
            status.into()
        });
    }
    if head.status != http::StatusCode::OK {
        return Err(http_status(head.status).into());
    }
    let message = read(body).await?;
    Resp::decode(message)
        .map_err(|e| Error::Protocol(format!("cannot decode the response: {e}").into()))
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
async fn read<B>(body: B) -> Result<Bytes>
where
    B: http_body::Body<Data = Bytes, Error: Into<tonic::codegen::StdError>>,
{
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
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
            Ok(data) => match (&mut first, &mut joined) {
                (None, None) => first = Some(data),
                (Some(head), None) => {
                    // A message over several frames is gathered in one buffer of the size
                    // its prefix announces (no regrowing and recopying).
                    let mut buf =
                        BytesMut::with_capacity(announced(head).min(MAX_PRESIZE).max(head.len()));
                    buf.put(std::mem::take(head));
                    buf.put(data);
                    first = None;
                    joined = Some(buf);
                }
                (_, Some(buf)) => buf.put(data),
            },
            Err(frame) => {
                let Ok(trailers) = frame.into_trailers() else {
                    continue;
                };
                match Status::from_header_map(&trailers) {
                    Some(status) if status.code() == Code::Ok => break,
                    Some(status) => return Err(status.into()),
                    None => {
                        return Err(Error::Protocol(
                            "the response's trailers have no gRPC status".into(),
                        ));
                    }
                }
            }
        }
    }
    let data = match (first, joined) {
        (_, Some(buf)) => buf.freeze(),
        (Some(data), None) => data,
        (None, None) => Bytes::new(),
    };
    unprefix(data)
}

/// The length of the body a message's prefix announces (prefix included); 0 when the
/// prefix is incomplete.
fn announced(data: &[u8]) -> usize {
    match data {
        [_, a, b, c, d, ..] => PREFIX + u32::from_be_bytes([*a, *b, *c, *d]) as usize,
        _ => 0,
    }
}

/// The one message of a response body.
fn unprefix(mut data: Bytes) -> Result<Bytes> {
    if data.len() < PREFIX {
        return Err(Error::Protocol("the response has no message".into()));
    }
    let compressed = data.get_u8();
    let len = data.get_u32() as usize;
    if compressed != 0 {
        return Err(Error::Protocol(
            "the response is compressed, which was not asked for".into(),
        ));
    }
    if data.len() != len {
        return Err(Error::Protocol(
            format!(
                "the response's message is {} bytes long where its prefix says {len}",
                data.len()
            )
            .into(),
        ));
    }
    Ok(data)
}

/// The status of a response without a gRPC status and an HTTP status other than 200, as
/// gRPC maps it.
fn http_status(status: http::StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("HTTP status {status} without a gRPC status"))
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
        let mut data = BytesMut::new();
        data.put_u8(0);
        data.put_u32(3);
        data.put_slice(b"abc");
        assert_eq!(announced(&data), 8);
        assert_eq!(announced(&data[..3]), 0);
        assert_eq!(unprefix(data.freeze()).unwrap(), Bytes::from_static(b"abc"));
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        assert!(matches!(
            unprefix(Bytes::from_static(b"\0\0")),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            unprefix(Bytes::from_static(b"\0\0\0\0\x09abc")),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            unprefix(Bytes::from_static(b"\x01\0\0\0\x03abc")),
            Err(Error::Protocol(_))
        ));
        assert_eq!(
            http_status(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
    }
}
