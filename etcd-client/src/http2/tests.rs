//! The channel against a scripted HTTP/2 peer on a loopback socket: the cases a healthy
//! etcd rarely produces on demand (small windows, GOAWAY in the middle of calls, resets,
//! a port that hangs up).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceExt};

use super::H2Channel;
use super::frame::{self, Head, code, flag, kind};
use crate::endpoint::ConnectOptions;

/// The server side of one connection, driven by the test.
pub(super) struct Peer {
    pub(super) tcp: TcpStream,
}

impl Peer {
    /// Accepts a connection, reads the client's preface and sends empty SETTINGS.
    pub(super) async fn accept(listener: &TcpListener) -> Self {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut preface = [0u8; 24];
        tcp.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface[..], frame::PREFACE);
        let mut out = BytesMut::new();
        frame::put_settings(&mut out, &[]);
        tcp.write_all(&out).await.unwrap();
        Self { tcp }
    }

    /// The next frame.
    pub(super) async fn any_frame(&mut self) -> (Head, Vec<u8>) {
        let mut head = [0u8; frame::HEADER_LEN];
        self.tcp.read_exact(&mut head).await.unwrap();
        let head = Head::parse(&head);
        let mut payload = vec![0u8; head.len];
        self.tcp.read_exact(&mut payload).await.unwrap();
        (head, payload)
    }

    /// The next frame that is not connection housekeeping (SETTINGS, WINDOW_UPDATE on
    /// the connection).
    pub(super) async fn frame(&mut self) -> (Head, Vec<u8>) {
        loop {
            let (head, payload) = self.any_frame().await;
            let housekeeping = head.kind == kind::SETTINGS
                || (head.kind == kind::WINDOW_UPDATE && head.stream == 0);
            if !housekeeping {
                return (head, payload);
            }
        }
    }

    /// Reads a request: its HEADERS, then DATA up to `expect` bytes.
    pub(super) async fn request(&mut self, expect: usize) -> (u32, Vec<u8>, bool) {
        let (head, _) = self.frame().await;
        assert_eq!(head.kind, kind::HEADERS);
        let mut body = Vec::new();
        let mut ended = head.flags & flag::END_STREAM != 0;
        while body.len() < expect {
            let (data, payload) = self.frame().await;
            assert_eq!((data.kind, data.stream), (kind::DATA, head.stream));
            body.extend_from_slice(&payload);
            ended = data.flags & flag::END_STREAM != 0;
        }
        (head.stream, body, ended)
    }

    pub(super) async fn send(&mut self, out: BytesMut) {
        self.tcp.write_all(&out).await.unwrap();
    }

    /// Answers stream `id`: status 200, `message` as data, `grpc-status: 0`.
    pub(super) async fn answer(&mut self, id: u32, message: &[u8]) {
        let mut out = BytesMut::new();
        let mut block = vec![0x88]; // :status 200
        literal(&mut block, "content-type", "application/grpc");
        frame::put_headers(&mut out, &block, id, false, 16_384);
        frame::put_data(&mut out, id, message, false, 16_384);
        let mut trailers = Vec::new();
        literal(&mut trailers, "grpc-status", "0");
        frame::put_headers(&mut out, &trailers, id, true, 16_384);
        self.send(out).await;
    }
}

/// A header field as a literal without indexing, with a new name.
pub(super) fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0x00);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

pub(super) async fn listener() -> (TcpListener, H2Channel) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    let channel = H2Channel::new(authority, ConnectOptions::default());
    (listener, channel)
}

pub(super) fn request(body: impl Into<String>) -> http::Request<tonic::body::Body> {
    let mut request = http::Request::new(tonic::body::Body::new(body.into()));
    *request.uri_mut() = "/etcdserverpb.KV/Range".parse().unwrap();
    request
}

pub(super) type Answer = Result<http::Response<tonic::body::Body>, etcd_core::BoxError>;

/// Starts a call with `body` in a task of its own.
pub(super) fn spawn_call(
    channel: &H2Channel,
    body: impl Into<String>,
) -> tokio::task::JoinHandle<Answer> {
    let mut channel = channel.clone();
    let request = request(body);
    tokio::spawn(async move { channel.ready().await?.call(request).await })
}

/// A connection with one call on it: the channel, the call, the peer that has read the
/// call's one-byte request, and the call's stream.
pub(super) struct OneCall {
    pub(super) listener: TcpListener,
    pub(super) channel: H2Channel,
    pub(super) call: tokio::task::JoinHandle<Answer>,
    pub(super) peer: Peer,
    pub(super) id: u32,
}

pub(super) async fn one_call() -> OneCall {
    let (listener, channel) = listener().await;
    let call = spawn_call(&channel, "1");
    let mut peer = Peer::accept(&listener).await;
    let (id, _, _) = peer.request(1).await;
    OneCall {
        listener,
        channel,
        call,
        peer,
        id,
    }
}

