use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_proto::etcdserverpb as pb;
use etcd_proto::mvccpb;
use futures_util::StreamExt;
use tower::ServiceExt;

use super::*;
use crate::stream::{RequestStream, ResponseStream};

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

/// etcd's `client/v3/namespace/util_test.go` cases, and the special forms around them.
#[test]
fn interval_mapping() {
    #[rustfmt::skip]
    type Case = (&'static [u8], &'static [u8], &'static [u8], &'static [u8], &'static [u8]);
    let cases: &[Case] = &[
        // prefix, key, range_end => key, range_end
        // single key
        (b"a/", b"a", b"", b"a/a", b""),
        // range
        (b"abc/", b"a", b"b", b"abc/a", b"abc/b"),
        // one-sided range: stops at the end of the namespace
        (b"abc/", b"/", b"\0", b"abc//", b"abc0"),
        // one-sided range, end of keyspace
        (b"\xff\xff", b"\xff\xff", b"\0", b"\xff\xff\xff\xff", b"\0"),
        // every key = every key of the namespace, starting at the prefix itself
        (b"abc/", b"\0", b"\0", b"abc/", b"abc0"),
        (b"a\xff", b"\0", b"\0", b"a\xff", b"b"),
        (b"\xff", b"\0", b"\0", b"\xff", b"\0"),
        (b"\xff", b"k", b"\0", b"\xffk", b"\0"),
        // a prefix range inside the namespace (Get::prefix of "x")
        (b"abc/", b"x", b"y", b"abc/x", b"abc/y"),
        // the single key "\0" is a key like any other
        (b"abc/", b"\0", b"", b"abc/\0", b""),
        // an empty key stays empty, so that the server refuses it as usual
        (b"abc/", b"", b"", b"", b""),
        (b"abc/", b"", b"b", b"", b"abc/b"),
        // an empty prefix changes nothing
        (b"", b"k", b"", b"k", b""),
        (b"", b"k", b"\0", b"k", b"\0"),
        (b"", b"\0", b"\0", b"\0", b"\0"),
        (b"", b"a", b"b", b"a", b"b"),
    ];
    for &(prefix, key, end, want_key, want_end) in cases {
        let ns = Prefix::new(prefix);
        let (k, e) = ns.range(&b(key), &b(end));
        assert_eq!(
            (&k[..], &e[..]),
            (want_key, want_end),
            "prefix {prefix:?}, key {key:?}, range_end {end:?}"
        );
    }
}

#[test]
fn prefix_end_and_membership() {
    let ns = Prefix::new("tenant/");
    assert_eq!(&ns.as_bytes()[..], b"tenant/");
    assert_eq!(&ns.end()[..], b"tenant0");
    assert!(ns.contains(b"tenant/x"));
    assert!(!ns.contains(b"tenant0"));
    assert!(!ns.is_empty());
    assert_eq!(&Prefix::new(&b"\xff\xff"[..]).end()[..], b"\0");
    assert!(Prefix::new("").is_empty());
}

#[test]
fn stripping_slices_without_copying() {
    let ns = Prefix::new("t/");
    let original = Bytes::from_static(b"t/key");
    let mut key = original.clone();
    assert!(ns.strip(&mut key));
    assert_eq!(&key[..], b"key");
    assert_eq!(key.as_ptr(), original[2..].as_ptr());

    let mut outside = Bytes::from_static(b"other/key");
    assert!(!ns.strip(&mut outside));
    assert_eq!(&outside[..], b"other/key");
}

fn put(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: key.to_owned().into(),
            value: "v".into(),
            ..Default::default()
        })),
    }
}

fn range(key: &[u8], end: &[u8]) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
            key: b(key),
            range_end: b(end),
            ..Default::default()
        })),
    }
}

fn delete(key: &[u8], end: &[u8]) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: b(key),
                range_end: b(end),
                ..Default::default()
            },
        )),
    }
}

