//! What a history holds: operations with their call and return instants, watch and lease
//! traces, and the reference events the server itself recorded.
//!
//! Keys and values are strings: workloads write UTF-8 keys and globally unique values
//! (`"c{client}-{op}"`), which is what lets the checker tell every write apart.

use serde::{Deserialize, Serialize};

/// Nanoseconds since the history's start (a monotonic clock).
pub type Nanos = u64;

/// One recorded run: every operation, watch and lease of the clients under test.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The operations, in any order.
    pub ops: Vec<Op>,
    /// The watches, one trace each.
    pub watches: Vec<WatchTrace>,
    /// The leases kept alive, one trace each.
    pub leases: Vec<LeaseTrace>,
    /// Revisions the workload compacted to, in order.
    pub compactions: Vec<i64>,
    /// Key prefixes written by parts of the workload that are not recorded as operations
    /// (a lock's own keys, say): revisions that only change such keys need no operation to
    /// explain them.
    #[serde(default)]
    pub foreign: Vec<String>,
    /// Locks whose fenced writes are checked: a lock `N` is held by the key under `N/` with
    /// the lowest create revision, and fenced writes compare that key's create revision.
    #[serde(default)]
    pub locks: Vec<String>,
}

/// One call of a client: when it was made, when it returned, what it asked and what came
/// back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The logical client; the operations of one client never overlap.
    pub client: u32,
    /// Unique within the history.
    pub id: u64,
    /// When the call was made.
    pub call: Nanos,
    /// When it returned; `None` when its outcome is unknown (it may take effect at any
    /// later time, as if it returned at infinity).
    pub ret: Option<Nanos>,
    /// How long the call took, whatever its outcome (0 when not measured).
    #[serde(default)]
    pub elapsed: Nanos,
    /// What was asked.
    pub req: Request,
    /// What came back.
    pub resp: Response,
}

/// A request, as the checker models it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A range read.
    Get(GetReq),
    /// A put.
    Put(PutReq),
    /// A delete of a key or range.
    Delete(DeleteReq),
    /// A transaction.
    Txn(TxnReq),
}

/// A range read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReq {
    /// The key, or the start of the range.
    pub key: String,
    /// The end of the range (exclusive); `None` reads one key, `Some("\0")` every key from
    /// `key` on.
    pub end: Option<String>,
    /// The revision read at; 0 for the current one.
    pub revision: i64,
    /// At most this many keys; 0 for no limit.
    pub limit: i64,
    /// Served by the member alone (may be stale).
    pub serializable: bool,
    /// Values left out.
    pub keys_only: bool,
    /// Only the count is returned.
    pub count_only: bool,
}

/// A put.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutReq {
    /// The key.
    pub key: String,
    /// The value: unique within the history.
    pub value: String,
    /// The lease attached, 0 for none.
    pub lease: i64,
    /// The previous key-value was asked for.
    pub prev_kv: bool,
}

/// A delete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteReq {
    /// The key, or the start of the range.
    pub key: String,
    /// The end of the range, as in [`GetReq::end`].
    pub end: Option<String>,
    /// The deleted key-values were asked for.
    pub prev_kv: bool,
}

/// A transaction: compares, then the success or the failure branch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnReq {
    /// All must hold for the success branch.
    pub compares: Vec<Compare>,
    /// Run when every compare holds.
    pub success: Vec<TxnOp>,
    /// Run otherwise.
    pub failure: Vec<TxnOp>,
}

/// One operation inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// A range read.
    Get(GetReq),
    /// A put.
    Put(PutReq),
    /// A delete.
    Delete(DeleteReq),
}

/// A compare on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// What is compared, and with which operand.
    pub target: CompareTarget,
    /// How.
    pub op: CompareOp,
}

/// The field a compare looks at, with the operand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The value.
    Value(String),
    /// The version (0 when the key does not exist).
    Version(i64),
    /// The create revision (0 when the key does not exist).
    Create(i64),
    /// The mod revision (0 when the key does not exist).
    Mod(i64),
    /// The lease (0 when none).
    Lease(i64),
}

/// A compare's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

/// What a call returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A range read's answer.
    Get(GetResp),
    /// A put's answer.
    Put(PutResp),
    /// A delete's answer.
    Delete(DeleteResp),
    /// A transaction's answer.
    Txn(TxnResp),
    /// The call failed.
    Failed {
        /// Whether a write may have taken effect, as the client classified it.
        outcome: Outcome,
        /// The error, for the report.
        message: String,
    },
}

/// Whether a failed write may have taken effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The client says it certainly did not.
    NotApplied,
    /// It may have.
    Unknown,
}

/// A range read's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResp {
    /// The header revision.
    pub revision: i64,
    /// The key-values returned.
    pub kvs: Vec<Kv>,
    /// How many keys the range holds (before the limit).
    pub count: i64,
    /// More keys than returned.
    pub more: bool,
}

/// A put's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResp {
    /// The header revision: the put's own.
    pub revision: i64,
    /// The previous key-value, when asked for and present.
    pub prev: Option<Kv>,
}

