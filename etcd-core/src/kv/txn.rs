//! Transactions: compares, then-operations and else-operations, applied atomically.

use bytes::Bytes;
use etcd_proto::etcdserverpb as pb;
use pb::compare::{CompareResult, CompareTarget as PbTarget, TargetUnion};
use pb::request_op::Request;

use super::{Delete, Get, KvLimits, Put};
use crate::error::{InvalidRequest, Result};
use crate::key::{IntoBytes, KeyRange};

/// What a [`Compare`] looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareTarget {
    /// The key's version (0 when it does not exist).
    Version,
    /// The key's creation revision (0 when it does not exist).
    CreateRevision,
    /// The key's last modification revision (0 when it does not exist).
    ModRevision,
    /// The key's value.
    Value,
    /// The key's lease (0 when none).
    Lease,
}

/// The left side of a compare: a target on a key or a range, waiting for its operator.
///
/// Made by [`Compare::version`], [`Compare::value`] and friends. On a range, the compare
/// holds when it holds for every key in the range.
#[derive(Clone, Debug)]
#[must_use = "a compare target needs an operator such as .eq(..)"]
pub struct CompareOn<V> {
    target: CompareTarget,
    range: KeyRange,
    _value: std::marker::PhantomData<fn(V)>,
}

impl<V> CompareOn<V> {
    fn new(target: CompareTarget, key: impl IntoBytes) -> Self {
        Self {
            target,
            range: KeyRange::key(key),
            _value: std::marker::PhantomData,
        }
    }

    crate::key::range_methods!("Compares");

    fn with(self, result: CompareResult, value: TargetUnion) -> Compare {
        Compare {
            target: self.target,
            range: self.range,
            result,
            value,
        }
    }
}

/// Operators for numeric targets (version, revisions, lease).
impl CompareOn<i64> {
    fn number(&self, n: i64) -> TargetUnion {
        match self.target {
            CompareTarget::Version => TargetUnion::Version(n),
            CompareTarget::CreateRevision => TargetUnion::CreateRevision(n),
            CompareTarget::ModRevision => TargetUnion::ModRevision(n),
            CompareTarget::Lease | CompareTarget::Value => TargetUnion::Lease(n),
        }
    }

    /// Holds when the target equals `n`.
    pub fn eq(self, n: i64) -> Compare {
        let v = self.number(n);
        self.with(CompareResult::Equal, v)
    }

    /// Holds when the target differs from `n`.
    pub fn ne(self, n: i64) -> Compare {
        let v = self.number(n);
        self.with(CompareResult::NotEqual, v)
    }

    /// Holds when the target is greater than `n`.
    pub fn gt(self, n: i64) -> Compare {
        let v = self.number(n);
        self.with(CompareResult::Greater, v)
    }

    /// Holds when the target is less than `n`.
    pub fn lt(self, n: i64) -> Compare {
        let v = self.number(n);
        self.with(CompareResult::Less, v)
    }
}

/// Operators for the value target (byte-wise comparison).
impl CompareOn<Bytes> {
    /// Holds when the value equals `v`.
    pub fn eq(self, v: impl IntoBytes) -> Compare {
        self.with(CompareResult::Equal, TargetUnion::Value(v.into_bytes()))
    }

    /// Holds when the value differs from `v`.
    pub fn ne(self, v: impl IntoBytes) -> Compare {
        self.with(CompareResult::NotEqual, TargetUnion::Value(v.into_bytes()))
    }

    /// Holds when the value sorts after `v`.
    pub fn gt(self, v: impl IntoBytes) -> Compare {
        self.with(CompareResult::Greater, TargetUnion::Value(v.into_bytes()))
    }

    /// Holds when the value sorts before `v`.
    pub fn lt(self, v: impl IntoBytes) -> Compare {
        self.with(CompareResult::Less, TargetUnion::Value(v.into_bytes()))
    }
}

/// A condition of a transaction.
///
/// ```
/// use etcd_core::kv::Compare;
/// let absent = Compare::version("config").eq(0);
/// let unchanged = Compare::mod_revision("config").eq(42);
/// let all_small = Compare::value("jobs/").prefix().lt("m");
/// # let _ = (absent, unchanged, all_small);
/// ```
#[derive(Clone, Debug)]
pub struct Compare {
    target: CompareTarget,
    range: KeyRange,
    result: CompareResult,
    value: TargetUnion,
}

