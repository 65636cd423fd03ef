//! The cache-catchup workload (report only): a local copy of a prefix brought from an
//! old revision to the present, i.e. every event of the history applied to a map.
//!
//! It runs on the watch-replay workload's history and driver ([`replay::run`]): each of
//! the `c` "watches" is a cache of the history's prefix listed at the revision before the
//! history (empty) and caught up to its last revision, so it applies all 20,000 puts.
//! Ours is [`etcd3::Cache::start_at`] on a watcher of its own (`client.new_watcher()`, a
//! gRPC stream per cache, as theirs), then `wait_for(last revision)`. Theirs is what a
//! user of the peer crate writes by hand: a `get` at that revision into a `BTreeMap`, then
//! a fragmented watch from the next revision whose events are put into (or removed from)
//! the map, until it holds every key and has applied the last revision. Both copies are
//! then checked key by key: every history key present once, in key order, with
//! mod_revisions never going back. ops = events applied by all caches / elapsed.

use std::collections::BTreeMap;

use crate::workloads::replay::{self, Keys, Replay};

/// Our cache.
pub(crate) struct Ours(pub(crate) etcd3::Client);

impl replay::Watcher for Ours {
    async fn replay(&self, keys: Keys, replay: &mut Replay) -> Result<(), String> {
        let range = match keys.range_end {
            Some(end) => etcd3::KeyRange::range(keys.key, end),
            None => etcd3::KeyRange::prefix(keys.key),
        };
        let cache = etcd3::Cache::start_at(
            self.0.kv().clone(),
            self.0.new_watcher(),
            range,
            keys.from_rev - 1,
        )
        .await
        .map_err(|e| e.to_string())?;
        cache
            .wait_for(keys.to_rev)
            .await
            .map_err(|e| e.to_string())?;
        for kv in cache.snapshot().iter() {
            replay.event(true, kv.key(), kv.mod_revision());
        }
        Ok(())
    }
}

/// A cache built by hand on their client.
pub(crate) struct Theirs(pub(crate) peer::Client);

impl replay::Watcher for Theirs {
    async fn replay(&self, keys: Keys, replay: &mut Replay) -> Result<(), String> {
        let listed_at = keys.from_rev - 1;
        let get = peer::GetOptions::new().with_revision(listed_at);
        let watch = peer::WatchOptions::new()
            .with_start_revision(keys.from_rev)
            .with_fragment();
        let (get, watch) = match &keys.range_end {
            Some(end) => (get.with_range(end.clone()), watch.with_range(end.clone())),
            None => (get.with_prefix(), watch.with_prefix()),
        };
        let listed = self
            .0
            .kv_client()
            .get(keys.key.clone(), Some(get))
            .await
            .map_err(|e| e.to_string())?;
        let mut map: BTreeMap<Vec<u8>, peer::KeyValue> = listed
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.clone()))
            .collect();
        let mut stream = self
            .0
            .watch_client()
            .watch(keys.key, Some(watch))
            .await
            .map_err(|e| e.to_string())?;
        let mut applied = listed_at;
        while applied < keys.to_rev || (map.len() as u64) < replay.expected() {
            let resp = replay::next_response(&mut stream).await?;
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                match ev.event_type() {
                    peer::EventType::Put => map.insert(kv.key().to_vec(), kv.clone()),
                    peer::EventType::Delete => map.remove(kv.key()),
                };
                applied = applied.max(kv.mod_revision());
            }
        }
        for kv in map.values() {
            replay.event(true, kv.key(), kv.mod_revision());
        }
        Ok(())
    }
}
