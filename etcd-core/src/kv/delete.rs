//! The delete (DeleteRange) request builder.

use etcd_proto::etcdserverpb as pb;

use super::KvLimits;
use crate::error::{InvalidRequest, Result};
use crate::key::{IntoBytes, KeyRange};

/// Deletes a key or a range. Await it when it came from [`Kv::delete`](super::Kv::delete).
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until it is awaited"]
pub struct Delete<C = ()> {
    client: C,
    range: KeyRange,
    prev_kv: bool,
}

impl Delete {
    /// A delete of `key`.
    pub fn new(key: impl IntoBytes) -> Self {
        Self::range(KeyRange::key(key))
    }

    /// A delete of a range.
    pub fn range(range: KeyRange) -> Self {
        Self {
            client: (),
            range,
            prev_kv: false,
        }
    }

    /// The keys this delete covers.
    pub(crate) fn key_range(&self) -> &KeyRange {
        &self.range
    }

    /// Checks the request and turns it into its wire message.
    pub(crate) fn build(self, _limits: &KvLimits) -> Result<pb::DeleteRangeRequest> {
        let (key, range_end) = self.range.into_parts();
        if key.is_empty() {
            return Err(InvalidRequest::EmptyKey.into());
        }
        Ok(pb::DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        })
    }
}

impl<C> Delete<C> {
    pub(crate) fn with_client<D>(self, client: D) -> Delete<D> {
        Delete {
            client,
            range: self.range,
            prev_kv: self.prev_kv,
        }
    }

    pub(crate) fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    pub(crate) fn into_parts(self) -> (C, Delete) {
        (
            self.client,
            Delete {
                client: (),
                range: self.range,
                prev_kv: self.prev_kv,
            },
        )
    }

    crate::key::range_methods!("Deletes");

    /// Returns the deleted keys as they were.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}
