//! [`EtcdServer`]: one etcd member running as a child process.
//!
//! Each member gets free loopback ports (`127.0.0.1`, picked by binding port 0
//! and never handed out twice in a process), its own temporary directory
//! (under `/dev/shm` when that exists) holding the data dir and the logs, and a
//! unique `--initial-cluster-token`. Starting waits until `GET /health` on the
//! client URL answers `"health":"true"`, i.e. the member has a leader; a start
//! that lost a port race is retried on new ports.
//!
//! The process is killed (`SIGKILL`) and reaped when the [`EtcdServer`] is
//! dropped, also during a panic unwind, and its temporary directory is then
//! removed. If the test process dies without unwinding (an abort, `SIGKILL`),
//! Linux kills etcd too (`PR_SET_PDEATHSIG`, see [`crate::process`]); only
//! the temporary directory is then left behind.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binary::etcd_binary;
use crate::http;
use crate::process::{process_stopped, signal, spawn_with_pdeathsig};

/// How long [`EtcdServer::start`] and [`EtcdServer::restart`] wait for
/// `/health` by default.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How many times a start is retried when a picked port turned out to be
/// taken by the time etcd bound it.
const START_ATTEMPTS: usize = 3;

/// Lines of log included in panic messages.
const PANIC_LOG_LINES: usize = 40;

/// One etcd member, killed and reaped on drop (also during a panic unwind).
///
/// All methods take `&self`, so a server can be shared (see
/// [`shared_server`](crate::shared_server)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use etcd_testkit::{EtcdServer, http};
///
/// let server = EtcdServer::builder().arg("--max-txn-ops=4").start().await;
/// let url = server.client_url(); // http://127.0.0.1:<free port>
/// http::kv_put(&url, b"k", b"v").await.unwrap();
///
/// server.pause(); // SIGSTOP: the sockets stay open, nothing answers
/// assert!(!server.is_healthy().await);
/// server.resume();
///
/// server.restart().await; // SIGKILL, then the same data dir and ports
/// assert_eq!(http::kv_get(&url, b"k").await.unwrap(), Some(b"v".to_vec()));
/// # }
/// ```
pub struct EtcdServer {
    spec: MemberSpec,
    dir: TempDir,
    child: Mutex<Option<Child>>,
    last_pid: AtomicU32,
    /// Started (again) as a new member of a running cluster
    /// (`--initial-cluster-state=existing`).
    joins: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdServer")
            .field("name", &self.spec.name)
            .field("client_url", &self.client_url())
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Builder for [`EtcdServer`], for extra etcd flags and environment.
#[derive(Debug, Clone)]
pub struct EtcdServerBuilder {
    pub(crate) options: Options,
}

/// Options shared by single servers and cluster members.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) binary: Option<PathBuf>,
    pub(crate) args: Vec<OsString>,
    pub(crate) envs: Vec<(OsString, OsString)>,
    pub(crate) ready_timeout: Duration,
    pub(crate) tls: Option<ServerTls>,
}

/// TLS on a member's client URLs: the URLs become `https://`, and readiness is probed
/// over plain HTTP on an extra `--listen-metrics-urls` port (which serves `/health` on
/// etcd 3.4 and 3.5), as the client port may demand a client certificate.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server certificate (`--cert-file`), PEM.
    pub cert_file: PathBuf,
    /// Its private key (`--key-file`), PEM.
    pub key_file: PathBuf,
    /// The CA that signs client certificates (`--trusted-ca-file`), when there is one.
    pub trusted_ca_file: Option<PathBuf>,
    /// Whether clients must present a certificate signed by that CA
    /// (`--client-cert-auth`).
    pub client_cert_auth: bool,
}