fn compare(key: &[u8], end: &[u8]) -> pb::Compare {
    pb::Compare {
        key: b(key),
        range_end: b(end),
        target: pb::compare::CompareTarget::Version as i32,
        target_union: Some(pb::compare::TargetUnion::Version(0)),
        ..Default::default()
    }
}

#[test]
fn nested_transactions_are_prefixed_everywhere() {
    let inner = pb::TxnRequest {
        compare: vec![compare(b"c", b""), compare(b"\0", b"\0")],
        success: vec![put("p"), range(b"r", b"\0")],
        failure: vec![delete(b"d", b"e")],
    };
    let mut txn = pb::TxnRequest {
        compare: vec![
            compare(b"a", b""),
            compare(b"a", b"b"),
            compare(b"m", b"\0"),
        ],
        success: vec![
            put("x"),
            range(b"\0", b"\0"),
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestTxn(inner)),
            },
        ],
        failure: vec![delete(b"y", b""), range(b"k", b"l")],
    };
    txn.prefix_keys(&Prefix::new("ns/"));

    let compares: Vec<_> = txn
        .compare
        .iter()
        .map(|c| (c.key.clone(), c.range_end.clone()))
        .collect();
    assert_eq!(
        compares,
        [
            (b(b"ns/a"), b(b"")),
            (b(b"ns/a"), b(b"ns/b")),
            (b(b"ns/m"), b(b"ns0")),
        ]
    );
    assert_eq!(txn.success[0], put("ns/x"));
    assert_eq!(txn.success[1], range(b"ns/", b"ns0"));
    let Some(pb::request_op::Request::RequestTxn(nested)) = &txn.success[2].request else {
        panic!("nested txn lost: {:?}", txn.success[2]);
    };
    assert_eq!(nested.compare[0], compare(b"ns/c", b""));
    assert_eq!(nested.compare[1], compare(b"ns/", b"ns0"));
    assert_eq!(nested.success, [put("ns/p"), range(b"ns/r", b"ns0")]);
    assert_eq!(nested.failure, [delete(b"ns/d", b"ns/e")]);
    assert_eq!(txn.failure, [delete(b"ns/y", b""), range(b"ns/k", b"ns/l")]);
}

fn kv(key: &str) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: key.to_owned().into(),
        value: "v".into(),
        ..Default::default()
    }
}

