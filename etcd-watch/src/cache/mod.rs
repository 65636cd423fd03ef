//! A local copy of a range of keys, kept in step with etcd: listed at one revision, then
//! updated from a watch starting at the next, and listed again when compaction cuts the
//! watch off.
//!
//! ```no_run
//! # async fn example<K: etcd_core::kv::KvService, W: etcd_core::watch::WatchService>(
//! #     kv: etcd_core::Kv<K>, watcher: etcd_watch::Watcher<W>,
//! # ) -> etcd_core::Result<()> {
//! use etcd_core::KeyRange;
//! use etcd_watch::cache::Cache;
//!
//! let cache = Cache::start(kv.clone(), watcher, KeyRange::prefix("config/")).await?;
//! let written = kv.put("config/mode", "fast").await?.revision();
//! cache.wait_for(written).await?;                // read your own write, locally
//! assert_eq!(cache.get("config/mode").unwrap().value(), b"fast");
//! # Ok(()) }
//! ```

mod changes;
mod snapshot;
mod task;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use etcd_core::kv::{KeyValue, KvService};
use etcd_core::watch::WatchService;
use etcd_core::{Error, KeyRange, Kv, Result};
use tokio::sync::{broadcast, mpsc, watch};

use crate::Watcher;
pub use changes::{Change, Changes};
pub use snapshot::Snapshot;

/// How many changes a slow subscriber may fall behind before it is given the whole state
/// again ([`Change::Relisted`]) instead of the changes it missed.
const CHANGES_BUFFER: usize = 4096;

/// What a [`Cache`] is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Up to date with the watch.
    Watching,
    /// Reading the range again after compaction cut the watch off.
    Relisting,
    /// Failing since `since`, retrying; `error` is the last failure. The cache keeps
    /// serving the state it has.
    Failing {
        /// When the failures began.
        since: Instant,
        /// The last one.
        error: String,
    },
    /// Stopped for good: a change in the range could not be read (a watch response over
    /// the client's `max_response_size`). The cache keeps serving the state it has, at
    /// the revision it had; [`Cache::wait_for`] a later revision fails.
    Stopped {
        /// Why.
        error: String,
    },
}

/// A local copy of a range of keys, kept in step with etcd. Cheap to clone: clones share
/// the copy and its one background task, which ends when the last clone is dropped.
///
/// Reads ([`get`](Self::get), [`snapshot`](Self::snapshot), [`len`](Self::len)) are local
/// and never wait. [`revision`](Self::revision) is the revision the copy reflects: every
/// change up to it and none after; [`wait_for`](Self::wait_for) waits until it reaches a
/// revision (read your writes). [`changes`](Self::changes) is a stream of what changed.
///
/// The copy is first listed page by page at one revision, then follows a watch from the
/// next revision on the watcher's stream (many caches share one). When compaction passes
/// the watch's next revision (the cache fell too far behind, or was cut off), the range is
/// listed again and the new state swapped in at once ([`Change::Relisted`]).
#[derive(Clone, Debug)]
pub struct Cache {
    shared: Arc<Shared>,
    _task: Arc<TaskGuard>,
}

#[derive(Debug)]
struct Shared {
    range: KeyRange,
    state: RwLock<Snapshot>,
    /// The revision reflected, for waiters.
    revision: watch::Sender<i64>,
    health: watch::Sender<Health>,
    changes: broadcast::Sender<Change>,
    /// Asks the task for a progress notification (a waiter wants a revision the range
    /// may never reach by its own changes).
    progress: mpsc::UnboundedSender<i64>,
}

