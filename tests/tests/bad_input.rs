//! E1/E2: every bad input reachable on one member gets its exact typed error through `Client`;
//! nothing is sent when the client can tell in advance, a refusal the server gives is sent once
//! (never retried), and the client keeps working afterwards.

use std::time::Duration;

use etcd_core::grpc::GrpcKv;
use etcd_core::kv::KvLimits;
use etcd_testkit::{EtcdServer, shared_server, unique_prefix};
use etcd_tests::counting::CallCounter;
use etcd3::kv::{Compare, Delete, Op, Txn};
use etcd3::proto::etcdserverpb as pb;
use etcd3::{Client, Error, InvalidRequest, ServerErrorKind};
use tower::ServiceExt;

/// A `Client` as a user builds it, with every gRPC call it makes counted. The client
/// is returned too: it owns the connection's background tasks.
async fn counted_kv(url: &str) -> (etcd3::Kv, CallCounter, Client) {
    let counter = CallCounter::new();
    let client = Client::builder([url.to_owned()])
        .layer(counter.layer())
        .request_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect");
    (client.kv().clone(), counter, client)
}

/// Runs `call` and asserts the server refused it with `kind` after exactly one RPC: a
/// refusal the server gave is final, never retried.
async fn refused_once<T: std::fmt::Debug>(
    calls: &CallCounter,
    kind: ServerErrorKind,
    call: impl std::future::IntoFuture<Output = Result<T, Error>>,
) -> Error {
    let result = calls.sent_once(call).await;
    etcd_tests::expect_refused("the server refuses", result, kind)
}

/// Asserts the client still reads and writes after an error.
async fn still_works(kv: &etcd3::Kv, prefix: &str) {
    let key = format!("{prefix}alive");
    kv.put(&key, "yes").await.expect("put after an error");
    assert_eq!(
        kv.get(&key).await.expect("get after an error").value(),
        Some(&b"yes"[..])
    );
}

fn refused<T: std::fmt::Debug>(result: Result<T, Error>) -> InvalidRequest {
    match result {
        Err(Error::InvalidRequest(why)) => why,
        other => panic!("expected a local refusal, got {other:?}"),
    }
}

