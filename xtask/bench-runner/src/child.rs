//! A child process: exactly one timed run (with its warm-up) of one client, or one scale run;
//! prints one JSON line on stdout. One process per run, so that peak RSS is the run's own.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::args::{ChildArgs, ChildTask};
use crate::connect;
use crate::harness::{self, Driver, Measured};
use crate::model::{Impl, RunResult, Workload};
use crate::protocol::Events;
use crate::workloads::VALUE_LEN;
use crate::workloads::cache;
use crate::workloads::ops::{Ours, Theirs};
use crate::workloads::replay::{self, History};
use crate::workloads::watch;
use crate::{mem, scale, stats};

/// Warm-up of every request/response run (HTTP/2 windows, allocator, server caches); not
/// measured. The watch-replay runs have their own (a short replay, see [`replay`]).
pub(crate) const WARMUP: Duration = Duration::from_millis(200);

/// Runs the child's task and returns its JSON line.
pub(crate) async fn run(args: ChildArgs) -> String {
    match args.task {
        ChildTask::Run {
            workload,
            concurrency,
            imp,
            round,
            duration,
            history,
        } => {
            let spec = Spec {
                endpoint: args.endpoint,
                etcd_pid: args.etcd_pid,
                w: workload,
                concurrency,
                imp,
                round,
                duration,
                history,
            };
            let result = match timed_run(&spec).await {
                Ok(r) => r,
                Err(e) => RunResult::failed(workload, concurrency, imp, round, e),
            };
            result.json()
        }
        ChildTask::Scale { scale, count, hold } => {
            scale::run(scale, &args.endpoint, count, hold).await
        }
    }
}

struct Spec {
    endpoint: String,
    etcd_pid: u32,
    w: Workload,
    concurrency: usize,
    imp: Impl,
    round: usize,
    duration: Duration,
    history: Option<History>,
}

async fn timed_run(s: &Spec) -> Result<RunResult, String> {
    let value = Bytes::from(vec![b'v'; VALUE_LEN]);
    let ep = s.endpoint.as_str();
    let mut result = match s.imp {
        Impl::Ours => {
            let client = connect::ours(ep).await?;
            match s.w {
                Workload::WatchReplay => replay_result(s, replay::Ours(client)).await?,
                Workload::CacheCatchUp => replay_result(s, cache::Ours(client)).await?,
                Workload::Watch => {
                    let prefix = run_prefix(s);
                    let stream = client
                        .watch(format!("{prefix}/"))
                        .prefix()
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut events = watch::OursEvents(stream);
                    watch_result(s, &Ours { client, value }, &mut events, &prefix).await?
                }
                _ => op_result(s, &Ours { client, value }).await,
            }
        }
        Impl::Theirs => {
            let client = connect::theirs(ep).await?;
            let value = value.to_vec();
            match s.w {
                Workload::WatchReplay => replay_result(s, replay::Theirs(client)).await?,
                Workload::CacheCatchUp => replay_result(s, cache::Theirs(client)).await?,
                Workload::Watch => {
                    let prefix = run_prefix(s);
                    let options = peer::WatchOptions::new().with_prefix();
                    let stream = client
                        .watch_client()
                        .watch(format!("{prefix}/"), Some(options))
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut events = watch::TheirsEvents(stream);
                    watch_result(s, &Theirs { client, value }, &mut events, &prefix).await?
                }
                _ => op_result(s, &Theirs { client, value }).await,
            }
        }
    };
    let rss = mem::rss();
    result.peak_rss_mib = rss.peak_mib;
    result.rss_mib = rss.now_mib;
    Ok(result)
}

fn empty(s: &Spec) -> RunResult {
    RunResult::failed(s.w, s.concurrency, s.imp, s.round, String::new())
}

/// The keys of one run: `bench/<workload>/<client>/<c>/<round>`.
fn run_prefix(s: &Spec) -> String {
    format!(
        "bench/{}/{}/{}/{}",
        s.w.name(),
        s.imp.name(),
        s.concurrency,
        s.round
    )
}

async fn op_result<D: Driver>(s: &Spec, driver: &D) -> RunResult {
    let prefix = run_prefix(s);
    let warm: Arc<str> = format!("{prefix}/warmup").into();
    harness::drive(driver, s.w, s.concurrency, WARMUP, warm, s.etcd_pid).await;
    let m: Measured = harness::drive(
        driver,
        s.w,
        s.concurrency,
        s.duration,
        prefix.into(),
        s.etcd_pid,
    )
    .await;
    let ops = m.latencies.len() as u64;
    RunResult {
        ops,
        checked: ops,
        ..timed(s, m)
    }
}

/// What every run reports of its timed part: elapsed time, items, latency percentiles, CPU
/// and errors; the operation counts are the caller's.
fn timed(s: &Spec, m: Measured) -> RunResult {
    RunResult {
        elapsed_s: m.elapsed.as_secs_f64(),
        items: m.items,
        errors: m.errors,
        first_error: m.first_error,
        p50_us: stats::percentile(&m.latencies, 50.0) as f64 / 1e3,
        p99_us: stats::percentile(&m.latencies, 99.0) as f64 / 1e3,
        client_cpu_s: m.client_cpu.as_secs_f64(),
        server_cpu_s: m.server_cpu.as_secs_f64(),
        ..empty(s)
    }
}

/// One watch run: puts for `s.duration` with `driver`, their events received by `events`.
async fn watch_result<D: Driver, E: Events>(
    s: &Spec,
    driver: &D,
    events: &mut E,
    prefix: &str,
) -> Result<RunResult, String> {
    let m = watch::run(
        driver,
        events,
        s.concurrency,
        WARMUP,
        s.duration,
        prefix,
        s.etcd_pid,
    )
    .await?;
    Ok(events_result(s, m))
}

/// One watch-replay run: `s.duration` plays no part, the run ends once every watch has
/// replayed the whole history.
async fn replay_result<W: replay::Watcher>(s: &Spec, client: W) -> Result<RunResult, String> {
    let history = s
        .history
        .ok_or("the watch-replay and cache-catchup workloads need --history-revs")?;
    let m = replay::run(client, history, s.concurrency, s.etcd_pid).await?;
    Ok(events_result(s, m))
}

/// ops = items = checked = the events received.
fn events_result(s: &Spec, m: Measured) -> RunResult {
    RunResult {
        ops: m.items,
        checked: m.items,
        ..timed(s, m)
    }
}
