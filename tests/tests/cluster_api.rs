//! The cluster membership API against a real 3-member cluster: list, add (voter and
//! learner), promote, update, remove, and the typed errors of each.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use std::future::IntoFuture;

use etcd_testkit::EtcdCluster;
use etcd3::{Client, Error, InvalidRequest, ServerErrorKind};

/// A peer URL nothing listens on: a member added there never starts.
fn unused_peer_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Retries a membership change while etcd finds the cluster "unhealthy": it refuses
/// changes until its members have been connected for 5 s (a fresh cluster is not).
async fn when_healthy<T, F, Fut>(mut change: F) -> etcd3::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = etcd3::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match change().await {
            Err(e)
                if e.server_kind() == Some(ServerErrorKind::Unhealthy)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test]
async fn membership_lifecycle_on_a_three_member_cluster() {
    let cluster = EtcdCluster::start(3).await;
    let client = Client::connect(cluster.client_urls()).await.unwrap();
    let members = client.cluster();

    // List: three started voters whose client URLs are the cluster's.
    let list = members.members().await.expect("member list");
    assert_eq!(list.members().len(), 3, "{list:?}");
    let mut listed: Vec<String> = list
        .members()
        .iter()
        .flat_map(|m| m.client_urls().to_vec())
        .collect();
    listed.sort();
    let mut expected = cluster.client_urls();
    expected.sort();
    assert_eq!(listed, expected);
    for m in list.members() {
        assert!(m.id() != 0 && m.is_started() && !m.is_learner(), "{m:?}");
        assert_eq!(m.peer_urls().len(), 1);
    }
    // Linearizable list (3.5; 3.4 ignores the flag): the same members.
    let linear = members.members().linearizable().await.unwrap();
    assert_eq!(linear.members().len(), 3);

    // Add a learner at a URL nothing listens on.
    let learner_url = unused_peer_url();
    let added = when_healthy(|| members.add_learner([learner_url.as_str()]).into_future())
        .await
        .expect("add learner");
    let learner = added.member().clone();
    assert!(learner.is_learner());
    assert!(!learner.is_started(), "{learner:?}");
    assert_eq!(learner.peer_urls(), [learner_url.as_str()]);
    assert_eq!(added.members().len(), 4);
    // Any member may serve the list, one that has not applied the change yet too.
    let deadline = Instant::now() + Duration::from_secs(5);
    let list = loop {
        let list = members.members().await.unwrap();
        if list.member(learner.id()).is_some() {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "no learner listed after 5 s: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(list.member(learner.id()).unwrap().is_learner());

    // The same peer URL twice: a typed membership error.
    let e = members
        .add_learner([learner_url.as_str()])
        .await
        .unwrap_err();
    assert_eq!(e.server_kind(), Some(ServerErrorKind::Membership), "{e}");

    // A learner that never started cannot be promoted.
    let e = members.promote(learner.id()).await.unwrap_err();
    assert_eq!(e.server_kind(), Some(ServerErrorKind::Membership), "{e}");
    // Nor can a voter.
    let voter = list.members().iter().find(|m| !m.is_learner()).unwrap();
    let e = members.promote(voter.id()).await.unwrap_err();
    assert_eq!(e.server_kind(), Some(ServerErrorKind::Membership), "{e}");

    // Update the learner's peer URLs.
    let new_url = unused_peer_url();
    let updated = when_healthy(|| {
        members
            .update(learner.id(), [new_url.as_str()])
            .into_future()
    })
    .await
    .expect("update peer URLs");
    assert_eq!(
        updated.member(learner.id()).map(|m| m.peer_urls().to_vec()),
        Some(vec![new_url.clone()]),
        "{updated:?}"
    );

    // Remove it.
    let removed = when_healthy(|| members.remove(learner.id()).into_future())
        .await
        .expect("remove learner");
    assert!(removed.member(learner.id()).is_none());
    wait_for_member_count(members, 3).await;

    // Removing it again: unknown member.
    let e = members.remove(learner.id()).await.unwrap_err();
    assert_eq!(e.server_kind(), Some(ServerErrorKind::Membership), "{e}");

    // A voting member that never starts: 3 of 4 still make a quorum; remove it again.
    let voter_url = unused_peer_url();
    let added = when_healthy(|| members.add([voter_url.as_str()]).into_future())
        .await
        .expect("add voter");
    assert!(!added.member().is_learner());
    when_healthy(|| members.remove(added.member().id()).into_future())
        .await
        .expect("remove the unstarted voter");
    wait_for_member_count(members, 3).await;

    // The cluster still serves.
    client.kv().put("after-membership", "ok").await.unwrap();
}

#[tokio::test]
async fn bad_membership_requests_are_refused_before_sending() {
    // Nothing listens here; a request that were sent would fail with a transport error.
    let client = Client::connect([unused_peer_url()]).await.unwrap();
    let members = client.cluster();
    let refused = |e: Error| {
        assert!(
            matches!(e, Error::InvalidRequest(InvalidRequest::Other(_))),
            "{e:?}"
        )
    };
    refused(members.add(Vec::<String>::new()).await.unwrap_err());
    refused(members.add(["127.0.0.1:2380"]).await.unwrap_err());
    refused(members.add(["http://host-without-port"]).await.unwrap_err());
    refused(members.add_learner(["http://h:1/path"]).await.unwrap_err());
    refused(members.remove(0).await.unwrap_err());
    refused(members.promote(0).await.unwrap_err());
    refused(members.update(0, ["http://h:1"]).await.unwrap_err());
    refused(members.update(7, Vec::<String>::new()).await.unwrap_err());
}

/// Waits until the member list has `n` members. The list is served by any member, and one
/// that has not applied a change yet may still show the old list (3.4 has no linearizable
/// member list), so allow it a moment.
async fn wait_for_member_count<S: etcd_core::cluster::ClusterService>(
    members: &etcd_core::Cluster<S>,
    n: usize,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let seen = members.members().await.unwrap().members().len();
        if seen == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{seen} members, not {n}, after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
