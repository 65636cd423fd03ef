//! One recorded run over a fresh key prefix, proved at its end: the prefix, a
//! [`Recorder`] and the [`Reference`] collecting the server's history of the prefix, then
//! [`Proof::prove`], which stops the recorded watches, collects, checks, writes the
//! history to the run's directory and fails the test on any anomaly.

use std::sync::Arc;
use std::time::Duration;

use super::model::{History, RevisionRecord};
use super::{RecordedWatch, Recorder, Reference, Report};

/// How long recorded watches may take to vouch for the last revision at the end.
const FINISH: Duration = Duration::from_secs(15);
/// How long the members' reference watches may take to reach it.
const COLLECT: Duration = Duration::from_secs(30);

/// A recorded run over the keys under [`prefix`](Self::prefix).
#[derive(Debug)]
pub struct Proof {
    /// The run's name: its directory under `target/chaos/`.
    pub name: String,
    /// A prefix no other run uses.
    pub prefix: String,
    /// The end of the prefix's range.
    pub end: String,
    /// Records the clients' calls, watches and leases.
    pub recorder: Arc<Recorder>,
    reference: Reference,
}

/// The end of the range of keys that start with `prefix` (an ASCII prefix not ending
/// in `0x7f`).
pub fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("a non-empty prefix") += 1;
    String::from_utf8(end).expect("an ASCII prefix")
}

impl Proof {
    /// Starts a run named `name` on a fresh prefix, with the server's history collected
    /// from the members at `urls` (they need
    /// [`PROGRESS_FLAG`](super::reference::PROGRESS_FLAG)).
    pub fn start(name: &str, urls: &[String]) -> Self {
        let prefix = etcd_testkit::unique_prefix(name);
        let end = prefix_end(&prefix);
        let recorder = Recorder::new();
        let reference = Reference::start(urls, &prefix, Some(&end), recorder.origin());
        Self {
            name: name.to_owned(),
            prefix,
            end,
            recorder,
            reference,
        }
    }

    /// The collector of the server's history (to wait for it before compacting, say).
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Stops `watches` once they vouched for `last` (all at once: stalled watches cost
    /// one wait in all), collects the server's history up to `last`, checks the run,
    /// writes it to [`run_dir`](super::run_dir) and returns it with the report and the
    /// server's history.
    ///
    /// # Panics
    ///
    /// When the server's history cannot be collected or the checker finds anything.
    pub async fn prove(self, watches: Vec<RecordedWatch>, last: i64) -> Proved {
        futures::future::join_all(watches.into_iter().map(|w| w.finish(last, FINISH))).await;
        let name = self.name;
        let records = self
            .reference
            .collect(last, COLLECT)
            .await
            .unwrap_or_else(|e| panic!("{name}: the server's history: {e}"));
        let history = self.recorder.history();
        let report = super::check(&history, records.clone());
        let dir = super::run_dir(&name);
        super::dump(&dir, &history, &records, &report).expect("write the history");
        println!("{name}: {report}(history in {})", dir.display());
        assert!(
            report.is_clean(),
            "{name}: the checker found anomalies (history in {}):\n{report}",
            dir.display()
        );
        Proved {
            history,
            report,
            records,
        }
    }
}

/// What [`Proof::prove`] proved.
#[derive(Debug)]
pub struct Proved {
    /// What the clients did.
    pub history: History,
    /// What the checker found (nothing but notes: it passed).
    pub report: Report,
    /// The server's history of the prefix.
    pub records: Vec<RevisionRecord>,
}
