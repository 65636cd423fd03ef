//! Watches against a real etcd: start revisions, filters, prev_kv, fragments, resume after
//! broken streams (fault proxy), compaction, many watches on one stream, slow consumers.
//! Every delivered history is checked against a reference read by a raw watch
//! (reliability.md §6.2 W1, W3, W4, W6, W8, W9, W10, W12 and §7.6).

mod watch_check;

use std::time::{Duration, Instant};

use etcd_core::grpc::{GrpcKv, GrpcWatch};
use etcd_core::kv::Op;
use etcd_core::{KeyRange, Kv};
use etcd_testkit::{EtcdServer, FaultProxy, Mode, shared_server, unique_prefix};
use etcd_tests::clients::raw_kv as kv;
use etcd_watch::{Error, EventKind, Watch, WatchId, Watcher};
use futures::StreamExt;
use tonic::transport::Channel;
use watch_check::*;

const LONG: Duration = Duration::from_secs(20);

/// A K1-style mix under `p` (10 keys; puts of unique values, deletes, multi-key txns) plus
/// writes outside it, ending with a put under `p`. Returns its revision.
async fn mixed_writes(
    kv: &Kv<GrpcKv<Channel>>,
    p: &str,
    outside: &str,
    n: usize,
    seed: u64,
) -> i64 {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut last = 0;
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) % 100;
        let key = format!("{p}k{}", (x >> 40) % 10);
        last = if r < 55 {
            kv.put(&key, format!("v{seed}-{i}"))
                .await
                .unwrap()
                .revision()
        } else if r < 70 {
            kv.delete(&key).await.unwrap().revision()
        } else if r < 85 {
            let k2 = format!("{p}k{}", ((x >> 40) + 1) % 10);
            let k3 = format!("{p}k{}", ((x >> 40) + 2) % 10);
            kv.txn()
                .then([
                    Op::put(&key, format!("t{seed}-{i}a")),
                    Op::put(&k2, format!("t{seed}-{i}b")),
                    Op::delete(&k3),
                ])
                .await
                .unwrap()
                .revision()
        } else {
            kv.put(format!("{outside}k{i}"), "x")
                .await
                .unwrap()
                .revision()
        };
    }
    let _ = last;
    // End inside the range, so that every unfiltered watch sees the last revision.
    kv.put(format!("{p}end"), format!("{seed}"))
        .await
        .unwrap()
        .revision()
}

