//! Namespaces: one key prefix applied to every request and removed from every response,
//! so that several applications share one etcd without seeing each other's keys.
//!
//! [`Namespace<S>`] is a tower middleware at the typed tier: it wraps any KV, lease or
//! watch service (a [`GrpcKv`](crate::grpc::GrpcKv), a failover service, a stack of tower
//! layers) and is again one, so [`Kv`](crate::Kv), the lessor of `etcd-lease` and the
//! watcher of `etcd-watch` work over it unchanged. It rewrites
//!
//! - keys and ranges of gets, puts, deletes and transactions (compares, including range
//!   compares, and operations, including nested transactions): `"a"` becomes
//!   `"tenant/a"`, and "every key" or "every key from `k` on" stops at the end of the
//!   namespace (see [`Prefix`] for the exact mapping, which is etcd's own);
//! - the key ranges of watch creation requests;
//!
//! and strips the prefix from `kvs`, `prev_kv`, `prev_kvs`, nested transaction results,
//! watch events (`kv` and `prev_kv`) and the keys of a lease's time-to-live (which lists
//! only the keys of the namespace). Compaction and the other lease calls pass through.
//! The messages of the `Lock` and `Election` services are covered too: lock and election
//! names gain the prefix, and the lock and leader keys they return lose it (and gain it
//! back when handed to unlock, proclaim or resign).
//!
//! Prefixing costs one allocation per key; stripping slices the received buffer and copies
//! nothing.
//!
//! # Example
//!
//! ```no_run
//! use etcd_core::{Kv, grpc::GrpcKv, namespace::Namespace};
//!
//! # async fn example() -> etcd_core::Result<()> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:2379").connect_lazy();
//! let kv = Kv::new(Namespace::new(GrpcKv::new(channel), "tenant/"));
//!
//! kv.put("a", "1").await?; // stored as "tenant/a"
//! let all = kv.get("").prefix().await?; // every key of the namespace, no other
//! assert_eq!(all.kvs()[0].key(), b"a");
//! # Ok(()) }
//! ```
//!
//! The same with a tower layer, and what the wrapped service receives:
//!
//! ```
//! use etcd_core::namespace::NamespaceLayer;
//! use etcd_core::proto::{etcdserverpb as pb, mvccpb};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_core::BoxError> {
//! let server = tower::service_fn(|req: pb::RangeRequest| async move {
//!     // A prefix read of "a" arrives as a prefix read of "tenant/a".
//!     assert_eq!((&req.key[..], &req.range_end[..]), (&b"tenant/a"[..], &b"tenant/b"[..]));
//!     let kv = mvccpb::KeyValue { key: "tenant/a1".into(), ..Default::default() };
//!     Ok::<_, etcd_core::BoxError>(pb::RangeResponse { kvs: vec![kv], ..Default::default() })
//! });
//! let service = ServiceBuilder::new().layer(NamespaceLayer::new("tenant/")).service(server);
//!
//! let request = pb::RangeRequest { key: "a".into(), range_end: "b".into(), ..Default::default() };
//! let response = service.oneshot(request).await?;
//! assert_eq!(&response.kvs[0].key[..], b"a1");
//! # Ok(()) }
//! ```
//!
//! Leases and watches take a namespace the same way:
//! `etcd_lease::Lessor::new(Namespace::new(GrpcLease::new(channel.clone()), "tenant/"))` and
//! `etcd_watch::Watcher::new(Namespace::new(GrpcWatch::new(channel), "tenant/"))`.

pub mod future;
mod keys;
mod layer;

use std::task::{Context, Poll};

pub use future::ResponseFuture;
pub use keys::{Prefix, PrefixKeys, StripKeys};
pub use layer::NamespaceLayer;

use crate::key::IntoBytes;

/// A service whose every key lives under one prefix: requests gain it, responses lose it.
///
/// It is a `tower::Service<R>` for every request `R` implementing [`PrefixKeys`] whose
/// response implements [`StripKeys`], which covers every KV, lease and watch call; it is
/// `Clone`, `Send` and `Sync` when the inner service is. See the
/// [module documentation](self) for an example.
#[derive(Clone, Debug)]
pub struct Namespace<S> {
    inner: S,
    prefix: Prefix,
}

impl<S> Namespace<S> {
    /// Wraps `inner` in the namespace of keys starting with `prefix`.
    pub fn new(inner: S, prefix: impl IntoBytes) -> Self {
        Self::with_prefix(inner, Prefix::new(prefix))
    }

    /// Wraps `inner` in the namespace of `prefix`.
    pub fn with_prefix(inner: S, prefix: Prefix) -> Self {
        Self { inner, prefix }
    }

    /// A [`NamespaceLayer`] for `prefix`.
    pub fn layer(prefix: impl IntoBytes) -> NamespaceLayer {
        NamespaceLayer::new(prefix)
    }

    /// The namespace's prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> tower::Service<R> for Namespace<S>
where
    S: tower::Service<R>,
    R: PrefixKeys,
    S::Response: StripKeys,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: R) -> Self::Future {
        // An empty namespace is a pass-through: no key is touched.
        if !self.prefix.is_empty() {
            request.prefix_keys(&self.prefix);
        }
        ResponseFuture::new(self.inner.call(request), self.prefix.clone())
    }
}

#[cfg(test)]
mod tests;
