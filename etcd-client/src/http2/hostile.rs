//! The channel against a hostile or broken peer: every test here plays a server that
//! breaks HTTP/2 (or is no HTTP/2 server at all) on purpose, and checks that the call ends
//! with a typed error instead of hanging, that nothing panics or grows without bound, that
//! the server is told (RST_STREAM or GOAWAY with the right code), and that the channel
//! serves the next call.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Service, ServiceExt};

use super::conn::Opening;
use super::frame::{self, Head, code, flag, kind, setting};
use super::limits::{MAX_CONTINUATIONS, MAX_IDLE_FRAMES, MAX_PENDING_WRITE, MAX_SEND_BUFFER};
use super::tests::{OneCall, Peer, listener, literal, one_call, read_body, spawn_call};

/// How long a test waits for what must happen at once.
const PROMPTLY: Duration = Duration::from_secs(2);

async fn promptly<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PROMPTLY, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PROMPTLY:?}"))
}

/// A frame with any header and payload, as a hostile server writes it.
fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    frame::put_head(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

/// A response head: `:status 200` and gRPC's content type.
fn ok_head() -> Vec<u8> {
    let mut block = vec![0x88];
    literal(&mut block, "content-type", "application/grpc");
    block
}

impl Peer {
    /// The next frame of `kind`, skipping any others.
    async fn next_of(&mut self, wanted: u8) -> (Head, Vec<u8>) {
        loop {
            let (head, payload) = self.any_frame().await;
            if head.kind == wanted {
                return (head, payload);
            }
        }
    }

    /// Expects the client to give up the connection with GOAWAY(`expected`), naming no
    /// stream of ours (a client acts on none).
    async fn expect_goaway(&mut self, expected: u32) {
        let (_, payload) = promptly("GOAWAY", self.next_of(kind::GOAWAY)).await;
        let last = u32::from_be_bytes(payload[..4].try_into().unwrap());
        let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
        assert_eq!(
            (code::name(code), last),
            (code::name(expected), 0),
            "GOAWAY's code and last stream"
        );
    }

    /// Expects RST_STREAM(`expected`) on stream `id`.
    async fn expect_reset(&mut self, id: u32, expected: u32) {
        let (head, payload) = promptly("RST_STREAM", self.next_of(kind::RST_STREAM)).await;
        let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
        assert_eq!((head.stream, code::name(code)), (id, code::name(expected)));
    }
}

/// The error a call's response or body ends with.
async fn call_error(call: tokio::task::JoinHandle<super::tests::Answer>) -> String {
    match promptly("the call's end", call).await.unwrap() {
        Err(error) => error.to_string(),
        Ok(mut response) => promptly("the body's end", read_body(response.body_mut()))
            .await
            .expect_err("the body should fail"),
    }
}

/// After a stream error the connection still serves calls.
async fn next_call_works(channel: &super::H2Channel, peer: &mut Peer) {
    let next = spawn_call(channel, "n");
    let (id, _, _) = promptly("the next request", peer.request(1)).await;
    peer.answer(id, b"fine").await;
    let mut response = promptly("the next answer", next).await.unwrap().unwrap();
    assert_eq!(read_body(response.body_mut()).await.unwrap().0, b"fine");
}

/// After the connection ended the next call dials a new one, and it works.
async fn a_fresh_connection_works(listener: &tokio::net::TcpListener, channel: &super::H2Channel) {
    let next = spawn_call(channel, "n");
    let mut fresh = promptly("a new connection", Peer::accept(listener)).await;
    let (id, _, _) = fresh.request(1).await;
    fresh.answer(id, b"fresh").await;
    let mut response = promptly("the answer", next).await.unwrap().unwrap();
    assert_eq!(read_body(response.body_mut()).await.unwrap().0, b"fresh");
}

/// A header block of 25,000 distinct names: more than a HeaderMap holds (it panicked on
/// append).
fn header_name_flood(id: u32) -> BytesMut {
    let mut block = vec![0x88];
    for i in 0..25_000 {
        literal(&mut block, &format!("x-{i}"), "");
    }
    assert!(block.len() > 200_000);
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &block, id, false, 16_384);
    out
}

