//! Watches on a 3-member cluster: resume on another member when the serving member is
//! killed (W2), and require-leader (W11). Checked against a reference history.

mod watch_check;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_core::grpc::{GrpcKv, GrpcWatch};
use etcd_core::layer::Failover;
use etcd_core::{KeyRange, Kv};
use etcd_testkit::EtcdCluster;
use etcd_watch::{Error, WatchResponse, WatchStream, Watcher};
use futures::StreamExt;
use tonic::transport::Channel;
use watch_check::*;

/// One cluster test at a time: each measures failover timings on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LONG: Duration = Duration::from_secs(20);

/// A watch service over every member, trying `first` first.
fn failover_from(urls: &[String], first: usize) -> Failover<GrpcWatch<Channel>> {
    let n = urls.len();
    Failover::new((0..n).map(|i| {
        let url = urls[(first + i) % n].clone();
        let service = GrpcWatch::new(channel(&url));
        (url, service)
    }))
    .starting_at(0)
}

/// Records a watch's responses with the time they arrived, until `stop` is set.
/// What a watch delivered, with arrival times.
type Log = Arc<Mutex<Vec<(Instant, Result<WatchResponse, String>)>>>;

fn record(mut stream: WatchStream) -> Log {
    let log = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&log);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            out.lock()
                .unwrap()
                .push((Instant::now(), item.map_err(|e| e.to_string())));
        }
    });
    log
}

