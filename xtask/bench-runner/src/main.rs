//! `bench-runner`: the same workloads, driven by the same harness code on the same tokio
//! runtime, with our `etcd-client` and with the crates.io `etcd-client` 0.21 ("theirs"),
//! alternating, over several rounds, against one etcd. Started by `cargo xtask bench`.
//!
//! ```text
//! bench-runner --endpoint URL --etcd-pid PID --out-dir DIR [--duration-ms 2000] [--rounds 3]
//!              [--concurrency 1,16,256] [--workloads put,get,get-serializable,txn]
//! ```
//!
//! Writes `DIR/results.jsonl` (one line per run) and `DIR/results.md` (medians over the rounds
//! and ratios ours/theirs), and prints the table.

mod cpu;
mod stats;

use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

const VALUE_LEN: usize = 256;
const GET_KEYS: u64 = 1000;
const WARMUP: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Put,
    Get,
    GetSerializable,
    Txn,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::Put,
        Workload::Get,
        Workload::GetSerializable,
        Workload::Txn,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::GetSerializable => "get-serializable",
            Workload::Txn => "txn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Impl {
    Ours,
    Theirs,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Theirs => "theirs",
        }
    }
}

/// The keys of operation `n` of a run: the key operated on and, for txn, the compared key.
fn keys(w: Workload, prefix: &str, n: u64) -> (String, String) {
    let get_key = format!("bench/get/{:04}", n % GET_KEYS);
    match w {
        Workload::Put | Workload::Txn => (format!("{prefix}/{n}"), get_key),
        Workload::Get | Workload::GetSerializable => (get_key, String::new()),
    }
}

/// One client's way of doing one operation; each task has its own clone.
trait Driver: Clone + Send + 'static {
    fn op(
        &mut self,
        w: Workload,
        key: String,
        cmp_key: String,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Clone)]
struct Ours {
    client: etcd_client::Client,
    value: Bytes,
}

