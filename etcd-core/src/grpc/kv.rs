//! The KV service over gRPC.

use etcd_proto::etcdserverpb as pb;
use pb::kv_client::KvClient;

use super::{DEFAULT_MAX_RESPONSE_SIZE, max_response_size, unary_service};
use crate::transport::GrpcTransport;

/// etcd's KV service over a gRPC transport: `Service<pb::RangeRequest>`,
/// `Service<pb::PutRequest>`, `Service<pb::DeleteRangeRequest>`, `Service<pb::TxnRequest>`
/// and `Service<pb::CompactionRequest>`.
#[derive(Clone, Debug)]
pub struct GrpcKv<T> {
    inner: KvClient<T>,
    transport: T,
    /// The largest response message accepted.
    max_response_size: usize,
}

impl<T: GrpcTransport> GrpcKv<T> {
    /// Wraps a transport, accepting responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes
    /// (see `max_response_size`).
    pub fn new(transport: T) -> Self {
        Self {
            inner: KvClient::new(transport.clone())
                .max_decoding_message_size(DEFAULT_MAX_RESPONSE_SIZE),
            transport,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
        }
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &KvClient<T> {
        &self.inner
    }
}

max_response_size!(GrpcKv, max_response_size);

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
