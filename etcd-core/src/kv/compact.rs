//! The compaction request builder.

use etcd_proto::etcdserverpb as pb;

use super::KvLimits;
use crate::error::{InvalidRequest, Result};

/// Discards the history before a revision. Await it when it came from
/// [`Kv::compact`](super::Kv::compact).
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until it is awaited"]
pub struct Compact<C = ()> {
    client: C,
    request: pb::CompactionRequest,
}

impl Compact {
    /// A compaction up to `revision`.
    pub fn new(revision: i64) -> Self {
        Self {
            client: (),
            request: pb::CompactionRequest {
                revision,
                physical: false,
            },
        }
    }

    /// Checks the request and turns it into its wire message.
    pub(crate) fn build(self, _limits: &KvLimits) -> Result<pb::CompactionRequest> {
        if self.request.revision < 0 {
            return Err(InvalidRequest::NegativeRevision(self.request.revision).into());
        }
        Ok(self.request)
    }
}

impl<C> Compact<C> {
    pub(crate) fn with_client<D>(self, client: D) -> Compact<D> {
        Compact {
            client,
            request: self.request,
        }
    }

    pub(crate) fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    pub(crate) fn into_parts(self) -> (C, Compact) {
        (
            self.client,
            Compact {
                client: (),
                request: self.request,
            },
        )
    }

    /// Waits until the compacted entries are physically removed from the backend.
    pub fn physical(mut self) -> Self {
        self.request.physical = true;
        self
    }
}