/// Ends the task with the last clone of the cache.
#[derive(Debug)]
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Cache {
    /// Lists `range` through `kv` and starts following it through `watcher`; resolves
    /// once the first list is in (the cache is then ready), or fails with the list's
    /// error.
    pub async fn start<K, W>(kv: Kv<K>, watcher: Watcher<W>, range: KeyRange) -> Result<Self>
    where
        K: KvService,
        W: WatchService,
    {
        Self::list_and_follow(kv, watcher, range, None).await
    }

    /// Lists `range` as it was at `revision` and follows it from the next revision on:
    /// the copy first reflects `revision`, then catches up with every change since, in
    /// revision order. For a process that resumes from a
    /// revision it already knows, such as the one a saved copy was taken at. A `revision`
    /// compaction has passed fails with the server's
    /// [`Compacted`](etcd_core::ServerErrorKind::Compacted) error; a revision ahead of the
    /// store's fails as a future revision.
    pub async fn start_at<K, W>(
        kv: Kv<K>,
        watcher: Watcher<W>,
        range: KeyRange,
        revision: i64,
    ) -> Result<Self>
    where
        K: KvService,
        W: WatchService,
    {
        Self::list_and_follow(kv, watcher, range, Some(revision)).await
    }

    async fn list_and_follow<K, W>(
        kv: Kv<K>,
        watcher: Watcher<W>,
        range: KeyRange,
        at: Option<i64>,
    ) -> Result<Self>
    where
        K: KvService,
        W: WatchService,
    {
        let first = task::list(&kv, &range, at).await?;
        let (revision, _) = watch::channel(first.revision);
        let (health, _) = watch::channel(Health::Watching);
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        let (progress, progress_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            range,
            state: RwLock::new(first),
            revision,
            health,
            changes,
            progress,
        });
        let task = tokio::spawn(task::run(kv, watcher, Arc::clone(&shared), progress_rx));
        Ok(Self {
            shared,
            _task: Arc::new(TaskGuard(task)),
        })
    }

    /// The range this cache holds.
    pub fn range(&self) -> &KeyRange {
        &self.shared.range
    }

    /// The key-value at `key`, as of [`revision`](Self::revision).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<KeyValue> {
        self.shared.read().get(key).cloned()
    }

    /// The whole copy at one revision; cheap (shared until the cache next changes).
    pub fn snapshot(&self) -> Snapshot {
        self.shared.read().clone()
    }

    /// How many keys the copy holds.
    pub fn len(&self) -> usize {
        self.shared.read().len()
    }

    /// The copy holds no key.
    pub fn is_empty(&self) -> bool {
        self.shared.read().is_empty()
    }

    /// The revision the copy reflects.
    pub fn revision(&self) -> i64 {
        *self.shared.revision.borrow()
    }

    /// What the cache is doing.
    pub fn health(&self) -> Health {
        self.shared.health.borrow().clone()
    }

    /// Waits until the copy reflects at least `revision` (for example a write's revision:
    /// reads of the cache then see that write). When no change in the range would bring it
    /// there, the cache asks etcd for a progress notification, and moves to its revision
    /// once a read at that revision shows no change it has not applied.
    pub async fn wait_for(&self, revision: i64) -> Result<()> {
        let mut reflected = self.shared.revision.subscribe();
        if *reflected.borrow_and_update() >= revision {
            return Ok(());
        }
        let _ = self.shared.progress.send(revision);
        let mut health = self.shared.health.subscribe();
        tokio::select! {
            reached = reflected.wait_for(|&r| r >= revision) => reached
                .map(|_| ())
                .map_err(|_| Error::Protocol("the cache's task ended".into())),
            stopped = health.wait_for(|h| matches!(h, Health::Stopped { .. })) => {
                let why = match stopped.as_deref() {
                    Ok(Health::Stopped { error }) => error.clone(),
                    _ => "its task ended".to_owned(),
                };
                Err(Error::Protocol(format!("the cache stopped: {why}").into()))
            }
        }
    }

    /// The changes from now on: each put and delete in revision order, and the whole new
    /// state after a relist. A subscriber that falls more than 4,096 changes behind gets
    /// the whole state again ([`Change::Relisted`]) and carries on from there.
    pub fn changes(&self) -> Changes {
        changes::subscribe(&self.shared)
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the state by `snapshot` at once.
    fn swap(&self, snapshot: Snapshot) {
        let revision = snapshot.revision;
        *self.write() = snapshot.clone();
        let _ = self.changes.send(Change::Relisted(snapshot));
        self.revision.send_replace(revision);
    }
}

/// The map of a list's key-values, by key.
fn by_key(kvs: impl IntoIterator<Item = KeyValue>) -> BTreeMap<Bytes, KeyValue> {
    kvs.into_iter()
        .map(|kv| (kv.key_bytes().clone(), kv))
        .collect()
}
