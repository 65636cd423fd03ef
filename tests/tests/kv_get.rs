//! Every option of a get (etcd's Range), against a real etcd.

use etcd_testkit::{shared_server, unique_prefix};
use etcd3::Client;
use etcd3::kv::{SortOrder, SortTarget};

async fn setup(name: &str) -> (Client, String) {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    (client, unique_prefix(name))
}

fn keys(resp: &etcd3::kv::GetResponse) -> Vec<String> {
    resp.kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn single_key_prefix_range_and_from_key() {
    let (client, p) = setup("ranges").await;
    let kv = client.kv();
    for k in ["a", "b", "b/1", "b/2", "c", "d"] {
        kv.put(format!("{p}{k}"), k).await.unwrap();
    }
    let one = kv.get(format!("{p}b")).await.unwrap();
    assert_eq!(keys(&one), [format!("{p}b")]);
    assert_eq!(one.value(), Some(&b"b"[..]));
    assert_eq!(one.count(), 1);

    let prefix = kv.get(format!("{p}b/")).prefix().await.unwrap();
    assert_eq!(keys(&prefix), [format!("{p}b/1"), format!("{p}b/2")]);

    let range = kv
        .get(format!("{p}b"))
        .range_end(format!("{p}d"))
        .await
        .unwrap();
    assert_eq!(
        keys(&range),
        [
            format!("{p}b"),
            format!("{p}b/1"),
            format!("{p}b/2"),
            format!("{p}c")
        ]
    );

    let from = kv.get(format!("{p}c")).from_key().await.unwrap();
    let from_keys = keys(&from);
    assert_eq!(&from_keys[..2], [format!("{p}c"), format!("{p}d")]);
    assert!(
        from_keys
            .iter()
            .all(|k| k.as_str() >= format!("{p}c").as_str())
    );

    let all = kv.get("").prefix().count_only().await.unwrap();
    assert!(all.count() >= 6, "all keys: {}", all.count());

    let missing = kv.get(format!("{p}zzz")).await.unwrap();
    assert!(missing.kvs().is_empty());
    assert_eq!(missing.value(), None);
}

#[tokio::test]
async fn limit_count_more_keys_only_and_count_only() {
    let (client, p) = setup("limit").await;
    let kv = client.kv();
    for i in 0..5 {
        kv.put(format!("{p}{i}"), format!("value-{i}"))
            .await
            .unwrap();
    }
    let limited = kv.get(&p).prefix().limit(2).await.unwrap();
    assert_eq!(limited.kvs().len(), 2);
    assert!(limited.more());
    assert_eq!(limited.count(), 5);

    let unlimited = kv.get(&p).prefix().limit(0).await.unwrap();
    assert_eq!(unlimited.kvs().len(), 5);
    assert!(!unlimited.more());

    let keys_only = kv.get(&p).prefix().keys_only().await.unwrap();
    assert_eq!(keys_only.kvs().len(), 5);
    assert!(
        keys_only
            .kvs()
            .iter()
            .all(|kv| kv.value().is_empty() && !kv.key().is_empty())
    );

    let count_only = kv.get(&p).prefix().count_only().await.unwrap();
    assert!(count_only.kvs().is_empty());
    assert_eq!(count_only.count(), 5);
}

#[tokio::test]
async fn revision_reads_see_the_past() {
    let (client, p) = setup("revision").await;
    let kv = client.kv();
    let key = format!("{p}k");
    let first = kv.put(&key, "one").await.unwrap().revision();
    let second = kv.put(&key, "two").await.unwrap().revision();
    assert!(second > first);
    let old = kv.get(&key).revision(first).await.unwrap();
    assert_eq!(old.value(), Some(&b"one"[..]));
    assert_eq!(old.first().unwrap().mod_revision(), first);
    let now = kv.get(&key).revision(0).await.unwrap();
    assert_eq!(now.value(), Some(&b"two"[..]));
    let item = now.first().unwrap();
    assert_eq!(
        (item.create_revision(), item.mod_revision(), item.version()),
        (first, second, 2)
    );
    assert!(now.revision() >= second);
}

#[tokio::test]
async fn sort_by_every_target_both_ways() {
    let (client, p) = setup("sort").await;
    let kv = client.kv();
    // Keys in key order a < b < c, written in the order c, a, b, with values that sort
    // the other way round, and b written twice (highest version).
    kv.put(format!("{p}c"), "1").await.unwrap();
    kv.put(format!("{p}a"), "3").await.unwrap();
    kv.put(format!("{p}b"), "2").await.unwrap();
    kv.put(format!("{p}b"), "2").await.unwrap();
    let sorted = |target, order| {
        let kv = kv.clone();
        let p = p.clone();
        async move {
            let resp = kv.get(&p).prefix().sort(target, order).await.unwrap();
            resp.kvs()
                .iter()
                .map(|kv| kv.key_str().unwrap().trim_start_matches(&p).to_owned())
                .collect::<String>()
        }
    };
    assert_eq!(sorted(SortTarget::Key, SortOrder::Ascend).await, "abc");
    assert_eq!(sorted(SortTarget::Key, SortOrder::Descend).await, "cba");
    assert_eq!(sorted(SortTarget::Key, SortOrder::None).await, "abc");
    assert_eq!(sorted(SortTarget::Value, SortOrder::Ascend).await, "cba");
    assert_eq!(sorted(SortTarget::Value, SortOrder::Descend).await, "abc");
    assert_eq!(
        sorted(SortTarget::CreateRevision, SortOrder::Ascend).await,
        "cab"
    );
    assert_eq!(
        sorted(SortTarget::CreateRevision, SortOrder::Descend).await,
        "bac"
    );
    assert_eq!(
        sorted(SortTarget::ModRevision, SortOrder::Descend).await,
        "bac"
    );
    assert_eq!(
        sorted(SortTarget::Version, SortOrder::Descend)
            .await
            .chars()
            .next(),
        Some('b')
    );
}

#[tokio::test]
async fn serializable_reads_answer_from_the_member() {
    let (client, p) = setup("serializable").await;
    let kv = client.kv();
    let key = format!("{p}k");
    let rev = kv.put(&key, "v").await.unwrap().revision();
    let resp = kv.get(&key).serializable().await.unwrap();
    assert_eq!(resp.value(), Some(&b"v"[..]));
    assert!(resp.revision() >= rev);
}

#[tokio::test]
async fn mod_and_create_revision_filters() {
    let (client, p) = setup("filters").await;
    let kv = client.kv();
    let r1 = kv.put(format!("{p}1"), "x").await.unwrap().revision();
    let r2 = kv.put(format!("{p}2"), "x").await.unwrap().revision();
    let r3 = kv.put(format!("{p}3"), "x").await.unwrap().revision();
    let r1b = kv.put(format!("{p}1"), "y").await.unwrap().revision();
    let get = || kv.get(&p).prefix();
    let names = |r: etcd3::kv::GetResponse| {
        r.kvs()
            .iter()
            .map(|kv| kv.key_str().unwrap().trim_start_matches(&p).to_owned())
            .collect::<String>()
    };
    assert_eq!(names(get().min_mod_revision(r3).await.unwrap()), "13");
    assert_eq!(names(get().max_mod_revision(r2).await.unwrap()), "2");
    assert_eq!(names(get().min_create_revision(r2).await.unwrap()), "23");
    assert_eq!(names(get().max_create_revision(r1).await.unwrap()), "1");
    assert_eq!(
        names(
            get()
                .min_mod_revision(r1b)
                .max_mod_revision(r1b)
                .await
                .unwrap()
        ),
        "1"
    );
}

#[tokio::test]
async fn binary_keys_and_values_round_trip() {
    let (client, p) = setup("binary").await;
    let kv = client.kv();
    let mut key = p.clone().into_bytes();
    key.extend_from_slice(&[0, 0xff, 0x80, b'\n']);
    let value: Vec<u8> = (0..=255u8).collect();
    kv.put(key.clone(), value.clone()).await.unwrap();
    let resp = kv.get(&key[..]).await.unwrap();
    assert_eq!(resp.first().unwrap().key(), &key[..]);
    assert_eq!(resp.value(), Some(&value[..]));
    let bytes = resp.first().unwrap().value_bytes().clone();
    assert_eq!(bytes.len(), 256);
}