impl ServerTls {
    /// The flags that turn it on.
    pub(crate) fn args(&self) -> Vec<OsString> {
        let mut args = vec![
            OsString::from(format!("--cert-file={}", self.cert_file.display())),
            OsString::from(format!("--key-file={}", self.key_file.display())),
        ];
        if let Some(ca) = &self.trusted_ca_file {
            args.push(format!("--trusted-ca-file={}", ca.display()).into());
        }
        if self.client_cert_auth {
            args.push("--client-cert-auth".into());
        }
        args
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            binary: None,
            args: Vec::new(),
            envs: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            tls: None,
        }
    }
}

impl Options {
    pub(crate) fn arg(&mut self, arg: impl Into<OsString>) {
        self.args.push(arg.into());
    }

    pub(crate) fn env(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        self.envs.push((key.into(), value.into()));
    }
}

impl EtcdServerBuilder {
    /// Adds one extra command-line flag, e.g. `"--max-txn-ops=4"`.
    ///
    /// Extra flags come after the harness's own, so for ordinary flags the
    /// last one wins. Do not override the data dir, names or URLs.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.options.arg(arg);
        self
    }

    /// Adds several extra command-line flags.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        for arg in args {
            self.options.arg(arg);
        }
        self
    }

    /// Sets an environment variable for etcd.
    ///
    /// `ETCD_*` variables inherited from the test process are removed (etcd
    /// reads them as flags), except `ETCD_UNSUPPORTED_ARCH`; ones set here are
    /// passed through.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.options.env(key, value);
        self
    }

    /// Sets how long to wait for `/health` on start and restart (default
    /// [`DEFAULT_READY_TIMEOUT`]).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.options.ready_timeout = timeout;
        self
    }

    /// Runs this binary instead of [`etcd_binary`].
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.binary = Some(path.into());
        self
    }

    /// Serves the client URLs over TLS (`https://`); see [`ServerTls`].
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// Starts the server and waits until it is healthy.
    ///
    /// # Panics
    ///
    /// Panics when etcd cannot be spawned, exits, or is not healthy within
    /// the ready timeout; the message carries the tail of its log.
    pub async fn start(self) -> EtcdServer {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let [client, peer, metrics] = pick_free_ports::<3>();
            let mut spec = MemberSpec::single(&self.options, client, peer);
            spec.metrics = metrics;
            let server = EtcdServer::spawn(spec).unwrap_or_else(|e| panic!("{e}"));
            match server.wait_ready_inner().await {
                Ok(()) => return server,
                Err(e) if e.port_in_use => last_error = e.message,
                Err(e) => panic!("{}", e.message),
            }
        }
        panic!("{last_error}")
    }
}

impl EtcdServer {
    /// Starts a single-member etcd with default flags and waits until it is
    /// healthy. Same as `EtcdServer::builder().start()`.
    ///
    /// # Panics
    ///
    /// See [`EtcdServerBuilder::start`].
    pub async fn start() -> EtcdServer {
        Self::builder().start().await
    }

    /// Returns a builder for a server with extra flags or environment.
    pub fn builder() -> EtcdServerBuilder {
        EtcdServerBuilder {
            options: Options::default(),
        }
    }

    /// Creates the temp dir and spawns the process, without waiting.
    pub(crate) fn spawn(spec: MemberSpec) -> Result<EtcdServer, String> {
        let dir = make_temp_dir().map_err(|e| format!("cannot create a temp dir for etcd: {e}"))?;
        let server = EtcdServer {
            spec,
            dir,
            child: Mutex::new(None),
            last_pid: AtomicU32::new(0),
            joins: std::sync::atomic::AtomicBool::new(false),
        };
        server.spawn_process()?;
        Ok(server)
    }

