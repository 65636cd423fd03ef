//! A hostile "member": a loopback TCP server that speaks just enough HTTP/2 to be taken for
//! an etcd member, then breaks the protocol in one chosen way ([`Offence`]) on every
//! connection, in plain text or over TLS ([`HostileMember::start_tls`]: a real TLS
//! handshake, then the same offences inside the records). The client under test is
//! pointed at [`HostileMember::url`].
//!
//! It writes raw frames itself (written here, independent of the client's HTTP/2), and
//! keeps its own memory small: floods are written from one reused buffer, so the test
//! process's memory measures the client.

use std::future::IntoFuture as _;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
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
    /// The prefix of a 1 GiB message, then its bytes one DATA frame each (a million
    /// frames): the client must not pay a frame's bookkeeping for every byte.
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
    /// The CA certificate (PEM) that signed the member's certificate, when it serves TLS.
    ca_pem: Option<String>,
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
        Self {
            addr,
            task,
            ca_pem: None,
        }
    }

    /// Starts a member that completes a TLS handshake (a certificate for `127.0.0.1` from
    /// a throwaway CA, ALPN `h2`) and then commits `offence` inside TLS.
    pub async fn start_tls(offence: Offence) -> Self {
        use tokio_rustls::rustls;
        let (ca_pem, cert, key) = throwaway_certificate();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("the server certificate");
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = serve(tls, offence).await;
                    }
                });
            }
        });
        Self {
            addr,
            task,
            ca_pem: Some(ca_pem),
        }
    }

    /// The member's client URL (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA certificate to trust, when the member serves TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
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
async fn flood<S: AsyncWrite + Unpin>(
    tcp: &mut S,
    unit: &[u8],
    total: usize,
) -> std::io::Result<()> {
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
async fn first_request<S: AsyncRead + Unpin>(tcp: &mut S) -> std::io::Result<u32> {
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

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut tcp: S,
    offence: Offence,
) -> std::io::Result<()> {
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
            if offence == Offence::TinyDataFlood {
                frame(&mut out, DATA, 0, id, &[0, 0x40, 0, 0, 0]);
            }
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
    // Not kept while lingering: a client that reconnects would otherwise grow the test
    // process by a copy per connection, which is not the client's memory.
    drop(out);
    linger(tcp).await
}

/// Keeps the connection open without reading, as a stuck server would.
async fn linger<S>(tcp: S) -> std::io::Result<()> {
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    drop(tcp);
    Ok(())
}

/// A CA (its certificate, PEM) and a certificate for `127.0.0.1` it signed, with its key.
fn throwaway_certificate() -> (
    String,
    rustls_pki_types::CertificateDer<'static>,
    rustls_pki_types::PrivateKeyDer<'static>,
) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "hostile member CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca =
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a key")).expect("the CA");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("parameters");
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, &ca).expect("the certificate");
    let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("the key");
    (ca.pem(), cert.der().clone(), key)
}

/// Scheduling slack on top of it (the machine is small and shared).
const SLACK: std::time::Duration = std::time::Duration::from_millis(1500);
/// How much the process's resident memory may grow over all the offences, with three
/// clients under attack at once (a client that absorbed one flood, [`FLOOD`], would pass
/// it alone).
const MAX_GROWTH_KIB: u64 = 32 << 10;

static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("a number of KiB")
}

/// How far resident memory is above `before`, once the dropped clients' connections have
/// wound down: sampled until it is under [`MAX_GROWTH_KIB`] or [`SETTLE`] has passed.
/// (The tonic transport's connection tasks end a moment after their clients, and until
/// then hold what h2 buffered of a flood: up to its flow-control windows, and for a flood
/// of 1-byte frames a frame's bookkeeping per byte.)
async fn settled_growth(before: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let grown = rss_kib().saturating_sub(before);
        if grown < MAX_GROWTH_KIB || tokio::time::Instant::now() >= deadline {
            return grown;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How long [`settled_growth`] waits for connections to wind down.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A client of `member` (trusting its CA when it serves TLS).
async fn client_of(member: &HostileMember, timeout: std::time::Duration) -> etcd3::Client {
    let mut builder = etcd3::Client::builder([member.url()]).request_timeout(timeout);
    if let Some(ca) = member.ca_pem() {
        builder = builder.tls(etcd3::Tls::new().ca_pem(ca.to_owned()));
    }
    builder
        .connect()
        .await
        .expect("a client of the hostile member")
}

/// How long `call` took, and what it gave unless it took longer than `limit`.
async fn within<T>(
    limit: std::time::Duration,
    call: impl std::future::Future<Output = T>,
) -> (std::time::Duration, Option<T>) {
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(limit, call).await.ok();
    (started.elapsed(), outcome)
}

/// Points `etcd3::Client` (with `timeout` as its request timeout; offences that stall the
/// call end at it) at a hostile member committing each [`Offence`] in turn, in plain text
/// or over `tls`, and asserts: every call ends within the timeout (plus slack) with an
/// error, no task panics, the process's resident memory, once the clients are dropped,
/// is less than 32 MiB above where it started, and a client of a real etcd in
/// the same process keeps working throughout. Run it in a test binary of its own, so the
/// memory is the test's alone.
pub async fn every_offence_through_client(tls: bool, timeout: std::time::Duration) {
    use std::sync::atomic::Ordering;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let server = etcd_testkit::EtcdServer::start().await;
    let healthy = etcd3::Client::builder([server.client_url()])
        .request_timeout(timeout)
        .connect()
        .await
        .expect("a client of a real etcd");
    healthy
        .kv()
        .put("hostile/k", "v")
        .await
        .expect("a put to a real etcd");
    let before = rss_kib();
    for offence in Offence::ALL {
        let member = if tls {
            HostileMember::start_tls(offence).await
        } else {
            HostileMember::start(offence).await
        };
        // A unary call, a watch's creation and a one-off lease renewal (the last two over
        // the stream codec), at once, each from a client of its own: each is the first
        // request on its connection, which is where the member commits its offence.
        let (get, watch, renewal) = (
            client_of(&member, timeout).await,
            client_of(&member, timeout).await,
            client_of(&member, timeout).await,
        );
        let (got, watched, renewed) = tokio::join!(
            within(timeout * 3, get.kv().get("hostile/k").into_future()),
            within(timeout * 3, watch.watch("hostile/k").into_future()),
            within(timeout * 3, renewal.lease().keep_alive_once(7)),
        );
        for (what, took, outcome) in [
            ("the get", got.0, got.1.map(|r| r.map(drop))),
            ("the watch", watched.0, watched.1.map(|r| r.map(drop))),
            ("the renewal", renewed.0, renewed.1.map(|r| r.map(drop))),
        ] {
            let result = outcome.unwrap_or_else(|| panic!("{offence:?}: {what} did not end"));
            let error = result.expect_err("a hostile member answered");
            eprintln!("{offence:?} (TLS: {tls}): {what} ended after {took:?}: {error}");
            assert!(
                took <= timeout + SLACK,
                "{offence:?}: {what} took {took:?}: {error}"
            );
        }
        // The same process, a real member: works as before.
        let got = healthy
            .kv()
            .get("hostile/k")
            .await
            .expect("the real etcd answers");
        assert_eq!(got.kvs()[0].value(), b"v", "{offence:?}");
        drop((get, watch, renewal));
        drop(member);
        let grown = settled_growth(before).await;
        eprintln!("{offence:?}: resident memory grown by {grown} KiB in all");
        assert!(grown < MAX_GROWTH_KIB, "{offence:?}: grown by {grown} KiB");
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a task panicked");
}
