//! The stream of a cache's changes.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_core::kv::KeyValue;
use futures_core::Stream;
use futures_core::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Shared, Snapshot};

/// One change of a [`Cache`](super::Cache).
#[derive(Clone, Debug)]
pub enum Change {
    /// A key was created or updated.
    Put {
        /// The key-value as written.
        kv: KeyValue,
        /// What the cache held at the key before, if anything.
        prev: Option<KeyValue>,
    },
    /// A key was deleted.
    Delete {
        /// The key.
        key: Bytes,
        /// The revision of the deletion.
        revision: i64,
        /// What the cache held at the key before, if anything.
        prev: Option<KeyValue>,
    },
    /// The whole state was replaced: the range was listed again (after compaction cut the
    /// watch off), or the subscriber fell too far behind. Changes that follow come after
    /// this snapshot's revision.
    Relisted(Snapshot),
}

impl Change {
    /// The revision of the change (of the new state, for [`Relisted`](Change::Relisted)).
    pub fn revision(&self) -> i64 {
        match self {
            Change::Put { kv, .. } => kv.mod_revision(),
            Change::Delete { revision, .. } => *revision,
            Change::Relisted(snapshot) => snapshot.revision(),
        }
    }
}

/// A [`Stream`] of a cache's [`Change`]s, from [`Cache::changes`](super::Cache::changes);
/// ends when the cache's last clone is dropped.
#[must_use = "streams do nothing unless polled"]
pub struct Changes {
    inner: BoxStream<'static, Change>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Changes(..)")
    }
}

impl Stream for Changes {
    type Item = Change;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct Subscriber {
    receiver: broadcast::Receiver<Change>,
    shared: Weak<Shared>,
    /// Changes at or below this revision are in a snapshot already given.
    given_through: i64,
}

pub(super) fn subscribe(shared: &Arc<Shared>) -> Changes {
    let subscriber = Subscriber {
        receiver: shared.changes.subscribe(),
        shared: Arc::downgrade(shared),
        given_through: 0,
    };
    let inner = futures_util::stream::unfold(subscriber, |mut s| async move {
        loop {
            match s.receiver.recv().await {
                Ok(change @ Change::Relisted(_)) => {
                    s.given_through = change.revision();
                    return Some((change, s));
                }
                Ok(change) if change.revision() <= s.given_through => continue,
                Ok(change) => return Some((change, s)),
                Err(RecvError::Lagged(_)) => {
                    let snapshot = s.shared.upgrade()?.read().clone();
                    s.given_through = snapshot.revision();
                    return Some((Change::Relisted(snapshot), s));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Changes {
        inner: Box::pin(inner),
    }
}