impl Compare {
    /// Compares the version of `key`.
    pub fn version(key: impl IntoBytes) -> CompareOn<i64> {
        CompareOn::new(CompareTarget::Version, key)
    }

    /// Compares the creation revision of `key`.
    pub fn create_revision(key: impl IntoBytes) -> CompareOn<i64> {
        CompareOn::new(CompareTarget::CreateRevision, key)
    }

    /// Compares the modification revision of `key`.
    pub fn mod_revision(key: impl IntoBytes) -> CompareOn<i64> {
        CompareOn::new(CompareTarget::ModRevision, key)
    }

    /// Compares the value of `key`.
    pub fn value(key: impl IntoBytes) -> CompareOn<Bytes> {
        CompareOn::new(CompareTarget::Value, key)
    }

    /// Compares the lease of `key`.
    pub fn lease(key: impl IntoBytes) -> CompareOn<i64> {
        CompareOn::new(CompareTarget::Lease, key)
    }

    /// What the compare looks at.
    pub fn target(&self) -> CompareTarget {
        self.target
    }

    fn build(self) -> Result<pb::Compare> {
        let (key, range_end) = self.range.into_parts();
        if key.is_empty() {
            return Err(InvalidRequest::EmptyKey.into());
        }
        let target = match self.target {
            CompareTarget::Version => PbTarget::Version,
            CompareTarget::CreateRevision => PbTarget::Create,
            CompareTarget::ModRevision => PbTarget::Mod,
            CompareTarget::Value => PbTarget::Value,
            CompareTarget::Lease => PbTarget::Lease,
        };
        Ok(pb::Compare {
            result: self.result as i32,
            target: target as i32,
            key,
            range_end,
            target_union: Some(self.value),
        })
    }
}

/// One operation of a transaction branch.
///
/// ```
/// use etcd_core::kv::{Op, Put, Txn, Compare};
/// let ops = [
///     Op::put("a", "1"),
///     Op::from(Put::new("b", "2").lease(7).prev_kv()),
///     Op::get("c"),
///     Op::delete("d"),
///     Op::txn(Txn::new().when([Compare::version("e").eq(0)]).then([Op::put("e", "x")])),
/// ];
/// # let _ = ops;
/// ```
#[derive(Clone, Debug)]
pub struct Op(OpKind);

#[derive(Clone, Debug)]
enum OpKind {
    Get(Get),
    Put(Put),
    Delete(Delete),
    Txn(Txn),
}

impl Op {
    /// Reads `key` (use [`Get`] and `Op::from` for options and ranges).
    pub fn get(key: impl IntoBytes) -> Self {
        Op(OpKind::Get(Get::new(key)))
    }

    /// Writes `value` at `key` (use [`Put`] and `Op::from` for options).
    pub fn put(key: impl IntoBytes, value: impl IntoBytes) -> Self {
        Op(OpKind::Put(Put::new(key, value)))
    }

    /// Deletes `key` (use [`Delete`] and `Op::from` for ranges).
    pub fn delete(key: impl IntoBytes) -> Self {
        Op(OpKind::Delete(Delete::new(key)))
    }

    /// Runs a nested transaction.
    pub fn txn(txn: Txn) -> Self {
        Op(OpKind::Txn(txn))
    }

    fn build(self, limits: &KvLimits) -> Result<pb::RequestOp> {
        let request = match self.0 {
            OpKind::Get(g) => Request::RequestRange(g.build(limits)?),
            OpKind::Put(p) => Request::RequestPut(p.build(limits)?),
            OpKind::Delete(d) => Request::RequestDeleteRange(d.build(limits)?),
            OpKind::Txn(t) => Request::RequestTxn(t.build(limits)?),
        };
        Ok(pb::RequestOp {
            request: Some(request),
        })
    }
}

impl From<Get> for Op {
    fn from(get: Get) -> Self {
        Op(OpKind::Get(get))
    }
}
impl From<Put> for Op {
    fn from(put: Put) -> Self {
        Op(OpKind::Put(put))
    }
}
impl From<Delete> for Op {
    fn from(delete: Delete) -> Self {
        Op(OpKind::Delete(delete))
    }
}
impl From<Txn> for Op {
    fn from(txn: Txn) -> Self {
        Op(OpKind::Txn(txn))
    }
}

