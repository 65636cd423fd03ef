//! Tests of the test kit itself (`etcd-testkit`: servers, clusters, the fault proxy, the
//! shared server, spawning with PDEATHSIG), against real etcd processes.
//!
//! Run against a given binary with `ETCD_BIN=/path/to/etcd cargo test -p
//! etcd-tests --test harness`.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_testkit::process::{process_alive, process_stopped};
use etcd_testkit::{EtcdCluster, EtcdServer, FaultProxy, Mode, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const SHORT: Duration = Duration::from_millis(300);

async fn wait_until_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn reports_binary_and_version() {
    let bin = etcd_testkit::etcd_binary();
    let version = etcd_testkit::etcd_version();
    eprintln!("etcd {version} at {}", bin.display());
    assert_eq!(version.major, 3);
}

#[tokio::test]
async fn server_starts_healthy_and_drop_kills_it() {
    let server = EtcdServer::start().await;
    let pid = server.pid();
    let dir = server.dir().to_path_buf();
    assert!(server.is_running());
    assert!(process_alive(pid));
    assert_eq!(server.endpoints(), vec![server.client_url()]);
    assert!(server.client_url().starts_with("http://127.0.0.1:"));

    let resp = http::get(&server.client_url(), "/health", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.body.contains(r#""health":"true""#), "{}", resp.body);
    assert!(server.log_tail(5).contains("etcd.log"));
    assert!(std::fs::metadata(server.log_path()).unwrap().len() > 0);

    drop(server);
    // Reaped by drop, so the pid is gone at once (not even a zombie).
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
}

#[tokio::test]
async fn panic_unwind_kills_server() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let server = EtcdServer::start().await;
        tx.send(server.pid()).unwrap();
        panic!("test panic while the server is alive");
    });
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    let pid = rx.await.unwrap();
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn pause_and_resume() {
    let server = EtcdServer::start().await;
    server.pause();
    assert!(process_stopped(server.pid()));
    assert!(server.is_running());
    assert!(!http::is_healthy(&server.client_url(), SHORT).await);
    server.resume();
    server.wait_ready().await;
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn restart_keeps_data_and_ports() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    http::kv_put(&url, b"harness/restart", b"kept")
        .await
        .unwrap();
    let first_pid = server.pid();

    server.kill();
    assert!(!server.is_running());
    assert!(!process_alive(first_pid));
    assert!(!http::is_healthy(&url, SHORT).await);

    server.restart().await;
    assert_ne!(server.pid(), first_pid);
    assert_eq!(server.client_url(), url);
    assert_eq!(
        http::kv_get(&url, b"harness/restart").await.unwrap(),
        Some(b"kept".to_vec())
    );
    assert_eq!(http::kv_get(&url, b"harness/missing").await.unwrap(), None);

    // Restarting a running server works too (it is killed first).
    server.restart().await;
    assert_eq!(
        http::kv_get(&url, b"harness/restart").await.unwrap(),
        Some(b"kept".to_vec())
    );
}

#[tokio::test]
async fn builder_passes_extra_flags() {
    let server = EtcdServer::builder().arg("--max-txn-ops=2").start().await;
    // Keys "a", "b", "c", ... (base64 "YQ==", "Yg==", "Yw==", ...).
    let keys = ["YQ==", "Yg==", "Yw=="];
    let txn = |n: usize| {
        let puts: Vec<String> = keys[..n]
            .iter()
            .map(|k| format!(r#"{{"request_put":{{"key":"{k}","value":"dg=="}}}}"#))
            .collect();
        format!(r#"{{"success":[{}]}}"#, puts.join(","))
    };
    let ok = http::post(&server.client_url(), "/v3/kv/txn", &txn(2), SHORT * 10)
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let too_many = http::post(&server.client_url(), "/v3/kv/txn", &txn(3), SHORT * 10)
        .await
        .unwrap();
    assert_ne!(too_many.status, 200, "{}", too_many.body);
    assert!(
        too_many.body.contains("too many operations"),
        "{}",
        too_many.body
    );
}

#[tokio::test]
async fn cluster_survives_losing_a_member_and_rejoins() {
    let cluster = EtcdCluster::start(3).await;
    assert_eq!(cluster.len(), 3);
    let urls = cluster.client_urls();
    assert_eq!(urls.len(), 3);
    for url in &urls {
        assert!(http::is_healthy(url, Duration::from_secs(1)).await);
    }

    cluster.member(0).kill();
    assert!(!cluster.member(0).is_running());
    // Two of three keep quorum (after an election if m0 led).
    cluster.member(1).wait_ready().await;
    cluster.member(2).wait_ready().await;
    http::kv_put(&urls[1], b"harness/cluster", b"v")
        .await
        .unwrap();

    // The restarted member rejoins with its data dir and catches up.
    cluster.member(0).restart().await;
    assert_eq!(
        http::kv_get(&urls[0], b"harness/cluster").await.unwrap(),
        Some(b"v".to_vec())
    );
}

/// Run only as a child of `pdeathsig_kills_etcd_when_test_binary_dies`.
#[test]
#[ignore = "helper run in a child process by another test"]
fn pdeathsig_child() {
    if std::env::var_os("ETCD_TESTS_PDEATHSIG_CHILD").is_none() {
        return;
    }
    // Start etcd from a short-lived thread with its own runtime, like a
    // test that stores a server in a static.
    let server = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(EtcdServer::start())
    })
    .join()
    .unwrap();
    println!("ETCD_PID={}", server.pid());
    println!("ETCD_DIR={}", server.dir().display());
    // PDEATHSIG would have fired by now had the thread above forked etcd.
    std::thread::sleep(Duration::from_millis(500));
    println!("ALIVE_AFTER_THREAD_EXIT={}", process_alive(server.pid()));
    std::mem::forget(server);
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // Die without running any destructor.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

#[tokio::test]
async fn pdeathsig_kills_etcd_when_test_binary_dies() {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["pdeathsig_child", "--exact", "--ignored", "--nocapture"])
        .env("ETCD_TESTS_PDEATHSIG_CHILD", "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
            .unwrap_or_else(|| {
                panic!(
                    "child printed no {name}:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    let pid: u32 = field("ETCD_PID").parse().unwrap();
    // The child died without cleaning up; do it even if an assert fails.
    let _cleanup = OrphanCleanup {
        pid,
        dir: field("ETCD_DIR"),
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{stdout}");
    // Still alive after the thread that started it had exited...
    assert_eq!(field("ALIVE_AFTER_THREAD_EXIT"), "true");
    // ...but gone once the whole process died.
    wait_until_dead(pid).await;
}

struct OrphanCleanup {
    pid: u32,
    dir: String,
}

impl Drop for OrphanCleanup {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        if process_alive(self.pid) && String::from_utf8_lossy(&cmdline).contains(&self.dir) {
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn shared_server_works_across_runtimes() {
    let prefixes: Vec<String> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        let server = etcd_testkit::shared_server();
                        let prefix = etcd_testkit::unique_prefix("shared");
                        let key = format!("{prefix}k");
                        http::kv_put(&server.client_url(), key.as_bytes(), b"v")
                            .await
                            .unwrap();
                        assert_eq!(
                            http::kv_get(&server.client_url(), key.as_bytes())
                                .await
                                .unwrap(),
                            Some(b"v".to_vec()),
                            "runtime {i}"
                        );
                        (server as *const EtcdServer as usize, prefix)
                    })
            })
            .join()
            .unwrap()
        })
        .map(|(ptr, prefix)| {
            assert_eq!(ptr, etcd_testkit::shared_server() as *const _ as usize);
            prefix
        })
        .collect();
    assert_ne!(prefixes[0], prefixes[1]);
    assert!(prefixes[0].ends_with('/'));
}

#[tokio::test]
async fn proxy_health_check_reaches_etcd() {
    let server = etcd_testkit::shared_server();
    let proxy = FaultProxy::start(server.client_addr()).await;
    assert!(http::is_healthy(&proxy.url(), Duration::from_secs(2)).await);
    proxy.set_mode(Mode::Blackhole).await;
    assert!(!http::is_healthy(&proxy.url(), SHORT).await);
    proxy.set_mode(Mode::Pass).await;
    assert!(http::is_healthy(&proxy.url(), Duration::from_secs(2)).await);
    let stats = proxy.stats();
    assert_eq!(stats.connections_accepted, 3);
    assert!(stats.bytes_server_to_client > 0 && stats.bytes_client_to_server > 0);
}

// ---- proxy against a local echo server ----

struct Echo {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_server() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    let task = tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            seen.lock().unwrap().extend_from_slice(&buf[..n]);
                            if sock.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Echo {
        addr,
        received,
        task,
    }
}

/// Reads once, `None` on timeout.
async fn read_within(sock: &mut TcpStream, timeout: Duration) -> Option<io::Result<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    match tokio::time::timeout(timeout, sock.read(&mut buf)).await {
        Ok(Ok(n)) => Some(Ok(buf[..n].to_vec())),
        Ok(Err(e)) => Some(Err(e)),
        Err(_) => None,
    }
}

async fn roundtrip(sock: &mut TcpStream, data: &[u8]) {
    sock.write_all(data).await.unwrap();
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(2), sock.read_exact(&mut got))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(got, data);
}

fn assert_reset(result: Option<io::Result<Vec<u8>>>) {
    match result {
        Some(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        other => panic!("expected a reset, got {other:?}"),
    }
}

#[tokio::test]
async fn proxy_pass_and_counters() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await;
    assert_eq!(proxy.mode(), Mode::Pass);
    assert_eq!(proxy.target(), echo.addr);
    assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));
    let mut sock = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut sock, b"hello").await;
    roundtrip(&mut sock, b"world!").await;
    let stats = proxy.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.connections_active, 1);
    assert_eq!(stats.bytes_client_to_server, 11);
    assert_eq!(stats.bytes_server_to_client, 11);

    // Half-close is passed on; the connection then ends cleanly.
    sock.shutdown().await.unwrap();
    assert_eq!(read_within(&mut sock, SHORT).await.unwrap().unwrap(), b"");
    let deadline = Instant::now() + Duration::from_secs(2);
    while proxy.stats().connections_active > 0 {
        assert!(Instant::now() < deadline, "connection not finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn proxy_blackhole_holds_traffic() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await;
    let mut sock = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut sock, b"before").await;

    proxy.set_mode(Mode::Blackhole).await;
    sock.write_all(b"held").await.unwrap();
    assert!(
        read_within(&mut sock, SHORT).await.is_none(),
        "blackhole leaked"
    );
    // New connections are accepted but get nothing either.
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    fresh.write_all(b"new").await.unwrap();
    assert!(read_within(&mut fresh, SHORT).await.is_none());
    assert_eq!(echo.received.lock().unwrap().as_slice(), b"before");

    proxy.set_mode(Mode::Pass).await;
    let mut got = [0u8; 4];
    sock.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"held");
    let mut got = [0u8; 3];
    fresh.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"new");
}

