//! Leader election on etcd's fair queue.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_core::IntoBytes;
use etcd_core::kv::{Compare, KeyValue, Op, Put, SortOrder, SortTarget, Txn};
use futures_util::{Stream, StreamExt};

use super::mutex::prefixed;
use super::queue::{self, Cleanup};
use super::{Error, Result, Session};
use crate::Client;

/// An election named `name`: candidates queue under `{name}/` (one key per session,
/// `{name}/{lease_id:x}`, holding the candidate's value) and the leader is the candidate
/// with the lowest create revision.
///
/// ```no_run
/// # async fn example(session: etcd3::concurrency::Session) -> etcd3::Result<()> {
/// use futures_util::StreamExt;
/// let election = session.election("elections/leader");
/// let leadership = election.campaign("node-1").await?;   // resolves when elected
/// leadership.proclaim("node-1:v2").await?;
/// let mut leaders = election.observe();                   // leader values, in order
/// # let _ = leaders.next().await;
/// leadership.resign().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Election {
    session: Session,
    prefix: Bytes,
}

impl Election {
    /// The election `name` for `session`; nothing is sent until a call.
    pub fn new(session: &Session, name: impl IntoBytes) -> Self {
        Self {
            session: session.clone(),
            prefix: prefixed(name.into_bytes()),
        }
    }

    /// The prefix of the candidate keys: `{name}/`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Stands as a candidate with `value` and waits until elected.
    ///
    /// If this session already campaigns here, its key is reused (and its value updated
    /// to `value`). Fails with [`Error::SessionExpired`] as soon as the session is lost or
    /// its candidate key deleted while waiting. Cancel-safe like
    /// [`Mutex::lock`](super::Mutex::lock): dropping the future withdraws the candidacy.
    pub async fn campaign(&self, value: impl IntoBytes) -> Result<Leadership> {
        if self.session.loss().is_some() {
            return Err(self.session.expired());
        }
        let value = value.into_bytes();
        let place =
            queue::enqueue(&self.session, &self.prefix, &self.prefix, value.clone()).await?;
        let cleanup = Cleanup::new(&self.session, &place);
        let leadership = Leadership {
            session: self.session.clone(),
            prefix: self.prefix.clone(),
            key: place.key.clone(),
            revision: place.revision,
            resigned: AtomicBool::new(true),
        };
        if let Some(existing) = &place.existing
            && existing.value() != &value[..]
        {
            leadership.proclaim(value).await?;
        }
        if let Err(e) =
            queue::wait_turn(&self.session, &self.prefix, &place.key, place.revision).await
        {
            cleanup.run().await;
            return Err(e);
        }
        cleanup.disarm();
        leadership.resigned.store(false, Ordering::Relaxed);
        Ok(leadership)
    }

    /// Takes back a leadership known by its key and revision (for example from a
    /// [`Leadership::into_parts`] before a restart that kept the session's lease, or from
    /// the `Election` gRPC service's `LeaderKey`). Nothing is sent: proclaim and resign are
    /// fenced on the revision, so a stale leadership fails with [`Error::NotLeader`].
    pub fn resume(&self, key: impl IntoBytes, revision: i64) -> Leadership {
        Leadership {
            session: self.session.clone(),
            prefix: self.prefix.clone(),
            key: key.into_bytes(),
            revision,
            resigned: AtomicBool::new(false),
        }
    }

    /// The current leader's key-value (key, value, create revision = its term), or `None`
    /// when nobody campaigns.
    pub async fn leader(&self) -> Result<Option<KeyValue>> {
        leader_of(self.session.client(), &self.prefix).await
    }

    /// A stream of the leader's key-value each time the leader or its value changes, in
    /// revision order, starting with the current leader (if any); see [`observe`].
    pub fn observe(&self) -> Observe {
        observe_prefix(self.session.client().clone(), self.prefix.clone())
    }
}

/// The current leader of election `name`, for observers without a session.
pub async fn leader(client: &Client, name: impl IntoBytes) -> Result<Option<KeyValue>> {
    leader_of(client, &prefixed(name.into_bytes())).await
}

async fn leader_of(client: &Client, prefix: &Bytes) -> Result<Option<KeyValue>> {
    let resp = client
        .kv()
        .get(prefix.clone())
        .prefix()
        .sort(SortTarget::CreateRevision, SortOrder::Ascend)
        .limit(1)
        .await?;
    Ok(resp.into_kvs().into_iter().next())
}

/// Observes election `name` without taking part: a stream of the leader's key-value each
/// time the leader or its value changes (a new leader, or a proclaim), in revision order,
/// each state once, starting with the current leader if there is one.
///
/// The stream starts when this is called (a task of its own follows the election; call
/// it within a tokio runtime). It reads the candidates once, then follows one watch on `{name}/`; when the watch's
/// history was compacted it reads again and goes on (a change that happened entirely
/// within the compacted history is then skipped). The stream ends only with an error.
pub fn observe(client: &Client, name: impl IntoBytes) -> Observe {
    observe_prefix(client.clone(), prefixed(name.into_bytes()))
}

fn observe_prefix(client: Client, prefix: Bytes) -> Observe {
    let state = ObserveState {
        client,
        prefix,
        candidates: BTreeMap::new(),
        last: None,
        pending: VecDeque::new(),
        watch: None,
    };
    // A task of its own, so that the stream starts when observe() is called rather than
    // when it is first polled.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut state = state;
        loop {
            let next = {
                let next = std::pin::pin!(state.next());
                let closed = std::pin::pin!(tx.closed());
                match futures_util::future::select(next, closed).await {
                    futures_util::future::Either::Left((next, _)) => next,
                    futures_util::future::Either::Right(_) => return,
                }
            };
            let failed = next.is_err();
            if tx.send(next).await.is_err() || failed {
                return;
            }
        }
    });
    Observe { inner: rx }
}

