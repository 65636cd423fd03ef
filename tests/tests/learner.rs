//! A real learner (a non-voting member; etcd serves it only serializable reads, status and
//! member lists): one member of a three-member cluster is replaced by a learner, and
//! `Client` is pointed at it.
//!
//! - Only the learner: linearizable reads, puts and transactions are refused with the typed
//!   `NotSupportedForLearner`, certainly not applied; serializable reads are served.
//! - The learner and a voter: every call succeeds; calls the learner refuses move to the
//!   voter at once (the refusals are counted at the transport, below the failover).

use std::time::Duration;

use etcd_testkit::{EtcdCluster, unique_prefix};
use etcd_tests::counting::CallCounter;
use etcd3::{Client, ServerErrorKind};

async fn client(endpoints: Vec<String>, calls: &CallCounter) -> Client {
    Client::builder(endpoints)
        .layer(calls.layer())
        .request_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_refuses_what_it_cannot_serve_and_calls_move_to_a_voter() {
    let cluster = EtcdCluster::start(3).await;
    let (leader, followers) = cluster.leader_and_followers().await;
    let learner = followers[0];
    cluster.replace_with_learner(learner).await;
    let prefix = unique_prefix("learner");
    let voter = Client::connect([cluster.member(leader).client_url()])
        .await
        .unwrap();
    let written = voter
        .kv()
        .put(format!("{prefix}k"), "v")
        .await
        .unwrap()
        .revision();

    // Only the learner.
    let calls = CallCounter::new();
    let alone = client(vec![cluster.member(learner).client_url()], &calls).await;
    let kv = alone.kv();
    let refused = |what: &str, result| {
        etcd_tests::expect_refused(what, result, ServerErrorKind::NotSupportedForLearner)
    };
    refused(
        "a linearizable read",
        kv.get(format!("{prefix}k")).await.map(drop),
    );
    refused("a put", kv.put(format!("{prefix}p"), "x").await.map(drop));
    refused(
        "a transaction",
        kv.txn()
            .then([etcd3::kv::Op::put(format!("{prefix}t"), "x")])
            .await
            .map(drop),
    );
    // The learner has caught up with the voter's write (it replicates), and serves it.
    let mut served = None;
    for _ in 0..50 {
        let got = kv
            .get(format!("{prefix}k"))
            .serializable()
            .await
            .expect("a serializable read on a learner");
        if got.revision() >= written {
            served = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served = served.expect("the learner caught up within 5 s");
    assert_eq!(served.value(), Some(&b"v"[..]));
    assert!(
        voter
            .kv()
            .get(format!("{prefix}p"))
            .await
            .unwrap()
            .kvs()
            .is_empty(),
        "the refused put was not applied"
    );

    // The learner and a voter: a call the learner refuses moves to the voter at once.
    // A client's calls take turns over its members, so of each client's two calls one is
    // offered to the learner first.
    const CLIENTS: usize = 16;
    let calls = CallCounter::new();
    for i in 0..CLIENTS {
        let both = client(
            vec![
                cluster.member(learner).client_url(),
                cluster.member(leader).client_url(),
            ],
            &calls,
        )
        .await;
        let before = calls.total();
        let put = both
            .kv()
            .put(format!("{prefix}both"), format!("{i}"))
            .await
            .expect("a put with a voter among the endpoints");
        assert!(
            calls.total() - before <= 2,
            "the put went to the learner more than once"
        );
        let read = both
            .kv()
            .get(format!("{prefix}both"))
            .await
            .expect("a linearizable read with a voter among the endpoints");
        assert_eq!(read.value(), Some(format!("{i}").as_bytes()));
        assert!(read.revision() >= put.revision());
    }
    let sent = calls.total();
    println!(
        "learner: {} calls took {sent} RPCs (the learner refused the others)",
        2 * CLIENTS
    );
    assert!(
        sent > 2 * CLIENTS,
        "no call reached the learner first: {sent} RPCs for {} calls",
        2 * CLIENTS
    );
}
