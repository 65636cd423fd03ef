//! `cargo xtask chaos [--seed N] [--duration S] [--version 3.4|3.5] [--members 3|5]`: one
//! seeded chaos run (the `chaos` binary of the `etcd-tests` package) against the etcd
//! version chosen. The run's last line is its summary,
//! `chaos: seed S, N ops (U unknown), F faults, A anomalies`; the exit status is non-zero
//! when the checker found an anomaly. The history, the server's reference history, the
//! fault schedule and the report are kept in `target/chaos/<seed>/`.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::etcd_bin::{V3_5, ensure_etcd, install_hint, parse_version};
use crate::util::{Args, cargo, exit_code};

pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let args = Args::parse(
        args,
        &["--seed", "--duration", "--version", "--members"],
        &[],
    )?;
    let version = match args.value("--version") {
        Some(v) => parse_version(v)?,
        None => V3_5,
    };
    let Some(bin) = ensure_etcd(version)? else {
        bail!("etcd {version} not found; {}", install_hint(version));
    };
    let mut runner: Vec<String> = Vec::new();
    for (flag, check) in [
        ("--seed", None),
        ("--duration", None),
        ("--members", Some(["3", "5"])),
    ] {
        if let Some(value) = args.value(flag) {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} {value}: expected a number"))?;
            if let Some(allowed) = check
                && !allowed.contains(&value)
            {
                bail!("{flag} {value}: expected one of {allowed:?}");
            }
            runner.extend([flag.to_string(), value.to_string()]);
        }
    }
    eprintln!("== cargo xtask chaos: etcd {version} ({})", bin.display());
    let status = cargo()
        .args(["run", "-q", "-p", "etcd-tests", "--bin", "chaos", "--"])
        .args(&runner)
        .env("ETCD_BIN", &bin)
        .env("ETCD_VERSION", version)
        .status()
        .context("cannot run cargo")?;
    Ok(exit_code(status))
}
