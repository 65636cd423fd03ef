//! The KV service over gRPC.

use etcd_proto::etcdserverpb as pb;
use pb::kv_client::KvClient;

use super::{MAX_DECODING_MESSAGE_SIZE, unary_service};
use crate::transport::GrpcTransport;

/// etcd's KV service over a gRPC transport: `Service<pb::RangeRequest>`,
/// `Service<pb::PutRequest>`, `Service<pb::DeleteRangeRequest>`, `Service<pb::TxnRequest>`
/// and `Service<pb::CompactionRequest>`.
#[derive(Clone, Debug)]
pub struct GrpcKv<T> {
    inner: KvClient<T>,
    transport: T,
}

impl<T: GrpcTransport> GrpcKv<T> {
    /// Wraps a transport, with no limit on the size of decoded responses.
    pub fn new(transport: T) -> Self {
        Self {
            inner: KvClient::new(transport.clone())
                .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            transport,
        }
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &KvClient<T> {
        &self.inner
    }
}

// The KV calls, the hot path, use the direct unary codec.
unary_service!(
    GrpcKv,
    pb::RangeRequest,
    pb::RangeResponse,
    "/etcdserverpb.KV/Range"
);
unary_service!(
    GrpcKv,
    pb::PutRequest,
    pb::PutResponse,
    "/etcdserverpb.KV/Put"
);
unary_service!(
    GrpcKv,
    pb::DeleteRangeRequest,
    pb::DeleteRangeResponse,
    "/etcdserverpb.KV/DeleteRange"
);
unary_service!(
    GrpcKv,
    pb::TxnRequest,
    pb::TxnResponse,
    "/etcdserverpb.KV/Txn"
);
unary_service!(
    GrpcKv,
    pb::CompactionRequest,
    pb::CompactionResponse,
    "/etcdserverpb.KV/Compact"
);
