//! The watch service as a transport-agnostic type: one bidirectional stream of watch
//! requests and responses.
//!
//! The watch subsystem (`etcd-watch`) depends only on [`WatchService`]: anything that takes
//! the stream of outgoing [`WatchRequest`](pb::WatchRequest)s and answers with the stream of
//! incoming [`WatchResponse`](pb::WatchResponse)s. [`GrpcWatch`](crate::grpc::GrpcWatch)
//! implements it over any gRPC transport; a failover service over several members, or a
//! scripted fake in tests, implements it just as well.

use etcd_proto::etcdserverpb as pb;

use crate::stream::{RequestStream, ResponseStream};

crate::service::service_alias! {
    /// etcd's Watch service as a tower service: each call opens one bidirectional stream.
    ///
    /// The request is the stream of messages to send (creations, cancellations, progress
    /// requests); the response is the stream of the server's messages, which ends with an
    /// [`Error`](crate::Error) when the stream breaks. Opening may complete only once the
    /// server has answered the first request, so callers must send before they wait.
    WatchService {
        RequestStream<pb::WatchRequest> => ResponseStream<pb::WatchResponse>,
    }
}
