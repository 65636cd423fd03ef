//! Sessions, locks, elections and software transactional memory, on etcd's recipes
//! (`client/v3/concurrency` of the Go client), made safe by fencing.
//!
//! # Locks are not mutual exclusion by themselves
//!
//! A lock held in etcd is a key attached to a lease. When the holder pauses (a GC pause, a
//! `SIGSTOP`, a slow network) for longer than the lease's TTL, the lease expires, the key
//! is deleted and the next waiter acquires the lock, while the old holder still *believes*
//! it holds it. No client-side check can close that window. What closes it is a **fencing
//! token**: the lock key's create revision ([`LockGuard::revision`]), checked by the
//! server in the same transaction as the protected write ([`LockGuard::is_owner`]). A
//! fenced write from a holder that lost the lock fails instead of overwriting its
//! successor's work:
//!
//! ```no_run
//! use std::time::Duration;
//! use etcd_client::{Client, concurrency::Session, kv::Op};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect(["http://127.0.0.1:2379"]).await?;
//! let session = Session::new(&client).ttl(Duration::from_secs(10)).await?;
//!
//! let guard = session.lock("locks/db").await?;        // fair queue, waits its turn
//! let written = guard
//!     .txn()                                           // `when([guard.is_owner()])`
//!     .then([Op::put("db/config", "v2")])
//!     .await?
//!     .succeeded();                                    // false: the lock was lost
//! guard.unlock().await?;                               // fenced too
//! session.close().await?;                              // revokes the lease
//! # let _ = written;
//! # Ok(()) }
//! ```
//!
//! # What is here
//!
//! * [`Session`]: a lease kept alive in the background, with a [`lost`](Session::lost)
//!   signal, [`close`](Session::close) (revokes) and [`orphan`](Session::orphan) (stops
//!   renewing, leaves the lease to expire); also over a lease of your own
//!   ([`SessionBuilder::lease`]).
//! * [`Mutex`]: etcd's fair queue: each waiter puts `{name}/{lease:x}` and watches only the
//!   key just before its own. The guard carries the fencing token; unlock is fenced on it
//!   (so a retried, stale unlock never deletes a newer lock of the same session, etcd
//!   #22082); a waiter whose session is lost, or whose key disappears, fails at once with
//!   [`Error::SessionExpired`] (etcd #11456, #19597); dropping a waiting `lock()` future
//!   removes its key.
//! * [`Election`]: campaign on the same queue, proclaim and resign fenced on the
//!   leadership's revision, [`leader`](Election::leader), [`observe`](Election::observe)
//!   (leader changes in revision order), and resuming a leadership from its key and
//!   revision.
//! * [`stm`](crate::Client::stm): a transaction function retried on conflict, at one of
//!   four [`Isolation`] levels.
//!
//! The server-side `Lock` and `Election` gRPC services are the other way to the same
//! recipes: [`Client::lock_service`](crate::Client::lock_service) and
//! [`Client::election_service`](crate::Client::election_service).

mod election;
mod mutex;
mod queue;
mod session;
mod stm;

use etcd_lease::LossReason;

pub use election::{Election, Leadership, Observe, leader, observe};
pub use mutex::{LockGuard, Mutex};
pub use session::{DEFAULT_TTL, Session, SessionBuilder};
pub use stm::{Isolation, Stm, StmTxn};

/// Why a [`Session`] no longer keeps its lease alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionLoss {
    /// The lease was lost: see the [`LossReason`] (expired, possibly, when the cluster was
    /// unreachable for a TTL; not found or revoked when the server said so).
    Lease(LossReason),
    /// [`Session::close`] was called: the lease is revoked.
    Closed,
    /// [`Session::orphan`] was called: the lease is no longer renewed and expires after
    /// its TTL.
    Orphaned,
}

impl std::fmt::Display for SessionLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionLoss::Lease(reason) => write!(f, "lease {reason}"),
            SessionLoss::Closed => f.write_str("session closed"),
            SessionLoss::Orphaned => f.write_str("session orphaned"),
        }
    }
}

/// What can go wrong with a session, a lock or an election.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session is gone, or its key in the queue is: a waiter fails with this instead of
    /// waiting for others (and never acquires afterwards). `loss` is the session's reason,
    /// or `None` when the queue key itself vanished (its lease was revoked or expired on
    /// the server before the session noticed, or someone deleted the key).
    #[error("session of lease {lease_id:x} expired{}", match .loss { Some(l) => format!(" ({l})"), None => " (its key is gone)".to_owned() })]
    SessionExpired {
        /// The session's lease.
        lease_id: i64,
        /// The session's reason, when it knows one.
        loss: Option<SessionLoss>,
    },
    /// [`Mutex::try_lock`]: another session holds the lock.
    #[error("the lock is held by another session (key {owner:?})")]
    Locked {
        /// The holder's key.
        owner: bytes::Bytes,
    },
    /// A fenced election write failed: this leadership's key was deleted or recreated, so
    /// it no longer leads.
    #[error("not the leader: the leadership key was deleted or recreated")]
    NotLeader,
    /// A KV call failed.
    #[error(transparent)]
    Etcd(#[from] etcd_core::Error),
    /// Granting the session's lease, or keeping it alive, failed.
    #[error(transparent)]
    Lease(#[from] etcd_lease::Error),
    /// A watch failed (other than by compaction, which is handled by re-reading).
    #[error(transparent)]
    Watch(#[from] etcd_watch::Error),
}

impl Error {
    /// True for [`Error::SessionExpired`].
    pub fn is_session_expired(&self) -> bool {
        matches!(self, Error::SessionExpired { .. })
    }
}

/// `Result` with the concurrency [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The server-side Lock service of a [`Client`](crate::Client) (a second API to the same
/// locks as [`Mutex`], run by etcd): calls spread over the members with failover, in the
/// client's namespace. From [`Client::lock_service`](crate::Client::lock_service).
pub type ServerLock = etcd_core::lock::LockHandle<
    crate::stack::Stack<etcd_core::grpc::GrpcLock<crate::stack::Transport>>,
>;

/// The server-side Election service of a [`Client`](crate::Client) (a second API to the
/// same elections as [`Election`], run by etcd). From
/// [`Client::election_service`](crate::Client::election_service).
pub type ServerElection = etcd_core::election::ElectionHandle<
    crate::stack::Stack<etcd_core::grpc::GrpcElection<crate::stack::Transport>>,
>;

impl crate::Client {
    /// etcd's server-side Lock service: `lock(name, lease)` waits on the server and
    /// returns the key; `unlock(key)` deletes it (unfenced). Prefer [`Mutex`] (through
    /// [`session`](Self::session)) for fencing helpers and cancel-safety.
    pub fn lock_service(&self) -> &ServerLock {
        &self.locks
    }

    /// etcd's server-side Election service: campaign, proclaim, leader, resign, observe.
    /// Prefer [`Election`] (through [`session`](Self::session)) for fencing helpers and
    /// cancel-safety.
    pub fn election_service(&self) -> &ServerElection {
        &self.elections
    }

    /// Starts a [`Session`]: a lease kept alive for locks and elections. Shorthand for
    /// [`Session::new(&client)`](Session::new); set `.ttl(..)` or `.lease(..)` and await.
    pub fn session(&self) -> SessionBuilder {
        Session::new(self)
    }

    /// A transaction function, retried on conflict until it commits: see [`Stm`]. Set
    /// `.isolation(..)` and await it.
    pub fn stm<F, Fut, T, E>(&self, function: F) -> Stm<F>
    where
        F: FnMut(StmTxn) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<T, E>> + Send,
    {
        Stm::new(self.clone(), function)
    }
}
