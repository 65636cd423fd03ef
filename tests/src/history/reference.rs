//! The server's own history of a key range, collected independently of the client under
//! test: a raw watch from revision 1 on every member (reconnecting after faults, resuming
//! after the last whole revision), checked equal across members, plus `HashKV` compared
//! across members at the end.
//!
//! Members must run with `--experimental-watch-progress-notify-interval` set low (say
//! `100ms`): a range nobody writes any more is known complete only by a progress
//! notification.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_proto::etcdserverpb as pb;
use etcd_proto::mvccpb;
use futures::StreamExt;

use super::model::{Event, EventKind, Kv, Nanos, RevisionRecord};
use crate::clients::channel;

/// The flag members need for [`Reference`] to see a quiet range complete.
pub const PROGRESS_FLAG: &str = "--experimental-watch-progress-notify-interval=100ms";

/// Collects every member's history of one key range in the background.
#[derive(Debug)]
pub struct Reference {
    urls: Vec<String>,
    logs: Vec<Arc<Mutex<MemberLog>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct MemberLog {
    records: BTreeMap<i64, RevisionRecord>,
    /// Every revision up to this one is complete.
    reached: i64,
    /// The watch cannot go on (its revisions were compacted).
    broken: Option<String>,
}

impl Reference {
    /// Starts watching `[key, end)` (`end` as in the history's requests) from revision 1
    /// on every member at `urls`; receive instants are measured from `origin` (pass the
    /// recorder's).
    pub fn start(urls: &[String], key: &str, end: Option<&str>, origin: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut logs = Vec::new();
        let mut tasks = Vec::new();
        for url in urls {
            let log = Arc::new(Mutex::new(MemberLog::default()));
            let create = pb::WatchCreateRequest {
                key: key.as_bytes().to_vec().into(),
                range_end: end
                    .map(|e| e.as_bytes().to_vec())
                    .unwrap_or_default()
                    .into(),
                progress_notify: true,
                ..pb::WatchCreateRequest::default()
            };
            tasks.push(tokio::spawn(follow(
                url.clone(),
                create,
                origin,
                Arc::clone(&log),
                Arc::clone(&stop),
            )));
            logs.push(log);
        }
        Self {
            urls: urls.to_vec(),
            logs,
            stop,
            tasks,
        }
    }