/// A 4,000-byte entry in the dynamic table, then ~1 MB of references to it (index 62):
/// 4 GB decoded without a limit.
fn table_entry_referenced_a_million_times(id: u32) -> BytesMut {
    let mut block = vec![0x88, 0x40, 0x01, b'x', 0x7f];
    // The value's length, 4000, as a 7-bit prefix integer (127 + 3873).
    block.extend_from_slice(&[0xa2, 0x1e]);
    block.extend_from_slice(&[b'v'; 4000]);
    block.resize(block.len() + 1_000_000, 0x80 | 62);
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &block, id, false, 16_384);
    out
}

fn data_before_the_head(id: u32) -> BytesMut {
    let mut out = BytesMut::new();
    frame::put_data(&mut out, id, b"early", true, 16_384);
    out
}

/// One byte more than our 4 MiB stream window allows, never read.
fn data_past_the_stream_window(id: u32) -> BytesMut {
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &ok_head(), id, false, 16_384);
    frame::put_data(&mut out, id, &vec![0u8; (4 << 20) + 1], false, 1 << 20);
    out
}

fn trailers_without_end_stream(id: u32) -> BytesMut {
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &ok_head(), id, false, 16_384);
    frame::put_data(&mut out, id, b"message", false, 16_384);
    let mut trailers = Vec::new();
    literal(&mut trailers, "grpc-status", "0");
    frame::put_headers(&mut out, &trailers, id, false, 16_384);
    out
}

fn window_update(id: u32, increment: u32) -> BytesMut {
    raw(kind::WINDOW_UPDATE, 0, id, &increment.to_be_bytes())
}

