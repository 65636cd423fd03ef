//! What the checker can find wrong, and its report.

use std::fmt;

/// One violation of the client's guarantees, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// An acknowledged write is not in the server's history.
    LostWrite {
        /// The operation.
        op: u64,
        /// What is missing.
        detail: String,
    },
    /// A value was written more than once: a retry applied a write twice.
    DuplicateWrite {
        /// The value.
        value: String,
        /// The revisions it landed at.
        revisions: Vec<i64>,
    },
    /// A write the client reported as certainly not applied was applied.
    AppliedDespiteRejection {
        /// The operation.
        op: u64,
        /// The revision it landed at.
        revision: i64,
    },
    /// A write's acknowledged revision differs from where the server put it.
    RevisionMismatch {
        /// The operation.
        op: u64,
        /// The revision the response reported.
        reported: i64,
        /// The revision of the server's history.
        actual: i64,
    },
    /// Two operations claim the same revision.
    SharedRevision {
        /// The revision.
        revision: i64,
        /// The operations.
        ops: Vec<u64>,
    },
    /// A revision of the server's history that no recorded write explains.
    PhantomWrite {
        /// The revision.
        revision: i64,
        /// Its events.
        detail: String,
    },
    /// A response that does not match the state at its place in the order.
    WrongResult {
        /// The operation.
        op: u64,
        /// How it differs.
        detail: String,
    },
    /// Real-time order broken: `later` began after `earlier` returned, yet sits before it
    /// in the revision order (a stale read, or a write that travelled back in time).
    RealTime {
        /// The operation that returned first.
        earlier: u64,
        /// The operation that began after it.
        later: u64,
        /// The revisions involved.
        detail: String,
    },
    /// No linearization of one key's operations exists (found by search).
    NotLinearizable {
        /// The key.
        key: String,
        /// How far the search got.
        detail: String,
    },
    /// A watch broke one of its guarantees.
    Watch {
        /// The watch.
        watch: u64,
        /// Which guarantee, and how.
        detail: String,
    },
    /// The server's own history could not be collected or differs between members.
    Reference {
        /// Why.
        detail: String,
    },
    /// A lease check failed.
    Lease {
        /// The lease.
        lease: i64,
        /// How.
        detail: String,
    },
    /// A fenced write under a lock was not made by the lock's holder, or fencing tokens
    /// went back.
    Lock {
        /// The operation.
        op: u64,
        /// How.
        detail: String,
    },
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::LostWrite { op, detail } => write!(f, "lost write: op {op}: {detail}"),
            Anomaly::DuplicateWrite { value, revisions } => {
                write!(
                    f,
                    "duplicate write: value {value:?} at revisions {revisions:?}"
                )
            }
            Anomaly::AppliedDespiteRejection { op, revision } => write!(
                f,
                "applied despite rejection: op {op} was reported not applied, yet landed at revision {revision}"
            ),
            Anomaly::RevisionMismatch {
                op,
                reported,
                actual,
            } => write!(
                f,
                "revision mismatch: op {op} reported revision {reported}, the server has it at {actual}"
            ),
            Anomaly::SharedRevision { revision, ops } => {
                write!(
                    f,
                    "shared revision: ops {ops:?} all claim revision {revision}"
                )
            }
            Anomaly::PhantomWrite { revision, detail } => {
                write!(f, "phantom write at revision {revision}: {detail}")
            }
            Anomaly::WrongResult { op, detail } => write!(f, "wrong result: op {op}: {detail}"),
            Anomaly::RealTime {
                earlier,
                later,
                detail,
            } => write!(
                f,
                "real-time order broken: op {later} began after op {earlier} returned: {detail}"
            ),
            Anomaly::NotLinearizable { key, detail } => {
                write!(f, "not linearizable: key {key:?}: {detail}")
            }
            Anomaly::Watch { watch, detail } => write!(f, "watch {watch}: {detail}"),
            Anomaly::Reference { detail } => write!(f, "reference history: {detail}"),
            Anomaly::Lease { lease, detail } => write!(f, "lease {lease:x}: {detail}"),
            Anomaly::Lock { op, detail } => write!(f, "lock: op {op}: {detail}"),
        }
    }
}

/// What the checker found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every violation found.
    pub anomalies: Vec<Anomaly>,
    /// Operations checked.
    pub ops: usize,
    /// Operations whose outcome was unknown.
    pub unknown: usize,
    /// Unknown outcomes found applied.
    pub unknown_applied: usize,
    /// Revisions explained by lease expiry.
    pub expiries: usize,
    /// Revisions that only changed foreign keys.
    pub foreign: usize,
    /// Fenced writes under a lock checked against the lock's holder.
    pub fenced: usize,
    /// Keys whose search ran out of budget (neither proved nor refuted).
    pub inconclusive: Vec<String>,
    /// Findings explained by known bugs of the etcd server under test (not anomalies of
    /// the client).
    pub server_bugs: Vec<String>,
}

impl Report {
    /// True when nothing was found wrong.
    pub fn is_clean(&self) -> bool {
        self.anomalies.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ops ({} unknown, {} of them applied), {} expiries, {} anomalies",
            self.ops,
            self.unknown,
            self.unknown_applied,
            self.expiries,
            self.anomalies.len()
        )?;
        if self.fenced > 0 {
            writeln!(f, "{} fenced writes made by the lock's holder", self.fenced)?;
        }
        for bug in &self.server_bugs {
            writeln!(f, "suspected server bug: {bug}")?;
        }
        if !self.inconclusive.is_empty() {
            writeln!(f, "search inconclusive for keys {:?}", self.inconclusive)?;
        }
        for anomaly in self.anomalies.iter().take(20) {
            writeln!(f, "  {anomaly}")?;
        }
        if self.anomalies.len() > 20 {
            writeln!(f, "  ... and {} more", self.anomalies.len() - 20)?;
        }
        Ok(())
    }
}
