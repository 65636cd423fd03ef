//! Maintenance: member status, alarms, defragmentation, hashes, leadership transfer and
//! snapshots.
//!
//! [`Maintenance`] is a cheap-to-clone handle over any [`MaintenanceService`]. Each method
//! returns a [`Call`]; await it to send it. Status, defragment, hash and hash-kv concern the
//! member that answers: over a single member's transport they are aimed at that member
//! (the `etcd3` facade offers `status_of(endpoint)` and friends for that).
//!
//! ```no_run
//! # async fn example<S: etcd_core::maintenance::MaintenanceService>(m: etcd_core::maintenance::Maintenance<S>) -> Result<(), Box<dyn std::error::Error>> {
//! let status = m.status().await?;
//! println!("etcd {} leader {:x} db {} bytes", status.version(), status.leader(), status.db_size());
//! assert!(m.alarms().await?.alarms().is_empty());
//!
//! let mut backup = Vec::new(); // or a tokio::fs::File
//! let info = m.snapshot_to(&mut backup).await?; // sha256 trailer verified
//! println!("saved {} bytes", info.size());
//! # Ok(()) }
//! ```

mod response;
mod snapshot;

use etcd_proto::etcdserverpb as pb;
use pb::alarm_request::AlarmAction;

pub use response::{
    Alarm, AlarmKind, AlarmResponse, DowngradeInfo, DowngradeResponse, HashKvResponse,
    HashResponse, StatusResponse,
};
pub use snapshot::{Snapshot, SnapshotError, SnapshotInfo};

pub use crate::call::AckResponse;
use crate::call::{Call, invalid};
use crate::error::InvalidRequest;
use crate::stream::ResponseStream;

crate::service::service_alias! {
    /// etcd's Maintenance service as tower services of its request messages: `Alarm`,
    /// `Status`, `Defragment`, `Hash`, `HashKV`, `MoveLeader`, and `Snapshot`, whose response
    /// is the stream of snapshot chunks.
    /// [`GrpcMaintenance`](crate::grpc::GrpcMaintenance) implements it, and so does any
    /// stack of tower layers over it whose error converts into a boxed error.
    MaintenanceService {
        pb::AlarmRequest => pb::AlarmResponse,
        pb::StatusRequest => pb::StatusResponse,
        pb::DefragmentRequest => pb::DefragmentResponse,
        pb::HashRequest => pb::HashResponse,
        pb::HashKvRequest => pb::HashKvResponse,
        pb::MoveLeaderRequest => pb::MoveLeaderResponse,
        pb::SnapshotRequest => ResponseStream<pb::SnapshotResponse>,
    }
}

/// A handle on etcd's Maintenance service. Cheap to clone; every method takes `&self`.
#[derive(Clone, Debug)]
pub struct Maintenance<S> {
    service: S,
}

impl<S: MaintenanceService> Maintenance<S> {
    /// A handle over `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }

    /// The status of the member that answers: version, database size, leader, raft index
    /// and term, alarms and health problems.
    pub fn status(&self) -> Call<S, pb::StatusRequest, StatusResponse> {
        Call::new(self.service.clone(), Ok(pb::StatusRequest {}))
    }

    /// The alarms raised anywhere in the cluster (a full backend, a corruption).
    pub fn alarms(&self) -> Call<S, pb::AlarmRequest, AlarmResponse> {
        Call::new(
            self.service.clone(),
            Ok(pb::AlarmRequest {
                action: AlarmAction::Get as i32,
                member_id: 0,
                alarm: pb::AlarmType::None as i32,
            }),
        )
    }

    /// Clears one alarm, as listed by [`alarms`](Self::alarms). The answer lists the
    /// alarm cleared (empty when it was not raised). Free space first (compact and
    /// defragment) before clearing a [`NoSpace`](AlarmKind::NoSpace) alarm.
    pub fn disarm(&self, alarm: Alarm) -> Call<S, pb::AlarmRequest, AlarmResponse> {
        let request = match alarm.kind().to_wire() {
            Some(kind) if alarm.member_id() != 0 => Ok(pb::AlarmRequest {
                action: AlarmAction::Deactivate as i32,
                member_id: alarm.member_id(),
                alarm: kind,
            }),
            _ => Err(invalid(
                "an alarm to disarm names its member and its kind, as listed by alarms()",
            )),
        };
        Call::new(self.service.clone(), request)
    }