/// A fault of one stream's: what the server sends on stream `id`, the RST_STREAM code the
/// client must answer with, and what its call's error must say.
type StreamFault = (fn(u32) -> BytesMut, u32, &'static str);

#[tokio::test]
async fn stream_errors_fail_their_call_and_reset_only_their_stream() {
    let cases: [StreamFault; 7] = [
        (
            header_name_flood,
            code::PROTOCOL_ERROR,
            "more header fields than we allow",
        ),
        (
            table_entry_referenced_a_million_times,
            code::PROTOCOL_ERROR,
            "header list is over the size",
        ),
        (
            data_before_the_head,
            code::PROTOCOL_ERROR,
            "DATA before the response's headers",
        ),
        (
            data_past_the_stream_window,
            code::FLOW_CONTROL_ERROR,
            "more data than the stream's window",
        ),
        (
            trailers_without_end_stream,
            code::PROTOCOL_ERROR,
            "trailers that do not end the stream",
        ),
        (
            |id| window_update(id, 0),
            code::PROTOCOL_ERROR,
            "a WINDOW_UPDATE of 0",
        ),
        (
            |id| window_update(id, 0x7fff_ffff),
            code::FLOW_CONTROL_ERROR,
            "the stream's window overflowed",
        ),
    ];
    for (fault, expected, says) in cases {
        let OneCall {
            channel,
            call,
            mut peer,
            id,
            ..
        } = one_call().await;
        // The reset comes before the body is read (reading it would open the window).
        peer.send(fault(id)).await;
        peer.expect_reset(id, expected).await;
        let error = call_error(call).await;
        assert!(
            error.contains(says) && error.contains("stream reset"),
            "{says}: {error}"
        );
        next_call_works(&channel, &mut peer).await;
    }
}

#[tokio::test]
async fn informational_heads_are_skipped() {
    let OneCall {
        call, mut peer, id, ..
    } = one_call().await;
    // 100 Continue first: the response's head is the 200 after it.
    let mut out = BytesMut::new();
    let mut informational = Vec::new();
    literal(&mut informational, ":status", "100");
    frame::put_headers(&mut out, &informational, id, false, 16_384);
    peer.send(out).await;
    peer.answer(id, b"after 100").await;
    let mut response = promptly("the answer", call).await.unwrap().unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let (data, _) = read_body(response.body_mut()).await.unwrap();
    assert_eq!(data, b"after 100");
}

#[tokio::test]
async fn data_past_the_connection_window_closes_the_connection() {
    let OneCall {
        channel,
        call,
        mut peer,
        id,
        listener,
    } = one_call().await;
    let mut calls = vec![(call, id)];
    for body in ["b", "c"] {
        let call = spawn_call(&channel, body);
        let (id, _, _) = peer.request(1).await;
        calls.push((call, id));
    }
    // 3 MiB on each of three streams, never read: 9 MiB against a window of 8.
    for (_, id) in &calls {
        let mut out = BytesMut::new();
        frame::put_headers(&mut out, &ok_head(), *id, false, 16_384);
        frame::put_data(&mut out, *id, &vec![0u8; 3 << 20], false, 1 << 20);
        peer.send(out).await;
    }
    peer.expect_goaway(code::FLOW_CONTROL_ERROR).await;
    for (call, _) in calls {
        let error = call_error(call).await;
        assert!(error.contains("connection's window"), "{error}");
    }
    // The next call dials again.
    a_fresh_connection_works(&listener, &channel).await;
}

#[tokio::test]
async fn tiny_data_frames_are_gathered_and_empty_ones_are_limited() {
    let OneCall {
        channel,
        call,
        mut peer,
        id,
        ..
    } = one_call().await;
    // 100,000 one-byte frames: one allocation each before they were gathered.
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &ok_head(), id, false, 16_384);
    for _ in 0..100_000 {
        frame::put_data(&mut out, id, b"z", false, 16_384);
    }
    peer.send(out).await;
    let mut response = promptly("the answer", call).await.unwrap().unwrap();
    let conn = channel.conn().unwrap();
    // The answer to a PING sent after them comes once every frame before it was taken in.
    let mut probe = BytesMut::new();
    frame::put_ping(&mut probe, *b"progress", false);
    peer.send(probe).await;
    let (head, payload) = promptly("the PING's answer", peer.next_of(kind::PING)).await;
    assert_eq!((head.flags, &payload[..]), (flag::ACK, &b"progress"[..]));
    let pieces = conn.received_pieces(id).unwrap();
    assert!(pieces <= 2, "100,000 bytes held in {pieces} buffers");
    let mut out = BytesMut::new();
    frame::put_data(&mut out, id, b"", true, 16_384);
    peer.send(out).await;
    let (data, _) = read_body(response.body_mut()).await.unwrap();
    assert_eq!(data, vec![b'z'; 100_000]);

    // Empty DATA frames carry nothing: a flood of them closes the connection.
    let call = spawn_call(&channel, "e");
    let (id, _, _) = peer.request(1).await;
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &ok_head(), id, false, 16_384);
    for _ in 0..=MAX_IDLE_FRAMES {
        frame::put_data(&mut out, id, b"", false, 16_384);
    }
    peer.send(out).await;
    peer.expect_goaway(code::ENHANCE_YOUR_CALM).await;
    let error = call_error(call).await;
    assert!(error.contains("frames that carry nothing"), "{error}");
}

#[tokio::test]
async fn pings_from_a_peer_that_does_not_read_stop_the_reading() {
    let OneCall {
        channel,
        call,
        peer,
        ..
    } = one_call().await;
    let (mut reader, mut writer) = peer.tcp.into_split();
    let conn = channel.conn().unwrap();
    // PINGs, 64 MiB of them, and the answers never read.
    let mut pings = BytesMut::new();
    for _ in 0..(1 << 16) {
        frame::put_ping(&mut pings, *b"floodfld", false);
    }
    let pings = pings.freeze();
    let written = Arc::new(AtomicUsize::new(0));
    let flood = tokio::spawn({
        let written = written.clone();
        async move {
            for _ in 0..60 {
                if writer.write_all(&pings).await.is_err() {
                    return;
                }
                written.fetch_add(pings.len(), Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (owed, sent) = (conn.pending_write(), written.load(Ordering::Relaxed));
    assert!(
        owed < 2 * MAX_PENDING_WRITE,
        "{owed} bytes of answers queued for a peer that sent {sent}"
    );
    assert!(sent < 48 << 20, "the client kept reading: {sent} bytes");
    // Once the peer reads its answers, the connection goes on: the flood is answered in
    // full, then the call's answer arrives.
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        while reader.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    promptly("the end of the flood", async {
        while !flood.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(written.load(Ordering::Relaxed), 60 * (1 << 16) * 17);
    drain.abort();
    drop(call);
}

/// A request body that always has another 10,000-byte message, counting what it gave.
struct Endless(Arc<AtomicUsize>);

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        self.0.fetch_add(10_000, Ordering::Relaxed);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![
            1u8;
            10_000
        ])))))
    }
}

