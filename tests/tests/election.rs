//! Elections against a real etcd (reliability.md §6.2, X4): three candidates, an
//! observer that sees every leader in revision order without duplicates, resign, a lost
//! leader session, and resuming a leadership from its key and revision.

use std::time::{Duration, Instant};

use etcd_testkit::{shared_server, unique_prefix};
use etcd3::Client;
use etcd3::concurrency::{self, Error, Session};
use etcd3::kv::Op;
use futures::StreamExt;

async fn setup(name: &str) -> (Client, String) {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    (client, unique_prefix(name))
}

async fn session(client: &Client) -> Session {
    Session::new(client)
        .ttl(Duration::from_secs(5))
        .await
        .unwrap()
}

async fn wait_candidates(client: &Client, prefix: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let count = client.kv().get(prefix).prefix().await.unwrap().kvs().len();
        if count == n {
            return;
        }
        assert!(Instant::now() < deadline, "{count} candidates, not {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// X4: 3 candidates; the observer sees c0, c0's proclaimed value, c1 after c0 resigns,
/// c2 after c1's session is closed, in revision order, each once; a leadership resumed
/// from (key, revision) proclaims, a stale one cannot.
#[tokio::test]
async fn x4_three_candidates_observer_resign_and_resume() {
    let (client, p) = setup("x4").await;
    let name = format!("{p}election");
    let prefix = format!("{name}/");
    let observer_client = Client::connect(shared_server().endpoints()).await.unwrap();
    let mut observed = concurrency::observe(&observer_client, &name);

    let sessions = [
        session(&client).await,
        session(&client).await,
        session(&client).await,
    ];
    let c0 = sessions[0].election(&name).campaign("c0").await.unwrap();
    assert_eq!(
        sessions[1]
            .election(&name)
            .leader()
            .await
            .unwrap()
            .unwrap()
            .value(),
        b"c0"
    );
    let c1 = {
        let e = sessions[1].election(&name);
        tokio::spawn(async move { e.campaign("c1").await })
    };
    wait_candidates(&client, &prefix, 2).await;
    let c2 = {
        let e = sessions[2].election(&name);
        tokio::spawn(async move { e.campaign("c2").await })
    };
    wait_candidates(&client, &prefix, 3).await;

    c0.proclaim("c0-v2").await.unwrap();
    // Only the leader's fence holds.
    let fenced = c0.txn().then([Op::put(format!("{p}work"), "by c0")]).await;
    assert!(fenced.unwrap().succeeded());

    assert!(c0.resign().await.unwrap());
    let c1 = tokio::time::timeout(Duration::from_secs(5), c1)
        .await
        .expect("c1 is elected after c0 resigns")
        .unwrap()
        .unwrap();
    assert_eq!(
        concurrency::leader(&client, &name)
            .await
            .unwrap()
            .unwrap()
            .key(),
        c1.key()
    );
    assert!(matches!(c0.proclaim("late").await, Err(Error::NotLeader)));

    // c1's session dies: c2 wins.
    sessions[1].close().await.unwrap();
    let c2 = tokio::time::timeout(Duration::from_secs(5), c2)
        .await
        .expect("c2 is elected after c1's session ends")
        .unwrap()
        .unwrap();

    // Resume c2 from its key and revision (say, after a restart that kept the lease).
    let (key, revision) = c2.into_parts();
    let resumed = sessions[2].election(&name).resume(key.clone(), revision);
    resumed.proclaim("c2-resumed").await.unwrap();
    let stale = sessions[2].election(&name).resume(key, revision - 1);
    assert!(matches!(
        stale.proclaim("stale").await,
        Err(Error::NotLeader)
    ));

    let mut values = Vec::new();
    let mut revisions = Vec::new();
    while values.len() < 5 {
        let kv = tokio::time::timeout(Duration::from_secs(5), observed.next())
            .await
            .unwrap_or_else(|_| panic!("observer stuck after {values:?}"))
            .unwrap()
            .unwrap();
        values.push(kv.value_str().unwrap().to_owned());
        revisions.push((kv.create_revision(), kv.mod_revision()));
    }
    eprintln!("x4: observed {values:?} at {revisions:?}");
    assert_eq!(values, ["c0", "c0-v2", "c1", "c2", "c2-resumed"]);
    // Terms (create revisions) never go back, and each change is a later state: ordered
    // by (create revision, mod revision), strictly.
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "revision order: {revisions:?}"
    );
    // Nothing else (no duplicates).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), observed.next())
            .await
            .is_err()
    );

    assert!(resumed.resign().await.unwrap());
    assert!(concurrency::leader(&client, &name).await.unwrap().is_none());
    for s in &sessions {
        s.close().await.unwrap();
    }
}

/// An observer that starts late sees the current leader first; campaigning twice on one
/// session reuses the key and updates its value; a waiting candidate whose session is
/// lost fails with SessionExpired.
#[tokio::test]
async fn late_observer_repeated_campaign_and_lost_candidate() {
    let (client, p) = setup("election_more").await;
    let name = format!("{p}e");
    let a = session(&client).await;
    let b = session(&client).await;
    let election = a.election(&name);
    let first = election.campaign("v1").await.unwrap();
    let again = election.campaign("v2").await.unwrap();
    assert_eq!(first.key(), again.key());
    assert_eq!(first.revision(), again.revision());
    let mut observed = election.observe();
    let now = observed.next().await.unwrap().unwrap();
    assert_eq!(now.value(), b"v2");

    let waiting = {
        let e = b.election(&name);
        tokio::spawn(async move { e.campaign("b").await })
    };
    wait_candidates(&client, &format!("{name}/"), 2).await;
    b.orphan();
    let result = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(result.unwrap_err().is_session_expired());
    let _ = again.into_parts();
    first.resign().await.unwrap();
    a.close().await.unwrap();
    client.lease().revoke(b.lease_id()).await.unwrap();
}

/// The server-side Election service: campaign, leader, proclaim, observe, resign.
#[tokio::test]
async fn server_side_election_service() {
    let (client, p) = setup("election_service").await;
    let name = format!("{p}e");
    let s = session(&client).await;
    let elections = client.election_service();
    let won = elections
        .campaign(name.as_str(), s.lease_id(), "v1")
        .await
        .unwrap();
    let leader = won.leader.unwrap();
    assert_eq!(
        leader.key,
        format!("{name}/{:x}", s.lease_id()).into_bytes()
    );
    let mut observed = elections.observe(name.as_str()).await.unwrap();
    let first = observed.next().await.unwrap().unwrap();
    assert_eq!(&first.kv.unwrap().value[..], b"v1");
    elections.proclaim(leader.clone(), "v2").await.unwrap();
    let second = observed.next().await.unwrap().unwrap();
    assert_eq!(&second.kv.unwrap().value[..], b"v2");
    let now = elections.leader(name.as_str()).await.unwrap();
    assert_eq!(&now.kv.unwrap().value[..], b"v2");
    // The client-side recipe sees the same leader.
    assert_eq!(
        concurrency::leader(&client, &name)
            .await
            .unwrap()
            .unwrap()
            .value(),
        b"v2"
    );
    elections.resign(leader).await.unwrap();
    assert!(concurrency::leader(&client, &name).await.unwrap().is_none());
    s.close().await.unwrap();
}
