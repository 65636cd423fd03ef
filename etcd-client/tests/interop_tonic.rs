//! Interop with a gRPC server that is not etcd: tonic's (hyper and h2) in-process, serving
//! etcd's KV, Watch, Lease and Maintenance services from a small in-memory store.
//!
//! Every scenario runs through the public [`Client`], built as a user would against
//! `http://127.0.0.1:PORT`, over our own HTTP/2 (`builtin`) and over tonic's channel
//! (`tonic`) for contrast: unary calls, a server stream (snapshot), bidirectional streams
//! (watch, lease keep-alive), 8 MiB messages, 500 calls over a connection that allows 10
//! streams at a time, and a server that shuts down gracefully (GOAWAY) with calls in flight
//! and comes back on the same port. The scenarios of calls and streams (all but the two of
//! stream limits and backoff) also run with the server serving TLS (`builtin_tls`,
//! `tonic_tls`): rustls and hyper on the server's side.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use etcd3::RetryPolicy;
use etcd3::kv::{Compare, Op, OpResponse};
use etcd3::proto::etcdserverpb as pb;
use etcd3::proto::mvccpb;
use etcd3::{Applied, Client, Error, Http2Transport};
use futures_util::StreamExt;
use pb::kv_server::{Kv, KvServer};
use pb::lease_server::{Lease, LeaseServer};
use pb::maintenance_server::{Maintenance, MaintenanceServer};
use pb::watch_server::{Watch, WatchServer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// Messages up to this size pass both ways (etcd's client limit is larger than tonic's
/// 4 MiB default too).
const MAX_MESSAGE: usize = 16 << 20;
/// Keys under this prefix are answered after [`Store::slow`].
const SLOW: &[u8] = b"slow/";

// ---------------------------------------------------------------------------------------
// The server: an in-memory store behind etcd's services.

/// An in-memory key-value store with a revision counter, watch events and leases.
struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<mvccpb::Event>,
    /// How long ranges under [`SLOW`] take.
    slow: Duration,
    /// Ranges under [`SLOW`] being served now, and the most at once.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Keep-alive requests received.
    keep_alives: AtomicUsize,
    /// Puts received, and how many of the next ones are refused as etcd refuses writes
    /// when its applied index trails its committed one by too much.
    puts: AtomicUsize,
    busy: AtomicUsize,
    next_lease: AtomicI64,
    /// The snapshot's data (without its sha256 trailer).
    snapshot: Bytes,
}

#[derive(Default)]
struct State {
    revision: i64,
    kvs: BTreeMap<Bytes, mvccpb::KeyValue>,
    leases: BTreeMap<i64, i64>,
}

impl Store {
    fn new(slow: Duration) -> Arc<Self> {
        let snapshot: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        Arc::new(Self {
            state: Mutex::new(State {
                revision: 1,
                ..State::default()
            }),
            events: broadcast::channel(1024).0,
            slow,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            keep_alives: AtomicUsize::new(0),
            puts: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            next_lease: AtomicI64::new(1000),
            snapshot: snapshot.into(),
        })
    }

    fn header(revision: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: 1,
            member_id: 1,
            revision,
            raft_term: 1,
        })
    }
}

impl State {
    fn keys(&self, key: &[u8], range_end: &[u8]) -> Vec<Bytes> {
        self.kvs
            .keys()
            .filter(|k| in_range(k, key, range_end))
            .cloned()
            .collect()
    }

    fn range(&self, request: &pb::RangeRequest) -> pb::RangeResponse {
        let kvs: Vec<_> = self
            .keys(&request.key, &request.range_end)
            .iter()
            .map(|k| self.kvs[k].clone())
            .collect();
        pb::RangeResponse {
            header: Store::header(self.revision),
            count: kvs.len() as i64,
            kvs: if request.count_only { Vec::new() } else { kvs },
            more: false,
        }
    }

    fn put(
        &mut self,
        request: pb::PutRequest,
        events: &broadcast::Sender<mvccpb::Event>,
    ) -> pb::PutResponse {
        self.revision += 1;
        let previous = self.kvs.get(&request.key).cloned();
        let kv = mvccpb::KeyValue {
            key: request.key.clone(),
            create_revision: previous
                .as_ref()
                .map_or(self.revision, |p| p.create_revision),
            mod_revision: self.revision,
            version: previous.as_ref().map_or(0, |p| p.version) + 1,
            value: request.value,
            lease: request.lease,
        };
        self.kvs.insert(request.key, kv.clone());
        let _ = events.send(mvccpb::Event {
            r#type: mvccpb::event::EventType::Put as i32,
            kv: Some(kv),
            prev_kv: None,
        });
        pb::PutResponse {
            header: Store::header(self.revision),
            prev_kv: previous.filter(|_| request.prev_kv),
        }
    }

