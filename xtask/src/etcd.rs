//! `cargo xtask etcd [--members N] [--version 3.4|3.5]`: a throwaway local etcd cluster that
//! runs until xtask is interrupted or killed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cluster::Cluster;
use crate::util::Args;

pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let args = Args::parse(args, &["--members", "--version"], &[])?;
    let members: usize = match args.value("--members") {
        Some(n) => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .context("`--members` needs a positive number")?,
        None => 1,
    };
    let (bin, version) = crate::etcd_bin::select(args.value("--version"))?;
    eprintln!(
        "xtask: starting etcd {version} ({}) with {members} member(s)",
        bin.display()
    );
    let mut cluster = Cluster::start(&bin, members)?;
    let endpoints = cluster.endpoints().join(",");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ETCDCTL_ENDPOINTS={endpoints}")?;
        out.flush()?;
    }
    let etcdctl = bin.with_file_name("etcdctl");
    let etcdctl = if etcdctl.is_file() {
        etcdctl.display().to_string()
    } else {
        "etcdctl".to_string()
    };
    let first = &cluster.endpoints()[0];
    eprintln!(
        "xtask: etcd {version} is healthy; data and logs in {}\n\
         xtask: try:  ETCDCTL_ENDPOINTS={endpoints} {etcdctl} member list\n\
         xtask:       ETCD_ENDPOINTS={endpoints} cargo run -p etcd3 --example demo -- {first}\n\
         xtask: stop with Ctrl-C (or kill {}); the members and their data are removed",
        cluster.dir().display(),
        std::process::id()
    );
    loop {
        std::thread::sleep(Duration::from_millis(500));
        cluster.check_alive()?;
    }
}
