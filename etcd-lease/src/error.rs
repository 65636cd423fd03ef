//! Errors of the lease subsystem: the one [`etcd_core::Error`] of every crate of the
//! client. A lease that is gone, or may be, is [`Error::LeaseLost`] with its ID and a
//! [`LossReason`]; everything else (a server error, a timeout, a transport failure, a
//! request refused before it was sent) is as for any other call.

pub use etcd_core::{Error, Result};

use crate::LossReason;

/// The error for a lease no longer kept alive for `reason`.
pub(crate) fn lost(id: i64, reason: LossReason) -> Error {
    Error::LeaseLost { id, reason }
}

/// The error for a lease whose keep-alive task is gone (its runtime shut down).
pub(crate) fn halted(id: i64) -> Error {
    lost(id, LossReason::Halted)
}