#[tokio::test]
async fn a_streaming_request_waits_for_room_while_the_window_is_closed() {
    let (listener, mut channel) = listener().await;
    let given = Arc::new(AtomicUsize::new(0));
    let mut request = http::Request::new(tonic::body::Body::new(Endless(given.clone())));
    *request.uri_mut() = "/etcdserverpb.Watch/Watch".parse().unwrap();
    let call = tokio::spawn(async move { channel.ready().await?.call(request).await });
    let mut peer = Peer::accept(&listener).await;
    let mut out = BytesMut::new();
    frame::put_headers(&mut out, &ok_head(), 1, false, 16_384);
    peer.send(out).await;
    let _response = promptly("the head", call).await.unwrap().unwrap();
    // The peer reads and never opens the window past HTTP/2's 65,535 bytes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken = given.load(Ordering::Relaxed);
    assert!(
        taken <= 65_535 + MAX_SEND_BUFFER + 2 * 10_000,
        "{taken} bytes taken from the request body"
    );
}

/// Counts how often it was woken.
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn callers_waiting_for_a_stream_get_one_each_first_come_first() {
    let OneCall {
        call,
        mut peer,
        channel,
        id,
        ..
    } = one_call().await;
    // The client's requests wait for the server's first SETTINGS, so its acknowledgement
    // follows the request.
    peer.next_of(kind::SETTINGS).await;
    let mut out = BytesMut::new();
    frame::put_settings(&mut out, &[(setting::MAX_CONCURRENT_STREAMS, 1)]);
    peer.send(out).await;
    peer.next_of(kind::SETTINGS).await; // its acknowledgement
    let conn = channel.conn().unwrap();
    let headers = http::HeaderMap::new();
    let opening = || Opening {
        path: "/etcdserverpb.KV/Range",
        headers: &headers,
        data: Some(Bytes::from_static(b"w")),
        end: true,
    };
    // 100 callers wait for the one stream.
    let mut waiting: Vec<_> = (0..100)
        .map(|_| {
            let counter = Arc::new(Counting(AtomicUsize::new(0)));
            let mut ticket = None;
            let waker = Waker::from(counter.clone());
            let polled = conn.poll_open(
                &mut Context::from_waker(&waker),
                &mut opening(),
                &mut ticket,
            );
            assert!(polled.is_pending());
            (counter, ticket.unwrap(), waker)
        })
        .collect();
    // The stream ends: one caller is woken, not a hundred.
    peer.answer(id, b"one").await;
    let mut response = promptly("the answer", call).await.unwrap().unwrap();
    read_body(response.body_mut()).await.unwrap();
    drop(response);
    let woken: Vec<usize> = waiting
        .iter()
        .map(|(c, ..)| c.0.load(Ordering::Relaxed))
        .collect();
    assert_eq!(woken.iter().sum::<usize>(), 1, "{woken:?}");
    assert_eq!(woken[0], 1);
    // A newcomer does not jump the queue.
    let noop = Waker::noop();
    let mut newcomer = None;
    let polled = conn.poll_open(
        &mut Context::from_waker(noop),
        &mut opening(),
        &mut newcomer,
    );
    assert!(polled.is_pending(), "the newcomer took the stream");
    conn.leave_queue(newcomer.unwrap());
    // The first caller gives up its turn: the second is woken and gets the stream.
    let (_, first, _) = waiting.remove(0);
    conn.leave_queue(first);
    let (counter, ticket, waker) = &waiting[0];
    assert_eq!(counter.0.load(Ordering::Relaxed), 1);
    let mut ticket = Some(*ticket);
    let polled = conn.poll_open(&mut Context::from_waker(waker), &mut opening(), &mut ticket);
    assert!(
        matches!(polled, Poll::Ready(Ok(_))),
        "the second caller got no stream"
    );
    assert_eq!(ticket, None);
    for (_, ticket, _) in waiting.drain(1..) {
        conn.leave_queue(ticket);
    }
}