    fn delete(&mut self, request: &pb::DeleteRangeRequest) -> pb::DeleteRangeResponse {
        let keys = self.keys(&request.key, &request.range_end);
        if !keys.is_empty() {
            self.revision += 1;
        }
        let prev_kvs: Vec<_> = keys.iter().filter_map(|k| self.kvs.remove(k)).collect();
        pb::DeleteRangeResponse {
            header: Store::header(self.revision),
            deleted: prev_kvs.len() as i64,
            prev_kvs: if request.prev_kv {
                prev_kvs
            } else {
                Vec::new()
            },
        }
    }

    /// Value and version compares (all this test's transactions use).
    fn holds(&self, compare: &pb::Compare) -> Result<bool, Status> {
        use pb::compare::{CompareResult, TargetUnion};
        let kv = self.kvs.get(&compare.key);
        let ordering = match &compare.target_union {
            Some(TargetUnion::Version(v)) => kv.map_or(0, |kv| kv.version).cmp(v),
            Some(TargetUnion::Value(v)) => match kv {
                Some(kv) => kv.value.cmp(v),
                None => return Ok(false),
            },
            _ => return Err(Status::unimplemented("compare target")),
        };
        Ok(match CompareResult::try_from(compare.result) {
            Ok(CompareResult::Equal) => ordering.is_eq(),
            Ok(CompareResult::Greater) => ordering.is_gt(),
            Ok(CompareResult::Less) => ordering.is_lt(),
            Ok(CompareResult::NotEqual) => ordering.is_ne(),
            Err(_) => return Err(Status::invalid_argument("compare result")),
        })
    }
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        end => key >= start && key < end,
    }
}

type ServerStream<T> = Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

/// Store handle the services share.
#[derive(Clone)]
struct Shared(Arc<Store>);

/// Implements one of etcd's services for [`Shared`]: the methods listed as
/// `name(Request) -> Response` answer `unimplemented` (this test does not use them), the
/// items after them are the service's own.
macro_rules! service {
    ($service:ident { $($method:ident($request:ident) -> $response:ident;)* } $($items:tt)*) => {
        #[tonic::async_trait]
        impl $service for Shared {
            $(
                async fn $method(
                    &self,
                    _: Request<pb::$request>,
                ) -> Result<Response<pb::$response>, Status> {
                    Err(Status::unimplemented(stringify!($method)))
                }
            )*
            $($items)*
        }
    };
}

service! {
    Kv {
        compact(CompactionRequest) -> CompactionResponse;
    }
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let request = request.into_inner();
        if request.key.starts_with(SLOW) {
            let now = self.0.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.0.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.0.slow).await;
            self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(Response::new(self.0.state.lock().unwrap().range(&request)))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        self.0.puts.fetch_add(1, Ordering::SeqCst);
        let busy = self.0.busy.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if busy.is_ok() {
            // etcd's wire form: code Unknown, its message (rejected before proposal).
            return Err(Status::unknown("etcdserver: too many requests"));
        }
        let mut state = self.0.state.lock().unwrap();
        Ok(Response::new(
            state.put(request.into_inner(), &self.0.events),
        ))
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        Ok(Response::new(
            self.0.state.lock().unwrap().delete(request.get_ref()),
        ))
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        use pb::request_op::Request as Req;
        use pb::response_op::Response as Resp;
        let request = request.into_inner();
        let mut state = self.0.state.lock().unwrap();
        let mut succeeded = true;
        for compare in &request.compare {
            succeeded &= state.holds(compare)?;
        }
        let ops = if succeeded {
            request.success
        } else {
            request.failure
        };
        let mut responses = Vec::new();
        for op in ops {
            let response = match op.request {
                Some(Req::RequestRange(r)) => Resp::ResponseRange(state.range(&r)),
                Some(Req::RequestPut(p)) => Resp::ResponsePut(state.put(p, &self.0.events)),
                Some(Req::RequestDeleteRange(d)) => Resp::ResponseDeleteRange(state.delete(&d)),
                _ => return Err(Status::unimplemented("nested transactions")),
            };
            responses.push(pb::ResponseOp {
                response: Some(response),
            });
        }
        Ok(Response::new(pb::TxnResponse {
            header: Store::header(state.revision),
            succeeded,
            responses,
        }))
    }
}

