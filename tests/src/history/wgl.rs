//! Step 3: a search for a linearization of each key's operations, independent of the
//! revisions the server reported (Wing & Gong's algorithm with Lowe's memoization, per key
//! as porcupine partitions). It catches what a wrong revision could hide from the witness
//! check, and it checks hand-made histories without revisions.
//!
//! Each key is a register holding `(value, version)` or nothing. Every operation that
//! touches a key is projected onto it: the branch it took (known from its answer, or, for
//! an unknown outcome found applied, from which of its values landed), its operations on
//! that key with their answers, and its compares on that key where they are decisive.
//! Ranges reads, serializable reads and compares on revisions or leases are left to the
//! witness check; histories with range deletes are not searched. Unknown-outcome writes
//! found applied may take effect any time after their call.

use std::collections::{BTreeMap, HashSet};

use super::anomaly::{Anomaly, Report};
use super::model::{Compare, CompareOp, CompareTarget, GetReq, History, Request, TxnOp, TxnResult};
use super::resolve::{Placed, as_txn};

/// Search steps allowed per key before the key is reported inconclusive.
pub const STEP_BUDGET: u64 = 2_000_000;

/// A register's content: the value and its version.
type State = Option<(String, i64)>;

/// One operation as seen by one key.
struct KeyOp {
    call: u64,
    ret: u64,
    /// Compares on this key that must hold (the success branch ran).
    must_hold: Vec<Compare>,
    /// When every compare of the operation is on this key: whether they held.
    decides: Option<bool>,
    /// The operations on this key of the branch that ran, with their answers if known.
    ops: Vec<(TxnOp, Option<TxnResult>)>,
}

/// Checks every key's operations; records what it finds in `report`.
pub(crate) fn check(history: &History, placed: &[Placed], report: &mut Report) {
    let mut per_key: BTreeMap<String, Vec<KeyOp>> = BTreeMap::new();
    let mut leased = HashSet::new();
    for p in placed {
        let op = &history.ops[p.op];
        if let Request::Get(get) = &op.req
            && get.serializable
        {
            continue;
        }
        let txn = as_txn(&op.req);
        let ran = if p.branch { &txn.success } else { &txn.failure };
        if ran
            .iter()
            .any(|o| matches!(o, TxnOp::Delete(d) if d.end.is_some()))
        {
            report
                .inconclusive
                .push("every key (the history has range deletes)".into());
            return;
        }
        let results: Vec<Option<TxnResult>> = match &p.answer {
            Some(answer) => answer.results.iter().cloned().map(Some).collect(),
            None => vec![None; ran.len()],
        };
        let mut keys: BTreeMap<&str, KeyOp> = BTreeMap::new();
        let all_on = |key: &str| txn.compares.iter().all(|c| c.key == key);
        for (o, result) in ran
            .iter()
            .zip(results.into_iter().chain(std::iter::repeat(None)))
        {
            let key = match o {
                TxnOp::Get(get) if get.end.is_some() || get.revision != 0 => continue,
                TxnOp::Get(get) => get.key.as_str(),
                TxnOp::Put(put) => {
                    if put.lease != 0 {
                        leased.insert(put.key.clone());
                    }
                    put.key.as_str()
                }
                TxnOp::Delete(delete) => delete.key.as_str(),
            };
            keys.entry(key)
                .or_insert_with(|| KeyOp {
                    call: op.call,
                    ret: op.ret.unwrap_or(u64::MAX),
                    must_hold: Vec::new(),
                    decides: None,
                    ops: Vec::new(),
                })
                .ops
                .push((o.clone(), result));
        }
        for (key, mut key_op) in keys {
            let modelled = |c: &&Compare| {
                c.key == key
                    && matches!(
                        c.target,
                        CompareTarget::Value(_) | CompareTarget::Version(_)
                    )
            };
            let on_key: Vec<Compare> = txn.compares.iter().filter(modelled).cloned().collect();
            if all_on(key) && on_key.len() == txn.compares.len() {
                key_op.must_hold = on_key;
                key_op.decides = Some(p.branch);
            } else if p.branch {
                key_op.must_hold = on_key;
            }
            per_key.entry(key.to_string()).or_default().push(key_op);
        }
    }
    for (key, ops) in per_key {
        if leased.contains(&key) {
            continue;
        }
        match search(&ops) {
            Verdict::Linearizable => {}
            Verdict::Inconclusive => report.inconclusive.push(key),
            Verdict::Not { linearized } => report.anomalies.push(Anomaly::NotLinearizable {
                key,
                detail: format!(
                    "{} operations; no order fits once {linearized} of them are placed",
                    ops.len()
                ),
            }),
        }
    }
}

enum Verdict {
    Linearizable,
    Inconclusive,
    Not { linearized: usize },
}

fn holds(state: &State, c: &Compare) -> bool {
    let ordering = match (&c.target, state) {
        (CompareTarget::Value(_), None) => return false,
        (CompareTarget::Value(v), Some((value, _))) => value.as_str().cmp(v.as_str()),
        (CompareTarget::Version(n), s) => s.as_ref().map_or(0, |(_, ver)| *ver).cmp(n),
        _ => return true,
    };
    match c.op {
        CompareOp::Equal => ordering.is_eq(),
        CompareOp::NotEqual => ordering.is_ne(),
        CompareOp::Less => ordering.is_lt(),
        CompareOp::Greater => ordering.is_gt(),
    }
}

