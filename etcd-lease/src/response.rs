//! What the lease calls return.

use std::time::Duration;

use bytes::Bytes;
use etcd_core::kv::ResponseHeader;
use etcd_proto::etcdserverpb as pb;

/// Seconds from the wire as a duration; negative values count as zero.
pub(crate) fn secs(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

/// A granted lease: its ID and the TTL the server chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    id: i64,
    ttl: Duration,
    header: ResponseHeader,
}

impl Lease {
    /// The lease ID, to attach keys with (`kv.put(k, v).lease(lease.id())`) and to keep
    /// the lease alive.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL the server granted. It may be longer than the one asked for: etcd raises
    /// TTLs below its minimum (1.5 election timeouts, 2 s by default).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }
}

impl From<pb::LeaseGrantResponse> for Lease {
    fn from(r: pb::LeaseGrantResponse) -> Self {
        Self {
            id: r.id,
            ttl: secs(r.ttl),
            header: r.header.into(),
        }
    }
}

/// The answer to a revoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokeResponse {
    header: ResponseHeader,
}

impl RevokeResponse {
    /// The response header; its revision is the one at which the lease's keys were deleted.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }
}

impl From<pb::LeaseRevokeResponse> for RevokeResponse {
    fn from(r: pb::LeaseRevokeResponse) -> Self {
        Self {
            header: r.header.into(),
        }
    }
}

/// A live lease's remaining time, and optionally its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeToLiveResponse {
    id: i64,
    ttl: Duration,
    granted_ttl: Duration,
    keys: Vec<Bytes>,
    header: ResponseHeader,
}

impl TimeToLiveResponse {
    /// The lease ID.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The time left before the lease expires, rounded down to the second. A new leader
    /// resets it to the full TTL, so it does not always shrink.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The TTL the lease was granted with.
    pub fn granted_ttl(&self) -> Duration {
        self.granted_ttl
    }

    /// The keys attached to the lease; empty unless asked for with
    /// [`TimeToLive::keys`](crate::TimeToLive::keys).
    pub fn keys(&self) -> &[Bytes] {
        &self.keys
    }

    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }
}

impl From<pb::LeaseTimeToLiveResponse> for TimeToLiveResponse {
    fn from(r: pb::LeaseTimeToLiveResponse) -> Self {
        Self {
            id: r.id,
            ttl: secs(r.ttl),
            granted_ttl: secs(r.granted_ttl),
            keys: r.keys,
            header: r.header.into(),
        }
    }
}

/// Every live lease of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasesResponse {
    ids: Vec<i64>,
    header: ResponseHeader,
}

impl LeasesResponse {
    /// The IDs of the live leases, in no particular order.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }
}

impl From<pb::LeaseLeasesResponse> for LeasesResponse {
    fn from(r: pb::LeaseLeasesResponse) -> Self {
        Self {
            ids: r.leases.into_iter().map(|l| l.id).collect(),
            header: r.header.into(),
        }
    }
}

/// The answer to one keep-alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAliveResponse {
    id: i64,
    ttl: Duration,
    header: ResponseHeader,
}

impl KeepAliveResponse {
    /// The lease ID.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL the lease was renewed for.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }
}

impl From<pb::LeaseKeepAliveResponse> for KeepAliveResponse {
    fn from(r: pb::LeaseKeepAliveResponse) -> Self {
        Self {
            id: r.id,
            ttl: secs(r.ttl),
            header: r.header.into(),
        }
    }
}
