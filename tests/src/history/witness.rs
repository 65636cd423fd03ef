//! Step 2: the revision-witness check. Every placed operation's answer must be what etcd's
//! semantics give at its place (check A), and the places must respect real time: an
//! operation that began after another returned may not sit before it (check B). Together
//! they prove the history linearizable: ordering by (place, call time) is a valid
//! linearization.

use super::anomaly::{Anomaly, Report};
use super::model::{History, Request};
use super::replay::Replay;
use super::resolve::{Placed, as_txn, changes_match};
use super::simulate::{Overlay, result_matches};

/// Reports stop after this many real-time violations (the first ones carry the evidence).
const MAX_REAL_TIME_REPORTS: usize = 50;

/// Check A: answers and changes match the model at each operation's place.
pub(crate) fn check_results(
    history: &History,
    replay: &Replay,
    placed: &[Placed],
    report: &mut Report,
) {
    for p in placed {
        let op = &history.ops[p.op];
        let txn = as_txn(&op.req);
        let base = if p.writes { p.revision - 1 } else { p.revision };
        let mut overlay = Overlay::new(replay, base, p.revision);
        let holds = overlay.compares_hold(&txn.compares);
        if holds != p.branch {
            report.anomalies.push(Anomaly::WrongResult {
                op: op.id,
                detail: format!(
                    "its compares {} at revision {base}, yet the {} branch ran",
                    if holds { "hold" } else { "fail" },
                    if p.branch { "success" } else { "failure" }
                ),
            });
            continue;
        }
        let ops = if p.branch { &txn.success } else { &txn.failure };
        for (i, txn_op) in ops.iter().enumerate() {
            let want = overlay.apply(txn_op);
            let Some(answer) = &p.answer else { continue };
            match answer.results.get(i) {
                Some(got) if result_matches(txn_op, got, &want) => {}
                got => report.anomalies.push(Anomaly::WrongResult {
                    op: op.id,
                    detail: format!(
                        "operation {i} answered {got:?}, the state at revision {base} gives {want:?}"
                    ),
                }),
            }
        }
        if let (Request::Get(get), Some(answer)) = (&op.req, &p.answer)
            && get.revision > answer.revision
        {
            report.anomalies.push(Anomaly::WrongResult {
                op: op.id,
                detail: format!(
                    "read at future revision {} answered at header revision {}",
                    get.revision, answer.revision
                ),
            });
        }
        if p.writes {
            if !changes_match(replay, p.revision, overlay.changes()) {
                report.anomalies.push(Anomaly::WrongResult {
                    op: op.id,
                    detail: format!(
                        "the server's revision {} holds {:?}; the operation makes {:?}",
                        p.revision,
                        replay.revision(p.revision).map(|r| &r.events),
                        overlay.changes()
                    ),
                });
            }
        } else if !overlay.changes().is_empty() {
            report.anomalies.push(Anomaly::WrongResult {
                op: op.id,
                detail: format!(
                    "it changes {:?} at revision {}, yet no revision of the server's has it",
                    overlay.changes(),
                    p.revision
                ),
            });
        }
    }
}

/// Check B: an operation that began after another returned sits at or after it.
pub(crate) fn check_real_time(history: &History, placed: &[Placed], report: &mut Report) {
    let linear: Vec<&Placed> = placed.iter().filter(|p| p.linearizable).collect();
    let mut by_return: Vec<&Placed> = linear
        .iter()
        .copied()
        .filter(|p| history.ops[p.op].ret.is_some() && p.answer.is_some())
        .collect();
    by_return.sort_by_key(|p| history.ops[p.op].ret);
    let mut by_call = linear;
    by_call.sort_by_key(|p| history.ops[p.op].call);
    let mut returned = 0;
    let mut latest: Option<&Placed> = None;
    let mut reported = 0;
    for later in by_call {
        let call = history.ops[later.op].call;
        while returned < by_return.len() && history.ops[by_return[returned].op].ret < Some(call) {
            let done = by_return[returned];
            if latest.is_none_or(|l| done.slot() > l.slot()) {
                latest = Some(done);
            }
            returned += 1;
        }
        let Some(earlier) = latest else { continue };
        if later.slot() < earlier.slot() && reported < MAX_REAL_TIME_REPORTS {
            reported += 1;
            report.anomalies.push(Anomaly::RealTime {
                earlier: history.ops[earlier.op].id,
                later: history.ops[later.op].id,
                detail: format!(
                    "it sits at {:?}, before {:?} of the earlier one ({})",
                    later.slot(),
                    earlier.slot(),
                    if later.writes {
                        "a write travelled back in time"
                    } else {
                        "a stale read"
                    }
                ),
            });
        }
    }
}
