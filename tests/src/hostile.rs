//! A hostile "member": a loopback TCP server that speaks just enough HTTP/2 to be taken for
//! an etcd member, then breaks the protocol in one chosen way ([`Offence`]) on every
//! connection. The client under test is pointed at [`HostileMember::url`].
//!
//! It writes raw frames itself (written here, independent of the client's HTTP/2), and
//! keeps its own memory small: floods are written from one reused buffer, so the test
//! process's memory measures the client.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the member misbehaves once the client's first request arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    /// A response head with 25,000 distinct header names (HEADERS + CONTINUATION).
    HeaderNameFlood,
    /// A 4,000-byte dynamic-table entry referenced a million times in one block.
    HeaderTableBomb,
    /// Empty CONTINUATION frames, without end.
    ContinuationFlood,
    /// PINGs, 64 MiB of them, while never reading the answers.
    PingFlood,
    /// SETTINGS frames, 64 MiB of them, while never reading the acknowledgements.
    SettingsFlood,
    /// 64 MiB of DATA on the request's stream, far past every window.
    WindowFlood,
    /// A million 1-byte DATA frames.
    TinyDataFlood,
    /// Empty DATA frames that never end the stream, without end.
    EmptyDataFlood,
    /// DATA ending the stream before any HEADERS.
    DataBeforeHeaders,
    /// A head, then trailers that do not end the stream.
    TrailersWithoutEnd,
    /// `WINDOW_UPDATE`s that overflow the client's send window.
    WindowOverflow,
    /// An HTTP/1.1 error answer (a wrong port), the connection kept open.
    Http1,
    /// SETTINGS, then silence with the connection open (answers no PING either).
    Stall,
    /// SETTINGS, then 1 MiB of pseudo-random bytes.
    Garbage,
}

impl Offence {
    /// Every offence.
    pub const ALL: [Offence; 14] = [
        Offence::HeaderNameFlood,
        Offence::HeaderTableBomb,
        Offence::ContinuationFlood,
        Offence::PingFlood,
        Offence::SettingsFlood,
        Offence::WindowFlood,
        Offence::TinyDataFlood,
        Offence::EmptyDataFlood,
        Offence::DataBeforeHeaders,
        Offence::TrailersWithoutEnd,
        Offence::WindowOverflow,
        Offence::Http1,
        Offence::Stall,
        Offence::Garbage,
    ];
}

/// A listening hostile member; the server task ends on drop.
#[derive(Debug)]
pub struct HostileMember {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HostileMember {
    /// Starts a member committing `offence` on every connection.
    pub async fn start(offence: Offence) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = serve(tcp, offence).await;
                });
            }
        });
        Self { addr, task }
    }

    /// The member's client URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HostileMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// How much a flood writes.
const FLOOD: usize = 64 << 20;

/// Appends one frame.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends a header block in frames of at most 16 KiB.
fn header_block(out: &mut Vec<u8>, stream: u32, block: &[u8], end_stream: bool) {
    let mut chunks = block.chunks(16_384).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let kind = if first { HEADERS } else { CONTINUATION };
        let mut flags = if last { END_HEADERS } else { 0 };
        if first && end_stream {
            flags |= END_STREAM;
        }
        frame(out, kind, flags, stream, chunk);
        first = false;
    }
}

/// A header field as a literal without indexing, with a new name.
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0x00);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

/// `:status 200` and gRPC's content type.
fn ok_head() -> Vec<u8> {
    let mut block = vec![0x88];
    literal(&mut block, "content-type", "application/grpc");
    block
}

/// Writes `unit` over and over until `total` bytes went (or the client hung up).
async fn flood(tcp: &mut TcpStream, unit: &[u8], total: usize) -> std::io::Result<()> {
    let mut chunk = Vec::with_capacity(1 << 20);
    while chunk.len() + unit.len() <= 1 << 20 {
        chunk.extend_from_slice(unit);
    }
    let mut sent = 0;
    while sent < total {
        tcp.write_all(&chunk).await?;
        sent += chunk.len();
    }
    Ok(())
}