/// Runs one projected operation on `state`: the new state, if its answers fit.
fn step(state: &State, op: &KeyOp) -> Option<State> {
    let all_hold = op.must_hold.iter().all(|c| holds(state, c));
    match op.decides {
        Some(branch) if all_hold != branch => return None,
        None if !all_hold => return None,
        _ => {}
    }
    let mut state = state.clone();
    for (o, result) in &op.ops {
        match (o, result) {
            (TxnOp::Get(get), Some(TxnResult::Get(got))) => {
                if !get_fits(get, &state, got) {
                    return None;
                }
            }
            (TxnOp::Get(_), None) => {}
            (TxnOp::Put(put), result) => {
                if let Some(TxnResult::Put(got)) = result
                    && put.prev_kv
                    && got.prev.as_ref().map(|kv| &kv.value) != state.as_ref().map(|(v, _)| v)
                {
                    return None;
                }
                if !matches!(result, None | Some(TxnResult::Put(_))) {
                    return None;
                }
                let version = state.as_ref().map_or(1, |(_, ver)| ver + 1);
                state = Some((put.value.clone(), version));
            }
            (TxnOp::Delete(_), result) => {
                match result {
                    Some(TxnResult::Delete(got)) if got.deleted != i64::from(state.is_some()) => {
                        return None;
                    }
                    None | Some(TxnResult::Delete(_)) => {}
                    Some(_) => return None,
                }
                state = None;
            }
            (TxnOp::Get(_), Some(_)) => return None,
        }
    }
    Some(state)
}

fn get_fits(get: &GetReq, state: &State, got: &super::model::GetResp) -> bool {
    let count = i64::from(state.is_some());
    if got.count != count {
        return false;
    }
    if get.count_only {
        return true;
    }
    match (state, got.kvs.as_slice()) {
        (None, []) => true,
        (Some((value, version)), [kv]) => {
            kv.version == *version && (get.keys_only || kv.value == *value)
        }
        _ => false,
    }
}

/// Wing & Gong's search with Lowe's cache of (linearized set, state).
fn search(ops: &[KeyOp]) -> Verdict {
    const END: usize = usize::MAX;
    if ops.is_empty() {
        return Verdict::Linearizable;
    }
    // Entries: a call and a return per operation, in time order; calls first on ties (the
    // more permissive reading).
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        entries.push((op.call, false, i));
        entries.push((op.ret, true, i));
    }
    entries.sort_by_key(|(time, is_return, i)| (*time, *is_return, *i));
    let mut return_of = vec![0; ops.len()];
    for (at, (_, is_return, i)) in entries.iter().enumerate() {
        if *is_return {
            return_of[*i] = at;
        }
    }
    let mut list = List::new(entries.len());
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut entry = list.first();
    let mut steps = 0u64;
    let mut deepest = 0;
    while list.first() != END {
        steps += 1;
        if steps > STEP_BUDGET {
            return Verdict::Inconclusive;
        }
        if entry != END && !entries[entry].1 {
            let i = entries[entry].2;
            let op = &ops[i];
            if let Some(new_state) = step(&state, op) {
                linearized[i / 64] |= 1 << (i % 64);
                if cache.insert((linearized.clone(), new_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, new_state)));
                    deepest = deepest.max(stack.len());
                    list.lift(entry);
                    list.lift(return_of[i]);
                    entry = list.first();
                    continue;
                }
                linearized[i / 64] &= !(1 << (i % 64));
            }
            entry = list.next(entry);
            continue;
        }
        // A return (or the end) reached: the pending operation cannot be placed here.
        let Some((call_entry, old_state)) = stack.pop() else {
            return Verdict::Not {
                linearized: deepest,
            };
        };
        let j = entries[call_entry].2;
        linearized[j / 64] &= !(1 << (j % 64));
        state = old_state;
        list.unlift(return_of[j]);
        list.unlift(call_entry);
        entry = list.next(call_entry);
    }
    Verdict::Linearizable
}

/// A doubly linked list of entry indices that can lift an entry out and put it back.
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl List {
    /// Entries `0..n` in order; index `n` is the head sentinel.
    fn new(n: usize) -> Self {
        let next = (1..=n)
            .map(|k| if k == n { usize::MAX } else { k })
            .chain([0])
            .collect();
        let prev = (0..=n).map(|k| if k == 0 { n } else { k - 1 }).collect();
        let mut list = Self { next, prev };
        if n == 0 {
            list.next[0] = usize::MAX;
        }
        list
    }

    fn head(&self) -> usize {
        self.next.len() - 1
    }

    fn first(&self) -> usize {
        self.next[self.head()]
    }

    fn next(&self, at: usize) -> usize {
        self.next[at]
    }

    fn lift(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = n;
        if n != usize::MAX {
            self.prev[n] = p;
        }
    }

    /// Puts back the entry lifted last (lifts are undone in reverse order).
    fn unlift(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = at;
        if n != usize::MAX {
            self.prev[n] = at;
        }
    }
}
