//! Scale: 10,000 watches over one gRPC stream all receive their events, and the delivery
//! rate of a catch-up. Prints the numbers (memory, rates) for the benchmark issue.

mod watch_check;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use etcd_core::Kv;
use etcd_core::grpc::GrpcKv;
use etcd_core::kv::Op;
use etcd_testkit::EtcdServer;
use etcd_watch::Watch;
use futures::StreamExt;
use watch_check::*;

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watches_on_one_stream() {
    const N: usize = 10_000;
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let kv = Kv::new(GrpcKv::new(channel(&url)));
    let watcher = watcher(&url).with_buffer_bytes(64 << 20);
    let (group, mut events) = watcher.group();
    let rss_before = rss_kib();

    let started = Instant::now();
    let ids =
        futures::future::join_all((0..N).map(|i| group.add(Watch::key(format!("/scale/{i:05}")))))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    let created_in = started.elapsed();
    wait_watchers(&url, N as i64).await;
    let rss_created = rss_kib();

    // One event per watch: 100 transactions of 100 puts.
    let started = Instant::now();
    for t in 0..N / 100 {
        let ops: Vec<Op> = (0..100)
            .map(|i| Op::put(format!("/scale/{:05}", t * 100 + i), "v"))
            .collect();
        kv.txn().then(ops).await.unwrap();
    }
    let written_in = started.elapsed();
    let mut got: HashMap<etcd_watch::WatchId, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut total = 0;
    while total < N {
        let (id, resp) = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("events missing")
            .unwrap();
        let n = resp.unwrap().events().len();
        *got.entry(id).or_default() += n;
        total += n;
    }
    let delivered_in = started.elapsed();
    let rss_delivered = rss_kib();
    assert_eq!(got.len(), N);
    assert!(ids.iter().all(|id| got.get(id) == Some(&1)));
    eprintln!(
        "scale: {N} watches created in {created_in:?}; {N} events written in {written_in:?}, \
         all delivered {delivered_in:?} after the first write; RSS {} MiB before, {} MiB with the \
         watches (+{} KiB, {} B/watch), {} MiB after delivery",
        rss_before / 1024,
        rss_created / 1024,
        rss_created.saturating_sub(rss_before),
        rss_created.saturating_sub(rss_before) * 1024 / N as u64,
        rss_delivered / 1024
    );
    drop(group);
    wait_watchers(&url, 0).await;
}

/// Delivery rate of one watch catching up over 20,000 events (200 revisions of 100).
#[tokio::test]
async fn catch_up_delivery_rate() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let kv = Kv::new(GrpcKv::new(channel(&url)));
    let start = kv.put("/rate/start", "0").await.unwrap().revision();
    let mut last = 0;
    for t in 0..200 {
        let ops: Vec<Op> = (0..100)
            .map(|i| Op::put(format!("/rate/{i:03}"), format!("value {t}")))
            .collect();
        last = kv.txn().then(ops).await.unwrap().revision();
    }
    let watcher = watcher(&url);
    let started = Instant::now();
    let mut stream = watcher
        .watch("/rate/")
        .prefix()
        .from_revision(start)
        .await
        .unwrap();
    let rec = collect(&mut stream, last, Duration::from_secs(30)).await;
    let took = started.elapsed();
    let n = rec.events().len();
    assert_eq!(n, 20_001);
    eprintln!(
        "rate: {n} events in {} responses in {took:?}: {:.0} events/s",
        rec.responses.len(),
        n as f64 / took.as_secs_f64()
    );
}
