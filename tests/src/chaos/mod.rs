//! Seeded chaos runs: a cluster, a `Client` reaching it through fault proxies, concurrent
//! recorded traffic (the K1 mix, watches, a kept-alive lease with a key, two sessions
//! competing for a lock with fenced writes, compaction), a seeded schedule of faults (kills,
//! stops, blackholes, delays, cuts, resets, a follower that falls behind and catches up from
//! a snapshot, a follower replaced by a new member, the NoSpace alarm), and at the end the
//! history checker.
//!
//! `cargo xtask chaos` runs [`run`] through the `chaos` binary of this crate. Everything a
//! run did is kept in `target/chaos/<seed>/`: `history.json` and `reference.json` (check
//! them again with [`history::check`]), `schedule.json` (the faults, with their instants)
//! and `report.txt`.

pub mod faults;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_testkit::{EtcdCluster, FaultProxy, unique_prefix};
use etcd3::Client;
use etcd3::concurrency::Session;
use serde::Serialize;

use crate::history::model::{
    Compare, CompareOp, CompareTarget, PutReq, Request, Response, TxnOp, TxnReq,
};
use crate::history::reference::PROGRESS_FLAG;
use crate::history::workload::{Rng, Workload};
use crate::history::{self, Recorder, Reference, Report, WatchSpec};
use faults::Fault;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Draws the workload and the faults.
    pub seed: u64,
    /// How long traffic runs.
    pub duration: Duration,
    /// Cluster size.
    pub members: usize,
}

/// One injected fault, as run.
#[derive(Clone, Debug, Serialize)]
pub struct Injected {
    /// When it started (ms since the run's start).
    pub at_ms: u64,
    /// When it was healed and every member was healthy again.
    pub healed_ms: u64,
    /// Which member it hit.
    pub member: usize,
    /// The fault.
    pub fault: Fault,
}

/// What a run did and found.
#[derive(Debug)]
pub struct Outcome {
    /// The checker's report.
    pub report: Report,
    /// The faults injected.
    pub faults: Vec<Injected>,
    /// Where the history was written.
    pub dir: std::path::PathBuf,
}

impl Outcome {
    /// The run's one-line summary: `chaos: seed S, N ops (U unknown), F faults, A anomalies`.
    pub fn summary(&self, seed: u64) -> String {
        format!(
            "chaos: seed {seed}, {} ops ({} unknown), {} faults, {} anomalies",
            self.report.ops,
            self.report.unknown,
            self.faults.len(),
            self.report.anomalies.len()
        )
    }
}

/// Logical client ids of the tasks that are not K1 workers.
const LEASE_CLIENT: u32 = 50;
const LOCK_CLIENT: u32 = 60;
/// Sessions competing for the one lock, each a client of its own in the history.
const LOCK_HOLDERS: u32 = 2;
const WATCH_CLIENT: u32 = 70;
const WORKERS: u32 = 4;

