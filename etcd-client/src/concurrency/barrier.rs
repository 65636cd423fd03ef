//! Barriers: a single barrier held by one key, and a double barrier that `count`
//! participants enter and leave together.

use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use etcd_core::IntoBytes;
use etcd_core::kv::{Compare, Get, KeyValue, Op, OpResponse, Put, SortOrder, SortTarget, Txn};
use futures_util::StreamExt;
use futures_util::future::{Either, select};

use super::mutex::prefixed;
use super::queue::{self, Cleanup};
use super::{Error, Result, Session};
use crate::Client;

/// A barrier named `name`: while the key `name` exists, [`wait`](Self::wait) blocks;
/// [`release`](Self::release) deletes the key and lets every waiter through at once.
/// No session is needed (the key has no lease: a holder that dies leaves the barrier
/// held).
///
/// Waiters read the key and watch it from the read's revision on: no polling, and no
/// deletion is missed between the read and the watch.
///
/// ```no_run
/// # async fn example(client: etcd3::Client) -> etcd3::Result<()> {
/// let barrier = client.barrier("deploy/gate");
/// barrier.hold().await?;
/// let waiter = {
///     let barrier = barrier.clone();
///     tokio::spawn(async move { barrier.wait().await })
/// };
/// // ... prepare ...
/// barrier.release().await?;
/// waiter.await.unwrap()?;                 // returns once the key is gone
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Barrier {
    client: Client,
    key: Bytes,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").field("key", &self.key).finish()
    }
}

impl Barrier {
    /// The barrier `name` on `client`; nothing is sent until a call.
    pub fn new(client: &Client, name: impl IntoBytes) -> Self {
        Self {
            client: client.clone(),
            key: name.into_bytes(),
        }
    }

    /// The barrier's key, `name`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Holds the barrier: puts its key unless it exists. Returns the key's create
    /// revision (this hold's, or the existing one's).
    pub async fn hold(&self) -> Result<i64> {
        let resp = self
            .client
            .kv()
            .txn()
            .when([Compare::create_revision(self.key.clone()).eq(0)])
            .then([Op::from(Put::new(self.key.clone(), Bytes::new()))])
            .otherwise([Op::get(self.key.clone())])
            .await?;
        if resp.succeeded() {
            return Ok(resp.revision());
        }
        match resp.responses().first() {
            Some(OpResponse::Get(get)) => match get.first() {
                Some(kv) => Ok(kv.create_revision()),
                // Deleted between the compare and the read: impossible in one txn.
                None => Err(Error::Protocol("the barrier key vanished".into())),
            },
            _ => Err(Error::Protocol("the barrier key was not read".into())),
        }
    }

    /// Releases the barrier: deletes its key. True when it was held.
    pub async fn release(&self) -> Result<bool> {
        Ok(self.client.kv().delete(self.key.clone()).await?.deleted() > 0)
    }

    /// Whether the barrier is held (one read).
    pub async fn is_held(&self) -> Result<bool> {
        Ok(self
            .client
            .kv()
            .get(self.key.clone())
            .await?
            .first()
            .is_some())
    }

    /// Returns once the barrier is not held: at once when the key does not exist,
    /// otherwise when a watch from the read's revision on sees it deleted.
    pub async fn wait(&self) -> Result<()> {
        loop {
            let resp = self.client.kv().get(self.key.clone()).await?;
            if resp.first().is_none() {
                return Ok(());
            }
            if deleted_after(&self.client, &self.key, resp.revision()).await? {
                return Ok(());
            }
        }
    }
}

/// Waits until `key` is deleted after revision `after`: true when a watch saw it, false
/// when the watch's history was compacted (read again).
async fn deleted_after(client: &Client, key: &Bytes, after: i64) -> Result<bool> {
    let mut deletes = client
        .watch(key.clone())
        .from_revision(after + 1)
        .no_put()
        .await?;
    loop {
        match deletes.next().await {
            Some(Ok(resp)) if !resp.events().is_empty() => return Ok(true),
            Some(Ok(_)) => {}
            Some(Err(etcd_watch::Error::WatchCompacted { .. })) | None => return Ok(false),
            Some(Err(e)) => return Err(e),
        }
    }
}

/// How often the participant completing a double barrier sends the ready key again.
const READY_RETRIES: usize = 20;

