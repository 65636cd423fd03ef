//! Histories of client operations and the checker that proves them correct against the
//! server's own history.
//!
//! A test records what its clients did with a [`Recorder`] (every call with its call and
//! return instants and its outcome, every watch's deliveries, every kept-alive lease's
//! status over time), collects the server's history of the key range with a
//! [`Reference`] (a raw watch from revision 1 on every member, checked equal, plus
//! `HashKV`), and hands both to [`check`]. The checker:
//!
//! 1. places every operation in the revision order: acknowledged writes where their unique
//!    values landed, unknown-outcome writes where they landed or nowhere, and flags lost,
//!    duplicated, misreported and unexplained writes ([`resolve`]);
//! 2. checks every answer against etcd's semantics at its place and the places against
//!    real time (the revision-witness check, [`witness`]);
//! 3. searches for a linearization of each key's operations as a register, independent of
//!    reported revisions, within a step budget ([`wgl`]);
//! 4. validates every watch ([`watch`]) and
//! 5. every kept-alive lease ([`lease`]) and
//! 6. every fenced write under a lock the history names: made by the lock's holder at its
//!    revision, with fencing tokens that never go back.
//!
//! ```
//! use etcd_tests::history::{self, model::*};
//!
//! let put = Op {
//!     client: 0,
//!     id: 1,
//!     call: 0,
//!     ret: Some(10),
//!     elapsed: 10,
//!     req: Request::Put(PutReq { key: "k".into(), value: "v1".into(), ..Default::default() }),
//!     resp: Response::Put(PutResp { revision: 2, prev: None }),
//! };
//! let history = History { ops: vec![put], ..Default::default() };
//! // The server's history lacks the acknowledged put: a lost write.
//! let report = history::check(&history, Vec::new());
//! assert!(matches!(report.anomalies[0], history::Anomaly::LostWrite { .. }));
//! ```

mod anomaly;
pub mod lease;
mod lock;
pub mod model;
mod proof;
mod recorder;
pub mod reference;
mod replay;
pub mod resolve;
mod simulate;
pub mod watch;
pub mod wgl;
pub mod witness;
pub mod workload;

#[cfg(test)]
mod tests;

pub use anomaly::{Anomaly, Report};
pub use proof::{Proof, Proved, prefix_end};
pub use recorder::{RecordedLease, RecordedWatch, Recorder, WatchSpec};
pub use reference::Reference;
pub use replay::Replay;

use std::path::{Path, PathBuf};

use model::{History, RevisionRecord};

/// Where a run named `name` keeps its history: `target/chaos/<name>/` of the workspace
/// (or of `CARGO_TARGET_DIR`).
pub fn run_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("chaos").join(name)
}

/// Writes a run's history, the server's records and the report to `dir`
/// (`history.json`, `reference.json`, `report.txt`), to be checked again or read.
pub fn dump(
    dir: &Path,
    history: &History,
    records: &[RevisionRecord],
    report: &Report,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("history.json"), serde_json::to_vec(history)?)?;
    std::fs::write(dir.join("reference.json"), serde_json::to_vec(records)?)?;
    std::fs::write(dir.join("report.txt"), report.to_string())
}

/// Checks a history against the server's records of the same key range (every revision
/// that changed a key of the range, in any order).
pub fn check(history: &History, records: Vec<RevisionRecord>) -> Report {
    let mut records = records;
    records.sort_by_key(|r| r.revision);
    let replay = Replay::new(records);
    let mut report = Report::default();
    let placed = resolve::place(history, &replay, &mut report);
    witness::check_results(history, &replay, &placed, &mut report);
    witness::check_real_time(history, &placed, &mut report);
    wgl::check(history, &placed, &mut report);
    watch::check(history, &replay, &mut report);
    lease::check(history, &replay, &placed, &mut report);
    lock::check(history, &replay, &placed, &mut report);
    report
}
