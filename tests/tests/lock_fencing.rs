//! X1 (reliability.md §6.2, §1.5, §3.4; issue #6): a lock holder paused past its session
//! TTL is fenced out.
//!
//! Three lock workers run as **child processes** (this test binary, re-executed with
//! `x1_lock_worker --exact --ignored` and [`ENV_WORKER`] set). Each loops: lock `lk`,
//! read `counter` (value and mod revision), sleep 0–300 ms, write `counter + 1` in a
//! transaction fenced by `is_owner()` and `mod_revision(counter) == seen`, unlock. Every
//! step is reported as one `X1 ...` line on stdout, stamped with `CLOCK_MONOTONIC` (one
//! clock for all processes of the machine).
//!
//! Worker 0 is the victim: on its third acquisition it reports `gate=1` after reading the
//! counter and waits for a line on stdin instead of sleeping. The parent `SIGSTOP`s it
//! there (holding the lock), waits 5 s (> the 2 s TTL), `SIGCONT`s it and lets it write.
//!
//! Checked: (a) fencing tokens strictly increase across acquisitions (in acquisition order)
//! and successful fenced writes, in revision order, carry non-decreasing tokens; (b) the
//! final counter equals the number of fenced writes that reported success, and those
//! writes wrote 1, 2, 3, … in revision order (no lost update); (c) the victim's fenced
//! write after `SIGCONT` does not apply and its session reports the lease lost. (d) The
//! "unfenced overlap" (another worker acquired while the victim still believed it held the
//! lock, the Jepsen finding) is measured and printed, not failed.

use std::collections::HashMap;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use etcd_testkit::process::process_stopped;
use etcd_testkit::{shared_server, unique_prefix};
use etcd3::Client;
use etcd3::concurrency::Session;
use etcd3::kv::{Compare, Op, OpResponse};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Set in a worker's environment: the worker's index. Its presence makes
/// [`x1_lock_worker`] act as a worker.
const ENV_WORKER: &str = "ETCD_TESTS_X1_WORKER";
const ENV_ENDPOINTS: &str = "ETCD_TESTS_X1_ENDPOINTS";
const ENV_PREFIX: &str = "ETCD_TESTS_X1_PREFIX";
const ENV_RUN_MS: &str = "ETCD_TESTS_X1_RUN_MS";
/// Set for the victim only: the acquisition (1-based) at which it waits to be paused.
const ENV_GATE_ROUND: &str = "ETCD_TESTS_X1_GATE_ROUND";

const WORKERS: usize = 3;
const VICTIM: usize = 0;
const GATE_ROUND: u32 = 3;
const SESSION_TTL: Duration = Duration::from_secs(2);
const PAUSE: Duration = Duration::from_secs(5);
/// How long each worker loops (from its start; the victim's pause counts).
const RUN: Duration = Duration::from_secs(10);
/// The whole scenario, workers included, must end within this.
const DEADLINE: Duration = Duration::from_secs(45);

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process of the machine, and
/// it keeps running while a process is stopped.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass and nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

// ---------------------------------------------------------------------------------------
// The worker (child process).
// ---------------------------------------------------------------------------------------

fn emit(kind: &str, worker: usize, fields: &[(&str, String)]) {
    use std::fmt::Write;
    let mut line = format!("X1 {kind} w={worker} t={}", now_ns());
    for (k, v) in fields {
        let _ = write!(line, " {k}={v}");
    }
    // One write per line (stdout is line-buffered), read by the parent as it comes.
    println!("{line}");
}

/// xorshift64*, seeded per process: sleeps of 0–300 ms without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Starts a session with the X1 TTL and a task that reports its loss.
async fn start_session(client: &Client, worker: usize) -> Session {
    let session = Session::new(client).ttl(SESSION_TTL).await.unwrap();
    let watched = session.clone();
    tokio::spawn(async move {
        let loss = watched.lost().await;
        emit(
            "lost",
            worker,
            &[
                ("lease", format!("{:x}", watched.lease_id())),
                ("reason", format!("{loss:?}")),
            ],
        );
    });
    session
}

