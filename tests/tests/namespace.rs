//! Namespaces against a real etcd: two namespaces on one server do not see each other's
//! keys through get, put, delete, transactions (compares, range compares, nested
//! transactions), prefix and "all keys" reads, watches and lease time-to-live, while a
//! raw client sees every key with its prefix.

use std::time::Duration;

use bytes::Bytes;
use etcd_core::grpc::{GrpcKv, GrpcLease, GrpcWatch};
use etcd_core::kv::{Compare, Get, Op, OpResponse, Txn};
use etcd_core::layer::Failover;
use etcd_core::namespace::{Namespace, NamespaceLayer, PrefixKeys, StripKeys};
use etcd_core::proto::v3electionpb::{self as election, election_client::ElectionClient};
use etcd_core::proto::v3lockpb::{self as lock, lock_client::LockClient};
use etcd_core::stream::ResponseStream;
use etcd_core::{KeyRange, Kv};
use etcd_lease::Lessor;
use etcd_testkit::{EtcdServer, shared_server, unique_prefix};
use etcd_tests::clients::{channel, raw_kv};
use etcd_watch::{EventKind, Watcher};
use futures::StreamExt;
use tonic::transport::Channel;
use tower::ServiceExt;

const LONG: Duration = Duration::from_secs(20);

type NsKv = Kv<Namespace<GrpcKv<Channel>>>;

fn ns_kv(url: &str, prefix: &str) -> NsKv {
    Kv::new(Namespace::new(GrpcKv::new(channel(url)), prefix))
}

