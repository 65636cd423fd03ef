//! Monotonic reads (`ClientBuilder::monotonic_reads`) through `Client`, against real etcd.
//!
//! A member behind the others is played by a second server holding the same key at an
//! older revision, as a member restored from an older snapshot (or cut off from its
//! peers) would: to the client, it is a member answering from the past.

use etcd_testkit::EtcdServer;
use etcd3::{Client, Error, RetryPolicy};

/// Two servers: `current`, whose revision has moved on, and `behind`, with the same key
/// at an older revision.
async fn current_and_behind() -> (EtcdServer, EtcdServer) {
    let (current, behind) = (EtcdServer::start().await, EtcdServer::start().await);
    for server in [&current, &behind] {
        let client = Client::connect(server.endpoints()).await.unwrap();
        client.kv().put("k", "old").await.unwrap();
    }
    let client = Client::connect(current.endpoints()).await.unwrap();
    for i in 0..50 {
        client.kv().put("k", format!("new {i}")).await.unwrap();
    }
    (current, behind)
}

/// The revisions of `n` serializable reads of `k`, in order.
async fn read_revisions(client: &Client, n: usize) -> Vec<i64> {
    let mut revisions = Vec::with_capacity(n);
    for _ in 0..n {
        revisions.push(
            client
                .kv()
                .get("k")
                .serializable()
                .await
                .unwrap()
                .revision(),
        );
    }
    revisions
}

fn goes_back(revisions: &[i64]) -> bool {
    revisions.windows(2).any(|pair| pair[1] < pair[0])
}

#[tokio::test]
async fn reads_never_go_back_in_time_when_a_member_is_behind() {
    let (current, behind) = current_and_behind().await;
    let endpoints = [current.client_url(), behind.client_url()];

    // Without the option, reads spread over both members and go back in time.
    let plain = Client::connect(endpoints.clone()).await.unwrap();
    let revisions = read_revisions(&plain, 20).await;
    assert!(
        goes_back(&revisions),
        "the setup must show a stale member: {revisions:?}"
    );

    // With it, never, and every read after the first current one is current.
    let client = Client::builder(endpoints.clone())
        .monotonic_reads(true)
        .connect()
        .await
        .unwrap();
    let revisions = read_revisions(&client, 40).await;
    assert!(!goes_back(&revisions), "{revisions:?}");
    let newest = *revisions.iter().max().unwrap();
    let first_current = revisions.iter().position(|&r| r == newest).unwrap();
    assert!(first_current <= 1, "{revisions:?}");
    // Writes go on as usual, and raise what reads must reach.
    let written = client.kv().put("k", "newest").await.unwrap().revision();
    let after = read_revisions(&client, 10).await;
    assert!(
        after.iter().all(|&r| r >= written),
        "{after:?} after a write at {written}"
    );
}

#[tokio::test]
async fn with_every_member_behind_a_read_fails_with_stale_read() {
    let (current, behind) = current_and_behind().await;
    let client = Client::builder([current.client_url()])
        .monotonic_reads(true)
        .retry_policy(RetryPolicy::default().with_max_retries(2))
        .connect()
        .await
        .unwrap();
    let seen = client.kv().get("k").await.unwrap().revision();
    client.set_endpoints([behind.client_url()]).unwrap();
    match client.kv().get("k").serializable().await {
        Err(Error::StaleRead {
            revision,
            seen: floor,
        }) => {
            assert_eq!(floor, seen);
            assert!(revision < seen);
        }
        other => panic!("expected StaleRead, got {other:?}"),
    }
    // Writes are not refused: their answer moves the client on.
    client.kv().put("other", "x").await.unwrap();
}

/// A real member behind: a follower is paused while the others commit 50 writes to `k` and
/// 30 MB of other writes (more than the sockets between the members can hold, so the
/// follower cannot have them waiting on resume), then the two current members are paused
/// and the follower resumed alone (no quorum, so it cannot catch up, and answers
/// serializable reads from its older state). A monotonic
/// client that has seen the newest revision never accepts the follower's answers: each
/// read fails typed (`StaleRead`, or a timeout naming the follower among the members
/// tried) until the current members are back, and then reads are current again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_member_left_behind_never_serves_a_monotonic_read() {
    let cluster = etcd_testkit::EtcdCluster::start(3).await;
    let (leader, followers) = cluster.leader_and_followers().await;
    let (behind, other) = (followers[0], followers[1]);
    let writer = Client::connect([cluster.member(leader).client_url()])
        .await
        .unwrap();
    writer.kv().put("k", "old").await.unwrap();
    let monotonic = Client::builder(cluster.client_urls())
        .monotonic_reads(true)
        .request_timeout(std::time::Duration::from_secs(1))
        .retry_policy(RetryPolicy::default().with_max_retries(3))
        .connect()
        .await
        .unwrap();

    cluster.member(behind).pause();
    let mut newest = 0;
    for i in 0..50 {
        newest = writer
            .kv()
            .put("k", format!("new {i}"))
            .await
            .unwrap()
            .revision();
    }
    let filler = vec![b'f'; 100 * 1024];
    for i in 0..300 {
        newest = writer
            .kv()
            .put(format!("filler/{i}"), filler.clone())
            .await
            .unwrap()
            .revision();
    }
    // The client sees the newest revision (from a current member: the paused one answers
    // nothing). A serializable read from the other follower may answer before it has
    // applied the last writes, so read until an answer carries the newest revision.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let seen = loop {
        if let Ok(resp) = monotonic.kv().get("k").serializable().await
            && resp.revision() >= newest
        {
            break resp.revision();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the monotonic client never saw revision {newest}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    // Only the member behind answers now.
    cluster.member(leader).pause();
    cluster.member(other).pause();
    cluster.member(behind).resume();
    let alone = Client::builder([cluster.member(behind).client_url()])
        .request_timeout(std::time::Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let stale = alone.kv().get("k").serializable().await.unwrap();
    assert!(
        stale.revision() < seen,
        "the setup must leave the member behind: it answers at {}, the client saw {seen}",
        stale.revision()
    );
    // Each read fails typed: refused as stale, or timed out with the member behind among
    // the members it was sent to (its answer refused, the next member paused).
    let behind_url = cluster.member(behind).client_url();
    let (mut refused, mut stale_reads) = (0, 0);
    for _ in 0..6 {
        match monotonic.kv().get("k").serializable().await {
            Ok(resp) => panic!(
                "a read answered at {} after the client saw {seen}",
                resp.revision()
            ),
            Err(Error::StaleRead {
                revision,
                seen: floor,
            }) => {
                assert!(revision < floor && floor >= seen, "{revision} / {floor}");
                refused += 1;
                stale_reads += 1;
            }
            Err(Error::Timeout { endpoints, .. }) => {
                refused += usize::from(endpoints.contains(&behind_url));
            }
            Err(other) => panic!("expected StaleRead or a timeout, got {other:?}"),
        }
    }
    eprintln!("monotonic: of 6 reads, {stale_reads} StaleRead, {refused} via the member behind");
    assert!(refused > 0, "the member behind was asked, and refused");

    // The current members are back: reads are current again.
    cluster.member(leader).resume();
    cluster.member(other).resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match monotonic.kv().get("k").serializable().await {
            Ok(resp) => {
                assert!(resp.revision() >= seen, "{} < {seen}", resp.revision());
                assert_eq!(resp.kvs()[0].value(), b"new 49");
                break;
            }
            Err(error) => assert!(
                std::time::Instant::now() < deadline,
                "reads did not come back: {error:?}"
            ),
        }
    }
}