/// The worker's loop; see the module documentation.
async fn worker(index: usize) {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let endpoints: Vec<String> = var(ENV_ENDPOINTS).split(',').map(str::to_owned).collect();
    let prefix = var(ENV_PREFIX);
    let run = Duration::from_millis(var(ENV_RUN_MS).parse().unwrap());
    let gate_round: Option<u32> = std::env::var(ENV_GATE_ROUND)
        .ok()
        .map(|r| r.parse().unwrap());
    let lock_name = format!("{prefix}lk");
    let counter = format!("{prefix}counter");
    let started = Instant::now();
    let mut rng = Rng(u64::from(std::process::id()) << 32 | now_ns() | 1);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();

    let client = Client::connect(endpoints).await.unwrap();
    let mut session = start_session(&client, index).await;
    let mut round = 0u32;
    while started.elapsed() < run {
        if session.loss().is_some() {
            session = start_session(&client, index).await;
        }
        let guard = match session.lock(&lock_name).await {
            Ok(guard) => guard,
            Err(e) => {
                emit(
                    "lockerr",
                    index,
                    &[("err", format!("{e:?}").replace(' ', "_"))],
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acquired = now_ns();
        round += 1;
        let token = guard.revision().to_string();
        let read = match client.kv().get(&counter).await {
            Ok(read) => read,
            Err(e) => {
                emit(
                    "readerr",
                    index,
                    &[("err", format!("{e:?}").replace(' ', "_"))],
                );
                let _ = guard.unlock().await;
                continue;
            }
        };
        let kv = read.first().expect("the parent creates the counter");
        let seen: i64 = kv.value_str().unwrap().parse().unwrap();
        let seen_rev = kv.mod_revision();
        let gated = gate_round == Some(round);
        emit(
            "acq",
            index,
            &[
                ("acquired", acquired.to_string()),
                ("token", token.clone()),
                ("lease", format!("{:x}", session.lease_id())),
                ("seen", seen.to_string()),
                ("seen_rev", seen_rev.to_string()),
                ("gate", u8::from(gated).to_string()),
            ],
        );
        if gated {
            // Holding the lock: the parent SIGSTOPs us here and writes a line after SIGCONT.
            let line = stdin.next_line().await;
            assert!(matches!(line, Ok(Some(_))), "no go-ahead from the parent");
        } else {
            tokio::time::sleep(Duration::from_millis(rng.next() % 301)).await;
        }
        let result = guard
            .txn()
            .when([Compare::mod_revision(&counter).eq(seen_rev)])
            .then([Op::put(&counter, (seen + 1).to_string())])
            .otherwise([Op::get(guard.key())])
            .await;
        let written = now_ns();
        let mut fields = vec![("token", token.clone()), ("new", (seen + 1).to_string())];
        let ok = match &result {
            Ok(resp) if resp.succeeded() => {
                fields.push(("rev", resp.revision().to_string()));
                "1"
            }
            Ok(resp) => {
                let key_present = matches!(
                    resp.responses().first(),
                    Some(OpResponse::Get(get)) if !get.kvs().is_empty()
                );
                fields.push(("rev", resp.revision().to_string()));
                fields.push(("lock_key_present", u8::from(key_present).to_string()));
                "0"
            }
            Err(e) => {
                fields.push(("err", format!("{e:?}").replace(' ', "_")));
                "unknown"
            }
        };
        fields.push(("ok", ok.to_owned()));
        emit("write", index, &fields);
        // Until when this worker believed it held the lock: until it started to unlock, or
        // until a fenced write that failed told it otherwise.
        let believed_until = if ok == "0" { written } else { now_ns() };
        let unlocked = guard.unlock().await;
        emit(
            "release",
            index,
            &[
                ("token", token.clone()),
                ("believed_until", believed_until.to_string()),
                ("deleted", format!("{unlocked:?}").replace(' ', "_")),
            ],
        );
        if gated {
            // (c): the paused session must report its lease lost.
            let loss = tokio::time::timeout(Duration::from_secs(5), session.lost()).await;
            emit(
                "victim",
                index,
                &[(
                    "loss",
                    match loss {
                        Ok(loss) => format!("{loss:?}"),
                        Err(_) => "none".to_owned(),
                    },
                )],
            );
        }
    }
    let _ = session.close().await;
    emit("done", index, &[("rounds", round.to_string())]);
}

/// A worker of [`x1_paused_lock_holder_is_fenced_out`]; does nothing unless run as its
/// child process (with [`ENV_WORKER`] set).
#[test]
#[ignore = "an X1 lock worker: x1_paused_lock_holder_is_fenced_out runs it as a child"]
fn x1_lock_worker() {
    let Ok(index) = std::env::var(ENV_WORKER) else {
        return;
    };
    let index: usize = index.parse().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(worker(index));
}

// ---------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------

/// One `X1 <kind> w=<worker> t=<ns> k=v ...` line.
#[derive(Debug, Clone)]
struct Event {
    kind: String,
    worker: usize,
    t: u64,
    fields: HashMap<String, String>,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        // libtest may print "test x1_lock_worker ... " just before the first report.
        let start = line.find("X1 ")?;
        let mut words = line[start + 3..].split(' ');
        let kind = words.next()?.to_owned();
        let fields: HashMap<String, String> = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Event {
            kind,
            worker: fields.get("w")?.parse().ok()?,
            t: fields.get("t")?.parse().ok()?,
            fields,
        })
    }

    fn get(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("{self:?} has no {name}"))
    }

    fn num<T: std::str::FromStr>(&self, name: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        self.get(name).parse().unwrap()
    }
}

