//! Step 5: the lease checks. A lease the client reports alive was never let go by the
//! server: no sample says "alive" after the server's history shows the lease's key
//! deleted by expiry, unless the server let it go while the client held an
//! acknowledgement younger than the TTL (a server bug of etcd before 3.4.31 / 3.5.13:
//! an old leader's revoke, or a renewal acknowledged for a revoked lease; reported as a
//! suspected server bug). And the client notices a loss in time: it never says "alive"
//! longer than the TTL (plus a second of slack) after the last renewal it saw
//! acknowledged.

use std::collections::HashSet;

use super::anomaly::{Anomaly, Report};
use super::model::{EventKind, History};
use super::replay::Replay;
use super::resolve::Placed;

/// How much later than its TTL after the last acknowledged renewal a client may still
/// report a lease alive: its timer, the recorder's sampling and scheduling.
pub const LOSS_SLACK_NS: u64 = 1_000_000_000;

/// Checks every lease of the history.
pub(crate) fn check(history: &History, replay: &Replay, placed: &[Placed], report: &mut Report) {
    let written: HashSet<i64> = placed
        .iter()
        .filter(|p| p.writes)
        .map(|p| p.revision)
        .collect();
    for trace in &history.leases {
        // The first time the server's history shows one of the lease's keys deleted by
        // something other than a write of the clients: the lease was let go.
        let expiry = replay
            .records()
            .filter(|r| !written.contains(&r.revision))
            .find(|r| {
                r.events.iter().any(|e| {
                    e.kind == EventKind::Delete
                        && trace.keys.contains(&e.kv.key)
                        && replay
                            .get(&e.kv.key, r.revision - 1)
                            .is_some_and(|kv| kv.lease == trace.id)
                })
            });
        let ttl_ns = u64::try_from(trace.ttl).unwrap_or(0) * 1_000_000_000;
        if let Some(record) = expiry
            && let Some(sample) = trace
                .samples
                .iter()
                .find(|s| s.alive && s.at > record.seen_at)
        {
            // The acknowledgement the client held when the server let the lease go.
            let held = trace
                .samples
                .iter()
                .take_while(|s| s.at <= record.seen_at)
                .filter_map(|s| s.last_renewed)
                .max();
            let late_ms = (sample.at - record.seen_at) / 1_000_000;
            match held {
                Some(renewed) if renewed + ttl_ns > record.seen_at + LOSS_SLACK_NS => {
                    report.server_bugs.push(format!(
                        "lease {:x} was let go at revision {} ({} ms after a renewal the \
                         server acknowledged, TTL {} s); the client reported it alive {late_ms} \
                         ms later",
                        trace.id,
                        record.revision,
                        (record.seen_at - renewed) / 1_000_000,
                        trace.ttl
                    ))
                }
                _ => report.anomalies.push(Anomaly::Lease {
                    lease: trace.id,
                    detail: format!(
                        "reported alive {late_ms} ms after the server let it go (revision {}), \
                         with no acknowledgement younger than its TTL",
                        record.revision
                    ),
                }),
            }
        }
        if let Some(sample) = trace.samples.iter().find(|s| {
            s.alive
                && s.last_renewed
                    .is_some_and(|renewed| s.at > renewed + ttl_ns + LOSS_SLACK_NS)
        }) {
            report.anomalies.push(Anomaly::Lease {
                lease: trace.id,
                detail: format!(
                    "still reported alive {} ms after its last acknowledged renewal (TTL {} s)",
                    (sample.at - sample.last_renewed.unwrap_or(0)) / 1_000_000,
                    trace.ttl
                ),
            });
        }
    }
}