/// The leader changes of an election, from [`Election::observe`] or [`observe`]: a
/// `Stream` of `Result<KeyValue, Error>`.
pub struct Observe {
    inner: tokio::sync::mpsc::Receiver<Result<KeyValue>>,
}

impl fmt::Debug for Observe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe").finish_non_exhaustive()
    }
}

impl Stream for Observe {
    type Item = Result<KeyValue>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_recv(cx)
    }
}

struct ObserveState {
    client: Client,
    prefix: Bytes,
    /// The candidates by create revision.
    candidates: BTreeMap<i64, KeyValue>,
    /// The last leader state seen: key and mod revision.
    last: Option<(Bytes, i64)>,
    /// Leader states seen but not delivered yet (one watch response can carry several
    /// revisions, each of which may change the leader).
    pending: VecDeque<KeyValue>,
    watch: Option<etcd_watch::WatchStream>,
}

impl ObserveState {
    /// The next leader state different from the last one delivered.
    async fn next(&mut self) -> Result<KeyValue> {
        loop {
            if let Some(leader) = self.pending.pop_front() {
                return Ok(leader);
            }
            if let Some(leader) = self.changed() {
                return Ok(leader);
            }
            let Some(watch) = &mut self.watch else {
                self.reload().await?;
                continue;
            };
            match watch.next().await {
                Some(Ok(resp)) => {
                    let mut events = resp.events().iter().peekable();
                    while let Some(event) = events.next() {
                        let kv = event.kv();
                        match event.kind() {
                            etcd_watch::EventKind::Put => {
                                self.candidates.insert(kv.create_revision(), kv.clone());
                            }
                            etcd_watch::EventKind::Delete => {
                                self.candidates.retain(|_, c| c.key() != kv.key());
                            }
                        }
                        // Every revision's outcome counts, not only the response's last.
                        let revision_done = events
                            .peek()
                            .is_none_or(|next| next.revision() != event.revision());
                        if revision_done && let Some(leader) = self.changed() {
                            self.pending.push_back(leader);
                        }
                    }
                }
                Some(Err(etcd_watch::Error::WatchCompacted { .. })) | None => self.watch = None,
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// The leader, when it differs from the last delivered; records it as delivered.
    fn changed(&mut self) -> Option<KeyValue> {
        let leader = self.candidates.values().next()?;
        let state = (leader.key_bytes().clone(), leader.mod_revision());
        if self.last.as_ref() == Some(&state) {
            return None;
        }
        self.last = Some(state);
        Some(leader.clone())
    }

    /// Reads every candidate and watches the prefix from the read's revision on.
    async fn reload(&mut self) -> Result<()> {
        let resp = self.client.kv().get(self.prefix.clone()).prefix().await?;
        self.candidates = resp
            .kvs()
            .iter()
            .map(|kv| (kv.create_revision(), kv.clone()))
            .collect();
        self.watch = Some(
            self.client
                .watch(self.prefix.clone())
                .prefix()
                .from_revision(resp.revision() + 1)
                .await?,
        );
        Ok(())
    }
}

/// Leadership of an election, from [`Election::campaign`] or [`Election::resume`].
///
/// Proclaim and resign are fenced on the leadership's key and revision: once the
/// candidate key is gone (session lost, resigned elsewhere), they change nothing. Fence
/// the leader's own writes with [`is_leader`](Self::is_leader). Dropping the handle
/// resigns in the background.
#[must_use = "dropping it resigns at once"]
pub struct Leadership {
    session: Session,
    prefix: Bytes,
    key: Bytes,
    revision: i64,
    resigned: AtomicBool,
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("key", &self.key)
            .field("revision", &self.revision)
            .field("lease_id", &self.session.lease_id())
            .finish()
    }
}

impl Leadership {
    /// The candidate key, `{name}/{lease_id:x}`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The election's prefix, `{name}/`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The candidate key's create revision: the term, and the fencing token.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The session that campaigned.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A compare that holds only while this leadership's key exists with its create
    /// revision: put it into the leader's transactions.
    pub fn is_leader(&self) -> Compare {
        Compare::create_revision(self.key.clone()).eq(self.revision)
    }

    /// A transaction on the session's client that already holds
    /// [`is_leader`](Self::is_leader).
    pub fn txn(&self) -> Txn<crate::Kv> {
        self.session.client().kv().txn().when([self.is_leader()])
    }

    /// Publishes a new value as the leader, fenced: fails with [`Error::NotLeader`] when
    /// the leadership key is gone or was recreated.
    pub async fn proclaim(&self, value: impl IntoBytes) -> Result<()> {
        let put = Put::new(self.key.clone(), value).lease(self.session.lease_id());
        let resp = self.txn().then([Op::from(put)]).await?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    /// Steps down: deletes the candidate key if it is still this leadership's. Returns
    /// false when it was already gone. Safe to call again.
    pub async fn resign(&self) -> Result<bool> {
        let resp =
            queue::fenced_delete(self.session.client().kv(), &self.key, self.revision).await?;
        self.resigned.store(true, Ordering::Relaxed);
        Ok(resp.succeeded())
    }

    /// Forgets the handle without resigning, returning the key and revision for
    /// [`Election::resume`].
    pub fn into_parts(self) -> (Bytes, i64) {
        self.resigned.store(true, Ordering::Relaxed);
        (self.key.clone(), self.revision)
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if !self.resigned.load(Ordering::Relaxed)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let resign = queue::fenced_delete(self.session.client().kv(), &self.key, self.revision);
            runtime.spawn(async move {
                let _ = resign.await;
            });
        }
    }
}
