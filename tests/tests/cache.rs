//! The cache of a range (`Client::cache`), against real etcd: reads, read-your-writes, the
//! change stream, and, on a three-member cluster, concurrent writers, a leader kill and a
//! compaction that forces a relist.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_testkit::{EtcdCluster, EtcdServer, FaultProxy, Mode, shared_server, unique_prefix};
use etcd3::watch::cache::{Change, Health, Snapshot};
use etcd3::{Client, KeyRange, ServerErrorKind};
use futures::StreamExt;

/// Keys and values, in key order.
type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn state_of(snapshot: &Snapshot) -> State {
    snapshot
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
        .collect()
}

fn state_of_get(resp: &etcd3::kv::GetResponse) -> State {
    resp.kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
        .collect()
}

#[tokio::test]
async fn the_cache_follows_puts_and_deletes_and_reads_your_writes() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let kv = client.kv();
    let p = unique_prefix("cache");
    kv.put(format!("{p}a"), "1").await.unwrap();
    kv.put(format!("{p}b"), "2").await.unwrap();
    kv.put(format!("{p}zz-outside"), "x").await.unwrap();

    let cache = client
        .cache(KeyRange::range(format!("{p}a"), format!("{p}z")))
        .await
        .unwrap();
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get(format!("{p}a")).unwrap().value(), b"1");
    assert_eq!(cache.health(), Health::Watching);
    let mut changes = cache.changes();

    let put = kv.put(format!("{p}c"), "3").await.unwrap().revision();
    let deleted = kv.delete(format!("{p}a")).await.unwrap().revision();
    cache.wait_for(deleted).await.unwrap();
    assert!(cache.revision() >= deleted);
    assert_eq!(cache.get(format!("{p}c")).unwrap().value(), b"3");
    assert!(cache.get(format!("{p}a")).is_none());
    assert_eq!(
        state_of(&cache.snapshot()),
        state_of_get(
            &kv.get(format!("{p}a"))
                .range_end(format!("{p}z"))
                .await
                .unwrap()
        )
    );

    match changes.next().await.unwrap() {
        Change::Put { kv, prev } => {
            assert_eq!(
                (kv.key(), kv.mod_revision()),
                (format!("{p}c").as_bytes(), put)
            );
            assert!(prev.is_none());
        }
        other => panic!("{other:?}"),
    }
    match changes.next().await.unwrap() {
        Change::Delete {
            key,
            revision,
            prev,
        } => {
            assert_eq!((&key[..], revision), (format!("{p}a").as_bytes(), deleted));
            assert_eq!(prev.unwrap().value(), b"1");
        }
        other => panic!("{other:?}"),
    }

    // A write outside the range: the cache gets there by a progress notification.
    let outside = kv
        .put(format!("{p}zz-outside"), "y")
        .await
        .unwrap()
        .revision();
    tokio::time::timeout(Duration::from_secs(10), cache.wait_for(outside))
        .await
        .expect("a progress notification brings the cache to a revision outside its range")
        .unwrap();
    assert_eq!(cache.len(), 2);
}