/// W1: watches from revision 1, from the prefix's first write, from the past, from now and
/// from the future, with prev_kv and filters, all on one stream.
#[tokio::test]
async fn w1_start_revisions_filters_and_prev_kv() {
    let url = shared_server().client_url();
    let p = unique_prefix("w1");
    let outside = unique_prefix("w1_outside");
    let kv = kv(&url);
    let first = kv.put(format!("{p}k0"), "seed").await.unwrap().revision();
    let cur = mixed_writes(&kv, &p, &outside, 40, 1).await;
    let range = KeyRange::prefix(p.clone());

    let watcher = watcher(&url);
    let w = |start: i64| watcher.watch(p.clone()).prefix().from_revision(start);
    let mut specs = vec![
        ("from 1", w(1).await.unwrap(), Filter::new(range.clone(), 1)),
        (
            "from first",
            w(first).await.unwrap(),
            Filter::new(range.clone(), first),
        ),
        (
            "from past",
            w(cur - 20).await.unwrap(),
            Filter::new(range.clone(), cur - 20),
        ),
        (
            "from current",
            w(cur).await.unwrap(),
            Filter::new(range.clone(), cur),
        ),
        (
            "from future",
            w(cur + 30).await.unwrap(),
            Filter::new(range.clone(), cur + 30),
        ),
    ];
    let mut f = Filter::new(range.clone(), first);
    f.prev_kv = true;
    f.no_put = true;
    specs.push((
        "prev_kv no_put",
        w(first).prev_kv().no_put().await.unwrap(),
        f,
    ));
    let mut f = Filter::new(range.clone(), 1);
    f.prev_kv = true;
    f.no_delete = true;
    specs.push((
        "prev_kv no_delete",
        w(1).prev_kv().no_delete().await.unwrap(),
        f,
    ));
    // From now: the creation notice tells the revision it starts after.
    let mut now = watcher
        .watch(p.clone())
        .prefix()
        .created_notify()
        .await
        .unwrap();
    let created = now.next().await.unwrap().unwrap();
    assert!(created.is_created());
    assert!(created.revision() >= cur);
    specs.push((
        "from now",
        now,
        Filter::new(range.clone(), created.revision() + 1),
    ));
    let single_key = format!("{p}k3");
    specs.push((
        "single key",
        watcher
            .watch(single_key.clone())
            .from_revision(1)
            .await
            .unwrap(),
        Filter::new(KeyRange::key(single_key), 1),
    ));

    let last = mixed_writes(&kv, &p, &outside, 120, 2).await;
    assert!(last > cur + 30);
    let reference = reference(&url, &range, 1, last).await;
    for (label, mut stream, filter) in specs {
        let until = last_expected(&reference, &filter, last);
        let rec = collect(&mut stream, until, LONG).await;
        assert!(rec.terminal.is_none(), "{label}: {:?}", rec.terminal);
        validate(label, &rec, &reference, &filter, last);
        // Nothing more arrives.
        let more = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
        assert!(more.is_err(), "{label}: unexpected {more:?}");
    }
}