#[tokio::test]
async fn streams_of_a_connection_whose_runtime_ended_fail_at_once() {
    let (listener, channel) = listener().await;
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn({
        let channel = channel.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            // Dials on this runtime, then waits to be stopped (the call is never answered).
            runtime.spawn(spawn_call_detached(channel));
            runtime.block_on(async {
                opened_tx.send(()).unwrap();
                tokio::task::spawn_blocking(move || stop_rx.recv())
                    .await
                    .ok();
            });
        }
    });
    let mut peer = Peer::accept(&listener).await;
    peer.request(1).await;
    opened_rx.recv().unwrap();
    // A call from this runtime on that connection.
    let waiting = spawn_call(&channel, "w");
    peer.request(1).await;
    stop_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || other.join().unwrap())
        .await
        .unwrap();
    let error = call_error(waiting).await;
    assert!(error.contains("runtime shut down"), "{error}");
    a_fresh_connection_works(&listener, &channel).await;
}

#[tokio::test]
async fn a_panic_of_the_connection_task_fails_its_streams_and_the_next_call_dials_again() {
    let OneCall {
        listener,
        channel,
        call,
        mut peer,
        ..
    } = one_call().await;
    peer.send(raw(super::conn::PANIC_FOR_TESTS, 0, 0, &[]))
        .await;
    let error = call_error(call).await;
    assert!(error.contains("the connection's task panicked"), "{error}");
    a_fresh_connection_works(&listener, &channel).await;
}

