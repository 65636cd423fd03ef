//! Monotonic reads (`ClientBuilder::monotonic_reads`) through `Client`, against real etcd.
//!
//! A member behind the others is played by a second server holding the same key at an
//! older revision, as a member restored from an older snapshot (or cut off from its
//! peers) would: to the client, it is a member answering from the past.

use etcd_tests::EtcdServer;
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