#[tokio::test]
async fn proxy_drop_all_resets_then_passes() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut a, b"a").await;
    roundtrip(&mut b, b"b").await;

    proxy.set_mode(Mode::DropAll).await;
    assert_reset(read_within(&mut a, SHORT).await);
    assert_reset(read_within(&mut b, SHORT).await);
    assert_eq!(proxy.stats().connections_reset, 2);

    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut c, b"after").await;
}

#[tokio::test]
async fn proxy_refuse_then_pass_rebinds() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut old, b"x").await;

    proxy.set_mode(Mode::Refuse).await;
    let err = TcpStream::connect(proxy.addr()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert_reset(read_within(&mut old, SHORT).await);

    proxy.set_mode(Mode::Pass).await;
    let mut sock = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut sock, b"back").await;
}

#[tokio::test]
async fn proxy_pause_stops_accepting_and_reading() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut old, b"1").await;

    proxy.set_mode(Mode::Pause).await;
    old.write_all(b"2").await.unwrap();
    // The kernel still completes the handshake into the backlog.
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    fresh.write_all(b"3").await.unwrap();
    assert!(read_within(&mut old, SHORT).await.is_none());
    assert!(
        read_within(&mut fresh, Duration::from_millis(50))
            .await
            .is_none()
    );
    assert_eq!(proxy.stats().connections_accepted, 1);

    proxy.set_mode(Mode::Pass).await;
    let mut got = [0u8; 1];
    old.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"2");
    fresh.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"3");
    assert_eq!(proxy.stats().connections_accepted, 2);
}

