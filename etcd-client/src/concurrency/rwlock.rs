//! A distributed read-write lock on etcd's fair queue, fenced like the mutex.

use std::fmt;

use bytes::{Bytes, BytesMut};
use etcd_core::IntoBytes;
use etcd_core::kv::{Compare, Txn};

use super::mutex::{acquire, prefixed};
use super::{LockGuard, Result, Session};

/// A read-write lock named `name`: any number of readers at a time, or one writer, *as far
/// as etcd knows* (fence the protected writes: see the [module documentation](super)).
///
/// Readers put `{name}/read/{lease_id:x}`, writers `{name}/write/{lease_id:x}`; the create
/// revisions order them all in one fair queue. A reader holds the lock once no *write*
/// key has a lower create revision (it watches only the newest write key below its own);
/// a writer once no key of either kind has (it watches only the newest key below its own).
/// A writer waiting therefore holds back the readers that came after it: readers cannot
/// starve a writer.
///
/// One key per session and kind: a session that read-locks twice gets the same key back,
/// and a session holding the read lock that asks for the write lock waits for itself
/// forever. Use one session per concurrent holder.
///
/// ```no_run
/// # async fn example(session: etcd3::concurrency::Session) -> etcd3::Result<()> {
/// use etcd3::kv::Op;
/// let lock = session.rw_lock("locks/config");
///
/// let read = lock.read().await?;                       // shared with other readers
/// let config = session.client().kv().get("config").await?;
/// read.unlock().await?;
///
/// let write = lock.write().await?;                     // alone
/// let resp = write.txn().then([Op::put("config", "v2")]).await?;
/// assert!(resp.succeeded(), "lost the lock before writing");
/// write.unlock().await?;
/// # let _ = config;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RwLock {
    session: Session,
    prefix: Bytes,
    readers: Bytes,
    writers: Bytes,
}

impl RwLock {
    /// The read-write lock `name` for `session`; nothing is sent until a call.
    pub fn new(session: &Session, name: impl IntoBytes) -> Self {
        let prefix = prefixed(name.into_bytes());
        let sub = |kind: &[u8]| {
            let mut p = BytesMut::with_capacity(prefix.len() + kind.len());
            p.extend_from_slice(&prefix);
            p.extend_from_slice(kind);
            p.freeze()
        };
        Self {
            readers: sub(b"read/"),
            writers: sub(b"write/"),
            session: session.clone(),
            prefix,
        }
    }

    /// The prefix of every key of the lock: `{name}/`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// This session's reader key: `{name}/read/{lease_id:x}`.
    pub fn read_key(&self) -> Bytes {
        self.session.key_in(&self.readers)
    }

    /// This session's writer key: `{name}/write/{lease_id:x}`.
    pub fn write_key(&self) -> Bytes {
        self.session.key_in(&self.writers)
    }

    /// Waits until this session holds the lock for reading: no writer is ahead of it.
    ///
    /// Fails with [`Error::SessionExpired`](super::Error::SessionExpired) as soon as the
    /// session is lost or its key is deleted while waiting. Cancel-safe: dropping the
    /// future before it resolves deletes the key (in the background), and so does any
    /// error.
    pub async fn read(&self) -> Result<ReadGuard> {
        acquire(&self.session, &self.readers, &self.writers, true)
            .await
            .map(ReadGuard)
    }

    /// Waits until this session holds the lock for writing: nobody is ahead of it. Fails
    /// and is cancel-safe like [`read`](Self::read).
    pub async fn write(&self) -> Result<WriteGuard> {
        acquire(&self.session, &self.writers, &self.prefix, true)
            .await
            .map(WriteGuard)
    }

    /// Takes the read lock if no writer holds it or waits for it, or fails with
    /// [`Error::Locked`](super::Error::Locked) (naming the oldest writer's key) without
    /// waiting; the key is removed again.
    pub async fn try_read(&self) -> Result<ReadGuard> {
        acquire(&self.session, &self.readers, &self.writers, false)
            .await
            .map(ReadGuard)
    }

    /// Takes the write lock if nobody holds it or waits for it, or fails with
    /// [`Error::Locked`](super::Error::Locked) (naming the oldest key) without waiting;
    /// the key is removed again.
    pub async fn try_write(&self) -> Result<WriteGuard> {
        acquire(&self.session, &self.writers, &self.prefix, false)
            .await
            .map(WriteGuard)
    }
}

macro_rules! guard {
    ($name:ident, $what:literal, $key:literal) => {
        #[doc = concat!("The read-write lock, held for ", $what, ": its key (`", $key, "`) and its fencing token.")]
        ///
        /// Put [`is_owner`](Self::is_owner) into every transaction that writes what the
        /// lock protects (or start them with [`txn`](Self::txn)). Dropping the guard
        /// unlocks in the background (fenced); [`unlock`](Self::unlock) does it now and
        /// reports the outcome.
        #[must_use = "dropping the guard unlocks at once"]
        pub struct $name(LockGuard);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("key", &Bytes::copy_from_slice(self.0.key()))
                    .field("revision", &self.0.revision())
                    .field("lease_id", &self.0.session().lease_id())
                    .finish()
            }
        }

        impl $name {
            #[doc = concat!("The key, `", $key, "`.")]
            pub fn key(&self) -> &[u8] {
                self.0.key()
            }

            /// The key's create revision: the **fencing token**. The tokens of successive
            /// writers strictly increase, and a reader's token is above every writer's
            /// before it and below every writer's after it.
            pub fn revision(&self) -> i64 {
                self.0.revision()
            }

            /// The session holding the lock.
            pub fn session(&self) -> &Session {
                self.0.session()
            }

            /// A compare that holds only while this guard's key exists with its create
            /// revision: put it into transactions to write only while holding the lock.
            pub fn is_owner(&self) -> Compare {
                self.0.is_owner()
            }

            /// A transaction on the session's client that already holds
            /// [`is_owner`](Self::is_owner). `succeeded() == false` means the lock was
            /// lost (or another compare failed).
            pub fn txn(&self) -> Txn<crate::Kv> {
                self.0.txn()
            }

            /// Whether the key still exists with this guard's revision (one read; fence
            /// writes with [`is_owner`](Self::is_owner) instead of relying on this).
            pub async fn is_held(&self) -> Result<bool> {
                self.0.is_held().await
            }

            /// Releases the lock: deletes the key if its create revision is still this
            /// guard's. True when it deleted it; false when the key was already gone or
            /// is a newer one, left alone. Safe to call again.
            pub async fn unlock(&self) -> Result<bool> {
                self.0.unlock().await
            }

            /// The fenced unlock as a transaction, not sent.
            pub fn unlock_txn(&self) -> Txn<crate::Kv> {
                self.0.unlock_txn()
            }

            /// Forgets the guard without unlocking, returning its key and revision.
            pub fn into_parts(self) -> (Bytes, i64) {
                self.0.into_parts()
            }
        }
    };
}

guard!(ReadGuard, "reading", "{name}/read/{lease_id:x}");
guard!(WriteGuard, "writing", "{name}/write/{lease_id:x}");