/// Reads the client's preface and frames until a request's HEADERS; its stream.
async fn first_request(tcp: &mut TcpStream) -> std::io::Result<u32> {
    let mut preface = [0u8; 24];
    tcp.read_exact(&mut preface).await?;
    loop {
        let mut head = [0u8; 9];
        tcp.read_exact(&mut head).await?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await?;
        if head[3] == HEADERS {
            return Ok(u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff);
        }
    }
}

async fn serve(mut tcp: TcpStream, offence: Offence) -> std::io::Result<()> {
    if offence == Offence::Http1 {
        let mut buf = [0u8; 64];
        let _ = tcp.read(&mut buf).await?;
        tcp.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return linger(tcp).await;
    }
    let mut out = Vec::new();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    tcp.write_all(&out).await?;
    let id = first_request(&mut tcp).await?;
    let mut out = Vec::new();
    match offence {
        Offence::HeaderNameFlood => {
            let mut block = vec![0x88];
            for i in 0..25_000 {
                literal(&mut block, &format!("x-{i}"), "");
            }
            header_block(&mut out, id, &block, false);
        }
        Offence::HeaderTableBomb => {
            let mut block = vec![0x88, 0x40, 0x01, b'x', 0x7f, 0xa2, 0x1e];
            block.extend_from_slice(&[b'v'; 4000]);
            block.resize(block.len() + 1_000_000, 0x80 | 62);
            header_block(&mut out, id, &block, false);
        }
        Offence::ContinuationFlood => {
            frame(&mut out, HEADERS, 0, id, &[0x88]);
            tcp.write_all(&out).await?;
            let mut unit = Vec::new();
            frame(&mut unit, CONTINUATION, 0, id, &[]);
            return flood(&mut tcp, &unit, FLOOD).await;
        }
        Offence::PingFlood | Offence::SettingsFlood => {
            let mut unit = Vec::new();
            match offence {
                Offence::PingFlood => frame(&mut unit, PING, 0, 0, b"floodfld"),
                _ => frame(&mut unit, SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]),
            }
            // Never reads again: the client's answers pile up on its side.
            return flood(&mut tcp, &unit, FLOOD).await;
        }
        Offence::WindowFlood | Offence::TinyDataFlood | Offence::EmptyDataFlood => {
            header_block(&mut out, id, &ok_head(), false);
            tcp.write_all(&out).await?;
            let mut unit = Vec::new();
            match offence {
                Offence::WindowFlood => frame(&mut unit, DATA, 0, id, &[0u8; 16_384]),
                Offence::TinyDataFlood => frame(&mut unit, DATA, 0, id, b"z"),
                _ => frame(&mut unit, DATA, 0, id, &[]),
            }
            let total = if offence == Offence::TinyDataFlood {
                10 << 20
            } else {
                FLOOD
            };
            flood(&mut tcp, &unit, total).await?;
        }
        Offence::DataBeforeHeaders => frame(&mut out, DATA, END_STREAM, id, b"\0\0\0\0\0"),
        Offence::TrailersWithoutEnd => {
            header_block(&mut out, id, &ok_head(), false);
            frame(&mut out, DATA, 0, id, b"\0\0\0\0\0");
            let mut trailers = Vec::new();
            literal(&mut trailers, "grpc-status", "0");
            header_block(&mut out, id, &trailers, false);
        }
        Offence::WindowOverflow => {
            frame(&mut out, WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes());
            frame(
                &mut out,
                WINDOW_UPDATE,
                0,
                id,
                &0x7fff_ffffu32.to_be_bytes(),
            );
        }
        Offence::Garbage => {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            out.extend((0..1 << 20).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }));
        }
        Offence::Stall | Offence::Http1 => {}
    }
    tcp.write_all(&out).await?;
    linger(tcp).await
}

/// Keeps the connection open without reading, as a stuck server would.
async fn linger(tcp: TcpStream) -> std::io::Result<()> {
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    drop(tcp);
    Ok(())
}
