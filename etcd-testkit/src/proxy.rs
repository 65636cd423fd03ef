//! [`FaultProxy`]: a TCP proxy that injects network faults between a client
//! and one etcd member (or any TCP server).
//!
//! The proxy listens on a loopback port and forwards every accepted
//! connection to a fixed target. Its [`Mode`] can be changed at any time;
//! each connection runs its two directions (client→server and
//! server→client) in one task and consults the mode on every chunk, so a
//! change applies to existing connections as well as to new ones.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::{Duration, Instant};
//! use etcd_testkit::{EtcdServer, FaultProxy, Mode, http};
//!
//! let server = EtcdServer::start().await;
//! let proxy = FaultProxy::start(server.client_addr()).await;
//! let url = proxy.url(); // point the client under test here
//! assert!(http::is_healthy(&url, Duration::from_secs(2)).await);
//!
//! proxy.set_mode(Mode::Refuse).await; // like a member that went away
//! assert!(http::get(&url, "/health", Duration::from_secs(1)).await.is_err());
//!
//! proxy.set_mode(Mode::Delay(Duration::from_millis(100))).await;
//! let started = Instant::now();
//! assert!(http::is_healthy(&url, Duration::from_secs(2)).await);
//! assert!(started.elapsed() >= Duration::from_millis(200)); // 100 ms each way
//!
//! proxy.set_mode(Mode::Pass).await;
//! assert!(proxy.stats().connections_accepted >= 2);
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How long [`FaultProxy::set_mode`] waits for the proxy to apply a mode.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection cut by [`Mode::CutAfterRequest`] keeps its server
/// side open (discarding replies) so the server can finish the request.
pub const CUT_DRAIN: Duration = Duration::from_secs(3);

/// Read buffer size per direction; also the largest chunk.
const CHUNK: usize = 16 * 1024;

/// What the proxy does with traffic. Set with [`FaultProxy::set_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything both ways (the initial mode).
    Pass,
    /// Accept new connections and keep all sockets open, but forward
    /// nothing either way: reads stop, so the peers' writes back up in the
    /// kernel buffers, like packets lost on a partitioned network. Data
    /// already read is delivered when forwarding resumes.
    Blackhole,
    /// Reset every current connection (RST via `SO_LINGER` 0, on both the
    /// client and the server side), then behave like [`Mode::Pass`].
    DropAll,
    /// Stop accepting new connections (the kernel still completes the TCP
    /// handshake into the listen backlog) and stop reading on existing ones.
    Pause,
    /// Close the listening socket so new connections are refused, and reset
    /// every current connection, like a server process that went away.
    /// Switching to any other mode binds the same port again.
    Refuse,
    /// Forward everything, sleeping this long before forwarding each chunk
    /// (each direction separately).
    Delay(Duration),
    /// For the next `n` client→server chunks (counted across all
    /// connections): forward the chunk to the server, then reset that
    /// connection's client side before any further server→client byte is
    /// forwarded. The server side stays open for [`CUT_DRAIN`] with its
    /// replies discarded, so the request is normally carried out: this
    /// manufactures writes with an unknown outcome. After `n` cuts the proxy
    /// behaves like [`Mode::Pass`].
    ///
    /// Every chunk counts, including HTTP/2 connection prefaces, settings
    /// and keepalive pings, so set this mode while the client is idle and
    /// connected, just before the request to cut.
    CutAfterRequest {
        /// How many chunks (and so connections) to cut.
        n: usize,
    },
}

impl Mode {
    fn stops_reading(self) -> bool {
        matches!(self, Mode::Blackhole | Mode::Pause)
    }

    fn resets_connections(self) -> bool {
        matches!(self, Mode::DropAll | Mode::Refuse)
    }
}

/// Traffic counters of a [`FaultProxy`], see [`FaultProxy::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyStats {
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections currently open (accepted and not yet finished).
    pub connections_active: usize,
    /// Connections reset by [`Mode::DropAll`] or [`Mode::Refuse`].
    pub connections_reset: u64,
    /// Connections cut by [`Mode::CutAfterRequest`].
    pub connections_cut: u64,
    /// Cuts still to do under [`Mode::CutAfterRequest`].
    pub cuts_remaining: usize,
    /// Bytes forwarded from clients to the server.
    pub bytes_client_to_server: u64,
    /// Bytes forwarded from the server to clients.
    pub bytes_server_to_client: u64,
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// Bumped by modes that reset connections; a connection is reset when
    /// this differs from the value it was accepted under.
    reset_generation: u64,
    /// Bumped by every `set_mode`, acknowledged by the accept loop.
    seq: u64,
}

