//! What a cache holds at one revision.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use etcd_core::KeyRange;
use etcd_core::kv::KeyValue;

/// The keys of a [`Cache`](super::Cache) as of one revision. Cheap to clone and to take
/// (it shares the cache's map until the cache changes); it never changes itself.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub(super) map: Arc<BTreeMap<Bytes, KeyValue>>,
    pub(super) revision: i64,
}

impl Snapshot {
    /// The revision this snapshot reflects: every change up to it, none after.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The key-value at `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&KeyValue> {
        self.map.get(key.as_ref())
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every key-value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &KeyValue> {
        self.map.values()
    }

    /// The key-values in `range`, in key order.
    pub fn range(&self, range: &KeyRange) -> impl Iterator<Item = &KeyValue> {
        let (start, end) = range.clone().into_parts();
        let upper = match &end[..] {
            // A single key.
            [] => Bound::Included(start.clone()),
            // From the key on.
            [0] => Bound::Unbounded,
            _ => Bound::Excluded(end.clone()),
        };
        self.map
            .range::<Bytes, _>((Bound::Included(start), upper))
            .map(|(_, kv)| kv)
    }
}
