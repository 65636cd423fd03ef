//! Paginated reads (`Get::paginate`) through `Client`, against a real etcd: pages follow
//! key order at one revision, every option that can be paginated works, and compaction
//! past the pinned revision ends the scan with the typed error.

use etcd_testkit::{EtcdServer, shared_server, unique_prefix};
use etcd3::kv::{SortOrder, SortTarget};
use etcd3::{Client, Error, InvalidRequest, ServerErrorKind};
use futures::StreamExt;

/// Every page, in order, or the first error.
async fn collect(pages: etcd3::kv::Pages) -> Result<Vec<etcd3::kv::GetResponse>, Error> {
    pages
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
}

fn keys(pages: &[etcd3::kv::GetResponse]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|page| page.kvs())
        .map(|kv| kv.key_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pages_cover_the_range_in_key_order_at_one_revision() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let kv = client.kv();
    let p = unique_prefix("scan-pages");
    for i in 0..25 {
        kv.put(format!("{p}{i:02}"), format!("v{i}")).await.unwrap();
    }
    let before = kv.get(&p).prefix().await.unwrap();

    let mut pages = kv.get(&p).prefix().paginate(10);
    assert_eq!(pages.revision(), None);
    let mut rest = vec![pages.next().await.unwrap().unwrap()];
    // Other tests write to the shared server too: the pin is at or after `before`.
    let pinned = pages.revision().expect("pinned by the first page");
    assert!(pinned >= before.revision());
    // Written after the first page: later pages must not see it.
    kv.put(format!("{p}24"), "changed").await.unwrap();
    kv.put(format!("{p}99"), "added").await.unwrap();
    while let Some(page) = pages.next().await {
        rest.push(page.unwrap());
    }
    assert_eq!(pages.revision(), Some(pinned), "the pin never moves");
    assert_eq!(
        rest.iter().map(|page| page.kvs().len()).collect::<Vec<_>>(),
        [10, 10, 5]
    );
    let scanned: Vec<(String, Vec<u8>)> = rest
        .iter()
        .flat_map(|page| page.kvs())
        .map(|kv| (kv.key_str().unwrap().to_owned(), kv.value().to_vec()))
        .collect();
    let expected: Vec<(String, Vec<u8>)> = before
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_owned(), kv.value().to_vec()))
        .collect();
    assert_eq!(scanned, expected);
}

#[tokio::test]
async fn options_a_limit_and_a_namespace_carry_over_to_every_page() {
    let p = unique_prefix("scan-options");
    let client = Client::builder(shared_server().endpoints())
        .namespace(&p)
        .connect()
        .await
        .unwrap();
    let kv = client.kv();
    for i in 0..30 {
        kv.put(format!("k{i:02}"), "value").await.unwrap();
    }
    kv.put("other", "x").await.unwrap();

    // In the namespace, keys come back without its prefix, page after page.
    let pages = collect(kv.get("k").prefix().keys_only().paginate(7))
        .await
        .unwrap();
    assert_eq!(
        keys(&pages),
        (0..30).map(|i| format!("k{i:02}")).collect::<Vec<_>>()
    );
    assert!(
        pages
            .iter()
            .flat_map(|p| p.kvs())
            .all(|kv| kv.value().is_empty())
    );

    // A limit bounds the whole scan.
    let limited = collect(kv.get("k").prefix().limit(12).serializable().paginate(5))
        .await
        .unwrap();
    assert_eq!(
        limited.iter().map(|p| p.kvs().len()).collect::<Vec<_>>(),
        [5, 5, 2]
    );

    // A single key is one page; an empty range is one empty page.
    assert_eq!(
        keys(&collect(kv.get("k07").paginate(5)).await.unwrap()),
        ["k07"]
    );
    let empty = collect(kv.get("nothing/").prefix().paginate(5))
        .await
        .unwrap();
    assert_eq!(empty.len(), 1);
    assert!(empty[0].kvs().is_empty());

    // From a revision: the range as it was then.
    let then = kv.get("k00").await.unwrap().revision();
    kv.put("k00x", "later").await.unwrap();
    let mut pages = kv.get("k").prefix().revision(then).paginate(8);
    let mut at_then = Vec::new();
    while let Some(page) = pages.next().await {
        at_then.push(page.unwrap());
    }
    assert_eq!(keys(&at_then).len(), 30, "k00x came later");
    assert_eq!(pages.revision(), Some(then));
}

#[tokio::test]
async fn what_cannot_be_paginated_is_refused_before_sending() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let kv = client.kv();
    let refused = |result: Result<Vec<etcd3::kv::GetResponse>, Error>| match result {
        Err(Error::InvalidRequest(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(matches!(
        refused(collect(kv.get("a").prefix().paginate(0)).await),
        InvalidRequest::OutOfRange {
            what: "page size",
            value: 0
        }
    ));
    let sorted = kv
        .get("a")
        .prefix()
        .sort(SortTarget::ModRevision, SortOrder::Descend)
        .paginate(10);
    assert!(
        refused(collect(sorted).await)
            .to_string()
            .contains("key order")
    );
    let counted = kv.get("a").prefix().count_only().paginate(10);
    assert!(
        refused(collect(counted).await)
            .to_string()
            .contains("count_only")
    );
    assert!(matches!(
        refused(collect(kv.get("").paginate(10)).await),
        InvalidRequest::EmptyKey
    ));
    // A key-ordered sort is fine.
    let ascending = kv
        .get("a")
        .prefix()
        .sort(SortTarget::Key, SortOrder::Ascend)
        .paginate(10);
    collect(ascending).await.unwrap();
}

/// Compaction past the pinned revision between two pages: the next page fails with the
/// typed `Compacted` error and the stream ends there, never mixing revisions.
#[tokio::test]
async fn compaction_past_the_pinned_revision_ends_the_scan_with_the_typed_error() {
    // A server of its own: compaction would disturb the other tests' reads of the past.
    let server = EtcdServer::start().await;
    let client = Client::connect(server.endpoints()).await.unwrap();
    let kv = client.kv();
    for i in 0..20 {
        kv.put(format!("scan/{i:02}"), "v").await.unwrap();
    }
    let mut pages = kv.get("scan/").prefix().paginate(5);
    let first = pages.next().await.unwrap().unwrap();
    assert_eq!(first.kvs().len(), 5);
    let now = kv.put("scan/00", "rewritten").await.unwrap().revision();
    assert!(now > first.revision());
    kv.compact(now).await.unwrap();

    let error = pages
        .next()
        .await
        .expect("an item after the compaction")
        .unwrap_err();
    assert_eq!(
        error.server_kind(),
        Some(ServerErrorKind::Compacted),
        "{error:?}"
    );
    assert!(
        pages.next().await.is_none(),
        "the scan ends after the error"
    );
}
