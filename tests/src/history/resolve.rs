//! Step 1 of the check: place every operation in the server's revision order. Acknowledged
//! writes take the revision their values landed at; writes with an unknown outcome are
//! found applied (and placed) or not; every revision of the server's history must be
//! explained by exactly one write or by a lease expiry.

use std::collections::BTreeMap;

use super::anomaly::{Anomaly, Report};
use super::model::{
    EventKind, History, Op, Outcome, Request, Response, TxnOp, TxnReq, TxnResp, TxnResult,
};
use super::replay::Replay;
use super::simulate::Overlay;

/// An operation with its place in the order: after every write up to `revision` (a read, or
/// a write that changed nothing), or as the write of `revision` itself.
#[derive(Clone, Debug)]
pub(crate) struct Placed {
    /// Index into the history's operations.
    pub(crate) op: usize,
    /// The revision it sits at.
    pub(crate) revision: i64,
    /// True when it is the write of `revision`; false when it sits after it.
    pub(crate) writes: bool,
    /// Which branch ran (true for plain requests).
    pub(crate) branch: bool,
    /// Its answer, as a transaction's; `None` when its outcome was unknown.
    pub(crate) answer: Option<TxnResp>,
    /// False for serializable reads, which may be stale.
    pub(crate) linearizable: bool,
}

impl Placed {
    /// Its place, ordered: `(revision, 0)` for the write of a revision, `(revision, 1)`
    /// after it.
    pub(crate) fn slot(&self) -> (i64, u8) {
        (self.revision, if self.writes { 0 } else { 1 })
    }
}

/// Any request as a transaction: plain requests are a success branch of one operation.
pub(crate) fn as_txn(req: &Request) -> TxnReq {
    match req {
        Request::Txn(txn) => txn.clone(),
        Request::Get(get) => TxnReq {
            success: vec![TxnOp::Get(get.clone())],
            ..TxnReq::default()
        },
        Request::Put(put) => TxnReq {
            success: vec![TxnOp::Put(put.clone())],
            ..TxnReq::default()
        },
        Request::Delete(delete) => TxnReq {
            success: vec![TxnOp::Delete(delete.clone())],
            ..TxnReq::default()
        },
    }
}

/// Any answer as a transaction's; `None` for failures.
pub(crate) fn as_txn_answer(resp: &Response) -> Option<TxnResp> {
    let (revision, result) = match resp {
        Response::Txn(txn) => return Some(txn.clone()),
        Response::Get(get) => (get.revision, TxnResult::Get(get.clone())),
        Response::Put(put) => (put.revision, TxnResult::Put(put.clone())),
        Response::Delete(delete) => (delete.revision, TxnResult::Delete(delete.clone())),
        Response::Failed { .. } => return None,
    };
    Some(TxnResp {
        revision,
        succeeded: true,
        results: vec![result],
    })
}

fn branch_ops(txn: &TxnReq, branch: bool) -> &[TxnOp] {
    if branch { &txn.success } else { &txn.failure }
}

fn put_values(ops: &[TxnOp]) -> impl Iterator<Item = &str> {
    ops.iter().filter_map(|op| match op {
        TxnOp::Put(put) => Some(put.value.as_str()),
        _ => None,
    })
}

