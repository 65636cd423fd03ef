//! Distributed FIFO and priority queues: items are keys under a prefix, ordered by create
//! revision (and, for the priority queue, by a priority in the key first).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use etcd_core::IntoBytes;
use etcd_core::kv::{Compare, KeyValue, Op, OpResponse, Put, SortOrder, SortTarget};
use futures_util::StreamExt;

use super::mutex::prefixed;
use super::{Error, Result};
use crate::Client;

/// A FIFO queue named `name` whose items are keys under `{name}/`, for producers and
/// consumers on any clients; no session is needed (items are not attached to a lease and
/// outlive their producer).
///
/// [`enqueue`](Self::enqueue) puts a new key `{name}/{random:016x}` (in a transaction that
/// puts it only if it does not exist, so two producers never share a key); the order of
/// the queue is the keys' create revision, the order in which etcd applied the puts.
/// [`dequeue`](Self::dequeue) takes the oldest item and deletes it in a transaction
/// guarded by its mod revision, so exactly one consumer gets each item; when the queue is
/// empty it waits on a watch of the prefix (no polling).
///
/// ```no_run
/// # async fn example(client: etcd3::Client) -> etcd3::Result<()> {
/// let jobs = client.queue("jobs");
/// jobs.enqueue("resize image 17").await?;
/// let job = jobs.dequeue().await?;          // waits while the queue is empty
/// assert_eq!(job.value(), b"resize image 17");
/// # Ok(()) }
/// ```
///
/// # Unknown outcomes
///
/// An `enqueue` that fails with an [unknown outcome](Error::is_outcome_unknown) (the
/// member died with the put in flight) may have enqueued the item: enqueueing it again may
/// deliver it twice. A `dequeue` never loses an item that way: its claim writes a marker
/// key (`{name}.claims/{random:016x}`, deleted again once the claim is known), and a claim
/// whose answer was lost is resolved by sending it again and reading the marker.
/// Dropping a `dequeue` future while its claim is in flight may lose that item.
#[derive(Clone)]
pub struct Queue {
    inner: Items,
}

/// A priority queue named `name`: items are keys `{name}/{priority:05}/{random:016x}`;
/// [`dequeue`](Self::dequeue) takes the item with the lowest priority number, the oldest
/// (by create revision) among those. Otherwise like [`Queue`] (no session needed; exactly
/// one consumer gets each item; waits on a watch when empty).
///
/// ```no_run
/// # async fn example(client: etcd3::Client) -> etcd3::Result<()> {
/// let jobs = client.priority_queue("jobs");
/// jobs.enqueue("routine", 10).await?;
/// jobs.enqueue("urgent", 0).await?;
/// assert_eq!(jobs.dequeue().await?.value(), b"urgent");
/// assert_eq!(jobs.dequeue().await?.priority(), Some(10));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PriorityQueue {
    inner: Items,
}

/// An item of a [`Queue`] or a [`PriorityQueue`]: enqueued, or dequeued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    key: Bytes,
    value: Bytes,
    revision: i64,
    priority: Option<u16>,
}

impl Item {
    /// The item's key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The item's value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as shared bytes.
    pub fn value_bytes(&self) -> &Bytes {
        &self.value
    }

    /// The key's create revision: the item's place in the queue.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The item's priority, for a [`PriorityQueue`]'s items.
    pub fn priority(&self) -> Option<u16> {
        self.priority
    }
}

/// What both queues share: the client and the prefix.
#[derive(Clone)]
struct Items {
    client: Client,
    /// `{name}/`.
    prefix: Bytes,
    /// `{name}.claims/`.
    claims: Bytes,
    priority: bool,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

impl fmt::Debug for PriorityQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityQueue")
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

/// The methods both queues share: the prefix, taking the next item, and the size.
macro_rules! taking {
    ($queue:ident, $next:literal) => {
        impl $queue {
            /// The prefix of the items' keys: `{name}/`.
            pub fn prefix(&self) -> &[u8] {
                &self.inner.prefix
            }

            #[doc = concat!("Takes ", $next, ", waiting (on a watch) while the queue is empty.")]
            pub async fn dequeue(&self) -> Result<Item> {
                self.inner
                    .dequeue(true)
                    .await
                    .map(|item| item.expect("waits"))
            }

            #[doc = concat!("Takes ", $next, ", or returns `None` at once when the queue is empty.")]
            pub async fn try_dequeue(&self) -> Result<Option<Item>> {
                self.inner.dequeue(false).await
            }

            /// How many items the queue holds (one count-only read).
            pub async fn len(&self) -> Result<usize> {
                self.inner.len().await
            }

            /// Whether the queue holds no item (one count-only read).
            pub async fn is_empty(&self) -> Result<bool> {
                Ok(self.len().await? == 0)
            }
        }
    };
}

taking!(Queue, "the oldest item");
taking!(
    PriorityQueue,
    "the oldest item of the lowest priority number"
);

impl Queue {
    /// The queue `name` on `client`; nothing is sent until a call.
    pub fn new(client: &Client, name: impl IntoBytes) -> Self {
        Self {
            inner: Items::new(client, name.into_bytes(), false),
        }
    }