fn server_kind<T: std::fmt::Debug>(result: Result<T, Error>) -> ServerErrorKind {
    match result {
        Err(Error::Server(e)) => e.kind(),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn empty_keys_are_refused_before_sending() {
    let (kv, calls, _client) = counted_kv(&shared_server().client_url()).await;
    let p = unique_prefix("empty_key");
    assert_eq!(refused(kv.get("").await), InvalidRequest::EmptyKey);
    assert_eq!(refused(kv.put("", "v").await), InvalidRequest::EmptyKey);
    assert_eq!(refused(kv.delete("").await), InvalidRequest::EmptyKey);
    assert_eq!(
        refused(kv.txn().when([Compare::version("").eq(0)]).await),
        InvalidRequest::EmptyKey
    );
    assert_eq!(
        refused(kv.txn().then([Op::put("", "v")]).await),
        InvalidRequest::EmptyKey
    );
    assert_eq!(
        refused(kv.txn().otherwise([Op::delete("")]).await),
        InvalidRequest::EmptyKey
    );
    assert_eq!(calls.total(), 0, "nothing was sent");
    still_works(&kv, &p).await;
}

#[tokio::test]
async fn the_server_agrees_that_empty_keys_are_invalid() {
    // Sent raw, past the client's checks: the server's answer maps to the same meaning.
    let channel = tonic::transport::Endpoint::from_shared(shared_server().client_url())
        .unwrap()
        .connect_lazy();
    let raw = GrpcKv::new(channel);
    let put = raw.clone().oneshot(pb::PutRequest::default()).await;
    assert_eq!(server_kind(put), ServerErrorKind::EmptyKey);
    let range = raw.clone().oneshot(pb::RangeRequest::default()).await;
    assert_eq!(server_kind(range), ServerErrorKind::EmptyKey);
    // An empty operation in a transaction is refused with etcd's "key not found".
    let empty_op = pb::TxnRequest {
        success: vec![pb::RequestOp { request: None }],
        ..Default::default()
    };
    assert_eq!(
        server_kind(raw.clone().oneshot(empty_op).await),
        ServerErrorKind::KeyNotFound
    );
}

#[tokio::test]
async fn put_option_conflicts() {
    let (kv, calls, _client) = counted_kv(&shared_server().client_url()).await;
    let p = unique_prefix("put_options");
    let key = format!("{p}k");
    assert_eq!(
        refused(kv.put(&key, "v").ignore_value().await),
        InvalidRequest::ValueWithIgnoreValue
    );
    assert_eq!(
        refused(kv.put(&key, "v").lease(5).ignore_lease().await),
        InvalidRequest::LeaseWithIgnoreLease
    );
    assert_eq!(
        refused(kv.put(&key, "v").lease(-3).await),
        InvalidRequest::InvalidLeaseId(-3)
    );
    assert_eq!(calls.total(), 0, "nothing was sent");
    // ignore_value / ignore_lease on a key that does not exist: the server's "key not found".
    refused_once(
        &calls,
        ServerErrorKind::KeyNotFound,
        kv.put(&key, "").ignore_value(),
    )
    .await;
    refused_once(
        &calls,
        ServerErrorKind::KeyNotFound,
        kv.put(&key, "v").ignore_lease(),
    )
    .await;
    // The same conflicts sent raw reach the server's own checks.
    let channel = tonic::transport::Endpoint::from_shared(shared_server().client_url())
        .unwrap()
        .connect_lazy();
    let raw = GrpcKv::new(channel);
    let with_value = pb::PutRequest {
        key: key.clone().into(),
        value: "v".into(),
        ignore_value: true,
        ..Default::default()
    };
    assert_eq!(
        server_kind(raw.clone().oneshot(with_value).await),
        ServerErrorKind::ValueProvided
    );
    let with_lease = pb::PutRequest {
        key: key.clone().into(),
        lease: 5,
        ignore_lease: true,
        ..Default::default()
    };
    assert_eq!(
        server_kind(raw.clone().oneshot(with_lease).await),
        ServerErrorKind::LeaseProvided
    );
    still_works(&kv, &p).await;
}

#[tokio::test]
async fn too_many_txn_ops() {
    let (kv, calls, _client) = counted_kv(&shared_server().client_url()).await;
    let p = unique_prefix("too_many_ops");
    let puts = |n: usize| {
        (0..n)
            .map(|i| Op::put(format!("{p}{i}"), "v"))
            .collect::<Vec<_>>()
    };
    let compares = |n: usize| {
        (0..n)
            .map(|i| Compare::version(format!("{p}{i}")).eq(0))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        refused(kv.txn().then(puts(129)).await),
        InvalidRequest::TooManyOps {
            ops: 129,
            limit: 128
        }
    );
    assert_eq!(
        refused(kv.txn().when(compares(129)).await),
        InvalidRequest::TooManyOps {
            ops: 129,
            limit: 128
        }
    );
    let nested = Txn::new().otherwise(puts(200));
    assert!(matches!(
        refused(kv.txn().then([Op::txn(nested)]).await),
        InvalidRequest::TooManyOps { ops: 200, .. }
    ));
    assert_eq!(calls.total(), 0, "nothing was sent");
    // 128 in each list is allowed: the limit is per list, not the total.
    let ok = kv
        .txn()
        .when(compares(128))
        .then(puts(128))
        .otherwise(puts(128))
        .await
        .unwrap();
    assert!(ok.succeeded());
    // With the client's limit raised past the server's, the server refuses.
    let lax = kv
        .clone()
        .with_limits(KvLimits::default().with_max_txn_ops(1000));
    refused_once(
        &calls,
        ServerErrorKind::TooManyOps,
        lax.txn().then(puts(129)),
    )
    .await;
    still_works(&kv, &p).await;
}

#[tokio::test]
async fn duplicate_keys_in_a_txn() {
    let (kv, calls, _client) = counted_kv(&shared_server().client_url()).await;
    let p = unique_prefix("duplicates");
    let k = format!("{p}k");
    let dup = |r| matches!(refused(r), InvalidRequest::DuplicateKey { .. });
    assert!(dup(kv
        .txn()
        .then([Op::put(&k, "1"), Op::put(&k, "2")])
        .await));
    assert!(dup(kv
        .txn()
        .then([Op::put(&k, "1"), Op::from(Delete::new(&p).prefix())])
        .await));
    assert_eq!(calls.total(), 0, "nothing was sent");
    // The server's own check, reached by sending the raw message.
    let channel = tonic::transport::Endpoint::from_shared(shared_server().client_url())
        .unwrap()
        .connect_lazy();
    let put = |v: &'static str| pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: k.clone().into(),
            value: v.into(),
            ..Default::default()
        })),
    };
    let raw = pb::TxnRequest {
        success: vec![put("1"), put("2")],
        ..Default::default()
    };
    assert_eq!(
        server_kind(GrpcKv::new(channel).oneshot(raw).await),
        ServerErrorKind::DuplicateKey
    );
    // Allowed: the same key in then and else.
    kv.txn()
        .then([Op::put(&k, "then")])
        .otherwise([Op::put(&k, "else")])
        .await
        .unwrap();
    still_works(&kv, &p).await;
}

