//! Endpoints changed at run time, and kept in step with the cluster's member list.

use std::time::{Duration, Instant};

use etcd_testkit::EtcdCluster;
use etcd3::{Client, Error};

/// One cluster test at a time: each measures failover timings on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn endpoints_can_be_changed_while_the_client_runs() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let urls = cluster.client_urls();
    // The member given first and later dropped is a follower, so killing it starts no
    // election (writes during an election may fail with an unknown outcome).
    let (leader, followers) = cluster.leader_and_followers().await;
    let (gone, other) = (followers[0], followers[1]);
    let client = Client::connect([&urls[gone]]).await.unwrap();
    let watcher_clone = client.clone();
    client.kv().put("k", "1").await.unwrap();

    client.set_endpoints([&urls[leader], &urls[other]]).unwrap();
    assert_eq!(
        watcher_clone.endpoints(),
        [urls[leader].clone(), urls[other].clone()],
        "every clone sees the change"
    );
    cluster.member(gone).kill();
    for i in 0..10 {
        // Not one error: member 0 is no longer used.
        client.kv().put("k", format!("{i}")).await.unwrap();
        client.kv().get("k").await.unwrap();
    }

    client.add_endpoint(&urls[gone]).unwrap();
    client.add_endpoint(&urls[gone]).unwrap();
    assert_eq!(client.endpoints().len(), 3);
    client.remove_endpoint(&urls[gone]).unwrap();
    assert_eq!(client.endpoints().len(), 2);

    let none: [&str; 0] = [];
    assert!(matches!(
        client.set_endpoints(none),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        client.set_endpoints(["ftp://nowhere:1"]),
        Err(Error::InvalidRequest(_))
    ));
    assert_eq!(
        client.endpoints().len(),
        2,
        "a refused change changes nothing"
    );
    client.kv().get("k").await.unwrap();
}

#[tokio::test]
async fn auto_sync_follows_the_member_list() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let urls = cluster.client_urls();
    let gone = cluster.follower().await;
    let client = Client::builder([&urls[gone]])
        .auto_sync(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    while client.endpoints().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "endpoints: {:?}",
            client.endpoints()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut synced = client.endpoints();
    synced.sort();
    let mut expected = urls.clone();
    expected.sort();
    assert_eq!(synced, expected);
    eprintln!("endpoints synced after {:?}", started.elapsed());

    // The member the client was given dies; the synced endpoints carry on.
    let p = etcd_testkit::unique_prefix("auto_sync");
    cluster.member(gone).kill();
    let mut failures = 0;
    for i in 0..10 {
        if client.kv().put(format!("{p}{i}"), "v").await.is_err() {
            failures += 1;
        }
        client
            .kv()
            .get(format!("{p}{i}"))
            .await
            .expect("reads are resent to live members");
    }
    assert!(failures <= 1, "{failures} writes failed");
    assert_eq!(
        client.sync_endpoints().await.unwrap().len(),
        3,
        "the killed member stays listed"
    );
}
