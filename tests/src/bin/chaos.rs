//! `chaos [--seed N] [--duration S] [--members 3|5]`: one seeded chaos run (see
//! `etcd_tests::chaos`) against the etcd that `ETCD_BIN` names (else `etcd` on `PATH`).
//! Prints its summary as the last line and exits with 1 when the checker found anomalies.
//! `cargo xtask chaos` runs it with the etcd version chosen.
//!
//! `chaos --recheck DIR` checks a run kept in `DIR` (`history.json`, `reference.json`)
//! again, with the checker as it is now.

use std::process::ExitCode;
use std::time::Duration;

use etcd_tests::chaos::{self, Config};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, dir] = args.as_slice()
        && flag == "--recheck"
    {
        return recheck(std::path::Path::new(dir));
    }
    let mut config = Config {
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
        duration: Duration::from_secs(60),
        members: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        let number = value.as_deref().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), number) {
            ("--seed", Some(n)) => config.seed = n,
            ("--duration", Some(n)) => config.duration = Duration::from_secs(n),
            ("--members", Some(n @ (3 | 5))) => config.members = n as usize,
            _ => {
                eprintln!(
                    "chaos: bad argument {flag} {}; usage: chaos [--seed N] [--duration S] [--members 3|5]",
                    value.unwrap_or_default()
                );
                return ExitCode::from(2);
            }
        }
    }
    println!(
        "chaos: seed {}, {} s, {} members, etcd {}",
        config.seed,
        config.duration.as_secs(),
        config.members,
        etcd_testkit::etcd_binary().display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = runtime.block_on(chaos::run(&config));
    println!("{}", outcome.report);
    println!(
        "history, reference and schedule in {}",
        outcome.dir.display()
    );
    println!("{}", outcome.summary(config.seed));
    if outcome.report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks a kept run again.
fn recheck(dir: &std::path::Path) -> ExitCode {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
    };
    let history: etcd_tests::history::model::History =
        serde_json::from_slice(&read("history.json")).expect("a history");
    let records: Vec<etcd_tests::history::model::RevisionRecord> =
        serde_json::from_slice(&read("reference.json")).expect("a reference history");
    let report = etcd_tests::history::check(&history, records);
    println!("{report}");
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
