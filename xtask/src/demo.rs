//! `cargo xtask demo [--version 3.4|3.5]`: runs the `etcd3` demo example against a
//! throwaway single-member etcd.

use std::process::ExitCode;

use anyhow::Context;

use crate::cluster::Cluster;
use crate::util::{Args, cargo, exit_code};

pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let args = Args::parse(args, &["--version"], &[])?;
    let (bin, version) = crate::etcd_bin::select(args.value("--version"))?;
    let cluster = Cluster::start(&bin, 1)?;
    let endpoint = cluster.endpoints().join(",");
    eprintln!("xtask: etcd {version} is up at {endpoint}; running the demo example");
    let status = cargo()
        .args(["run", "--quiet", "-p", "etcd3", "--example", "demo", "--"])
        .arg(&endpoint)
        .env("ETCD_ENDPOINTS", &endpoint)
        .status()
        .context("cannot run cargo");
    drop(cluster);
    Ok(exit_code(status?))
}
