//! Integration-test harness: real etcd processes, clusters and a
//! fault-injecting proxy.
//!
//! The harness drives the etcd binary found by [`etcd_binary`] (`ETCD_BIN`,
//! else `etcd` on `PATH`) and does not use the client crates for its own
//! work: readiness is `GET /health` on the client URL, and [`http`] offers
//! an independent view of the data through etcd's JSON gateway.
//!
//! - [`EtcdServer`]: one member on free loopback ports with a temporary data
//!   dir; kill, pause, resume and restart it. Killed on drop.
//! - [`EtcdCluster`]: `n` members forming one cluster, each an
//!   [`EtcdServer`].
//! - [`hostile::HostileMember`]: a loopback "member" that breaks HTTP/2 in a chosen way.
//! - [`FaultProxy`]: a TCP proxy in front of a member whose [`Mode`] injects
//!   blackholes, resets, refused connections, delays and cut requests.
//! - [`shared_server`] and [`unique_prefix`]: one server for a whole test
//!   binary, with tests isolated by key prefix.
//! - [`examples::Example`]: runs a compiled example of the workspace (against
//!   one of these servers), with a timeout, and checks its exit status and output.
//!
//! Every etcd process gets `PR_SET_PDEATHSIG(SIGKILL)` (see [`process`]), so
//! an aborted test binary leaves no etcd behind.
//!
//! # Example
//!
//! ```no_run
//! use etcd_tests::{EtcdServer, FaultProxy, Mode, http};
//!
//! #[tokio::test]
//! async fn survives_a_blackhole() {
//!     let server = EtcdServer::builder().arg("--max-txn-ops=4").start().await;
//!     let proxy = FaultProxy::start(server.client_addr()).await;
//!     // Connect the client under test to proxy.url() ...
//!     proxy.set_mode(Mode::Blackhole).await;
//!     // ... expect timeouts ...
//!     proxy.set_mode(Mode::Pass).await;
//!     http::kv_put(&server.client_url(), b"k", b"v").await.unwrap();
//!     assert_eq!(
//!         http::kv_get(&server.client_url(), b"k").await.unwrap(),
//!         Some(b"v".to_vec())
//!     );
//! }
//! ```
//!
//! Tests that only need a working etcd share one:
//!
//! ```no_run
//! #[tokio::test]
//! async fn isolated_by_prefix() {
//!     let server = etcd_tests::shared_server();
//!     let prefix = etcd_tests::unique_prefix("isolated_by_prefix");
//!     let key = format!("{prefix}key");
//!     etcd_tests::http::kv_put(&server.client_url(), key.as_bytes(), b"v")
//!         .await
//!         .unwrap();
//! }
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod binary;
pub mod chaos;
pub mod clients;
pub mod cluster;
pub mod counting;
pub mod examples;
pub mod history;
pub mod hostile;
pub mod http;
pub mod process;
pub mod proxy;
pub mod server;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub use binary::{EtcdVersion, etcd_binary, etcd_version};
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
pub fn shared_server() -> &'static EtcdServer {
    let result = SHARED.get_or_init(|| {
        let started = std::thread::Builder::new()
            .name("etcd-tests-shared-server".into())
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
/// `"/etcd-tests/my_test/1a2b-0-5f3e9c/"`, for tests that share a server.
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
        "/etcd-tests/{name}/{:x}-{}-{:x}/",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos & 0xff_ffff_ffff
    )
}

/// Asserts that `result` is etcd's refusal of kind `kind`, certainly not applied (a
/// refusal before the request was proposed), and returns the error. `what` names the call
/// in the panic message.
#[track_caller]
pub fn expect_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, etcd3::Error>,
    kind: etcd3::ServerErrorKind,
) -> etcd3::Error {
    let error = result.expect_err(what);
    assert_eq!(error.server_kind(), Some(kind), "{what}: {error:?}");
    assert_eq!(error.applied(), etcd3::Applied::No, "{what}: {error:?}");
    error
}