/// The Elixir shape: range watches added to a group and cancelled by id; one consumer
/// receives everything tagged with the watch id.
#[tokio::test]
async fn group_tags_responses_and_cancels_by_id() {
    let url = shared_server().client_url();
    let p = unique_prefix("group");
    let kv = kv(&url);
    let watcher = watcher(&url);
    let (group, mut events) = watcher.group();
    let a = group
        .add(KeyRange::range(format!("{p}a"), format!("{p}c")))
        .await
        .unwrap();
    let z = group
        .add(Watch::key(format!("{p}z/")).prefix().prev_kv())
        .await
        .unwrap();
    assert_ne!(a, z);
    kv.put(format!("{p}a1"), "1").await.unwrap();
    kv.put(format!("{p}b1"), "2").await.unwrap();
    kv.put(format!("{p}c1"), "not watched").await.unwrap();
    kv.put(format!("{p}z/1"), "3").await.unwrap();
    let mut got: Vec<(WatchId, String)> = Vec::new();
    while got.len() < 3 {
        let (id, resp) = tokio::time::timeout(LONG, events.next())
            .await
            .unwrap()
            .unwrap();
        for e in resp.unwrap().events() {
            got.push((id, e.kv().key_str().unwrap().to_owned()));
        }
    }
    assert_eq!(
        got,
        vec![
            (a, format!("{p}a1")),
            (a, format!("{p}b1")),
            (z, format!("{p}z/1"))
        ]
    );
    group.cancel(a).await.unwrap();
    kv.put(format!("{p}a2"), "after cancel").await.unwrap();
    let rev = kv.put(format!("{p}z/2"), "4").await.unwrap().revision();
    let (id, resp) = tokio::time::timeout(LONG, events.next())
        .await
        .unwrap()
        .unwrap();
    let resp = resp.unwrap();
    assert_eq!(id, z, "the cancelled watch delivered {resp:?}");
    assert_eq!(resp.events()[0].revision(), rev);
    assert_eq!(resp.events()[0].prev_kv(), None);
    drop(group);
    // The group's watches are cancelled with it, so its consumer ends.
    let end = tokio::time::timeout(LONG, events.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
}

/// Progress: a requested notification arrives as such and covers the events delivered.
#[tokio::test]
async fn requested_progress_is_delivered_as_such() {
    let url = shared_server().client_url();
    let p = unique_prefix("progress");
    let kv = kv(&url);
    let watcher = watcher(&url);
    let mut stream = watcher.watch(p.clone()).prefix().await.unwrap();
    let rev = kv.put(format!("{p}a"), "1").await.unwrap().revision();
    let resp = tokio::time::timeout(LONG, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events()[0].revision(), rev);
    // etcd answers only when every watch of the stream has caught up: ask until it does.
    let deadline = Instant::now() + LONG;
    loop {
        watcher.request_progress().await.unwrap();
        match tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
            Ok(Some(Ok(resp))) => {
                assert!(resp.is_progress_notify(), "{resp:?}");
                assert!(resp.revision() >= rev);
                break;
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => assert!(Instant::now() < deadline, "no progress notification"),
        }
    }
}

/// Periodic progress notifications (server interval 100 ms) on a watch whose keys do not
/// change, across a broken stream: they advance the resume point and nothing is replayed.
#[tokio::test]
async fn progress_notify_advances_the_resume_point() {
    let server = EtcdServer::builder()
        .arg("--experimental-watch-progress-notify-interval=100ms")
        .start()
        .await;
    let proxy = FaultProxy::start(server.client_addr()).await;
    let kv = kv(&server.client_url());
    let first = kv.put("/p/a", "1").await.unwrap().revision();
    let watcher = watcher(&proxy.url());
    let mut stream = watcher
        .watch("/p/")
        .prefix()
        .progress_notify()
        .from_revision(first)
        .await
        .unwrap();
    let mut rec = Recorded::default();
    let mut last = first;
    for round in 0..3 {
        // Writes outside the range move the store on; progress follows.
        for i in 0..5 {
            kv.put(format!("/q/{round}/{i}"), "x").await.unwrap();
        }
        last = kv
            .put(format!("/p/{round}"), "in range")
            .await
            .unwrap()
            .revision();
        collect_more(&mut stream, &mut rec, last, LONG).await;
        let target = kv.put("/q/after", "x").await.unwrap().revision();
        // Wait for a progress notification past the last event.
        let deadline = tokio::time::Instant::now() + LONG;
        loop {
            let resp = tokio::time::timeout_at(deadline, stream.next())
                .await
                .expect("no progress notification")
                .unwrap()
                .unwrap();
            let done = resp.is_progress_notify() && resp.revision() >= target;
            rec.responses.push(resp);
            if done {
                break;
            }
        }
        proxy.set_mode(Mode::DropAll).await;
    }
    assert!(rec.responses.iter().any(|r| r.is_progress_notify()));
    let reference = reference(&server.client_url(), &KeyRange::prefix("/p/"), 1, last).await;
    validate(
        "progress",
        &rec,
        &reference,
        &Filter::new(KeyRange::prefix("/p/"), first),
        last,
    );
}

/// W3: a watch through a proxy whose connections are reset and then stalled while 50
/// writes happen: all 50 arrive after the stall, in order, once each.
#[tokio::test]
async fn w3_resumes_after_drop_all_and_pause() {
    let server = shared_server();
    let proxy = FaultProxy::start(server.client_addr()).await;
    let p = unique_prefix("w3");
    let kv = kv(&server.client_url());
    let first = kv.put(format!("{p}start"), "0").await.unwrap().revision();
    let watcher = watcher(&proxy.url());
    let mut stream = watcher
        .watch(p.clone())
        .prefix()
        .from_revision(first)
        .await
        .unwrap();
    let mut rec = collect(&mut stream, first, LONG).await;
    proxy.set_mode(Mode::DropAll).await;
    proxy.set_mode(Mode::Pause).await;
    let mut last = 0;
    for i in 0..50 {
        last = if i % 10 == 9 {
            kv.txn()
                .then([
                    Op::put(format!("{p}t{i}a"), "a"),
                    Op::put(format!("{p}t{i}b"), "b"),
                ])
                .await
                .unwrap()
                .revision()
        } else {
            kv.put(format!("{p}k{}", i % 7), format!("v{i}"))
                .await
                .unwrap()
                .revision()
        };
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_mode(Mode::Pass).await;
    collect_more(&mut stream, &mut rec, last, LONG).await;
    let range = KeyRange::prefix(p.clone());
    let reference = reference(&server.client_url(), &range, first, last).await;
    validate("w3", &rec, &reference, &Filter::new(range, first), last);
    assert_eq!(rec.events().len(), 56);
}

/// W6: a "from now" watch that has delivered nothing is resumed after its creation
/// revision: the put just before its creation is never replayed.
#[tokio::test]
async fn w6_from_now_watch_never_replays_the_put_before_creation() {
    let server = shared_server();
    let proxy = FaultProxy::start(server.client_addr()).await;
    let p = unique_prefix("w6");
    let kv = kv(&server.client_url());
    let h = kv.put(format!("{p}a"), "before").await.unwrap().revision();
    let watcher = watcher(&proxy.url());
    let mut stream = watcher
        .watch(p.clone())
        .prefix()
        .created_notify()
        .await
        .unwrap();
    let created = stream.next().await.unwrap().unwrap();
    assert!(created.is_created() && created.revision() >= h);
    proxy.set_mode(Mode::DropAll).await;
    proxy.set_mode(Mode::Pause).await;
    let b = kv.put(format!("{p}b"), "1").await.unwrap().revision();
    let c = kv.put(format!("{p}c"), "2").await.unwrap().revision();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set_mode(Mode::Pass).await;
    let rec = collect(&mut stream, c, LONG).await;
    let revs: Vec<i64> = rec.events().iter().map(|e| e.mod_rev).collect();
    assert_eq!(revs, vec![b, c]);
}

/// W12 and W4: a watch from a compacted revision ends with a typed `Compacted`; one whose
/// resume revision is compacted while its stream is down delivers what it had, then
/// `Compacted`; other watches on the stream go on.
#[tokio::test]
async fn w4_w12_compaction_is_terminal_and_typed() {
    let server = EtcdServer::start().await;
    let proxy = FaultProxy::start(server.client_addr()).await;
    let kv = kv(&server.client_url());
    for i in 0..5 {
        kv.put("/c/k", format!("{i}")).await.unwrap();
    }
    let watcher = watcher(&proxy.url());
    // W4: caught up to the present, then the stream goes down.
    let mut resumed = watcher
        .watch("/c/")
        .prefix()
        .from_revision(2)
        .await
        .unwrap();
    // From now (resumes at 7: compacted too) and from the future (resumes at 28: not).
    let mut now = watcher.watch("/other/").prefix().await.unwrap();
    let mut future = watcher
        .watch("/other/")
        .prefix()
        .from_revision(28)
        .await
        .unwrap();
    let before = collect(&mut resumed, 6, LONG).await;
    assert_eq!(before.last_event_rev(), 6);
    proxy.set_mode(Mode::Refuse).await;
    let mut last = 0;
    for i in 0..20 {
        last = kv
            .put("/c/k", format!("down {i}"))
            .await
            .unwrap()
            .revision();
    }
    assert_eq!(last, 26);
    kv.compact(15).await.unwrap();
    proxy.set_mode(Mode::Pass).await;
    let rec = collect(&mut resumed, last, LONG).await;
    assert!(rec.events().is_empty(), "{:?}", rec.events());
    let compact = is_compacted(&rec.terminal).expect("Compacted");
    assert!(compact >= 15, "{compact}");
    assert!(rec.ended);
    let rec = collect(&mut now, last, LONG).await;
    assert_eq!(is_compacted(&rec.terminal), Some(15), "{rec:?}");
    // The future watch on the same stream goes on.
    kv.put("/other/x", "27").await.unwrap();
    let r = kv.put("/other/x", "28").await.unwrap().revision();
    let got = collect(&mut future, r, LONG).await;
    assert_eq!(
        got.events().iter().map(|e| e.mod_rev).collect::<Vec<_>>(),
        vec![28]
    );
    let mut other = watcher.watch("/other/").prefix().await.unwrap();

    // W12: created from a compacted revision: the first response is the error.
    let current = kv.put("/c/k", "now").await.unwrap().revision();
    kv.compact(current).await.unwrap();
    let mut old = watcher
        .watch("/c/")
        .prefix()
        .from_revision(3)
        .await
        .unwrap();
    match tokio::time::timeout(LONG, old.next()).await.unwrap() {
        Some(Err(Error::WatchCompacted { compact_revision })) => {
            assert_eq!(compact_revision, current)
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(old.next().await.is_none());
    let r = kv.put("/other/y", "2").await.unwrap().revision();
    assert_eq!(collect(&mut other, r, LONG).await.last_event_rev(), r);
}

/// W8: one transaction of 100 × 64 KiB values (6.4 MiB at one revision) arrives whole,
/// in one response; W8b: a catch-up over 20 × 900 KiB values with `fragment` is merged
/// back and equals the unfragmented delivery.
#[tokio::test]
async fn w8_big_revisions_arrive_whole() {
    let server = EtcdServer::builder()
        .arg("--max-request-bytes=8388608")
        .start()
        .await;
    let url = server.client_url();
    let kv = kv(&url);
    let watcher = watcher(&url);
    let mut stream = watcher.watch("/big/").prefix().await.unwrap();
    let value = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let ops: Vec<Op> = (0..100)
        .map(|i| Op::put(format!("/big/{i:03}"), value.clone()))
        .collect();
    let rev = kv.txn().then(ops).await.unwrap().revision();
    let resp = tokio::time::timeout(LONG, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events().len(), 100);
    assert!(
        resp.events()
            .iter()
            .all(|e| e.revision() == rev && e.kv().value().len() == 64 * 1024)
    );
    drop(stream);

    // W8b on a server that fragments above 1 MiB.
    let server = EtcdServer::builder()
        .arg("--max-request-bytes=1048576")
        .start()
        .await;
    let url = server.client_url();
    let kv = self::kv(&url);
    let value = bytes::Bytes::from(vec![b'y'; 900 * 1024]);
    let mut last = 0;
    for i in 0..20 {
        last = kv
            .put(format!("/frag/{i:02}"), value.clone())
            .await
            .unwrap()
            .revision();
    }
    let watcher = watch_check::watcher(&url);
    let range = KeyRange::prefix("/frag/");
    let reference = reference(&url, &range, 1, last).await;
    let mut fragmented = watcher
        .watch("/frag/")
        .prefix()
        .fragment()
        .from_revision(1)
        .await
        .unwrap();
    let mut whole = watcher
        .watch("/frag/")
        .prefix()
        .from_revision(1)
        .await
        .unwrap();
    let a = collect(&mut fragmented, last, LONG).await;
    let b = collect(&mut whole, last, LONG).await;
    validate(
        "fragment",
        &a,
        &reference,
        &Filter::new(range.clone(), 1),
        last,
    );
    validate("no fragment", &b, &reference, &Filter::new(range, 1), last);
    assert_eq!(a.events().len(), 20);
}

/// W9: 300 watches on one stream, 150 cancelled by id: the server's watcher count drops
/// at once; after all connections are reset the 150 survivors resume and deliver exactly
/// their events, the cancelled ones nothing.
#[tokio::test]
async fn w9_three_hundred_watches_cancel_half_and_reset() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let proxy = FaultProxy::start(server.client_addr()).await;
    let kv = kv(&url);
    let watcher = watcher(&proxy.url());
    let (group, mut events) = watcher.group();
    let start = kv.put("/w9/start", "0").await.unwrap().revision();
    let mut ids = Vec::new();
    for i in 0..300 {
        let id = group
            .add(
                Watch::key(format!("/w9/{i:03}/"))
                    .prefix()
                    .from_revision(start),
            )
            .await
            .unwrap();
        ids.push(id);
    }
    wait_watchers(&url, 300).await;
    let (cancelled, kept) = (&ids[..150], &ids[150..]);
    for &id in cancelled {
        group.cancel(id).await.unwrap();
    }
    wait_watchers(&url, 150).await;
    for i in 0..300 {
        kv.put(format!("/w9/{i:03}/a"), "before").await.unwrap();
    }
    proxy.set_mode(Mode::DropAll).await;
    let mut last = 0;
    for i in 0..300 {
        last = kv
            .put(format!("/w9/{i:03}/b"), "after")
            .await
            .unwrap()
            .revision();
    }
    let mut per_watch: std::collections::HashMap<WatchId, Vec<(i64, String)>> = Default::default();
    let deadline = tokio::time::Instant::now() + LONG;
    let mut total = 0;
    while total < 300 {
        let (id, resp) = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("events missing")
            .unwrap();
        for e in resp.unwrap().events() {
            per_watch
                .entry(id)
                .or_default()
                .push((e.revision(), e.kv().key_str().unwrap().to_owned()));
            total += 1;
        }
    }
    wait_watchers(&url, 150).await;
    assert!(cancelled.iter().all(|id| !per_watch.contains_key(id)));
    let reference = reference(&url, &KeyRange::prefix("/w9/"), start, last).await;
    for (n, id) in kept.iter().enumerate() {
        let i = n + 150;
        let expected: Vec<(i64, String)> = reference
            .iter()
            .filter(|e| e.key.starts_with(format!("/w9/{i:03}/").as_bytes()))
            .map(|e| (e.mod_rev, String::from_utf8(e.key.to_vec()).unwrap()))
            .collect();
        assert_eq!(per_watch.get(id), Some(&expected), "watch {i}");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.next())
            .await
            .is_err()
    );
    drop(group);
    wait_watchers(&url, 0).await;
}

/// W10: a consumer that stops reading for 3 s while 2000 events are written. Its buffer
/// (4 KiB, about a dozen responses) fills, the watch is paused on the server and resumed when the consumer
/// reads again: nothing is lost or repeated, and a fast watch on the same stream keeps
/// receiving meanwhile.
#[tokio::test]
async fn w10_slow_consumer_is_paused_and_resumed_without_loss() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let p = unique_prefix("w10");
    let kv = kv(&url);
    let watcher = watcher(&url).with_buffer_bytes(4 << 10);
    let start = kv.put(format!("{p}start"), "0").await.unwrap().revision();
    let mut slow = watcher
        .watch(p.clone())
        .prefix()
        .from_revision(start)
        .await
        .unwrap();
    let mut fast = watcher
        .watch(p.clone())
        .prefix()
        .from_revision(start)
        .buffer_bytes(64 << 20)
        .await
        .unwrap();
    let writer = {
        let kv = kv.clone();
        let p = p.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for batch in 0..10 {
                let ops: Vec<Op> = (0..100)
                    .map(|i| Op::put(format!("{p}t{batch}/{i:03}"), "txn"))
                    .collect();
                kv.txn().then(ops).await.unwrap();
                for i in 0..100 {
                    last = kv
                        .put(format!("{p}k{}", i % 13), format!("{batch}-{i}"))
                        .await
                        .unwrap()
                        .revision();
                }
            }
            last
        })
    };
    // The fast consumer keeps up while the slow one sleeps.
    let stall = Instant::now();
    let mut fast_rec = Recorded::default();
    let last = loop {
        collect_more(
            &mut fast,
            &mut fast_rec,
            i64::MAX,
            Duration::from_millis(50),
        )
        .await;
        if writer.is_finished() {
            break writer.await.unwrap();
        }
    };
    collect_more(&mut fast, &mut fast_rec, last, LONG).await;
    let fast_done = stall.elapsed();
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(stall.elapsed())).await;
    assert!(fast_done < Duration::from_secs(20));
    // The slow watch is paused: cancelled on the server, its buffer full and bounded.
    assert_eq!(server_watchers(&url).await, 1);
    let slow_rec = collect(&mut slow, last, LONG).await;
    let range = KeyRange::prefix(p.clone());
    let reference = reference(&url, &range, start, last).await;
    assert_eq!(reference.len(), 2001);
    validate(
        "fast",
        &fast_rec,
        &reference,
        &Filter::new(range.clone(), start),
        last,
    );
    validate(
        "slow",
        &slow_rec,
        &reference,
        &Filter::new(range, start),
        last,
    );
    eprintln!(
        "w10: fast consumer done after {fast_done:?}; slow consumer got {} responses",
        slow_rec.responses.len()
    );
}

