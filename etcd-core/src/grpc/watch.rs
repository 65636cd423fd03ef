//! The Watch service over gRPC.

use etcd_proto::etcdserverpb as pb;
use pb::watch_client::WatchClient;

use super::MAX_DECODING_MESSAGE_SIZE;
use super::streaming::bidi_service;
use crate::transport::GrpcTransport;

/// etcd's Watch service over a gRPC transport: a
/// `Service<RequestStream<pb::WatchRequest>>` whose every call opens one bidirectional
/// watch stream.
///
/// Responses are decoded without a size limit, so a batch of large events at one revision
/// (etcd sends those in one message) is never refused. A broken stream ends with an
/// [`Error`](crate::Error) classified like any other call's.
#[derive(Clone, Debug)]
pub struct GrpcWatch<T> {
    inner: WatchClient<T>,
    transport: T,
    require_leader: bool,
}

impl<T: GrpcTransport> GrpcWatch<T> {
    /// Wraps a transport, with no limit on the size of decoded responses.
    pub fn new(transport: T) -> Self {
        Self {
            inner: WatchClient::new(transport.clone())
                .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            transport,
            require_leader: false,
        }
    }

    /// Asks the server to serve the streams opened through this adapter only while its
    /// member has a leader (metadata `hasleader: true`). A member that loses its leader
    /// ends the stream with [`ServerErrorKind::NoLeader`](crate::ServerErrorKind::NoLeader)
    /// instead of keeping it silently open.
    pub fn require_leader(mut self, require: bool) -> Self {
        self.require_leader = require;
        self
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &WatchClient<T> {
        &self.inner
    }
}

bidi_service!(
    GrpcWatch,
    pb::WatchRequest,
    pb::WatchResponse,
    "/etcdserverpb.Watch/Watch"
);
