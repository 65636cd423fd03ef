//! Fuzz targets for whole connections (issue #13): a `Client` of the public API, over a
//! loopback socket, against a hostile scripted HTTP/2 server.
//!
//! Each case builds a fresh client (`request_timeout` 1 s, no retries) and a server that
//! accepts its connection, reads the preface and the request, and writes a generated
//! sequence: a valid response (SETTINGS, HEADERS encoded by an independent HPACK encoder,
//! DATA with the gRPC prefix, trailers) with offences mixed in: unknown frame types,
//! PRIORITY, PUSH_PROMISE, CONTINUATION without HEADERS and floods of them, bad padding,
//! huge lengths, wrong stream IDs and stream 0, WINDOW_UPDATE of 0 or overflowing,
//! RST_STREAM, GOAWAY, PING and SETTINGS floods, odd SETTINGS, header blocks of tens of
//! thousands of names, DATA before HEADERS, a DATA flood, garbage header blocks, dropped,
//! repeated and swapped frames, a truncated last frame; then it closes or stalls.
//! `fuzz_connection_raw` sends a valid SETTINGS and then arbitrary bytes (random, or a
//! valid response mutated).
//!
//! Invariants, after every case:
//! - the call ends (a value or a typed error) within 10 s (its timeout is 1 s), and before
//!   its timeout when the server read the request, wrote a short script (at most 1 MiB)
//!   and closed the connection within 500 ms of the call's start;
//! - nothing panicked, in any task (a panic hook counts panics: tokio swallows those of
//!   spawned tasks);
//! - memory stayed bounded: at most 64 MiB more allocated at any time during the case than
//!   before it, and at most 64 MiB allocated once it is over (a counting global allocator);
//! - an unoffending script's response is decoded exactly;
//! - the same client then serves a Range correctly from a well-behaved server on the same
//!   port (one attempt may fail on the connection the hostile server just closed), and
//!   once dropped closes that connection within 2 s (else each case leaks a connection;
//!   `ETCD_FUZZ_SKIP="kept open"` leaves this check out).
//!
//! A failure prints the case's seed, the offences, the frames, and the smallest subset of
//! the frames found that still fails the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_fuzz::alloc::Counting;
use etcd_fuzz::hpack::{BlockEncoder, Field};
use etcd_fuzz::{Case, Rng, clip, hex, minimize, mutate, run, skipped};
use etcd3::RetryPolicy;
use etcd3::proto::etcdserverpb as pb;
use etcd3::proto::mvccpb;
use etcd3::{Client, Error, Http2Transport};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

#[global_allocator]
static ALLOCATED: Counting = Counting::new();

/// Panics seen anywhere in the process (see [`count_panics`]).
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// How much more memory a case may hold at once than before it.
const MEMORY_LIMIT: usize = 64 << 20;
/// How long a call may take (its timeout is 1 s).
const CALL_LIMIT: Duration = Duration::from_secs(10);
/// The client's request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// A server that closed the connection this soon after the call started must have ended it
/// before its timeout.
const CLOSED_EARLY: Duration = Duration::from_millis(500);
/// The client's connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
mod kind {
    pub(crate) const DATA: u8 = 0x0;
    pub(crate) const HEADERS: u8 = 0x1;
    pub(crate) const PRIORITY: u8 = 0x2;
    pub(crate) const RST_STREAM: u8 = 0x3;
    pub(crate) const SETTINGS: u8 = 0x4;
    pub(crate) const PUSH_PROMISE: u8 = 0x5;
    pub(crate) const PING: u8 = 0x6;
    pub(crate) const GOAWAY: u8 = 0x7;
    pub(crate) const WINDOW_UPDATE: u8 = 0x8;
    pub(crate) const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
mod flag {
    pub(crate) const END_STREAM: u8 = 0x1;
    pub(crate) const ACK: u8 = 0x1;
    pub(crate) const END_HEADERS: u8 = 0x4;
    pub(crate) const PADDED: u8 = 0x8;
    pub(crate) const PRIORITY: u8 = 0x20;
}

/// Installs (once) a panic hook that counts panics, then prints them as before.
fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// A frame's stream: the request's (known once it is read), or a fixed ID.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sid {
    Request,
    /// The request's ID plus this (the next client stream, an even ID, …).
    After(u32),
    Fixed(u32),
}

