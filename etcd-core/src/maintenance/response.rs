//! Responses of the maintenance service.

use etcd_proto::etcdserverpb as pb;

use crate::error::Result;
use crate::future::FromResponse;
use crate::kv::ResponseHeader;

/// The status of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusResponse {
    header: ResponseHeader,
    version: String,
    db_size: i64,
    db_size_in_use: i64,
    leader: u64,
    raft_index: u64,
    raft_term: u64,
    raft_applied_index: u64,
    errors: Vec<String>,
    is_learner: bool,
    storage_version: String,
    db_size_quota: i64,
    downgrade: Option<DowngradeInfo>,
}

impl StatusResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The ID of the member that answered.
    pub fn member_id(&self) -> u64 {
        self.header.member_id
    }

    /// The member's etcd version, such as `3.5.1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The size of the backend file in bytes.
    pub fn db_size(&self) -> i64 {
        self.db_size
    }

    /// The bytes of the backend in use (the file size less free pages; etcd 3.4 and
    /// later).
    pub fn db_size_in_use(&self) -> i64 {
        self.db_size_in_use
    }

    /// The ID of the member this member takes to be the leader (0 when it knows none).
    pub fn leader(&self) -> u64 {
        self.leader
    }

    /// True when the member that answered is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.header.member_id
    }

    /// The raft committed index.
    pub fn raft_index(&self) -> u64 {
        self.raft_index
    }

    /// The raft term.
    pub fn raft_term(&self) -> u64 {
        self.raft_term
    }

    /// The raft applied index.
    pub fn raft_applied_index(&self) -> u64 {
        self.raft_applied_index
    }

    /// Alarms and health problems of the member, as text (empty when healthy).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// True when the member is a learner.
    pub fn is_learner(&self) -> bool {
        self.is_learner
    }

    /// The version of the backend file's schema, such as `3.6.0` (etcd 3.6 and later;
    /// `None` from older members, which do not report it).
    pub fn storage_version(&self) -> Option<&str> {
        Some(self.storage_version.as_str()).filter(|v| !v.is_empty())
    }

    /// The backend quota in bytes, as set by `--quota-backend-bytes` (etcd 3.6 and later;
    /// `None` from older members).
    pub fn db_size_quota(&self) -> Option<i64> {
        Some(self.db_size_quota).filter(|q| *q > 0)
    }

    /// The downgrade under way, when one is enabled (reported by etcd 3.6 and later).
    pub fn downgrade(&self) -> Option<&DowngradeInfo> {
        self.downgrade.as_ref()
    }
}

/// A cluster downgrade that is enabled: the members are to run `target_version` next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DowngradeInfo {
    target_version: String,
}

impl DowngradeInfo {
    /// The version the cluster is downgrading to, such as `3.5`.
    pub fn target_version(&self) -> &str {
        &self.target_version
    }
}

/// The answer to a downgrade request: the cluster version it leaves in place.
#[derive(Clone, Debug)]
pub struct DowngradeResponse {
    header: ResponseHeader,
    version: String,
}

impl DowngradeResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The cluster version, such as `3.5.0`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl FromResponse<pb::DowngradeResponse> for DowngradeResponse {
    fn from_response(r: pb::DowngradeResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            version: r.version,
        })
    }
}

impl FromResponse<pb::StatusResponse> for StatusResponse {
    fn from_response(r: pb::StatusResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            version: r.version,
            db_size: r.db_size,
            db_size_in_use: r.db_size_in_use,
            leader: r.leader,
            raft_index: r.raft_index,
            raft_term: r.raft_term,
            raft_applied_index: r.raft_applied_index,
            errors: r.errors,
            is_learner: r.is_learner,
            storage_version: r.storage_version,
            db_size_quota: r.db_size_quota,
            downgrade: r
                .downgrade_info
                .filter(|d| d.enabled)
                .map(|d| DowngradeInfo {
                    target_version: d.target_version,
                }),
        })
    }
}

/// The kind of an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlarmKind {
    /// The backend reached its quota (`NOSPACE`): the cluster accepts only reads and
    /// deletes until space is freed and the alarm is disarmed.
    NoSpace,
    /// A member found its data inconsistent with the others (`CORRUPT`).
    Corrupt,
    /// A kind this client does not know, as sent.
    Unknown(i32),
}