/// Reads a whole response body: its data, and its trailers' grpc-status.
pub(super) async fn read_body(
    body: &mut tonic::body::Body,
) -> Result<(Vec<u8>, Option<String>), String> {
    let mut data = Vec::new();
    let mut status = None;
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| e.to_string())?;
        match frame.into_data() {
            Ok(piece) => data.extend_from_slice(&piece),
            Err(frame) => {
                let trailers = frame.into_trailers().unwrap();
                status = Some(trailers["grpc-status"].to_str().unwrap().to_owned());
            }
        }
    }
    Ok((data, status))
}

#[tokio::test]
async fn request_data_waits_for_the_window_and_the_answer_comes_back_whole() {
    let (listener, channel) = listener().await;
    let body = "x".repeat(100_000);
    let call = spawn_call(&channel, body);
    let mut peer = Peer::accept(&listener).await;
    // HTTP/2's initial window: 65,535 bytes, and not one more until the window grows.
    let (id, first, ended) = peer.request(65_535).await;
    assert_eq!((first.len(), ended), (65_535, false));
    let more = tokio::time::timeout(Duration::from_millis(200), peer.frame()).await;
    assert!(more.is_err(), "data beyond the window: {more:?}");
    let mut out = BytesMut::new();
    frame::put_window_update(&mut out, 0, 40_000);
    frame::put_window_update(&mut out, id, 40_000);
    peer.send(out).await;
    let mut rest = Vec::new();
    let mut ended = false;
    while !ended {
        let (head, payload) = peer.frame().await;
        assert_eq!(head.kind, kind::DATA);
        rest.extend_from_slice(&payload);
        ended = head.flags & flag::END_STREAM != 0;
    }
    assert_eq!(rest.len(), 100_000 - 65_535);
    peer.answer(id, b"answer").await;
    let mut response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let (data, status) = read_body(response.body_mut()).await.unwrap();
    assert_eq!((data, status), (b"answer".to_vec(), Some("0".to_owned())));
    // The connection serves the next call.
    let next = spawn_call(&channel, "y");
    let (id, body, ended) = peer.request(1).await;
    assert_eq!((body, ended), (b"y".to_vec(), true));
    peer.answer(id, b"again").await;
    let mut response = next.await.unwrap().unwrap();
    assert_eq!(read_body(response.body_mut()).await.unwrap().0, b"again");
}

#[tokio::test]
async fn goaway_refuses_later_streams_and_the_next_call_dials_again() {
    let OneCall {
        listener,
        channel,
        call: first,
        mut peer,
        id: one,
    } = one_call().await;
    let call = |body| spawn_call(&channel, body);
    let second = call("b");
    let (three, _, _) = peer.request(1).await;
    assert!(three > one);
    let mut out = BytesMut::new();
    frame::put_goaway(&mut out, one, code::NO_ERROR);
    peer.send(out).await;
    let refused = second.await.unwrap().unwrap_err().to_string();
    assert!(refused.contains("the request was not sent"), "{refused}");
    assert!(refused.contains("GOAWAY"), "{refused}");
    peer.answer(one, b"done").await;
    let mut response = first.await.unwrap().unwrap();
    assert_eq!(read_body(response.body_mut()).await.unwrap().0, b"done");
    // A new connection for the next call.
    let third = call("c");
    let mut again = Peer::accept(&listener).await;
    let (id, _, _) = again.request(1).await;
    assert_eq!(id, 1);
    again.answer(id, b"new").await;
    let mut response = third.await.unwrap().unwrap();
    assert_eq!(read_body(response.body_mut()).await.unwrap().0, b"new");
}

#[tokio::test]
async fn resets_fail_the_call_and_refused_streams_were_not_sent() {
    let OneCall {
        channel,
        call: refused,
        mut peer,
        id,
        ..
    } = one_call().await;
    let call = || spawn_call(&channel, "q");
    let mut out = BytesMut::new();
    frame::put_reset(&mut out, id, code::REFUSED_STREAM);
    peer.send(out).await;
    let error = refused.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("the request was not sent"), "{error}");
    assert!(error.contains("REFUSED_STREAM"), "{error}");

    // A reset after the answer's headers fails its body.
    let cancelled = call();
    let (id, _, _) = peer.request(1).await;
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &[0x88], id, false, 16_384);
    frame::put_reset(&mut out, id, 0x2);
    peer.send(out).await;
    let mut response = cancelled.await.unwrap().unwrap();
    let error = read_body(response.body_mut()).await.unwrap_err();
    assert!(error.contains("HTTP/2 stream failed"), "{error}");
    assert!(error.contains("INTERNAL_ERROR"), "{error}");
}

#[tokio::test]
async fn a_dropped_call_resets_its_stream() {
    let OneCall {
        call, mut peer, id, ..
    } = one_call().await;
    call.abort();
    let (head, payload) = peer.frame().await;
    assert_eq!((head.kind, head.stream), (kind::RST_STREAM, id));
    assert_eq!(payload, code::CANCEL.to_be_bytes());
}

#[tokio::test]
async fn a_port_that_hangs_up_at_once_acted_on_nothing() {
    let (listener, channel) = listener().await;
    // Every connection is closed at once (the call may find the first one closed
    // already and dial a second).
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
    });
    let error = spawn_call(&channel, "w")
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    server.abort();
    // Requests wait for the server's first bytes, so none was written.
    assert!(error.contains(crate::connector::SILENT_CLOSE), "{error}");
    assert!(error.contains("the request was not sent"), "{error}");
    assert!(error.contains("if the port serves TLS"), "{error}");
}

