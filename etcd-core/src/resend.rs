//! Which requests may be sent twice: one table of every request type the client sends.
//!
//! A request that only reads may be resent whenever it failed. A write may be resent only
//! when it provably never reached the server (see [`Applied`](crate::Applied)): resending a
//! write whose outcome is unknown can apply it twice. The retry and failover layers
//! ([`crate::layer`]) read these facts; a request type they do not know cannot pass
//! through them.

use etcd_proto::etcdserverpb as pb;
use etcd_proto::{v3electionpb, v3lockpb};
use pb::request_op::Request;

use crate::election::ObserveRequest;
use crate::stream::RequestStream;

/// What the retry and failover layers need to know about a request to send it again.
pub trait Resend: Sized {
    /// True when sending the request twice has the effect of sending it once: it changes
    /// nothing on the server.
    fn is_read_only(&self) -> bool;

    /// A copy to send if this attempt fails, or `None` when the request cannot be sent
    /// twice (the outgoing half of a bidirectional stream: its owner reopens it).
    fn copy_for_resend(&self) -> Option<Self>;
}

/// The table: each request type and whether it only reads.
macro_rules! facts {
    ($($request:ty => $read_only:expr;)*) => {$(
        impl Resend for $request {
            fn is_read_only(&self) -> bool {
                let read_only: fn(&Self) -> bool = $read_only;
                read_only(self)
            }
            fn copy_for_resend(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

facts! {
    // KV.
    pb::RangeRequest => |_| true;
    pb::PutRequest => |_| false;
    pb::DeleteRangeRequest => |_| false;
    pb::TxnRequest => txn_is_read_only;
    pb::CompactionRequest => |_| false;
    // Lease. Granting twice grants two leases (or fails with "lease already exists" for a
    // chosen ID); revoking deletes the lease's keys.
    pb::LeaseGrantRequest => |_| false;
    pb::LeaseRevokeRequest => |_| false;
    pb::LeaseTimeToLiveRequest => |_| true;
    pb::LeaseLeasesRequest => |_| true;
    // Cluster. Adding twice adds two members (or fails because the peer URL exists).
    pb::MemberListRequest => |_| true;
    pb::MemberAddRequest => |_| false;
    pb::MemberRemoveRequest => |_| false;
    pb::MemberUpdateRequest => |_| false;
    pb::MemberPromoteRequest => |_| false;
    // Maintenance. Listing alarms reads; raising or clearing them writes. A defragment
    // changes nothing visible, but a resent one would run on whichever member the second
    // attempt reaches: never resent.
    pb::AlarmRequest => |r| r.action == pb::alarm_request::AlarmAction::Get as i32;
    pb::StatusRequest => |_| true;
    pb::DefragmentRequest => |_| false;
    pb::HashRequest => |_| true;
    pb::HashKvRequest => |_| true;
    pb::MoveLeaderRequest => |_| false;
    pb::SnapshotRequest => |_| true;
    pb::DowngradeRequest => |_| false;
    // Auth. Authenticating twice issues two tokens, either of which works.
    pb::AuthEnableRequest => |_| false;
    pb::AuthDisableRequest => |_| false;
    pb::AuthStatusRequest => |_| true;
    pb::AuthenticateRequest => |_| true;
    pb::AuthUserAddRequest => |_| false;
    pb::AuthUserGetRequest => |_| true;
    pb::AuthUserListRequest => |_| true;
    pb::AuthUserDeleteRequest => |_| false;
    pb::AuthUserChangePasswordRequest => |_| false;
    pb::AuthUserGrantRoleRequest => |_| false;
    pb::AuthUserRevokeRoleRequest => |_| false;
    pb::AuthRoleAddRequest => |_| false;
    pb::AuthRoleGetRequest => |_| true;
    pb::AuthRoleListRequest => |_| true;
    pb::AuthRoleDeleteRequest => |_| false;
    pb::AuthRoleGrantPermissionRequest => |_| false;
    pb::AuthRoleRevokePermissionRequest => |_| false;
    // Lock: locking twice queues twice (or returns the same key for the same lease);
    // unlocking deletes a key.
    v3lockpb::LockRequest => |_| false;
    v3lockpb::UnlockRequest => |_| false;
    // Election.
    v3electionpb::CampaignRequest => |_| false;
    v3electionpb::ProclaimRequest => |_| false;
    v3electionpb::ResignRequest => |_| false;
    v3electionpb::LeaderRequest => |_| true;
    ObserveRequest => |_| true;
}

/// A transaction is read-only when neither branch, nor any nested transaction, writes.
fn txn_is_read_only(txn: &pb::TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(txn)) => txn_is_read_only(txn),
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
        })
}

/// A stream's outgoing half is consumed by its first attempt: the owner of the stream
/// (the watcher, the keep-alive) reopens it with a fresh one.
impl<T> Resend for RequestStream<T> {
    fn is_read_only(&self) -> bool {
        false
    }
    fn copy_for_resend(&self) -> Option<Self> {
        None
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

    #[test]
    fn alarm_requests_read_only_when_they_list() {
        let mut alarm = pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Get as i32,
            ..Default::default()
        };
        assert!(alarm.is_read_only());
        alarm.action = pb::alarm_request::AlarmAction::Deactivate as i32;
        assert!(!alarm.is_read_only());
    }

    #[test]
    fn streams_are_never_copied() {
        let stream: RequestStream<pb::WatchRequest> = Box::pin(futures_util::stream::empty());
        assert!(stream.copy_for_resend().is_none());
    }
}
