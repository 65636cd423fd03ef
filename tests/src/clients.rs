//! Raw clients on one member's endpoint, for tests that check what the client under test
//! did against the server directly (no failover, no retries, no namespace).

use std::time::Duration;

use etcd_core::Kv;
use etcd_core::grpc::GrpcKv;
use tonic::transport::{Channel, Endpoint};

/// A lazily connecting channel to `url`, with a 1 s connect timeout.
///
/// # Panics
///
/// When `url` is not a valid endpoint.
pub fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .expect("a valid endpoint URL")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// A KV handle straight on `url`'s member.
pub fn raw_kv(url: &str) -> Kv<GrpcKv<Channel>> {
    Kv::new(GrpcKv::new(channel(url)))
}