    fn spawn_process(&self) -> Result<(), String> {
        let spec = &self.spec;
        let dir = self.dir.path();
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .map_err(|e| format!("cannot open {}: {e}", self.stderr_path().display()))?;
        let output2 = output
            .try_clone()
            .map_err(|e| format!("cannot dup the etcd output file: {e}"))?;

        let mut cmd = Command::new(&spec.binary);
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("ETCD_") && name != "ETCD_UNSUPPORTED_ARCH" {
                cmd.env_remove(key);
            }
        }
        cmd.envs(spec.options.envs.iter().map(|(k, v)| (k, v)))
            .arg(format!("--name={}", spec.name))
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={}", spec.client_url()))
            .arg(format!("--advertise-client-urls={}", spec.client_url()))
            .arg(format!("--listen-peer-urls={}", url(spec.peer)))
            .arg(format!("--initial-advertise-peer-urls={}", url(spec.peer)))
            .arg(format!("--initial-cluster={}", spec.initial_cluster))
            .arg(if self.joins.load(Ordering::SeqCst) {
                "--initial-cluster-state=existing"
            } else {
                "--initial-cluster-state=new"
            })
            .arg(format!("--initial-cluster-token={}", spec.cluster_token))
            // etcd 3.4 defaults to capnslog, which ignores file log outputs.
            .arg("--logger=zap")
            .arg(format!("--log-outputs={}", self.log_path().display()));
        if let Some(tls) = &spec.options.tls {
            cmd.args(tls.args())
                .arg(format!("--listen-metrics-urls={}", url(spec.metrics)));
        }
        cmd.args(&spec.options.args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(output))
            .stderr(Stdio::from(output2));