/// Places every operation; records what does not fit in `report`.
pub(crate) fn place(history: &History, replay: &Replay, report: &mut Report) -> Vec<Placed> {
    for (value, landings) in replay.repeated_values() {
        if landings.iter().all(|(_, key)| history.is_foreign(key)) {
            continue;
        }
        report.anomalies.push(Anomaly::DuplicateWrite {
            value: value.to_string(),
            revisions: landings.iter().map(|(rev, _)| *rev).collect(),
        });
    }
    let mut placed = Vec::new();
    // Unknown-outcome writes that only delete: placed later, if a revision needs them.
    let mut delete_candidates = Vec::new();
    for (index, op) in history.ops.iter().enumerate() {
        report.ops += 1;
        let txn = as_txn(&op.req);
        match (&op.resp, as_txn_answer(&op.resp)) {
            (_, Some(answer)) => {
                if let Some(p) = place_answered(index, op, &txn, answer, replay, report) {
                    placed.push(p);
                }
            }
            (Response::Failed { outcome, .. }, None) if op.req.is_write() => {
                if *outcome == Outcome::NotApplied {
                    check_not_applied(op, &txn, replay, report);
                    continue;
                }
                report.unknown += 1;
                match place_unknown(index, op, &txn, replay, report) {
                    Some(p) => {
                        report.unknown_applied += 1;
                        placed.push(p);
                    }
                    None => {
                        let deletes_only = |ops: &[TxnOp]| {
                            ops.iter().any(|o| matches!(o, TxnOp::Delete(_)))
                                && !ops.iter().any(|o| matches!(o, TxnOp::Put(_)))
                        };
                        if deletes_only(&txn.success) || deletes_only(&txn.failure) {
                            delete_candidates.push(index);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    explain_revisions(history, replay, &mut placed, delete_candidates, report);
    placed
}

fn place_answered(
    index: usize,
    op: &Op,
    txn: &TxnReq,
    answer: TxnResp,
    replay: &Replay,
    report: &mut Report,
) -> Option<Placed> {
    let branch = answer.succeeded;
    let ops = branch_ops(txn, branch);
    let mut writes = false;
    for value in put_values(ops) {
        writes = true;
        match replay.value_landings(value).first() {
            None => report.anomalies.push(Anomaly::LostWrite {
                op: op.id,
                detail: format!(
                    "acknowledged at revision {}, value {value:?} is not in the server's history",
                    answer.revision
                ),
            }),
            Some((rev, _)) if *rev != answer.revision => {
                report.anomalies.push(Anomaly::RevisionMismatch {
                    op: op.id,
                    reported: answer.revision,
                    actual: *rev,
                })
            }
            Some(_) => {}
        }
    }
    for value in put_values(branch_ops(txn, !branch)) {
        if let Some((rev, _)) = replay.value_landings(value).first() {
            report.anomalies.push(Anomaly::WrongResult {
                op: op.id,
                detail: format!("value {value:?} of the branch not taken landed at revision {rev}"),
            });
        }
    }
    writes |= answer.results.iter().any(|r| match r {
        TxnResult::Delete(d) => d.deleted > 0,
        _ => false,
    });
    let linearizable = !matches!(&op.req, Request::Get(get) if get.serializable);
    Some(Placed {
        op: index,
        revision: answer.revision,
        writes,
        branch,
        answer: Some(answer),
        linearizable,
    })
}

fn check_not_applied(op: &Op, txn: &TxnReq, replay: &Replay, report: &mut Report) {
    for value in put_values(&txn.success).chain(put_values(&txn.failure)) {
        if let Some((rev, _)) = replay.value_landings(value).first() {
            report.anomalies.push(Anomaly::AppliedDespiteRejection {
                op: op.id,
                revision: *rev,
            });
        }
    }
}

/// An unknown-outcome write is placed where one of its values landed.
fn place_unknown(
    index: usize,
    op: &Op,
    txn: &TxnReq,
    replay: &Replay,
    report: &mut Report,
) -> Option<Placed> {
    let landed = |ops: &[TxnOp]| -> Vec<i64> {
        put_values(ops)
            .filter_map(|v| replay.value_landings(v).first().map(|(rev, _)| *rev))
            .collect()
    };
    let (in_success, in_failure) = (landed(&txn.success), landed(&txn.failure));
    let (branch, revisions) = match (in_success.is_empty(), in_failure.is_empty()) {
        (true, true) => return None,
        (false, true) => (true, in_success),
        (true, false) => (false, in_failure),
        (false, false) => {
            report.anomalies.push(Anomaly::WrongResult {
                op: op.id,
                detail: "values of both branches landed".into(),
            });
            return None;
        }
    };
    let revision = revisions[0];
    let expected = put_values(branch_ops(txn, branch)).count();
    if revisions.len() != expected || revisions.iter().any(|r| *r != revision) {
        report.anomalies.push(Anomaly::WrongResult {
            op: op.id,
            detail: format!("partly applied: its values landed at revisions {revisions:?}"),
        });
    }
    Some(Placed {
        op: index,
        revision,
        writes: true,
        branch,
        answer: None,
        linearizable: true,
    })
}

/// Every revision of the server's history must be claimed by exactly one placed write, be
/// the work of one unknown-outcome delete, or be a lease expiry.
fn explain_revisions(
    history: &History,
    replay: &Replay,
    placed: &mut Vec<Placed>,
    mut delete_candidates: Vec<usize>,
    report: &mut Report,
) {
    delete_candidates.sort_by_key(|&index| history.ops[index].call);
    let mut claims: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for p in placed.iter().filter(|p| p.writes) {
        claims
            .entry(p.revision)
            .or_default()
            .push(history.ops[p.op].id);
    }
    for (revision, ops) in &claims {
        if ops.len() > 1 {
            report.anomalies.push(Anomaly::SharedRevision {
                revision: *revision,
                ops: ops.clone(),
            });
        }
    }
    for record in replay.records() {
        if claims.contains_key(&record.revision) {
            continue;
        }
        let rev = record.revision;
        if record.events.iter().all(|e| history.is_foreign(&e.kv.key)) {
            report.foreign += 1;
            continue;
        }
        let all_deletes = record.events.iter().all(|e| e.kind == EventKind::Delete);
        if all_deletes {
            // Only a write called before the server applied the revision can explain it
            // (the reference saw it after it was applied); of those, the earliest called.
            let found = delete_candidates
                .iter()
                .enumerate()
                .filter(|&(_, &index)| history.ops[index].call <= record.seen_at)
                .find_map(|(at, &index)| {
                    let txn = as_txn(&history.ops[index].req);
                    [true, false]
                        .into_iter()
                        .find(|&branch| explains(replay, rev, &txn, branch))
                        .map(|branch| (at, index, branch))
                });
            if let Some((at, index, branch)) = found {
                delete_candidates.remove(at);
                report.unknown_applied += 1;
                placed.push(Placed {
                    op: index,
                    revision: rev,
                    writes: true,
                    branch,
                    answer: None,
                    linearizable: true,
                });
                continue;
            }
            let leased = record.events.iter().all(|e| {
                replay
                    .get(&e.kv.key, rev - 1)
                    .is_some_and(|kv| kv.lease != 0)
            });
            if leased {
                report.expiries += 1;
                continue;
            }
        }
        let detail = record
            .events
            .iter()
            .map(|e| format!("{:?} {:?}={:?}", e.kind, e.kv.key, e.kv.value))
            .collect::<Vec<_>>()
            .join(", ");
        report.anomalies.push(Anomaly::PhantomWrite {
            revision: rev,
            detail,
        });
    }
}

/// Whether running `branch` of `txn` as the write of `rev` gives exactly that revision's
/// events (and its compares pick that branch).
fn explains(replay: &Replay, rev: i64, txn: &TxnReq, branch: bool) -> bool {
    let ops = branch_ops(txn, branch);
    if ops.iter().any(|o| matches!(o, TxnOp::Put(_))) {
        return false;
    }
    let mut overlay = Overlay::new(replay, rev - 1, rev);
    if overlay.compares_hold(&txn.compares) != branch {
        return false;
    }
    for op in ops {
        overlay.apply(op);
    }
    changes_match(replay, rev, overlay.changes())
}

/// Whether a revision's events are exactly `changes`.
pub(crate) fn changes_match(
    replay: &Replay,
    rev: i64,
    changes: &BTreeMap<String, Option<super::model::Kv>>,
) -> bool {
    let Some(record) = replay.revision(rev) else {
        return changes.is_empty();
    };
    let events: BTreeMap<&str, Option<&super::model::Kv>> = record
        .events
        .iter()
        .map(|e| {
            let kv = (e.kind == EventKind::Put).then_some(&e.kv);
            (e.kv.key.as_str(), kv)
        })
        .collect();
    events.len() == changes.len()
        && changes
            .iter()
            .all(|(k, kv)| events.get(k.as_str()).is_some_and(|e| *e == kv.as_ref()))
}