/// A double barrier named `name` for `count` participants: [`enter`](Self::enter) returns
/// once `count` participants have entered, [`Entered::leave`] once all of them have left.
///
/// Each participant puts `{name}/waiters/{lease_id:x}` under its session (one session per
/// participant). The one whose key completes the count puts `{name}/ready`; the others
/// watch for that put. To leave, the participant with the oldest key waits for the newest
/// to be deleted; every other deletes its key and waits for the oldest's deletion, which
/// comes last (the oldest deletes `{name}/ready` and its key once alone): nobody watches
/// more than one key, and a participant whose session ends drops out (its key goes with
/// the lease).
///
/// ```no_run
/// # async fn example(session: etcd3::concurrency::Session) -> etcd3::Result<()> {
/// let barrier = session.double_barrier("jobs/phase", 3);
/// let entered = barrier.enter().await?;    // all three are in
/// // ... work together ...
/// entered.leave().await?;                  // all three are out
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DoubleBarrier {
    session: Session,
    waiters: Bytes,
    ready: Bytes,
    count: usize,
}

impl fmt::Debug for DoubleBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoubleBarrier")
            .field("waiters", &self.waiters)
            .field("count", &self.count)
            .field("lease_id", &self.session.lease_id())
            .finish()
    }
}

impl DoubleBarrier {
    /// The double barrier `name` for `count` participants, entered with `session`;
    /// nothing is sent until [`enter`](Self::enter).
    pub fn new(session: &Session, name: impl IntoBytes, count: usize) -> Self {
        let prefix = prefixed(name.into_bytes());
        let join = |suffix: &[u8]| {
            let mut key = BytesMut::from(&prefix[..]);
            key.extend_from_slice(suffix);
            key.freeze()
        };
        Self {
            waiters: join(b"waiters/"),
            ready: join(b"ready"),
            session: session.clone(),
            count,
        }
    }

    /// The participants' prefix, `{name}/waiters/`.
    pub fn waiters_prefix(&self) -> &[u8] {
        &self.waiters
    }

    /// The key the participant completing the count puts, `{name}/ready`.
    pub fn ready_key(&self) -> &[u8] {
        &self.ready
    }

    /// Enters: puts this session's key and returns once `count` participants have
    /// entered.
    ///
    /// Fails with [`Error::BarrierFull`] (withdrawing its key) when `count` had already
    /// entered, and with [`Error::SessionExpired`] as soon as the session is lost or its
    /// key deleted while waiting. Cancel-safe: dropping the future before it resolves
    /// deletes the key (in the background), and so does any error.
    pub async fn enter(&self) -> Result<Entered> {
        if self.session.loss().is_some() {
            return Err(self.session.expired());
        }
        let key = self.session.key_in(&self.waiters);
        let count = Op::from(Get::new(self.waiters.clone()).prefix().count_only());
        let resp = self
            .session
            .client()
            .kv()
            .txn()
            .when([Compare::create_revision(key.clone()).eq(0)])
            .then([
                Op::from(Put::new(key.clone(), Bytes::new()).lease(self.session.lease_id())),
                count.clone(),
                Op::get(self.ready.clone()),
            ])
            .otherwise([Op::get(key.clone()), count, Op::get(self.ready.clone())])
            .await?;
        let created = resp.succeeded();
        let txn_revision = resp.revision();
        let mut responses = resp.into_responses().into_iter();
        let first = responses.next();
        let (Some(OpResponse::Get(count)), Some(OpResponse::Get(ready))) =
            (responses.next(), responses.next())
        else {
            return Err(Error::Protocol(
                "the barrier's waiters were not read".into(),
            ));
        };
        let revision = if created {
            txn_revision
        } else {
            match first {
                Some(OpResponse::Get(get)) if get.first().is_some() => get
                    .first()
                    .map(KeyValue::create_revision)
                    .unwrap_or_default(),
                _ => return Err(Error::Protocol("the session's waiter key vanished".into())),
            }
        };
        let cleanup = Cleanup::for_key(&self.session, &key, revision, created);
        let entered = usize::try_from(count.count()).unwrap_or_default();
        if entered > self.count {
            cleanup.run().await;
            return Err(Error::BarrierFull { count: self.count });
        }
        let released = ready.first().is_some_and(|r| r.mod_revision() > revision);
        if entered == self.count && !released {
            if let Err(e) = self.put_ready().await {
                cleanup.run().await;
                return Err(e);
            }
        } else if !released && let Err(e) = self.wait_ready(&key, revision, txn_revision).await {
            cleanup.run().await;
            return Err(e);
        }
        cleanup.disarm();
        Ok(Entered {
            barrier: self.clone(),
            key,
            revision,
            left: AtomicBool::new(false),
        })
    }

