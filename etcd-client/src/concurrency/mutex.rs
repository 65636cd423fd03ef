//! A distributed lock on etcd's fair queue, fenced by the lock key's create revision.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use etcd_core::IntoBytes;
use etcd_core::kv::{Compare, Txn};

use super::queue::{self, Cleanup};
use super::{Error, Result, Session};

/// A lock named `name`, held by at most one [`Session`] at a time *as far as etcd knows*.
///
/// The lock keys are `{name}/{lease_id:x}`; the holder is the session whose key has the
/// lowest create revision, and each waiter watches only the key just before its own
/// (no thundering herd). A session that locks the same name twice gets the same key back
/// (as in etcd's Go client): use one session per concurrent holder.
///
/// Holding the guard does not guarantee that nobody else holds the lock (a paused holder
/// can lose its lease): fence every protected write with [`LockGuard::is_owner`] (see the
/// [module documentation](super)).
///
/// ```no_run
/// # async fn example(session: etcd3::concurrency::Session) -> etcd3::Result<()> {
/// use etcd3::kv::Op;
/// let mutex = session.mutex("locks/db");
/// let guard = mutex.lock().await?;
/// let resp = guard.txn().then([Op::put("db/owner", "me")]).await?;
/// assert!(resp.succeeded(), "lost the lock before writing");
/// guard.unlock().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Mutex {
    session: Session,
    prefix: Bytes,
}

impl Mutex {
    /// The mutex `name` for `session`; nothing is sent until [`lock`](Self::lock) or
    /// [`try_lock`](Self::try_lock).
    pub fn new(session: &Session, name: impl IntoBytes) -> Self {
        Self {
            session: session.clone(),
            prefix: prefixed(name.into_bytes()),
        }
    }

    /// The prefix of the lock keys: `{name}/`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// This session's lock key: `{name}/{lease_id:x}`.
    pub fn key(&self) -> Bytes {
        self.session.key_in(&self.prefix)
    }

    /// Waits in the queue until this session holds the lock.
    ///
    /// Fails with [`Error::SessionExpired`] as soon as the session is lost or its lock key
    /// is deleted while waiting, and never acquires afterwards. Cancel-safe: dropping the
    /// future before it resolves deletes the waiter's key (in the background), and so does
    /// any error.
    pub async fn lock(&self) -> Result<LockGuard> {
        self.acquire(true).await
    }

    /// Takes the lock if it is free, or fails with [`Error::Locked`] (naming the holder's
    /// key) without waiting; the waiter's key is removed again.
    pub async fn try_lock(&self) -> Result<LockGuard> {
        self.acquire(false).await
    }

    async fn acquire(&self, wait: bool) -> Result<LockGuard> {
        acquire(&self.session, &self.prefix, &self.prefix, wait).await
    }
}

/// Puts the session's key under `prefix` and, when `wait`, waits until no key under
/// `ahead` is older (without `wait`, fails with [`Error::Locked`] instead). The mutex
/// waits for `{name}/`; the read-write lock's readers for `{name}/write/`.
pub(crate) async fn acquire(
    session: &Session,
    prefix: &Bytes,
    ahead: &Bytes,
    wait: bool,
) -> Result<LockGuard> {
    if session.loss().is_some() {
        return Err(session.expired());
    }
    let place = queue::enqueue(session, prefix, ahead, Bytes::new()).await?;
    let cleanup = Cleanup::new(session, &place);
    if !place.at_head() {
        if !wait {
            let owner = place
                .head
                .map(|h| h.key_bytes().clone())
                .unwrap_or_default();
            cleanup.run().await;
            return Err(Error::Locked { owner });
        }
        if let Err(e) = queue::wait_turn(session, ahead, &place.key, place.revision).await {
            cleanup.run().await;
            return Err(e);
        }
    }
    cleanup.disarm();
    Ok(LockGuard {
        session: session.clone(),
        key: place.key,
        revision: place.revision,
        released: AtomicBool::new(false),
    })
}

