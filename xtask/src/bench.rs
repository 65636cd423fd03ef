//! `cargo xtask bench [--quick] [--no-scale] [--tls] [--rounds N] [--duration-ms MS] [-- <runner args>]`:
//! our client against the crates.io `etcd-client` 0.21 crate, side by side, on a throwaway etcd
//! 3.5.1. With `--tls`, etcd serves its clients over TLS with a certificate signed by a
//! throwaway CA made here (`target/bench/tls/`), and both clients trust that CA
//! (the runner reads it from `BENCH_TLS_CA`).
//!
//! The runner is `xtask/bench-runner/`, a cargo project of its own (its own workspace and
//! lockfile) so that the peer crate, which shares our facade's package name, never enters the
//! main workspace. It is built in release into `target/bench-runner/` and writes
//! `target/bench/results.jsonl`, `target/bench/results.md` and `target/bench/ratios.svg`.
//!
//! Workloads: put, get, get serializable, txn, watch, lease keep-alive and a 10,000-key range,
//! each run in a child process of its own; then the scale runs of our client alone (10,000
//! watches, 10,000 leases for a minute), skipped with `--no-scale` and shortened by `--quick`
//! (which also makes each run 500 ms). Runner arguments after `--` are passed through, e.g.
//! `-- --workloads put,watch --concurrency 1,16`. Building the peer crate needs `protoc`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cluster::{Cluster, ServerTls};
use crate::util::{Args, cargo, exit_code, workspace_root};

pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let args = Args::parse(
        args,
        &["--rounds", "--duration-ms"],
        &["--quick", "--no-scale", "--tls"],
    )?;
    let quick = args.flag("--quick");
    check_protoc()?;
    let duration_ms = args
        .value("--duration-ms")
        .unwrap_or(if quick { "500" } else { "2000" });
    let rounds = args.value("--rounds").unwrap_or("3");

    let root = workspace_root();
    let manifest = root.join("xtask").join("bench-runner").join("Cargo.toml");
    let target_dir = root.join("target").join("bench-runner");
    let out_dir = root.join("target").join("bench");

    // Build before starting etcd, so the build does not compete with anything.
    eprintln!(
        "xtask: building the bench runner (release) into {}",
        target_dir.display()
    );
    let status = cargo()
        .args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        anyhow::bail!("building {} failed ({status})", manifest.display());
    }
    let runner: PathBuf = target_dir.join("release").join("bench-runner");

    let bin = crate::etcd_bin::ensure_etcd(crate::etcd_bin::V3_5)?
        .context("etcd 3.5.1 is not available")?;
    // Fragments of watch responses are --max-request-bytes long; etcd sizes them in time
    // quadratic in their events, so smaller ones keep the server from hiding the clients.
    let flags = ["--unsafe-no-fsync", "--max-request-bytes", "32768"];
    let tls = if args.flag("--tls") {
        Some(throwaway_pki(&out_dir.join("tls"))?)
    } else {
        None
    };
    let cluster = Cluster::start_tls(&bin, 1, &flags, tls.as_ref().map(|(server, _)| server))?;
    let endpoint = cluster.endpoints().join(",");
    let pid = cluster.pids()[0];
    eprintln!(
        "xtask: etcd 3.5.1 ({}{}) is up at {endpoint} (pid {pid}); \
         running {rounds} round(s) of {duration_ms} ms per run",
        flags.join(" "),
        if tls.is_some() { ", TLS" } else { "" }
    );
    let status = std::process::Command::new(&runner)
        .arg("--endpoint")
        .arg(&endpoint)
        .arg("--etcd-pid")
        .arg(pid.to_string())
        .arg("--out-dir")
        .arg(&out_dir)
        .args(["--duration-ms", duration_ms, "--rounds", rounds])
        .args(quick.then_some("--quick"))
        // The scale runs read etcd's metrics over plain HTTP on the client URL.
        .args((args.flag("--no-scale") || tls.is_some()).then_some("--no-scale"))
        .args(&args.rest)
        .envs(tls.as_ref().map(|(_, ca)| ("BENCH_TLS_CA", ca)))
        .status()
        .with_context(|| format!("cannot run {}", runner.display()));
    drop(cluster);
    let status = status?;
    if status.success() {
        eprintln!(
            "xtask: results in {}, {} and {}",
            out_dir.join("results.md").display(),
            out_dir.join("results.jsonl").display(),
            out_dir.join("ratios.svg").display()
        );
    }
    Ok(exit_code(status))
}

/// A CA and a server certificate for 127.0.0.1 signed by it, written to `dir`: the server's
/// files, and the CA's certificate for the clients.
fn throwaway_pki(dir: &Path) -> anyhow::Result<(ServerTls, PathBuf)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "xtask bench CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    let server = ServerTls {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server-key.pem"),
    };
    let ca_file = dir.join("ca.pem");
    std::fs::write(&server.cert_file, cert.pem())?;
    std::fs::write(&server.key_file, key.serialize_pem())?;
    std::fs::write(&ca_file, ca.pem())?;
    Ok((server, ca_file))
}

/// The peer crate compiles etcd's protos with `protoc` (`$PROTOC`, or `protoc` on `PATH`).
fn check_protoc() -> anyhow::Result<()> {
    if let Some(protoc) = std::env::var_os("PROTOC") {
        if Path::new(&protoc).is_file() {
            return Ok(());
        }
        anyhow::bail!(
            "PROTOC={} is not a file; the etcd-client crate the bench compares against needs \
             protoc (`apt-get install protobuf-compiler libprotobuf-dev`)",
            Path::new(&protoc).display()
        );
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("protoc").is_file()));
    if !found {
        anyhow::bail!(
            "protoc is not on PATH; the etcd-client crate the bench compares against needs it \
             to build: `apt-get install protobuf-compiler libprotobuf-dev` (or set PROTOC)"
        );
    }
    Ok(())
}