#[tonic::async_trait]
impl Watch for Shared {
    type WatchStream = ServerStream<pb::WatchResponse>;

    /// Creates watches as asked, and sends every later event of their range.
    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        use pb::watch_request::RequestUnion;
        let mut requests = request.into_inner();
        let mut events = self.0.events.subscribe();
        let store = self.0.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // (watch ID, key, range end)
            let mut watches: Vec<(i64, Bytes, Bytes)> = Vec::new();
            let mut next_id = 0;
            loop {
                let response = tokio::select! {
                    request = requests.next() => match request {
                        Some(Ok(pb::WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) })) => {
                            next_id += 1;
                            watches.push((next_id, create.key, create.range_end));
                            pb::WatchResponse {
                                header: Store::header(store.state.lock().unwrap().revision),
                                watch_id: next_id,
                                created: true,
                                ..Default::default()
                            }
                        }
                        Some(Ok(pb::WatchRequest { request_union: Some(RequestUnion::CancelRequest(cancel)) })) => {
                            watches.retain(|(id, ..)| *id != cancel.watch_id);
                            pb::WatchResponse {
                                header: Store::header(store.state.lock().unwrap().revision),
                                watch_id: cancel.watch_id,
                                canceled: true,
                                ..Default::default()
                            }
                        }
                        Some(Ok(_)) => pb::WatchResponse {
                            header: Store::header(store.state.lock().unwrap().revision),
                            watch_id: -1,
                            ..Default::default()
                        },
                        Some(Err(_)) | None => return,
                    },
                    event = events.recv() => {
                        let Ok(event) = event else { return };
                        let kv = event.kv.as_ref().expect("events carry their kv");
                        for (id, key, end) in &watches {
                            if in_range(&kv.key, key, end) {
                                let response = pb::WatchResponse {
                                    header: Store::header(kv.mod_revision),
                                    watch_id: *id,
                                    events: vec![event.clone()],
                                    ..Default::default()
                                };
                                if tx.send(Ok(response)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        continue;
                    }
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

service! {
    Lease {
        lease_revoke(LeaseRevokeRequest) -> LeaseRevokeResponse;
        lease_time_to_live(LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse;
        lease_leases(LeaseLeasesRequest) -> LeaseLeasesResponse;
    }
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        let id = match request.id {
            0 => self.0.next_lease.fetch_add(1, Ordering::SeqCst),
            id => id,
        };
        let mut state = self.0.state.lock().unwrap();
        state.leases.insert(id, request.ttl);
        Ok(Response::new(pb::LeaseGrantResponse {
            header: Store::header(state.revision),
            id,
            ttl: request.ttl,
            error: String::new(),
        }))
    }

    type LeaseKeepAliveStream = ServerStream<pb::LeaseKeepAliveResponse>;

    /// Answers each renewal with the lease's TTL (0 for an unknown lease, as etcd does).
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let store = self.0.clone();
        let replies = request.into_inner().map(move |request| {
            let request = request?;
            store.keep_alives.fetch_add(1, Ordering::SeqCst);
            let state = store.state.lock().unwrap();
            Ok(pb::LeaseKeepAliveResponse {
                header: Store::header(state.revision),
                id: request.id,
                ttl: state.leases.get(&request.id).copied().unwrap_or(0),
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

service! {
    Maintenance {
        alarm(AlarmRequest) -> AlarmResponse;
        status(StatusRequest) -> StatusResponse;
        defragment(DefragmentRequest) -> DefragmentResponse;
        hash(HashRequest) -> HashResponse;
        hash_kv(HashKvRequest) -> HashKvResponse;
        move_leader(MoveLeaderRequest) -> MoveLeaderResponse;
        downgrade(DowngradeRequest) -> DowngradeResponse;
    }

    type SnapshotStream = ServerStream<pb::SnapshotResponse>;

    /// The snapshot in 1 MiB chunks, then etcd's sha256 trailer in a message of its own.
    async fn snapshot(
        &self,
        _: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let data = self.0.snapshot.clone();
        let trailer = Bytes::copy_from_slice(&Sha256::digest(&data));
        let total = (data.len() + trailer.len()) as u64;
        let mut blobs: Vec<Bytes> = (0..data.len())
            .step_by(1 << 20)
            .map(|at| data.slice(at..data.len().min(at + (1 << 20))))
            .collect();
        blobs.push(trailer);
        let mut sent = 0u64;
        let messages = blobs.into_iter().map(move |blob| {
            sent += blob.len() as u64;
            Ok(pb::SnapshotResponse {
                header: Store::header(1),
                remaining_bytes: total - sent,
                blob,
            })
        });
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            messages,
        ))))
    }
}

/// How a scenario runs: which HTTP/2 the client uses, and whether the server serves TLS.
#[derive(Clone, Copy, Debug)]
struct Mode {
    transport: Http2Transport,
    tls: bool,
}

/// A running tonic server.
struct Server {
    address: SocketAddr,
    store: Arc<Store>,
    shutdown: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    /// The server's certificates, when it serves TLS.
    pki: Option<tls::Pki>,
}

impl Server {
    /// Serves `store` on a free loopback port, over TLS if `mode` says so.
    async fn start(store: Arc<Store>, mode: Mode) -> Self {
        let pki = mode.tls.then(tls::Pki::new);
        Self::start_on(store, "127.0.0.1:0".parse().unwrap(), pki).await
    }

    /// Serves `store` on `address` (at most 10 streams at a time per connection), over TLS
    /// with `pki`'s certificate if given.
    async fn start_on(store: Arc<Store>, address: SocketAddr, pki: Option<tls::Pki>) -> Self {
        let listener = TcpListener::bind(address).await.expect("bind");
        let address = listener.local_addr().unwrap();
        let shared = Shared(store.clone());
        let (shutdown, signal) = oneshot::channel::<()>();
        let mut builder = tonic::transport::Server::builder();
        if let Some(pki) = &pki {
            pki.serve(&mut builder);
        }
        let router = builder
            .max_concurrent_streams(10)
            .add_service(
                KvServer::new(shared.clone())
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            )
            .add_service(WatchServer::new(shared.clone()))
            .add_service(LeaseServer::new(shared.clone()))
            .add_service(MaintenanceServer::new(shared));
        let done = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = signal.await;
                })
                .await
                .expect("the server failed");
        });
        Self {
            address,
            store,
            shutdown: Some(shutdown),
            done,
            pki,
        }
    }

    fn url(&self) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// Graceful shutdown: GOAWAY to every connection, which closes once its calls are done.
    fn shut_down(&mut self) {
        let _ = self.shutdown.take().expect("running").send(());
    }
}

/// A builder for a client of `server` as `mode` says (trusting the server's CA over TLS).
fn builder(server: &Server, mode: Mode) -> etcd3::ClientBuilder {
    let builder = Client::builder([server.url()]).http2_transport(mode.transport);
    match &server.pki {
        #[cfg(feature = "tls")]
        Some(pki) => builder.tls(etcd3::Tls::new().ca_pem(pki.ca.clone())),
        _ => builder,
    }
}

async fn client(server: &Server, mode: Mode) -> Client {
    builder(server, mode)
        .retry_policy(RetryPolicy::never())
        .connect()
        .await
        .expect("client")
}

/// Every scenario, once per transport; with `tls:`, once per transport over TLS too.
macro_rules! over_both_transports {
    (@tests $scenario:ident, $tls:expr) => {
        #[cfg(feature = "builtin-http2")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn builtin() {
            let mode = super::Mode { transport: etcd3::Http2Transport::Builtin, tls: false };
            super::$scenario(mode).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn tonic() {
            let mode = super::Mode { transport: etcd3::Http2Transport::Tonic, tls: false };
            super::$scenario(mode).await;
        }
    };
    (tls: $($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                over_both_transports!(@tests $scenario, false);

                #[cfg(all(feature = "builtin-http2", feature = "tls"))]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn builtin_tls() {
                    let mode = super::Mode { transport: etcd3::Http2Transport::Builtin, tls: true };
                    super::$scenario(mode).await;
                }

                #[cfg(feature = "tls")]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn tonic_tls() {
                    let mode = super::Mode { transport: etcd3::Http2Transport::Tonic, tls: true };
                    super::$scenario(mode).await;
                }
            }
        )*
    };
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                over_both_transports!(@tests $scenario, false);
            }
        )*
    };
}

