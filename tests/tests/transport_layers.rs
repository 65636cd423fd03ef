//! User-built transports and user tower layers against a real etcd: the KV client over a
//! bare tonic channel wrapped in tower layers (no facade), and the facade with the user's
//! layers (`ClientBuilder::layer`) and the user's own transports
//! (`ClientBuilder::transport`).

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_core::grpc::GrpcKv;
use etcd_core::{Error, Kv};
use etcd_testkit::{FaultProxy, Mode, shared_server, unique_prefix};
use etcd_tests::counting::{CallCounter, Counting};
use etcd3::Client;
use futures::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tower_http::classify::GrpcFailureClass;

#[tokio::test]
async fn kv_over_a_channel_wrapped_in_a_timeout_layer() {
    let channel = tonic::transport::Endpoint::from_shared(shared_server().client_url())
        .unwrap()
        .connect_lazy();
    let counter = CallCounter::new();
    let transport = tower::ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .layer(counter.layer())
        .service(channel);
    let kv = Kv::new(GrpcKv::new(transport));
    let p = unique_prefix("layers");
    kv.put(format!("{p}k"), "v").await.unwrap();
    assert_eq!(
        kv.get(format!("{p}k")).await.unwrap().value(),
        Some(&b"v"[..])
    );
    assert_eq!(counter.count("/etcdserverpb.KV/Put"), 1);
    assert_eq!(counter.count("/etcdserverpb.KV/Range"), 1);
}

#[tokio::test]
async fn a_timeout_layer_gives_a_typed_timeout_with_unknown_outcome() {
    let proxy = FaultProxy::start(shared_server().client_addr()).await;
    let channel = tonic::transport::Endpoint::from_shared(proxy.url())
        .unwrap()
        .connect_lazy();
    let transport = tower::ServiceBuilder::new()
        .timeout(Duration::from_millis(300))
        .service(channel);
    let kv = Kv::new(GrpcKv::new(transport));
    let p = unique_prefix("timeout");
    kv.put(format!("{p}k"), "before").await.unwrap();
    proxy.set_mode(Mode::Blackhole).await;
    let started = std::time::Instant::now();
    let e = kv.put(format!("{p}k"), "during").await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(e.is_outcome_unknown());
    assert!(started.elapsed() < Duration::from_secs(2));
    proxy.set_mode(Mode::Pass).await;
}

/// The facade over the user's own tower layers: every call and stream of the client passes
/// through them, and a timeout layer among them bounds each call.
#[tokio::test]
async fn the_client_takes_tower_layers_over_its_transport() {
    let counter = CallCounter::new();
    let client = etcd3::Client::builder(shared_server().endpoints())
        .layer(counter.layer())
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(5)))
        .connect()
        .await
        .unwrap();
    let p = unique_prefix("client_layers");
    client.kv().put(format!("{p}k"), "v").await.unwrap();
    assert_eq!(
        client.kv().get(format!("{p}k")).await.unwrap().value(),
        Some(&b"v"[..])
    );
    let lease = client.lease().grant(Duration::from_secs(30)).await.unwrap();
    let _watch = client.watch(format!("{p}w")).await.unwrap();
    client.lease().revoke(lease.id()).await.unwrap();
    assert_eq!(counter.count("/etcdserverpb.KV/Put"), 1);
    assert_eq!(counter.count("/etcdserverpb.KV/Range"), 1);
    assert_eq!(counter.count("/etcdserverpb.Lease/LeaseGrant"), 1);
    assert_eq!(counter.count("/etcdserverpb.Watch/Watch"), 1);
}

/// A per-request timeout replaces the client's request timeout, both ways: shorter for one
/// call into a blackhole, longer for one call than the client's default allows.
#[tokio::test]
async fn a_request_timeout_can_be_overridden_per_call() {
    let proxy = FaultProxy::start(shared_server().client_addr()).await;
    let client = etcd3::Client::builder([proxy.url()])
        .request_timeout(Duration::from_millis(1500))
        .connect()
        .await
        .unwrap();
    let p = unique_prefix("per_call_timeout");
    client.kv().put(format!("{p}k"), "v").await.unwrap();
    proxy.set_mode(Mode::Blackhole).await;

    let started = std::time::Instant::now();
    let e = client
        .kv()
        .get(format!("{p}k"))
        .timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    let short = started.elapsed();
    assert!(
        short < Duration::from_millis(1000),
        "the call's 300 ms won over the client's 1.5 s: {short:?}"
    );

    let started = std::time::Instant::now();
    let resume = tokio::time::sleep(Duration::from_millis(2500));
    let longer = std::future::IntoFuture::into_future(
        client
            .kv()
            .get(format!("{p}k"))
            .timeout(Duration::from_secs(6)),
    );
    tokio::pin!(longer);
    // While the call waits, let the blackhole end after 2.5 s: longer than the client's
    // 1.5 s default, shorter than the call's own 6 s.
    let value = tokio::select! {
        r = &mut longer => r,
        _ = resume => {
            proxy.set_mode(Mode::Pass).await;
            longer.await
        }
    };
    let elapsed = started.elapsed();
    assert_eq!(
        value.unwrap().value(),
        Some(&b"v"[..]),
        "answered after {elapsed:?}"
    );
    assert!(elapsed > Duration::from_millis(1500), "{elapsed:?}");
}

