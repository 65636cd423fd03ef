//! `cargo xtask fuzz [--seconds S] [--target T] [--seed N]`: runs the fuzz targets (plain
//! tests driven by the `etcd-fuzz` harness) in release mode for S seconds each, and prints
//! the executions per target.

use std::io::{BufRead, BufReader};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, bail};

use crate::util::{Args, cargo};

/// A fuzz target: its name, its package, the cargo arguments that select its test binary,
/// and the test's name in that binary.
struct Target {
    name: &'static str,
    package: &'static str,
    binary: &'static [&'static str],
    test: &'static str,
}

/// Every target, in the order they run.
const TARGETS: &[Target] = &[
    Target {
        name: "hpack",
        package: "etcd3",
        binary: &["--lib"],
        test: "http2::fuzz::fuzz_hpack",
    },
    Target {
        name: "hpack_mutated",
        package: "etcd3",
        binary: &["--lib"],
        test: "http2::fuzz::fuzz_hpack_mutated",
    },
    Target {
        name: "huffman",
        package: "etcd3",
        binary: &["--lib"],
        test: "http2::fuzz::fuzz_huffman",
    },
    Target {
        name: "unary",
        package: "etcd-core",
        binary: &["--test", "fuzz_unary"],
        test: "fuzz_unary",
    },
    Target {
        name: "connection",
        package: "etcd3",
        binary: &["--test", "fuzz_connection"],
        test: "fuzz_connection",
    },
    Target {
        name: "connection_raw",
        package: "etcd3",
        binary: &["--test", "fuzz_connection"],
        test: "fuzz_connection_raw",
    },
];

/// The names of the targets, for messages.
fn names() -> String {
    TARGETS
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let args = Args::parse(args, &["--seconds", "--target", "--seed"], &[])?;
    let seconds: f64 = match args.value("--seconds") {
        Some(s) => s.parse().with_context(|| format!("--seconds {s}"))?,
        None => 60.0,
    };
    let selected: Vec<&Target> = match args.value("--target") {
        None | Some("all") => TARGETS.iter().collect(),
        Some(name) => match TARGETS.iter().find(|t| t.name == name) {
            Some(target) => vec![target],
            None => bail!("unknown fuzz target `{name}` (targets: {})", names()),
        },
    };
    let mut results = Vec::new();
    for target in selected {
        eprintln!("== cargo xtask fuzz: {} for {seconds} s", target.name);
        let mut cmd = cargo();
        cmd.args(["test", "--release", "-p", target.package])
            .args(target.binary)
            .args(["--", "--exact", "--nocapture", target.test])
            .env("ETCD_FUZZ_SECONDS", seconds.to_string())
            .stderr(Stdio::piped());
        if let Some(seed) = args.value("--seed") {
            cmd.env("ETCD_FUZZ_SEED", seed);
        }
        let mut child = cmd.spawn().context("cannot run cargo")?;
        // The harness reports on stderr; pass everything through, keep its report.
        let mut report = None;
        let stderr = child.stderr.take().context("no stderr")?;
        for line in BufReader::new(stderr).lines() {
            let line = line?;
            eprintln!("{line}");
            if line.starts_with(&format!("fuzz target `{}`: ", target.name))
                && line.contains(" executions in ")
            {
                report = Some(line);
            }
        }
        let status = child.wait()?;
        results.push((target.name, status.success(), report));
    }
    eprintln!();
    eprintln!("== cargo xtask fuzz: results ({seconds} s per target)");
    let mut failed = false;
    for (name, passed, report) in &results {
        let verdict = if *passed { "passed" } else { "FAILED" };
        failed |= !passed;
        let report = report
            .as_deref()
            .unwrap_or("(no report: it failed or did not run)");
        eprintln!("  {name:<16} {verdict:<7} {report}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
