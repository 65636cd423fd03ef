//! The server-side Lock service (`v3lock`): etcd runs the lock recipe itself, the client
//! sends one call to lock and one to unlock.
//!
//! The client-side recipe (in the `etcd3` facade, `concurrency::Mutex`) gives the
//! same locks (same keys, `{name}/{lease:x}`) with fencing helpers, a lost-session signal
//! and cancel-safety; this service is the thin second way. Either way, the lock is only
//! safe when writes are fenced on the lock key's create revision: read it from the
//! response's key, or use the header revision of the `Lock` answer, which is at least it.

use etcd_proto::v3lockpb as pb;
use tower::ServiceExt;

use crate::error::{Error, InvalidRequest, Result};
use crate::key::IntoBytes;

crate::service::service_alias! {
    /// etcd's Lock service as tower services of its request messages.
    /// [`GrpcLock`](crate::grpc::GrpcLock) implements it.
    LockService {
        pb::LockRequest => pb::LockResponse,
        pb::UnlockRequest => pb::UnlockResponse,
    }
}

/// A handle on etcd's server-side Lock service. Cheap to clone.
///
/// ```no_run
/// # async fn example<S: etcd_core::lock::LockService>(locks: etcd_core::lock::LockHandle<S>, lease: i64) -> etcd_core::Result<()> {
/// let held = locks.lock("locks/db", lease).await?;   // waits until held
/// // ... fenced writes ...
/// locks.unlock(held.key).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LockHandle<S> {
    service: S,
}

impl<S: LockService> LockHandle<S> {
    /// A handle over `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }

    /// Waits until the lock `name` is held with `lease` (which must be kept alive), and
    /// returns the lock key. The wait ends with an error when the lease expires or the
    /// call's deadline passes.
    pub async fn lock(&self, name: impl IntoBytes, lease: i64) -> Result<pb::LockResponse> {
        let name = name.into_bytes();
        if name.is_empty() {
            return Err(InvalidRequest::EmptyKey.into());
        }
        call(self.service.clone(), pb::LockRequest { name, lease }).await
    }

    /// Deletes the lock key `key` (as returned by [`lock`](Self::lock)). Not fenced: a
    /// retried unlock may delete a newer lock of the same lease (etcd #22082); the
    /// client-side `Mutex` of the facade fences it.
    pub async fn unlock(&self, key: impl IntoBytes) -> Result<pb::UnlockResponse> {
        let key = key.into_bytes();
        if key.is_empty() {
            return Err(InvalidRequest::EmptyKey.into());
        }
        call(self.service.clone(), pb::UnlockRequest { key }).await
    }
}

/// One call through a service of an alias, with its error typed.
pub(crate) async fn call<S, R>(service: S, request: R) -> Result<S::Response>
where
    S: tower::Service<R, Error: Into<crate::BoxError>>,
{
    service
        .oneshot(request)
        .await
        .map_err(|e| Error::from_boxed(e.into()))
}

pub use crate::error::SessionLoss;