    /// Appends `value`: puts a new key under `{name}/`; its create revision is its place.
    pub async fn enqueue(&self, value: impl IntoBytes) -> Result<Item> {
        self.inner
            .enqueue(self.inner.prefix.clone(), value.into_bytes(), None)
            .await
    }
}

impl PriorityQueue {
    /// The priority queue `name` on `client`; nothing is sent until a call.
    pub fn new(client: &Client, name: impl IntoBytes) -> Self {
        Self {
            inner: Items::new(client, name.into_bytes(), true),
        }
    }

    /// Adds `value` with `priority` (lower numbers first): puts a new key under
    /// `{name}/{priority:05}/`.
    pub async fn enqueue(&self, value: impl IntoBytes, priority: u16) -> Result<Item> {
        let mut prefix = BytesMut::from(&self.inner.prefix[..]);
        prefix.extend_from_slice(format!("{priority:05}/").as_bytes());
        self.inner
            .enqueue(prefix.freeze(), value.into_bytes(), Some(priority))
            .await
    }
}

/// A random 64-bit number (std's randomly keyed hasher over a counter and the clock).
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    RandomState::new().hash_one((COUNTER.fetch_add(1, Ordering::Relaxed), nanos))
}

fn join(prefix: &[u8], suffix: &[u8]) -> Bytes {
    let mut key = BytesMut::with_capacity(prefix.len() + suffix.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(suffix);
    key.freeze()
}

/// How often a claim whose outcome is unknown is sent again before giving up.
const CLAIM_RETRIES: usize = 20;

impl Items {
    fn new(client: &Client, name: Bytes, priority: bool) -> Self {
        Self {
            client: client.clone(),
            claims: join(&name, b".claims/"),
            prefix: prefixed(name),
            priority,
        }
    }

    async fn enqueue(&self, under: Bytes, value: Bytes, priority: Option<u16>) -> Result<Item> {
        loop {
            let key = join(&under, format!("{:016x}", random_u64()).as_bytes());
            let resp = self
                .client
                .kv()
                .txn()
                .when([Compare::create_revision(key.clone()).eq(0)])
                .then([Op::from(Put::new(key.clone(), value.clone()))])
                .await?;
            // Taken (by a 1 in 2^64 chance): draw again.
            if resp.succeeded() {
                return Ok(Item {
                    key,
                    value,
                    revision: resp.revision(),
                    priority,
                });
            }
        }
    }

    async fn len(&self) -> Result<usize> {
        let resp = self
            .client
            .kv()
            .get(self.prefix.clone())
            .prefix()
            .count_only()
            .await?;
        Ok(usize::try_from(resp.count()).unwrap_or_default())
    }

    /// The item to claim next, and the revision of the read that found the queue empty.
    async fn candidate(&self) -> Result<std::result::Result<KeyValue, i64>> {
        let kv = self.client.kv();
        if !self.priority {
            let resp = kv
                .get(self.prefix.clone())
                .prefix()
                .sort(SortTarget::CreateRevision, SortOrder::Ascend)
                .limit(1)
                .await?;
            let revision = resp.revision();
            return Ok(resp.into_kvs().into_iter().next().ok_or(revision));
        }
        loop {
            // The lowest priority present (keys sort by priority first) ...
            let resp = kv
                .get(self.prefix.clone())
                .prefix()
                .sort(SortTarget::Key, SortOrder::Ascend)
                .limit(1)
                .keys_only()
                .await?;
            let revision = resp.revision();
            let Some(lowest) = resp.first() else {
                return Ok(Err(revision));
            };
            // ... and its oldest item.
            let level = self.prefix.len() + 6;
            let under = match lowest.key().get(..level) {
                Some(under) if under.ends_with(b"/") => Bytes::copy_from_slice(under),
                // Not an item of ours: take it by key order.
                _ => lowest.key_bytes().clone(),
            };
            let resp = kv
                .get(under)
                .prefix()
                .sort(SortTarget::CreateRevision, SortOrder::Ascend)
                .limit(1)
                .await?;
            if let Some(kv) = resp.into_kvs().into_iter().next() {
                return Ok(Ok(kv));
            }
            // Taken meanwhile: look again.
        }
    }

    async fn dequeue(&self, wait: bool) -> Result<Option<Item>> {
        let marker = join(&self.claims, format!("{:016x}", random_u64()).as_bytes());
        let mut marked = false;
        // An item a watch just delivered: claimed without reading the queue again.
        let mut delivered: Option<KeyValue> = None;
        let result = loop {
            let candidate = match delivered.take() {
                Some(kv) => Ok(kv),
                None => match self.candidate().await {
                    Ok(c) => c,
                    Err(e) => break Err(e),
                },
            };
            match candidate {
                Ok(kv) => {
                    marked = true;
                    match self.claim(&kv, &marker).await {
                        Ok(true) => break Ok(Some(self.item(kv))),
                        Ok(false) => {}
                        Err(e) => break Err(e),
                    }
                }
                Err(_) if !wait => break Ok(None),
                Err(revision) => match self.wait_for_put(revision).await {
                    Ok(kv) => delivered = kv,
                    Err(e) => break Err(e),
                },
            }
        };
        if marked {
            let delete = self.client.kv().delete(marker);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = delete.await;
                });
            }
        }
        result
    }

    fn item(&self, kv: KeyValue) -> Item {
        let priority = self
            .priority
            .then(|| {
                let digits = kv.key().get(self.prefix.len()..self.prefix.len() + 5)?;
                std::str::from_utf8(digits).ok()?.parse().ok()
            })
            .flatten();
        Item {
            key: kv.key_bytes().clone(),
            value: kv.value_bytes().clone(),
            revision: kv.create_revision(),
            priority,
        }
    }

    /// Deletes `kv` if nobody changed it since it was read, writing `marker` = its key in
    /// the same transaction. True when this claim took it. A claim whose outcome is unknown
    /// is sent again until the answer is known: it applied once if the key is gone and the
    /// marker names it.
    async fn claim(&self, kv: &KeyValue, marker: &Bytes) -> Result<bool> {
        let key = kv.key_bytes().clone();
        let mut unknown: Option<Error> = None;
        for attempt in 0..=CLAIM_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let resp = self
                .client
                .kv()
                .txn()
                .when([Compare::mod_revision(key.clone()).eq(kv.mod_revision())])
                .then([
                    Op::delete(key.clone()),
                    Op::from(Put::new(marker.clone(), key.clone())),
                ])
                .otherwise([Op::get(marker.clone())])
                .await;
            match resp {
                Ok(resp) if resp.succeeded() => return Ok(true),
                // Taken by someone else, unless an earlier attempt of ours applied: then
                // the marker names the key.
                Ok(resp) => {
                    let marked = match resp.responses().first() {
                        Some(OpResponse::Get(get)) => get.value() == Some(&key[..]),
                        _ => false,
                    };
                    let ours = unknown.is_some() && marked;
                    if unknown.is_some() {
                        tracing::debug!(key = ?key, ours, "queue claim resolved by its marker");
                    }
                    return Ok(ours);
                }
                Err(e) if e.is_outcome_unknown() => {
                    tracing::debug!(key = ?key, error = %e, "queue claim: outcome unknown, sending it again");
                    unknown = Some(e);
                }
                // Not sent this time, but an earlier attempt may have applied: go on.
                Err(_) if unknown.is_some() => {}
                Err(e) => return Err(e),
            }
        }
        Err(unknown.unwrap_or_else(|| Error::Protocol("the claim was never answered".into())))
    }

    /// Waits for a put under the prefix after `revision` (when the queue was empty), and
    /// returns the item to claim first among those of the first response: the oldest (of
    /// the lowest priority number). `None` when the watch's history was compacted.
    async fn wait_for_put(&self, revision: i64) -> Result<Option<KeyValue>> {
        let mut puts = self
            .client
            .watch(self.prefix.clone())
            .prefix()
            .from_revision(revision + 1)
            .no_delete()
            .await?;
        loop {
            match puts.next().await {
                Some(Ok(resp)) if !resp.events().is_empty() => {
                    // Events come in revision order: the first of the lowest key prefix
                    // (priority) is the oldest of it.
                    let level = |kv: &KeyValue| {
                        if self.priority {
                            kv.key().get(..self.prefix.len() + 5).map(<[u8]>::to_vec)
                        } else {
                            None
                        }
                    };
                    let mut best: Option<&KeyValue> = None;
                    for event in resp.events() {
                        let kv = event.kv();
                        if best.is_none_or(|b| level(kv) < level(b)) {
                            best = Some(kv);
                        }
                    }
                    return Ok(best.cloned());
                }
                Some(Ok(_)) => {}
                // Compacted: read again.
                Some(Err(etcd_watch::Error::WatchCompacted { .. })) | None => return Ok(None),
                Some(Err(e)) => return Err(e),
            }
        }
    }
}