/// The server's side of TLS: a throwaway CA and a certificate for 127.0.0.1.
mod tls {
    /// A CA and a server certificate it signed (PEM), kept so that a server restarted on
    /// the same port presents the same certificate.
    #[derive(Clone)]
    pub(super) struct Pki {
        pub(super) ca: String,
        cert: String,
        key: String,
    }

    impl Pki {
        pub(super) fn new() -> Self {
            use rcgen::{
                BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair,
                KeyUsagePurpose,
            };
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            Self {
                ca: ca.pem(),
                cert: cert.pem(),
                key: key.serialize_pem(),
            }
        }

        /// Sets `builder` up to serve TLS with this certificate.
        #[cfg(feature = "tls")]
        pub(super) fn serve(&self, builder: &mut tonic::transport::Server) {
            let identity = tonic::transport::Identity::from_pem(&self.cert, &self.key);
            let taken = std::mem::take(builder);
            *builder = taken
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .expect("the server's TLS settings");
        }

        /// Without TLS support, no scenario asks for it.
        #[cfg(not(feature = "tls"))]
        pub(super) fn serve(&self, _: &mut tonic::transport::Server) {
            unreachable!(
                "TLS scenarios need the tls feature ({} bytes of certificates)",
                self.ca.len() + self.cert.len() + self.key.len()
            )
        }
    }
}

