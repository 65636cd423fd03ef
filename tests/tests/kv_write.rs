//! Every option of put, delete and compact, against a real etcd.

use etcd_testkit::{EtcdServer, shared_server, unique_prefix};
use etcd3::proto::etcdserverpb::{LeaseGrantRequest, lease_client::LeaseClient};
use etcd3::{Client, Error, InvalidRequest, ServerErrorKind};

async fn setup(name: &str) -> (Client, String) {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    (client, unique_prefix(name))
}

/// Grants a lease through the raw generated client (the lease crate has its own tests).
async fn grant(url: &str, ttl: i64) -> i64 {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let resp = LeaseClient::new(channel)
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap();
    resp.into_inner().id
}

#[tokio::test]
async fn put_returns_its_revision_and_the_previous_value() {
    let (client, p) = setup("put_prev").await;
    let kv = client.kv();
    let key = format!("{p}k");
    let first = kv.put(&key, "one").prev_kv().await.unwrap();
    assert!(first.prev_kv().is_none(), "no previous value for a new key");
    let second = kv.put(&key, "two").prev_kv().await.unwrap();
    assert!(second.revision() > first.revision());
    let prev = second.prev_kv().expect("previous value");
    assert_eq!(prev.value(), b"one");
    assert_eq!(prev.mod_revision(), first.revision());
    let plain = kv.put(&key, "three").await.unwrap();
    assert!(plain.prev_kv().is_none(), "prev_kv only when asked");
}

#[tokio::test]
async fn put_with_a_lease_ignore_value_and_ignore_lease() {
    let (client, p) = setup("put_lease").await;
    let kv = client.kv();
    let key = format!("{p}k");
    let lease = grant(&shared_server().client_url(), 60).await;
    kv.put(&key, "v1").lease(lease).await.unwrap();
    let item = kv.get(&key).await.unwrap().into_kvs().remove(0);
    assert_eq!(item.lease(), lease);

    // ignore_lease: new value, same lease.
    kv.put(&key, "v2").ignore_lease().await.unwrap();
    let item = kv.get(&key).await.unwrap().into_kvs().remove(0);
    assert_eq!((item.value(), item.lease()), (&b"v2"[..], lease));

    // ignore_value: same value, lease detached (lease 0).
    kv.put(&key, "").ignore_value().await.unwrap();
    let item = kv.get(&key).await.unwrap().into_kvs().remove(0);
    assert_eq!((item.value(), item.lease()), (&b"v2"[..], 0));

    // ignore_value with a new lease: same value, new lease.
    let other = grant(&shared_server().client_url(), 60).await;
    kv.put(&key, "").ignore_value().lease(other).await.unwrap();
    let item = kv.get(&key).await.unwrap().into_kvs().remove(0);
    assert_eq!((item.value(), item.lease()), (&b"v2"[..], other));
}

#[tokio::test]
async fn delete_single_range_prefix_with_prev_kv() {
    let (client, p) = setup("delete").await;
    let kv = client.kv();
    for k in ["a", "b", "c", "d/1", "d/2", "e"] {
        kv.put(format!("{p}{k}"), k).await.unwrap();
    }
    let single = kv.delete(format!("{p}a")).prev_kv().await.unwrap();
    assert_eq!(single.deleted(), 1);
    assert_eq!(single.prev_kvs()[0].value(), b"a");

    let range = kv
        .delete(format!("{p}b"))
        .range_end(format!("{p}d"))
        .await
        .unwrap();
    assert_eq!(range.deleted(), 2);
    assert!(range.prev_kvs().is_empty(), "prev_kvs only when asked");

    let prefix = kv
        .delete(format!("{p}d/"))
        .prefix()
        .prev_kv()
        .await
        .unwrap();
    assert_eq!(prefix.deleted(), 2);
    let mut gone: Vec<_> = prefix
        .prev_kvs()
        .iter()
        .map(|kv| kv.value_str().unwrap().to_owned())
        .collect();
    gone.sort();
    assert_eq!(gone, ["d/1", "d/2"]);

    let absent = kv.delete(format!("{p}nothing")).await.unwrap();
    assert_eq!(absent.deleted(), 0);

    let rest = kv.delete(&p).range_end(format!("{p}\u{7f}")).await.unwrap();
    assert_eq!(rest.deleted(), 1);
    assert_eq!(kv.get(&p).prefix().count_only().await.unwrap().count(), 0);
}

#[tokio::test]
async fn compaction_physical_and_its_errors() {
    // Compaction affects the whole store, so this test has a server of its own.
    let server = EtcdServer::start().await;
    let client = Client::connect(server.endpoints()).await.unwrap();
    let kv = client.kv();
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(kv.put("k", format!("{i}")).await.unwrap().revision());
    }
    kv.compact(revs[2]).await.unwrap();
    let kind = |r: Result<_, Error>| r.err().and_then(|e| e.server_kind());
    assert_eq!(
        kind(kv.get("k").revision(revs[1]).await.map(drop)),
        Some(ServerErrorKind::Compacted)
    );
    assert_eq!(
        kv.get("k").revision(revs[2]).await.unwrap().value(),
        Some(&b"2"[..])
    );

    kv.compact(revs[4]).physical().await.unwrap();
    assert_eq!(
        kind(kv.get("k").revision(revs[3]).await.map(drop)),
        Some(ServerErrorKind::Compacted)
    );
    // Compacting again at or below the compacted revision, or past the current one.
    assert_eq!(
        kind(kv.compact(revs[4]).await.map(drop)),
        Some(ServerErrorKind::Compacted)
    );
    assert_eq!(
        kind(kv.compact(revs[4] + 100).await.map(drop)),
        Some(ServerErrorKind::FutureRevision)
    );
    match kv.compact(-1).await {
        Err(Error::InvalidRequest(InvalidRequest::NegativeRevision(-1))) => {}
        other => panic!("negative compaction revision: {other:?}"),
    }
    // Deleting nothing does not bump the revision (a private server, so nobody else writes).
    let now = kv.get("k").await.unwrap().revision();
    let absent = kv.delete("absent").await.unwrap();
    assert_eq!((absent.deleted(), absent.revision()), (0, now));
    // Still usable.
    assert_eq!(kv.get("k").await.unwrap().value(), Some(&b"4"[..]));
}
