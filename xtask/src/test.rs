//! `cargo xtask test [--version 3.4|3.5|all] [--http2 builtin|tonic] [--skip-suites A,B]
//! [-- <cargo test args>]`: the project's one test command. Runs `cargo test --workspace`
//! (unit, integration and doc tests) once per etcd version, with `ETCD_BIN` and
//! `ETCD_VERSION` telling the test harness which etcd to spawn. `--http2` sets
//! `ETCD_CLIENT_HTTP2`, which picks the HTTP/2 of every client the tests build unless a
//! test chooses one itself; without it, the variable is passed on as found.
//! `--skip-suites` runs the unit tests and every integration suite (`*/tests/*.rs`) but the
//! ones named (no doc tests): for a second pass that needs only the suites where what it
//! varies is in play.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::etcd_bin::{ALL, ensure_etcd, install_hint, parse_version};
use crate::util::{Args, cargo};

enum Outcome {
    Passed,
    Failed(String),
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let args = Args::parse(args, &["--version", "--http2", "--skip-suites"], &[])?;
    let suites = match args.value("--skip-suites") {
        None => Vec::new(),
        Some(list) => suites_but(list)?,
    };
    let http2 = match args.value("--http2") {
        None => None,
        Some(t @ ("builtin" | "tonic")) => Some(t),
        Some(other) => anyhow::bail!("--http2 {other}: expected `builtin` or `tonic`"),
    };
    let transport = match (http2, std::env::var(HTTP2_VARIABLE)) {
        (Some(chosen), _) => chosen.to_owned(),
        (None, Ok(value)) if !value.trim().is_empty() => match known(&value) {
            Some(known) => known.to_owned(),
            None => format!("{HTTP2_VARIABLE}={value:?}, which clients refuse"),
        },
        (None, _) => "builtin".to_owned(),
    };
    let requested: Vec<&'static str> = match args.value("--version") {
        None | Some("all") => ALL.to_vec(),
        Some(v) => vec![parse_version(v)?],
    };

    // Resolve (and install) every binary first, so that problems show up before the long run.
    let mut plan: Vec<(&str, Result<PathBuf, Outcome>)> = Vec::new();
    for version in requested {
        let found = match ensure_etcd(version) {
            Ok(Some(bin)) => Ok(bin),
            // The suite did not run against a supported version: never a success.
            Ok(None) => {
                let hint = install_hint(version);
                loud_note(&format!(
                    "etcd {version} not found, so the tests cannot run against it.\n\
                     To fix: {hint}.\n\
                     (`--version` runs the suite against one version only.)"
                ));
                Err(Outcome::Failed(format!("etcd {version} not found; {hint}")))
            }
            Err(err) => Err(Outcome::Failed(format!("{err:#}"))),
        };
        if let Err(Outcome::Failed(why)) = &found {
            eprintln!("xtask: error: {why}");
        }
        plan.push((version, found));
    }

    let mut results: Vec<(&str, Outcome, Option<u64>)> = Vec::new();
    let mut fuzzed = false;
    for (version, found) in plan {
        let bin = match found {
            Ok(bin) => bin,
            Err(outcome) => {
                results.push((version, outcome, None));
                continue;
            }
        };
        eprintln!();
        eprintln!("==================================================================");
        eprintln!(
            "== cargo xtask test: etcd {version} ({}), HTTP/2 of plain-text members: {transport}",
            bin.display()
        );
        eprintln!("==================================================================");
        let started = Instant::now();
        let mut cmd = cargo();
        // Every failing test binary is reported, not only the first.
        cmd.arg("test").arg("--no-fail-fast");
        if !args.rest.iter().any(|a| selects_packages(a)) {
            cmd.arg("--workspace");
        }
        if !suites.is_empty() {
            cmd.args(["--lib", "--bins"]);
            for suite in &suites {
                cmd.args(["--test", suite]);
            }
        }
        if let Some(http2) = http2 {
            cmd.env(HTTP2_VARIABLE, http2);
        }
        // The fuzz targets (which need no etcd) get their short pass on the first run; on
        // the next ones one case each, unless the caller chose their duration.
        if fuzzed && std::env::var_os("ETCD_FUZZ_SECONDS").is_none() {
            cmd.env("ETCD_FUZZ_SECONDS", "0");
        }
        let status = cmd
            .args(&args.rest)
            .env("ETCD_BIN", &bin)
            .env("ETCD_VERSION", version)
            .status()
            .context("cannot run cargo")?;
        fuzzed = true;
        let outcome = if status.success() {
            Outcome::Passed
        } else {
            Outcome::Failed(format!("cargo test failed ({status})"))
        };
        results.push((version, outcome, Some(started.elapsed().as_secs())));
    }

    eprintln!();
    eprintln!("== cargo xtask test: summary");
    let mut ok = true;
    for (version, outcome, secs) in &results {
        let took = secs.map(|s| format!(" in {s}s")).unwrap_or_default();
        match outcome {
            Outcome::Passed => eprintln!("etcd {version} ({transport}): ok{took}"),
            Outcome::Failed(why) => {
                ok = false;
                eprintln!("etcd {version} ({transport}): FAILED{took}: {why}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every integration suite of the workspace (the file stems of `*/tests/*.rs`) but those in
/// the comma-separated `skipped`, each of which must exist.
fn suites_but(skipped: &str) -> anyhow::Result<Vec<String>> {
    let root = crate::util::workspace_root();
    let mut all = Vec::new();
    for member in std::fs::read_dir(&root)? {
        let tests = member?.path().join("tests");
        let Ok(files) = std::fs::read_dir(&tests) else {
            continue;
        };
        for file in files {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "rs")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                all.push(stem.to_owned());
            }
        }
    }
    let skipped: Vec<&str> = skipped
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(unknown) = skipped.iter().find(|s| !all.iter().any(|a| a == *s)) {
        anyhow::bail!("--skip-suites: there is no suite `{unknown}` (a tests/*.rs file)");
    }
    all.retain(|suite| !skipped.contains(&suite.as_str()));
    all.sort();
    all.dedup();
    Ok(all)
}

/// The variable that picks etcd3's HTTP/2 for plain-text members.
const HTTP2_VARIABLE: &str = "ETCD_CLIENT_HTTP2";

/// A value of [`HTTP2_VARIABLE`] as etcd3 reads it, for the report.
fn known(value: &str) -> Option<&'static str> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("tonic") {
        Some("tonic")
    } else if value.eq_ignore_ascii_case("builtin") {
        Some("builtin")
    } else {
        None
    }
}

/// Whether a `cargo test` argument picks packages itself (then we do not add `--workspace`).
fn selects_packages(arg: &str) -> bool {
    matches!(arg, "-p" | "--package" | "--manifest-path")
        || arg.starts_with("--package=")
        || arg.starts_with("--manifest-path=")
        || (arg.starts_with("-p") && arg.len() > 2)
}

fn loud_note(text: &str) {
    let bar = "!".repeat(70);
    eprintln!("{bar}");
    for line in text.lines() {
        eprintln!("!! NOTE: {line}");
    }
    eprintln!("{bar}");
}
