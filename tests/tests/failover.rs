//! A client with several endpoints reaches a healthy member and avoids dead ones.

use std::net::TcpStream;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use etcd_testkit::{EtcdCluster, FaultProxy, Mode, shared_server, unique_prefix};
use etcd3::{Applied, Client, Error};

/// One cluster test at a time: each measures failover timings on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An endpoint where nothing listens: a low port (1, 2, ..), which no server of the
/// harness can take meanwhile (they get ephemeral ports) the way a freed ephemeral port can
/// be handed to a server that another test starts while the client retries.
fn dead_endpoint() -> String {
    static NEXT: AtomicU16 = AtomicU16::new(1);
    let port = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on port {port}"
    );
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_dead_endpoint_at_start_neither_fails_connect_nor_calls() {
    let endpoints = [
        dead_endpoint(),
        shared_server().client_url(),
        dead_endpoint(),
    ];
    let client = Client::connect(&endpoints)
        .await
        .expect("connect with a dead endpoint");
    let p = unique_prefix("dead_at_start");
    let started = Instant::now();
    for i in 0..30 {
        client
            .kv()
            .put(format!("{p}{i}"), "v")
            .await
            .expect("write through the live member");
        client
            .kv()
            .get(format!("{p}{i}"))
            .await
            .expect("read through the live member");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn only_dead_endpoints_give_a_typed_never_sent_error() {
    let client = Client::connect([dead_endpoint()]).await.unwrap();
    let e = client.kv().put("k", "v").await.unwrap_err();
    match &e {
        Error::Transport { applied, .. } => assert_eq!(*applied, Applied::No, "{e}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(!e.is_outcome_unknown());
}

/// Killing a follower: calls already spread over it move to the others. (Killing the
/// leader also needs retries of reads refused during the election: see the retry layer.)
#[tokio::test]
async fn calls_move_off_a_killed_member() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let client = Client::connect(cluster.client_urls()).await.unwrap();
    let kv = client.kv();
    for i in 0..6 {
        kv.put(format!("before/{i}"), "v").await.unwrap();
    }
    cluster.member(cluster.follower().await).kill();
    let started = Instant::now();
    let mut unknown = 0;
    for i in 0..20 {
        match kv.put(format!("after/{i}"), "v").await {
            Ok(_) => assert_eq!(
                kv.get(format!("after/{i}")).await.unwrap().value(),
                Some(&b"v"[..])
            ),
            // A write on the killed member's open connection may fail with an unknown
            // outcome (it is never resent); after that the member is avoided.
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        Error::Transport {
                            applied: Applied::Unknown,
                            ..
                        }
                    ),
                    "{e:?}"
                );
                unknown += 1;
            }
        }
        // Reads are resent to another member, so they never fail here.
        kv.get("before/0").await.expect("read after the kill");
    }
    assert!(unknown <= 1, "{unknown} writes failed after the kill");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        kv.get("before/")
            .prefix()
            .count_only()
            .await
            .unwrap()
            .count(),
        6
    );
}

#[tokio::test]
async fn a_refusing_member_is_skipped_and_reads_are_resent() {
    let live = FaultProxy::start(shared_server().client_addr()).await;
    let refusing = FaultProxy::start(shared_server().client_addr()).await;
    refusing.set_mode(Mode::Refuse).await;
    let client = Client::connect([refusing.url(), live.url()]).await.unwrap();
    let p = unique_prefix("refusing");
    for i in 0..10 {
        client.kv().put(format!("{p}{i}"), "v").await.unwrap();
    }
    assert_eq!(
        client
            .kv()
            .get(&p)
            .prefix()
            .count_only()
            .await
            .unwrap()
            .count(),
        10
    );
    assert_eq!(refusing.stats().connections_accepted, 0);
}

#[tokio::test]
async fn an_invalid_endpoint_is_a_typed_error() {
    for bad in ["ftp://127.0.0.1:2379", "http://exa mple:1"] {
        let e = Client::connect([bad]).await.unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)), "{bad}: {e:?}");
    }
    let none: [&str; 0] = [];
    assert!(matches!(
        Client::connect(none).await.unwrap_err(),
        Error::InvalidRequest(_)
    ));
}