#[test]
fn responses_lose_the_prefix() {
    let ns = Prefix::new("ns/");

    let mut range = pb::RangeResponse {
        kvs: vec![kv("ns/a"), kv("ns/b")],
        count: 2,
        ..Default::default()
    };
    range.strip_keys(&ns);
    assert_eq!(range.kvs, [kv("a"), kv("b")]);

    let mut put = pb::PutResponse {
        prev_kv: Some(kv("ns/a")),
        ..Default::default()
    };
    put.strip_keys(&ns);
    assert_eq!(put.prev_kv, Some(kv("a")));

    let mut delete = pb::DeleteRangeResponse {
        deleted: 2,
        prev_kvs: vec![kv("ns/a"), kv("ns/b")],
        ..Default::default()
    };
    delete.strip_keys(&ns);
    assert_eq!(delete.prev_kvs, [kv("a"), kv("b")]);

    use pb::response_op::Response;
    let nested = pb::TxnResponse {
        succeeded: true,
        responses: vec![pb::ResponseOp {
            response: Some(Response::ResponseRange(pb::RangeResponse {
                kvs: vec![kv("ns/n")],
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    let mut txn = pb::TxnResponse {
        succeeded: true,
        responses: vec![
            pb::ResponseOp {
                response: Some(Response::ResponseRange(pb::RangeResponse {
                    kvs: vec![kv("ns/r")],
                    ..Default::default()
                })),
            },
            pb::ResponseOp {
                response: Some(Response::ResponsePut(put_with_prev("ns/p"))),
            },
            pb::ResponseOp {
                response: Some(Response::ResponseDeleteRange(pb::DeleteRangeResponse {
                    prev_kvs: vec![kv("ns/d")],
                    ..Default::default()
                })),
            },
            pb::ResponseOp {
                response: Some(Response::ResponseTxn(nested)),
            },
        ],
        ..Default::default()
    };
    txn.strip_keys(&ns);
    let keys: Vec<Bytes> = txn.responses.iter().flat_map(op_keys).collect();
    assert_eq!(keys, [b(b"r"), b(b"p"), b(b"d"), b(b"n")]);
}

fn put_with_prev(key: &str) -> pb::PutResponse {
    pb::PutResponse {
        prev_kv: Some(kv(key)),
        ..Default::default()
    }
}

fn op_keys(op: &pb::ResponseOp) -> Vec<Bytes> {
    use pb::response_op::Response;
    match op.response.as_ref().unwrap() {
        Response::ResponseRange(r) => r.kvs.iter().map(|kv| kv.key.clone()).collect(),
        Response::ResponsePut(r) => r.prev_kv.iter().map(|kv| kv.key.clone()).collect(),
        Response::ResponseDeleteRange(r) => r.prev_kvs.iter().map(|kv| kv.key.clone()).collect(),
        Response::ResponseTxn(r) => r.responses.iter().flat_map(op_keys).collect(),
    }
}

#[test]
fn lease_time_to_live_lists_only_the_namespace() {
    let mut resp = pb::LeaseTimeToLiveResponse {
        id: 7,
        ttl: 10,
        keys: vec![b(b"ns/a"), b(b"other/b"), b(b"ns/c"), b(b"ns")],
        ..Default::default()
    };
    resp.strip_keys(&Prefix::new("ns/"));
    assert_eq!(resp.keys, [b(b"a"), b(b"c")]);
    assert_eq!((resp.id, resp.ttl), (7, 10));

    // Without a prefix, nothing is filtered.
    let mut resp = pb::LeaseTimeToLiveResponse {
        keys: vec![b(b"ns/a"), b(b"other/b")],
        ..Default::default()
    };
    resp.strip_keys(&Prefix::new(""));
    assert_eq!(resp.keys.len(), 2);
}

fn create(key: &[u8], end: &[u8]) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: b(key),
                range_end: b(end),
                start_revision: 5,
                prev_kv: true,
                watch_id: 3,
                ..Default::default()
            },
        )),
    }
}

#[tokio::test]
async fn watch_streams_are_rewritten_both_ways() {
    let seen: Arc<Mutex<Vec<pb::WatchRequest>>> = Arc::default();
    let recorded = Arc::clone(&seen);
    let server = tower::service_fn(move |requests: RequestStream<pb::WatchRequest>| {
        let recorded = Arc::clone(&recorded);
        async move {
            let requests: Vec<_> = requests.collect().await;
            recorded.lock().unwrap().extend(requests);
            let event = mvccpb::Event {
                r#type: mvccpb::event::EventType::Put as i32,
                kv: Some(kv("ns/a")),
                prev_kv: Some(kv("ns/a")),
            };
            let responses: ResponseStream<pb::WatchResponse> = futures_util::stream::iter([
                Ok(pb::WatchResponse {
                    watch_id: 3,
                    created: true,
                    ..Default::default()
                }),
                Ok(pb::WatchResponse {
                    watch_id: 3,
                    events: vec![event],
                    ..Default::default()
                }),
                Err(crate::Error::Protocol("broken".into())),
            ])
            .boxed();
            Ok::<_, crate::Error>(responses)
        }
    });
    let cancel = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
            pb::WatchCancelRequest { watch_id: 3 },
        )),
    };
    let progress = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
            pb::WatchProgressRequest {},
        )),
    };
    let requests: RequestStream<pb::WatchRequest> = futures_util::stream::iter([
        create(b"a", b""),
        create(b"\0", b"\0"),
        create(b"p", b"q"),
        progress.clone(),
        cancel.clone(),
    ])
    .boxed();
    let responses = Namespace::new(server, "ns/")
        .oneshot(requests)
        .await
        .unwrap();
    let responses: Vec<_> = responses.collect().await;

    assert_eq!(
        *seen.lock().unwrap(),
        [
            create(b"ns/a", b""),
            create(b"ns/", b"ns0"),
            create(b"ns/p", b"ns/q"),
            progress,
            cancel,
        ]
    );
    assert_eq!(responses.len(), 3);
    assert!(responses[0].as_ref().unwrap().created);
    let event = &responses[1].as_ref().unwrap().events[0];
    assert_eq!(event.kv, Some(kv("a")));
    assert_eq!(event.prev_kv, Some(kv("a")));
    assert!(responses[2].is_err());
}