/// One step of the server's script.
#[derive(Clone)]
enum Item {
    Frame {
        kind: u8,
        flags: u8,
        stream: Sid,
        payload: Vec<u8>,
    },
    /// The same frame `count` times.
    Flood {
        kind: u8,
        flags: u8,
        stream: Sid,
        payload: Vec<u8>,
        count: usize,
    },
    /// A frame head announcing `len` bytes, then only `sent` bytes of payload.
    Truncated {
        kind: u8,
        len: usize,
        sent: usize,
    },
    /// Bytes as they are.
    Raw(Vec<u8>),
    /// Wait until the request's HEADERS has been read (at most 3 s).
    WaitRequest,
    /// Stop reading what the client sends (its writes back up).
    StopReading,
    Pause(u64),
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let payload = |p: &[u8]| match p.len() {
            0..=48 => hex(p),
            n => format!("{}…({n} bytes)", hex(&p[..48])),
        };
        match self {
            Item::Frame {
                kind,
                flags,
                stream,
                payload: p,
            } => write!(
                f,
                "{}[flags {flags:#x}, {stream:?}] {}",
                kind_name(*kind),
                payload(p)
            ),
            Item::Flood {
                kind,
                flags,
                stream,
                payload: p,
                count,
            } => write!(
                f,
                "{count} x {}[flags {flags:#x}, {stream:?}] {}",
                kind_name(*kind),
                payload(p)
            ),
            Item::Truncated { kind, len, sent } => {
                write!(f, "{} head of {len} bytes, {sent} sent", kind_name(*kind))
            }
            Item::Raw(bytes) => write!(f, "raw {}", payload(bytes)),
            Item::WaitRequest => write!(f, "wait for the request"),
            Item::StopReading => write!(f, "stop reading"),
            Item::Pause(ms) => write!(f, "pause {ms} ms"),
        }
    }
}

fn kind_name(kind: u8) -> String {
    let names = [
        "DATA",
        "HEADERS",
        "PRIORITY",
        "RST_STREAM",
        "SETTINGS",
        "PUSH_PROMISE",
        "PING",
        "GOAWAY",
        "WINDOW_UPDATE",
        "CONTINUATION",
    ];
    names
        .get(usize::from(kind))
        .map_or_else(|| format!("type {kind:#x}"), |n| (*n).to_owned())
}

/// How the server ends.
#[derive(Clone, Copy, Debug)]
enum End {
    Close,
    /// Keeps the connection open until the call is over.
    Stall,
}

/// What the server does to one connection, and what the call must give.
#[derive(Clone, Debug)]
struct Script {
    items: Vec<Item>,
    end: End,
    /// The call's value when the script commits no offence.
    clean: Option<pb::RangeResponse>,
    offences: Vec<&'static str>,
}

/// Appends a frame.
fn put_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

fn frame(kind: u8, flags: u8, stream: Sid, payload: Vec<u8>) -> Item {
    Item::Frame {
        kind,
        flags,
        stream,
        payload,
    }
}

/// SETTINGS with `settings`.
fn settings(settings: &[(u16, u32)]) -> Item {
    let mut payload = Vec::new();
    for (id, value) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(kind::SETTINGS, 0, Sid::Fixed(0), payload)
}

/// A header block as HEADERS and CONTINUATION frames of at most `max` bytes each.
fn headers(block: &[u8], stream: Sid, end_stream: bool, max: usize) -> Vec<Item> {
    let mut frames = Vec::new();
    let mut chunks = block.chunks(max.max(1)).peekable();
    let mut first = true;
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        let (kind, mut flags) = if first {
            (kind::HEADERS, if end_stream { flag::END_STREAM } else { 0 })
        } else {
            (kind::CONTINUATION, 0)
        };
        if last {
            flags |= flag::END_HEADERS;
        }
        frames.push(frame(kind, flags, stream, chunk.to_vec()));
        first = false;
        if last {
            return frames;
        }
    }
}

/// The gRPC body of `message`: its prefix and itself.
fn grpc_body(message: &impl Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    body.extend_from_slice(&encoded);
    body
}

fn fields(list: &[(&str, &str)]) -> Vec<Field> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// A small range response (its frames stay within the default 65,535-byte windows).
fn range_response(rng: &mut Rng) -> pb::RangeResponse {
    let count = rng.size(4);
    let kvs = (0..count)
        .map(|_| {
            let max = if rng.one_in(8) { 8000 } else { 100 };
            let (key_len, value_len) = (rng.between(1, 32), rng.size(max));
            mvccpb::KeyValue {
                key: rng.bytes(key_len).into(),
                value: rng.bytes(value_len).into(),
                create_revision: rng.edgy(63) as i64,
                mod_revision: rng.edgy(63) as i64,
                version: rng.edgy(63) as i64,
                lease: 0,
            }
        })
        .collect();
    pb::RangeResponse {
        header: Some(pb::ResponseHeader {
            revision: rng.edgy(63) as i64,
            ..Default::default()
        }),
        kvs,
        more: rng.bool(),
        count: count as i64,
    }
}