/// The worker processes; every one still running is killed (`SIGKILL`, which also ends a
/// stopped process) when this is dropped, so a failing assert leaves none behind.
struct Workers {
    children: Vec<tokio::process::Child>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

fn spawn_worker(index: usize, endpoints: &[String], prefix: &str) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["x1_lock_worker", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(ENV_WORKER, index.to_string())
        .env(ENV_ENDPOINTS, endpoints.join(","))
        .env(ENV_PREFIX, prefix)
        .env(ENV_RUN_MS, RUN.as_millis().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if index == VICTIM {
        command.env(ENV_GATE_ROUND, GATE_ROUND.to_string());
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs between fork and exec and makes only async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            // Die with the thread that forked us (the test's thread) if it dies.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command.spawn().expect("cannot start an X1 worker")
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// X1: see the module documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_paused_lock_holder_is_fenced_out() {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let endpoints = shared_server().endpoints();
    let prefix = unique_prefix("x1");
    let counter = format!("{prefix}counter");
    let client = Client::connect(endpoints.clone()).await.unwrap();
    client.kv().put(&counter, "0").await.unwrap();

    let mut workers = Workers {
        children: (0..WORKERS)
            .map(|i| spawn_worker(i, &endpoints, &prefix))
            .collect(),
    };
    let victim_pid = workers.children[VICTIM].id().unwrap();
    let mut victim_stdin = workers.children[VICTIM].stdin.take();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, String)>();
    for (i, child) in workers.children.iter_mut().enumerate() {
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send((i, line));
            }
        });
    }
    drop(tx);

    // Collect every report; pause the victim when it holds the lock at its gate.
    let mut events: Vec<Event> = Vec::new();
    let mut pause: Option<tokio::task::JoinHandle<(u64, u64)>> = None;
    loop {
        let (from, line) = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(got)) => got,
            Ok(None) => break,
            Err(_) => panic!(
                "X1 did not finish within {DEADLINE:?}; last reports: {:#?}",
                &events[events.len().saturating_sub(10)..]
            ),
        };
        let Some(event) = Event::parse(&line) else {
            continue; // libtest's own lines
        };
        assert_eq!(event.worker, from, "{line}");
        if event.kind == "acq" && event.get("gate") == "1" {
            assert_eq!(event.worker, VICTIM);
            assert!(pause.is_none(), "the victim passed its gate twice");
            let stdin = victim_stdin.take().unwrap();
            pause = Some(tokio::spawn(pause_victim(victim_pid, stdin)));
        }
        events.push(event);
    }
    let mut statuses: Vec<ExitStatus> = Vec::new();
    for child in &mut workers.children {
        let status = tokio::time::timeout_at(deadline, child.wait())
            .await
            .expect("a worker closed its stdout but does not exit")
            .unwrap();
        statuses.push(status);
    }
    drop(workers);
    let (stopped_at, continued_at) = pause
        .expect("the victim never reached its gate")
        .await
        .unwrap();
    for (i, status) in statuses.iter().enumerate() {
        assert!(status.success(), "worker {i} failed: {status}");
        assert!(
            events.iter().any(|e| e.worker == i && e.kind == "done"),
            "worker {i} did not finish its loop"
        );
    }

    let final_value: i64 = client
        .kv()
        .get(&counter)
        .await
        .unwrap()
        .first()
        .unwrap()
        .value_str()
        .unwrap()
        .parse()
        .unwrap();
    check(&events, final_value, stopped_at, continued_at);
}

