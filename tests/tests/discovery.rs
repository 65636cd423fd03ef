//! Service discovery through `Client`, against real etcd: registrations kept alive, written
//! again after a lost lease, surviving a leader kill, gone within TTL + 1 s of a process
//! killed; discovery as a stream of tower `Change`s, values in the Go client's JSON shape.

use std::time::{Duration, Instant};

use etcd_testkit::{EtcdCluster, shared_server, unique_prefix};
use etcd3::discovery::{Change, Discovery, Endpoint};
use etcd3::{Client, Error};
use futures::StreamExt;

/// The next change of `discovery`, within `within`.
async fn next_change(discovery: &mut Discovery, within: Duration) -> Change<String, Endpoint> {
    tokio::time::timeout(within, discovery.next())
        .await
        .expect("a change in time")
        .expect("the stream goes on")
        .expect("discovery items are never errors")
}

/// No change within `within`.
async fn quiet(discovery: &mut Discovery, within: Duration) {
    if let Ok(item) = tokio::time::timeout(within, discovery.next()).await {
        panic!("expected no change, got {item:?}");
    }
}

fn inserted(change: Change<String, Endpoint>) -> (String, Endpoint) {
    match change {
        Change::Insert(key, endpoint) => (key, endpoint),
        Change::Remove(key) => panic!("expected an insert, got the removal of {key}"),
    }
}

fn removed(change: Change<String, Endpoint>) -> String {
    match change {
        Change::Remove(key) => key,
        Change::Insert(key, _) => panic!("expected a removal, got an insert of {key}"),
    }
}

