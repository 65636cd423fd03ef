//! Opening a watch or a keep-alive is bounded by the client's request timeout: with the
//! only member blackholed (connections accepted, nothing forwarded), `client.watch(..)`,
//! `WatchGroup::add` and `client.lease().keep_alive(..)` end with a typed timeout within
//! the request timeout, and the same client works once the member is reachable again.
//! The established streams themselves are not bounded.

use std::time::{Duration, Instant};

use etcd_core::KeyRange;
use etcd_testkit::{FaultProxy, Mode, shared_server, unique_prefix};
use etcd3::Client;
use futures::StreamExt;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The request timeout plus slack for a loaded 2-core machine.
const BOUND: Duration = Duration::from_secs(4);

async fn client_through_blackhole() -> (FaultProxy, Client) {
    let proxy = FaultProxy::start(shared_server().client_addr()).await;
    let client = Client::builder([proxy.url()])
        .request_timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .unwrap();
    // Connected once through the proxy, then cut off: the connection stays open and
    // silent, and new ones are accepted but go nowhere.
    client.kv().get("warm-up").await.unwrap();
    proxy.set_mode(Mode::Blackhole).await;
    (proxy, client)
}

fn is_timeout(e: &etcd_core::Error) -> bool {
    matches!(e, etcd_core::Error::Timeout { .. })
}

#[tokio::test]
async fn a_watch_on_an_unreachable_member_times_out_then_works() {
    let prefix = unique_prefix("watch_open_timeout");
    let (proxy, client) = client_through_blackhole().await;

    let started = Instant::now();
    let e = client
        .watch(prefix.as_str())
        .prefix()
        .await
        .expect_err("no member answers");
    let took = started.elapsed();
    assert!(is_timeout(&e), "{e:?}");
    assert!(
        took >= REQUEST_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < BOUND, "the watch took {took:?} to fail");

    let (group, mut events) = client.watch_group();
    let started = Instant::now();
    let e = group
        .add(KeyRange::prefix(prefix.as_str()))
        .await
        .expect_err("no member answers");
    let took = started.elapsed();
    assert!(is_timeout(&e), "{e:?}");
    assert!(took < BOUND, "adding a watch took {took:?} to fail");

    // Reachable again: the same client watches, and the established watch is not ended
    // by the request timeout.
    proxy.set_mode(Mode::Pass).await;
    let mut stream = client.watch(prefix.as_str()).prefix().await.unwrap();
    let id = group.add(KeyRange::prefix(prefix.as_str())).await.unwrap();
    tokio::time::sleep(REQUEST_TIMEOUT + Duration::from_millis(500)).await;
    let key = format!("{prefix}k");
    client.kv().put(key.as_str(), "v").await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
        .unwrap();
    assert_eq!(response.events()[0].kv().key(), key.as_bytes());
    let (from, response) = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("a group event within 5 s")
        .expect("the group stream goes on");
    assert_eq!(from, id);
    assert_eq!(response.unwrap().events()[0].kv().key(), key.as_bytes());
}

#[tokio::test]
async fn a_keep_alive_on_an_unreachable_member_times_out_then_works() {
    let proxy = FaultProxy::start(shared_server().client_addr()).await;
    let client = Client::builder([proxy.url()])
        .request_timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .unwrap();
    let lease = client.lease().grant(Duration::from_secs(30)).await.unwrap();
    proxy.set_mode(Mode::Blackhole).await;

    let started = Instant::now();
    let e = client
        .lease()
        .keep_alive(lease.id())
        .await
        .expect_err("no member answers");
    let took = started.elapsed();
    assert!(is_timeout(&e), "{e:?}");
    assert!(
        took >= REQUEST_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < BOUND, "the keep-alive took {took:?} to fail");

    proxy.set_mode(Mode::Pass).await;
    let keeper = client
        .lease()
        .keep_alive(lease.id())
        .every(Duration::from_millis(500))
        .await
        .unwrap();
    let renewals = keeper.renewals();
    // Kept alive past the request timeout: the established stream is not bounded by it.
    tokio::time::sleep(REQUEST_TIMEOUT + Duration::from_secs(1)).await;
    assert_eq!(keeper.loss(), None);
    let ttl = client.lease().time_to_live(lease.id()).await.unwrap();
    assert!(ttl.ttl() > Duration::from_secs(20), "{:?}", ttl.ttl());
    assert!(keeper.renewals() > renewals, "renewed meanwhile");
    client.lease().revoke(lease.id()).await.unwrap();
}