over_both_transports!(
    tls: unary_calls,
    eight_mebibyte_messages,
    snapshot_server_stream,
    watch_bidi_stream,
    lease_keep_alive_bidi_stream,
    graceful_shutdown_with_calls_in_flight,
);

over_both_transports!(
    many_concurrent_calls_queue_for_streams,
    too_many_requests_is_retried_with_backoff,
);

// ---------------------------------------------------------------------------------------
// The scenarios.

async fn unary_calls(mode: Mode) {
    let server = Server::start(Store::new(Duration::ZERO), mode).await;
    let client = client(&server, mode).await;
    let kv = client.kv();
    let first = kv.put("a/1", "one").await.unwrap().revision();
    kv.put("a/2", "two").await.unwrap();
    kv.put("b", "bee").await.unwrap();
    let replaced = kv.put("a/1", "uno").prev_kv().await.unwrap();
    assert_eq!(replaced.revision(), first + 3);
    assert_eq!(replaced.prev_kv().unwrap().value(), b"one");

    let prefix = kv.get("a/").prefix().await.unwrap();
    let pairs: Vec<_> = prefix
        .kvs()
        .iter()
        .map(|kv| (kv.key(), kv.value()))
        .collect();
    assert_eq!(pairs, [(&b"a/1"[..], &b"uno"[..]), (b"a/2", b"two")]);
    assert_eq!(prefix.kvs()[0].version(), 2);
    assert_eq!(kv.get("b").await.unwrap().value(), Some(&b"bee"[..]));
    assert_eq!(kv.get("c").await.unwrap().value(), None);

    let claim = || {
        kv.txn()
            .when([Compare::version("leader").eq(0)])
            .then([Op::put("leader", "me")])
            .otherwise([Op::get("leader")])
    };
    assert!(claim().await.unwrap().succeeded());
    let lost = claim().await.unwrap();
    assert!(!lost.succeeded());
    match &lost.responses()[0] {
        OpResponse::Get(get) => assert_eq!(get.value(), Some(&b"me"[..])),
        other => panic!("expected a get, got {other:?}"),
    }

    assert_eq!(kv.delete("a/").prefix().await.unwrap().deleted(), 2);
    assert_eq!(kv.get("a/").prefix().await.unwrap().count(), 0);
}

async fn eight_mebibyte_messages(mode: Mode) {
    let server = Server::start(Store::new(Duration::ZERO), mode).await;
    let client = client(&server, mode).await;
    let value: Bytes = (0..8u32 << 20)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<_>>()
        .into();
    client.kv().put("big", value.clone()).await.unwrap();
    // Twice, so that the connection is known to be fine after the first.
    for _ in 0..2 {
        let got = client.kv().get("big").await.unwrap();
        assert_eq!(got.value().map(<[u8]>::len), Some(value.len()));
        assert!(
            got.value() == Some(&value[..]),
            "the value came back different"
        );
    }
}

