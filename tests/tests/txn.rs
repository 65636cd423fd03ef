//! Every compare target and transaction form, against a real etcd.

use etcd_testkit::{shared_server, unique_prefix};
use etcd3::kv::{Compare, Delete, Get, Op, OpResponse, Put, Txn};
use etcd3::proto::etcdserverpb::{LeaseGrantRequest, lease_client::LeaseClient};
use etcd3::{Client, kv::TxnResponse};

async fn setup(name: &str) -> (Client, String) {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    (client, unique_prefix(name))
}

/// Runs `compare` in a transaction and says whether it held.
async fn holds(client: &Client, compare: Compare) -> bool {
    client.kv().txn().when([compare]).await.unwrap().succeeded()
}

#[tokio::test]
async fn compare_on_value() {
    let (client, p) = setup("cmp_value").await;
    let k = format!("{p}k");
    client.kv().put(&k, "m").await.unwrap();
    assert!(holds(&client, Compare::value(&k).eq("m")).await);
    assert!(!holds(&client, Compare::value(&k).eq("x")).await);
    assert!(holds(&client, Compare::value(&k).ne("x")).await);
    assert!(holds(&client, Compare::value(&k).gt("a")).await);
    assert!(holds(&client, Compare::value(&k).lt("z")).await);
    assert!(!holds(&client, Compare::value(&k).lt("a")).await);
}

#[tokio::test]
async fn compare_on_version_create_and_mod_revision() {
    let (client, p) = setup("cmp_revs").await;
    let kv = client.kv();
    let k = format!("{p}k");
    assert!(
        holds(&client, Compare::version(&k).eq(0)).await,
        "absent key has version 0"
    );
    let created = kv.put(&k, "1").await.unwrap().revision();
    let modified = kv.put(&k, "2").await.unwrap().revision();
    assert!(holds(&client, Compare::version(&k).eq(2)).await);
    assert!(holds(&client, Compare::version(&k).gt(1)).await);
    assert!(holds(&client, Compare::version(&k).lt(3)).await);
    assert!(holds(&client, Compare::version(&k).ne(1)).await);
    assert!(holds(&client, Compare::create_revision(&k).eq(created)).await);
    assert!(!holds(&client, Compare::create_revision(&k).eq(modified)).await);
    assert!(holds(&client, Compare::mod_revision(&k).eq(modified)).await);
    assert!(holds(&client, Compare::mod_revision(&k).gt(created)).await);
    assert!(holds(&client, Compare::mod_revision(&k).lt(modified + 1)).await);
}