/// Stops the victim (which waits at its gate, holding the lock) for [`PAUSE`], continues
/// it and lets it write. Returns when it was stopped and continued.
async fn pause_victim(pid: u32, mut stdin: tokio::process::ChildStdin) -> (u64, u64) {
    signal(pid, libc::SIGSTOP);
    let stopped_at = now_ns();
    let waited = Instant::now();
    while !process_stopped(pid) {
        assert!(
            waited.elapsed() < Duration::from_secs(2),
            "the victim does not stop"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(PAUSE).await;
    signal(pid, libc::SIGCONT);
    let continued_at = now_ns();
    stdin.write_all(b"go\n").await.unwrap();
    stdin.flush().await.unwrap();
    (stopped_at, continued_at)
}

/// The X1 assertions (a)–(c) and the measurements (d).
fn check(events: &[Event], final_value: i64, stopped_at: u64, continued_at: u64) {
    fn kind<'a>(events: &'a [Event], kind: &'a str) -> impl Iterator<Item = &'a Event> {
        events.iter().filter(move |e| e.kind == kind)
    }
    let of = |k: &'static str| kind(events, k);

    // (a) Tokens strictly increase across acquisitions, in the order they were acquired.
    let mut acquisitions: Vec<(u64, i64, usize)> = of("acq")
        .map(|e| (e.num("acquired"), e.num("token"), e.worker))
        .collect();
    acquisitions.sort();
    assert!(
        acquisitions.windows(2).all(|w| w[0].1 < w[1].1),
        "fencing tokens must strictly increase in acquisition order: {acquisitions:?}"
    );

    // (b) No lost update: the successful fenced writes, in revision order, wrote 1, 2, 3,
    // … with non-decreasing tokens, and the counter holds their number.
    let mut succeeded: Vec<(i64, i64, i64)> = of("write")
        .filter(|e| e.get("ok") == "1")
        .map(|e| (e.num("rev"), e.num("token"), e.num("new")))
        .collect();
    succeeded.sort();
    let unknown = of("write").filter(|e| e.get("ok") == "unknown").count();
    let failed: Vec<&Event> = of("write").filter(|e| e.get("ok") == "0").collect();
    assert!(
        succeeded.windows(2).all(|w| w[0].1 <= w[1].1),
        "successful fenced writes in revision order must carry non-decreasing tokens: {succeeded:?}"
    );
    if unknown == 0 {
        let written: Vec<i64> = succeeded.iter().map(|s| s.2).collect();
        let expected: Vec<i64> = (1..=succeeded.len() as i64).collect();
        assert_eq!(written, expected, "each fenced write added exactly one");
        assert_eq!(
            final_value,
            succeeded.len() as i64,
            "the counter equals the number of fenced writes that succeeded"
        );
    } else {
        // A write whose outcome is unknown may or may not have applied.
        assert!(
            (succeeded.len() as i64..=(succeeded.len() + unknown) as i64).contains(&final_value),
            "counter {final_value}, {} fenced writes succeeded, {unknown} unknown",
            succeeded.len()
        );
    }

    // (c) The victim's fenced write after SIGCONT did not apply; its session lost the lease.
    let gate = of("acq")
        .find(|e| e.worker == VICTIM && e.get("gate") == "1")
        .unwrap();
    let token = gate.get("token");
    let write = of("write")
        .find(|e| e.worker == VICTIM && e.get("token") == token)
        .expect("the victim reported no write after its pause");
    assert_eq!(
        write.get("ok"),
        "0",
        "the paused holder's fenced write must not apply: {write:?}"
    );
    assert!(write.t > continued_at);
    let verdict = of("victim").next().expect("the victim's verdict");
    let loss = verdict.get("loss");
    assert!(
        loss.starts_with("Lease("),
        "the paused holder's session must report its lease lost, not {loss}"
    );
    let lost_at = of("lost")
        .filter(|e| e.worker == VICTIM && e.get("lease") == gate.get("lease"))
        .map(|e| e.t)
        .next();
    assert_eq!(
        write.get("lock_key_present"),
        "0",
        "the paused holder's lock key must be gone (its lease expired): {write:?}"
    );

    // (d) The unfenced overlap: others' acquisitions while the victim believed it held.
    let victim_acquired: u64 = gate.num("acquired");
    let learned = lost_at.map_or(write.t, |lost| lost.min(write.t));
    let takeovers: Vec<&(u64, i64, usize)> = acquisitions
        .iter()
        .filter(|a| a.2 != VICTIM && a.0 > victim_acquired && a.0 < learned)
        .collect();
    let others_writes = of("write")
        .filter(|e| {
            e.worker != VICTIM && e.get("ok") == "1" && e.t > victim_acquired && e.t < learned
        })
        .count();
    // Every holder's belief interval, pairwise: overlap between different holders.
    let releases: HashMap<(usize, &str), u64> = of("release")
        .map(|e| ((e.worker, e.get("token")), e.num::<u64>("believed_until")))
        .collect();
    let intervals: Vec<(u64, u64, usize)> = of("acq")
        .filter_map(|e| {
            let end = *releases.get(&(e.worker, e.get("token")))?;
            let end = if e.worker == VICTIM && e.get("token") == token {
                end.min(learned)
            } else {
                end
            };
            Some((e.num("acquired"), end, e.worker))
        })
        .collect();
    let mut overlap_total = 0u64;
    let mut overlapping_pairs = 0usize;
    for (i, a) in intervals.iter().enumerate() {
        for b in &intervals[i + 1..] {
            let o = a.1.min(b.1).saturating_sub(a.0.max(b.0));
            if o > 0 && a.2 != b.2 {
                overlap_total += o;
                overlapping_pairs += 1;
            }
        }
    }
    let lost_reports: Vec<String> = of("lost")
        .filter(|e| !e.get("reason").starts_with("Closed"))
        .map(|e| format!("w{}:{}", e.worker, e.get("reason")))
        .collect();
    match takeovers.first() {
        Some(first) => eprintln!(
            "x1: UNFENCED OVERLAP {:.1} ms: worker {} acquired (token {}) {:.1} ms after SIGSTOP \
             while the victim (token {token}) still believed it held the lock; the victim learned \
             {:.1} ms after SIGCONT; {} acquisitions and {others_writes} fenced writes by others \
             in the overlap",
            ms(learned - first.0),
            first.2,
            first.1,
            ms(first.0.saturating_sub(stopped_at)),
            ms(learned.saturating_sub(continued_at)),
            takeovers.len(),
        ),
        None => eprintln!("x1: no unfenced overlap: nobody acquired during the pause"),
    }
    eprintln!(
        "x1: {} acquisitions, {} fenced writes succeeded, {} failed ({} by the victim), \
         {unknown} unknown, counter {final_value}; paused {:.0} ms; victim's loss {loss} \
         (write {:.1} ms after SIGCONT, lock key present: {}); sessions lost: {lost_reports:?}; \
         belief intervals overlapping between holders: {overlapping_pairs} pairs, {:.1} ms in all",
        acquisitions.len(),
        succeeded.len(),
        failed.len(),
        failed.iter().filter(|e| e.worker == VICTIM).count(),
        ms(continued_at - stopped_at),
        ms(write.t - continued_at),
        write.get("lock_key_present"),
        ms(overlap_total),
    );
}