#[tokio::test]
async fn instances_come_and_go_in_the_stream() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let service = unique_prefix("discovery").trim_end_matches('/').to_string();
    let first = client
        .register(&service, "a", Endpoint::new("10.0.0.1:1"))
        .await
        .unwrap();
    assert_eq!(first.key(), format!("{service}/a").as_bytes());

    // Registered before: listed first.
    let mut discovery = client.discover(&service).await.unwrap();
    let (key, endpoint) = inserted(next_change(&mut discovery, Duration::from_secs(5)).await);
    assert_eq!(
        (key.as_str(), endpoint.addr.as_str()),
        (format!("{service}/a").as_str(), "10.0.0.1:1")
    );

    // Registered after, with metadata.
    let metadata = serde_json::json!({"zone": "eu-1", "weight": 3});
    let second = client
        .register(
            &service,
            "b",
            Endpoint::new("10.0.0.2:2").with_metadata(metadata.clone()),
        )
        .await
        .unwrap();
    let (key, endpoint) = inserted(next_change(&mut discovery, Duration::from_secs(5)).await);
    assert_eq!(key, format!("{service}/b"));
    assert_eq!(endpoint.metadata, metadata);

    // A value written by Go's endpoints.Manager, and one that names no endpoint (skipped).
    client
        .kv()
        .put(
            format!("{service}/go"),
            r#"{"Op":0,"Addr":"10.0.0.3:3","Metadata":{"version":"v2"}}"#,
        )
        .await
        .unwrap();
    client
        .kv()
        .put(format!("{service}/junk"), "not json")
        .await
        .unwrap();
    let (key, endpoint) = inserted(next_change(&mut discovery, Duration::from_secs(5)).await);
    assert_eq!(
        (key, endpoint.addr),
        (format!("{service}/go"), "10.0.0.3:3".into())
    );
    assert_eq!(endpoint.metadata["version"], "v2");
    quiet(&mut discovery, Duration::from_millis(300)).await;
    let mut known: Vec<String> = discovery.endpoints().into_iter().map(|(k, _)| k).collect();
    known.sort();
    assert_eq!(
        known,
        [
            format!("{service}/a"),
            format!("{service}/b"),
            format!("{service}/go")
        ]
    );

    // Closed: removed at once; dropped: removed soon after (in the background).
    second.close().await.unwrap();
    assert_eq!(
        removed(next_change(&mut discovery, Duration::from_secs(5)).await),
        format!("{service}/b")
    );
    drop(first);
    assert_eq!(
        removed(next_change(&mut discovery, Duration::from_secs(5)).await),
        format!("{service}/a")
    );
    let left = client
        .kv()
        .get(format!("{service}/"))
        .prefix()
        .keys_only()
        .await
        .unwrap();
    assert_eq!(left.kvs().len(), 2, "the Go value and the junk stay");

    // Empty names are refused before anything is sent.
    for (service, name) in [("", "x"), ("/", "x"), ("svc", "")] {
        match client.register(service, name, Endpoint::new("h:1")).await {
            Err(Error::InvalidRequest(_)) => {}
            other => panic!("{service:?}/{name:?}: expected InvalidRequest, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_registration_is_written_again_after_its_lease_is_lost() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let service = unique_prefix("discovery-relost")
        .trim_end_matches('/')
        .to_string();
    let registration = client
        .register(&service, "a", Endpoint::new("10.0.0.1:1"))
        .ttl(Duration::from_secs(5))
        .await
        .unwrap();
    let mut discovery = client.discover(&service).await.unwrap();
    inserted(next_change(&mut discovery, Duration::from_secs(5)).await);

    // Someone revokes the lease: the key goes, and comes back under a new lease.
    let old_lease = registration.lease_id();
    client.lease().revoke(old_lease).await.unwrap();
    let revoked = Instant::now();
    removed(next_change(&mut discovery, Duration::from_secs(5)).await);
    let (key, _) = inserted(next_change(&mut discovery, Duration::from_secs(5)).await);
    assert_eq!(key, format!("{service}/a"));
    println!("registered again {:?} after the revoke", revoked.elapsed());
    assert_eq!(registration.registrations(), 2);
    assert_ne!(registration.lease_id(), old_lease);
    assert!(registration.failing().is_none());
    registration.close().await.unwrap();
    removed(next_change(&mut discovery, Duration::from_secs(5)).await);
}

/// A registration with a 5 s TTL on a three-member cluster whose leader is killed and
/// restarted: a watch on its key from the registration on sees no deletion, and the key
/// is never written again (the lease was never lost). The TTL leaves room for the
/// election (1–2 s with etcd's default timeouts) after up to one renewal interval (TTL/3)
/// since the last acknowledged renewal; with 3 s, a slow election sometimes made the
/// client count the lease as possibly expired, and register again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_survives_a_leader_kill() {
    let cluster = EtcdCluster::start(3).await;
    let client = Client::builder(cluster.client_urls())
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let registration = client
        .register("svc", "a", Endpoint::new("10.0.0.1:1"))
        .ttl(Duration::from_secs(5))
        .await
        .unwrap();
    let from = client.kv().get("svc/a").await.unwrap().revision();
    let observer = Client::connect(cluster.client_urls()).await.unwrap();
    let mut events = observer
        .watch("svc/a")
        .from_revision(from + 1)
        .await
        .unwrap();

    let leader = cluster.leader().await;
    cluster.member(leader).kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.member(leader).restart().await;
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Everything that happened to the key since the registration: nothing.
    let marker = observer
        .kv()
        .put("svc-marker", "x")
        .await
        .unwrap()
        .revision();
    let seen = observer.kv().get("svc/a").await.unwrap();
    assert_eq!(seen.kvs().len(), 1, "the key is there");
    assert!(seen.revision() >= marker);
    if let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(500), events.next()).await {
        panic!("the key changed during the kill: {item:?}");
    }
    assert_eq!(registration.registrations(), 1, "never registered again");
    registration.close().await.unwrap();
}

/// A process registered with a 3 s TTL is SIGKILLed: discovery reports it gone within
/// TTL + 1 s.
#[tokio::test]
async fn a_killed_process_leaves_discovery_within_its_ttl() {
    const TTL: Duration = Duration::from_secs(3);
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let service = unique_prefix("discovery-killed")
        .trim_end_matches('/')
        .to_string();
    let mut discovery = client.discover(&service).await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_register"))
        .args([
            shared_server().client_url().as_str(),
            service.as_str(),
            "doomed",
            "10.0.0.9:9",
            &TTL.as_secs().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (key, endpoint) = inserted(next_change(&mut discovery, Duration::from_secs(10)).await);
    assert_eq!(
        (key.as_str(), endpoint.addr.as_str()),
        (format!("{service}/doomed").as_str(), "10.0.0.9:9")
    );
    // Let it renew a few times, so the kill lands anywhere in a renewal period.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    child.start_kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    child.wait().await.unwrap();
    let key = removed(next_change(&mut discovery, TTL + Duration::from_secs(3)).await);
    let gone_after = killed.elapsed();
    println!("gone from discovery {gone_after:?} after SIGKILL (TTL {TTL:?})");
    assert_eq!(key, format!("{service}/doomed"));
    assert!(
        gone_after <= TTL + Duration::from_secs(1),
        "gone after {gone_after:?}, more than TTL + 1 s"
    );
}