        let child = spawn_with_pdeathsig(cmd)
            .map_err(|e| format!("cannot spawn etcd `{}`: {e}", spec.binary.display()))?;
        self.last_pid.store(child.id(), Ordering::SeqCst);
        *self.lock_child() = Some(child);
        Ok(())
    }

    fn lock_child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The member name (`--name`).
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Client URL, e.g. `http://127.0.0.1:40123` (`https://` with [`ServerTls`]).
    pub fn client_url(&self) -> String {
        self.spec.client_url()
    }

    /// The plain-HTTP URL whose `/health` tells readiness: the client URL, or with
    /// [`ServerTls`] the metrics URL.
    pub fn health_url(&self) -> String {
        self.spec.health_url()
    }

    /// Client address (`127.0.0.1:PORT`), e.g. as a [`FaultProxy`] target.
    ///
    /// [`FaultProxy`]: crate::FaultProxy
    pub fn client_addr(&self) -> SocketAddr {
        self.spec.client
    }

    /// The client URLs to hand to a client: just [`client_url`](Self::client_url).
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.client_url()]
    }

    /// Peer URL, e.g. `http://127.0.0.1:40124`.
    pub fn peer_url(&self) -> String {
        url(self.spec.peer)
    }

    /// Pid of the most recently spawned etcd process (it may have exited).
    pub fn pid(&self) -> u32 {
        self.last_pid.load(Ordering::SeqCst)
    }

    /// Whether the etcd process is running (a paused process counts as
    /// running).
    pub fn is_running(&self) -> bool {
        match self.lock_child().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills etcd with `SIGKILL` and reaps it. Does nothing if it is not
    /// running. Data dir and ports are kept for [`restart`](Self::restart).
    pub fn kill(&self) {
        let mut guard = self.lock_child();
        if let Some(mut child) = guard.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops etcd with `SIGSTOP`: it keeps its sockets but answers nothing.
    /// Returns once the process is stopped.
    ///
    /// # Panics
    ///
    /// Panics if etcd is not running.
    pub fn pause(&self) {
        self.send_signal(libc::SIGSTOP, "pause");
    }

    /// Continues a [`pause`](Self::pause)d etcd with `SIGCONT`. Returns once
    /// the process runs again; it may take a moment to answer requests.
    ///
    /// # Panics
    ///
    /// Panics if etcd is not running.
    pub fn resume(&self) {
        self.send_signal(libc::SIGCONT, "resume");
    }

    fn send_signal(&self, sig: libc::c_int, what: &str) {
        let mut guard = self.lock_child();
        let pid = guard
            .as_mut()
            .and_then(|child| matches!(child.try_wait(), Ok(None)).then(|| child.id()))
            .unwrap_or_else(|| panic!("cannot {what} etcd member {}: not running", self.name()));
        signal(pid, sig).unwrap_or_else(|e| panic!("cannot {what} etcd: {e}"));
        // Signals are delivered asynchronously; return once it took effect.
        let want_stopped = sig == libc::SIGSTOP;
        let deadline = Instant::now() + Duration::from_secs(2);
        while process_stopped(pid) != want_stopped && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Kills etcd if it is running (`SIGKILL`, like a crash), starts it again
    /// with the same flags, data dir and ports, and waits until it is
    /// healthy.
    ///
    /// For a cluster member, "healthy" needs a quorum of the cluster.
    ///
    /// # Panics
    ///
    /// Panics when etcd cannot be spawned or is not healthy in time.
    pub async fn restart(&self) {
        self.kill();
        self.spawn_process().unwrap_or_else(|e| panic!("{e}"));
        self.wait_ready().await;
    }

    /// Kills the member, wipes its data dir and starts it as a new member of the running
    /// cluster (`--initial-cluster-state=existing`, same name, ports and peer URL), then
    /// waits until it is healthy. The cluster must have removed the old member and added
    /// the new one first: see [`EtcdCluster::replace_member`](crate::EtcdCluster::replace_member).
    ///
    /// # Panics
    ///
    /// When the data dir cannot be removed, etcd cannot be spawned or is not healthy in
    /// time.
    pub async fn rejoin_wiped(&self) {
        self.kill();
        let data = self.data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .unwrap_or_else(|e| panic!("cannot wipe {}: {e}", data.display()));
        }
        self.joins.store(true, Ordering::SeqCst);
        self.spawn_process().unwrap_or_else(|e| panic!("{e}"));
        self.wait_ready().await;
    }

    /// Waits until `/health` answers `"health":"true"`, for the ready timeout.
    ///
    /// # Panics
    ///
    /// Panics with the log tail when etcd exits or stays unhealthy.
    pub async fn wait_ready(&self) {
        if let Err(e) = self.wait_ready_inner().await {
            panic!("{}", e.message);
        }
    }

    /// One `/health` probe with a one second timeout.
    pub async fn is_healthy(&self) -> bool {
        http::is_healthy(&self.health_url(), Duration::from_secs(1)).await
    }

    pub(crate) async fn wait_ready_inner(&self) -> Result<(), ReadyError> {
        let url = self.health_url();
        let started = Instant::now();
        let deadline = started + self.spec.options.ready_timeout;
        loop {
            let exited = match self.lock_child().as_mut() {
                Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
                None => Some("not running".to_string()),
            };
            if let Some(status) = exited {
                let log = self.log_tail(PANIC_LOG_LINES);
                return Err(ReadyError {
                    port_in_use: log.contains("address already in use"),
                    message: format!(
                        "etcd member {} ({}) exited during startup ({status})\n{log}",
                        self.name(),
                        self.spec.binary.display()
                    ),
                });
            }
            let now = Instant::now();
            let probe = deadline
                .saturating_duration_since(now)
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(100));
            if http::is_healthy(&url, probe).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReadyError {
                    port_in_use: false,
                    message: format!(
                        "etcd member {} ({}, pid {}) not healthy at {url}/health after {:?}\n{}",
                        self.name(),
                        self.spec.binary.display(),
                        self.pid(),
                        started.elapsed(),
                        self.log_tail(PANIC_LOG_LINES)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The temporary directory holding the data dir and the logs; removed on
    /// drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data dir (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The etcd log file (`--log-outputs`, zap JSON lines).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    /// The last `n` lines of the etcd log, followed by the last `n` lines
    /// of its stdout/stderr when there are any (flag errors and Go panics
    /// land there), for diagnostics.
    pub fn log_tail(&self, n: usize) -> String {
        let mut out = format!("--- last {n} lines of {} ---\n", self.log_path().display());
        out.push_str(&tail(&self.log_path(), n));
        let stderr = tail(&self.stderr_path(), n);
        if !stderr.trim().is_empty() {
            out.push_str(&format!(
                "--- last {n} lines of {} ---\n",
                self.stderr_path().display()
            ));
            out.push_str(&stderr);
        }
        out
    }

    /// Kills etcd and deletes the temp dir; used at process exit for a
    /// server kept in a `static`, whose destructor never runs.
    pub(crate) fn cleanup_at_exit(&self) {
        // Do not block on the lock: another thread may hold it at exit.
        let _ = signal(self.pid(), libc::SIGKILL);
        if let Ok(mut guard) = self.child.try_lock()
            && let Some(mut child) = guard.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Runs before the TempDir field is dropped, so etcd is gone before
        // its data dir is removed.
        self.kill();
    }
}

/// Why waiting for readiness failed.
#[derive(Debug)]
pub(crate) struct ReadyError {
    pub(crate) port_in_use: bool,
    pub(crate) message: String,
}

/// Everything needed to (re)spawn one member.
#[derive(Debug, Clone)]
pub(crate) struct MemberSpec {
    pub(crate) name: String,
    pub(crate) binary: PathBuf,
    pub(crate) client: SocketAddr,
    pub(crate) peer: SocketAddr,
    /// The `--listen-metrics-urls` port, used with TLS only.
    pub(crate) metrics: SocketAddr,
    pub(crate) initial_cluster: String,
    pub(crate) cluster_token: String,
    pub(crate) options: Options,
}

impl MemberSpec {
    fn single(options: &Options, client: SocketAddr, peer: SocketAddr) -> Self {
        let name = "m0".to_string();
        Self {
            initial_cluster: format!("{name}={}", url(peer)),
            name,
            binary: binary_for(options),
            client,
            peer,
            metrics: client,
            cluster_token: unique_token(),
            options: options.clone(),
        }
    }
}

impl MemberSpec {
    pub(crate) fn client_url(&self) -> String {
        match self.options.tls {
            Some(_) => format!("https://{}", self.client),
            None => url(self.client),
        }
    }

    pub(crate) fn health_url(&self) -> String {
        match self.options.tls {
            Some(_) => url(self.metrics),
            None => url(self.client),
        }
    }
}

pub(crate) fn binary_for(options: &Options) -> PathBuf {
    options
        .binary
        .clone()
        .unwrap_or_else(|| etcd_binary().to_path_buf())
}

pub(crate) fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// A cluster token unique within this machine and run.
pub(crate) fn unique_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "etcd-testkit-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Loopback ports handed out to etcd members or fault proxies in this
/// process.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Marks `port` as taken, so [`pick_free_ports`] never hands it out (used for
/// a fault proxy's port, which it may release and bind again).
pub(crate) fn reserve_port(port: u16) {
    HANDED_OUT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(port);
}

/// Picks `N` distinct free loopback ports by binding `127.0.0.1:0` and
/// closing again. Ports already handed out in this process are skipped, so
/// a killed member's ports are not given to a new one while it may restart.
pub(crate) fn pick_free_ports<const N: usize>() -> [SocketAddr; N] {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    let mut held = Vec::new();
    let mut picked = Vec::with_capacity(N);
    while picked.len() < N {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr of a bound socket");
        if handed_out.insert(addr.port()) {
            picked.push(addr);
        }
        // Keep every listener open until all are picked so that the kernel
        // hands out distinct ports.
        held.push(listener);
        assert!(held.len() < 1000, "cannot find {N} free loopback ports");
    }
    drop(held);
    picked.try_into().expect("N ports picked")
}

fn make_temp_dir() -> io::Result<TempDir> {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("etcd-testkit-");
        b
    };
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return Ok(dir);
    }
    builder.tempdir()
}

fn tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return "(no file)\n".to_string();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}
