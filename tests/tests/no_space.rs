//! E3 (reliability plan §6.2): a backend over its quota. etcd raises the NoSpace alarm and
//! from then on refuses every request that could grow the database (puts, transactions
//! that put, lease grants; on 3.5 every transaction) with `etcdserver: mvcc: database
//! space exceeded`, while reads and deletes go on. Through `Client`: the refusals are typed `NoSpace`, certainly not
//! applied and not retried (one RPC each), the alarm is listed, and after compaction,
//! defragmentation and disarming the alarm, writes work again.

use std::time::Duration;

use etcd_testkit::EtcdServer;
use etcd_tests::counting::CallCounter;
use etcd3::kv::Op;
use etcd3::maintenance::AlarmKind;
use etcd3::{Client, ServerErrorKind};

const QUOTA: usize = 8 << 20;
const VALUE: usize = 1 << 20;

fn assert_no_space(what: &str, result: Result<(), etcd3::Error>) {
    etcd_tests::expect_refused(what, result, ServerErrorKind::NoSpace);
}

#[tokio::test]
async fn e3_no_space_refuses_growth_until_disarmed() {
    let server = EtcdServer::builder()
        .arg(format!("--quota-backend-bytes={QUOTA}"))
        .start()
        .await;
    let calls = CallCounter::new();
    let client = Client::builder([server.client_url()])
        .layer(calls.layer())
        .request_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let kv = client.kv();
    let value = vec![b'x'; VALUE];

    // Fill the backend until etcd refuses.
    let mut filled = 0;
    let first_refusal = loop {
        match kv.put(format!("/fill/{filled}"), value.clone()).await {
            Ok(_) => filled += 1,
            Err(error) => break error,
        }
        assert!(filled < 64, "{filled} MiB put into an {QUOTA}-byte quota");
    };
    assert_eq!(
        first_refusal.server_kind(),
        Some(ServerErrorKind::NoSpace),
        "{first_refusal:?}"
    );
    assert!(filled >= 2, "only {filled} values fit");

    // Growth is refused, once per call (never retried); reads and deletes go on.
    let puts = calls.count("/etcdserverpb.KV/Put");
    assert_no_space("a put", kv.put("/small", "v").await.map(drop));
    assert_eq!(
        calls.count("/etcdserverpb.KV/Put"),
        puts + 1,
        "a NoSpace put is not resent"
    );
    let txns = calls.count("/etcdserverpb.KV/Txn");
    assert_no_space(
        "a transaction that puts",
        kv.txn().then([Op::put("/small", "v")]).await.map(drop),
    );
    assert_eq!(calls.count("/etcdserverpb.KV/Txn"), txns + 1);
    assert_no_space(
        "a lease grant",
        client
            .lease()
            .grant(Duration::from_secs(60))
            .await
            .map(drop),
    );
    let read = kv.get("/fill/0").await.expect("reads go on");
    assert_eq!(read.value().map(<[u8]>::len), Some(VALUE));
    // A transaction that only reads: etcd 3.4 serves it; 3.5's quota check refuses any
    // transaction once the backend is over its quota. Either way typed, and not applied.
    match kv.txn().then([Op::get("/fill/0")]).await {
        Ok(answer) => assert!(answer.succeeded()),
        Err(error) => assert_no_space("a transaction that only reads", Err(error)),
    }
    let deleted = kv.delete("/fill/").prefix().await.expect("deletes go on");
    // etcd checks the quota when it takes a put and again when it applies it; a put that
    // passed the first check is applied and then answered NoSpace, so the refused put may
    // be stored.
    assert!(
        (filled..=filled + 1).contains(&deleted.deleted()),
        "{} deleted, {filled} put",
        deleted.deleted()
    );

    // The alarm is listed.
    let maintenance = client.maintenance();
    let alarms = maintenance.alarms().await.unwrap();
    let no_space: Vec<_> = alarms
        .alarms()
        .iter()
        .filter(|a| a.kind() == AlarmKind::NoSpace)
        .copied()
        .collect();
    assert_eq!(no_space.len(), 1, "{alarms:?}");

    // Free the space, then disarm: writes work again.
    assert_no_space(
        "a put before disarming",
        kv.put("/small", "v").await.map(drop),
    );
    kv.compact(deleted.revision()).await.unwrap();
    maintenance.defragment().await.unwrap();
    let cleared = maintenance.disarm(no_space[0]).await.unwrap();
    assert_eq!(cleared.alarms(), &no_space[..]);
    assert!(maintenance.alarms().await.unwrap().alarms().is_empty());
    kv.put("/small", "v")
        .await
        .expect("writes work after disarming");
    client
        .lease()
        .grant(Duration::from_secs(60))
        .await
        .expect("lease grants work after disarming");
}