/// A valid response to the request: server SETTINGS, the client's SETTINGS acknowledged,
/// then HEADERS, DATA and trailers, each split and padded at random.
fn valid_response(rng: &mut Rng, encoder: &mut BlockEncoder, message: &impl Message) -> Vec<Item> {
    let mut items = vec![
        settings(&[]),
        frame(kind::SETTINGS, flag::ACK, Sid::Fixed(0), vec![]),
    ];
    items.push(Item::WaitRequest);
    let head = fields(&[(":status", "200"), ("content-type", "application/grpc")]);
    let block = encoder.encode(rng, &head);
    let max = if rng.bool() {
        16_384
    } else {
        rng.between(1, 8)
    };
    let mut head = headers(&block, Sid::Request, false, max);
    if let Some(Item::Frame { flags, payload, .. }) = head.first_mut()
        && rng.one_in(4)
    {
        // A priority (stream dependency and weight) before the block.
        *flags |= flag::PRIORITY;
        payload.splice(0..0, [0, 0, 0, 0, 16]);
    }
    items.extend(head);
    if rng.one_in(4) {
        items.push(Item::Pause(rng.below(20) as u64));
    }
    let body = grpc_body(message);
    let mut rest = &body[..];
    while !rest.is_empty() {
        let take = rng.between(1, 16_384).min(rest.len());
        let mut payload = rest[..take].to_vec();
        let mut flags = 0;
        if rng.one_in(4) {
            // Padding: a length byte, then that many zeros.
            let pad = rng.below(32);
            payload.insert(0, pad as u8);
            payload.extend(std::iter::repeat_n(0, pad));
            flags |= flag::PADDED;
        }
        items.push(frame(kind::DATA, flags, Sid::Request, payload));
        rest = &rest[take..];
    }
    let trailers = encoder.encode(rng, &fields(&[("grpc-status", "0")]));
    items.extend(headers(&trailers, Sid::Request, true, 16_384));
    items
}

/// Where a frame is inserted: anywhere after the request was read.
fn after_request(rng: &mut Rng, items: &[Item]) -> usize {
    let wait = items
        .iter()
        .position(|i| matches!(i, Item::WaitRequest))
        .map_or(0, |at| at + 1);
    rng.between(wait, items.len())
}

fn some_stream(rng: &mut Rng) -> Sid {
    match rng.below(6) {
        0 => Sid::Fixed(0),
        1 => Sid::After(1),
        2 => Sid::After(2),
        3 => Sid::Fixed(rng.edgy(31) as u32),
        _ => Sid::Request,
    }
}

/// Adds one offence to `items` (none that `ETCD_FUZZ_SKIP` names); its name.
fn offend(rng: &mut Rng, encoder: &mut BlockEncoder, items: &mut Vec<Item>) -> &'static str {
    for _ in 0..100 {
        let before = items.clone();
        let name = offend_once(rng, encoder, items);
        if !skipped(name) {
            return name;
        }
        *items = before;
    }
    "none (ETCD_FUZZ_SKIP skips them all)"
}

