//! A cache of 10,000 keys of 256-byte values through `Client`: its memory stays within
//! twice the raw bytes of its keys and values. Alone in its file, so that no other test's
//! memory counts.

use std::time::Duration;

use etcd_testkit::EtcdServer;
use etcd3::kv::Op;
use etcd3::{Client, KeyRange};
use futures::StreamExt;

const KEYS: usize = 10_000;
const VALUE: usize = 256;

/// This process's resident memory now, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_costs_at_most_twice_its_raw_bytes() {
    let server = EtcdServer::start().await;
    let client = Client::connect(server.endpoints()).await.unwrap();
    let value = "v".repeat(VALUE);
    let writes = futures::stream::iter((0..KEYS).step_by(100).map(|first| {
        let (kv, value) = (client.kv().clone(), value.clone());
        async move {
            let puts = (first..first + 100).map(|i| Op::put(format!("m/{i:05}"), value.clone()));
            kv.txn().then(puts).await.unwrap();
        }
    }));
    writes.buffer_unordered(8).collect::<Vec<()>>().await;
    let raw: usize = KEYS * (format!("m/{:05}", 0).len() + VALUE);

    // Settle what the writes allocated, then measure the cache alone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss();
    let cache = client.cache(KeyRange::prefix("m/")).await.unwrap();
    assert_eq!(cache.len(), KEYS);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss();
    let cost = after.saturating_sub(before);
    eprintln!(
        "a cache of {KEYS} keys ({:.2} MiB raw) costs {:.2} MiB of RSS",
        raw as f64 / 1048576.0,
        cost as f64 / 1048576.0
    );
    assert!(
        cost <= 2 * raw as u64,
        "the cache costs {cost} bytes for {raw} raw bytes"
    );
    drop(cache);
}