    /// Defragments the backend of the member that answers, giving the space freed by
    /// compaction back to the file system. The member serves nothing else meanwhile: aim
    /// it at one member at a time.
    pub fn defragment(&self) -> Call<S, pb::DefragmentRequest, AckResponse> {
        Call::new(self.service.clone(), Ok(pb::DefragmentRequest {}))
    }

    /// A hash of the answering member's whole backend (for debugging: it includes data
    /// that differs between members, such as alarms; compare [`hash_kv`](Self::hash_kv)).
    pub fn hash(&self) -> Call<S, pb::HashRequest, HashResponse> {
        Call::new(self.service.clone(), Ok(pb::HashRequest {}))
    }

    /// A hash of the key-value history up to `revision` (0 for the latest) on the
    /// answering member. Healthy members agree on it at the same revision and compact
    /// revision.
    pub fn hash_kv(&self, revision: i64) -> Call<S, pb::HashKvRequest, HashKvResponse> {
        let request = if revision < 0 {
            Err(InvalidRequest::NegativeRevision(revision).into())
        } else {
            Ok(pb::HashKvRequest { revision })
        };
        Call::new(self.service.clone(), request)
    }

    /// Hands the leadership to the member with ID `target`. Must be sent to the leader:
    /// other members answer with
    /// [`ServerErrorKind::NotLeader`](crate::ServerErrorKind::NotLeader).
    pub fn move_leader(&self, target: u64) -> Call<S, pb::MoveLeaderRequest, AckResponse> {
        let request = if target == 0 {
            Err(invalid(
                "member ID 0 is invalid: etcd member IDs are never 0",
            ))
        } else {
            Ok(pb::MoveLeaderRequest { target_id: target })
        };
        Call::new(self.service.clone(), request)
    }

    /// A step of a cluster downgrade (etcd 3.5 and later; an older member answers with
    /// gRPC's `Unimplemented`): [`Validate`](Downgrade::Validate) checks that the cluster
    /// can go to `version` (one minor version below its own, such as `3.4` from 3.5),
    /// [`Enable`](Downgrade::Enable) starts it, [`Cancel`](Downgrade::Cancel) stops one
    /// under way. etcd's refusals are typed:
    /// [`WrongDowngradeVersionFormat`](crate::ServerErrorKind::WrongDowngradeVersionFormat),
    /// [`InvalidDowngradeTargetVersion`](crate::ServerErrorKind::InvalidDowngradeTargetVersion),
    /// [`DowngradeInProgress`](crate::ServerErrorKind::DowngradeInProgress),
    /// [`NoInflightDowngrade`](crate::ServerErrorKind::NoInflightDowngrade).
    pub fn downgrade(
        &self,
        step: Downgrade,
        version: &str,
    ) -> Call<S, pb::DowngradeRequest, DowngradeResponse> {
        use pb::downgrade_request::DowngradeAction;
        let action = match step {
            Downgrade::Validate => DowngradeAction::Validate,
            Downgrade::Enable => DowngradeAction::Enable,
            Downgrade::Cancel => DowngradeAction::Cancel,
        };
        let request = if step != Downgrade::Cancel && version.trim().is_empty() {
            Err(invalid(
                "a downgrade needs a target version, such as \"3.4\"",
            ))
        } else {
            Ok(pb::DowngradeRequest {
                action: action as i32,
                version: version.trim().to_owned(),
            })
        };
        Call::new(self.service.clone(), request)
    }

    /// Opens a snapshot of the answering member's backend: a stream of chunks whose
    /// sha256 trailer is verified as it ends (see [`Snapshot`]).
    pub fn snapshot(&self) -> Call<S, pb::SnapshotRequest, Snapshot> {
        Call::new(self.service.clone(), Ok(pb::SnapshotRequest {}))
    }

    /// Writes a snapshot of the answering member's backend to `writer`, verifies its
    /// sha256 trailer, and writes the trailer too: the result is what `etcdctl snapshot
    /// save` writes, and `etcdctl snapshot restore` accepts it.
    ///
    /// On [`SnapshotError::ChecksumMismatch`] or [`SnapshotError::Truncated`] the writer
    /// holds data that must be discarded (without a valid trailer).
    pub async fn snapshot_to<W>(&self, writer: &mut W) -> Result<SnapshotInfo, SnapshotError>
    where
        W: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        self.snapshot().await?.write_to(writer).await
    }
}

/// A step of a cluster downgrade, for [`Maintenance::downgrade`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Downgrade {
    /// Checks that the cluster can downgrade to the version, changing nothing.
    Validate,
    /// Starts the downgrade.
    Enable,
    /// Cancels the downgrade under way (the version is not needed).
    Cancel,
}
