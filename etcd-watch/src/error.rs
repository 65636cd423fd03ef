//! Why a watch ended.

/// Why a watch ended, or could not be created.
///
/// Every error a [`WatchStream`](crate::WatchStream) yields is terminal: the stream ends
/// after it. A broken connection is **not** an error: the watch is resumed on a new stream
/// without loss or duplicates, and the stream goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The revision the watch had to continue from was compacted away: events between the
    /// last delivered one and `compact_revision` can no longer be delivered. Re-read the
    /// current state (a get at the latest revision) and watch again from its revision + 1.
    #[error("the watch's next revision was compacted (compact revision {compact_revision})")]
    Compacted {
        /// The revision the history was compacted to; the oldest revision still watchable.
        compact_revision: i64,
    },
    /// The server canceled the watch or refused to create it (for example: permission
    /// denied, or an invalid range).
    #[error("watch canceled by the server: {reason}")]
    Canceled {
        /// The server's reason, as sent.
        reason: String,
    },
    /// The stream was opened with require-leader, and its member lost its leader.
    #[error("the member serving the watch has no leader (etcdserver: no leader)")]
    NoLeader,
    /// The request was invalid, or the watcher's background task is gone.
    #[error(transparent)]
    Core(#[from] etcd_core::Error),
}

impl Error {
    /// The compact revision when the watch ended because of compaction.
    pub fn compact_revision(&self) -> Option<i64> {
        match self {
            Error::Compacted { compact_revision } => Some(*compact_revision),
            _ => None,
        }
    }

    /// The error used when the watcher's background task is gone (its runtime shut down).
    pub(crate) fn closed() -> Self {
        Error::Core(etcd_core::Error::Protocol(
            "the watcher's background task has stopped".into(),
        ))
    }
}