#[tokio::test]
async fn proxy_delay_adds_latency() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await;
    let mut sock = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut sock, b"warm").await;
    proxy
        .set_mode(Mode::Delay(Duration::from_millis(100)))
        .await;
    let started = Instant::now();
    roundtrip(&mut sock, b"slow").await;
    // Delayed once each way.
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn proxy_cut_after_request_forwards_but_never_answers() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await;
    let mut sock = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut sock, b"ok").await;

    proxy.set_mode(Mode::CutAfterRequest { n: 1 }).await;
    assert_eq!(proxy.stats().cuts_remaining, 1);
    sock.write_all(b"request").await.unwrap();
    // The client sees a reset, never the echo...
    assert_reset(read_within(&mut sock, Duration::from_secs(2)).await);
    // ...although the server got the request.
    let deadline = Instant::now() + Duration::from_secs(2);
    while echo.received.lock().unwrap().as_slice() != b"okrequest" {
        assert!(Instant::now() < deadline, "request not forwarded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = proxy.stats();
    assert_eq!((stats.connections_cut, stats.cuts_remaining), (1, 0));
    assert_eq!(stats.bytes_server_to_client, 2);

    // The budget is spent: the next connection passes.
    let mut next = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut next, b"again").await;
}

#[tokio::test]
async fn startup_failure_reports_the_etcd_output() {
    let failed = tokio::spawn(EtcdServer::builder().arg("--no-such-flag").start())
        .await
        .unwrap_err();
    let panic = failed.into_panic();
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(message.contains("exited during startup"), "{message}");
    assert!(message.contains("no-such-flag"), "{message}");
}