/// The transports a client's `.transport(..)` made: a lazily connecting tonic channel per
/// endpoint, in a call counter of its own, recorded by URL in the order they were made.
#[derive(Clone, Default)]
struct Made(Arc<Mutex<Vec<(String, CallCounter)>>>);

impl Made {
    /// The function to give `ClientBuilder::transport`.
    fn make(
        &self,
    ) -> impl Fn(&str) -> Result<Counting<Channel>, tonic::transport::Error> + Send + Sync + 'static
    {
        let made = self.clone();
        move |url| {
            let channel = Endpoint::from_shared(url.to_owned())?
                .connect_timeout(Duration::from_secs(2))
                .connect_lazy();
            let counter = CallCounter::new();
            made.0
                .lock()
                .unwrap()
                .push((url.to_owned(), counter.clone()));
            Ok(tower::ServiceBuilder::new()
                .layer(counter.layer())
                .service(channel))
        }
    }

    /// The URLs transports were made for, in order.
    fn urls(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// The calls sent through the transport made for `url`.
    fn counter(&self, url: &str) -> CallCounter {
        let made = self.0.lock().unwrap();
        let found = made.iter().rev().find(|(u, _)| u == url);
        found
            .map(|(_, c)| c.clone())
            .expect("a transport made for the URL")
    }
}

/// An endpoint where nothing listens: port 1, which no server of the harness takes (they
/// get ephemeral ports).
fn closed_port() -> String {
    assert!(
        TcpStream::connect(("127.0.0.1", 1)).is_err(),
        "something listens on port 1"
    );
    "http://127.0.0.1:1".to_owned()
}

/// The client over the user's own transport: every call and stream goes through it, and
/// through the user's layers over it, once each.
#[tokio::test]
async fn the_client_runs_over_the_users_transport() {
    let url = shared_server().client_url();
    let made = Made::default();
    let layered = CallCounter::new();
    let client = Client::builder([url.clone()])
        .transport(made.make())
        .layer(layered.layer())
        .connect()
        .await
        .unwrap();
    assert_eq!(made.urls(), [url.as_str()]);
    let lease = watch_put_get(&client, "user_transport").await;

    for (counter, name) in [(made.counter(&url), "transport"), (layered, "layer")] {
        for path in [
            "/etcdserverpb.Watch/Watch",
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.KV/Range",
            "/etcdserverpb.Lease/LeaseGrant",
        ] {
            assert_eq!(counter.count(path), 1, "{path} through the {name}");
        }
        assert_eq!(counter.total(), 4, "calls through the {name}");
    }
    client.lease().revoke(lease.id()).await.unwrap();
}

/// With a closed port first among the endpoints, calls that meet it fail over to the next
/// member: the refused connection proves the request was never sent, so writes go on too.
#[tokio::test]
async fn the_users_transports_fail_over_from_a_closed_port() {
    let closed = closed_port();
    let open = shared_server().client_url();
    let made = Made::default();
    let client = Client::builder([closed.clone(), open.clone()])
        .transport(made.make())
        .connect()
        .await
        .expect("a closed port does not fail connect");
    assert_eq!(made.urls(), [closed.clone(), open.clone()]);
    let p = unique_prefix("user_transport_failover");
    // Calls take turns over the members: at least one of two starts at the closed port.
    for i in 0..4 {
        let put = client.kv().put(format!("{p}k"), i.to_string()).await;
        put.expect("the put fails over to the open member");
    }
    let read = client.kv().get(format!("{p}k")).await.unwrap();
    assert_eq!(read.value(), Some(&b"3"[..]));

    let refused = made.counter(&closed);
    let served = made.counter(&open);
    assert!(
        refused.count("/etcdserverpb.KV/Put") >= 1,
        "the closed port was tried"
    );
    assert_eq!(served.count("/etcdserverpb.KV/Put"), 4);
    assert_eq!(served.count("/etcdserverpb.KV/Range"), 1);
}

/// Endpoints found later (here by `sync_endpoints`, through a proxy whose member list names
/// the server itself) get a transport made by the user's function too, and calls use it.
#[tokio::test]
async fn the_users_transport_is_made_for_endpoints_found_later() {
    let proxy = FaultProxy::start(shared_server().client_addr()).await;
    let made = Made::default();
    let client = Client::builder([proxy.url()])
        .transport(made.make())
        .connect()
        .await
        .unwrap();
    let url = shared_server().client_url();
    assert_eq!(client.sync_endpoints().await.unwrap(), [url.as_str()]);
    assert_eq!(made.urls(), [proxy.url(), url.clone()]);
    let p = unique_prefix("user_transport_sync");
    client.kv().put(format!("{p}k"), "v").await.unwrap();
    assert_eq!(made.counter(&url).count("/etcdserverpb.KV/Put"), 1);
    let through_proxy = made.counter(&proxy.url());
    assert_eq!(through_proxy.count("/etcdserverpb.Cluster/MemberList"), 1);
    assert_eq!(through_proxy.total(), 1);
}

/// tower-http's `TraceLayer`, whose service answers with a body of its own, is a user
/// layer: its callbacks see every call, the end of each answer (the body is read through
/// it) and the failures by gRPC status.
#[tokio::test]
async fn the_client_takes_tower_https_trace_layer() {
    let requests = Arc::new(AtomicUsize::new(0));
    let ok_ends = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let trace = tower_http::trace::TraceLayer::new_for_grpc()
        .on_request({
            let requests = requests.clone();
            move |_: &http::Request<tonic::body::Body>, _: &tracing::Span| {
                requests.fetch_add(1, Ordering::SeqCst);
            }
        })
        .on_eos({
            let ok_ends = ok_ends.clone();
            move |trailers: Option<&http::HeaderMap>, _: Duration, _: &tracing::Span| {
                if trailers
                    .and_then(|t| t.get("grpc-status"))
                    .is_some_and(|s| s == "0")
                {
                    ok_ends.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .on_failure({
            let failures = failures.clone();
            move |class: GrpcFailureClass, _: Duration, _: &tracing::Span| {
                let seen = match class {
                    GrpcFailureClass::Status(status) => Some(status.code_raw()),
                    _ => None,
                };
                failures.lock().unwrap().push(seen);
            }
        });
    let client = Client::builder(shared_server().endpoints())
        .layer(trace)
        .connect()
        .await
        .unwrap();
    watch_put_get_only(&client, "trace_layer").await;
    assert_eq!(ok_ends.load(Ordering::SeqCst), 2, "the put's and the get's");

    let missing = client.lease().revoke(0x7eed_0000_0000_0001).await;
    let error = missing.expect_err("no such lease");
    assert_eq!(
        error.server_kind(),
        Some(etcd3::ServerErrorKind::LeaseNotFound)
    );
    // The watch, the put, the get and the revoke.
    assert_eq!(requests.load(Ordering::SeqCst), 4);
    let not_found = tonic::Code::NotFound as i32;
    assert_eq!(*failures.lock().unwrap(), [Some(not_found)]);
}

/// A watch on a fresh key, a put and a get of it, and the watch's event: a put, a get
/// and a watch through whatever the client runs on.
async fn watch_put_get_only(client: &Client, name: &str) {
    let p = unique_prefix(name);
    let mut watch = client.watch(format!("{p}k")).await.unwrap();
    client.kv().put(format!("{p}k"), "v").await.unwrap();
    let read = client.kv().get(format!("{p}k")).await.unwrap();
    assert_eq!(read.value(), Some(&b"v"[..]));
    let events = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a watch event in time")
        .expect("the watch is open")
        .unwrap();
    assert_eq!(events.events()[0].kv().value(), b"v");
}

/// [`watch_put_get_only`] with a lease granted between the get and the watch's event.
async fn watch_put_get(client: &Client, name: &str) -> etcd3::lease::Lease {
    let lease = client.lease().grant(Duration::from_secs(30)).await.unwrap();
    watch_put_get_only(client, name).await;
    lease
}