#[tokio::test]
async fn compare_on_lease() {
    let (client, p) = setup("cmp_lease").await;
    let channel = tonic::transport::Endpoint::from_shared(shared_server().client_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let lease = LeaseClient::new(channel)
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let (with, without) = (format!("{p}with"), format!("{p}without"));
    client.kv().put(&with, "v").lease(lease).await.unwrap();
    client.kv().put(&without, "v").await.unwrap();
    assert!(holds(&client, Compare::lease(&with).eq(lease)).await);
    assert!(holds(&client, Compare::lease(&without).eq(0)).await);
    assert!(holds(&client, Compare::lease(&without).ne(lease)).await);
    assert!(holds(&client, Compare::lease(&with).gt(0)).await);
}

#[tokio::test]
async fn compares_over_ranges_hold_for_every_key() {
    let (client, p) = setup("cmp_range").await;
    let kv = client.kv();
    for k in ["a", "b", "c"] {
        kv.put(format!("{p}r/{k}"), "same").await.unwrap();
    }
    kv.put(format!("{p}s"), "other").await.unwrap();
    let prefix = format!("{p}r/");
    assert!(holds(&client, Compare::value(&prefix).prefix().eq("same")).await);
    assert!(holds(&client, Compare::version(&prefix).prefix().eq(1)).await);
    assert!(
        !holds(&client, Compare::value(&p).prefix().eq("same")).await,
        "s differs"
    );
    assert!(
        holds(
            &client,
            Compare::value(format!("{p}r/a"))
                .range_end(format!("{p}r/c"))
                .eq("same")
        )
        .await
    );
    assert!(
        !holds(
            &client,
            Compare::value(format!("{p}r/")).from_key().eq("same")
        )
        .await
    );
    kv.put(format!("{p}r/b"), "changed").await.unwrap();
    assert!(!holds(&client, Compare::value(&prefix).prefix().eq("same")).await);
    assert!(holds(&client, Compare::mod_revision(&prefix).prefix().gt(0)).await);
}

#[tokio::test]
async fn then_and_otherwise_branches_with_every_op() {
    let (client, p) = setup("branches").await;
    let kv = client.kv();
    let (k, other) = (format!("{p}k"), format!("{p}other"));
    kv.put(&other, "o").await.unwrap();
    let txn = || {
        kv.txn()
            .when([Compare::version(&k).eq(0)])
            .then([
                Op::put(&k, "created"),
                Op::from(Put::new(&other, "o2").prev_kv()),
                Op::get(&k),
            ])
            .otherwise([
                Op::from(Get::new(&p).prefix().count_only()),
                Op::from(Delete::new(&other).prev_kv()),
            ])
    };
    let first = txn().await.unwrap();
    assert!(first.succeeded());
    match first.responses() {
        [
            OpResponse::Put(put),
            OpResponse::Put(put2),
            OpResponse::Get(get),
        ] => {
            assert_eq!(put.revision(), first.revision());
            assert_eq!(put2.prev_kv().unwrap().value(), b"o");
            assert_eq!(
                get.value(),
                Some(&b"created"[..]),
                "ops see earlier ops of their branch"
            );
        }
        other => panic!("then-branch responses: {other:?}"),
    }
    let second = txn().await.unwrap();
    assert!(!second.succeeded());
    match second.responses() {
        [OpResponse::Get(count), OpResponse::Delete(del)] => {
            assert_eq!(count.count(), 2);
            assert_eq!(del.deleted(), 1);
            assert_eq!(del.prev_kvs()[0].value(), b"o2");
        }
        other => panic!("else-branch responses: {other:?}"),
    }
    // One revision for the whole transaction.
    let item = kv.get(&k).await.unwrap().into_kvs().remove(0);
    assert_eq!(item.mod_revision(), first.revision());
}

#[tokio::test]
async fn empty_and_multi_compare_transactions() {
    let (client, p) = setup("multi").await;
    let kv = client.kv();
    let a = format!("{p}a");
    let empty = kv.txn().await.unwrap();
    assert!(empty.succeeded(), "no compares: then runs");
    assert!(empty.responses().is_empty());
    kv.put(&a, "1").await.unwrap();
    let both = kv
        .txn()
        .when([Compare::value(&a).eq("1"), Compare::version(&a).eq(1)])
        .then([Op::put(&a, "2")])
        .await
        .unwrap();
    assert!(both.succeeded());
    let one_fails = kv
        .txn()
        .when([Compare::value(&a).eq("2"), Compare::version(&a).eq(1)])
        .then([Op::put(&a, "3")])
        .await
        .unwrap();
    assert!(!one_fails.succeeded(), "all compares must hold");
    assert!(one_fails.responses().is_empty(), "an empty else branch");
    assert_eq!(kv.get(&a).await.unwrap().value(), Some(&b"2"[..]));
}

#[tokio::test]
async fn nested_transactions() {
    let (client, p) = setup("nested").await;
    let kv = client.kv();
    let (a, b) = (format!("{p}a"), format!("{p}b"));
    kv.put(&a, "x").await.unwrap();
    let inner = Txn::new()
        .when([Compare::version(&b).eq(0)])
        .then([Op::put(&b, "from-inner-then")])
        .otherwise([Op::put(&b, "from-inner-else")]);
    let outer = kv
        .txn()
        .when([Compare::value(&a).eq("x")])
        .then([Op::txn(inner.clone()), Op::get(&b)])
        .await
        .unwrap();
    assert!(outer.succeeded());
    let [OpResponse::Txn(nested), OpResponse::Get(get)] = outer.responses() else {
        panic!("outer responses: {:?}", outer.responses());
    };
    let nested: &TxnResponse = nested;
    assert!(nested.succeeded());
    assert!(matches!(nested.responses(), [OpResponse::Put(_)]));
    assert_eq!(get.value(), Some(&b"from-inner-then"[..]));

    let again = kv.txn().then([Op::txn(inner)]).await.unwrap();
    let [OpResponse::Txn(nested)] = again.responses() else {
        panic!("{:?}", again.responses())
    };
    assert!(!nested.succeeded());
    assert_eq!(
        kv.get(&b).await.unwrap().value(),
        Some(&b"from-inner-else"[..])
    );
}

#[tokio::test]
async fn then_and_else_may_write_the_same_key() {
    let (client, p) = setup("same_key").await;
    let k = format!("{p}k");
    let resp = client
        .kv()
        .txn()
        .when([Compare::version(&k).eq(0)])
        .then([Op::put(&k, "then")])
        .otherwise([Op::put(&k, "else")])
        .await
        .unwrap();
    assert!(resp.succeeded());
}
