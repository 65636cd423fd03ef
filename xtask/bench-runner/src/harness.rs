//! The shared harness of the request/response workloads: `concurrency` tasks, each with
//! its own per-task state, issuing one operation after the other until a deadline.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cpu;
use crate::model::Workload;

/// One client's way of doing one operation. The same harness drives both clients.
pub(crate) trait Driver: Clone + Send + Sync + 'static {
    /// What a task keeps between its operations (a lease, a stream, a client clone).
    type Task: Send + 'static;

    /// Sets a task up (not measured): grants its lease, opens its stream.
    fn start(&self, w: Workload) -> impl Future<Output = Result<Self::Task, String>> + Send;

    /// Operation `n` of the run: returns the number of items it covered (keys of a range).
    fn op(
        &self,
        task: &mut Self::Task,
        w: Workload,
        n: u64,
        prefix: &str,
    ) -> impl Future<Output = Result<u64, String>> + Send;
}

/// What the timed part of a run measured: one `drive`, or a watch run.
pub(crate) struct Measured {
    /// drive: until the last operation ended; watch: first put sent → last event received;
    /// watch-replay: watches opened → last event received.
    pub(crate) elapsed: Duration,
    /// In ns, sorted. drive: of the successful operations; watch: put sent → event
    /// received; watch-replay: per watch, run start → its last event.
    pub(crate) latencies: Vec<u64>,
    /// drive: keys returned (range) or operations; watch runs: events received (in order,
    /// by all watches).
    pub(crate) items: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) client_cpu: Duration,
    pub(crate) server_cpu: Duration,
}

#[derive(Default)]
struct TaskOut {
    latencies: Vec<u64>,
    items: u64,
    errors: u64,
    first_error: Option<String>,
}

impl TaskOut {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

/// Runs `w` with `concurrency` tasks for `duration`. The tasks are set up first; CPU time
/// (ours, and the server's when `etcd_pid` is given) and wall time are measured from the
/// moment they all are ready until the last one finished its last operation.
pub(crate) async fn drive<D: Driver>(
    driver: &D,
    w: Workload,
    concurrency: usize,
    duration: Duration,
    prefix: Arc<str>,
    etcd_pid: u32,
) -> Measured {
    let counter = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(tokio::sync::Barrier::new(concurrency + 1));
    let (go_tx, go_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let driver = driver.clone();
        let (counter, prefix, ready) = (counter.clone(), prefix.clone(), ready.clone());
        let mut go = go_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = TaskOut {
                latencies: Vec::with_capacity(4096),
                ..TaskOut::default()
            };
            let task = driver.start(w).await;
            ready.wait().await;
            let deadline = match go.wait_for(Option::is_some).await {
                Ok(deadline) => deadline.unwrap_or_else(Instant::now),
                Err(_) => return out,
            };
            let mut task = match task {
                Ok(task) => task,
                Err(e) => {
                    out.error(format!("setup: {e}"));
                    return out;
                }
            };
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let start = Instant::now();
                let result = driver.op(&mut task, w, n, &prefix).await;
                let took = start.elapsed();
                match result {
                    Ok(items) => {
                        out.latencies.push(took.as_nanos() as u64);
                        out.items += items;
                    }
                    Err(e) => out.error(e),
                }
            }
            out
        }));
    }
    ready.wait().await;
    let cpu0 = cpu::self_cpu();
    let srv0 = cpu::proc_cpu(etcd_pid).unwrap_or_default();
    let t0 = Instant::now();
    let _ = go_tx.send(Some(t0 + duration));
    let mut total = TaskOut::default();
    for task in tasks {
        let out = task.await.expect("benchmark task panicked");
        total.latencies.extend(out.latencies);
        total.items += out.items;
        total.errors += out.errors;
        if total.first_error.is_none() {
            total.first_error = out.first_error;
        }
    }
    let elapsed = t0.elapsed();
    let client_cpu = cpu::self_cpu().saturating_sub(cpu0);
    let server_cpu = cpu::proc_cpu(etcd_pid)
        .unwrap_or_default()
        .saturating_sub(srv0);
    total.latencies.sort_unstable();
    Measured {
        elapsed,
        latencies: total.latencies,
        items: total.items,
        errors: total.errors,
        first_error: total.first_error,
        client_cpu,
        server_cpu,
    }
}
