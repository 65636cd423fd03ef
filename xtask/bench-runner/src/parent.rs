//! The parent: sets the data up once, starts one child process per (workload, concurrency,
//! client, round), alternating which client goes first (the watch children get the revisions
//! of the history they replay), does the puts the `watches-10k` scale child asks for; writes
//! `results.jsonl`, `results.md` and `ratios.svg`.

use std::future::IntoFuture;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::args::Args;
use crate::json::{self, Fields};
use crate::model::{Impl, RunResult, Workload};
use crate::protocol::{Ready, stamped_value};
use crate::workloads::replay::{HISTORY, History, TXN_PUTS};
use crate::workloads::{GET_KEYS, RANGE_KEYS, VALUE_LEN, get_key, range_key, watch_key};
use crate::{chart, report};

type Client = etcd3::Client;

pub(crate) async fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.out_dir).map_err(|e| e.to_string())?;
    let client = crate::connect::ours(&args.endpoint).await?;
    setup(&client, &args).await?;
    let replays = |w: &Workload| matches!(w, Workload::WatchReplay | Workload::CacheCatchUp);
    let history = if args.workloads.iter().any(replays) {
        Some(watch_history(&client).await?)
    } else {
        None
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let jsonl_path = args.out_dir.join("results.jsonl");
    let mut jsonl = String::new();
    let mut results = Vec::new();
    let mut failed = false;
    for round in 0..args.rounds {
        for &w in &args.workloads {
            for c in args.concurrency_of(w) {
                // Alternate who goes first, so drift (compaction, growing db) is shared.
                let order = if round % 2 == 0 {
                    [Impl::Ours, Impl::Theirs]
                } else {
                    [Impl::Theirs, Impl::Ours]
                };
                for imp in order.into_iter().filter(|i| args.clients.contains(i)) {
                    let mut child_args = vec![
                        "--workload".to_owned(),
                        w.name().to_owned(),
                        "--concurrency".to_owned(),
                        c.to_string(),
                        "--client".to_owned(),
                        imp.name().to_owned(),
                        "--round".to_owned(),
                        round.to_string(),
                        "--duration-ms".to_owned(),
                        args.duration.as_millis().to_string(),
                    ];
                    if let (true, Some(h)) = (replays(&w), history) {
                        child_args.extend(["--history-revs".to_owned(), h.arg()]);
                    }
                    let limit = args.duration * 3 + Duration::from_secs(120);
                    let r = match run_child(&exe, &args, child_args, &client, limit).await {
                        Ok(line) => json::parse(&line).and_then(|m| RunResult::from_json(&m)),
                        Err(e) => Err(e),
                    }
                    .unwrap_or_else(|e| RunResult::failed(w, c, imp, round, e));
                    print_run(&r);
                    failed |= r.errors > 0;
                    jsonl.push_str(&r.json());
                    jsonl.push('\n');
                    write(&jsonl_path, &jsonl)?;
                    results.push(r);
                }
            }
        }
    }
    let mut scales = Vec::new();
    for &s in &args.scale {
        let count = match s {
            crate::model::Scale::Watches => args.scale_watches,
            crate::model::Scale::Leases => args.scale_leases,
        };
        eprintln!("scale {}: {count} ...", s.name());
        let child_args = vec![
            "--scale".to_owned(),
            s.name().to_owned(),
            "--count".to_owned(),
            count.to_string(),
            "--scale-hold-ms".to_owned(),
            args.scale_hold.as_millis().to_string(),
        ];
        let limit = args.scale_hold + Duration::from_secs(300);
        let line = run_child(&exe, &args, child_args, &client, limit)
            .await
            .unwrap_or_else(|e| {
                json::Writer::default()
                    .str("workload", s.name())
                    .str("client", "ours")
                    .int("errors", 1)
                    .str("first_error", &e)
                    .bool("pass", false)
                    .finish()
            });
        eprintln!("scale {}: {line}", s.name());
        let map = json::parse(&line)?;
        failed |= map.num("errors") != 0.0;
        jsonl.push_str(&line);
        jsonl.push('\n');
        write(&jsonl_path, &jsonl)?;
        scales.push(map);
    }
    let summary = report::summarize(&results, &args);
    let md = report::markdown(&summary, &scales, &args);
    write(&args.out_dir.join("results.md"), &md)?;
    write(&args.out_dir.join("ratios.svg"), &chart::svg(&summary))?;
    println!("{md}");
    if failed {
        return Err("some runs had errors (see ERRORS above and results.jsonl)".into());
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn print_run(r: &RunResult) {
    eprintln!(
        "round {} {:>16} c={:<3} {:>6}: {:>8.0} ops/s p50 {:>7.0} µs p99 {:>7.0} µs \
         cpu {:>6.1} µs/op srv {:>6.1} µs/op rss {:>5.1} MiB{}",
        r.round,
        r.workload.name(),
        r.concurrency,
        r.imp.name(),
        r.ops_per_s(),
        r.p50_us,
        r.p99_us,
        r.client_cpu_us_per_op(),
        r.server_cpu_us_per_op(),
        r.peak_rss_mib,
        r.first_error
            .as_ref()
            .map(|e| format!("  ERRORS {}: {e}", r.errors))
            .unwrap_or_default(),
    );
}

/// The keys the workloads read, written once with our client: 1000 for get and txn, 10,000
/// for range.
async fn setup(client: &Client, args: &Args) -> Result<(), String> {
    let value = Bytes::from(vec![b'v'; VALUE_LEN]);
    let mut keys: Vec<String> = Vec::new();
    let reads = [Workload::Get, Workload::GetSerializable, Workload::Txn];
    if args.workloads.iter().any(|w| reads.contains(w)) {
        keys.extend((0..GET_KEYS).map(get_key));
    }
    if args.workloads.contains(&Workload::Range) || args.workloads.contains(&Workload::Scan) {
        keys.extend((0..RANGE_KEYS).map(range_key));
    }
    futures_util::stream::iter(keys)
        .map(|key| client.kv().put(key, value.clone()).into_future())
        .buffer_unordered(64)
        .try_for_each(|_| async { Ok(()) })
        .await
        .map_err(|e| format!("setup: {e}"))
}

/// The history the watch runs replay: [`HISTORY`] puts under
/// [`HISTORY_PREFIX`](crate::workloads::replay::HISTORY_PREFIX), written once with our client
/// as transactions of [`TXN_PUTS`] puts each, one after the other, so that they take
/// [`HISTORY`] / [`TXN_PUTS`] contiguous revisions (nothing else writes meanwhile).
async fn watch_history(client: &Client) -> Result<History, String> {
    use etcd3::kv::Op;
    let value = Bytes::from(vec![b'h'; VALUE_LEN]);
    let t0 = Instant::now();
    let mut revs = Vec::new();
    for txn in 0..HISTORY / TXN_PUTS {
        let ops =
            (txn * TXN_PUTS..(txn + 1) * TXN_PUTS).map(|n| Op::put(watch_key(n), value.clone()));
        let resp = client
            .kv()
            .txn()
            .then(ops)
            .await
            .map_err(|e| format!("watch history: {e}"))?;
        revs.push(resp.revision());
    }
    let (first_rev, last_rev) = (revs[0], revs[revs.len() - 1]);
    if last_rev - first_rev + 1 != (HISTORY / TXN_PUTS) as i64 {
        return Err(format!(
            "watch history: {} transactions took revisions {first_rev} ..= {last_rev}, not \
             contiguous",
            HISTORY / TXN_PUTS
        ));
    }
    eprintln!(
        "watch history: {HISTORY} puts in {} transactions, revisions {first_rev} ..= {last_rev}, \
         in {:.2} s",
        HISTORY / TXN_PUTS,
        t0.elapsed().as_secs_f64()
    );
    Ok(History {
        first_rev,
        last_rev,
    })
}

/// Runs the runner itself as a child, answers its put phases, returns its JSON line.
async fn run_child(
    exe: &Path,
    args: &Args,
    child_args: Vec<String>,
    client: &Client,
    limit: Duration,
) -> Result<String, String> {
    let mut child = tokio::process::Command::new(exe)
        .arg("--child")
        .arg("--endpoint")
        .arg(&args.endpoint)
        .arg("--etcd-pid")
        .arg(args.etcd_pid.to_string())
        .args(child_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let talk = async {
        let mut result = None;
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            if let Some(ready) = Ready::parse(&line) {
                let reply = match put_phase(client, &ready).await {
                    Ok(n) => format!("DONE {n}\n"),
                    Err(e) => format!("ABORT {}\n", e.replace('\n', " ")),
                };
                stdin
                    .write_all(reply.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                stdin.flush().await.map_err(|e| e.to_string())?;
            } else if line.starts_with('{') {
                result = Some(line);
                break;
            } else {
                eprintln!("child: {line}");
            }
        }
        Ok::<_, String>(result)
    };
    let result = tokio::time::timeout(limit, talk)
        .await
        .map_err(|_| format!("the child run took longer than {limit:?}"))??;
    drop(stdin);
    let status = child.wait().await.map_err(|e| e.to_string())?;
    result.ok_or_else(|| format!("the child exited ({status}) without a result"))
}

/// The puts a watching child asked for; returns how many were acknowledged.
async fn put_phase(client: &Client, ready: &Ready) -> Result<u64, String> {
    let counter = Arc::new(AtomicU64::new(0));
    let stop_at = (!ready.duration.is_zero()).then(|| Instant::now() + ready.duration);
    let prefix: Arc<str> = ready.prefix.as_str().into();
    let tasks: Vec<_> = (0..ready.putters.max(1))
        .map(|_| {
            let (client, counter, prefix) = (client.clone(), counter.clone(), prefix.clone());
            let count = ready.count;
            tokio::spawn(async move {
                let mut done = 0u64;
                loop {
                    if stop_at.is_some_and(|t| Instant::now() >= t) {
                        break;
                    }
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if count > 0 && n >= count {
                        break;
                    }
                    client
                        .kv()
                        .put(format!("{prefix}{n}"), stamped_value())
                        .await
                        .map_err(|e| format!("put {prefix}{n}: {e}"))?;
                    done += 1;
                }
                Ok::<u64, String>(done)
            })
        })
        .collect();
    let mut total = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(n) => total += n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}