/// A single-key watch, deletes with prev_kv, and cancel-on-drop seen by the server.
#[tokio::test]
async fn drop_cancels_on_the_server_at_once() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let kv = kv(&url);
    let watcher = watcher(&url);
    let mut a = watcher.watch("/d/a").prev_kv().await.unwrap();
    let b = watcher.watch("/d/b").await.unwrap();
    wait_watchers(&url, 2).await;
    drop(b);
    wait_watchers(&url, 1).await;
    kv.put("/d/a", "1").await.unwrap();
    let rev = kv.delete("/d/a").await.unwrap().revision();
    let rec = collect(&mut a, rev, LONG).await;
    let kinds: Vec<EventKind> = rec
        .responses
        .iter()
        .flat_map(|r| r.events().iter().map(|e| e.kind()))
        .collect();
    assert_eq!(kinds, vec![EventKind::Put, EventKind::Delete]);
    let delete = &rec.responses.last().unwrap().events()[0];
    assert_eq!(delete.prev_kv().unwrap().value(), b"1");
    a.cancel().await;
    wait_watchers(&url, 0).await;
}

/// Invalid watches are refused before anything is sent.
#[tokio::test]
async fn invalid_watches_are_refused_locally() {
    let watcher = Watcher::new(GrpcWatch::new(channel("http://127.0.0.1:1")));
    let e = watcher.watch("").await.unwrap_err();
    assert!(matches!(e, etcd_core::Error::InvalidRequest(_)), "{e:?}");
    let e = watcher.watch("k").from_revision(-1).await.unwrap_err();
    assert!(matches!(e, etcd_core::Error::InvalidRequest(_)), "{e:?}");
}