/// A transaction: if every compare holds, the `then` operations run, otherwise the
/// `otherwise` operations, all at one revision. Await it when it came from
/// [`Kv::txn`](super::Kv::txn); nest it with [`Op::txn`] otherwise.
#[derive(Clone, Debug, Default)]
#[must_use = "a request does nothing until it is awaited"]
pub struct Txn<C = ()> {
    client: C,
    compares: Vec<Compare>,
    then: Vec<Op>,
    otherwise: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the transaction, as the server would, and turns it into its wire message.
    pub(crate) fn build(self, limits: &KvLimits) -> Result<pb::TxnRequest> {
        let longest = self
            .compares
            .len()
            .max(self.then.len())
            .max(self.otherwise.len());
        if longest > limits.max_txn_ops {
            return Err(InvalidRequest::TooManyOps {
                ops: longest,
                limit: limits.max_txn_ops,
            }
            .into());
        }
        check_writes(&self.then)?;
        check_writes(&self.otherwise)?;
        let compare = self
            .compares
            .into_iter()
            .map(Compare::build)
            .collect::<Result<_>>()?;
        let success = self
            .then
            .into_iter()
            .map(|op| op.build(limits))
            .collect::<Result<_>>()?;
        let failure = self
            .otherwise
            .into_iter()
            .map(|op| op.build(limits))
            .collect::<Result<_>>()?;
        Ok(pb::TxnRequest {
            compare,
            success,
            failure,
        })
    }
}

impl<C> Txn<C> {
    pub(crate) fn with_client<D>(self, client: D) -> Txn<D> {
        Txn {
            client,
            compares: self.compares,
            then: self.then,
            otherwise: self.otherwise,
        }
    }

    pub(crate) fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    pub(crate) fn into_parts(self) -> (C, Txn) {
        let txn = Txn {
            client: (),
            compares: self.compares,
            then: self.then,
            otherwise: self.otherwise,
        };
        (self.client, txn)
    }

    /// Adds conditions; all must hold for `then` to run.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds operations run when every condition holds.
    pub fn then(mut self, ops: impl IntoIterator<Item = impl Into<Op>>) -> Self {
        self.then.extend(ops.into_iter().map(Into::into));
        self
    }

    /// Adds operations run when a condition fails.
    pub fn otherwise(mut self, ops: impl IntoIterator<Item = impl Into<Op>>) -> Self {
        self.otherwise.extend(ops.into_iter().map(Into::into));
        self
    }
}

/// A key the server treats as written by a branch, and the ranges it deletes.
struct Writes {
    puts: Vec<Bytes>,
    deletes: Vec<KeyRange>,
}

/// Whether a delete range (taken literally, as etcd's duplicate check does: a `"\0"` end is
/// an empty interval there) covers `key`.
fn deletes_key(range: &KeyRange, key: &[u8]) -> bool {
    if range.is_single_key() {
        range.start()[..] == *key
    } else {
        key >= &range.start()[..] && key < &range.end()[..]
    }
}

fn check_writes(ops: &[Op]) -> Result<()> {
    collect_writes(ops).map(drop)
}

