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

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::uri::PathAndQuery;
use http_body::{Frame, SizeHint};
use tonic::Status;

use super::frames::{Frames, PREFIX, put_prefix, unprefix};
use super::head;
use super::message::{Response, decode};
use crate::transport::GrpcTransport;
use crate::{Error, Result};

/// Calls `path` on `transport` with `request`, and decodes the single response message
/// (refused when longer than `limit` bytes).
pub(crate) async fn call<T, Req, Resp>(
    transport: T,
    path: &'static str,
    request: Req,
    limit: usize,
) -> Result<Resp>
where
    T: GrpcTransport,
    Req: prost::Message,
    Resp: Response,
{
    let (body, status) = send(transport, encode(path, &request)).await?;
    match status {
        // A trailers-only response: an error, or (wrongly) success without a message.
        Some(Ok(())) => {
            return Err(Error::Protocol(
                "the server answered without a message".into(),
            ));
        }
        Some(Err(status)) => return Err(status.into()),
        None => {}
    }
    let message = read(body, limit).await?;
    decode(message).map_err(|e| Error::Protocol(format!("cannot decode the response: {e}").into()))
}

/// Sends `request` once `transport` is ready and checks the answer's head
/// ([`head::check`]): the body, and the gRPC status the head carries, if any (a
/// trailers-only response, whose body carries nothing).
pub(super) async fn send<T: GrpcTransport>(
    mut transport: T,
    request: http::Request<tonic::body::Body>,
) -> Result<(T::ResponseBody, Option<std::result::Result<(), Status>>)> {
    poll_fn(|cx| transport.poll_ready(cx))
        .await
        .map_err(|e| Error::from(Status::from_error(e.into())))?;
    let response = transport
        .call(request)
        .await
        .map_err(|e| Error::from(Status::from_error(e.into())))?;
    let (head, body) = response.into_parts();
    Ok((body, head::check(&head)?))
}

/// The HTTP request of a call: the length-prefixed message in one buffer.
fn encode<M: prost::Message>(path: &'static str, message: &M) -> http::Request<tonic::body::Body> {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    put_prefix(&mut buf, len);
    message.encode_raw(&mut buf);
    post(path, tonic::body::Body::new(Once(Some(buf.freeze()))))
}

/// A gRPC request of `body` to `path`: a `POST` with gRPC's content type, asking for
/// trailers.
pub(super) fn post(
    path: &'static str,
    body: tonic::body::Body,
) -> http::Request<tonic::body::Body> {
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from(PathAndQuery::from_static(path));
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    request
}

/// Reads the response body: the message (without its prefix, refused as soon as the
/// prefix says it is longer than `limit`), then the status in the trailers.
async fn read<B>(body: B, limit: usize) -> Result<Frames>
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
                if expected.is_none() {
                    expected = message.declared_len(limit)?.map(|len| PREFIX + len);
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
                match head::grpc_status(&trailers) {
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
    fn a_request_is_one_prefixed_message() {
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
        assert_eq!(request.headers()[TE], "trailers");
        assert_eq!(http_body::Body::size_hint(request.body()).exact(), Some(11));
    }

    #[tokio::test]
    async fn data_past_the_one_message_is_refused_as_it_arrives() {
        let body = Once(Some(Bytes::from_static(b"\0\0\0\0\x03abc and more")));
        let error = read(body, usize::MAX).await.unwrap_err();
        assert!(matches!(error, Error::Protocol(_)), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("more than its one message of 3 bytes"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_refused_before_it_arrives() {
        // Only the prefix of a 1 MiB message: refused without waiting for the rest.
        let body = Once(Some(Bytes::from_static(b"\0\0\x10\0\0")));
        let error = read(body, 1000).await.unwrap_err();
        assert!(
            matches!(
                error,
                Error::ResponseTooLarge {
                    size: 1_048_576,
                    limit: 1000
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.applied(), crate::Applied::Unknown);
    }
}
