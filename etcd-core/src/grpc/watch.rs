//! The Watch service over gRPC.

use etcd_proto::etcdserverpb as pb;
use pb::watch_client::WatchClient;

use super::streaming::bidi_service;
use super::{DEFAULT_MAX_RESPONSE_SIZE, max_response_size};
use crate::transport::GrpcTransport;

/// etcd's Watch service over a gRPC transport: a
/// `Service<RequestStream<pb::WatchRequest>>` whose every call opens one bidirectional
/// watch stream.
///
/// Responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes are accepted unless
/// `max_response_size` says otherwise: a batch of large events at one revision (etcd
/// sends those in one message) is refused only past that. A broken stream ends with an
/// [`Error`](crate::Error) classified like any other call's.
#[derive(Clone, Debug)]
pub struct GrpcWatch<T> {
    inner: WatchClient<T>,
    transport: T,
    require_leader: bool,
    /// The largest response message accepted.
    max_response_size: usize,
}

impl<T: GrpcTransport> GrpcWatch<T> {
    /// Wraps a transport, accepting responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes
    /// (see `max_response_size`).
    pub fn new(transport: T) -> Self {
        Self {
            inner: WatchClient::new(transport.clone())
                .max_decoding_message_size(DEFAULT_MAX_RESPONSE_SIZE),
            transport,
            require_leader: false,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
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

max_response_size!(GrpcWatch, max_response_size);

bidi_service!(
    GrpcWatch,
    pb::WatchRequest,
    pb::WatchResponse,
    "/etcdserverpb.Watch/Watch"
);
