//! A lease kept alive for locks and elections.

use std::fmt;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use etcd_core::IntoBytes;
use futures_util::future::{BoxFuture, Either, select};
use tokio::sync::{oneshot, watch};

use super::{DoubleBarrier, Election, Error, LockGuard, Mutex, Result, RwLock, SessionLoss};
use crate::Client;

/// The TTL of a session's lease unless [`SessionBuilder::ttl`] sets one (as in etcd's Go
/// client).
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// A lease kept alive in the background, owning the keys of locks and elections.
///
/// Made with [`Session::new`] (or [`Client::session`](crate::Client::session)): it grants a
/// lease (or takes yours, [`SessionBuilder::lease`]) and renews it over the client's one
/// keep-alive stream. Every lock key and candidate key it puts is attached to the lease,
/// so they all vanish when the session ends: [`close`](Session::close) revokes the lease
/// at once; [`orphan`](Session::orphan), or dropping the last clone, stops renewing it
/// and the server deletes the keys after the TTL.
///
/// [`lost`](Session::lost) resolves when the session no longer keeps its lease alive.
/// Waiters for locks and elections race against it and fail with
/// [`Error::SessionExpired`]. A holder should race its work against it too, but that is
/// not enough to be safe: see the [module documentation](super) on fencing.
///
/// Cheap to clone; clones share the lease.
#[must_use = "dropping the last clone lets the lease expire"]
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    lease_id: i64,
    ttl: Duration,
    state: watch::Sender<Option<SessionLoss>>,
    /// Stops the task that holds the keep-alive; dropping it (with the last clone) does too.
    stop: StdMutex<Option<oneshot::Sender<()>>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("lease_id", &self.inner.lease_id)
            .field("ttl", &self.inner.ttl)
            .field("loss", &*self.inner.state.borrow())
            .finish()
    }
}

impl Session {
    /// Starts a session on `client`; set the TTL with [`SessionBuilder::ttl`] (default
    /// [`DEFAULT_TTL`]) and await the builder.
    ///
    /// ```no_run
    /// # async fn example(client: etcd3::Client) -> etcd3::Result<()> {
    /// use std::time::Duration;
    /// let session = etcd3::concurrency::Session::new(&client)
    ///     .ttl(Duration::from_secs(10))
    ///     .await?;
    /// println!("lease {:x}", session.lease_id());
    /// # Ok(()) }
    /// ```
    // The builder is the shape of the API (`Session::new(&client).ttl(..).await`).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(client: &Client) -> SessionBuilder {
        SessionBuilder {
            client: client.clone(),
            ttl: DEFAULT_TTL,
            lease: None,
        }
    }

    /// The session's lease.
    pub fn lease_id(&self) -> i64 {
        self.inner.lease_id
    }

    /// The TTL the server granted (as of the first renewal).
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The client the session runs on.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Why the session no longer keeps its lease alive, or `None` while it does.
    pub fn loss(&self) -> Option<SessionLoss> {
        *self.inner.state.borrow()
    }

    /// Resolves when the session no longer keeps its lease alive, with the reason; never
    /// while renewals succeed. [`SessionLoss::Lease`] with
    /// [`LossReason::Expired`](etcd_lease::LossReason::Expired) means no renewal was
    /// acknowledged within a TTL: the lease may be gone, and another session may hold
    /// your locks.
    pub async fn lost(&self) -> SessionLoss {
        let mut state = self.inner.state.subscribe();
        match state.wait_for(Option::is_some).await {
            Ok(loss) => loss.unwrap_or(SessionLoss::Orphaned),
            // The sender lives in `self`; it cannot be gone.
            Err(_) => SessionLoss::Orphaned,
        }
    }

    /// Ends the session: stops renewing and revokes the lease, which deletes every lock
    /// and candidate key of the session. A lease already gone counts as revoked.
    pub async fn close(&self) -> Result<()> {
        self.end(SessionLoss::Closed);
        match self.inner.client.lease().revoke(self.inner.lease_id).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_lease_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stops renewing the lease without revoking it: its keys stay until the TTL runs out
    /// (or until another session over the same lease, say after a restart, revokes it).
    pub fn orphan(&self) {
        self.end(SessionLoss::Orphaned);
    }

    fn end(&self, loss: SessionLoss) {
        set_loss(&self.inner.state, loss);
        let stop = self
            .inner
            .stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    }

    /// A mutex named `name` (its keys live under `{name}/`) owned by this session.
    pub fn mutex(&self, name: impl IntoBytes) -> Mutex {
        Mutex::new(self, name)
    }

    /// Locks `name` (see [`Mutex::lock`]): resolves with the guard once this session holds
    /// the lock. To lock with a lease of your own:
    /// `Session::new(&client).lease(lease_id).await?.lock(name)`.
    pub async fn lock(&self, name: impl IntoBytes) -> Result<LockGuard> {
        self.mutex(name).lock().await
    }

    /// A read-write lock named `name` (its keys live under `{name}/read/` and
    /// `{name}/write/`) owned by this session.
    pub fn rw_lock(&self, name: impl IntoBytes) -> RwLock {
        RwLock::new(self, name)
    }

    /// A double barrier named `name` for `count` participants, entered with this session
    /// (its keys live under `{name}/`).
    pub fn double_barrier(&self, name: impl IntoBytes, count: usize) -> DoubleBarrier {
        DoubleBarrier::new(self, name, count)
    }

    /// An election named `name` (its candidate keys live under `{name}/`) in which this
    /// session campaigns.
    pub fn election(&self, name: impl IntoBytes) -> Election {
        Election::new(self, name)
    }

    /// This session's key under `prefix`: `{prefix}{lease_id:x}`.
    pub(crate) fn key_in(&self, prefix: &Bytes) -> Bytes {
        let mut key = prefix.to_vec();
        key.extend_from_slice(format!("{:x}", self.inner.lease_id).as_bytes());
        key.into()
    }

    /// The error for a waiter or holder whose session or key is gone.
    pub(crate) fn expired(&self) -> Error {
        Error::SessionExpired {
            lease_id: self.inner.lease_id,
            loss: self.loss(),
        }
    }
}

