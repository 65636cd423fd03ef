//! Recorded histories through `etcd3::Client`, proved by the history checker
//! (reliability plan §6.2 K1, K3, K4; global criteria G1–G6).
//!
//! Four logical clients run the K1 mix on ten keys through one `Client` built as a user
//! would (all three endpoints, a 2 s request timeout), two watches record the prefix, and
//! the server's own history is collected by raw watches on every member. The checker then
//! places every operation in the revision order and checks answers, real-time order,
//! per-key linearizability, the watches and that no write was lost or applied twice.
//!
//! * K1: no fault.
//! * K3: the leader is SIGKILLed at 3 s and restarted at 6 s.
//! * K4: the leader is SIGSTOPped at 3 s for 4 s: calls in flight on it end at their
//!   deadline, later calls go to the other members.
//! * K12: a follower is SIGSTOPped while the others commit 7,000 entries outside the
//!   checked keys, then continued: it catches up from a snapshot; serializable reads it
//!   serves may be stale but must equal the state at their revision.
//! * K11: a follower is replaced at 3 s (removed, wiped, added again with the same peer
//!   URL, started as `existing`); the client's synced endpoints list it once.
//!
//! A failing run leaves its history in `target/chaos/<test>/`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use etcd_testkit::EtcdCluster;
use etcd_tests::history::reference::PROGRESS_FLAG;
use etcd_tests::history::workload::Workload;
use etcd_tests::history::{Proof, WatchSpec};
use etcd3::Client;

/// Three-member clusters with second-scale thresholds: one at a time on two cores.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CLIENTS: u32 = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// G6: no call outlives its deadline by more than this.
const DEADLINE_SLACK: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    KillLeader,
    StopLeader,
    ReplaceFollower,
    LagFollower,
}

async fn recorded_run(name: &str, fault: Fault, traffic: Duration) {
    let _serial = HEAVY.lock().await;
    let cluster = Arc::new(
        EtcdCluster::builder(3)
            .arg(PROGRESS_FLAG)
            // Snapshots often, so that a follower that misses a few thousand entries
            // catches up from one (K12).
            .arg("--snapshot-count=1000")
            .start()
            .await,
    );
    let proof = Proof::start(name, &cluster.client_urls());
    let (prefix, end, recorder) = (
        proof.prefix.clone(),
        proof.end.clone(),
        proof.recorder.clone(),
    );
    let workload = Arc::new(Workload::new(prefix.clone()));
    let client = Client::builder(cluster.client_urls())
        .request_timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .expect("connect");

    let watch = |spec| {
        let (recorder, client) = (Arc::clone(&recorder), client.clone());
        async move {
            recorder
                .watch(100, &client, spec)
                .await
                .expect("open a watch")
        }
    };
    let from_now = watch(WatchSpec {
        key: prefix.clone(),
        end: Some(end.clone()),
        prev_kv: true,
        progress_notify: true,
        ..WatchSpec::default()
    })
    .await;
    let puts_only = watch(WatchSpec {
        key: prefix.clone(),
        end: Some(end.clone()),
        start_revision: 1,
        no_delete: true,
        // Vouches for a last revision that only deleted.
        progress_notify: true,
        ..WatchSpec::default()
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let seed = 0x4b31 ^ u64::from(std::process::id());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (workload, recorder, kv, stop) = (
                Arc::clone(&workload),
                Arc::clone(&recorder),
                client.kv().clone(),
                Arc::clone(&stop),
            );
            tokio::spawn(async move { workload.run(recorder, c, kv, seed, stop).await })
        })
        .collect();

    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    match fault {
        Fault::None => {}
        Fault::KillLeader => {
            let leader = cluster.leader().await;
            cluster.member(leader).kill();
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.member(leader).restart().await;
        }
        Fault::StopLeader => {
            let leader = cluster.leader().await;
            cluster.member(leader).pause();
            tokio::time::sleep(Duration::from_secs(4)).await;
            cluster.member(leader).resume();
        }
        Fault::LagFollower => {
            let (leader, followers) = cluster.leader_and_followers().await;
            let lagging = cluster.member(followers[0]);
            lagging.pause();
            // More than the 5,000 entries etcd keeps behind a snapshot for slow
            // followers, with a snapshot every 1,000: it catches up from a snapshot.
            etcd_tests::chaos::faults::fill(&cluster.member(leader).client_url(), 7_000).await;
            lagging.resume();
        }
        Fault::ReplaceFollower => {
            let follower = cluster.follower().await;
            let (old, new) = cluster.replace_member(follower).await;
            assert_ne!(old, new, "{name}: the member was replaced");
            // The client's view of the membership follows: the replaced member's URL is
            // listed once, under the new member.
            let mut synced = client.sync_endpoints().await.expect("sync the endpoints");
            synced.sort();
            let mut urls = cluster.client_urls();
            urls.sort();
            assert_eq!(synced, urls, "{name}: endpoints after the replacement");
        }
    }
    if let Some(rest) = traffic.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut ran = 0;
    for task in tasks {
        ran += task.await.expect("a workload task panicked");
    }

    // The last revision, read straight from a member, bounds what everyone must reach.
    let last = etcd_tests::clients::raw_kv(&cluster.client_urls()[0])
        .get(prefix.as_str())
        .await
        .expect("read the last revision")
        .revision();
    let proved = proof.prove(vec![from_now, puts_only], last).await;
    let (history, report) = (proved.history, proved.report);
    println!("{name}: {ran} operations");
    assert!(ran >= 200, "{name}: only {ran} operations ran");
    assert!(
        history.ops.iter().filter(|op| op.ret.is_some()).count() >= 100,
        "{name}: too few calls succeeded"
    );
    // G6: every call ended within its deadline (retries included) and a little slack.
    let slowest = history
        .ops
        .iter()
        .max_by_key(|op| op.elapsed)
        .expect("operations");
    assert!(
        Duration::from_nanos(slowest.elapsed) <= REQUEST_TIMEOUT + DEADLINE_SLACK,
        "{name}: op {} took {:?} (deadline {REQUEST_TIMEOUT:?}): {:?}",
        slowest.id,
        Duration::from_nanos(slowest.elapsed),
        slowest.resp
    );
    if let Fault::None = fault {
        assert_eq!(
            report.unknown, 0,
            "{name}: unknown outcomes without a fault"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k1_recorded_mixed_workload_is_linearizable() {
    recorded_run(
        "k1_recorded_mixed_workload",
        Fault::None,
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k3_leader_killed_under_recorded_traffic() {
    recorded_run(
        "k3_leader_killed",
        Fault::KillLeader,
        Duration::from_secs(12),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k4_leader_paused_under_recorded_traffic() {
    recorded_run(
        "k4_leader_paused",
        Fault::StopLeader,
        Duration::from_secs(12),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k11_follower_replaced_under_recorded_traffic() {
    recorded_run(
        "k11_follower_replaced",
        Fault::ReplaceFollower,
        Duration::from_secs(12),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k12_follower_catches_up_from_a_snapshot_under_recorded_traffic() {
    recorded_run(
        "k12_follower_snapshot",
        Fault::LagFollower,
        Duration::from_secs(12),
    )
    .await;
}