/// Adds one offence to `items`; its name.
fn offend_once(rng: &mut Rng, encoder: &mut BlockEncoder, items: &mut Vec<Item>) -> &'static str {
    let at = after_request(rng, items);
    let len = rng.size(64);
    let junk = rng.bytes(len);
    let (name, new): (&'static str, Vec<Item>) = match rng.below(22) {
        0 => (
            "unknown frame type",
            vec![frame(
                rng.between(10, 255) as u8,
                rng.u8(),
                some_stream(rng),
                junk,
            )],
        ),
        1 => {
            let len = if rng.bool() { 5 } else { rng.size(8) };
            (
                "PRIORITY",
                vec![frame(kind::PRIORITY, 0, some_stream(rng), rng.bytes(len))],
            )
        }
        2 => {
            let mut payload = 2u32.to_be_bytes().to_vec();
            payload.extend(encoder.encode(rng, &fields(&[(":status", "200")])));
            (
                "PUSH_PROMISE",
                vec![frame(
                    kind::PUSH_PROMISE,
                    flag::END_HEADERS,
                    Sid::Request,
                    payload,
                )],
            )
        }
        3 => (
            "CONTINUATION without HEADERS",
            vec![frame(
                kind::CONTINUATION,
                rng.u8() & flag::END_HEADERS,
                some_stream(rng),
                junk,
            )],
        ),
        4 => {
            let (size, count) = if rng.bool() {
                (0, rng.between(1000, 200_000))
            } else {
                (16_384, rng.between(100, 6_000))
            };
            let start = frame(kind::HEADERS, 0, Sid::Request, vec![0x88]);
            let flood = Item::Flood {
                kind: kind::CONTINUATION,
                flags: 0,
                stream: Sid::Request,
                payload: vec![0x40; size],
                count,
            };
            ("CONTINUATION flood", vec![start, flood])
        }
        5 => {
            // A padding length past the payload.
            let pad = rng.between(junk.len(), 255) as u8;
            let mut payload = vec![pad];
            payload.extend(&junk);
            let kind = if rng.bool() {
                kind::DATA
            } else {
                kind::HEADERS
            };
            (
                "bad padding",
                vec![frame(
                    kind,
                    flag::PADDED | flag::END_HEADERS,
                    Sid::Request,
                    payload,
                )],
            )
        }
        6 => {
            let len = rng.between(16_385, (1 << 24) - 1);
            let kind = *rng.pick(&[kind::DATA, kind::HEADERS, kind::SETTINGS, kind::PING, 0x42]);
            (
                "huge length",
                vec![Item::Truncated {
                    kind,
                    len,
                    sent: rng.size(4096),
                }],
            )
        }
        7 => {
            let kind = if rng.bool() {
                kind::DATA
            } else {
                kind::HEADERS
            };
            let block = encoder.encode(rng, &fields(&[(":status", "200")]));
            let stream = *rng.pick(&[
                Sid::Fixed(0),
                Sid::After(1),
                Sid::After(2),
                Sid::Fixed(0x7fff_ffff),
            ]);
            (
                "wrong stream ID",
                vec![frame(
                    kind,
                    flag::END_HEADERS | flag::END_STREAM,
                    stream,
                    block,
                )],
            )
        }
        8 => {
            let increment = *rng.pick(&[0, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1]);
            let stream = *rng.pick(&[Sid::Fixed(0), Sid::Request, Sid::After(2)]);
            let update = frame(
                kind::WINDOW_UPDATE,
                0,
                stream,
                u32::to_be_bytes(increment).to_vec(),
            );
            (
                "WINDOW_UPDATE of 0 or overflowing",
                vec![update.clone(), update],
            )
        }
        9 => {
            let code = rng.edgy(32) as u32;
            let len = if rng.one_in(4) { rng.size(8) } else { 4 };
            let mut payload = code.to_be_bytes().to_vec();
            payload.resize(len, 0);
            (
                "RST_STREAM",
                vec![frame(kind::RST_STREAM, 0, some_stream(rng), payload)],
            )
        }
        10 => {
            let last = *rng.pick(&[0, 1, 3, 0x7fff_ffff]);
            let mut payload = u32::to_be_bytes(last).to_vec();
            payload.extend(u32::to_be_bytes(rng.edgy(32) as u32));
            payload.extend(&junk);
            (
                "GOAWAY",
                vec![frame(kind::GOAWAY, 0, Sid::Fixed(0), payload)],
            )
        }
        11 => {
            let count = if rng.one_in(3) {
                rng.between(1_000_000, 5_000_000)
            } else {
                rng.between(10, 100_000)
            };
            let flood = Item::Flood {
                kind: kind::PING,
                flags: 0,
                stream: Sid::Fixed(0),
                payload: rng.bytes(8),
                count,
            };
            (
                "PING flood (the server reading nothing)",
                vec![Item::StopReading, flood],
            )
        }
        12 => {
            let count = rng.between(10, 500_000);
            let flood = Item::Flood {
                kind: kind::SETTINGS,
                flags: 0,
                stream: Sid::Fixed(0),
                payload: vec![],
                count,
            };
            (
                "SETTINGS flood (the server reading nothing)",
                vec![Item::StopReading, flood],
            )
        }
        13 => {
            let id = *rng.pick(&[1u16, 2, 3, 4, 5, 6, 0, 7, 0xffff]);
            let value = rng.edgy(32) as u32;
            let odd = match rng.below(4) {
                0 => frame(kind::SETTINGS, 0, Sid::Fixed(0), junk), // length not a multiple of 6
                1 => frame(kind::SETTINGS, flag::ACK, Sid::Fixed(0), vec![0; 6]),
                2 => frame(kind::SETTINGS, 0, Sid::Request, vec![]),
                _ => settings(&[(id, value)]),
            };
            ("odd SETTINGS", vec![odd])
        }
        14 => {
            let count = rng.between(20_000, 40_000);
            let mut block = encoder.encode(rng, &fields(&[(":status", "200")]));
            for i in 0..count {
                let name = format!("x{i}");
                block.extend_from_slice(&[0x00, name.len() as u8]);
                block.extend_from_slice(name.as_bytes());
                block.push(0x00);
            }
            (
                "a header block of tens of thousands of names",
                headers(&block, Sid::Request, false, 16_384),
            )
        }
        15 => {
            let flags = if rng.bool() { flag::END_STREAM } else { 0 };
            let data = frame(
                kind::DATA,
                flags,
                Sid::Request,
                grpc_body(&range_response(rng)),
            );
            // Before the response's HEADERS.
            let headers_at = items.iter().position(|i| {
                matches!(
                    i,
                    Item::Frame {
                        kind: kind::HEADERS,
                        ..
                    }
                )
            });
            let at = headers_at.unwrap_or(at);
            items.insert(at, data);
            return "DATA before HEADERS";
        }
        16 => {
            let count = rng.between(64, 1024);
            let flood = Item::Flood {
                kind: kind::DATA,
                flags: 0,
                stream: Sid::Request,
                payload: vec![0; 16_384],
                count,
            };
            ("a DATA flood ignoring the windows", vec![flood])
        }
        17 => {
            let mut block =
                encoder.encode(rng, &fields(&[(":status", "200"), ("grpc-status", "0")]));
            mutate(rng, &mut block, 4096);
            (
                "a garbage header block",
                headers(&block, Sid::Request, rng.bool(), 16_384),
            )
        }
        18 if items.len() > 1 => {
            let from = rng.below(items.len());
            match rng.below(3) {
                0 => {
                    items.remove(from);
                }
                1 => {
                    let copy = items[from].clone();
                    items.insert(at, copy);
                }
                _ => {
                    let to = rng.below(items.len());
                    items.swap(from, to);
                }
            }
            return "a frame dropped, repeated or moved";
        }
        19 => {
            let status = *rng.pick(&["100", "103", "204", "500"]);
            let block = encoder.encode(rng, &fields(&[(":status", status)]));
            (
                "informational or error HEADERS",
                headers(&block, Sid::Request, rng.bool(), 16_384),
            )
        }
        20 => {
            let mut payload = vec![0; rng.between(8, 9)];
            payload.truncate(if rng.bool() { 8 } else { rng.size(16) });
            (
                "PING of a wrong length or on a stream",
                vec![frame(kind::PING, 0, some_stream(rng), payload)],
            )
        }
        _ => {
            let kind = *rng.pick(&[kind::DATA, kind::HEADERS, kind::GOAWAY]);
            (
                "a truncated frame at the end",
                vec![
                    Item::Truncated {
                        kind,
                        len: rng.between(1, 40),
                        sent: 0,
                    },
                    Item::Raw(junk),
                ],
            )
        }
    };
    items.splice(at..at, new);
    name
}

