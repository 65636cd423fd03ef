//! Step 6: the lock checks. A lock named `N` is held by the key under `N/` with the lowest
//! create revision; a holder fences its writes with a transaction comparing its own key's
//! create revision (its token). Against the server's history, every fenced write that ran
//! its success branch was made while its token's key was the lowest under `N/` (the
//! rightful holder, not a holder whose lease ran out and whose successor already held the
//! lock), and the tokens of those writes never decrease in revision order (implied by the
//! first check when the server's history is right, and stated on its own as the plan's
//! guarantee).

use super::anomaly::{Anomaly, Report};
use super::model::{CompareOp, CompareTarget, History, Request};
use super::proof::prefix_end;
use super::replay::Replay;
use super::resolve::Placed;

/// Checks every fenced write of every lock the history names.
pub(crate) fn check(history: &History, replay: &Replay, placed: &[Placed], report: &mut Report) {
    for name in &history.locks {
        let keys = format!("{name}/");
        let end = prefix_end(&keys);
        let mut last: Option<(i64, i64)> = None;
        let mut fenced: Vec<&Placed> = placed.iter().filter(|p| p.writes && p.branch).collect();
        fenced.sort_by_key(|p| p.revision);
        for place in fenced {
            let op = &history.ops[place.op];
            let Request::Txn(txn) = &op.req else { continue };
            let Some((key, token)) = txn.compares.iter().find_map(|c| match c.target {
                CompareTarget::Create(token)
                    if c.op == CompareOp::Equal && c.key.starts_with(&keys) =>
                {
                    Some((&c.key, token))
                }
                _ => None,
            }) else {
                continue;
            };
            report.fenced += 1;
            // The lock's keys just before the write (a fenced write never changes them).
            let holder = replay
                .range(&keys, Some(&end), place.revision - 1)
                .into_iter()
                .min_by_key(|kv| kv.create_revision);
            match holder {
                Some(kv) if kv.key == *key && kv.create_revision == token => {}
                other => report.anomalies.push(Anomaly::Lock {
                    op: op.id,
                    detail: format!(
                        "fenced write at revision {} with token {token} of {key}, while the \
                         holder of {name} was {:?}",
                        place.revision,
                        other.map(|kv| (&kv.key, kv.create_revision))
                    ),
                }),
            }
            if let Some((revision, previous)) = last
                && token < previous
            {
                report.anomalies.push(Anomaly::Lock {
                    op: op.id,
                    detail: format!(
                        "token {token} at revision {} after token {previous} at revision \
                         {revision}: fencing tokens went back",
                        place.revision
                    ),
                });
            }
            last = Some((place.revision, token));
        }
    }
}
