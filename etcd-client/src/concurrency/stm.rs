//! Software transactional memory: a function over keys, committed atomically and retried
//! on conflict (etcd's `concurrency/stm.go`).

use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex as StdMutex};

use bytes::Bytes;
use etcd_core::kv::{Compare, Op};
use etcd_core::{IntoBytes, ServerErrorKind};
use futures_util::future::BoxFuture;

use crate::Client;

/// How much a transaction function sees of other clients' writes, and what makes its
/// commit fail (and the function run again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isolation {
    /// Every read sees one snapshot (the revision of the first read), and the commit fails
    /// if any key read **or written** changed since that snapshot. Serializable, and no
    /// write skew on written keys. The default (as in etcd).
    #[default]
    SerializableSnapshot,
    /// Every read sees one snapshot (the revision of the first read), and the commit fails
    /// if any key read changed since it was read. Serializable.
    Serializable,
    /// Each key is read once, at the latest revision, and the commit fails if any key read
    /// changed since it was read: reads repeat, but two keys may be read at different
    /// revisions (the commit still rejects any change, so read-modify-write of the keys
    /// read is safe).
    RepeatableReads,
    /// Reads see the latest committed values and are not checked at commit: the commit
    /// never conflicts. Only for writes that do not depend on what was read.
    ReadCommitted,
}

/// A transaction function being built: made by
/// [`Client::stm`](crate::Client::stm); choose the [`Isolation`] and await it.
///
/// The function gets a [`StmTxn`] handle: it reads through it and buffers writes in it.
/// Once the function returns `Ok`, the writes are committed in one etcd transaction whose
/// compares check the reads (and, under
/// [`SerializableSnapshot`](Isolation::SerializableSnapshot), the writes) against the
/// revisions seen. When another client changed one of those keys in between, the commit
/// fails and the function runs again on a fresh handle, until it commits or fails.
///
/// ```no_run
/// # async fn example(client: etcd3::Client) -> etcd3::Result<()> {
/// use etcd3::concurrency::Isolation;
/// // Move 10 from a to b, atomically, whatever else runs.
/// client
///     .stm(|txn| async move {
///         let parse = |v: Option<bytes::Bytes>| -> i64 {
///             v.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()).unwrap_or(0)
///         };
///         let a = parse(txn.get("accounts/a").await?);
///         let b = parse(txn.get("accounts/b").await?);
///         txn.put("accounts/a", (a - 10).to_string());
///         txn.put("accounts/b", (b + 10).to_string());
///         Ok::<_, etcd3::Error>(())
///     })
///     .isolation(Isolation::Serializable)
///     .await?;
/// # Ok(()) }
/// ```
///
/// A commit is one etcd transaction, so the keys read and written must fit the server's
/// `--max-txn-ops` (128 by default) as compares and operations.
#[must_use = "a transaction function runs only when awaited"]
pub struct Stm<F> {
    client: Client,
    function: F,
    isolation: Isolation,
}

impl<F> fmt::Debug for Stm<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stm")
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
}

impl<F> Stm<F> {
    pub(crate) fn new(client: Client, function: F) -> Self {
        Self {
            client,
            function,
            isolation: Isolation::default(),
        }
    }

    /// The isolation level (default [`Isolation::SerializableSnapshot`]).
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }
}

impl<F, Fut, T, E> IntoFuture for Stm<F>
where
    F: FnMut(StmTxn) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send + 'static,
    E: From<etcd_core::Error> + Send + 'static,
{
    type Output = Result<T, E>;
    type IntoFuture = BoxFuture<'static, Result<T, E>>;

    fn into_future(self) -> Self::IntoFuture {
        let Stm {
            client,
            mut function,
            isolation,
        } = self;
        Box::pin(async move {
            loop {
                let txn = StmTxn {
                    kv: client.kv().clone(),
                    isolation,
                    state: Arc::default(),
                };
                match function(txn.clone()).await {
                    Ok(value) => {
                        if txn.commit().await? {
                            return Ok(value);
                        }
                    }
                    Err(e) if txn.state().conflict => drop(e),
                    Err(e) => return Err(e),
                }
                tracing::trace!("stm conflict, retrying");
            }
        })
    }
}