#[tokio::test]
async fn a_dropped_channel_closes_its_connection_once_idle() {
    let OneCall {
        channel,
        call,
        mut peer,
        id,
        ..
    } = one_call().await;
    peer.answer(id, b"a").await;
    let mut response = promptly("the answer", call).await.unwrap().unwrap();
    drop(channel);
    // A response still being read keeps the connection.
    assert_eq!(read_body(response.body_mut()).await.unwrap().0, b"a");
    drop(response);
    promptly("the end of the connection", async {
        let mut buf = [0u8; 256];
        while peer.tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
}

async fn spawn_call_detached(mut channel: super::H2Channel) {
    let _ = channel
        .ready()
        .await
        .unwrap()
        .call(super::tests::request("r"))
        .await;
}

#[tokio::test]
async fn an_http1_server_fails_the_call_at_once_as_never_sent() {
    let (listener, channel) = listener().await;
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = tcp.read(&mut buf).await;
        let answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        tcp.write_all(answer).await.unwrap();
        // Keeps the connection open, as a lingering HTTP/1.1 server may.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let error = call_error(spawn_call(&channel, "h")).await;
    server.abort();
    assert!(error.contains("the request was not sent"), "{error}");
    assert!(error.contains("HTTP/1.1 400 Bad Request"), "{error}");
    assert!(error.contains("2380"), "{error}");
}

#[tokio::test]
async fn a_server_that_does_not_begin_with_settings_is_not_http2() {
    let (listener, channel) = listener().await;
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = tcp.read(&mut buf).await;
        tcp.write_all(&raw(kind::PING, 0, 0, b"notfirst"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let error = call_error(spawn_call(&channel, "s")).await;
    server.abort();
    assert!(error.contains("the request was not sent"), "{error}");
    assert!(
        error.contains("did not begin with HTTP/2 SETTINGS"),
        "{error}"
    );
}

/// Frames that break HTTP/2's rules for the whole connection, and the GOAWAY code each
/// must bring. The call on stream 1 is open while they arrive.
fn connection_errors() -> Vec<(&'static str, BytesMut, u32)> {
    let window = window_update;
    let settings = |entries: &[(u16, u32)]| {
        let mut out = BytesMut::new();
        frame::put_settings(&mut out, entries);
        out
    };
    // The request's one byte left the stream 65,534 bytes of window: now exactly 2^31-1.
    let mut overflow_by_settings = window(1, (1 << 31) - 1 - 65_534);
    overflow_by_settings.extend_from_slice(&settings(&[(setting::INITIAL_WINDOW_SIZE, 65_536)]));
    let mut continuations = raw(kind::HEADERS, 0, 1, &[0x88]);
    for _ in 0..=MAX_CONTINUATIONS {
        continuations.extend_from_slice(&raw(kind::CONTINUATION, 0, 1, &[]));
    }
    vec![
        (
            "connection window over 2^31-1",
            window(0, (1 << 31) - 1),
            code::FLOW_CONTROL_ERROR,
        ),
        (
            "stream window over 2^31-1 by SETTINGS",
            overflow_by_settings,
            code::FLOW_CONTROL_ERROR,
        ),
        (
            "WINDOW_UPDATE of 0 on the connection",
            window(0, 0),
            code::PROTOCOL_ERROR,
        ),
        (
            "RST_STREAM of 5 bytes",
            raw(kind::RST_STREAM, 0, 1, &[0; 5]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "WINDOW_UPDATE of 5 bytes",
            raw(kind::WINDOW_UPDATE, 0, 1, &[0, 0, 0, 1, 0]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "SETTINGS ACK with a payload",
            raw(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "PING on a stream",
            raw(kind::PING, 0, 1, &[0; 8]),
            code::PROTOCOL_ERROR,
        ),
        (
            "GOAWAY on a stream",
            raw(kind::GOAWAY, 0, 1, &[0; 8]),
            code::PROTOCOL_ERROR,
        ),
        (
            "GOAWAY of 4 bytes",
            raw(kind::GOAWAY, 0, 0, &[0; 4]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "HEADERS on a stream never opened",
            raw(kind::HEADERS, flag::END_HEADERS, 3, &[0x88]),
            code::PROTOCOL_ERROR,
        ),
        (
            "HEADERS on a server stream",
            raw(kind::HEADERS, flag::END_HEADERS, 2, &[0x88]),
            code::PROTOCOL_ERROR,
        ),
        (
            "DATA on stream 0",
            raw(kind::DATA, 0, 0, b"x"),
            code::PROTOCOL_ERROR,
        ),
        (
            "RST_STREAM on stream 0",
            raw(kind::RST_STREAM, 0, 0, &[0; 4]),
            code::PROTOCOL_ERROR,
        ),
        (
            "PRIORITY on stream 0",
            raw(kind::PRIORITY, 0, 0, &[0; 5]),
            code::PROTOCOL_ERROR,
        ),
        (
            "WINDOW_UPDATE on a stream never opened",
            window(5, 1),
            code::PROTOCOL_ERROR,
        ),
        (
            "ENABLE_PUSH from a server",
            settings(&[(setting::ENABLE_PUSH, 1)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "a flood of empty CONTINUATION frames",
            continuations,
            code::ENHANCE_YOUR_CALM,
        ),
        (
            "PUSH_PROMISE",
            raw(
                kind::PUSH_PROMISE,
                flag::END_HEADERS,
                1,
                &[0, 0, 0, 2, 0x82],
            ),
            code::PROTOCOL_ERROR,
        ),
    ]
}

#[tokio::test]
async fn connection_errors_close_the_connection_with_their_code() {
    for (what, frames, expected) in connection_errors() {
        let OneCall {
            listener,
            channel,
            call,
            mut peer,
            ..
        } = one_call().await;
        peer.send(frames).await;
        tokio::time::timeout(PROMPTLY, peer.expect_goaway(expected))
            .await
            .unwrap_or_else(|_| panic!("{what}: no GOAWAY"));
        let error = call_error(call).await;
        assert!(error.contains("HTTP/2 protocol error"), "{what}: {error}");
        // A new connection for the next call.
        a_fresh_connection_works(&listener, &channel).await;
    }
}