/// A delete's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResp {
    /// The header revision.
    pub revision: i64,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted key-values, when asked for.
    pub prev_kvs: Vec<Kv>,
}

/// A transaction's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResp {
    /// The header revision.
    pub revision: i64,
    /// Whether the success branch ran.
    pub succeeded: bool,
    /// The answers of the branch that ran, in order.
    pub results: Vec<TxnResult>,
}

/// The answer of one operation inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnResult {
    /// A range read's answer.
    Get(GetResp),
    /// A put's answer.
    Put(PutResp),
    /// A delete's answer.
    Delete(DeleteResp),
}

/// A key-value as etcd reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value (empty in keys-only reads and delete events).
    pub value: String,
    /// The revision that created the key.
    pub create_revision: i64,
    /// The revision of its last change.
    pub mod_revision: i64,
    /// Changes since creation (1 for a new key).
    pub version: i64,
    /// Its lease, 0 for none.
    pub lease: i64,
}

/// Whether an event put or deleted a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// One event of a watch, as the server or the client reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key-value after the change; for a delete, the key with the delete's revision as
    /// its mod revision and everything else zero.
    pub kv: Kv,
    /// The key-value before the change, when it was asked for and existed.
    pub prev: Option<Kv>,
}

/// One watch of a client under test.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchTrace {
    /// The logical client that watched.
    pub client: u32,
    /// Unique within the history.
    pub id: u64,
    /// The key, or the start of the range.
    pub key: String,
    /// The end of the range, as in [`GetReq::end`].
    pub end: Option<String>,
    /// The first revision asked for; 0 for "after the current one".
    pub start_revision: i64,
    /// The header revision of the created reply, when `start_revision` is 0.
    pub created_revision: Option<i64>,
    /// Previous key-values were asked for.
    pub prev_kv: bool,
    /// Put events are filtered out.
    pub no_put: bool,
    /// Delete events are filtered out.
    pub no_delete: bool,
    /// What was delivered, in order.
    pub items: Vec<WatchItem>,
    /// The revision the watch had to vouch for (by an event or progress notification at
    /// or past it) before it was stopped, unless it ended first.
    pub must_reach: Option<i64>,
}

/// One thing a watch delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchItem {
    /// A batch of events.
    Events {
        /// When it was received.
        at: Nanos,
        /// The events.
        events: Vec<Event>,
    },
    /// A progress notification: no events at or below `revision` remain.
    Progress {
        /// When it was received.
        at: Nanos,
        /// The revision reported.
        revision: i64,
    },
    /// The watch ended because the revisions it needed were compacted.
    Compacted {
        /// When it was received.
        at: Nanos,
        /// The compaction revision reported.
        compact_revision: i64,
    },
    /// The watch ended with another error.
    Failed {
        /// When it was received.
        at: Nanos,
        /// The error.
        message: String,
    },
}

/// One lease a client kept alive, sampled over time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTrace {
    /// The lease.
    pub id: i64,
    /// Its granted TTL in seconds.
    pub ttl: i64,
    /// Keys put with the lease by the workload.
    pub keys: Vec<String>,
    /// What the client said about it over time, in order.
    pub samples: Vec<LeaseSample>,
}

/// What the client said about a lease at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseSample {
    /// When.
    pub at: Nanos,
    /// When the client last saw a renewal acknowledged, if ever.
    pub last_renewed: Option<Nanos>,
    /// The client reports the lease alive (no loss signalled).
    pub alive: bool,
}

/// The server's own record of one revision: the events it holds, as a raw watch from
/// revision 1 delivered them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRecord {
    /// The revision.
    pub revision: i64,
    /// When the reference watch received it (for lease checks).
    pub seen_at: Nanos,
    /// Its events, in order.
    pub events: Vec<Event>,
}

impl History {
    /// Whether `key` lies under one of the [`foreign`](Self::foreign) prefixes.
    pub fn is_foreign(&self, key: &str) -> bool {
        self.foreign.iter().any(|p| key.starts_with(p.as_str()))
    }
}

impl Request {
    /// True when the request can change state.
    pub fn is_write(&self) -> bool {
        match self {
            Request::Get(_) => false,
            Request::Put(_) | Request::Delete(_) => true,
            Request::Txn(txn) => txn
                .success
                .iter()
                .chain(&txn.failure)
                .any(|op| !matches!(op, TxnOp::Get(_))),
        }
    }

    /// Every value the request may put.
    pub fn put_values(&self) -> Vec<&str> {
        match self {
            Request::Put(put) => vec![put.value.as_str()],
            Request::Txn(txn) => txn
                .success
                .iter()
                .chain(&txn.failure)
                .filter_map(|op| match op {
                    TxnOp::Put(put) => Some(put.value.as_str()),
                    _ => None,
                })
                .collect(),
            Request::Get(_) | Request::Delete(_) => Vec::new(),
        }
    }
}

/// True when `key` lies in the range `[start, end)` as etcd defines it.
pub fn in_range(key: &str, start: &str, end: Option<&str>) -> bool {
    match end {
        None => key == start,
        Some("\0") => key >= start,
        Some(end) => key >= start && key < end,
    }
}
