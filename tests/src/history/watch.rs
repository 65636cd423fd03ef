//! Step 4: the watch checks. Against the server's history, every watch must deliver each
//! event of its range from its start on exactly once, in order, a revision at a time
//! (ordered, unique, atomic, reliable), with correct key-values and previous key-values,
//! filters respected, nothing at or below a progress notification (bookmarkable), nothing
//! before its start, nothing after its end, and a compaction error only when the revisions
//! it still needed were compacted.

use std::collections::HashSet;

use super::anomaly::{Anomaly, Report};
use super::model::{Event, EventKind, History, WatchItem, WatchTrace};
use super::replay::Replay;

/// Checks every watch of the history.
pub(crate) fn check(history: &History, replay: &Replay, report: &mut Report) {
    for trace in &history.watches {
        let mut found = Vec::new();
        check_one(trace, replay, &history.compactions, &mut found);
        report
            .anomalies
            .extend(found.into_iter().map(|detail| Anomaly::Watch {
                watch: trace.id,
                detail,
            }));
    }
}

fn check_one(trace: &WatchTrace, replay: &Replay, compactions: &[i64], found: &mut Vec<String>) {
    let first_delivered = trace.items.iter().find_map(|item| match item {
        WatchItem::Events { events, .. } => events.first().map(|e| e.kv.mod_revision),
        _ => None,
    });
    let first_expected = match (trace.start_revision, trace.created_revision) {
        (start, _) if start > 0 => start,
        (_, Some(created)) => created + 1,
        // Started at "now" with the creation revision unknown: check from what came.
        (_, None) => first_delivered.unwrap_or(i64::MAX),
    };
    let mut delivered: Vec<(i64, &Event)> = Vec::new();
    let mut seen = HashSet::new();
    let mut last_batch_revision = 0;
    let mut progress = 0;
    let mut ended = false;
    for item in &trace.items {
        if ended {
            found.push(format!("delivered {item:?} after its end"));
            break;
        }
        match item {
            WatchItem::Events { events, .. } => {
                let Some(first) = events.first() else {
                    found.push("delivered an empty batch".into());
                    continue;
                };
                if first.kv.mod_revision <= last_batch_revision {
                    found.push(format!(
                        "a batch starting at revision {} follows one ending at {last_batch_revision} (ordered, atomic)",
                        first.kv.mod_revision
                    ));
                }
                for event in events {
                    let rev = event.kv.mod_revision;
                    if rev < last_batch_revision.max(first.kv.mod_revision) {
                        found.push(format!("revision {rev} out of order in its batch"));
                    }
                    last_batch_revision = last_batch_revision.max(rev);
                    if rev < first_expected {
                        found.push(format!(
                            "event at revision {rev}, before its start {first_expected}"
                        ));
                    }
                    if rev <= progress {
                        found.push(format!(
                            "event at revision {rev} after progress reached {progress} (bookmarkable)"
                        ));
                    }
                    if !seen.insert((rev, event.kv.key.as_str())) {
                        found.push(format!(
                            "event {:?} at revision {rev} delivered twice",
                            event.kv.key
                        ));
                    }
                    let filtered = match event.kind {
                        EventKind::Put => trace.no_put,
                        EventKind::Delete => trace.no_delete,
                    };
                    if filtered {
                        found.push(format!(
                            "{:?} event at revision {rev} despite its filter",
                            event.kind
                        ));
                    }
                    if trace.prev_kv {
                        let want = replay.get(&event.kv.key, rev - 1);
                        if event.prev.as_ref() != want {
                            found.push(format!(
                                "previous key-value of {:?} at revision {rev} is {:?}, the server had {want:?}",
                                event.kv.key, event.prev
                            ));
                        }
                    }
                    delivered.push((rev, event));
                }
            }
            WatchItem::Progress { revision, .. } => {
                if *revision < progress {
                    found.push(format!("progress went back from {progress} to {revision}"));
                }
                progress = progress.max(*revision);
            }
            WatchItem::Compacted {
                compact_revision, ..
            } => {
                ended = true;
                let next = delivered
                    .last()
                    .map_or(first_expected, |(rev, _)| rev + 1)
                    .max(progress + 1);
                if *compact_revision <= next {
                    found.push(format!(
                        "ended as compacted at {compact_revision}, yet it only needed revisions from {next} on"
                    ));
                }
                if let Some(max) = compactions.iter().max()
                    && compact_revision > max
                {
                    found.push(format!(
                        "ended as compacted at {compact_revision}, beyond every compaction (the last was {max})"
                    ));
                }
                if compactions.is_empty() {
                    found.push(format!(
                        "ended as compacted at {compact_revision}, yet nothing was compacted"
                    ));
                }
            }
            WatchItem::Failed { .. } => ended = true,
        }
    }
    // Reliable: everything up to the last revision it vouched for.
    let upto = last_batch_revision.max(progress);
    if let Some(must) = trace.must_reach
        && upto < must
        && !ended
    {
        found.push(format!(
            "stalled: it vouched for revision {upto} only, {must} was reached by the writes"
        ));
    }
    let want: Vec<(i64, &Event)> = replay
        .events_between(&trace.key, trace.end.as_deref(), first_expected, upto)
        .into_iter()
        .filter(|(_, e)| match e.kind {
            EventKind::Put => !trace.no_put,
            EventKind::Delete => !trace.no_delete,
        })
        .collect();
    let same = |a: &(i64, &Event), b: &(i64, &Event)| {
        a.0 == b.0 && a.1.kind == b.1.kind && a.1.kv == b.1.kv
    };
    if let Some(at) =
        (0..want.len().max(delivered.len())).find(|&i| match (want.get(i), delivered.get(i)) {
            (Some(w), Some(d)) => !same(w, d),
            _ => true,
        })
    {
        found.push(format!(
            "from revision {first_expected} to {upto}: expected {} events, delivered {}; first difference at #{at}: the server has {:?}, the watch delivered {:?} (reliable)",
            want.len(),
            delivered.len(),
            want.get(at).map(|(r, e)| (r, e.kind, &e.kv.key, &e.kv.value)),
            delivered.get(at).map(|(r, e)| (r, e.kind, &e.kv.key, &e.kv.value)),
        ));
    }
}
