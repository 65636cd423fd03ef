//! The KV client over an in-process gRPC server: a tonic server implementing etcd's KV
//! service on a small in-memory map, reached through an in-memory duplex pipe. No sockets,
//! no etcd: this proves the core needs nothing but a gRPC transport.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use etcd_core::Kv;
use etcd_core::grpc::GrpcKv;
use etcd_proto::etcdserverpb as pb;
use etcd_proto::mvccpb::KeyValue;
use pb::kv_server::{Kv as KvServerTrait, KvServer};
use tonic::{Request, Response, Status};

/// A toy KV store: enough of etcd's semantics for single keys and ranges.
#[derive(Default)]
struct MemoryKv {
    state: Mutex<(i64, BTreeMap<Bytes, KeyValue>)>,
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else {
        key >= start && (end == b"\0" || key < end)
    }
}

fn header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

#[tonic::async_trait]
impl KvServerTrait for MemoryKv {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = req.into_inner();
        let state = self.state.lock().unwrap();
        let kvs: Vec<KeyValue> = state
            .1
            .values()
            .filter(|kv| in_range(&kv.key, &r.key, &r.range_end))
            .cloned()
            .collect();
        let count = kvs.len() as i64;
        Ok(Response::new(pb::RangeResponse {
            header: header(state.0),
            kvs,
            more: false,
            count,
        }))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let r = req.into_inner();
        if r.key.is_empty() {
            return Err(Status::invalid_argument("etcdserver: key is not provided"));
        }
        let mut state = self.state.lock().unwrap();
        state.0 += 1;
        let revision = state.0;
        let prev = state.1.get(&r.key).cloned();
        let kv = KeyValue {
            key: r.key.clone(),
            value: r.value,
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease: r.lease,
        };
        state.1.insert(r.key, kv);
        Ok(Response::new(pb::PutResponse {
            header: header(revision),
            prev_kv: prev.filter(|_| r.prev_kv),
        }))
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let r = req.into_inner();
        let mut state = self.state.lock().unwrap();
        let doomed: Vec<Bytes> = state
            .1
            .keys()
            .filter(|k| in_range(k, &r.key, &r.range_end))
            .cloned()
            .collect();
        if !doomed.is_empty() {
            state.0 += 1;
        }
        let prev_kvs: Vec<KeyValue> = doomed.iter().filter_map(|k| state.1.remove(k)).collect();
        Ok(Response::new(pb::DeleteRangeResponse {
            header: header(state.0),
            deleted: prev_kvs.len() as i64,
            prev_kvs: if r.prev_kv { prev_kvs } else { Vec::new() },
        }))
    }

    async fn txn(&self, _: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        Err(Status::unimplemented(
            "transactions are not part of this toy",
        ))
    }

    async fn compact(
        &self,
        _: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        Err(Status::unimplemented("compaction is not part of this toy"))
    }
}

/// Serves `MemoryKv` over an in-memory pipe and returns a channel connected to it.
async fn in_memory_channel() -> tonic::transport::Channel {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(KvServer::new(MemoryKv::default()))
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io)))
            .await
    });
    let mut client_io = Some(client_io);
    tonic::transport::Endpoint::from_static("http://in-memory")
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client_io.take().expect("one connection");
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(io)) }
        }))
        .await
        .unwrap()
}

#[tokio::test]
async fn kv_works_over_an_in_memory_server() {
    let kv = Kv::new(GrpcKv::new(in_memory_channel().await));
    let first = kv.put("a/1", "one").await.unwrap();
    kv.put("a/2", "two").await.unwrap();
    let second = kv.put("a/1", "uno").prev_kv().await.unwrap();
    assert_eq!(second.prev_kv().unwrap().value(), b"one");

    let got = kv.get("a/").prefix().await.unwrap();
    let values: Vec<_> = got.kvs().iter().map(|kv| kv.value_str().unwrap()).collect();
    assert_eq!(values, ["uno", "two"]);
    assert_eq!(got.first().unwrap().create_revision(), first.revision());
    assert_eq!(got.first().unwrap().version(), 2);

    assert_eq!(kv.delete("a/").prefix().await.unwrap().deleted(), 2);
    assert_eq!(kv.get("a/").prefix().count_only().await.unwrap().count(), 0);

    // Server errors are classified the same way as etcd's.
    let unimplemented = kv.txn().await.unwrap_err();
    assert_eq!(
        unimplemented.server_kind(),
        Some(etcd_core::ServerErrorKind::Other)
    );
}
