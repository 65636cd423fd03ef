//! The KV client over a user-built transport: a bare tonic channel wrapped in tower layers,
//! with no facade involved.

use std::time::Duration;

use etcd_core::grpc::GrpcKv;
use etcd_core::{Error, Kv};
use etcd_tests::counting::CallCounter;
use etcd_tests::{FaultProxy, Mode, shared_server, unique_prefix};

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
    let client = etcd_client::Client::builder(shared_server().endpoints())
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
    let client = etcd_client::Client::builder([proxy.url()])
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
