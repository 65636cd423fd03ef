//! `bench-runner`: the same workloads, driven by the same harness code on the same tokio
//! runtime, with our `etcd3` and with the crates.io `etcd-client` 0.21 ("theirs"),
//! alternating, over several rounds, against one etcd. Started by `cargo xtask bench`.
//!
//! ```text
//! bench-runner --endpoint URL --etcd-pid PID --out-dir DIR [--duration-ms 2000] [--rounds 3]
//!              [--workloads put,get,get-serializable,txn,watch,watch-replay,cache-catchup,
//!                           lease-keepalive,range,scan]
//!              [--concurrency LIST] [--clients ours,theirs]
//!              [--scale watches-10k,leases-10k | --no-scale] [--quick]
//!              [--scale-watches N] [--scale-leases N] [--scale-hold-ms MS]
//! ```
//!
//! Every (workload, concurrency, client, round) runs in a child process of its own (the
//! runner started again with `--child`), so that its peak RSS is its own; the child does the
//! warm-up and the timed run and prints one JSON line. The parent ([`parent`]) writes the
//! keys the workloads read and the history the watch runs replay once, with our client, then
//! runs the scale runs ([`scale`], ours only; `--quick` makes them short, `--no-scale`
//! skips them). Default concurrencies: 1, 16 and 256, but 1 and 16 for watch and range;
//! `--concurrency` sets them for all.
//!
//! Writes `DIR/results.jsonl` (one line per run, scale runs too), `DIR/results.md` (medians
//! over the rounds, ratios ours/theirs, the issue's targets with PASS/FAIL) and
//! `DIR/ratios.svg` (the ratios as a bar chart), and prints the table.

mod args;
mod chart;
mod child;
mod connect;
mod cpu;
mod harness;
mod json;
mod mem;
mod model;
mod parent;
mod protocol;
mod report;
mod scale;
mod stats;
mod workloads;

use std::io::Write as _;
use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    match args::parse(std::env::args().skip(1)) {
        Err(e) => {
            eprintln!("bench-runner: {e}");
            ExitCode::from(2)
        }
        Ok(args::Mode::Child(args)) => {
            let line = child::run(args).await;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            // Not a return: the runtime would wait for the blocking thread reading stdin.
            std::process::exit(0)
        }
        Ok(args::Mode::Parent(args)) => match parent::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-runner: error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