    /// Puts the ready key, sent again after a failure (a second put only wakes the
    /// waiters again): the others wait for it.
    async fn put_ready(&self) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.session.client().kv().put(self.ready.clone(), "").await {
                Ok(_) => return Ok(()),
                Err(e) if attempt >= READY_RETRIES || self.session.loss().is_some() => {
                    return Err(e);
                }
                Err(_) => attempt += 1,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Waits for a put of the ready key after `from`, racing the session's loss.
    async fn wait_ready(&self, key: &Bytes, revision: i64, from: i64) -> Result<()> {
        let expired = queue::expiry(&self.session, key, revision).await?;
        let client = self.session.client();
        let ready = async {
            let mut from = from;
            loop {
                let mut puts = client
                    .watch(self.ready.clone())
                    .from_revision(from + 1)
                    .no_delete()
                    .await?;
                loop {
                    match puts.next().await {
                        Some(Ok(resp)) if !resp.events().is_empty() => return Ok(()),
                        Some(Ok(_)) => {}
                        Some(Err(etcd_watch::Error::WatchCompacted { .. })) | None => break,
                        Some(Err(e)) => return Err(e),
                    }
                }
                // Compacted: read again.
                let resp = client.kv().get(self.ready.clone()).await?;
                if resp.first().is_some_and(|r| r.mod_revision() > revision) {
                    return Ok(());
                }
                from = resp.revision();
            }
        };
        match select(pin!(ready), pin!(expired)).await {
            Either::Left((done, _)) => done,
            Either::Right((expired, _)) => Err(expired),
        }
    }
}

/// A participant inside a [`DoubleBarrier`]: its waiter key and that key's create revision
/// (the fencing token of the participation).
///
/// [`leave`](Self::leave) waits until every participant has left; dropping the guard
/// without leaving deletes the key in the background (fenced), which lets the others leave
/// without waiting for this one.
#[must_use = "dropping it leaves the barrier without waiting for the others"]
pub struct Entered {
    barrier: DoubleBarrier,
    key: Bytes,
    revision: i64,
    left: AtomicBool,
}

impl fmt::Debug for Entered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entered")
            .field("key", &self.key)
            .field("revision", &self.revision)
            .finish()
    }
}

impl Entered {
    /// The participant's key, `{name}/waiters/{lease_id:x}`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The key's create revision: the fencing token of this participation.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// A compare that holds only while this participant's key exists with its create
    /// revision: put it into transactions to write only while inside the barrier.
    pub fn is_owner(&self) -> Compare {
        Compare::create_revision(self.key.clone()).eq(self.revision)
    }

    /// A transaction on the session's client that already holds
    /// [`is_owner`](Self::is_owner).
    pub fn txn(&self) -> Txn<crate::Kv> {
        self.barrier
            .session
            .client()
            .kv()
            .txn()
            .when([self.is_owner()])
    }

    /// Leaves: returns once every participant has left (Go's algorithm: the oldest waits
    /// for the newest to go, each other deletes its key and waits for the oldest's
    /// deletion; the oldest, alone at last, deletes `{name}/ready` and its key).
    ///
    /// Fails with [`Error::SessionExpired`] when the session is lost while the oldest
    /// waits. Safe to call again after an error.
    pub async fn leave(&self) -> Result<()> {
        let b = &self.barrier;
        let client = b.session.client();
        loop {
            let resp = client
                .kv()
                .get(b.waiters.clone())
                .prefix()
                .sort(SortTarget::CreateRevision, SortOrder::Ascend)
                .await?;
            let read = resp.revision();
            let kvs = resp.into_kvs();
            let (Some(lowest), Some(highest)) = (kvs.first(), kvs.last()) else {
                self.left.store(true, Ordering::Relaxed);
                return Ok(());
            };
            let is_lowest =
                lowest.key() == &self.key[..] && lowest.create_revision() == self.revision;
            if is_lowest && kvs.len() == 1 {
                // The last one out.
                let resp = self
                    .txn()
                    .then([Op::delete(b.ready.clone()), Op::delete(self.key.clone())])
                    .await?;
                if resp.succeeded() {
                    self.left.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                // The key went with the session meanwhile: look again.
                continue;
            }
            if is_lowest {
                let highest = highest.key_bytes().clone();
                let gone = pin!(deleted_after(client, &highest, read));
                let lost = pin!(b.session.lost());
                match select(gone, lost).await {
                    Either::Left((done, _)) => {
                        done?;
                    }
                    Either::Right(_) => return Err(b.session.expired()),
                }
                continue;
            }
            if kvs
                .iter()
                .any(|kv| kv.key() == &self.key[..] && kv.create_revision() == self.revision)
            {
                queue::fenced_delete(client.kv(), &self.key, self.revision).await?;
            }
            self.left.store(true, Ordering::Relaxed);
            deleted_after(client, lowest.key_bytes(), read).await?;
        }
    }

    /// Forgets the guard without deleting the key, returning its key and revision.
    pub fn into_parts(self) -> (Bytes, i64) {
        self.left.store(true, Ordering::Relaxed);
        (self.key.clone(), self.revision)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if !self.left.load(Ordering::Relaxed)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let delete =
                queue::fenced_delete(self.barrier.session.client().kv(), &self.key, self.revision);
            runtime.spawn(async move {
                let _ = delete.await;
            });
        }
    }
}
