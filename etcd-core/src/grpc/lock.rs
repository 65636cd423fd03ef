//! The server-side Lock service (`v3lockpb.Lock`) over gRPC.

use etcd_proto::v3lockpb as pb;
use pb::lock_client::LockClient;

use super::{DEFAULT_MAX_RESPONSE_SIZE, max_response_size, unary_service};
use crate::transport::GrpcTransport;

/// etcd's Lock service over a gRPC transport: `Service<v3lockpb::LockRequest>` and
/// `Service<v3lockpb::UnlockRequest>`. It implements
/// [`LockService`](crate::lock::LockService).
#[derive(Clone, Debug)]
pub struct GrpcLock<T> {
    inner: LockClient<T>,
}

impl<T: GrpcTransport> GrpcLock<T> {
    /// Wraps a transport, accepting responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes
    /// (see `max_response_size`).
    pub fn new(transport: T) -> Self {
        Self {
            inner: LockClient::new(transport).max_decoding_message_size(DEFAULT_MAX_RESPONSE_SIZE),
        }
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &LockClient<T> {
        &self.inner
    }
}

max_response_size!(GrpcLock);

unary_service!(GrpcLock, pb::LockRequest, pb::LockResponse, lock);
unary_service!(GrpcLock, pb::UnlockRequest, pb::UnlockResponse, unlock);