/// A KV server that answers every call with the keys it received, prefix included.
#[derive(Clone, Default)]
struct Echo {
    requests: Arc<Mutex<Vec<String>>>,
}

impl Echo {
    fn record(&self, what: String) {
        self.requests.lock().unwrap().push(what);
    }
}

macro_rules! echo {
    ($req:ty => $resp:ty, |$this:ident, $r:ident| $body:expr) => {
        impl tower::Service<$req> for Echo {
            type Response = $resp;
            type Error = crate::Error;
            type Future = std::future::Ready<crate::Result<$resp>>;
            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<crate::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, $r: $req) -> Self::Future {
                let $this = &*self;
                std::future::ready(Ok($body))
            }
        }
    };
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

echo!(pb::RangeRequest => pb::RangeResponse, |this, r| {
    this.record(format!("range {} {}", text(&r.key), text(&r.range_end)));
    pb::RangeResponse {
        kvs: vec![mvccpb::KeyValue { key: r.key, ..Default::default() }],
        count: 1,
        ..Default::default()
    }
});
echo!(pb::PutRequest => pb::PutResponse, |this, r| {
    this.record(format!("put {}", text(&r.key)));
    pb::PutResponse {
        prev_kv: Some(mvccpb::KeyValue { key: r.key, ..Default::default() }),
        ..Default::default()
    }
});
echo!(pb::DeleteRangeRequest => pb::DeleteRangeResponse, |this, r| {
    this.record(format!("delete {} {}", text(&r.key), text(&r.range_end)));
    pb::DeleteRangeResponse {
        deleted: 1,
        prev_kvs: vec![mvccpb::KeyValue { key: r.key, ..Default::default() }],
        ..Default::default()
    }
});
echo!(pb::TxnRequest => pb::TxnResponse, |this, r| {
    this.record(format!("txn {}", r.compare.len()));
    pb::TxnResponse {
        succeeded: true,
        responses: r
            .success
            .into_iter()
            .map(|op| match op.request {
                Some(pb::request_op::Request::RequestRange(r)) => pb::ResponseOp {
                    response: Some(pb::response_op::Response::ResponseRange(pb::RangeResponse {
                        kvs: vec![mvccpb::KeyValue { key: r.key, ..Default::default() }],
                        ..Default::default()
                    })),
                },
                _ => pb::ResponseOp::default(),
            })
            .collect(),
        ..Default::default()
    }
});
echo!(pb::CompactionRequest => pb::CompactionResponse, |this, r| {
    this.record(format!("compact {}", r.revision));
    pb::CompactionResponse::default()
});

#[tokio::test]
async fn kv_handle_over_a_namespace() {
    let echo = Echo::default();
    let kv = crate::Kv::new(Namespace::new(echo.clone(), "ns/"));

    let got = kv.get("a").await.unwrap();
    assert_eq!(got.kvs()[0].key(), b"a");
    let all = kv.get("").prefix().await.unwrap();
    assert_eq!(all.kvs()[0].key(), b"");
    let put = kv.put("k", "v").prev_kv().await.unwrap();
    assert_eq!(put.prev_kv().unwrap().key(), b"k");
    let deleted = kv.delete("d").prefix().prev_kv().await.unwrap();
    assert_eq!(deleted.prev_kvs()[0].key(), b"d");
    let txn = kv
        .txn()
        .when([crate::kv::Compare::version("c").prefix().eq(0)])
        .then([crate::kv::Op::get("g")])
        .await
        .unwrap();
    assert!(txn.succeeded());
    kv.compact(5).await.unwrap();

    assert_eq!(
        *echo.requests.lock().unwrap(),
        [
            "range ns/a ",
            "range ns/ ns0",
            "put ns/k",
            "delete ns/d ns/e",
            "txn 1",
            "compact 5",
        ]
    );
}