/// The server's rule for one branch: no key is put twice, and no put falls in a deleted
/// range; nested transactions count with both of their branches, which may write the same
/// keys as each other since only one of them runs.
fn collect_writes(ops: &[Op]) -> Result<Writes> {
    let duplicate =
        |key: &Bytes| -> crate::Error { InvalidRequest::DuplicateKey { key: key.clone() }.into() };
    let mut deletes: Vec<KeyRange> = ops
        .iter()
        .filter_map(|op| match &op.0 {
            OpKind::Delete(d) => Some(d.key_range().clone()),
            _ => None,
        })
        .collect();
    let mut puts: Vec<Bytes> = Vec::new();
    for op in ops {
        let OpKind::Txn(nested) = &op.0 else { continue };
        let then = collect_writes(&nested.then)?;
        let otherwise = collect_writes(&nested.otherwise)?;
        for key in &then.puts {
            if puts.contains(key) || deletes.iter().any(|d| deletes_key(d, key)) {
                return Err(duplicate(key));
            }
            puts.push(key.clone());
        }
        for key in &otherwise.puts {
            if puts.contains(key) && !then.puts.contains(key) {
                return Err(duplicate(key));
            }
            if deletes.iter().any(|d| deletes_key(d, key)) {
                return Err(duplicate(key));
            }
            puts.push(key.clone());
        }
        deletes.extend(then.deletes);
        deletes.extend(otherwise.deletes);
    }
    for op in ops {
        let OpKind::Put(put) = &op.0 else { continue };
        let key = put.key();
        if puts.contains(key) || deletes.iter().any(|d| deletes_key(d, key)) {
            return Err(duplicate(key));
        }
        puts.push(key.clone());
    }
    Ok(Writes { puts, deletes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn build(txn: Txn) -> Result<pb::TxnRequest> {
        txn.build(&KvLimits::default())
    }

    fn invalid(txn: Txn) -> InvalidRequest {
        match build(txn) {
            Err(Error::InvalidRequest(e)) => e,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn compares_map_to_wire_targets() {
        let req = build(Txn::new().when([
            Compare::version("a").eq(1),
            Compare::create_revision("a").gt(2),
            Compare::mod_revision("a").lt(3),
            Compare::value("a").ne("x"),
            Compare::lease("a").eq(4),
            Compare::version("p/").prefix().eq(0),
        ]))
        .unwrap();
        let unions: Vec<_> = req
            .compare
            .iter()
            .map(|c| c.target_union.clone().unwrap())
            .collect();
        assert_eq!(unions[0], TargetUnion::Version(1));
        assert_eq!(unions[1], TargetUnion::CreateRevision(2));
        assert_eq!(unions[2], TargetUnion::ModRevision(3));
        assert_eq!(unions[3], TargetUnion::Value(Bytes::from_static(b"x")));
        assert_eq!(unions[4], TargetUnion::Lease(4));
        assert_eq!(req.compare[4].target, PbTarget::Lease as i32);
        assert_eq!(req.compare[5].range_end, Bytes::from_static(b"p0"));
        assert_eq!(req.compare[2].result, CompareResult::Less as i32);
    }

    #[test]
    fn too_many_ops_counts_the_longest_list() {
        let ops = |n: usize| {
            (0..n)
                .map(|i| Op::put(format!("k{i}"), "v"))
                .collect::<Vec<_>>()
        };
        assert!(build(Txn::new().then(ops(128)).otherwise(ops(128))).is_ok());
        assert_eq!(
            invalid(Txn::new().then(ops(129))),
            InvalidRequest::TooManyOps {
                ops: 129,
                limit: 128
            }
        );
        let nested = Txn::new().then([Op::txn(Txn::new().otherwise(ops(129)))]);
        assert!(matches!(invalid(nested), InvalidRequest::TooManyOps { .. }));
    }

    #[test]
    fn duplicate_writes_follow_the_server_rules() {
        let dup = |t| matches!(invalid(t), InvalidRequest::DuplicateKey { .. });
        assert!(dup(Txn::new().then([Op::put("a", "1"), Op::put("a", "2")])));
        assert!(dup(Txn::new().then([
            Op::put("a/x", "1"),
            Op::from(Delete::new("a/").prefix())
        ])));
        assert!(dup(Txn::new().then([
            Op::put("a", "1"),
            Op::txn(Txn::new().then([Op::put("a", "2")])),
        ])));
        // Allowed: then and else of one transaction may write the same key.
        assert!(
            build(
                Txn::new()
                    .then([Op::put("a", "1")])
                    .otherwise([Op::put("a", "2")])
            )
            .is_ok()
        );
        assert!(
            build(
                Txn::new().then([Op::txn(
                    Txn::new()
                        .then([Op::put("a", "1")])
                        .otherwise([Op::put("a", "2")])
                )])
            )
            .is_ok()
        );
        // Allowed: reads and deletes of the same key, and puts outside a deleted range.
        assert!(build(Txn::new().then([Op::get("a"), Op::delete("a"), Op::delete("a")])).is_ok());
        assert!(
            build(Txn::new().then([Op::put("b", "1"), Op::from(Delete::new("a/").prefix())]))
                .is_ok()
        );
    }

    #[test]
    fn empty_keys_are_refused_everywhere() {
        assert_eq!(
            invalid(Txn::new().when([Compare::version("").eq(0)])),
            InvalidRequest::EmptyKey
        );
        assert_eq!(
            invalid(Txn::new().then([Op::put("", "v")])),
            InvalidRequest::EmptyKey
        );
        assert_eq!(
            invalid(Txn::new().otherwise([Op::get("")])),
            InvalidRequest::EmptyKey
        );
        assert_eq!(
            invalid(Txn::new().then([Op::delete("")])),
            InvalidRequest::EmptyKey
        );
    }
}
