//! A scan of 100,000 keys through `Client`, in pages of 1,000, while another task rewrites
//! them: the pages are exactly the range as it was at the pinned revision, and the scan's
//! peak memory stays under 32 MiB. Alone in its file, so that no other test's memory
//! counts.

use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use etcd_testkit::EtcdServer;
use etcd3::Client;
use etcd3::kv::{KeyValue, Op};
use futures::StreamExt;

const KEYS: usize = 100_000;
const PAGE: i64 = 1_000;
const PEAK_LIMIT: u64 = 32 << 20;

fn key(i: usize) -> String {
    format!("scan/{i:06}")
}

/// A digest of keys, values and modification revisions, in order, and how many.
#[derive(Debug, Default, PartialEq, Eq)]
struct Digest {
    hash: u64,
    count: usize,
}

impl Digest {
    fn add(&mut self, kv: &KeyValue) {
        let mut hasher = DefaultHasher::new();
        hasher.write_u64(self.hash);
        hasher.write(kv.key());
        hasher.write(kv.value());
        hasher.write_i64(kv.mod_revision());
        self.hash = hasher.finish();
        self.count += 1;
    }
}

/// This process's peak resident memory since the last [`reset_peak`], in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Starts counting the peak from the current resident memory (Linux's `clear_refs`).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_100_000_keys_is_one_snapshot_in_bounded_memory() {
    let server = EtcdServer::start().await;
    let client = Client::connect(server.endpoints()).await.unwrap();
    let kv = client.kv();
    let value = "v".repeat(100);
    let started = Instant::now();
    let writes = futures::stream::iter((0..KEYS).step_by(100).map(|first| {
        let (kv, value) = (kv.clone(), value.clone());
        async move {
            let puts = (first..first + 100).map(|i| Op::put(key(i), value.clone()));
            kv.txn().then(puts).await.unwrap();
        }
    }));
    writes.buffer_unordered(8).collect::<Vec<()>>().await;
    eprintln!("{KEYS} keys written in {:?}", started.elapsed());

    // Another task rewrites keys all along the range while the scan runs.
    let stop = Arc::new(AtomicBool::new(false));
    let rewritten = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (kv, stop, rewritten) = (kv.clone(), stop.clone(), rewritten.clone());
        async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i = (i + 7_919) % KEYS;
                kv.put(key(i), format!("rewritten {i}")).await.unwrap();
                rewritten.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    reset_peak();
    let before = peak_rss();
    let started = Instant::now();
    let mut pages = kv.get("scan/").prefix().paginate(PAGE);
    let mut scanned = Digest::default();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        assert!(page.kvs().len() as i64 <= PAGE);
        page.kvs().iter().for_each(|kv| scanned.add(kv));
        page_count += 1;
    }
    let took = started.elapsed();
    let peak = peak_rss();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let pinned = pages.revision().expect("a pinned revision");
    eprintln!(
        "scanned {} keys in {page_count} pages in {took:?} at revision {pinned}, while {} \
         rewrites went on; peak RSS {:.1} MiB (from {:.1} MiB)",
        scanned.count,
        rewritten.load(Ordering::Relaxed),
        peak as f64 / 1048576.0,
        before as f64 / 1048576.0,
    );

    assert_eq!(scanned.count, KEYS);
    assert_eq!(page_count, KEYS / PAGE as usize);
    assert!(
        rewritten.load(Ordering::Relaxed) > 0,
        "the writer rewrote keys during the scan"
    );
    let latest = kv
        .get("scan/")
        .prefix()
        .count_only()
        .await
        .unwrap()
        .revision();
    assert!(
        latest > pinned,
        "the keys changed after the pinned revision"
    );
    assert!(
        peak < PEAK_LIMIT,
        "peak RSS {peak} bytes during the scan, over {PEAK_LIMIT}"
    );

    // The whole range in one read at the pinned revision: the same keys, values and
    // revisions, in the same order.
    reset_peak();
    let before_whole = peak_rss();
    let whole = kv.get("scan/").prefix().revision(pinned).await.unwrap();
    let whole_peak = peak_rss();
    let mut expected = Digest::default();
    whole.kvs().iter().for_each(|kv| expected.add(kv));
    assert_eq!(scanned, expected);
    eprintln!(
        "the same range in one read: peak RSS {:.1} MiB (from {:.1} MiB)",
        whole_peak as f64 / 1048576.0,
        before_whole as f64 / 1048576.0
    );
    // The bound means something: a page at a time grows the process by a small part of
    // what holding the whole range does.
    assert!(
        (peak - before) * 4 < whole_peak.saturating_sub(before_whole),
        "the scan grew by {} bytes, the whole read by {}",
        peak - before,
        whole_peak - before_whole
    );
}
