//! The cache's background task: list, watch from the next revision, list again after
//! compaction.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_core::kv::KvService;
use etcd_core::layer::Backoff;
use etcd_core::watch::WatchService;
use etcd_core::{Error, KeyRange, Kv, Result};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Change, Health, Shared, Snapshot, by_key};
use crate::{EventKind, WatchResponse, Watcher};

/// Keys per page when listing.
const PAGE: i64 = 1000;
/// The pause between attempts after failures.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// The range as of one revision (`at`, or the latest), read page by page.
pub(super) async fn list<K: KvService>(
    kv: &Kv<K>,
    range: &KeyRange,
    at: Option<i64>,
) -> Result<Snapshot> {
    let (key, end) = range.clone().into_parts();
    let get = kv.get(key).range_end(end);
    let get = match at {
        Some(revision) => get.revision(revision),
        None => get,
    };
    let mut pages = get.paginate(PAGE);
    let mut kvs = Vec::new();
    while let Some(page) = pages.next().await {
        kvs.extend(page?.into_kvs());
    }
    Ok(Snapshot {
        map: Arc::new(by_key(kvs)),
        revision: pages.revision().unwrap_or_default(),
    })
}

pub(super) async fn run<K, W>(
    kv: Kv<K>,
    watcher: Watcher<W>,
    shared: Arc<Shared>,
    mut progress: mpsc::UnboundedReceiver<i64>,
) where
    K: KvService,
    W: WatchService,
{
    let mut failures = 0u32;
    // The highest revision a waiter wants, and when to ask for progress again.
    let mut wanted = 0i64;
    let mut ask_again: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let from = *shared.revision.borrow() + 1;
        let (key, end) = shared.range.clone().into_parts();
        let opened = watcher
            .watch(key)
            .range_end(end)
            .from_revision(from)
            .progress_notify()
            // A revision of many events (a catch-up pass, a big transaction) comes in
            // pieces the transport can carry; the watch joins them again.
            .fragment()
            .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                failing(&shared, &error, &mut failures).await;
                continue;
            }
        };
        shared.health.send_replace(Health::Watching);
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(response)) => {
                        failures = 0;
                        if response.events().is_empty() {
                            if !response.is_created()
                                && wanted > *shared.revision.borrow()
                                && !progress_to(&kv, &shared, response.revision()).await
                            {
                                // Events are still on their way: ask again shortly.
                                ask_again = Some(Box::pin(tokio::time::sleep(ASK_AGAIN)));
                            }
                        } else {
                            apply(&shared, response);
                        }
                    }
                    Some(Err(Error::WatchCompacted { compact_revision })) => {
                        tracing::info!(compact_revision, "cache cut off by compaction: listing again");
                        relist(&kv, &shared, &mut failures).await;
                        break;
                    }
                    // Watching again would meet the same response: stop, keeping the state.
                    Some(Err(error @ Error::ResponseTooLarge { .. })) => {
                        tracing::warn!(%error, "cache: stopped");
                        shared.health.send_replace(Health::Stopped { error: error.to_string() });
                        return;
                    }
                    Some(Err(error)) => {
                        failing(&shared, &error, &mut failures).await;
                        break;
                    }
                    // The watch ended: watch again from where the cache is.
                    None => break,
                },
                Some(revision) = progress.recv() => {
                    wanted = wanted.max(revision);
                    request_progress(&watcher).await;
                }
                () = async { ask_again.as_mut().expect("armed").await }, if ask_again.is_some() => {
                    ask_again = None;
                    if wanted > *shared.revision.borrow() {
                        request_progress(&watcher).await;
                    }
                }
            }
        }
    }
}

/// How soon to ask for progress again when a notification came ahead of its events.
const ASK_AGAIN: Duration = Duration::from_millis(50);

async fn request_progress<W: WatchService>(watcher: &Watcher<W>) {
    if let Err(error) = watcher.request_progress().await {
        tracing::debug!(%error, "progress request failed");
    }
}

/// A progress notification at `revision`: moves the cache there when nothing in the range
/// changed between its revision and `revision` that it has not applied. etcd 3.4 and 3.5
/// before 3.5.8 may send a notification ahead of events still on their way (etcd
/// #15220), so the range is checked at `revision`: no key modified after the cache's
/// revision, and as many keys as the cache holds. False when events are still to come.
async fn progress_to<K: KvService>(kv: &Kv<K>, shared: &Shared, revision: i64) -> bool {
    let current = *shared.revision.borrow();
    if revision <= current {
        return true;
    }
    let (key, end) = shared.range.clone().into_parts();
    // Both reads at once. Not one read-only transaction: etcd 3.5 refuses every
    // transaction while its backend is over quota, and a cache must go on serving then.
    let modified = kv
        .get(key.clone())
        .range_end(end.clone())
        .revision(revision)
        .min_mod_revision(current + 1)
        .keys_only()
        .limit(1)
        .into_future();
    let count = kv
        .get(key)
        .range_end(end)
        .revision(revision)
        .count_only()
        .into_future();
    match futures_util::future::join(modified, count).await {
        (Ok(modified), Ok(count))
            if modified.kvs().is_empty() && count.count() == shared.read().len() as i64 =>
        {
            shared.write().revision = revision;
            shared.revision.send_replace(revision);
            true
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::debug!(%error, "cache: checking a progress notification failed");
            false
        }
        _ => false,
    }
}

/// Lists the range again until it works, and swaps the new state in.
async fn relist<K: KvService>(kv: &Kv<K>, shared: &Shared, failures: &mut u32) {
    shared.health.send_replace(Health::Relisting);
    loop {
        match list(kv, &shared.range, None).await {
            Ok(snapshot) => {
                shared.swap(snapshot);
                *failures = 0;
                return;
            }
            Err(error) => failing(shared, &error, failures).await,
        }
    }
}

/// Records a failure and waits before the next attempt.
async fn failing(shared: &Shared, error: &Error, failures: &mut u32) {
    tracing::warn!(%error, "cache: failed; retrying");
    shared.health.send_modify(|health| match health {
        Health::Failing { error: last, .. } => *last = error.to_string(),
        other => {
            *other = Health::Failing {
                since: Instant::now(),
                error: error.to_string(),
            }
        }
    });
    tokio::time::sleep(BACKOFF.pause(*failures)).await;
    *failures = failures.saturating_add(1);
}

/// Applies one watch response's events, in order. Events at or below the cache's
/// revision are in its state already (a checked progress notification moved it past
/// them) and are skipped.
fn apply(shared: &Shared, response: WatchResponse) {
    let current = *shared.revision.borrow();
    let mut changes = Vec::with_capacity(response.events().len());
    let mut reached = current;
    {
        let mut state = shared.write();
        let map = Arc::make_mut(&mut state.map);
        for event in response.into_events() {
            let revision = event.revision();
            if revision <= current {
                continue; // already reflected
            }
            let (kind, kv, _) = event.into_parts();
            let key = kv.key_bytes().clone();
            changes.push(match kind {
                EventKind::Put => {
                    let prev = map.insert(key, kv.clone());
                    Change::Put { kv, prev }
                }
                EventKind::Delete => Change::Delete {
                    prev: map.remove(&key),
                    key,
                    revision,
                },
            });
            reached = reached.max(revision);
        }
        state.revision = reached;
    }
    for change in changes {
        let _ = shared.changes.send(change);
    }
    shared.revision.send_replace(reached);
}