#[tokio::test]
async fn future_and_compacted_revisions() {
    let server = EtcdServer::start().await;
    let (kv, calls, _client) = counted_kv(&server.client_url()).await;
    let r1 = kv.put("k", "1").await.unwrap().revision();
    let r2 = kv.put("k", "2").await.unwrap().revision();
    refused_once(
        &calls,
        ServerErrorKind::FutureRevision,
        kv.get("k").revision(r2 + 10),
    )
    .await;
    kv.compact(r2).await.unwrap();
    refused_once(&calls, ServerErrorKind::Compacted, kv.get("k").revision(r1)).await;
    refused_once(&calls, ServerErrorKind::Compacted, kv.compact(r1)).await;
    refused_once(&calls, ServerErrorKind::FutureRevision, kv.compact(r2 + 10)).await;
    let e = kv.get("k").revision(r1).await.unwrap_err();
    assert!(
        !e.is_outcome_unknown(),
        "a refused read is not an unknown outcome"
    );
    still_works(&kv, "").await;
}

#[tokio::test]
async fn requests_too_large() {
    let (kv, calls, _client) = counted_kv(&shared_server().client_url()).await;
    let p = unique_prefix("too_large");
    // Default --max-request-bytes is 1.5 MiB; gRPC refuses anything over that + 512 KiB.
    let just_over = vec![b'x'; 1536 * 1024 + 100];
    refused_once(
        &calls,
        ServerErrorKind::RequestTooLarge,
        kv.put(format!("{p}a"), just_over),
    )
    .await;
    // Past gRPC's own limit the server answers `ResourceExhausted`, mapped the same way.
    let far_over = vec![b'x'; 2560 * 1024];
    refused_once(
        &calls,
        ServerErrorKind::RequestTooLarge,
        kv.put(format!("{p}b"), far_over),
    )
    .await;
    still_works(&kv, &p).await;
}

#[tokio::test]
async fn unknown_lease() {
    let (kv, calls, _client) = counted_kv(&shared_server().client_url()).await;
    let p = unique_prefix("unknown_lease");
    refused_once(
        &calls,
        ServerErrorKind::LeaseNotFound,
        kv.put(format!("{p}k"), "v").lease(0x7ead_beef),
    )
    .await;
    refused_once(
        &calls,
        ServerErrorKind::LeaseNotFound,
        kv.txn().then([Op::from(
            etcd3::kv::Put::new(format!("{p}k"), "v").lease(0x7ead_beef),
        )]),
    )
    .await;
    assert!(
        kv.get(format!("{p}k")).await.unwrap().kvs().is_empty(),
        "nothing was written"
    );
    still_works(&kv, &p).await;
}

#[tokio::test]
async fn eight_mebibyte_range_succeeds() {
    // gRPC clients commonly refuse responses over 4 MiB; ours has no such ceiling.
    let (kv, _calls, _client) = counted_kv(&shared_server().client_url()).await;
    let p = unique_prefix("big_range");
    let value = vec![b'v'; 1024 * 1024];
    for i in 0..8 {
        kv.put(format!("{p}{i}"), value.clone()).await.unwrap();
    }
    let resp = tokio::time::timeout(Duration::from_secs(30), kv.get(&p).prefix())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.kvs().len(), 8);
    let total: usize = resp.kvs().iter().map(|kv| kv.value().len()).sum();
    assert_eq!(total, 8 * 1024 * 1024);
}
