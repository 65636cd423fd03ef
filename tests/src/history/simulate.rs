//! etcd's semantics for one request at one place in the order: what it returns and what it
//! changes, given the replayed state before it.

use std::collections::BTreeMap;

use super::model::{
    Compare, CompareOp, CompareTarget, DeleteReq, DeleteResp, GetReq, GetResp, Kv, PutReq, PutResp,
    TxnOp, TxnResult, in_range,
};
use super::replay::Replay;

/// The state seen by a request: the replay at `base`, with the request's own earlier
/// changes on top.
#[derive(Debug)]
pub(crate) struct Overlay<'a> {
    replay: &'a Replay,
    base: i64,
    /// The revision the request's writes take.
    write_revision: i64,
    changes: BTreeMap<String, Option<Kv>>,
}

impl<'a> Overlay<'a> {
    pub(crate) fn new(replay: &'a Replay, base: i64, write_revision: i64) -> Self {
        Self {
            replay,
            base,
            write_revision,
            changes: BTreeMap::new(),
        }
    }

    /// The keys changed, with what they hold now.
    pub(crate) fn changes(&self) -> &BTreeMap<String, Option<Kv>> {
        &self.changes
    }

    fn get(&self, key: &str) -> Option<Kv> {
        match self.changes.get(key) {
            Some(kv) => kv.clone(),
            None => self.replay.get(key, self.base).cloned(),
        }
    }

    fn range(&self, key: &str, end: Option<&str>) -> Vec<Kv> {
        let mut live: BTreeMap<String, Kv> = self
            .replay
            .range(key, end, self.base)
            .into_iter()
            .map(|kv| (kv.key.clone(), kv.clone()))
            .collect();
        for (k, kv) in &self.changes {
            if in_range(k, key, end) {
                match kv {
                    Some(kv) => live.insert(k.clone(), kv.clone()),
                    None => live.remove(k),
                };
            }
        }
        live.into_values().collect()
    }

    /// Whether every compare holds.
    pub(crate) fn compares_hold(&self, compares: &[Compare]) -> bool {
        compares.iter().all(|c| self.compare(c))
    }

    fn compare(&self, compare: &Compare) -> bool {
        let kv = self.get(&compare.key);
        let ordering = match &compare.target {
            CompareTarget::Value(v) => match &kv {
                // etcd: a value compare on a missing key is false whatever the operator.
                None => return false,
                Some(kv) => kv.value.as_str().cmp(v.as_str()),
            },
            CompareTarget::Version(n) => kv.as_ref().map_or(0, |kv| kv.version).cmp(n),
            CompareTarget::Create(n) => kv.as_ref().map_or(0, |kv| kv.create_revision).cmp(n),
            CompareTarget::Mod(n) => kv.as_ref().map_or(0, |kv| kv.mod_revision).cmp(n),
            CompareTarget::Lease(n) => kv.as_ref().map_or(0, |kv| kv.lease).cmp(n),
        };
        match compare.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Less => ordering.is_lt(),
            CompareOp::Greater => ordering.is_gt(),
        }
    }

    /// Runs one operation; returns what it answers.
    pub(crate) fn apply(&mut self, op: &TxnOp) -> TxnResult {
        match op {
            TxnOp::Get(get) => TxnResult::Get(self.get_range(get)),
            TxnOp::Put(put) => TxnResult::Put(self.put(put)),
            TxnOp::Delete(delete) => TxnResult::Delete(self.delete(delete)),
        }
    }

    /// A range read at the overlay (or, with an explicit revision, at that revision).
    pub(crate) fn get_range(&self, get: &GetReq) -> GetResp {
        let live = if get.revision > 0 {
            self.replay
                .range(&get.key, get.end.as_deref(), get.revision)
                .into_iter()
                .cloned()
                .collect()
        } else {
            self.range(&get.key, get.end.as_deref())
        };
        range_answer(get, live, self.base)
    }

    fn put(&mut self, put: &PutReq) -> PutResp {
        let prev = self.get(&put.key);
        let kv = Kv {
            key: put.key.clone(),
            value: put.value.clone(),
            create_revision: prev
                .as_ref()
                .map_or(self.write_revision, |p| p.create_revision),
            mod_revision: self.write_revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease: put.lease,
        };
        self.changes.insert(put.key.clone(), Some(kv));
        PutResp {
            revision: self.write_revision,
            prev: if put.prev_kv { prev } else { None },
        }
    }

    fn delete(&mut self, delete: &DeleteReq) -> DeleteResp {
        let live = self.range(&delete.key, delete.end.as_deref());
        for kv in &live {
            self.changes.insert(kv.key.clone(), None);
        }
        DeleteResp {
            revision: self.write_revision,
            deleted: live.len() as i64,
            prev_kvs: if delete.prev_kv { live } else { Vec::new() },
        }
    }
}

/// What a range read answers, given the live key-values of its range in key order.
pub(crate) fn range_answer(get: &GetReq, live: Vec<Kv>, revision: i64) -> GetResp {
    let count = live.len() as i64;
    let mut kvs = if get.count_only { Vec::new() } else { live };
    if get.limit > 0 && kvs.len() as i64 > get.limit {
        kvs.truncate(get.limit as usize);
    }
    if get.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    let more = get.limit > 0 && count > get.limit;
    GetResp {
        revision,
        kvs,
        count,
        more,
    }
}

/// Whether an answer matches the expected one, on the fields the request asked for
/// (header revisions are checked elsewhere).
pub(crate) fn result_matches(op: &TxnOp, got: &TxnResult, want: &TxnResult) -> bool {
    match (op, got, want) {
        (TxnOp::Get(_), TxnResult::Get(got), TxnResult::Get(want)) => {
            got.kvs == want.kvs && got.count == want.count && got.more == want.more
        }
        (TxnOp::Put(put), TxnResult::Put(got), TxnResult::Put(want)) => {
            !put.prev_kv || got.prev == want.prev
        }
        (TxnOp::Delete(delete), TxnResult::Delete(got), TxnResult::Delete(want)) => {
            got.deleted == want.deleted && (!delete.prev_kv || got.prev_kvs == want.prev_kvs)
        }
        _ => false,
    }
}