#[tokio::test]
async fn requests_wait_for_the_server_to_speak_so_a_silent_close_sent_none() {
    // A TCP proxy accepts connections itself: one that passes the client's bytes on and
    // then fails before the server's first bytes came back must not have passed a
    // request on, or the client could not tell whether it was acted on.
    let (listener, channel) = listener().await;
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut seen = RequestSeenByPeer::default();
        let mut buf = [0u8; 4096];
        // Everything the client sends within half a second: its preface, no request.
        let quiet = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                read = tcp.read(&mut buf) => {
                    let n = read.unwrap();
                    assert!(n > 0, "the client closed first");
                    seen.feed(&buf[..n]);
                }
                _ = &mut quiet => break,
            }
        }
        assert!(seen.bytes.len() >= frame::PREFACE.len(), "no preface");
        assert!(!seen.headers, "a request went out before the server spoke");
        drop(tcp);
    });
    let error = spawn_call(&channel, "w")
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    server.await.unwrap();
    assert!(error.contains("the request was not sent"), "{error}");
    assert!(error.contains(crate::connector::SILENT_CLOSE), "{error}");
}

#[tokio::test]
async fn a_request_read_then_a_close_without_an_answer_has_an_unknown_outcome() {
    let OneCall { call, peer, .. } = one_call().await;
    // The server read the request and hung up without answering.
    drop(peer);
    let error = call.await.unwrap().unwrap_err().to_string();
    assert!(!error.contains("the request was not sent"), "{error}");
}

/// The peer's view of the client's bytes: the preface, then frames; `headers` once a
/// whole HEADERS frame arrived.
#[derive(Default)]
struct RequestSeenByPeer {
    bytes: Vec<u8>,
    headers: bool,
}

impl RequestSeenByPeer {
    fn feed(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        let mut at = frame::PREFACE.len();
        while self.bytes.len() >= at + frame::HEADER_LEN {
            let head = Head::parse(&self.bytes[at..at + frame::HEADER_LEN]);
            if self.bytes.len() < at + frame::HEADER_LEN + head.len {
                return;
            }
            self.headers |= head.kind == kind::HEADERS;
            at += frame::HEADER_LEN + head.len;
        }
    }
}

#[tokio::test]
async fn pings_are_answered_and_big_answers_are_split_over_frames() {
    let OneCall {
        call, mut peer, id, ..
    } = one_call().await;
    let mut out = BytesMut::new();
    frame::put_ping(&mut out, *b"12345678", false);
    peer.send(out).await;
    let (head, payload) = peer.frame().await;
    assert_eq!((head.kind, head.flags), (kind::PING, flag::ACK));
    assert_eq!(payload, b"12345678");
    let big = Bytes::from(vec![7u8; 200_000]);
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &[0x88], id, false, 16_384);
    frame::put_data(&mut out, id, &big, true, 16_384);
    peer.send(out).await;
    let mut response = call.await.unwrap().unwrap();
    let (data, status) = read_body(response.body_mut()).await.unwrap();
    assert_eq!((data.len(), status), (200_000, None));
}

#[tokio::test]
async fn unread_data_of_dropped_calls_goes_back_to_the_connection_window() {
    let OneCall {
        channel,
        call: first,
        mut peer,
        id: one,
        ..
    } = one_call().await;
    let second = spawn_call(&channel, "b");
    let (three, _, _) = peer.request(1).await;
    // 3 MB each, within the streams' 4 MiB windows, not read by anybody.
    let chunk = vec![1u8; 3_000_000];
    for id in [one, three] {
        let mut out = BytesMut::new();
        frame::put_headers(&mut out, &[0x88], id, false, 16_384);
        frame::put_data(&mut out, id, &chunk, false, 16_384);
        peer.send(out).await;
    }
    let responses = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    // Received but unread: the connection window is not handed back yet.
    let not_settings = async {
        loop {
            let (head, payload) = peer.any_frame().await;
            if head.kind != kind::SETTINGS {
                return (head, payload);
            }
        }
    };
    let early = tokio::time::timeout(Duration::from_millis(200), not_settings).await;
    assert!(
        early.is_err(),
        "a frame before the calls were dropped: {early:?}"
    );
    drop(responses);
    let mut resets = Vec::new();
    let mut increments = Vec::new();
    while resets.len() < 2 || increments.is_empty() {
        let (head, payload) = peer.any_frame().await;
        match head.kind {
            kind::RST_STREAM => resets.push(head.stream),
            kind::WINDOW_UPDATE if head.stream == 0 => {
                increments.push(u32::from_be_bytes(payload[..4].try_into().unwrap()));
            }
            other => panic!("unexpected frame type {other}"),
        }
    }
    assert_eq!(increments, vec![6_000_000]);
    resets.sort_unstable();
    assert_eq!(resets, vec![one, three]);
}