/// The handle a transaction function reads and writes through. Cheap to clone (clones
/// share the transaction); reads go to etcd, writes are buffered until the commit.
#[derive(Clone)]
pub struct StmTxn {
    kv: crate::Kv,
    isolation: Isolation,
    state: Arc<StdMutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Keys read: value and mod revision (0: absent).
    reads: BTreeMap<Bytes, (Option<Bytes>, i64)>,
    /// Buffered writes (`None`: delete).
    writes: BTreeMap<Bytes, Option<Bytes>>,
    /// The snapshot revision of the serializable levels, from the first read.
    snapshot: Option<i64>,
    /// A read failed in a way that a new attempt fixes (its revision was compacted).
    conflict: bool,
}

impl fmt::Debug for StmTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StmTxn")
            .field("isolation", &self.isolation)
            .field("state", &*self.state())
            .finish()
    }
}

impl StmTxn {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `key`: its buffered write if this transaction wrote it, else the value as of
    /// the isolation level (`None`: absent).
    pub async fn get(&self, key: impl IntoBytes) -> etcd_core::Result<Option<Bytes>> {
        Ok(self.read(key.into_bytes()).await?.0)
    }

    /// The mod revision of `key` as this transaction sees it (0: absent; for a key this
    /// transaction wrote, as last read, or 0 if never read).
    pub async fn rev(&self, key: impl IntoBytes) -> etcd_core::Result<i64> {
        let key = key.into_bytes();
        if self.state().writes.contains_key(&key) {
            return Ok(self.state().reads.get(&key).map_or(0, |r| r.1));
        }
        Ok(self.read(key).await?.1)
    }

    async fn read(&self, key: Bytes) -> etcd_core::Result<(Option<Bytes>, i64)> {
        let snapshot = {
            let state = self.state();
            if let Some(written) = state.writes.get(&key) {
                let rev = state.reads.get(&key).map_or(0, |r| r.1);
                return Ok((written.clone(), rev));
            }
            if self.isolation != Isolation::ReadCommitted
                && let Some(read) = state.reads.get(&key)
            {
                return Ok(read.clone());
            }
            state.snapshot
        };
        let serializable = matches!(
            self.isolation,
            Isolation::Serializable | Isolation::SerializableSnapshot
        );
        let mut get = self.kv.get(key.clone());
        if serializable && let Some(revision) = snapshot {
            get = get.revision(revision);
        }
        let resp = match get.await {
            Ok(resp) => resp,
            Err(e) => {
                if e.server_kind() == Some(ServerErrorKind::Compacted) {
                    self.state().conflict = true;
                }
                return Err(e);
            }
        };
        let read = resp.first().map_or((None, 0), |kv| {
            (Some(kv.value_bytes().clone()), kv.mod_revision())
        });
        let mut state = self.state();
        if serializable && state.snapshot.is_none() {
            state.snapshot = Some(resp.revision());
        }
        if self.isolation != Isolation::ReadCommitted {
            state.reads.entry(key).or_insert_with(|| read.clone());
        }
        Ok(read)
    }

    /// Writes `value` at `key` when the transaction commits.
    pub fn put(&self, key: impl IntoBytes, value: impl IntoBytes) {
        self.state()
            .writes
            .insert(key.into_bytes(), Some(value.into_bytes()));
    }

    /// Deletes `key` when the transaction commits.
    pub fn delete(&self, key: impl IntoBytes) {
        self.state().writes.insert(key.into_bytes(), None);
    }

    /// Commits: true when applied, false on a conflict.
    async fn commit(&self) -> etcd_core::Result<bool> {
        let (compares, ops) = {
            let state = self.state();
            let mut compares = Vec::new();
            if self.isolation != Isolation::ReadCommitted {
                compares.extend(
                    state
                        .reads
                        .iter()
                        .map(|(key, (_, rev))| Compare::mod_revision(key.clone()).eq(*rev)),
                );
            }
            if self.isolation == Isolation::SerializableSnapshot
                && let Some(snapshot) = state.snapshot
            {
                compares.extend(
                    state
                        .writes
                        .keys()
                        .map(|key| Compare::mod_revision(key.clone()).lt(snapshot + 1)),
                );
            }
            let ops: Vec<Op> = state
                .writes
                .iter()
                .map(|(key, value)| match value {
                    Some(value) => Op::put(key.clone(), value.clone()),
                    None => Op::delete(key.clone()),
                })
                .collect();
            (compares, ops)
        };
        if compares.is_empty() && ops.is_empty() {
            return Ok(true);
        }
        Ok(self.kv.txn().when(compares).then(ops).await?.succeeded())
    }
}
