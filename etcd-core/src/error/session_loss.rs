//! Why a lock or election session ended.

/// Why a session (a lease kept alive for locks and elections) no longer keeps its lease
/// alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionLoss {
    /// The lease was lost: see the [`LossReason`](crate::lease::LossReason) (expired, possibly, when the cluster was
    /// unreachable for a TTL; not found or revoked when the server said so).
    Lease(crate::lease::LossReason),
    /// The session was closed: the lease is revoked.
    Closed,
    /// The session was orphaned: the lease is no longer renewed and expires after
    /// its TTL.
    Orphaned,
}

impl std::fmt::Display for SessionLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionLoss::Lease(reason) => write!(f, "lease {reason}"),
            SessionLoss::Closed => f.write_str("session closed"),
            SessionLoss::Orphaned => f.write_str("session orphaned"),
        }
    }
}