impl AlarmKind {
    fn from_wire(kind: i32) -> Self {
        match pb::AlarmType::try_from(kind) {
            Ok(pb::AlarmType::Nospace) => Self::NoSpace,
            Ok(pb::AlarmType::Corrupt) => Self::Corrupt,
            _ => Self::Unknown(kind),
        }
    }

    /// The wire value; `None` for "no alarm", which cannot be disarmed.
    pub(crate) fn to_wire(self) -> Option<i32> {
        match self {
            Self::NoSpace => Some(pb::AlarmType::Nospace as i32),
            Self::Corrupt => Some(pb::AlarmType::Corrupt as i32),
            Self::Unknown(0) => None,
            Self::Unknown(kind) => Some(kind),
        }
    }
}

/// An alarm raised by one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Alarm {
    member_id: u64,
    kind: AlarmKind,
}

impl Alarm {
    /// The alarm `kind` of the member with ID `member_id`, for
    /// [`Maintenance::disarm`](super::Maintenance::disarm).
    pub fn new(member_id: u64, kind: AlarmKind) -> Self {
        Self { member_id, kind }
    }

    /// The member that raised it.
    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// What it is about.
    pub fn kind(&self) -> AlarmKind {
        self.kind
    }
}

/// The answer to listing or disarming alarms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmResponse {
    header: ResponseHeader,
    alarms: Vec<Alarm>,
}

impl AlarmResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The alarms raised (for a list), or the alarm cleared (for a disarm).
    pub fn alarms(&self) -> &[Alarm] {
        &self.alarms
    }
}

impl FromResponse<pb::AlarmResponse> for AlarmResponse {
    fn from_response(r: pb::AlarmResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            alarms: r
                .alarms
                .into_iter()
                .map(|a| Alarm::new(a.member_id, AlarmKind::from_wire(a.alarm)))
                .collect(),
        })
    }
}

/// A hash of a member's whole backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashResponse {
    header: ResponseHeader,
    hash: u32,
}

impl HashResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The hash (CRC-32C).
    pub fn hash(&self) -> u32 {
        self.hash
    }
}

impl FromResponse<pb::HashResponse> for HashResponse {
    fn from_response(r: pb::HashResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            hash: r.hash,
        })
    }
}

/// A hash of a member's key-value history up to a revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashKvResponse {
    header: ResponseHeader,
    hash: u32,
    compact_revision: i64,
}

impl HashKvResponse {
    /// The response header; `header().revision` is the member's current revision.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The hash (CRC-32C) of the history from the compact revision up to the revision
    /// asked.
    pub fn hash(&self) -> u32 {
        self.hash
    }

    /// The compact revision the hash starts from.
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }
}

impl FromResponse<pb::HashKvResponse> for HashKvResponse {
    fn from_response(r: pb::HashKvResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            hash: r.hash,
            compact_revision: r.compact_revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The etcd 3.6 status fields decode when a member sends them, and read as absent from
    /// older members, which do not.
    #[test]
    fn status_fields_of_etcd_3_6() {
        let newer = pb::StatusResponse {
            storage_version: "3.6.0".into(),
            db_size_quota: 2 << 30,
            downgrade_info: Some(pb::DowngradeInfo {
                enabled: true,
                target_version: "3.5".into(),
            }),
            ..Default::default()
        };
        let status = StatusResponse::from_response(newer).unwrap();
        assert_eq!(status.storage_version(), Some("3.6.0"));
        assert_eq!(status.db_size_quota(), Some(2 << 30));
        assert_eq!(status.downgrade().map(|d| d.target_version()), Some("3.5"));

        let idle = pb::StatusResponse {
            downgrade_info: Some(pb::DowngradeInfo {
                enabled: false,
                target_version: String::new(),
            }),
            ..Default::default()
        };
        let status = StatusResponse::from_response(idle).unwrap();
        assert!(status.downgrade().is_none());
        let older = StatusResponse::from_response(pb::StatusResponse::default()).unwrap();
        assert_eq!(
            (older.storage_version(), older.db_size_quota()),
            (None, None)
        );
    }
}
