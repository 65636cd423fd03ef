//! The client's response size limit (`ClientBuilder::max_response_size`) against a real
//! etcd: a get, a txn, a watch and a call through tonic's generated client whose response
//! is over the limit each fail with the typed `ResponseTooLarge`, everything under it works
//! on the same client, a cache that cannot follow stops, and the default limit reads the
//! same data.

use std::time::Duration;

use etcd_testkit::{shared_server, unique_prefix};
use etcd3::kv::Op;
use etcd3::watch::cache::Health;
use etcd3::{Applied, Client, Error, KeyRange};
use futures::StreamExt;

/// The limit of the limited client, and a value well over it.
const LIMIT: usize = 4096;
const LARGE: usize = 8192;

const LONG: Duration = Duration::from_secs(10);

async fn limited() -> Client {
    Client::builder(shared_server().endpoints())
        .max_response_size(LIMIT)
        .connect()
        .await
        .unwrap()
}

/// Checks that `result` is the limit's typed error, with an unknown outcome (a write's
/// answer was refused unread) and a message that names the setting.
#[track_caller]
fn assert_too_large<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    let error = result.expect_err(what);
    assert!(
        error.to_string().contains("max_response_size"),
        "{what}: {error}"
    );
    assert_eq!(error.applied(), Applied::Unknown, "{what}");
    match error {
        Error::ResponseTooLarge { size, limit } => {
            assert!(size > LARGE, "{what}: {size}");
            assert_eq!(limit, LIMIT, "{what}");
        }
        other => panic!("{what}: {other:?}"),
    }
}

/// Gets and txns over the limit fail typed; smaller ones, before and after, work on the
/// same client; the default client reads the large value.
#[tokio::test]
async fn responses_over_the_limit_fail_typed_and_the_client_goes_on() {
    let p = unique_prefix("limit");
    let client = limited().await;
    let kv = client.kv();
    let large = format!("{p}large");
    kv.put(&large, vec![b'x'; LARGE]).await.unwrap();
    kv.put(format!("{p}small"), "v").await.unwrap();

    assert_too_large("a get of the large value", kv.get(&large).await);
    // The same range without values fits.
    let keys = kv.get(&large).keys_only().await.unwrap();
    assert_eq!(keys.kvs().len(), 1);
    let small = kv.get(format!("{p}small")).await.unwrap();
    assert_eq!(small.value(), Some(&b"v"[..]));
    // A txn whose answer carries the value is refused too (after etcd applied it).
    let txn = kv
        .txn()
        .then([Op::put(format!("{p}written"), "w"), Op::get(&large)])
        .await;
    assert_too_large("a txn reading the large value", txn);
    let written = kv.get(format!("{p}written")).await.unwrap();
    assert_eq!(written.value(), Some(&b"w"[..]), "the txn was applied");

    let default = Client::connect(shared_server().endpoints()).await.unwrap();
    let got = default.kv().get(&large).await.unwrap();
    assert_eq!(got.value().map(<[u8]>::len), Some(LARGE));
}

/// A watch response over the limit ends every watch the server was serving on that
/// stream (which one it was for cannot be known unread); a watch on a watcher of its own
/// goes on, and a watch created afterwards, on a new stream, works.
#[tokio::test]
async fn a_watch_response_over_the_limit_ends_its_streams_watches() {
    let p = unique_prefix("limit-watch");
    let client = limited().await;
    let writer = Client::connect(shared_server().endpoints()).await.unwrap();
    let mut watch = client.watch(format!("{p}a")).await.unwrap();
    let mut neighbour = client.watch(format!("{p}n")).await.unwrap();
    let own = client.new_watcher();
    let apart = own.watch(format!("{p}n")).await.unwrap();
    writer
        .kv()
        .put(format!("{p}a"), vec![b'x'; LARGE])
        .await
        .unwrap();
    for (what, stream) in [
        ("the large event's watch", &mut watch),
        ("its neighbour", &mut neighbour),
    ] {
        let ended = tokio::time::timeout(LONG, stream.next()).await.unwrap();
        assert_too_large(what, ended.expect("an error, not the end"));
        assert!(
            tokio::time::timeout(LONG, stream.next())
                .await
                .unwrap()
                .is_none()
        );
    }

    let next = client.watch(format!("{p}b")).await.unwrap();
    put_and_see(&writer, format!("{p}b"), next, "a watch made afterwards").await;
    put_and_see(&writer, format!("{p}n"), apart, "the other watcher's watch").await;
}

/// Puts a small value at `key` and checks that `watch` sees it.
async fn put_and_see(writer: &Client, key: String, mut watch: etcd3::WatchStream, what: &str) {
    let rev = writer.kv().put(key, "small").await.unwrap().revision();
    let resp = tokio::time::timeout(LONG, watch.next())
        .await
        .expect(what)
        .expect(what)
        .expect(what);
    assert_eq!(resp.events()[0].revision(), rev, "{what}");
}

/// A call through tonic's generated client (a lease's time-to-live with its keys) over
/// the limit fails with the same typed error.
#[tokio::test]
async fn a_generated_client_call_over_the_limit_fails_typed() {
    let p = unique_prefix("limit-ttl");
    let client = limited().await;
    let lease = client.lease().grant(Duration::from_secs(60)).await.unwrap();
    for i in 0..LARGE / 32 {
        client
            .kv()
            .put(format!("{p}{i:032}"), "v")
            .lease(lease.id())
            .await
            .unwrap();
    }
    let ttl = client.lease().time_to_live(lease.id()).await.unwrap();
    assert!(ttl.keys().is_empty(), "without keys it fits");
    assert_too_large(
        "a time-to-live with its keys",
        client.lease().time_to_live(lease.id()).keys().await,
    );
    client.lease().revoke(lease.id()).await.unwrap();
}

/// A cache whose range brings a response over the limit stops, keeping what it had,
/// instead of watching again (and ending its stream's other watches) over and over.
#[tokio::test]
async fn a_cache_that_cannot_follow_its_range_stops() {
    let p = unique_prefix("limit-cache");
    let client = limited().await;
    client.kv().put(format!("{p}small"), "v").await.unwrap();
    let cache = client.cache(KeyRange::prefix(p.clone())).await.unwrap();
    assert_eq!(cache.len(), 1);
    let rev = client
        .kv()
        .put(format!("{p}large"), vec![b'x'; LARGE])
        .await
        .unwrap()
        .revision();
    let error = tokio::time::timeout(LONG, cache.wait_for(rev))
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.to_string().contains("max_response_size"), "{error}");
    assert!(
        matches!(cache.health(), Health::Stopped { .. }),
        "{:?}",
        cache.health()
    );
    assert_eq!(cache.len(), 1, "the cache keeps what it had");
}