/// A script for the structured target.
fn structured(rng: &mut Rng) -> Script {
    let mut encoder = BlockEncoder::new();
    let response = range_response(rng);
    let mut items = valid_response(rng, &mut encoder, &response);
    let mut offences = Vec::new();
    if !rng.one_in(5) {
        for _ in 0..rng.between(1, 3) {
            offences.push(offend(rng, &mut encoder, &mut items));
        }
    }
    Script {
        items,
        end: if rng.one_in(4) {
            End::Stall
        } else {
            End::Close
        },
        clean: offences.is_empty().then_some(response),
        offences,
    }
}

/// A script for the raw target: SETTINGS, then arbitrary bytes.
fn raw(rng: &mut Rng) -> Script {
    let mut encoder = BlockEncoder::new();
    let response = range_response(rng);
    let bytes = if rng.one_in(4) {
        let len = rng.size(4096);
        rng.bytes(len)
    } else {
        let mut bytes = Vec::new();
        for item in valid_response(rng, &mut encoder, &response) {
            if let Item::Frame {
                kind,
                flags,
                stream,
                payload,
            } = item
            {
                let id = if stream == Sid::Request { 1 } else { 0 };
                put_frame(&mut bytes, kind, flags, id, &payload);
            }
        }
        for _ in 0..rng.between(1, 4) {
            mutate(rng, &mut bytes, 1 << 20);
        }
        bytes
    };
    Script {
        items: vec![settings(&[]), Item::WaitRequest, Item::Raw(bytes)],
        end: if rng.one_in(4) {
            End::Stall
        } else {
            End::Close
        },
        clean: None,
        offences: vec!["arbitrary bytes"],
    }
}

/// What the server has seen of the client.
#[derive(Debug, Default)]
struct Seen {
    /// The first request's stream.
    request: Option<u32>,
}

/// Reads frames until the connection ends or `stop` says so; reports the request's stream.
async fn read_client(
    mut rd: OwnedReadHalf,
    seen: watch::Sender<Seen>,
    mut stop: watch::Receiver<bool>,
) {
    let mut head = [0u8; 9];
    loop {
        if *stop.borrow() {
            // Hold the socket open without reading: the client's writes back up.
            std::future::pending::<()>().await;
        }
        let read = tokio::select! {
            read = rd.read_exact(&mut head) => read,
            _ = stop.changed() => continue,
        };
        if read.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        if rd.read_exact(&mut payload).await.is_err() {
            return;
        }
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if head[3] == kind::HEADERS {
            seen.send_if_modified(|seen| {
                seen.request.is_none() && seen.request.replace(stream).is_none()
            });
        }
    }
}

