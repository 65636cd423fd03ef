//! Hostile members on the path users run: `etcd3::Client` as a user builds it, with
//! a request timeout, pointed at a "member" that breaks HTTP/2 in one way after another
//! (`etcd_tests::hostile::Offence`). Each call must end within the request timeout with a
//! typed error, no task may panic, the process's memory must stay bounded, and a client of
//! a real etcd in the same process must keep working throughout.
//!
//! One test in its own binary, so that the process's memory is this test's alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_testkit::EtcdServer;
use etcd_tests::hostile::{HostileMember, Offence};
use etcd3::Client;

/// The request timeout the clients are built with.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scheduling slack on top of it (the machine is small and shared).
const SLACK: Duration = Duration::from_millis(1500);
/// How much the process's resident memory may grow over all the offences.
const MAX_GROWTH_KIB: u64 = 32 << 10;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_to_a_hostile_member_ends_promptly_and_the_process_stays_well() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let server = EtcdServer::start().await;
    let healthy = Client::builder([server.client_url()])
        .request_timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .unwrap();
    healthy.kv().put("hostile/k", "v").await.unwrap();
    let before = rss_kib();
    for offence in Offence::ALL {
        let member = HostileMember::start(offence).await;
        let client = Client::builder([member.url()])
            .request_timeout(REQUEST_TIMEOUT)
            .connect()
            .await
            .unwrap();
        let started = Instant::now();
        let ended = tokio::time::timeout(REQUEST_TIMEOUT * 3, client.kv().get("hostile/k")).await;
        let took = started.elapsed();
        let result = ended.unwrap_or_else(|_| panic!("{offence:?}: the call did not end"));
        let error = result.expect_err("a hostile member gave a value");
        eprintln!("{offence:?}: ended after {took:?}: {error}");
        assert!(
            took <= REQUEST_TIMEOUT + SLACK,
            "{offence:?}: took {took:?}: {error}"
        );
        // The same process, a real member: works as before.
        let got = healthy.kv().get("hostile/k").await.unwrap();
        assert_eq!(got.kvs()[0].value(), b"v", "{offence:?}");
        drop(client);
        drop(member);
        let grown = rss_kib().saturating_sub(before);
        eprintln!("{offence:?}: resident memory grown by {grown} KiB in all");
        assert!(grown < MAX_GROWTH_KIB, "{offence:?}: grown by {grown} KiB");
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a task panicked");
}