/// `{name}/`.
pub(crate) fn prefixed(name: Bytes) -> Bytes {
    let mut prefix = BytesMut::with_capacity(name.len() + 1);
    prefix.extend_from_slice(&name);
    prefix.extend_from_slice(b"/");
    prefix.freeze()
}

/// The lock, held: its key and its fencing token.
///
/// Put [`is_owner`](Self::is_owner) into every transaction that writes what the lock
/// protects (or start them with [`txn`](Self::txn)): the server then applies the write
/// only while the lock key is still the one this guard acquired.
///
/// Dropping the guard unlocks in the background (fenced, so it never deletes a newer
/// lock); [`unlock`](Self::unlock) does it now and reports the outcome. Keep it for as
/// long as the lock must be held:
///
/// ```no_run
/// # async fn f(session: etcd3::concurrency::Session) -> etcd3::concurrency::Result<()> {
/// let _guard = session.lock("config").await?;
/// // ... the lock is held until `_guard` goes out of scope.
/// # Ok(()) }
/// ```
///
/// A guard left unused is a warning (`unused_must_use`): this would lock and unlock at once.
///
/// ```compile_fail
/// # #![deny(unused_must_use)]
/// # async fn f(session: etcd3::concurrency::Session) -> etcd3::concurrency::Result<()> {
/// session.lock("config").await?;
/// # Ok(()) }
/// ```
#[must_use = "dropping the guard unlocks at once"]
pub struct LockGuard {
    session: Session,
    key: Bytes,
    revision: i64,
    released: AtomicBool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .field("revision", &self.revision)
            .field("lease_id", &self.session.lease_id())
            .finish()
    }
}

impl LockGuard {
    /// The lock key, `{name}/{lease_id:x}`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The lock key's create revision: the **fencing token**. Tokens of successive holders
    /// of one lock strictly increase.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The session holding the lock.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A compare that holds only while this guard's lock key exists with its create
    /// revision (`create_revision(key) == revision`): put it into transactions to write
    /// only while owning the lock.
    pub fn is_owner(&self) -> Compare {
        Compare::create_revision(self.key.clone()).eq(self.revision)
    }

    /// A transaction on the session's client that already holds
    /// [`is_owner`](Self::is_owner): add compares, `then` and `otherwise`, and await it.
    /// `succeeded() == false` means the lock was lost (or another compare failed).
    pub fn txn(&self) -> Txn<crate::Kv> {
        self.session.client().kv().txn().when([self.is_owner()])
    }

    /// Whether the lock key still exists with this guard's revision (one read; fence
    /// writes with [`is_owner`](Self::is_owner) instead of relying on this).
    pub async fn is_held(&self) -> Result<bool> {
        let resp = self.session.client().kv().get(self.key.clone()).await?;
        Ok(resp
            .first()
            .is_some_and(|kv| kv.create_revision() == self.revision))
    }

    /// Releases the lock: deletes the key if its create revision is still this guard's.
    /// Returns true when it deleted it, false when the key was already gone or belongs to
    /// a newer lock (of this session or not), which is left alone.
    ///
    /// Safe to call again, for example after an error whose outcome is unknown.
    pub async fn unlock(&self) -> Result<bool> {
        let resp = self.unlock_txn().await?;
        self.released.store(true, Ordering::Relaxed);
        Ok(resp.succeeded())
    }

    /// The fenced unlock as a transaction, not sent: `if create_revision(key) == revision
    /// then delete(key)`.
    pub fn unlock_txn(&self) -> Txn<crate::Kv> {
        queue::fenced_delete(self.session.client().kv(), &self.key, self.revision)
    }

    /// Forgets the guard without unlocking, returning its key and revision.
    pub fn into_parts(self) -> (Bytes, i64) {
        self.released.store(true, Ordering::Relaxed);
        (self.key.clone(), self.revision)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released.load(Ordering::Relaxed)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let unlock = self.unlock_txn();
            runtime.spawn(async move {
                let _ = unlock.await;
            });
        }
    }
}