/// K3, in short: the leader is killed; reads refused during the election are retried with
/// backoff, so none fails, and writes come back within the election time plus 3 s. A write
/// may fail only with an unknown outcome (it is never resent).
#[tokio::test]
async fn killing_the_leader_is_ridden_out_by_retries() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let client = Client::builder(cluster.client_urls())
        .request_timeout(Duration::from_secs(15))
        .connect()
        .await
        .unwrap();
    let kv = client.kv();
    kv.put("k", "before").await.unwrap();
    cluster.member(cluster.leader().await).kill();
    let killed = Instant::now();
    let mut first_write = None;
    let mut unknown = 0;
    for i in 0..30 {
        kv.get("k")
            .await
            .expect("reads are retried through the election");
        match kv.put("k", format!("{i}")).await {
            Ok(_) => {
                first_write.get_or_insert_with(|| killed.elapsed());
            }
            Err(e) => {
                assert!(
                    e.is_outcome_unknown(),
                    "a write may only fail with an unknown outcome: {e:?}"
                );
                unknown += 1;
            }
        }
    }
    let first_write = first_write.expect("writes resume after the election");
    eprintln!("leader killed: first write after {first_write:?}, {unknown} unknown outcomes");
    assert!(
        first_write < Duration::from_secs(4),
        "first write {first_write:?} after the kill"
    );
    assert!(unknown <= 2, "{unknown} writes with an unknown outcome");
}

/// K10: every member is killed; calls fail with typed never-sent errors within the retry
/// budget; after a restart the same client works again without being rebuilt.
#[tokio::test]
async fn the_same_client_recovers_after_the_whole_cluster_restarts() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let client = Client::connect(cluster.client_urls()).await.unwrap();
    client.kv().put("k", "before").await.unwrap();
    for member in cluster.members() {
        member.kill();
    }
    {
        let started = Instant::now();
        let e = client.kv().put("k", "during").await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Transport {
                    applied: Applied::No,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "failed after {:?}",
            started.elapsed()
        );
        assert!(client.kv().get("k").await.is_err());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarts: Vec<_> = cluster.members().iter().map(|m| m.restart()).collect();
    futures::future::join_all(restarts).await;
    let started = Instant::now();
    loop {
        match client.kv().put("k", "after").await {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = e;
            }
            Err(e) => panic!("not recovered after 20 s: {e:?}"),
        }
    }
    eprintln!("recovered {:?} after the restart", started.elapsed());
    assert_eq!(
        client.kv().get("k").await.unwrap().value(),
        Some(&b"after"[..])
    );
}

/// K8: a client that only knows member A, with require-leader: once B and C are stopped
/// and A notices it has no leader, calls fail with a typed `NoLeader` instead of hanging,
/// within [`NO_LEADER_WITHIN`]; they work again within 10 s of the others resuming.
/// How soon a member cut off from its peers refuses require-leader calls: a follower
/// misses its leader's heartbeats within an election timeout (1 s by default, randomized
/// up to 2 s), then campaigns and has no leader; the rest is slack for two shared cores.
const NO_LEADER_WITHIN: Duration = Duration::from_secs(6);

#[tokio::test]
async fn require_leader_fails_fast_with_no_leader() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let a = cluster.member(0);
    let client = Client::builder([a.client_url()])
        .require_leader(true)
        .request_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    client.kv().put("k", "v").await.unwrap();
    cluster.member(1).pause();
    cluster.member(2).pause();
    let stopped = Instant::now();
    let kind = loop {
        match client.kv().get("k").serializable().await {
            Ok(_) if stopped.elapsed() < NO_LEADER_WITHIN => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => panic!("still served {NO_LEADER_WITHIN:?} after the quorum was lost"),
            Err(e) => break e.server_kind(),
        }
    };
    eprintln!("NoLeader after {:?}", stopped.elapsed());
    assert_eq!(kind, Some(etcd3::ServerErrorKind::NoLeader));
    cluster.member(1).resume();
    cluster.member(2).resume();
    let resumed = Instant::now();
    loop {
        match client.kv().put("k", "again").await {
            Ok(_) => break,
            Err(_) if resumed.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("not back 10 s after resume: {e:?}"),
        }
    }
}