/// The keys of a response, as strings.
fn keys(kvs: &[etcd_core::kv::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

/// Every key under `root`, read by a raw client, without `root`.
async fn raw_keys(url: &str, root: &str) -> Vec<String> {
    let resp = raw_kv(url).get(root).prefix().await.unwrap();
    keys(resp.kvs())
        .into_iter()
        .map(|k| k[root.len()..].to_owned())
        .collect()
}

/// Two namespaces under one test's root.
fn two(url: &str, name: &str) -> (String, NsKv, NsKv) {
    let root = unique_prefix(name);
    let a = ns_kv(url, &format!("{root}a/"));
    let b = ns_kv(url, &format!("{root}b/"));
    (root, a, b)
}

#[tokio::test]
async fn get_put_delete_are_isolated() {
    let url = shared_server().client_url();
    let (root, a, b) = two(&url, "ns_get_put_delete");

    a.put("k", "1").await.unwrap();
    b.put("k", "2").await.unwrap();
    let got = a.get("k").await.unwrap();
    assert_eq!(keys(got.kvs()), ["k"]);
    assert_eq!(got.value(), Some(&b"1"[..]));
    assert_eq!(b.get("k").await.unwrap().value(), Some(&b"2"[..]));
    assert_eq!(raw_keys(&url, &root).await, ["a/k", "b/k"]);

    // prev_kv comes back without the prefix.
    let put = a.put("k", "1b").prev_kv().await.unwrap();
    let prev = put.prev_kv().unwrap();
    assert_eq!((prev.key(), prev.value()), (&b"k"[..], &b"1"[..]));

    // A key of the other namespace does not exist here.
    b.put("only-b", "x").await.unwrap();
    assert!(a.get("only-b").await.unwrap().kvs().is_empty());
    let deleted = a.delete("only-b").await.unwrap();
    assert_eq!(deleted.deleted(), 0);

    let deleted = a.delete("k").prev_kv().await.unwrap();
    assert_eq!(deleted.deleted(), 1);
    assert_eq!(keys(deleted.prev_kvs()), ["k"]);
    assert_eq!(raw_keys(&url, &root).await, ["b/k", "b/only-b"]);

    // Deleting "every key" of a namespace deletes only its keys.
    a.put("x", "1").await.unwrap();
    let deleted = b.delete("").prefix().prev_kv().await.unwrap();
    assert_eq!(keys(deleted.prev_kvs()), ["k", "only-b"]);
    assert_eq!(raw_keys(&url, &root).await, ["a/x"]);
}

#[tokio::test]
async fn prefix_range_and_all_keys_reads_stay_inside() {
    let url = shared_server().client_url();
    let root = unique_prefix("ns_ranges");
    let a = ns_kv(&url, &format!("{root}a/"));
    let b = ns_kv(&url, &format!("{root}b/"));
    let raw = raw_kv(&url);

    for k in ["x1", "x2", "y"] {
        a.put(k, k).await.unwrap();
    }
    b.put("x3", "x3").await.unwrap();
    // Just outside namespace a on both sides, and its prefix itself (the empty user key).
    raw.put(format!("{root}a"), "before").await.unwrap();
    raw.put(format!("{root}a0"), "after").await.unwrap();
    raw.put(format!("{root}a/"), "itself").await.unwrap();

    let prefix = a.get("x").prefix().await.unwrap();
    assert_eq!(keys(prefix.kvs()), ["x1", "x2"]);
    assert_eq!(keys(b.get("x").prefix().await.unwrap().kvs()), ["x3"]);

    let range = a.get("x1").range_end("y").await.unwrap();
    assert_eq!(keys(range.kvs()), ["x1", "x2"]);

    let from = a.get("x2").from_key().await.unwrap();
    assert_eq!(keys(from.kvs()), ["x2", "y"]);

    // "Every key" is every key of the namespace, from the prefix itself to its end.
    let all = a.get("").prefix().await.unwrap();
    assert_eq!(keys(all.kvs()), ["", "x1", "x2", "y"]);
    let all = a.get("").from_key().await.unwrap();
    assert_eq!(keys(all.kvs()), ["", "x1", "x2", "y"]);
    let all = a.get("").prefix().count_only().await.unwrap();
    assert_eq!(all.count(), 4);
    let txn = a
        .txn()
        .then([Op::from(Get::range(KeyRange::all()))])
        .await
        .unwrap();
    let [OpResponse::Get(all)] = txn.responses() else {
        panic!("{:?}", txn.responses());
    };
    assert_eq!(keys(all.kvs()), ["", "x1", "x2", "y"]);
    let all = a.get("").prefix().limit(2).keys_only().await.unwrap();
    assert_eq!(keys(all.kvs()), ["", "x1"]);
    assert!(all.more());
    assert_eq!(all.count(), 4);
    let all = b.get("").prefix().await.unwrap();
    assert_eq!(keys(all.kvs()), ["x3"]);

    // Deleting from a key on stops at the end of the namespace too.
    let deleted = a.delete("x2").from_key().await.unwrap();
    assert_eq!(deleted.deleted(), 2);
    assert_eq!(
        raw_keys(&url, &root).await,
        ["a", "a/", "a/x1", "a0", "b/x3"]
    );
}

#[tokio::test]
async fn transactions_are_isolated() {
    let url = shared_server().client_url();
    let (root, a, b) = two(&url, "ns_txn");

    a.put("lock", "a").await.unwrap();
    b.put("lock", "b").await.unwrap();
    b.put("c1", "x").await.unwrap();

    // Compares see only the namespace's keys: the value of "lock" and a range compare
    // over "c" (B's "c1" is invisible, so no key in the range has a version).
    let txn = a
        .txn()
        .when([
            Compare::value("lock").eq("a"),
            Compare::version("c").prefix().eq(0),
            Compare::create_revision("").prefix().gt(0),
        ])
        .then([
            Op::put("c2", "mine"),
            Op::from(Get::new("").prefix()),
            Op::txn(
                Txn::new()
                    // Nested compares are evaluated before any operation runs; B's
                    // "c1" is invisible here.
                    .when([Compare::version("c1").eq(0)])
                    .then([Op::from(Get::new("c").prefix()), Op::put("nested", "n")])
                    .otherwise([Op::get("lock")]),
            ),
        ])
        .otherwise([Op::get("lock")])
        .await
        .unwrap();
    assert!(txn.succeeded());
    let [
        OpResponse::Put(_),
        OpResponse::Get(all),
        OpResponse::Txn(nested),
    ] = txn.responses()
    else {
        panic!("{:?}", txn.responses());
    };
    assert_eq!(keys(all.kvs()), ["c2", "lock"]);
    assert!(nested.succeeded());
    let [OpResponse::Get(c), OpResponse::Put(_)] = nested.responses() else {
        panic!("{:?}", nested.responses());
    };
    // The nested get runs after the put of "c2".
    assert_eq!(keys(c.kvs()), ["c2"]);

    // The same compares fail in B, whose else branch reads B's own "lock".
    let txn = b
        .txn()
        .when([
            Compare::value("lock").eq("a"),
            Compare::version("c").prefix().eq(0),
        ])
        .then([Op::put("never", "x")])
        .otherwise([
            Op::get("lock"),
            Op::from(etcd_core::kv::Delete::new("c1").prev_kv()),
        ])
        .await
        .unwrap();
    assert!(!txn.succeeded());
    let [OpResponse::Get(lock), OpResponse::Delete(deleted)] = txn.responses() else {
        panic!("{:?}", txn.responses());
    };
    assert_eq!(keys(lock.kvs()), ["lock"]);
    assert_eq!(lock.value(), Some(&b"b"[..]));
    assert_eq!(keys(deleted.prev_kvs()), ["c1"]);

    // A range compare over the whole namespace, put prev_kv inside a transaction.
    let txn = b
        .txn()
        .when([Compare::mod_revision("").prefix().lt(i64::MAX)])
        .then([Op::from(etcd_core::kv::Put::new("lock", "b2").prev_kv())])
        .await
        .unwrap();
    assert!(txn.succeeded());
    let [OpResponse::Put(put)] = txn.responses() else {
        panic!("{:?}", txn.responses());
    };
    assert_eq!(put.prev_kv().unwrap().key(), b"lock");

    assert_eq!(
        raw_keys(&url, &root).await,
        ["a/c2", "a/lock", "a/nested", "b/lock"]
    );
}

#[tokio::test]
async fn watches_see_only_their_namespace() {
    let url = shared_server().client_url();
    let root = unique_prefix("ns_watch");
    let (pa, pb) = (format!("{root}a/"), format!("{root}b/"));
    let a = ns_kv(&url, &pa);
    let b = ns_kv(&url, &pb);
    let raw = raw_kv(&url);
    let watch_a = Watcher::new(Namespace::new(GrpcWatch::new(channel(&url)), pa.as_str()));
    let watch_b = Watcher::new(Namespace::new(GrpcWatch::new(channel(&url)), pb.as_str()));

    let mut all_a = watch_a.watch_all().prev_kv().await.unwrap();
    let mut key_a = watch_a.watch("k").await.unwrap();
    let mut prefix_b = watch_b.watch("k").prefix().await.unwrap();

    b.put("k", "b1").await.unwrap();
    raw.put(format!("{root}a"), "outside").await.unwrap();
    raw.put(format!("{root}a0"), "outside").await.unwrap();
    a.put("k", "a1").await.unwrap();
    a.put("k", "a2").await.unwrap();
    a.put("other", "o").await.unwrap();
    a.delete("k").await.unwrap();
    b.put("k2", "b2").await.unwrap();
    a.put("end", "").await.unwrap();
    b.put("end", "").await.unwrap();

    // (kind, key, value, prev key, prev value) until the event on "end".
    async fn collect(
        stream: &mut etcd_watch::WatchStream,
        last: &str,
    ) -> Vec<(EventKind, String, String, Option<(String, String)>)> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut seen = Vec::new();
        loop {
            let resp = tokio::time::timeout(LONG, stream.next())
                .await
                .expect("watch stalled")
                .expect("watch ended")
                .expect("watch failed");
            for e in resp.events() {
                let prev = e.prev_kv().map(|p| (text(p.key()), text(p.value())));
                seen.push((e.kind(), text(e.key()), text(e.kv().value()), prev));
                if e.key() == last.as_bytes() {
                    return seen;
                }
            }
        }
    }
    use EventKind::{Delete, Put};
    let s = |x: &str| x.to_owned();
    let prev = |k: &str, v: &str| Some((s(k), s(v)));
    assert_eq!(
        collect(&mut all_a, "end").await,
        [
            (Put, s("k"), s("a1"), None),
            (Put, s("k"), s("a2"), prev("k", "a1")),
            (Put, s("other"), s("o"), None),
            (Delete, s("k"), s(""), prev("k", "a2")),
            (Put, s("end"), s(""), None),
        ]
    );
    assert_eq!(
        collect(&mut key_a, "k").await,
        [(Put, s("k"), s("a1"), None)]
    );
    assert_eq!(
        collect(&mut prefix_b, "k2").await,
        [(Put, s("k"), s("b1"), None), (Put, s("k2"), s("b2"), None)]
    );
}

#[tokio::test]
async fn lease_time_to_live_lists_only_the_namespace_keys() {
    let url = shared_server().client_url();
    let root = unique_prefix("ns_lease");
    let (pa, pb) = (format!("{root}a/"), format!("{root}b/"));
    let lessor_a = Lessor::new(Namespace::new(GrpcLease::new(channel(&url)), pa.as_str()));
    let lessor_b = Lessor::new(Namespace::new(GrpcLease::new(channel(&url)), pb.as_str()));
    let raw_lessor = Lessor::new(GrpcLease::new(channel(&url)));
    let a = ns_kv(&url, &pa);
    let b = ns_kv(&url, &pb);

    let lease = lessor_a.grant(Duration::from_secs(30)).await.unwrap();
    a.put("k1", "1").lease(lease.id()).await.unwrap();
    a.put("k2", "2").lease(lease.id()).await.unwrap();
    b.put("k3", "3").lease(lease.id()).await.unwrap();
    raw_kv(&url)
        .put(format!("{root}raw"), "r")
        .lease(lease.id())
        .await
        .unwrap();

    let text = |keys: &[Bytes]| -> Vec<String> {
        let mut keys: Vec<String> = keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        keys.sort();
        keys
    };
    let ttl = lessor_a.time_to_live(lease.id()).keys().await.unwrap();
    assert_eq!(text(ttl.keys()), ["k1", "k2"]);
    assert!(ttl.ttl() > Duration::ZERO);
    let ttl = lessor_b.time_to_live(lease.id()).keys().await.unwrap();
    assert_eq!(text(ttl.keys()), ["k3"]);
    let ttl = raw_lessor.time_to_live(lease.id()).keys().await.unwrap();
    assert_eq!(
        text(ttl.keys()),
        [
            format!("{pa}k1"),
            format!("{pa}k2"),
            format!("{pb}k3"),
            format!("{root}raw")
        ]
    );

    // The other lease calls pass through: list, keep-alive (once and in the background),
    // revoke.
    assert!(lessor_b.list().await.unwrap().ids().contains(&lease.id()));
    lessor_b.keep_alive_once(lease.id()).await.unwrap();
    let keeper = lessor_a.keep_alive(lease.id()).await.unwrap();
    assert_eq!(keeper.ttl(), Duration::from_secs(30));
    drop(keeper);
    lessor_b.revoke(lease.id()).await.unwrap();
    assert!(raw_keys(&url, &root).await.is_empty());
}

/// The namespace stacks with failover and with tower layers, on either side.
#[tokio::test]
async fn namespace_over_failover_and_layers() {
    let url = shared_server().client_url();
    let root = unique_prefix("ns_stacks");

    let over_failover = Kv::new(Namespace::new(
        Failover::new([(url.clone(), GrpcKv::new(channel(&url)))]),
        format!("{root}f/"),
    ));
    over_failover.put("k", "1").await.unwrap();
    assert_eq!(
        keys(over_failover.get("").prefix().await.unwrap().kvs()),
        ["k"]
    );

    let under_failover = Kv::new(Failover::new([(
        url.clone(),
        Namespace::new(GrpcKv::new(channel(&url)), format!("{root}u/")),
    )]));
    under_failover.put("k", "2").await.unwrap();
    assert_eq!(keys(under_failover.get("k").await.unwrap().kvs()), ["k"]);

    let layered = Kv::new(
        tower::ServiceBuilder::new()
            .layer(NamespaceLayer::new(format!("{root}l/")))
            .timeout(Duration::from_secs(5))
            .service(GrpcKv::new(channel(&url))),
    );
    layered.put("k", "3").await.unwrap();
    assert_eq!(layered.get("k").await.unwrap().value(), Some(&b"3"[..]));

    assert_eq!(raw_keys(&url, &root).await, ["f/k", "l/k", "u/k"]);
}

/// Edge cases on a server of their own (they write outside any test prefix): a prefix of
/// only `0xff` bytes, whose namespace has no end, a prefix ending in `0xff`, whose end is
/// not the prefix with its last byte bumped, and compaction, which passes through.
#[tokio::test]
async fn ff_prefixes_and_compaction() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let raw = raw_kv(&url);

    let ff = Kv::new(Namespace::new(GrpcKv::new(channel(&url)), &b"\xff\xff"[..]));
    raw.put(&b"\xff"[..], "below").await.unwrap();
    raw.put(&b"\xfe\xff\xff"[..], "below").await.unwrap();
    ff.put("a", "1").await.unwrap();
    ff.put(&b"\xff"[..], "2").await.unwrap();
    let all = ff.get("").prefix().await.unwrap();
    let got: Vec<&[u8]> = all.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(got, [&b"a"[..], &b"\xff"[..]]);
    let from = ff.get("b").from_key().await.unwrap();
    assert_eq!(from.kvs().len(), 1);
    assert_eq!(from.kvs()[0].key(), b"\xff");
    let raw_got: Vec<Vec<u8>> = raw
        .get("")
        .prefix()
        .await
        .unwrap()
        .kvs()
        .iter()
        .map(|kv| kv.key().to_vec())
        .collect();
    assert_eq!(
        raw_got,
        [
            b"\xfe\xff\xff".to_vec(),
            b"\xff".to_vec(),
            b"\xff\xffa".to_vec(),
            b"\xff\xff\xff".to_vec()
        ]
    );

    // "m\xff": its end is "n", so the key "n" (which etcd's Go namespace client's "n\0"
    // would include) stays outside.
    let mff = Kv::new(Namespace::new(GrpcKv::new(channel(&url)), &b"m\xff"[..]));
    raw.put("n", "outside").await.unwrap();
    raw.put("m", "outside").await.unwrap();
    mff.put("k", "inside").await.unwrap();
    assert_eq!(keys(mff.get("").prefix().await.unwrap().kvs()), ["k"]);
    assert_eq!(keys(mff.get("a").from_key().await.unwrap().kvs()), ["k"]);

    // Compaction passes through unchanged.
    let rev = mff.put("k", "again").await.unwrap().revision();
    mff.compact(rev).await.unwrap();
    let err = raw.get("n").revision(rev - 1).await.unwrap_err();
    assert!(err.to_string().contains("compacted"), "{err}");
}