/// A cache started at a past revision first holds the range as it was then, then
/// replays every change since, in order, to the current state; a compacted revision is
/// the typed `Compacted` error.
#[tokio::test]
async fn a_cache_started_at_a_past_revision_catches_up_in_order() {
    // A server of its own: the compaction would disturb the other tests' reads of the past.
    let server = EtcdServer::start().await;
    let client = Client::connect(server.endpoints()).await.unwrap();
    let kv = client.kv();
    let at = kv.put("c/a", "1").await.unwrap().revision();
    kv.put("c/outside-before", "x").await.unwrap();
    let mut writes = Vec::new();
    writes.push(kv.put("c/b", "2").await.unwrap().revision());
    writes.push(kv.put("c/a", "3").await.unwrap().revision());
    writes.push(kv.delete("c/b").await.unwrap().revision());
    for i in 0..200 {
        writes.push(kv.put(format!("c/k{i:03}"), "v").await.unwrap().revision());
    }
    let last = *writes.last().unwrap();
    let range = KeyRange::range("c/a", "c/o");

    let cache = client.cache_at(range.clone(), at).await.unwrap();
    assert!(cache.revision() >= at, "the first list is at {at}");
    let mut changes = cache.changes();
    tokio::time::timeout(Duration::from_secs(10), cache.wait_for(last))
        .await
        .expect("the cache catches up")
        .unwrap();
    let fresh = kv.get("c/a").range_end("c/o").revision(last).await.unwrap();
    assert_eq!(state_of(&cache.snapshot()), state_of_get(&fresh));
    assert_eq!(cache.len(), 201, "c/a and the 200 keys; c/b was deleted");
    // The changes seen are in revision order, each once, all among the writes.
    let mut seen = Vec::new();
    while let Ok(Some(change)) =
        tokio::time::timeout(Duration::from_millis(200), changes.next()).await
    {
        match change {
            Change::Put { kv, .. } => seen.push(kv.mod_revision()),
            Change::Delete { revision, .. } => seen.push(revision),
            other => panic!("no relist expected: {other:?}"),
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(seen.iter().all(|r| writes.contains(r)), "{seen:?}");

    kv.compact(last).await.unwrap();
    let error = client.cache_at(range, at).await.unwrap_err();
    assert_eq!(
        error.server_kind(),
        Some(ServerErrorKind::Compacted),
        "{error:?}"
    );
}

/// Writers change 40 keys while the leader is killed and, later, the cache is cut off
/// while the history it needs is compacted away. Afterwards the cache equals a fresh read
/// at its revision, and the first list with the change stream replayed over it gives the
/// same state, with every change in revision order exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_survives_a_leader_kill_and_relists_after_compaction() {
    let cluster = EtcdCluster::start(3).await;
    let mut proxies = Vec::new();
    for addr in cluster.client_addrs() {
        proxies.push(FaultProxy::start(addr).await);
    }
    let writer_client = Client::connect(cluster.client_urls()).await.unwrap();
    let cache_client = Client::builder(proxies.iter().map(|p| p.url()))
        .request_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    for i in 0..40 {
        writer_client
            .kv()
            .put(format!("c/{i:02}"), "initial")
            .await
            .unwrap();
    }

    let cache = cache_client.cache(KeyRange::prefix("c/")).await.unwrap();
    let mut changes = cache.changes();
    let first = cache.snapshot();
    let collected = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(change) = changes.next().await {
            all.push(change);
        }
        all
    });

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (kv, stop) = (writer_client.kv().clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("c/{:02}", (n * 7 + w * 13) % 40);
                    let result = if n.is_multiple_of(5) {
                        kv.delete(key).await.map(|_| ())
                    } else {
                        kv.put(key, format!("w{w}-{n}")).await.map(|_| ())
                    };
                    // A write cut by the leader kill may fail; the cache must reflect
                    // whatever the server applied.
                    if let Err(error) = result {
                        eprintln!("writer {w}: {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    let leader = cluster.leader().await;
    cluster.member(leader).kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Cut the cache off, move on and compact the history it would need, let it back.
    for proxy in &proxies {
        proxy.set_mode(Mode::Refuse).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // History the cache has not seen, then compaction past it.
    let mut compacted = 0;
    for i in 0..10 {
        // The cluster may still be settling after the leader kill: etcd can answer
        // "request timed out, possibly due to previous leader failure". The same put is
        // made again (its outcome is unknown, and writing it twice changes nothing here).
        let mut attempts = 0;
        compacted = loop {
            match writer_client
                .kv()
                .put(format!("c/while-cut-{i}"), "1")
                .await
            {
                Ok(put) => break put.revision(),
                Err(error) if attempts < 10 => {
                    attempts += 1;
                    eprintln!("put while cut: {error}; again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("put while cut: {error}"),
            }
        };
    }
    writer_client.kv().compact(compacted).await.unwrap();
    for proxy in &proxies {
        proxy.set_mode(Mode::Pass).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    let last = writer_client.kv().get("c/").prefix().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), cache.wait_for(last.revision()))
        .await
        .expect("the cache reaches the writers' last revision")
        .unwrap();
    let settled = cache.snapshot();
    let fresh = writer_client
        .kv()
        .get("c/")
        .prefix()
        .revision(settled.revision())
        .await
        .unwrap();
    assert_eq!(state_of(&settled), state_of_get(&fresh));
    assert_eq!(cache.health(), Health::Watching);

    drop(cache);
    let all = collected.await.unwrap();
    let relists = all
        .iter()
        .filter(|c| matches!(c, Change::Relisted(_)))
        .count();

    assert!(relists >= 1, "the compaction forced a relist");

    // Replay: the first list, then each change after its revision, in order, once.
    let mut replayed = state_of(&first);
    let mut revision = first.revision();
    let mut changes_seen = 0;
    for change in &all {
        match change {
            Change::Relisted(snapshot) => {
                assert!(snapshot.revision() >= revision, "a relist never goes back");
                replayed = state_of(snapshot);
                revision = snapshot.revision();
            }
            Change::Put { kv, .. } => {
                assert!(kv.mod_revision() > revision, "in order, once: {change:?}");
                revision = kv.mod_revision();
                replayed.insert(kv.key().to_vec(), kv.value().to_vec());
                changes_seen += 1;
            }
            Change::Delete {
                key, revision: r, ..
            } => {
                assert!(*r > revision, "in order, once: {change:?}");
                revision = *r;
                replayed.remove(&key[..]);
                changes_seen += 1;
            }
        }
    }
    assert_eq!(replayed, state_of(&settled));
    eprintln!(
        "{changes_seen} changes and {relists} relist(s) replayed to {} keys at revision {}",
        replayed.len(),
        settled.revision()
    );
}