    /// The revision up to which every member's history is complete so far.
    pub fn reached(&self) -> i64 {
        self.logs
            .iter()
            .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()).reached)
            .min()
            .unwrap_or(0)
    }

    /// Waits up to `within` for every member's log to be complete up to `revision`, and
    /// keeps collecting; returns whether they all got there. For a test that compacts:
    /// once the logs are past the compaction revision, the raw watches no longer need the
    /// revisions it removes (a watch still replaying them would end as compacted).
    pub async fn wait_reached(&self, revision: i64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let all = self.logs.iter().all(|log| {
                let log = log.lock().unwrap_or_else(|p| p.into_inner());
                log.broken.is_none() && log.reached >= revision
            });
            if all {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits up to `within` for every member to be complete up to `revision`, stops, and
    /// returns the history, after checking that every member recorded the same one and
    /// that `HashKV` at `revision` agrees across members.
    pub async fn collect(
        self,
        revision: i64,
        within: Duration,
    ) -> Result<Vec<RevisionRecord>, String> {
        self.collect_from_majority(revision, within, false)
            .await
            .map(|(records, _)| records)
    }

    /// As [`collect`](Self::collect), but when `tolerate_ended` and a majority of members
    /// are complete, a member whose watch the server ended (its revisions compacted, as
    /// etcd 3.4 and 3.5 may do to watches of a member that caught up from a snapshot), or
    /// whose watch is still behind at the deadline (the server stopped sending it events
    /// and progress), is left out; the history such a member did record must equal the
    /// majority's over the same revisions. The second value says which were left out and
    /// why.
    pub async fn collect_from_majority(
        mut self,
        revision: i64,
        within: Duration,
        tolerate_ended: bool,
    ) -> Result<(Vec<RevisionRecord>, Vec<String>), String> {
        let deadline = Instant::now() + within;
        let (complete, left_out) = loop {
            let mut complete = Vec::new();
            let mut ended = Vec::new();
            let mut behind = Vec::new();
            for (i, (log, url)) in self.logs.iter().zip(&self.urls).enumerate() {
                let log = log.lock().unwrap_or_else(|p| p.into_inner());
                match &log.broken {
                    Some(why) => ended.push(format!("{url}: {why}")),
                    None if log.reached < revision => {
                        behind.push(format!("{url}: at revision {}", log.reached))
                    }
                    None => complete.push(i),
                }
            }
            let majority = complete.len() > self.urls.len() / 2;
            if behind.is_empty() && (ended.is_empty() || (tolerate_ended && majority)) {
                break (complete, ended);
            }
            let hopeless = !ended.is_empty() && !tolerate_ended;
            let past = Instant::now() >= deadline;
            if past && tolerate_ended && majority {
                ended.extend(behind);
                break (complete, ended);
            }
            if past || hopeless {
                self.shut_down().await;
                behind.extend(ended);
                return Err(format!(
                    "reference watches did not reach revision {revision}: {}",
                    behind.join("; ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.stop.store(true, Ordering::SeqCst);
        let urls: Vec<String> = complete.iter().map(|&i| self.urls[i].clone()).collect();
        let logs: Vec<BTreeMap<i64, RevisionRecord>> = complete
            .iter()
            .map(|&i| &self.logs[i])
            .map(|l| {
                let mut log = l.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::take(&mut log.records)
                    .into_iter()
                    .filter(|(rev, _)| *rev <= revision)
                    .collect()
            })
            .collect();
        self.shut_down().await;
        let mut merged = logs[0].clone();
        for (log, url) in logs.iter().zip(&urls).skip(1) {
            let same = log.len() == merged.len()
                && log
                    .values()
                    .zip(merged.values())
                    .all(|(a, b)| a.revision == b.revision && a.events == b.events);
            if !same {
                let first = log
                    .values()
                    .zip(merged.values())
                    .find(|(a, b)| a.revision != b.revision || a.events != b.events)
                    .map(|(a, _)| a.revision);
                return Err(format!(
                    "server divergence: {url} recorded another history than {} (first difference at revision {first:?})",
                    urls[0]
                ));
            }
            for (rev, record) in log {
                let seen = &mut merged.get_mut(rev).expect("same revisions").seen_at;
                *seen = (*seen).min(record.seen_at);
            }
        }
        for (i, log) in self.logs.iter().enumerate() {
            if complete.contains(&i) {
                continue;
            }
            let log = log.lock().unwrap_or_else(|p| p.into_inner());
            let reached = log.reached.min(revision);
            let theirs = log.records.range(..=reached);
            let ours = merged.range(..=reached);
            if let Some(at) = first_difference(theirs, ours) {
                return Err(format!(
                    "server divergence: {} (left out) recorded another history than {} (first difference at revision {at})",
                    self.urls[i], urls[0]
                ));
            }
        }
        hash_kv_agrees(&urls, revision).await?;
        Ok((merged.into_values().collect(), left_out))
    }

    async fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

/// The first revision at which two records of the same revisions differ (a revision one has
/// and the other lacks, or other events), or `None`. A member's log that starts late (it
/// caught up from a snapshot) is compared from its first record.
fn first_difference<'a>(
    partial: impl Iterator<Item = (&'a i64, &'a RevisionRecord)>,
    full: impl Iterator<Item = (&'a i64, &'a RevisionRecord)>,
) -> Option<i64> {
    let partial: Vec<_> = partial.collect();
    let start = *partial.first()?.0;
    let full: Vec<_> = full.filter(|(rev, _)| **rev >= start).collect();
    let differing = partial
        .iter()
        .zip(&full)
        .find(|((_, a), (_, b))| a.revision != b.revision || a.events != b.events)
        .map(|((a, _), (b, _))| (**a).min(**b));
    // Or the first record past the end of the shorter log.
    differing.or_else(|| {
        let longer = if partial.len() > full.len() {
            &partial
        } else {
            &full
        };
        longer
            .get(partial.len().min(full.len()))
            .map(|(rev, _)| **rev)
    })
}

/// `HashKV` at `revision` must be the same on every member.
async fn hash_kv_agrees(urls: &[String], revision: i64) -> Result<(), String> {
    let mut answers = Vec::new();
    for url in urls {
        let mut client = pb::maintenance_client::MaintenanceClient::new(channel(url));
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            client.hash_kv(pb::HashKvRequest { revision }),
        )
        .await
        .map_err(|_| format!("HashKV on {url} timed out"))?
        .map_err(|e| format!("HashKV on {url}: {e}"))?
        .into_inner();
        answers.push((url, answer.hash, answer.compact_revision));
    }
    let (first_url, hash, compacted) = answers[0];
    for (url, h, c) in &answers[1..] {
        if (*h, *c) != (hash, compacted) {
            return Err(format!(
                "server divergence: HashKV at revision {revision} is {h:x} (compacted {c}) on {url}, {hash:x} (compacted {compacted}) on {first_url}"
            ));
        }
    }
    Ok(())
}

async fn follow(
    url: String,
    create: pb::WatchCreateRequest,
    origin: Instant,
    log: Arc<Mutex<MemberLog>>,
    stop: Arc<AtomicBool>,
) {
    // Compaction errors below the resume revision: the server's mistake (a member that
    // caught up from a snapshot), answered by watching again.
    let mut spurious = 0;
    while !stop.load(Ordering::SeqCst) {
        let next = log.lock().unwrap_or_else(|p| p.into_inner()).reached + 1;
        let request = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    start_revision: next,
                    ..create.clone()
                },
            )),
        };
        let mut client =
            pb::watch_client::WatchClient::new(channel(&url)).max_decoding_message_size(256 << 20);
        let requests = futures::stream::iter([request]).chain(futures::stream::pending());
        if let Ok(response) = client.watch(requests).await {
            let mut stream = response.into_inner();
            while let Ok(Some(message)) = stream.message().await {
                let seen_at = origin.elapsed().as_nanos() as Nanos;
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                if message.compact_revision != 0
                    && message.compact_revision <= log.reached + 1
                    && spurious < 5
                {
                    spurious += 1;
                    break;
                }
                if message.canceled || message.compact_revision != 0 {
                    log.broken = Some(format!(
                        "watch ended: compact revision {}, reason {:?}",
                        message.compact_revision, message.cancel_reason
                    ));
                    return;
                }
                if message.created {
                    continue;
                }
                if message.events.is_empty() {
                    // A progress notification: everything up to its revision was sent.
                    let revision = message.header.map_or(0, |h| h.revision);
                    log.reached = log.reached.max(revision);
                    continue;
                }
                let mut batch: BTreeMap<i64, RevisionRecord> = BTreeMap::new();
                for event in &message.events {
                    let event = convert(event);
                    let revision = event.kv.mod_revision;
                    batch
                        .entry(revision)
                        .or_insert_with(|| RevisionRecord {
                            revision,
                            seen_at,
                            events: Vec::new(),
                        })
                        .events
                        .push(event);
                }
                let last = *batch.keys().next_back().expect("a non-empty batch");
                log.records.extend(batch);
                log.reached = log.reached.max(last);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn convert(event: &mvccpb::Event) -> Event {
    let kv = event.kv.clone().unwrap_or_default();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Event {
        kind: if event.r#type == mvccpb::event::EventType::Delete as i32 {
            EventKind::Delete
        } else {
            EventKind::Put
        },
        kv: Kv {
            key: text(&kv.key),
            value: text(&kv.value),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        },
        prev: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::model::Kv;

    fn log(revisions: &[(i64, &str)]) -> BTreeMap<i64, RevisionRecord> {
        revisions
            .iter()
            .map(|&(revision, value)| {
                let event = Event {
                    kind: EventKind::Put,
                    kv: Kv {
                        key: "k".into(),
                        value: value.into(),
                        mod_revision: revision,
                        ..Kv::default()
                    },
                    prev: None,
                };
                let record = RevisionRecord {
                    revision,
                    seen_at: 0,
                    events: vec![event],
                };
                (revision, record)
            })
            .collect()
    }

    #[test]
    fn a_left_out_log_must_agree_with_the_majority_where_it_has_records() {
        let full = log(&[(2, "a"), (3, "b"), (5, "c"), (6, "d")]);
        let same = |partial: &BTreeMap<i64, RevisionRecord>, upto: i64| {
            first_difference(partial.range(..=upto), full.range(..=upto))
        };
        // A prefix, a suffix (caught up from a snapshot), nothing: all agree.
        assert_eq!(same(&log(&[(2, "a"), (3, "b")]), 3), None);
        assert_eq!(same(&log(&[(5, "c"), (6, "d")]), 6), None);
        assert_eq!(same(&BTreeMap::new(), 6), None);
        // Other events, a missing revision, an extra one: flagged at the revision.
        assert_eq!(same(&log(&[(2, "a"), (3, "x")]), 3), Some(3));
        assert_eq!(same(&log(&[(2, "a"), (5, "c")]), 5), Some(3));
        assert_eq!(same(&log(&[(2, "a"), (3, "b"), (4, "z")]), 4), Some(4));
    }
}
