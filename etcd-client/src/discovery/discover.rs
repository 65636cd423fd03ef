//! Following a service's instances: a [`tower::discover::Discover`] over a cache of the
//! service's prefix.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_core::kv::KeyValue;
use etcd_watch::cache::{self, Changes, Snapshot};
use futures_util::Stream;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tower::discover::Change;

use super::Endpoint;
use crate::{Cache, Result};

/// The instances of a service as they come and go, from
/// [`Client::discover`](crate::Client::discover): a [`Stream`] of
/// [`Change::Insert`]`(key, endpoint)` and [`Change::Remove`]`(key)`, hence a
/// [`tower::discover::Discover`] once the endpoints are mapped to services.
///
/// It first inserts every instance registered now, then follows the changes in revision
/// order. An instance whose value changes is inserted again with the new endpoint (tower's
/// balancers replace it). Values that name no endpoint (see [`Endpoint::parse`]) are
/// skipped with a warning, and remove the instance if it was known. The stream is backed
/// by a [`Cache`] of the prefix, on the client's watch stream: it survives member failures,
/// and after compaction cut it off, it lists again and reports only the difference. Its
/// items are never errors (the `Result` is what `Discover` asks for); it does not end
/// while the client lives.
#[must_use = "streams do nothing unless polled"]
pub struct Discovery {
    inner: BoxStream<'static, Result<Change<String, Endpoint>>>,
    cache: Cache,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("range", self.cache.range())
            .field("revision", &self.cache.revision())
            .finish()
    }
}

impl Discovery {
    pub(crate) fn new(cache: Cache) -> Self {
        // Subscribed before the snapshot is taken: changes up to the snapshot's revision
        // are in it and skipped, later ones follow.
        let changes = cache.changes();
        let snapshot = cache.snapshot();
        let mut state = State {
            changes,
            listed_at: snapshot.revision(),
            known: HashMap::new(),
            pending: VecDeque::new(),
        };
        state.relisted(&snapshot);
        let inner = futures_util::stream::unfold(state, |mut state| async move {
            let change = state.next().await?;
            Some((Ok(change), state))
        })
        .boxed();
        Self { inner, cache }
    }

    /// The instances known now, by key (what the stream has reported so far and what is
    /// still to come, as of the cache's revision).
    pub fn endpoints(&self) -> Vec<(String, Endpoint)> {
        self.cache
            .snapshot()
            .iter()
            .filter_map(|kv| Some((key_of(kv), Endpoint::parse(kv.value()).ok()?)))
            .collect()
    }
}

impl Stream for Discovery {
    type Item = Result<Change<String, Endpoint>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct State {
    changes: Changes,
    /// The revision of the first list: changes at or below it are in it.
    listed_at: i64,
    /// What the consumer has been told.
    known: HashMap<String, Endpoint>,
    pending: VecDeque<Change<String, Endpoint>>,
}

impl State {
    async fn next(&mut self) -> Option<Change<String, Endpoint>> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Some(change);
            }
            let change = self.changes.next().await?;
            match change {
                cache::Change::Relisted(snapshot) => self.relisted(&snapshot),
                change if change.revision() <= self.listed_at => {}
                cache::Change::Put { kv, .. } => self.put(&kv),
                cache::Change::Delete { key, .. } => {
                    self.remove(String::from_utf8_lossy(&key).into_owned())
                }
            }
        }
    }

    fn put(&mut self, kv: &KeyValue) {
        let key = key_of(kv);
        match endpoint_of(kv) {
            Some(endpoint) => {
                if self.known.get(&key) != Some(&endpoint) {
                    self.known.insert(key.clone(), endpoint.clone());
                    self.pending.push_back(Change::Insert(key, endpoint));
                }
            }
            None => self.remove(key),
        }
    }

    fn remove(&mut self, key: String) {
        if self.known.remove(&key).is_some() {
            self.pending.push_back(Change::Remove(key));
        }
    }

    /// The whole state anew: removes what is gone, inserts what is new or changed.
    fn relisted(&mut self, snapshot: &Snapshot) {
        self.listed_at = self.listed_at.max(snapshot.revision());
        let now: HashMap<String, Endpoint> = snapshot
            .iter()
            .filter_map(|kv| Some((key_of(kv), endpoint_of(kv)?)))
            .collect();
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|key| !now.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            self.remove(key);
        }
        let mut added: Vec<(String, Endpoint)> = now.into_iter().collect();
        added.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, endpoint) in added {
            if self.known.get(&key) != Some(&endpoint) {
                self.known.insert(key.clone(), endpoint.clone());
                self.pending.push_back(Change::Insert(key, endpoint));
            }
        }
    }
}

fn key_of(kv: &KeyValue) -> String {
    String::from_utf8_lossy(kv.key()).into_owned()
}

/// The endpoint a key names, or `None` (with a warning) when its value names none.
fn endpoint_of(kv: &KeyValue) -> Option<Endpoint> {
    match Endpoint::parse(kv.value()) {
        Ok(endpoint) => Some(endpoint),
        Err(error) => {
            tracing::warn!(key = %String::from_utf8_lossy(kv.key()), %error, "discovery: skipping a value that names no endpoint");
            None
        }
    }
}