impl Driver for Ours {
    async fn op(&mut self, w: Workload, key: String, cmp_key: String) -> Result<(), String> {
        use etcd_client::kv::{Compare, Op};
        let kv = self.client.kv();
        match w {
            Workload::Put => {
                kv.put(key, self.value.clone())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Workload::Get | Workload::GetSerializable => {
                let resp = if w == Workload::Get {
                    kv.get(key).await
                } else {
                    kv.get(key).serializable().await
                }
                .map_err(|e| e.to_string())?;
                match resp.first() {
                    Some(item) if item.value().len() == VALUE_LEN => {}
                    _ => return Err("get: missing or wrong value".into()),
                }
            }
            Workload::Txn => {
                let resp = kv
                    .txn()
                    .when([Compare::version(cmp_key).gt(0)])
                    .then([Op::put(key, self.value.clone())])
                    .await
                    .map_err(|e| e.to_string())?;
                if !resp.succeeded() {
                    return Err("txn: compare failed".into());
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Theirs {
    kv: peer::KvClient,
    value: Vec<u8>,
}

impl Driver for Theirs {
    async fn op(&mut self, w: Workload, key: String, cmp_key: String) -> Result<(), String> {
        use peer::{Compare, CompareOp, GetOptions, Txn, TxnOp};
        match w {
            Workload::Put => {
                self.kv
                    .put(key, self.value.clone(), None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Workload::Get | Workload::GetSerializable => {
                let options =
                    (w == Workload::GetSerializable).then(|| GetOptions::new().with_serializable());
                let resp = self.kv.get(key, options).await.map_err(|e| e.to_string())?;
                match resp.kvs().first() {
                    Some(item) if item.value().len() == VALUE_LEN => {}
                    _ => return Err("get: missing or wrong value".into()),
                }
            }
            Workload::Txn => {
                let txn = Txn::new()
                    .when([Compare::version(cmp_key, CompareOp::Greater, 0)])
                    .and_then([TxnOp::put(key, self.value.clone(), None)]);
                let resp = self.kv.txn(txn).await.map_err(|e| e.to_string())?;
                if !resp.succeeded() {
                    return Err("txn: compare failed".into());
                }
            }
        }
        Ok(())
    }
}

/// What one timed run measured.
#[derive(Debug)]
struct RunResult {
    workload: Workload,
    concurrency: usize,
    imp: Impl,
    round: usize,
    elapsed: Duration,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    p50: Duration,
    p99: Duration,
    client_cpu: Duration,
    server_cpu: Duration,
}

impl RunResult {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn client_cpu_us_per_op(&self) -> f64 {
        self.client_cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }

    fn server_cpu_us_per_op(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }

    fn json(&self) -> String {
        format!(
            concat!(
                "{{\"workload\":\"{}\",\"concurrency\":{},\"client\":\"{}\",\"round\":{},",
                "\"elapsed_s\":{:.4},\"ops\":{},\"errors\":{},\"ops_per_s\":{:.1},",
                "\"p50_us\":{:.1},\"p99_us\":{:.1},\"client_cpu_us_per_op\":{:.3},",
                "\"server_cpu_us_per_op\":{:.3}}}"
            ),
            self.workload.name(),
            self.concurrency,
            self.imp.name(),
            self.round,
            self.elapsed.as_secs_f64(),
            self.ops,
            self.errors,
            self.ops_per_s(),
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6,
            self.client_cpu_us_per_op(),
            self.server_cpu_us_per_op(),
        )
    }
}

struct TaskOut {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `w` with `concurrency` tasks until `duration` has passed; the shared harness code.
async fn drive<D: Driver>(
    driver: &D,
    w: Workload,
    concurrency: usize,
    duration: Duration,
    prefix: Arc<str>,
) -> (Vec<u64>, u64, Option<String>) {
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let mut driver = driver.clone();
        let counter = counter.clone();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = TaskOut {
                latencies: Vec::with_capacity(4096),
                errors: 0,
                first_error: None,
            };
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (key, cmp_key) = keys(w, &prefix, n);
                let start = Instant::now();
                let result = driver.op(w, key, cmp_key).await;
                let took = start.elapsed();
                match result {
                    Ok(()) => out.latencies.push(took.as_nanos() as u64),
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                    }
                }
            }
            out
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let out = task.await.expect("benchmark task panicked");
        latencies.extend(out.latencies);
        errors += out.errors;
        if first_error.is_none() {
            first_error = out.first_error;
        }
    }
    (latencies, errors, first_error)
}

struct Config {
    etcd_pid: u32,
    duration: Duration,
}

async fn run_once<D: Driver>(
    cfg: &Config,
    driver: &D,
    imp: Impl,
    w: Workload,
    concurrency: usize,
    round: usize,
) -> RunResult {
    let prefix = format!(
        "bench/{}/{}/{}/{}",
        w.name(),
        imp.name(),
        concurrency,
        round
    );
    // Warm up the connection (HTTP/2 windows, allocator, server caches); not measured.
    drive(
        driver,
        w,
        concurrency,
        WARMUP,
        format!("{prefix}/warmup").into(),
    )
    .await;

    let cpu0 = cpu::self_cpu();
    let srv0 = cpu::proc_cpu(cfg.etcd_pid).unwrap_or_default();
    let t0 = Instant::now();
    let (mut latencies, errors, first_error) =
        drive(driver, w, concurrency, cfg.duration, prefix.into()).await;
    let elapsed = t0.elapsed();
    let client_cpu = cpu::self_cpu().saturating_sub(cpu0);
    let server_cpu = cpu::proc_cpu(cfg.etcd_pid)
        .unwrap_or_default()
        .saturating_sub(srv0);
    latencies.sort_unstable();
    RunResult {
        workload: w,
        concurrency,
        imp,
        round,
        elapsed,
        ops: latencies.len() as u64,
        errors,
        first_error,
        p50: Duration::from_nanos(stats::percentile(&latencies, 50.0)),
        p99: Duration::from_nanos(stats::percentile(&latencies, 99.0)),
        client_cpu,
        server_cpu,
    }
}

struct Args {
    endpoint: String,
    etcd_pid: u32,
    out_dir: PathBuf,
    duration: Duration,
    rounds: usize,
    concurrency: Vec<usize>,
    workloads: Vec<Workload>,
}

fn parse_args() -> Result<Args, String> {
    let mut endpoint = None;
    let mut etcd_pid = None;
    let mut out_dir = None;
    let mut duration = Duration::from_secs(2);
    let mut rounds = 3;
    let mut concurrency = vec![1, 16, 256];
    let mut workloads = Workload::ALL.to_vec();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--endpoint" => endpoint = Some(value()?),
            "--etcd-pid" => etcd_pid = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--out-dir" => out_dir = Some(PathBuf::from(value()?)),
            "--duration-ms" => {
                duration = Duration::from_millis(value()?.parse().map_err(|e| format!("{e}"))?)
            }
            "--rounds" => rounds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--concurrency" => {
                concurrency = value()?
                    .split(',')
                    .map(|c| c.parse().map_err(|e| format!("--concurrency: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--workloads" => {
                workloads = value()?
                    .split(',')
                    .map(|name| {
                        Workload::ALL
                            .into_iter()
                            .find(|w| w.name() == name)
                            .ok_or_else(|| format!("unknown workload `{name}`"))
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(Args {
        endpoint: endpoint.ok_or("--endpoint is required")?,
        etcd_pid: etcd_pid.ok_or("--etcd-pid is required")?,
        out_dir: out_dir.ok_or("--out-dir is required")?,
        duration,
        rounds,
        concurrency,
        workloads,
    })
}

fn markdown(results: &[RunResult], args: &Args) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Medians over {} rounds of {:.1} s per run; one client per side; ratio = ours/theirs \
         (ops/s: higher is better; CPU/op: lower is better).\n",
        args.rounds,
        args.duration.as_secs_f64()
    );
    md.push_str(
        "| workload | conc | ops/s ours | ops/s theirs | ops/s ratio | p50 µs ours / theirs \
         | p99 µs ours / theirs | client CPU µs/op ours / theirs | CPU/op ratio \
         | server CPU µs/op ours / theirs |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for &w in &args.workloads {
        for &c in &args.concurrency {
            let med = |imp: Impl, f: &dyn Fn(&RunResult) -> f64| {
                let v: Vec<f64> = results
                    .iter()
                    .filter(|r| r.workload == w && r.concurrency == c && r.imp == imp)
                    .map(f)
                    .collect();
                stats::median(&v)
            };
            let ops = |imp| med(imp, &|r| r.ops_per_s());
            let p50 = |imp| med(imp, &|r| r.p50.as_secs_f64() * 1e6);
            let p99 = |imp| med(imp, &|r| r.p99.as_secs_f64() * 1e6);
            let ccpu = |imp| med(imp, &|r| r.client_cpu_us_per_op());
            let scpu = |imp| med(imp, &|r| r.server_cpu_us_per_op());
            let (o, t) = (Impl::Ours, Impl::Theirs);
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} | **{:.2}** | {:.0} / {:.0} | {:.0} / {:.0} \
                 | {:.1} / {:.1} | **{:.2}** | {:.1} / {:.1} |",
                w.name(),
                c,
                ops(o),
                ops(t),
                ops(o) / ops(t),
                p50(o),
                p50(t),
                p99(o),
                p99(t),
                ccpu(o),
                ccpu(t),
                ccpu(o) / ccpu(t),
                scpu(o),
                scpu(t),
            );
        }
    }
    md
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench-runner: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-runner: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.out_dir)?;
    let value = Bytes::from(vec![b'v'; VALUE_LEN]);
    let ours = Ours {
        client: etcd_client::Client::connect([args.endpoint.as_str()]).await?,
        value: value.clone(),
    };
    let theirs = Theirs {
        kv: peer::Client::connect([args.endpoint.as_str()], None)
            .await?
            .kv_client(),
        value: value.to_vec(),
    };
    for i in 0..GET_KEYS {
        ours.client
            .kv()
            .put(format!("bench/get/{i:04}"), value.clone())
            .await?;
    }
    let cfg = Config {
        etcd_pid: args.etcd_pid,
        duration: args.duration,
    };
    let jsonl_path = args.out_dir.join("results.jsonl");
    let mut jsonl = String::new();
    let mut results = Vec::new();
    let mut failed = false;
    for round in 0..args.rounds {
        for &w in &args.workloads {
            for &c in &args.concurrency {
                // Alternate who goes first, so drift (compaction, growing db) is shared.
                let order = if round % 2 == 0 {
                    [Impl::Ours, Impl::Theirs]
                } else {
                    [Impl::Theirs, Impl::Ours]
                };
                for imp in order {
                    let r = match imp {
                        Impl::Ours => run_once(&cfg, &ours, imp, w, c, round).await,
                        Impl::Theirs => run_once(&cfg, &theirs, imp, w, c, round).await,
                    };
                    eprintln!(
                        "round {round} {:>16} c={c:<3} {:>6}: {:>8.0} ops/s p50 {:>7.0} µs \
                         p99 {:>7.0} µs cpu {:>6.1} µs/op srv {:>6.1} µs/op{}",
                        w.name(),
                        imp.name(),
                        r.ops_per_s(),
                        r.p50.as_secs_f64() * 1e6,
                        r.p99.as_secs_f64() * 1e6,
                        r.client_cpu_us_per_op(),
                        r.server_cpu_us_per_op(),
                        r.first_error
                            .as_ref()
                            .map(|e| format!("  ERRORS {}: {e}", r.errors))
                            .unwrap_or_default(),
                    );
                    failed |= r.errors > 0;
                    jsonl.push_str(&r.json());
                    jsonl.push('\n');
                    std::fs::write(&jsonl_path, &jsonl)?;
                    results.push(r);
                }
            }
        }
    }
    let md = markdown(&results, &args);
    std::fs::write(args.out_dir.join("results.md"), &md)?;
    println!("{md}");
    if failed {
        return Err("some operations failed (see the ERRORS lines above)".into());
    }
    Ok(())
}