/// One call through a namespace to a service that only the generated gRPC clients speak
/// (Lock, Election): `call` adapts the generated client into a tower service.
async fn ns_call<R, T, E, F, Fut>(prefix: &str, request: R, call: F) -> Result<T, E>
where
    R: PrefixKeys,
    T: StripKeys,
    F: FnMut(R) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    Namespace::new(tower::service_fn(call), prefix)
        .oneshot(request)
        .await
}

/// Locks and elections (etcd's server-side `Lock` and `Election` services) in two
/// namespaces: same names, no contention, keys without the prefix that work again when
/// handed back.
#[tokio::test]
async fn locks_and_elections_are_namespaced() {
    let url = shared_server().client_url();
    let root = unique_prefix("ns_lock");
    let (pa, pb) = (format!("{root}a/"), format!("{root}b/"));
    let ch = channel(&url);
    let lease = Lessor::new(GrpcLease::new(ch.clone()))
        .grant(Duration::from_secs(30))
        .await
        .unwrap()
        .id();
    let lock_in = |prefix: &str, name: &str| {
        let ch = ch.clone();
        let request = lock::LockRequest {
            name: name.to_owned().into(),
            lease,
        };
        let prefix = prefix.to_owned();
        async move {
            ns_call(&prefix, request, |r| {
                let mut c = LockClient::new(ch.clone());
                async move { c.lock(r).await.map(|r| r.into_inner()) }
            })
            .await
        }
    };

    // The same lock name in both namespaces: two different locks, neither waits.
    let held_a = tokio::time::timeout(LONG, lock_in(&pa, "l"))
        .await
        .unwrap()
        .unwrap();
    let held_b = tokio::time::timeout(LONG, lock_in(&pb, "l"))
        .await
        .unwrap()
        .unwrap();
    let lease_hex = format!("{lease:x}");
    assert_eq!(held_a.key, format!("l/{lease_hex}").into_bytes());
    assert_eq!(held_b.key, held_a.key);
    assert_eq!(
        raw_keys(&url, &root).await,
        [format!("a/l/{lease_hex}"), format!("b/l/{lease_hex}")]
    );
    // Unlocking with the key the namespace returned releases A's lock only.
    ns_call(&pa, lock::UnlockRequest { key: held_a.key }, |r| {
        let mut c = LockClient::new(ch.clone());
        async move { c.unlock(r).await.map(|r| r.into_inner()) }
    })
    .await
    .unwrap();
    assert_eq!(raw_keys(&url, &root).await, [format!("b/l/{lease_hex}")]);

    // Elections: A campaigns; its leader is visible in A only.
    let campaign = ns_call(
        &pa,
        election::CampaignRequest {
            name: "e".into(),
            lease,
            value: "va".into(),
        },
        |r| {
            let mut c = ElectionClient::new(ch.clone());
            async move { c.campaign(r).await.map(|r| r.into_inner()) }
        },
    )
    .await
    .unwrap();
    let leader = campaign.leader.unwrap();
    assert_eq!(&leader.name[..], b"e");
    assert_eq!(leader.key, format!("e/{lease_hex}").into_bytes());
    let leader_in = |prefix: &str| {
        let ch = ch.clone();
        let prefix = prefix.to_owned();
        async move {
            ns_call(&prefix, election::LeaderRequest { name: "e".into() }, |r| {
                let mut c = ElectionClient::new(ch.clone());
                async move { c.leader(r).await.map(|r| r.into_inner()) }
            })
            .await
        }
    };
    let current = leader_in(&pa).await.unwrap().kv.unwrap();
    assert_eq!(
        (&current.key[..], &current.value[..]),
        (&leader.key[..], &b"va"[..])
    );
    let none = leader_in(&pb).await.unwrap_err();
    assert!(none.message().contains("no leader"), "{none:?}");

    // Observe: a stream of leader responses, keys stripped.
    let mut observed: ResponseStream<election::LeaderResponse> =
        ns_call(&pa, election::LeaderRequest { name: "e".into() }, |r| {
            let mut c = ElectionClient::new(ch.clone());
            async move {
                let stream = c.observe(r).await.map_err(etcd_core::Error::from)?;
                Ok::<_, etcd_core::Error>(
                    stream
                        .into_inner()
                        .map(|r| r.map_err(etcd_core::Error::from))
                        .boxed(),
                )
            }
        })
        .await
        .unwrap();
    let first = tokio::time::timeout(LONG, observed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.kv.unwrap().key, leader.key);

    // Proclaim and resign take the leader key as the namespace returned it.
    ns_call(
        &pa,
        election::ProclaimRequest {
            leader: Some(leader.clone()),
            value: "va2".into(),
        },
        |r| {
            let mut c = ElectionClient::new(ch.clone());
            async move { c.proclaim(r).await.map(|r| r.into_inner()) }
        },
    )
    .await
    .unwrap();
    let next = tokio::time::timeout(LONG, observed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .kv
        .unwrap();
    assert_eq!(
        (&next.key[..], &next.value[..]),
        (&leader.key[..], &b"va2"[..])
    );
    ns_call(
        &pa,
        election::ResignRequest {
            leader: Some(leader),
        },
        |r| {
            let mut c = ElectionClient::new(ch.clone());
            async move { c.resign(r).await.map(|r| r.into_inner()) }
        },
    )
    .await
    .unwrap();
    assert!(leader_in(&pa).await.is_err());
    assert_eq!(raw_keys(&url, &root).await, [format!("b/l/{lease_hex}")]);
    Lessor::new(GrpcLease::new(ch)).revoke(lease).await.unwrap();
}

/// The facade's `namespace(..)` option applies to KV, watches and lease key lists.
#[tokio::test]
async fn the_facade_namespace_option() {
    let root = unique_prefix("facade_ns");
    let connect = |ns: String| async move {
        etcd3::Client::builder(shared_server().endpoints())
            .namespace(ns)
            .connect()
            .await
            .unwrap()
    };
    let a = connect(format!("{root}a/")).await;
    let b = connect(format!("{root}b/")).await;
    let mut watch_a = a.watch("").prefix().await.unwrap();
    let lease = a
        .lease()
        .grant(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    a.kv().put("k", "from a").lease(lease.id()).await.unwrap();
    b.kv().put("k", "from b").await.unwrap();

    let all_a = a.kv().get("").prefix().await.unwrap();
    assert_eq!(all_a.kvs().len(), 1);
    assert_eq!(
        (all_a.kvs()[0].key(), all_a.kvs()[0].value()),
        (&b"k"[..], &b"from a"[..])
    );
    assert_eq!(b.kv().get("k").await.unwrap().value(), Some(&b"from b"[..]));

    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), watch_a.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events().len(), 1);
    assert_eq!(
        resp.events()[0].kv().key(),
        b"k",
        "the watch sees its own namespace, stripped"
    );

    let ttl = a.lease().time_to_live(lease.id()).keys().await.unwrap();
    assert_eq!(ttl.keys(), [Bytes::from_static(b"k")]);

    let raw = etcd3::Client::connect(shared_server().endpoints())
        .await
        .unwrap();
    let seen = raw
        .kv()
        .get(&root)
        .prefix()
        .count_only()
        .await
        .unwrap()
        .count();
    assert_eq!(
        seen, 2,
        "a client without a namespace sees both prefixed keys"
    );
    a.lease().revoke(lease.id()).await.unwrap();
}