#[test]
fn namespaced_services_keep_their_service_traits() {
    fn kv<S: crate::kv::KvService>() {}
    fn lease<S: crate::lease::LeaseService + crate::lease::LeaseKeepAliveService>() {}
    fn watch<S: crate::watch::WatchService>() {}
    type Channel = tonic::transport::Channel;
    kv::<Namespace<crate::grpc::GrpcKv<Channel>>>();
    lease::<Namespace<crate::grpc::GrpcLease<Channel>>>();
    watch::<Namespace<crate::grpc::GrpcWatch<Channel>>>();
    // Layers stack in either order.
    kv::<Namespace<tower::timeout::Timeout<crate::grpc::GrpcKv<Channel>>>>();
    kv::<tower::timeout::Timeout<Namespace<crate::grpc::GrpcKv<Channel>>>>();
}

#[test]
fn lock_and_election_keys_round_trip() {
    use etcd_proto::v3electionpb as election;
    use etcd_proto::v3lockpb as lock;
    let ns = Prefix::new("ns/");

    let mut req = lock::LockRequest {
        name: b(b"l"),
        lease: 1,
    };
    req.prefix_keys(&ns);
    assert_eq!(&req.name[..], b"ns/l");
    let mut resp = lock::LockResponse {
        key: b(b"ns/l/694d"),
        ..Default::default()
    };
    resp.strip_keys(&ns);
    assert_eq!(&resp.key[..], b"l/694d");
    let mut unlock = lock::UnlockRequest { key: resp.key };
    unlock.prefix_keys(&ns);
    assert_eq!(&unlock.key[..], b"ns/l/694d");

    let mut campaign = election::CampaignRequest {
        name: b(b"e"),
        lease: 1,
        value: b(b"me"),
    };
    campaign.prefix_keys(&ns);
    assert_eq!(
        (&campaign.name[..], &campaign.value[..]),
        (&b"ns/e"[..], &b"me"[..])
    );
    let mut resp = election::CampaignResponse {
        leader: Some(election::LeaderKey {
            name: b(b"ns/e"),
            key: b(b"ns/e/694d"),
            rev: 3,
            lease: 1,
        }),
        ..Default::default()
    };
    resp.strip_keys(&ns);
    let leader = resp.leader.unwrap();
    assert_eq!(
        (&leader.name[..], &leader.key[..]),
        (&b"e"[..], &b"e/694d"[..])
    );
    let mut proclaim = election::ProclaimRequest {
        leader: Some(leader.clone()),
        value: b(b"v"),
    };
    proclaim.prefix_keys(&ns);
    let mut resign = election::ResignRequest {
        leader: Some(leader),
    };
    resign.prefix_keys(&ns);
    for l in [proclaim.leader.unwrap(), resign.leader.unwrap()] {
        assert_eq!((&l.name[..], &l.key[..]), (&b"ns/e"[..], &b"ns/e/694d"[..]));
    }
    let mut leader = election::LeaderRequest { name: b(b"e") };
    leader.prefix_keys(&ns);
    assert_eq!(&leader.name[..], b"ns/e");
    let mut resp = election::LeaderResponse {
        kv: Some(kv("ns/e/694d")),
        ..Default::default()
    };
    resp.strip_keys(&ns);
    assert_eq!(resp.kv, Some(kv("e/694d")));
}
