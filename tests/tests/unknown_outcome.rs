//! K6: writes whose connection is cut after the request left report a typed unknown
//! outcome, are never resent, and so never apply twice.

use std::collections::HashMap;
use std::time::Duration;

use etcd_core::grpc::GrpcWatch;
use etcd_testkit::{FaultProxy, Mode, shared_server, unique_prefix};
use etcd_watch::Watcher;
use etcd3::{Client, Error};
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
    // Every cut hits its put: the request passes the proxy, then the connection is cut
    // before the answer (a request never leaves before the server has spoken, so the
    // connection's own first frames cannot take the cut instead).
    assert_eq!(
        (unknown.len(), proxy.stats().connections_cut),
        (20, 20),
        "every one of the 20 cuts must hit a put"
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

/// A TCP proxy for one connection that passes the client's bytes to the server but none
/// back, and resets the client's connection after `hold`: a proxy that accepted a
/// connection and fails before the server's first bytes reach the client.
async fn silent_proxy(target: std::net::SocketAddr, hold: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = tokio::net::TcpStream::connect(target).await.unwrap();
        let mut buf = [0u8; 16 * 1024];
        let deadline = tokio::time::sleep(hold);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                read = client.read(&mut buf) => match read {
                    Ok(n) if n > 0 => server.write_all(&buf[..n]).await.unwrap(),
                    _ => break,
                },
                _ = &mut deadline => break,
            }
        }
        // The server's answer (if any) is never passed on; the client sees a close.
        drop(client);
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(server);
    });
    url
}

/// A proxy that passes the client's bytes on but fails before the server's first byte
/// comes back: the client must not have sent its request yet (it waits for the server's
/// SETTINGS), so the request is certainly not applied and may be sent elsewhere. Without
/// that wait, the client took such a close for "not processed" and resent a put the
/// server had applied (found by `cargo xtask chaos`: the same value at two revisions).
#[tokio::test]
async fn no_request_leaves_before_the_server_has_spoken() {
    let server = shared_server();
    for transport in [etcd3::Http2Transport::Builtin, etcd3::Http2Transport::Tonic] {
        let key = format!("{}k", unique_prefix("silent-proxy"));
        let url = silent_proxy(server.client_addr(), Duration::from_millis(500)).await;
        let client = Client::builder([url])
            .http2_transport(transport)
            .connect()
            .await
            .unwrap();
        let error = client
            .kv()
            .put(&key, "once")
            .await
            .expect_err("the proxy never passes an answer on");
        assert_eq!(
            error.applied(),
            etcd3::Applied::No,
            "{transport:?}: nothing was sent before the close: {error}"
        );
        let direct = etcd_tests::clients::raw_kv(&server.client_url());
        let stored = direct.get(key.as_str()).await.unwrap();
        assert!(
            stored.kvs().is_empty(),
            "{transport:?}: the put reached the server before it had spoken: {stored:?}"
        );
    }
}