#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    target: SocketAddr,
    state: watch::Sender<State>,
    /// `(seq, outcome)` of the last state the accept loop applied.
    applied: watch::Sender<(u64, Result<(), String>)>,
    /// One clone per open connection of the current reset generation.
    generation_token: Mutex<Arc<()>>,
    cut_budget: AtomicUsize,
    accepted: AtomicU64,
    active: AtomicUsize,
    reset: AtomicU64,
    cut: AtomicU64,
    c2s: AtomicU64,
    s2c: AtomicU64,
}

impl Shared {
    fn take_cut(&self) -> bool {
        self.cut_budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_ok()
    }
}

/// A fault-injecting TCP proxy in front of one server, stopped on drop.
///
/// Runs on the tokio runtime that called [`FaultProxy::start`]; keep it
/// within that runtime (do not put it in a `static` shared by tests).
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free `127.0.0.1` port forwarding to `target`, in
    /// [`Mode::Pass`].
    ///
    /// # Panics
    ///
    /// Panics if no loopback port can be bound.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the fault proxy to 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr of a bound socket");
        // Keep etcd members off this port while Mode::Refuse releases it.
        crate::server::reserve_port(addr.port());
        let (state, _) = watch::channel(State {
            mode: Mode::Pass,
            reset_generation: 0,
            seq: 0,
        });
        let (applied, _) = watch::channel((0, Ok(())));
        let shared = Arc::new(Shared {
            addr,
            target,
            state,
            applied,
            generation_token: Mutex::new(Arc::new(())),
            cut_budget: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            reset: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            c2s: AtomicU64::new(0),
            s2c: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(shared.clone(), listener));
        FaultProxy { shared, task }
    }

    /// The proxy's URL, `http://127.0.0.1:PORT`, to give to a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The address traffic is forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// The mode last set.
    pub fn mode(&self) -> Mode {
        self.shared.state.borrow().mode
    }

    /// Switches the mode, returning once it is in effect: the listener is
    /// closed or bound again as the mode needs, and for
    /// [`Mode::DropAll`] and [`Mode::Refuse`] every connection open before
    /// the call has been reset.
    ///
    /// # Panics
    ///
    /// Panics if the mode is not applied within 5 s, or if the port cannot
    /// be bound again after [`Mode::Refuse`].
    pub async fn set_mode(&self, mode: Mode) {
        let shared = &self.shared;
        shared.cut_budget.store(
            match mode {
                Mode::CutAfterRequest { n } => n,
                _ => 0,
            },
            Ordering::SeqCst,
        );
        let (seq, old_generation) = {
            let mut token = shared
                .generation_token
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut seq = 0;
            shared.state.send_modify(|s| {
                s.seq += 1;
                s.mode = mode;
                if mode.resets_connections() {
                    s.reset_generation += 1;
                }
                seq = s.seq;
            });
            let old = mode
                .resets_connections()
                .then(|| std::mem::replace(&mut *token, Arc::new(())));
            (seq, old)
        };

        let mut applied = shared.applied.subscribe();
        let outcome = tokio::time::timeout(APPLY_TIMEOUT, async {
            applied
                .wait_for(|(s, _)| *s >= seq)
                .await
                .map(|r| r.1.clone())
        })
        .await;
        match outcome {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("fault proxy on {}: {e}", shared.addr),
            Ok(Err(_)) => panic!("fault proxy on {} has stopped", shared.addr),
            Err(_) => panic!("fault proxy on {}: mode {mode:?} not applied", shared.addr),
        }

        if let Some(old) = old_generation {
            let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
            while Arc::strong_count(&old) > 1 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "fault proxy on {}: connections not reset in time",
                    shared.addr
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    /// Current counters.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            connections_accepted: s.accepted.load(Ordering::SeqCst),
            connections_active: s.active.load(Ordering::SeqCst),
            connections_reset: s.reset.load(Ordering::SeqCst),
            connections_cut: s.cut.load(Ordering::SeqCst),
            cuts_remaining: s.cut_budget.load(Ordering::SeqCst),
            bytes_client_to_server: s.c2s.load(Ordering::SeqCst),
            bytes_server_to_client: s.s2c.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every
        // connection task.
        self.task.abort();
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut listener = Some(listener);
    let mut rx = shared.state.subscribe();
    let mut conns = JoinSet::new();
    loop {
        let state = *rx.borrow_and_update();
        let mut outcome = Ok(());
        if state.mode == Mode::Refuse {
            listener = None;
        } else if listener.is_none() {
            match rebind(shared.addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => outcome = Err(format!("cannot bind {} again: {e}", shared.addr)),
            }
        }
        let _ = shared.applied.send_replace((state.seq, outcome));
        let accepting = listener.is_some() && state.mode != Mode::Pause;

        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = accept(listener.as_ref()), if accepting => match accepted {
                    Ok(client) => {
                        shared.accepted.fetch_add(1, Ordering::SeqCst);
                        let (generation, token) = {
                            let token = shared
                                .generation_token
                                .lock()
                                .unwrap_or_else(|p| p.into_inner());
                            (shared.state.borrow().reset_generation, token.clone())
                        };
                        conns.spawn(connection(shared.clone(), client, generation, token));
                    }
                    // E.g. EMFILE: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn rebind(addr: SocketAddr) -> io::Result<TcpListener> {
    let mut attempts = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if attempts < 100 && e.kind() == io::ErrorKind::AddrInUse => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

enum Outcome {
    Closed,
    Reset,
    Cut,
}

/// Decrements the active-connection counter when the connection ends, even
/// when its task is aborted.
struct ActiveGuard<'a>(&'a AtomicUsize);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(shared: Arc<Shared>, mut client: TcpStream, generation: u64, token: Arc<()>) {
    shared.active.fetch_add(1, Ordering::SeqCst);
    let _active = ActiveGuard(&shared.active);
    let mut reset_rx = shared.state.subscribe();
    let connect = TcpStream::connect(shared.target);
    let mut server = tokio::select! {
        connected = tokio::time::timeout(APPLY_TIMEOUT, connect) => match connected {
            Ok(Ok(server)) => server,
            _ => {
                // Looks like a refused connection to the client.
                let _ = client.set_zero_linger();
                return;
            }
        },
        _ = reset_rx.wait_for(|s| s.reset_generation != generation) => {
            shared.reset.fetch_add(1, Ordering::SeqCst);
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let outcome = {
        let cut = AtomicBool::new(false);
        let cut_notify = Notify::new();
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let c2s = pump(
            Direction::ClientToServer,
            &mut client_read,
            &mut server_write,
            &shared,
            &cut,
            &cut_notify,
        );
        let s2c = pump(
            Direction::ServerToClient,
            &mut server_read,
            &mut client_write,
            &shared,
            &cut,
            &cut_notify,
        );
        tokio::select! {
            _ = async { tokio::try_join!(c2s, s2c) } => Outcome::Closed,
            _ = cut_notify.notified() => Outcome::Cut,
            _ = reset_rx.wait_for(|s| s.reset_generation != generation) => Outcome::Reset,
        }
    };

    match outcome {
        Outcome::Closed => {}
        Outcome::Reset => {
            shared.reset.fetch_add(1, Ordering::SeqCst);
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
        Outcome::Cut => {
            shared.cut.fetch_add(1, Ordering::SeqCst);
            let _ = client.set_zero_linger();
            drop(client);
            // This connection no longer counts for DropAll/Refuse.
            drop(token);
            let mut buf = vec![0u8; CHUNK];
            let drain = async {
                while let Ok(n) = server.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CUT_DRAIN, drain).await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

fn stopped() -> io::Error {
    io::Error::other("fault proxy stopped")
}

async fn pump<R, W>(
    direction: Direction,
    reader: &mut R,
    writer: &mut W,
    shared: &Shared,
    cut: &AtomicBool,
    cut_notify: &Notify,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut rx = shared.state.subscribe();
    let counter = match direction {
        Direction::ClientToServer => &shared.c2s,
        Direction::ServerToClient => &shared.s2c,
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        rx.wait_for(|s| !s.mode.stops_reading())
            .await
            .map_err(|_| stopped())?;
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            // Pass the half-close on; the other direction keeps going.
            writer.shutdown().await?;
            return Ok(());
        }

        if direction == Direction::ClientToServer && shared.take_cut() {
            // Set before the server can see the request, so no reply to it
            // is forwarded.
            cut.store(true, Ordering::SeqCst);
            writer.write_all(&buf[..n]).await?;
            writer.flush().await?;
            counter.fetch_add(n as u64, Ordering::SeqCst);
            cut_notify.notify_one();
            return std::future::pending().await;
        }

        // Hold data read just before a blackhole or pause started.
        let mode = rx
            .wait_for(|s| !s.mode.stops_reading())
            .await
            .map_err(|_| stopped())?
            .mode;
        if let Mode::Delay(delay) = mode {
            tokio::time::sleep(delay).await;
        }
        if cut.load(Ordering::SeqCst) {
            return std::future::pending().await;
        }
        writer.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::SeqCst);
    }
}
