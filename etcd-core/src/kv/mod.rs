//! Reading and writing keys: get, put, delete, transactions and compaction.
//!
//! [`Kv`] is a cheap-to-clone handle over any [`KvService`]. Its methods return request
//! builders; every option is a method, and a builder is sent by awaiting it.
//!
//! ```no_run
//! # async fn example<S: etcd_core::kv::KvService>(kv: etcd_core::Kv<S>) -> etcd_core::Result<()> {
//! use etcd_core::kv::{Compare, Op};
//!
//! kv.put("greeting", "hello").await?;
//! let resp = kv.get("greeting").await?;
//! assert_eq!(resp.value(), Some(&b"hello"[..]));
//!
//! let n = kv.get("app/").prefix().count_only().await?.count();
//! let txn = kv
//!     .txn()
//!     .when([Compare::version("lock").eq(0)])
//!     .then([Op::put("lock", "me")])
//!     .otherwise([Op::get("lock")])
//!     .await?;
//! # let _ = (n, txn);
//! # Ok(()) }
//! ```

mod compact;
mod delete;
mod get;
mod pages;
mod put;
mod response;
mod txn;

use etcd_proto::etcdserverpb as pb;
use tower::ServiceExt;
use tower::util::Oneshot;

pub use compact::Compact;
pub use delete::Delete;
pub use get::{Get, SortOrder, SortTarget};
pub use pages::Pages;
pub use put::Put;
pub use response::{
    CompactResponse, DeleteResponse, GetResponse, KeyValue, OpResponse, PutResponse,
    ResponseHeader, TxnResponse,
};
pub use txn::{Compare, CompareTarget, Op, Txn};

use crate::error::Result;
use crate::future::{FromResponse, ResponseFuture};
use crate::key::IntoBytes;

crate::service::service_alias! {
    /// etcd's KV service as tower services of its request messages.
    /// [`GrpcKv`](crate::grpc::GrpcKv) implements it, and so does any stack of tower layers
    /// over it whose error converts into a boxed error.
    KvService {
        pb::RangeRequest => pb::RangeResponse,
        pb::PutRequest => pb::PutResponse,
        pb::DeleteRangeRequest => pb::DeleteRangeResponse,
        pb::TxnRequest => pb::TxnResponse,
        pb::CompactionRequest => pb::CompactionResponse,
    }
}

/// Limits the client checks before sending, so that a request the server would refuse is
/// refused locally with an explanation and never sent. Start from [`KvLimits::default`]
/// and change what you need with the `with_*` methods; the fields are public to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KvLimits {
    /// The most compares, or operations in one branch, a transaction may hold: the server's
    /// `--max-txn-ops` (128 unless the cluster sets it otherwise).
    pub max_txn_ops: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self { max_txn_ops: 128 }
    }
}

impl KvLimits {
    /// The same limits with at most `ops` compares, or operations in one branch, per
    /// transaction.
    pub fn with_max_txn_ops(mut self, ops: usize) -> Self {
        self.max_txn_ops = ops;
        self
    }
}

/// A handle on etcd's KV service. Cheap to clone; every method takes `&self`.
#[derive(Clone, Debug)]
pub struct Kv<S> {
    service: S,
    limits: KvLimits,
    timeout: Option<std::time::Duration>,
}

impl<S: KvService> Kv<S> {
    /// A handle over `service`, with the default [`KvLimits`].
    pub fn new(service: S) -> Self {
        Self {
            service,
            limits: KvLimits::default(),
            timeout: None,
        }
    }

