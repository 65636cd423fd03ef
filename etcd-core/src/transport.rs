//! The wire tier: what can carry etcd's gRPC calls.

use bytes::Bytes;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::codegen::StdError;

/// Anything that can carry etcd's gRPC calls: a tonic `Channel`, a `Channel` wrapped in
/// tower layers, a hyper client, or an in-memory server.
///
/// This is a trait alias: every type with the right bounds implements it.
pub trait GrpcTransport:
    GrpcService<
        Body,
        Error: Into<StdError>,
        ResponseBody: http_body::Body<Data = Bytes, Error: Into<StdError> + Send> + Send + 'static,
        Future: Send,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> GrpcTransport for T where
    T: GrpcService<
            Body,
            Error: Into<StdError>,
            ResponseBody: http_body::Body<Data = Bytes, Error: Into<StdError> + Send>
                              + Send
                              + 'static,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static
{
}
