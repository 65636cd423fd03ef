//! Issue 4's scale run: 10,000 leases kept alive by one lessor over one stream at TTL 10 s
//! for a minute; none may be lost. Prints client CPU time and memory.
//!
//! Takes about 90 s, so it is opt-in:
//! `cargo test -p etcd-tests --test lease_scale -- --ignored --nocapture`.
//! `LEASE_SCALE_N` and `LEASE_SCALE_SECS` change the lease count and the duration.

use std::time::Duration;

use etcd_core::grpc::GrpcLease;
use etcd_lease::Lessor;
use etcd_tests::EtcdServer;
use futures::StreamExt;
use tokio::time::Instant;
use tonic::transport::Endpoint;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale run of about 90 s; run with --ignored"]
async fn ten_thousand_leases_over_one_stream() {
    let n = env_or("LEASE_SCALE_N", 10_000) as usize;
    let run = Duration::from_secs(env_or("LEASE_SCALE_SECS", 60));
    let server = EtcdServer::start().await;
    let channel = Endpoint::from_shared(server.client_url())
        .unwrap()
        .connect_lazy();
    let lessor = Lessor::new(GrpcLease::new(channel));

    let started = Instant::now();
    let ids: Vec<i64> = futures::stream::iter(0..n)
        .map(|_| {
            let lessor = lessor.clone();
            async move { lessor.grant(Duration::from_secs(10)).await.unwrap().id() }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    eprintln!("granted {n} leases in {:?}", started.elapsed());
    let rss_before = rss_kib();

    let started = Instant::now();
    let keepers: Vec<_> = futures::stream::iter(ids)
        .map(|id| {
            let lessor = lessor.clone();
            async move { lessor.keep_alive(id).await.unwrap() }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    eprintln!("{n} keep-alives started in {:?}", started.elapsed());

    let cpu_before = cpu_time();
    let started = Instant::now();
    tokio::time::sleep(run).await;
    let cpu = cpu_time() - cpu_before;
    let lost = keepers.iter().filter(|k| k.loss().is_some()).count();
    let renewals: u64 = keepers.iter().map(|k| k.renewals()).sum();
    eprintln!(
        "{n} leases for {:?}: {lost} lost, {renewals} renewals ({:.0}/s); client CPU {:?} \
         ({:.1} % of one core); RSS {} KiB before keep-alives, {} KiB now",
        started.elapsed(),
        renewals as f64 / started.elapsed().as_secs_f64(),
        cpu,
        100.0 * cpu.as_secs_f64() / started.elapsed().as_secs_f64(),
        rss_before,
        rss_kib()
    );
    assert_eq!(lost, 0);
    // Each lease renewed about every 3.3 s.
    let expected = n as f64 * run.as_secs_f64() / (10.0 / 3.0);
    assert!(
        renewals as f64 > expected * 0.8,
        "{renewals} < 80 % of {expected}"
    );
}