/// Writes `script`'s items.
async fn write_script(
    wr: &mut OwnedWriteHalf,
    items: &[Item],
    mut seen: watch::Receiver<Seen>,
    stop: &watch::Sender<bool>,
) -> std::io::Result<()> {
    let mut request = 1;
    let resolve = |sid: Sid, request: u32| match sid {
        Sid::Request => request,
        Sid::After(n) => request.wrapping_add(n),
        Sid::Fixed(id) => id,
    };
    for item in items {
        match item {
            Item::Frame {
                kind,
                flags,
                stream,
                payload,
            } => {
                let mut out = Vec::with_capacity(9 + payload.len());
                put_frame(&mut out, *kind, *flags, resolve(*stream, request), payload);
                wr.write_all(&out).await?;
            }
            Item::Flood {
                kind,
                flags,
                stream,
                payload,
                count,
            } => {
                let mut one = Vec::new();
                put_frame(&mut one, *kind, *flags, resolve(*stream, request), payload);
                let per_chunk = (65_536 / one.len()).max(1);
                let chunk = one.repeat(per_chunk);
                let mut left = *count;
                while left > 0 {
                    let n = left.min(per_chunk);
                    wr.write_all(&chunk[..n * one.len()]).await?;
                    left -= n;
                }
            }
            Item::Truncated { kind, len, sent } => {
                let mut out = Vec::new();
                put_frame(&mut out, *kind, 0, request, &[]);
                out[..3].copy_from_slice(&(*len as u32).to_be_bytes()[1..]);
                out.resize(9 + sent.min(len), 0);
                wr.write_all(&out).await?;
            }
            Item::Raw(bytes) => wr.write_all(bytes).await?,
            Item::WaitRequest => {
                let waited = tokio::time::timeout(
                    Duration::from_secs(3),
                    seen.wait_for(|s| s.request.is_some()),
                )
                .await;
                if let Ok(Ok(seen)) = waited {
                    request = seen.request.unwrap_or(1);
                }
            }
            Item::StopReading => {
                let _ = stop.send(true);
            }
            Item::Pause(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        }
    }
    Ok(())
}

/// Plays `script` on one connection, until it is over and, when it stalls, until `over`.
/// Returns when it closed the connection having read the request and written the whole
/// script (`None` if it did not, or stalled).
async fn hostile(tcp: TcpStream, script: Script, over: Arc<Notify>) -> Option<Instant> {
    let (mut rd, mut wr) = tcp.into_split();
    let mut preface = [0u8; 24];
    let read = tokio::time::timeout(Duration::from_secs(5), rd.read_exact(&mut preface)).await;
    if !matches!(read, Ok(Ok(_))) {
        return None;
    }
    let (seen_tx, seen_rx) = watch::channel(Seen::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let reader = tokio::spawn(read_client(rd, seen_tx, stop_rx));
    let mut complete = false;
    let play = async {
        let written = write_script(&mut wr, &script.items, seen_rx.clone(), &stop_tx).await;
        if written.is_ok() && matches!(script.end, End::Stall) {
            std::future::pending::<()>().await;
        }
        complete = written.is_ok();
    };
    // The script stops at the latest 200 ms after the call is over.
    tokio::select! {
        () = play => {}
        () = async {
            over.notified().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        } => {}
    }
    let _ = wr.shutdown().await;
    reader.abort();
    let saw_request = seen_rx.borrow().request.is_some();
    (complete && saw_request).then(Instant::now)
}

/// How many bytes `items` put on the wire.
fn wire_size(items: &[Item]) -> usize {
    items
        .iter()
        .map(|item| match item {
            Item::Frame { payload, .. } => 9 + payload.len(),
            Item::Flood { payload, count, .. } => (9 + payload.len()) * count,
            Item::Truncated { len, sent, .. } => 9 + sent.min(len),
            Item::Raw(bytes) => bytes.len(),
            Item::WaitRequest | Item::StopReading | Item::Pause(_) => 0,
        })
        .sum()
}

/// The value a well-behaved server gives `key`.
fn healthy_value(key: &[u8]) -> Vec<u8> {
    [b"healthy:".as_slice(), key].concat()
}

/// A well-behaved server: answers each Range with one key whose value is
/// [`healthy_value`] of the key asked for.
async fn healthy(tcp: TcpStream, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut encoder = BlockEncoder::new();
    let (mut rd, mut wr) = tcp.into_split();
    let mut preface = [0u8; 24];
    rd.read_exact(&mut preface).await?;
    if preface != PREFACE {
        return Ok(());
    }
    let mut out = Vec::new();
    put_frame(&mut out, kind::SETTINGS, 0, 0, &[]);
    wr.write_all(&out).await?;
    let mut bodies: HashMap<u32, Vec<u8>> = HashMap::new();
    loop {
        let mut head = [0u8; 9];
        rd.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        rd.read_exact(&mut payload).await?;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut out = Vec::new();
        match kind {
            kind::SETTINGS if flags & flag::ACK == 0 => {
                put_frame(&mut out, kind::SETTINGS, flag::ACK, 0, &[])
            }
            kind::PING if flags & flag::ACK == 0 => {
                put_frame(&mut out, kind::PING, flag::ACK, 0, &payload)
            }
            kind::HEADERS => {
                bodies.insert(stream, Vec::new());
            }
            kind::DATA => bodies
                .entry(stream)
                .or_default()
                .extend_from_slice(&payload),
            kind::GOAWAY => return Ok(()),
            _ => {}
        }
        if matches!(kind, kind::HEADERS | kind::DATA) && flags & flag::END_STREAM != 0 {
            let body = bodies.remove(&stream).unwrap_or_default();
            let request = body
                .get(5..)
                .and_then(|m| pb::RangeRequest::decode(m).ok())
                .unwrap_or_default();
            let response = pb::RangeResponse {
                header: Some(pb::ResponseHeader {
                    revision: 1,
                    ..Default::default()
                }),
                kvs: vec![mvccpb::KeyValue {
                    value: healthy_value(&request.key).into(),
                    key: request.key,
                    ..Default::default()
                }],
                more: false,
                count: 1,
            };
            let head = encoder.encode(
                &mut rng,
                &fields(&[(":status", "200"), ("content-type", "application/grpc")]),
            );
            put_frame(&mut out, kind::HEADERS, flag::END_HEADERS, stream, &head);
            put_frame(&mut out, kind::DATA, 0, stream, &grpc_body(&response));
            let trailers = encoder.encode(&mut rng, &fields(&[("grpc-status", "0")]));
            put_frame(
                &mut out,
                kind::HEADERS,
                flag::END_HEADERS | flag::END_STREAM,
                stream,
                &trailers,
            );
        }
        wr.write_all(&out).await?;
    }
}

/// Why a case failed.
#[derive(Debug, PartialEq)]
enum Failure {
    Hang,
    /// The call waited for its timeout though the server had closed the connection.
    IgnoredClose,
    /// A dropped client kept its connection to the healthy server open.
    KeptOpen,
    Panic,
    Memory(usize),
    WrongValue(String),
    NotRecovered(String),
}

impl Failure {
    /// Whether `other` is the same kind of failure (for minimizing).
    fn same_kind(&self, other: &Failure) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Runs `script` against a fresh client, then checks the client against a healthy server.
async fn check(script: &Script, key: Bytes) -> Result<(), Failure> {
    let panics = PANICS.load(Ordering::SeqCst);
    let before = ALLOCATED.current();
    ALLOCATED.reset_peak();
    let result = exchange(script, key).await;
    if PANICS.load(Ordering::SeqCst) != panics {
        return Err(Failure::Panic);
    }
    let grew = ALLOCATED.peak().saturating_sub(before);
    if grew > MEMORY_LIMIT {
        return Err(Failure::Memory(grew));
    }
    // What earlier cases left behind (connections, tasks, buffers) counts too.
    if ALLOCATED.current() > MEMORY_LIMIT {
        return Err(Failure::Memory(ALLOCATED.current()));
    }
    result
}

async fn exchange(script: &Script, key: Bytes) -> Result<(), Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = format!("http://{}", listener.local_addr().expect("an address"));
    // The target of this fuzzing is our HTTP/2, whatever ETCD_CLIENT_HTTP2 says.
    let client = Client::builder([address])
        .http2_transport(Http2Transport::Builtin)
        .request_timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .retry_policy(RetryPolicy::never())
        .connect()
        .await
        .expect("valid settings");
    let over = Arc::new(Notify::new());
    let server = {
        let (script, over) = (script.clone(), over.clone());
        tokio::spawn(async move {
            let closed = match listener.accept().await {
                Ok((tcp, _)) => hostile(tcp, script, over).await,
                Err(_) => None,
            };
            (listener, closed)
        })
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(CALL_LIMIT, client.kv().get(key.clone())).await;
    over.notify_one();
    let Ok(outcome) = outcome else {
        server.abort();
        return Err(Failure::Hang);
    };
    if let Some(expected) = &script.clean {
        let expected = etcd3::kv::GetResponse::from(expected.clone());
        match &outcome {
            Ok(got) if *got == expected => {}
            other => {
                return Err(Failure::WrongValue(clip(
                    &format!("{other:?}, not {expected:?}"),
                    800,
                )));
            }
        }
    }
    let (listener, closed) = match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(done)) => done,
        _ => {
            return Err(Failure::NotRecovered(
                "the hostile server did not finish".into(),
            ));
        }
    };
    // A server that read the request, wrote a short script and closed the connection early
    // in the call: the call must end on the close, not wait for its timeout.
    let closed_early = closed.is_some_and(|at| at - started < CLOSED_EARLY);
    if closed_early
        && wire_size(&script.items) <= 1 << 20
        && matches!(outcome, Err(Error::Timeout { .. }))
    {
        return Err(Failure::IgnoredClose);
    }
    recovers(client, listener).await
}

/// Whether `client` then reads a key from a healthy server on `listener` (two failures are
/// allowed: calls that still land on the hostile connection before its close is read, one
/// failing on what the hostile server left queued for the next stream, the next on the
/// close), and once dropped closes its connection (within 2 s).
async fn recovers(client: Client, listener: TcpListener) -> Result<(), Failure> {
    let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = {
        let connections = connections.clone();
        tokio::spawn(async move {
            let mut seed = 0;
            while let Ok((tcp, _)) = listener.accept().await {
                seed += 1;
                let connection = tokio::spawn(healthy(tcp, seed));
                connections.lock().expect("not poisoned").push(connection);
            }
        })
    };
    let mut errors: Vec<Error> = Vec::new();
    let started = Instant::now();
    let mut result = Err(Failure::NotRecovered(String::new()));
    for attempt in 0..3 {
        let key = format!("healthy-{attempt}");
        match tokio::time::timeout(CALL_LIMIT, client.kv().get(key.as_str())).await {
            Err(_) => {
                result = Err(Failure::Hang);
                break;
            }
            Ok(Ok(response)) if response.value() == Some(&healthy_value(key.as_bytes())[..]) => {
                result = Ok(());
                break;
            }
            Ok(Ok(response)) => {
                result = Err(Failure::NotRecovered(format!(
                    "a healthy server's answer read as {response:?}"
                )));
                break;
            }
            Ok(Err(e)) => errors.push(e),
        }
    }
    server.abort();
    if result == Err(Failure::NotRecovered(String::new())) {
        result = Err(Failure::NotRecovered(format!(
            "{:?} after {:.1} s: {errors:?}",
            errors.len(),
            started.elapsed().as_secs_f64()
        )));
    }
    drop(client);
    let connections = std::mem::take(&mut *connections.lock().expect("not poisoned"));
    let check = !skipped("kept open");
    let wait = Duration::from_secs(if check { 2 } else { 0 });
    let deadline = tokio::time::Instant::now() + wait;
    for mut connection in connections {
        if tokio::time::timeout_at(deadline, &mut connection)
            .await
            .is_err()
        {
            connection.abort();
            if result.is_ok() && check {
                result = Err(Failure::KeptOpen);
            }
        }
    }
    result
}

/// `items` in short: runs of frames of one type (CONTINUATION after a large header
/// block, say) counted rather than listed.
fn describe(items: &[Item]) -> String {
    let key = |item: &Item| match item {
        Item::Frame { kind, .. } => Some(*kind),
        _ => None,
    };
    let mut parts = Vec::new();
    let mut at = 0;
    while at < items.len() {
        let run = items[at..]
            .iter()
            .take_while(|i| key(i).is_some() && key(i) == key(&items[at]))
            .count()
            .max(1);
        let text = clip(&format!("{:?}", items[at]), 160);
        parts.push(match run {
            1 => text,
            n => format!(
                "{text} and {} more {}",
                n - 1,
                kind_name(key(&items[at]).unwrap_or(0))
            ),
        });
        at += run;
    }
    parts.join(", ")
}

/// Runs one case of a target whose scripts `generate` makes.
fn one_case(
    runtime: &tokio::runtime::Runtime,
    case: &mut Case,
    generate: fn(&mut Rng) -> Script,
) -> Result<(), String> {
    let script = generate(&mut case.rng);
    let key = Bytes::from(case.rng.bytes(8));
    case.note(format!(
        "offences: {:?}; end: {:?}",
        script.offences, script.end
    ));
    for item in &script.items {
        case.note(format!("  {item:?}"));
    }
    let Err(failure) = runtime.block_on(check(&script, key.clone())) else {
        return Ok(());
    };
    // The smallest list of items found that still fails the same way (about a minute at most).
    let started = Instant::now();
    let items = minimize(script.items.clone(), 40, |items| {
        if started.elapsed() > Duration::from_secs(60) {
            return false;
        }
        let smaller = Script {
            items: items.to_vec(),
            clean: None,
            ..script.clone()
        };
        matches!(runtime.block_on(check(&smaller, key.clone())), Err(f) if f.same_kind(&failure))
    });
    Err(format!(
        "{failure:?} (offences {:?}); smallest script found still failing so: [{}]",
        script.offences,
        describe(&items)
    ))
}

fn fuzz(name: &str, generate: fn(&mut Rng) -> Script) {
    count_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    run(name, Duration::from_secs(3), |case| {
        one_case(&runtime, case, generate)
    });
}

#[test]
fn fuzz_connection() {
    fuzz("connection", structured);
}

#[test]
fn fuzz_connection_raw() {
    fuzz("connection_raw", raw);
}