/// A blackholed connection (nothing forwarded, nothing reset) is found by HTTP/2
/// keepalive, and the watch resumes without loss once traffic flows again.
#[tokio::test]
async fn a_blackhole_found_by_keepalive_is_resumed() {
    let server = EtcdServer::builder()
        .arg("--grpc-keepalive-min-time=500ms")
        .start()
        .await;
    let proxy = FaultProxy::start(server.client_addr()).await;
    let kv = kv(&server.client_url());
    let channel = tonic::transport::Endpoint::from_shared(proxy.url())
        .unwrap()
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_millis(500))
        .keep_alive_while_idle(false)
        .connect_lazy();
    let watcher = Watcher::new(GrpcWatch::new(channel));
    let first = kv.put("/bh/start", "0").await.unwrap().revision();
    let mut stream = watcher
        .watch("/bh/")
        .prefix()
        .from_revision(first)
        .await
        .unwrap();
    let mut rec = collect(&mut stream, first, LONG).await;
    proxy.set_mode(Mode::Blackhole).await;
    let mut last = 0;
    for i in 0..20 {
        last = kv
            .put(format!("/bh/{}", i % 3), format!("{i}"))
            .await
            .unwrap()
            .revision();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = proxy.stats().connections_accepted;
    proxy.set_mode(Mode::Pass).await;
    collect_more(&mut stream, &mut rec, last, LONG).await;
    // The dead connection was given up (a new one was made during the blackhole).
    assert!(
        before >= 2,
        "no reconnection during the blackhole: {before}"
    );
    let range = KeyRange::prefix("/bh/");
    let reference = reference(&server.client_url(), &range, first, last).await;
    validate(
        "blackhole",
        &rec,
        &reference,
        &Filter::new(range, first),
        last,
    );
}

