//! K6: writes whose connection is cut after the request left report a typed unknown
//! outcome, are never resent, and so never apply twice.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{Client, Error};
use etcd_core::grpc::GrpcWatch;
use etcd_tests::{FaultProxy, Mode, shared_server, unique_prefix};
use etcd_watch::Watcher;
use futures::StreamExt;

#[tokio::test]
async fn cut_writes_are_unknown_and_never_duplicated() {
    let server = shared_server();
    let proxy = FaultProxy::start(server.client_addr()).await;
    let client = Client::connect([proxy.url()]).await.unwrap();
    let key = format!("{}k", unique_prefix("k6"));
    let start = client.kv().put(&key, "start").await.unwrap().revision();

    let mut acknowledged = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..60 {
        let value = format!("v{i}");
        let cut = i % 3 == 0;
        if cut {
            // Make sure the connection is up and idle, then cut the next request.
            client.kv().get(&key).await.unwrap();
            // Let the connection's own frames (window updates, acks) go first.
            tokio::time::sleep(Duration::from_millis(100)).await;
            proxy.set_mode(Mode::CutAfterRequest { n: 1 }).await;
        }
        match client.kv().put(&key, &value).await {
            Ok(_) => acknowledged.push(value),
            Err(e) => {
                assert!(cut, "only cut calls fail: {e:?}");
                assert!(
                    e.is_outcome_unknown(),
                    "a cut write has an unknown outcome: {e:?}"
                );
                assert!(matches!(e, Error::Transport { .. }), "{e:?}");
                unknown.push(value);
            }
        }
        if cut {
            proxy.set_mode(Mode::Pass).await;
        }
    }
    assert!(
        unknown.len() >= 10,
        "only {} of 20 cuts hit a put",
        unknown.len()
    );
    let end = client.kv().put(&key, "end").await.unwrap().revision();

    // The reference history: every value the key took, read by a raw watch from `start`.
    let channel = tonic::transport::Endpoint::from_shared(server.client_url())
        .unwrap()
        .connect_lazy();
    let watcher = Watcher::new(GrpcWatch::new(channel));
    let mut history = watcher
        .watch(key.as_str())
        .from_revision(start)
        .await
        .unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last = 0;
    while last < end {
        let resp = tokio::time::timeout(Duration::from_secs(10), history.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for event in resp.events() {
            *seen
                .entry(event.kv().value_str().unwrap().to_owned())
                .or_default() += 1;
            last = event.revision();
        }
    }
    for value in &acknowledged {
        assert_eq!(
            seen.get(value),
            Some(&1),
            "acknowledged {value} must appear exactly once"
        );
    }
    for value in &unknown {
        assert!(
            seen.get(value).copied().unwrap_or(0) <= 1,
            "unknown {value} must appear at most once"
        );
    }
    let applied = unknown.iter().filter(|v| seen.contains_key(*v)).count();
    eprintln!(
        "{} acknowledged, {} unknown ({} of them applied), {} cuts",
        acknowledged.len(),
        unknown.len(),
        applied,
        proxy.stats().connections_cut
    );
}