    /// Sets the limits checked before sending (for a cluster with a non-default
    /// `--max-txn-ops`).
    pub fn with_limits(mut self, limits: KvLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Gives every call of this handle a deadline (overridden per call by `.timeout(..)`
    /// on a request). A call that takes longer fails with
    /// [`Error::Timeout`](crate::Error::Timeout); a write may still have been applied.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> KvLimits {
        self.limits
    }

    /// Reads `key`; add `.prefix()`, `.range_end(..)`, `.from_key()` for ranges, and the
    /// other options as methods. Await the builder to send it.
    pub fn get(&self, key: impl IntoBytes) -> Get<Kv<S>> {
        Get::new(key).with_client(self.clone())
    }

    /// Writes `value` at `key`.
    pub fn put(&self, key: impl IntoBytes, value: impl IntoBytes) -> Put<Kv<S>> {
        Put::new(key, value).with_client(self.clone())
    }

    /// Deletes `key`; add `.prefix()` or a range end to delete a range.
    pub fn delete(&self, key: impl IntoBytes) -> Delete<Kv<S>> {
        Delete::new(key).with_client(self.clone())
    }

    /// Starts a transaction: `.when([..]).then([..]).otherwise([..])`.
    pub fn txn(&self) -> Txn<Kv<S>> {
        Txn::new().with_client(self.clone())
    }

    /// Compacts the history up to `revision`.
    pub fn compact(&self, revision: i64) -> Compact<Kv<S>> {
        Compact::new(revision).with_client(self.clone())
    }

    /// Sends a prepared request, or fails at once with its validation error.
    fn send<R, T>(&self, request: Result<R>) -> ResponseFuture<Oneshot<S, R>, T>
    where
        S: tower::Service<R, Error: Into<crate::BoxError>, Future: Send>,
        R: Send + 'static,
        T: FromResponse<<S as tower::Service<R>>::Response> + Send + 'static,
    {
        match (request, self.timeout) {
            (Ok(request), None) => ResponseFuture::sent(self.service.clone().oneshot(request)),
            (Ok(request), Some(timeout)) => {
                ResponseFuture::timed(timeout, self.service.clone().oneshot(request))
            }
            (Err(error), _) => ResponseFuture::rejected(error),
        }
    }
}

/// Implements `IntoFuture` for a builder bound to a [`Kv`] handle, and `FromResponse` for
/// its response type.
macro_rules! awaitable {
    ($builder:ident, $request:ty, $response:ty) => {
        impl<S: KvService> std::future::IntoFuture for $builder<Kv<S>> {
            type Output = Result<$response>;
            type IntoFuture = ResponseFuture<Oneshot<S, $request>, $response>;

            fn into_future(self) -> Self::IntoFuture {
                let (kv, request) = self.into_parts();
                let request = request.build(&kv.limits);
                kv.send(request)
            }
        }

        impl<S> $builder<Kv<S>> {
            /// Gives this call its own deadline, replacing the handle's (and, through the
            /// facade, the client's request timeout). A call that takes longer fails with
            /// [`Error::Timeout`](crate::Error::Timeout); a write may still have been
            /// applied.
            pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
                self.client_mut().timeout = Some(timeout);
                self
            }
        }
    };
}

awaitable!(Get, pb::RangeRequest, GetResponse);
awaitable!(Put, pb::PutRequest, PutResponse);
awaitable!(Delete, pb::DeleteRangeRequest, DeleteResponse);
awaitable!(Txn, pb::TxnRequest, TxnResponse);
awaitable!(Compact, pb::CompactionRequest, CompactResponse);

macro_rules! from_response {
    ($($pb:ty => $ours:ty),*) => {$(
        impl FromResponse<$pb> for $ours {
            fn from_response(response: $pb) -> Result<Self> {
                Ok(response.into())
            }
        }
    )*};
}
from_response!(
    pb::RangeResponse => GetResponse,
    pb::PutResponse => PutResponse,
    pb::DeleteRangeResponse => DeleteResponse,
    pb::CompactionResponse => CompactResponse
);

impl FromResponse<pb::TxnResponse> for TxnResponse {
    fn from_response(response: pb::TxnResponse) -> Result<Self> {
        TxnResponse::try_from(response)
    }
}