fn set_loss(state: &watch::Sender<Option<SessionLoss>>, loss: SessionLoss) {
    state.send_if_modified(|current| {
        if current.is_none() {
            *current = Some(loss);
            true
        } else {
            false
        }
    });
}

/// Starts a [`Session`]. Made by [`Session::new`]; await it.
#[must_use = "a session starts only when the builder is awaited"]
pub struct SessionBuilder {
    client: Client,
    ttl: Duration,
    lease: Option<i64>,
}

impl fmt::Debug for SessionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .finish()
    }
}

impl SessionBuilder {
    /// The TTL of the lease granted for the session (whole seconds, rounded up; etcd
    /// raises TTLs below its minimum, 2 s at default settings). Ignored with
    /// [`lease`](Self::lease).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Uses an existing lease instead of granting one: the session keeps it alive, and
    /// [`Session::close`] revokes it. Awaiting fails with
    /// [`Error::LeaseLost`] ([`LossReason::NotFound`](crate::lease::LossReason::NotFound))
    /// when the lease does not exist.
    pub fn lease(mut self, lease_id: i64) -> Self {
        self.lease = Some(lease_id);
        self
    }
}

impl IntoFuture for SessionBuilder {
    type Output = Result<Session>;
    type IntoFuture = BoxFuture<'static, Result<Session>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let SessionBuilder { client, ttl, lease } = self;
            let lessor = client.lease().clone();
            let (lease_id, granted) = match lease {
                Some(id) => (id, false),
                None => (lessor.grant(ttl).await?.id(), true),
            };
            let keep_alive = match lessor.keep_alive(lease_id).await {
                Ok(k) => k,
                Err(e) => {
                    if granted {
                        let _ = lessor.revoke(lease_id).await;
                    }
                    return Err(e);
                }
            };
            let ttl = keep_alive.ttl();
            let (state, _) = watch::channel(None);
            let (stop, stopped) = oneshot::channel::<()>();
            let watched = state.clone();
            tokio::spawn(async move {
                let lost = {
                    let lost = std::pin::pin!(keep_alive.lost());
                    match select(lost, stopped).await {
                        Either::Left((reason, _)) => Some(reason),
                        Either::Right(_) => None,
                    }
                };
                if let Some(reason) = lost {
                    set_loss(&watched, SessionLoss::Lease(reason));
                }
                // Dropping the handle stops the renewals.
                drop(keep_alive);
            });
            Ok(Session {
                inner: Arc::new(Inner {
                    client,
                    lease_id,
                    ttl,
                    state,
                    stop: StdMutex::new(Some(stop)),
                }),
            })
        })
    }
}