/// W2: three watchers whose streams start on member A; writes go through B; A is killed
/// and later restarted. Each watcher delivers exactly the reference slice, and delivery
/// resumes quickly on another member.
#[tokio::test]
async fn w2_watches_resume_on_another_member_when_theirs_is_killed() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let urls = cluster.client_urls();
    // A is a follower, so that writes through B go on while it is down (killing the
    // leader would only add an election to the measured time).
    let a = cluster.follower().await;
    let b = (a + 1) % 3;
    let kv = Kv::new(GrpcKv::new(channel(&urls[b])));
    let first = kv.put("/w2/start", "0").await.unwrap().revision();

    let range = KeyRange::prefix("/w2/");
    let w1 = Watcher::new(failover_from(&urls, a));
    let w2 = Watcher::new(failover_from(&urls, a));
    let w3 = Watcher::new(failover_from(&urls, a));
    let mut now = w2
        .watch("/w2/")
        .prefix()
        .prev_kv()
        .created_notify()
        .await
        .unwrap();
    let created = now.next().await.unwrap().unwrap();
    let a_member = created.header().member_id;
    let logs = [
        (
            "from start",
            record(
                w1.watch("/w2/")
                    .prefix()
                    .from_revision(first)
                    .await
                    .unwrap(),
            ),
            Filter::new(range.clone(), first),
        ),
        ("from now, prev_kv", record(now), {
            let mut f = Filter::new(range.clone(), created.revision() + 1);
            f.prev_kv = true;
            f
        }),
        (
            "no delete",
            record(
                w3.watch("/w2/")
                    .prefix()
                    .no_delete()
                    .from_revision(first)
                    .await
                    .unwrap(),
            ),
            {
                let mut f = Filter::new(range.clone(), first);
                f.no_delete = true;
                f
            },
        ),
    ];

    // A steady writer through B: a put or a delete every 10 ms.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let writes = Arc::clone(&writes);
        let kv = kv.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("/w2/k{}", i % 5);
                let written = if i % 4 == 3 {
                    kv.delete(&key).await.map(|_| ())
                } else {
                    kv.put(&key, format!("v{i}")).await.map(|_| ())
                };
                if written.is_ok() {
                    writes.lock().unwrap().push(Instant::now());
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    cluster.member(a).kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.member(a).restart().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let last = kv.put("/w2/end", "x").await.unwrap().revision();
    let reference = reference(&urls[b], &range, first, last).await;

    for (label, log, filter) in logs {
        let until = last_expected(&reference, &filter, last);
        let deadline = Instant::now() + LONG;
        loop {
            let done = log.lock().unwrap().iter().any(|(_, r)| {
                r.as_ref()
                    .is_ok_and(|r| r.events().last().is_some_and(|e| e.revision() >= until))
            });
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "{label}: did not reach {until}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = log.lock().unwrap();
        let mut rec = Recorded::default();
        for (_, item) in log.iter() {
            match item {
                Ok(r) => rec.responses.push(r.clone()),
                Err(e) => panic!("{label}: error {e}"),
            }
        }
        validate(label, &rec, &reference, &filter, last);
        // Served by A before the kill, by another member after it.
        let before: Vec<u64> = log
            .iter()
            .filter(|(t, r)| *t < killed_at && r.as_ref().is_ok_and(|r| !r.events().is_empty()))
            .map(|(_, r)| r.as_ref().unwrap().header().member_id)
            .collect();
        assert!(
            before.iter().all(|&m| m == a_member),
            "{label}: not pinned to A"
        );
        // (A's last responses may still be read just after the kill.)
        let after = log
            .iter()
            .find(|(_, r)| {
                r.as_ref()
                    .is_ok_and(|r| !r.events().is_empty() && r.header().member_id != a_member)
            })
            .expect("nothing from another member after the kill");
        let resumed_in = after.0 - killed_at;
        let first_write = writes
            .lock()
            .unwrap()
            .iter()
            .copied()
            .find(|t| *t > killed_at);
        eprintln!(
            "w2 {label}: first delivery after the kill in {resumed_in:?} (first write after it: {:?})",
            first_write.map(|t| t - killed_at)
        );
        assert!(
            resumed_in < Duration::from_secs(3),
            "{label}: resumed after {resumed_in:?}"
        );
    }
}

/// W11: a require-leader watch on a member that loses its quorum ends with `NoLeader`; a
/// plain watch on the same member stays open; after the quorum is back, watches work.
#[tokio::test]
async fn w11_require_leader_watch_ends_with_no_leader() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let urls = cluster.client_urls();
    let a = &urls[0];
    let kv = Kv::new(GrpcKv::new(channel(a)));
    let leader_required = Watcher::new(GrpcWatch::new(channel(a)).require_leader(true));
    let plain = Watcher::new(GrpcWatch::new(channel(a)));
    let mut rl = leader_required.watch("/w11/").prefix().await.unwrap();
    let mut pl = plain.watch("/w11/").prefix().await.unwrap();
    let r = kv.put("/w11/a", "1").await.unwrap().revision();
    assert_eq!(collect(&mut rl, r, LONG).await.last_event_rev(), r);
    assert_eq!(collect(&mut pl, r, LONG).await.last_event_rev(), r);

    cluster.member(1).pause();
    cluster.member(2).pause();
    let paused = Instant::now();
    let item = tokio::time::timeout(LONG, rl.next())
        .await
        .expect("no NoLeader in time");
    let took = paused.elapsed();
    assert!(matches!(item, Some(Err(Error::WatchNoLeader))), "{item:?}");
    assert!(rl.next().await.is_none());
    eprintln!("w11: NoLeader after {took:?}");
    // The plain watch is still open and silent.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), pl.next())
            .await
            .is_err()
    );

    cluster.member(1).resume();
    cluster.member(2).resume();
    let deadline = Instant::now() + LONG;
    let r = loop {
        match kv.put("/w11/b", "2").await {
            Ok(resp) => break resp.revision(),
            Err(e) => assert!(Instant::now() < deadline, "no write after resume: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(collect(&mut pl, r, LONG).await.last_event_rev(), r);
    let mut again = leader_required
        .watch("/w11/")
        .prefix()
        .from_revision(r)
        .await
        .unwrap();
    assert_eq!(collect(&mut again, r, LONG).await.last_event_rev(), r);
}
