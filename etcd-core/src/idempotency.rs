//! Which requests may be sent twice.
//!
//! A request that only reads may be resent whenever it failed. A write may be resent only
//! when it provably never reached the server (see [`Applied`](crate::Applied)): resending a
//! write whose outcome is unknown can apply it twice.

use etcd_proto::etcdserverpb as pb;
use pb::request_op::Request;

/// Tells whether sending a request twice has the same effect as sending it once.
pub trait Idempotency {
    /// True for requests that change nothing on the server.
    fn is_read_only(&self) -> bool;
}

impl Idempotency for pb::RangeRequest {
    fn is_read_only(&self) -> bool {
        true
    }
}

impl Idempotency for pb::PutRequest {
    fn is_read_only(&self) -> bool {
        false
    }
}

impl Idempotency for pb::DeleteRangeRequest {
    fn is_read_only(&self) -> bool {
        false
    }
}

impl Idempotency for pb::CompactionRequest {
    fn is_read_only(&self) -> bool {
        false
    }
}

impl Idempotency for pb::TxnRequest {
    /// A transaction is read-only when neither branch, nor any nested transaction, writes.
    fn is_read_only(&self) -> bool {
        self.success
            .iter()
            .chain(&self.failure)
            .all(|op| match &op.request {
                Some(Request::RequestRange(_)) | None => true,
                Some(Request::RequestTxn(txn)) => txn.is_read_only(),
                Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(request: Request) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(request),
        }
    }

    #[test]
    fn only_transactions_without_writes_are_read_only() {
        let read = op(Request::RequestRange(Default::default()));
        let write = op(Request::RequestPut(Default::default()));
        let reads = pb::TxnRequest {
            success: vec![read.clone()],
            failure: vec![read.clone()],
            ..Default::default()
        };
        assert!(reads.is_read_only());
        let nested_write = pb::TxnRequest {
            failure: vec![op(Request::RequestTxn(pb::TxnRequest {
                success: vec![write],
                ..Default::default()
            }))],
            ..Default::default()
        };
        assert!(!nested_write.is_read_only());
    }
}
