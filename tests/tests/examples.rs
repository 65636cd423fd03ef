//! The workspace's examples, run against a real etcd: each must exit with status 0 and
//! print what it did, so an example that compiles but no longer works fails here.
//!
//! `cargo test --workspace` builds the examples first; to run this file alone, build them
//! before: `cargo build --workspace --examples`.

use etcd_testkit::shared_server;
use etcd_tests::examples::{Example, run_example};

/// etcd3: tower-http's TraceLayer on the client, printed by a fmt subscriber.
#[tokio::test]
async fn trace_layer() {
    Example::new("trace_layer")
        .arg(shared_server().client_url())
        // The example's default, stated here so that a RUST_LOG of the test run can't
        // hide the trace layer's events.
        .env("RUST_LOG", "tower_http=debug")
        .run()
        .await
        .assert_stdout_contains("read examples/trace_layer = traced")
        .assert_stdout_contains("deleted 1 key(s)")
        // The span of the trace layer around the get.
        .assert_stdout_contains("uri=/etcdserverpb.KV/Range");
}

/// etcd3: a hand-written logging layer and tower's timeout layer on the client.
#[tokio::test]
async fn custom_layer() {
    run_example("custom_layer", [shared_server().client_url()])
        .await
        .assert_stdout_contains("/etcdserverpb.KV/Put answered in")
        .assert_stdout_contains(r#"layered = Some(Ok("yes"))"#);
}

/// etcd-watch: a watcher and a KV handle over a user-built tower stack, no facade.
#[tokio::test]
async fn custom_transport() {
    run_example("custom_transport", [shared_server().client_url()])
        .await
        .assert_stdout_contains(r#"put example/watch/counter = Ok("3")"#)
        .assert_stdout_contains("delete example/watch/counter");
}

/// etcd-watch: a watch and a KV handle over etcd-core's retry and failover layers on three
/// members, no facade. The first member (where both start) is killed while the example
/// writes: every key must still be seen by the watch, in revision order, and the last
/// write of each key must be among the events.
#[tokio::test]
async fn watch_failover_over_three_members() {
    let cluster = etcd_testkit::EtcdCluster::start(3).await;
    let run = tokio::spawn(
        Example::new("failover")
            .args(cluster.client_urls())
            .timeout(std::time::Duration::from_secs(90))
            .run(),
    );
    // The example writes a key every 50 ms for about two seconds: kill the first member
    // while it does.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(!run.is_finished(), "the example ended before the kill");
    cluster.member(0).kill();
    let output = run.await.expect("the example's runner panicked");
    output
        .assert_stdout_contains("watching example/failover/")
        .assert_stdout_contains("all 40 keys seen in order");
}

/// etcd3: the tour `cargo xtask demo` runs, against the shared server.
#[tokio::test]
async fn demo() {
    run_example("demo", [shared_server().client_url()])
        .await
        .assert_stdout_contains("The tour is over.");
}

/// etcd3: two tonic servers register, a client balances over what discovery reports, one
/// server leaves and every call goes to the other.
#[tokio::test]
async fn discovery_balances_over_registered_servers() {
    run_example("discovery", [shared_server().client_url()])
        .await
        .assert_stdout_contains("discovered example/discovery/greeter/a")
        .assert_stdout_contains("discovered example/discovery/greeter/b")
        .assert_stdout_contains("removed example/discovery/greeter/a")
        .assert_stdout_contains(r#"after: {"server-b": 40}"#)
        .assert_stdout_contains("traffic moved to server-b");
}

/// etcd3: `mirror` copies a prefix from one server to another at one revision, then
/// applies the changes it watches; afterwards both hold the same keys and values.
#[tokio::test]
async fn mirror_between_two_servers() {
    use etcd3::Client;
    use etcd3::kv::Op;
    use std::time::Duration;

    let (source, destination) = (
        etcd_testkit::EtcdServer::start().await,
        etcd_testkit::EtcdServer::start().await,
    );
    let src = Client::connect(source.endpoints()).await.unwrap();
    let dst = Client::connect(destination.endpoints()).await.unwrap();
    for first in (0..2_500).step_by(100) {
        let puts = (first..first + 100).map(|i| Op::put(format!("app/{i:04}"), format!("v{i}")));
        src.kv().txn().then(puts).await.unwrap();
    }
    dst.kv()
        .put("app/stale", "not in the source")
        .await
        .unwrap();

    let run = tokio::spawn(
        Example::new("mirror")
            .args([
                source.client_url(),
                destination.client_url(),
                "app/".to_owned(),
                "60".to_owned(),
            ])
            .timeout(Duration::from_secs(60))
            .run(),
    );
    // Once the copy is complete, 60 changes: 40 puts (30 of new keys) and 20 deletes.
    let copied = async {
        loop {
            let now = dst.kv().get("app/").prefix().count_only().await.unwrap();
            let stale = dst.kv().get("app/stale").await.unwrap();
            if now.count() == 2_500 && stale.kvs().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), copied)
        .await
        .expect("the copy completes");
    for i in 0..40 {
        src.kv()
            .put(format!("app/{:04}", 2_490 + i), "changed")
            .await
            .unwrap();
    }
    for i in 0..20 {
        src.kv().delete(format!("app/{i:04}")).await.unwrap();
    }
    run.await
        .unwrap()
        .assert_stdout_contains("2500 keys copied")
        .assert_stdout_contains("mirrored 60 changes");

    let pairs = |resp: etcd3::kv::GetResponse| {
        resp.kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect::<Vec<_>>()
    };
    let expected = pairs(src.kv().get("app/").prefix().await.unwrap());
    assert_eq!(expected.len(), 2_500 - 20 + 30);
    assert_eq!(
        pairs(dst.kv().get("app/").prefix().await.unwrap()),
        expected
    );
}