/// The facade's watch API: a single watch as a stream, the watcher with several range
/// watches and one consumer, and progress requests.
#[tokio::test]
async fn the_facade_watches_and_groups() {
    let client = etcd3::Client::connect(shared_server().endpoints())
        .await
        .unwrap();
    let p = unique_prefix("facade_watch");
    let mut single = client
        .watch(format!("{p}s/"))
        .prefix()
        .prev_kv()
        .await
        .unwrap();
    let (watcher, mut events) = client.watch_group();
    let a = watcher
        .add(KeyRange::prefix(format!("{p}a/")))
        .await
        .unwrap();
    let b = watcher
        .add(KeyRange::prefix(format!("{p}b/")))
        .await
        .unwrap();
    client.kv().put(format!("{p}s/1"), "x").await.unwrap();
    client.kv().put(format!("{p}s/1"), "y").await.unwrap();
    client.kv().put(format!("{p}a/1"), "1").await.unwrap();
    client.kv().put(format!("{p}b/1"), "2").await.unwrap();

    let mut values = Vec::new();
    while values.len() < 2 {
        let resp = tokio::time::timeout(LONG, single.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for e in resp.events() {
            let prev = e.prev_kv().map(|kv| kv.value_str().unwrap().to_owned());
            values.push((e.kv().value_str().unwrap().to_owned(), prev));
        }
    }
    assert_eq!(values, [("x".into(), None), ("y".into(), Some("x".into()))]);

    let mut tagged = Vec::new();
    while tagged.len() < 2 {
        let (id, resp) = tokio::time::timeout(LONG, events.next())
            .await
            .unwrap()
            .unwrap();
        for e in resp.unwrap().events() {
            tagged.push((id, e.kv().value_str().unwrap().to_owned()));
        }
    }
    assert_eq!(tagged, [(a, "1".to_owned()), (b, "2".to_owned())]);

    client.watch_progress().await.unwrap();
    let progress = tokio::time::timeout(LONG, single.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(progress.is_progress_notify(), "{progress:?}");
    watcher.cancel(a).await.unwrap();
}

/// `Client::new_watcher`: a watcher with a gRPC stream of its own. The watches of the
/// client's own watcher share one stream, each new watcher adds one (its watches sharing
/// it), and every watch receives the same put once.
#[tokio::test]
async fn new_watchers_have_streams_of_their_own() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let client = etcd3::Client::connect([url.as_str()]).await.unwrap();
    let before = server_watch_streams(&url).await;
    let own = client.new_watcher();
    let other = client.new_watcher();
    let mut streams = vec![
        client.watch("/nw/k").await.unwrap(),
        client.watch("/nw/").prefix().await.unwrap(),
        own.watch("/nw/k").await.unwrap(),
        own.watch("/nw/").prefix().await.unwrap(),
        other.watch("/nw/k").await.unwrap(),
    ];
    wait_watchers(&url, 5).await;
    wait_watch_streams(&url, before + 3).await;
    let revision = client.kv().put("/nw/k", "v").await.unwrap().revision();
    for stream in &mut streams {
        let resp = tokio::time::timeout(LONG, stream.next())
            .await
            .expect("no event")
            .unwrap()
            .unwrap();
        let revisions: Vec<i64> = resp.events().iter().map(|e| e.revision()).collect();
        assert_eq!(revisions, [revision]);
    }
    drop(streams);
    wait_watch_streams(&url, before).await;
}
