//! Sessions, locks, elections, queues, barriers and software transactional memory, on
//! etcd's recipes (`client/v3/concurrency` and `client/v3/experimental/recipes` of the Go
//! client), made safe by fencing.
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
//! use etcd3::{Client, concurrency::Session, kv::Op};
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
//! * [`RwLock`] ([`Session::rw_lock`]): readers put `{name}/read/{lease:x}`, writers
//!   `{name}/write/{lease:x}`, in one fair queue ordered by create revision; a reader waits only for the newest writer
//!   ahead of it, a writer for the newest key of either kind. Guards ([`ReadGuard`],
//!   [`WriteGuard`]) carry the fencing token and unlock fenced; waiting fails and cancels
//!   like the mutex's.
//! * [`Election`]: campaign on the mutex's fair queue, proclaim and resign fenced on the
//!   leadership's revision, [`leader`](Election::leader), [`observe`](Election::observe)
//!   (leader changes in revision order), and resuming a leadership from its key and
//!   revision.
//! * [`Queue`] and [`PriorityQueue`] ([`Client::queue`](crate::Client::queue),
//!   [`Client::priority_queue`](crate::Client::priority_queue)): items are keys under
//!   `{name}/` (`{name}/{priority:05}/`), ordered by create revision; a dequeue deletes
//!   the oldest (of the lowest priority number) in a transaction guarded by its mod
//!   revision, so exactly one consumer gets each item (a claim whose answer was lost is
//!   resolved through a marker key), and waits on a watch when the queue is empty. No
//!   session needed.
//! * [`Barrier`] ([`Client::barrier`](crate::Client::barrier)): `hold` puts the key,
//!   `release` deletes it, `wait` returns once it is gone (a read, then a watch from the
//!   read's revision on). [`DoubleBarrier`]
//!   ([`Session::double_barrier`]): `enter` returns once `count` participants have put
//!   their key under the session (the last puts `{name}/ready`, the others watch for
//!   it; [`Entered`] carries the key's create revision as fencing token), and
//!   [`Entered::leave`] once all have left (each watches one key: no herd).
//! * [`stm`](crate::Client::stm): a transaction function retried on conflict, at one of
//!   four [`Isolation`] levels.
//!
//! The server-side `Lock` and `Election` gRPC services are the other way to the same
//! recipes: [`Client::lock_service`](crate::Client::lock_service) and
//! [`Client::election_service`](crate::Client::election_service).

mod barrier;
mod election;
mod mutex;
mod queue;
mod rwlock;
mod session;
mod stm;
mod work_queue;

pub use barrier::{Barrier, DoubleBarrier, Entered};
pub use election::{Election, Leadership, Observe, leader, observe};
pub use mutex::{LockGuard, Mutex};
pub use rwlock::{ReadGuard, RwLock, WriteGuard};
pub use session::{DEFAULT_TTL, Session, SessionBuilder};
pub use stm::{Isolation, Stm, StmTxn};
pub use work_queue::{Item, PriorityQueue, Queue};

/// Why a [`Session`] no longer keeps its lease alive.
pub use etcd_core::lock::SessionLoss;
/// What can go wrong with a session, a lock or an election: the one
/// [`Error`] of the client, whose [`Error::SessionExpired`],
/// [`Error::Locked`], [`Error::NotLeader`] and [`Error::BarrierFull`] are this module's
/// own.
pub use etcd_core::{Error, Result};

/// The server-side Lock service of a [`Client`](crate::Client) (a second API to the same
/// locks as [`Mutex`], run by etcd): calls spread over the members with failover, in the
/// client's namespace. From [`Client::lock_service`](crate::Client::lock_service).
pub type ServerLock = etcd_core::lock::LockHandle<crate::services::LockStack>;

/// The server-side Election service of a [`Client`](crate::Client) (a second API to the
/// same elections as [`Election`], run by etcd). From
/// [`Client::election_service`](crate::Client::election_service).
pub type ServerElection = etcd_core::election::ElectionHandle<crate::services::ElectionStack>;

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

    /// The FIFO [`Queue`] `name` (items under `{name}/`): no session needed.
    pub fn queue(&self, name: impl etcd_core::IntoBytes) -> Queue {
        Queue::new(self, name)
    }

    /// The [`PriorityQueue`] `name` (items under `{name}/{priority:05}/`): no session
    /// needed.
    pub fn priority_queue(&self, name: impl etcd_core::IntoBytes) -> PriorityQueue {
        PriorityQueue::new(self, name)
    }

    /// The [`Barrier`] `name` (its key is `name`): no session needed.
    pub fn barrier(&self, name: impl etcd_core::IntoBytes) -> Barrier {
        Barrier::new(self, name)
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