async fn snapshot_server_stream(mode: Mode) {
    let server = Server::start(Store::new(Duration::ZERO), mode).await;
    let client = client(&server, mode).await;
    let mut snapshot = client.maintenance().snapshot().await.unwrap();
    let mut received = Sha256::new();
    let mut chunks = 0;
    while let Some(chunk) = snapshot.next().await {
        received.update(chunk.expect("chunk"));
        chunks += 1;
    }
    let info = snapshot.info().expect("the trailer verified");
    assert_eq!(info.size(), server.store.snapshot.len() as u64);
    let expected: [u8; 32] = Sha256::digest(&server.store.snapshot).into();
    assert_eq!(info.sha256(), &expected);
    assert_eq!(<[u8; 32]>::from(received.finalize()), expected);
    assert!(chunks >= 8, "{chunks} chunks");
}

async fn watch_bidi_stream(mode: Mode) {
    let server = Server::start(Store::new(Duration::ZERO), mode).await;
    let client = client(&server, mode).await;
    client.kv().put("w/before", "0").await.unwrap();
    let mut prefix = client.watch("w/").prefix().await.unwrap();
    let mut single = client.watch("w/b").await.unwrap();
    let mut revisions = Vec::new();
    for (key, value) in [("w/a", "1"), ("w/b", "2"), ("x", "3"), ("w/a", "4")] {
        revisions.push(client.kv().put(key, value).await.unwrap().revision());
    }
    let expected = [
        (b"w/a".to_vec(), b"1".to_vec(), revisions[0]),
        (b"w/b".to_vec(), b"2".to_vec(), revisions[1]),
        (b"w/a".to_vec(), b"4".to_vec(), revisions[3]),
    ];
    assert_eq!(events(&mut prefix, 3).await, expected);
    assert_eq!(events(&mut single, 1).await, expected[1..2]);
}

/// The next `count` events of a watch as (key, value, revision), within 5 s.
async fn events<S, E>(stream: &mut S, count: usize) -> Vec<(Vec<u8>, Vec<u8>, i64)>
where
    S: futures_util::Stream<Item = Result<etcd3::watch::WatchResponse, E>> + Unpin,
    E: std::fmt::Debug,
{
    let mut seen = Vec::new();
    while seen.len() < count {
        let response = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("no event in time")
            .expect("the watch ended")
            .expect("watch error");
        for event in response.events() {
            let kv = event.kv();
            seen.push((kv.key().to_vec(), kv.value().to_vec(), event.revision()));
        }
    }
    seen
}

