//! The get (Range) request builder.

use bytes::Bytes;
use etcd_proto::etcdserverpb as pb;
use pb::range_request::{SortOrder as PbOrder, SortTarget as PbTarget};

use super::KvLimits;
use crate::error::{InvalidRequest, Result};
use crate::key::{IntoBytes, KeyRange};

/// What to sort a range by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortTarget {
    /// By key (etcd's natural order).
    #[default]
    Key,
    /// By version.
    Version,
    /// By creation revision.
    CreateRevision,
    /// By modification revision.
    ModRevision,
    /// By value.
    Value,
}

/// Which way to sort.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Keep the server's order (ascending by key).
    #[default]
    None,
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

/// Reads a key or a range of keys. Await it when it came from [`Kv::get`](super::Kv::get);
/// use it in a transaction through [`Op`](super::Op) otherwise.
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until it is awaited"]
pub struct Get<C = ()> {
    client: C,
    range: KeyRange,
    request: pb::RangeRequest,
}

impl Get {
    /// A read of `key`.
    pub fn new(key: impl IntoBytes) -> Self {
        Self::range(KeyRange::key(key))
    }

    /// A read of a range.
    pub fn range(range: KeyRange) -> Self {
        Self {
            client: (),
            range,
            request: pb::RangeRequest::default(),
        }
    }
}

impl<C> Get<C> {
    pub(crate) fn with_client<D>(self, client: D) -> Get<D> {
        Get {
            client,
            range: self.range,
            request: self.request,
        }
    }

    pub(crate) fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    pub(crate) fn into_parts(self) -> (C, Get) {
        let client = self.client;
        (
            client,
            Get {
                client: (),
                range: self.range,
                request: self.request,
            },
        )
    }

    crate::key::range_methods!("Reads");

    /// Returns at most `limit` keys (0: no limit). [`more`](super::GetResponse::more) tells
    /// whether keys were left out.
    pub fn limit(mut self, limit: i64) -> Self {
        self.request.limit = limit;
        self
    }

    /// Reads at an earlier revision (0 or less: the latest).
    pub fn revision(mut self, revision: i64) -> Self {
        self.request.revision = revision;
        self
    }

    /// Sorts the result.
    pub fn sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.request.sort_target = match target {
            SortTarget::Key => PbTarget::Key,
            SortTarget::Version => PbTarget::Version,
            SortTarget::CreateRevision => PbTarget::Create,
            SortTarget::ModRevision => PbTarget::Mod,
            SortTarget::Value => PbTarget::Value,
        } as i32;
        self.request.sort_order = match order {
            SortOrder::None => PbOrder::None,
            SortOrder::Ascend => PbOrder::Ascend,
            SortOrder::Descend => PbOrder::Descend,
        } as i32;
        self
    }

    /// Serves the read from the member's local state, without a quorum round: faster,
    /// but possibly stale.
    pub fn serializable(mut self) -> Self {
        self.request.serializable = true;
        self
    }

    /// Returns keys without values.
    pub fn keys_only(mut self) -> Self {
        self.request.keys_only = true;
        self
    }

    /// Returns only the number of keys in the range.
    pub fn count_only(mut self) -> Self {
        self.request.count_only = true;
        self
    }

    /// Keeps keys modified at or after `revision`.
    pub fn min_mod_revision(mut self, revision: i64) -> Self {
        self.request.min_mod_revision = revision;
        self
    }

    /// Keeps keys modified at or before `revision`.
    pub fn max_mod_revision(mut self, revision: i64) -> Self {
        self.request.max_mod_revision = revision;
        self
    }

    /// Keeps keys created at or after `revision`.
    pub fn min_create_revision(mut self, revision: i64) -> Self {
        self.request.min_create_revision = revision;
        self
    }

    /// Keeps keys created at or before `revision`.
    pub fn max_create_revision(mut self, revision: i64) -> Self {
        self.request.max_create_revision = revision;
        self
    }
}

impl Get {
    /// Checks the request and turns it into its wire message.
    pub(crate) fn build(self, _limits: &KvLimits) -> Result<pb::RangeRequest> {
        let (key, range_end): (Bytes, Bytes) = self.range.into_parts();
        if key.is_empty() {
            return Err(InvalidRequest::EmptyKey.into());
        }
        Ok(pb::RangeRequest {
            key,
            range_end,
            ..self.request
        })
    }
}