/// Runs one chaos run.
pub async fn run(config: &Config) -> Outcome {
    let origin = Instant::now();
    let ms = move || origin.elapsed().as_millis() as u64;
    let cluster = EtcdCluster::builder(config.members)
        .arg(PROGRESS_FLAG)
        // Snapshots often, so that a follower that misses a few thousand entries catches
        // up from one (K12).
        .arg("--snapshot-count=1000")
        .start()
        .await;
    let mut proxies = Vec::new();
    for member in cluster.members() {
        proxies.push(FaultProxy::start(member.client_addr()).await);
    }
    let prefix = unique_prefix(&format!("chaos-{}", config.seed));
    let workload = Arc::new(Workload::new(prefix.clone()));
    let end = workload.range_end();
    let recorder = Recorder::new();
    let reference = Arc::new(Reference::start(
        &cluster.client_urls(),
        &prefix,
        Some(&end),
        recorder.origin(),
    ));
    recorder.set_foreign(vec![format!("{prefix}locks/")]);
    recorder.set_locks(vec![lock_name(&prefix)]);
    let client = Client::builder(proxies.iter().map(FaultProxy::url))
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect the client under test");

    let watch = |spec: WatchSpec| {
        let (recorder, client) = (Arc::clone(&recorder), client.clone());
        async move {
            recorder
                .watch(WATCH_CLIENT, &client, spec)
                .await
                .expect("open a recorded watch")
        }
    };
    let watches = vec![
        watch(WatchSpec {
            key: prefix.clone(),
            end: Some(end.clone()),
            prev_kv: true,
            progress_notify: true,
            ..WatchSpec::default()
        })
        .await,
        watch(WatchSpec {
            key: prefix.clone(),
            end: Some(end.clone()),
            start_revision: 1,
            progress_notify: true,
            ..WatchSpec::default()
        })
        .await,
    ];
    let watches = Arc::new(watches);

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..WORKERS {
        let (workload, recorder, kv, stop) = (
            Arc::clone(&workload),
            Arc::clone(&recorder),
            client.kv().clone(),
            Arc::clone(&stop),
        );
        let seed = config.seed;
        tasks.push(tokio::spawn(async move {
            workload.run(recorder, c, kv, seed, stop).await;
        }));
    }
    tasks.push(tokio::spawn(lease_task(
        Arc::clone(&recorder),
        client.clone(),
        prefix.clone(),
        Arc::clone(&stop),
    )));
    for holder in 0..LOCK_HOLDERS {
        tasks.push(tokio::spawn(lock_task(
            Arc::clone(&recorder),
            client.clone(),
            prefix.clone(),
            Arc::clone(&stop),
            LOCK_CLIENT + holder,
        )));
    }
    tasks.push(tokio::spawn(compactor(
        Arc::clone(&recorder),
        client.clone(),
        Arc::clone(&reference),
        Arc::clone(&watches),
        Arc::clone(&stop),
    )));

    // The fault schedule.
    let mut rng = Rng::new(config.seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut faults = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    while origin.elapsed() + Duration::from_secs(8) < config.duration {
        let fault = Fault::draw(&mut rng);
        let at_ms = ms();
        let member = fault.inject(&cluster, &proxies).await;
        let healed_ms = ms();
        println!("chaos: {at_ms:>6} ms {fault:?} on member {member}, healed at {healed_ms} ms");
        faults.push(Injected {
            at_ms,
            healed_ms,
            member,
            fault,
        });
        tokio::time::sleep(Duration::from_millis(1000 + rng.below(2000))).await;
    }
    if let Some(rest) = config.duration.checked_sub(origin.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("a traffic task panicked");
    }

    let last = crate::clients::raw_kv(&cluster.client_urls()[0])
        .get(prefix.as_str())
        .await
        .expect("read the last revision")
        .revision();
    let watches = Arc::try_unwrap(watches).expect("the compactor is done");
    for watch in watches {
        watch.finish(last, Duration::from_secs(30)).await;
    }
    let reference = Arc::try_unwrap(reference).expect("the compactor is done");
    let collected = reference
        .collect_from_majority(last, Duration::from_secs(60), true)
        .await;
    let history = recorder.history();
    let (report, records) = match collected {
        Ok((records, left_out)) => {
            let mut report = history::check(&history, records.clone());
            report.server_bugs.extend(left_out.into_iter().map(|why| {
                format!("the reference watch of a member was ended or stalled by the server (left out; what it recorded agrees): {why}")
            }));
            (report, records)
        }
        Err(why) => {
            let report = Report {
                ops: history.ops.len(),
                anomalies: vec![history::Anomaly::Reference { detail: why }],
                ..Report::default()
            };
            (report, Vec::new())
        }
    };
    let dir = history::run_dir(&config.seed.to_string());
    history::dump(&dir, &history, &records, &report).expect("write the run's history");
    std::fs::write(
        dir.join("schedule.json"),
        serde_json::to_vec_pretty(&faults).expect("faults serialize"),
    )
    .expect("write the schedule");
    Outcome {
        report,
        faults,
        dir,
    }
}

/// Keeps a lease with one key alive, takes a new one whenever the client reports it lost.
async fn lease_task(
    recorder: Arc<Recorder>,
    client: Client,
    prefix: String,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let lease = match client.lease().grant(Duration::from_secs(5)).await {
            Ok(lease) => lease,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let keep_alive = match client.lease().keep_alive(lease.id()).await {
            Ok(keep_alive) => keep_alive,
            Err(_) => continue,
        };
        let key = format!("{prefix}lease/{n}");
        let put = Request::Put(PutReq {
            key: key.clone(),
            value: format!("c{LEASE_CLIENT}-{n}"),
            lease: lease.id(),
            prev_kv: false,
        });
        recorder.run(LEASE_CLIENT, client.kv(), put).await;
        let sampled = recorder.lease(keep_alive, vec![key], Duration::from_millis(100));
        while !stop.load(Ordering::SeqCst) && sampled.is_alive() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Dropping the handle stops renewing; the lease expires by itself.
        drop(sampled.finish().await);
    }
}

/// The lock the lock tasks compete for.
fn lock_name(prefix: &str) -> String {
    format!("{prefix}locks/lk")
}

/// Takes the lock over and over (competing with the other lock tasks) and writes under it,
/// fenced by the lock key's creation revision, as history client `id`.
async fn lock_task(
    recorder: Arc<Recorder>,
    client: Client,
    prefix: String,
    stop: Arc<AtomicBool>,
    id: u32,
) {
    let name = lock_name(&prefix);
    let mut n = 0u64;
    'sessions: while !stop.load(Ordering::SeqCst) {
        let Ok(session) = Session::new(&client).ttl(Duration::from_secs(5)).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        while !stop.load(Ordering::SeqCst) {
            if session.loss().is_some() {
                continue 'sessions;
            }
            let guard =
                match tokio::time::timeout(Duration::from_secs(5), session.lock(&name)).await {
                    Ok(Ok(guard)) => guard,
                    _ => continue 'sessions,
                };
            n += 1;
            let key = String::from_utf8_lossy(guard.key()).into_owned();
            let fenced = Request::Txn(TxnReq {
                compares: vec![Compare {
                    key,
                    target: CompareTarget::Create(guard.revision()),
                    op: CompareOp::Equal,
                }],
                success: vec![TxnOp::Put(PutReq {
                    key: format!("{prefix}fenced"),
                    value: format!("c{id}-{n}"),
                    ..PutReq::default()
                })],
                failure: vec![],
            });
            let answer = recorder.run(id, client.kv(), fenced).await;
            let _ = guard.unlock().await;
            let pause = if matches!(answer, Response::Failed { .. }) {
                100
            } else {
                20
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let _ = session.close().await;
    }
}

/// Compacts every second to a little behind what every reference and recorded watch has
/// seen (compaction under traffic, K13), so nothing the checker needs is compacted away.
async fn compactor(
    recorder: Arc<Recorder>,
    client: Client,
    reference: Arc<Reference>,
    watches: Arc<Vec<history::RecordedWatch>>,
    stop: Arc<AtomicBool>,
) {
    let mut compacted = 0;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let seen = watches
            .iter()
            .map(history::RecordedWatch::reached)
            .chain([reference.reached()])
            .min()
            .unwrap_or(0);
        // A wide margin: a member catching up from a snapshot restarts its watches from
        // where they were.
        let target = seen - 100;
        if target > compacted + 10 && client.kv().compact(target).await.is_ok() {
            compacted = target;
            recorder.record_compaction(target);
        }
    }
}