async fn lease_keep_alive_bidi_stream(mode: Mode) {
    let server = Server::start(Store::new(Duration::ZERO), mode).await;
    let client = client(&server, mode).await;
    let lease = client.lease().grant(Duration::from_secs(30)).await.unwrap();
    assert_eq!(lease.ttl(), Duration::from_secs(30));
    let chosen = client
        .lease()
        .grant(Duration::from_secs(60))
        .id(7)
        .await
        .unwrap();
    assert_eq!(chosen.id(), 7);

    // Many renewals at once over the client's one keep-alive stream.
    let renewals: Vec<_> = (0..50)
        .map(|i| {
            client
                .lease()
                .keep_alive_once(if i % 2 == 0 { lease.id() } else { 7 })
        })
        .collect();
    for (i, renewal) in futures_util::future::join_all(renewals)
        .await
        .into_iter()
        .enumerate()
    {
        let renewal = renewal.unwrap();
        let (id, ttl) = if i % 2 == 0 {
            (lease.id(), 30)
        } else {
            (7, 60)
        };
        assert_eq!(
            (renewal.id(), renewal.ttl()),
            (id, Duration::from_secs(ttl))
        );
    }
    // etcd answers an unknown lease with a TTL of 0.
    let unknown = client.lease().keep_alive_once(99).await;
    assert!(unknown.is_err(), "{unknown:?}");

    // A keeper renews on its interval over the same stream.
    let before = server.store.keep_alives.load(Ordering::SeqCst);
    let keeper = client
        .lease()
        .keep_alive(lease.id())
        .every(Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(keeper.ttl(), Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let renewed = server.store.keep_alives.load(Ordering::SeqCst) - before;
    assert!((3..=10).contains(&renewed), "{renewed} renewals in 450 ms");
}

async fn many_concurrent_calls_queue_for_streams(mode: Mode) {
    let server = Server::start(Store::new(Duration::from_millis(20)), mode).await;
    let client = client(&server, mode).await;
    for i in 0..500 {
        client
            .kv()
            .put(format!("slow/{i}"), format!("v{i}"))
            .await
            .unwrap();
    }
    let calls = (0..500).map(|i| {
        let kv = client.kv().clone();
        tokio::spawn(async move { (i, kv.get(format!("slow/{i}")).await) })
    });
    let results = futures_util::future::join_all(calls).await;
    for result in results {
        let (i, got) = result.expect("task");
        let got = got.unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(got.value(), Some(format!("v{i}").as_bytes()));
    }
    let most = server.store.most_in_flight.load(Ordering::SeqCst);
    // The server allows 10 streams: the calls queued for them, and used them.
    assert!((5..=10).contains(&most), "{most} calls at once");
}

async fn graceful_shutdown_with_calls_in_flight(mode: Mode) {
    let store = Store::new(Duration::from_millis(400));
    let mut server = Server::start(store.clone(), mode).await;
    let client = client(&server, mode).await;
    client.kv().put("slow/k", "old").await.unwrap();

    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let kv = client.kv().clone();
            tokio::spawn(async move { kv.get("slow/k").await })
        })
        .collect();
    while store.in_flight.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shut_down();
    // Once GOAWAY is in (and the listener closed), a new call does not go on the old
    // connection: it fails as never sent while the calls in flight go on.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(store.in_flight.load(Ordering::SeqCst), 5);
    match client.kv().get("k").await {
        Err(Error::Transport {
            applied: Applied::No,
            ..
        }) => {}
        other => panic!("expected a transport error that did not apply, got {other:?}"),
    }
    // The calls in flight when GOAWAY went out complete.
    for call in in_flight {
        let got = call.await.expect("task").expect("an in-flight call failed");
        assert_eq!(got.value(), Some(&b"old"[..]));
    }
    tokio::time::timeout(Duration::from_secs(5), &mut server.done)
        .await
        .expect("the server did not stop")
        .unwrap();

    // Nobody listens: a new call fails as never sent.
    match client.kv().get("k").await {
        Err(Error::Transport {
            applied: Applied::No,
            ..
        }) => {}
        other => panic!("expected a transport error that did not apply, got {other:?}"),
    }

    // A new server on the same port gets the next call.
    let store = Store::new(Duration::ZERO);
    let server = Server::start_on(store, server.address, server.pki.clone()).await;
    client.kv().put("k", "new").await.unwrap();
    assert_eq!(
        client.kv().get("k").await.unwrap().value(),
        Some(&b"new"[..])
    );
    drop(server);
}

/// E4: etcd refuses a write with `too many requests` before proposing it. Through `Client`
/// with its default retry policy: the refusal is typed `TooManyRequests`, certainly not
/// applied, and retried with backoff, so a put refused twice succeeds once; a put refused
/// every time ends after the policy's retries with the typed error.
async fn too_many_requests_is_retried_with_backoff(mode: Mode) {
    let server = Server::start(Store::new(Duration::ZERO), mode).await;
    let client = builder(&server, mode).connect().await.expect("client");
    let kv = client.kv();
    let before = kv.put("busy/k", "0").await.unwrap().revision();

    server.store.busy.store(2, Ordering::SeqCst);
    let sent = server.store.puts.load(Ordering::SeqCst);
    let put = kv
        .put("busy/k", "1")
        .await
        .expect("retried past the refusals");
    assert_eq!(put.revision(), before + 1, "applied once");
    assert_eq!(server.store.puts.load(Ordering::SeqCst) - sent, 3);

    let policy = RetryPolicy::default();
    server.store.busy.store(usize::MAX, Ordering::SeqCst);
    let sent = server.store.puts.load(Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let error = kv.put("busy/k", "2").await.expect_err("refused every time");
    let (tries, took) = (
        server.store.puts.load(Ordering::SeqCst) - sent,
        started.elapsed(),
    );
    assert_eq!(
        error.server_kind(),
        Some(etcd3::ServerErrorKind::TooManyRequests),
        "{error:?}"
    );
    assert_eq!(error.applied(), Applied::No, "{error:?}");
    assert_eq!(tries, 1 + policy.max_retries as usize, "{error:?}");
    assert!(
        took >= policy.initial_backoff * policy.max_retries,
        "{tries} tries in {took:?}: no backoff"
    );
    server.store.busy.store(0, Ordering::SeqCst);
    assert_eq!(kv.get("busy/k").await.unwrap().value(), Some(&b"1"[..]));
}
