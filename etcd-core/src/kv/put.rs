//! The put request builder.

use etcd_proto::etcdserverpb as pb;

use super::KvLimits;
use crate::error::{InvalidRequest, Result};
use crate::key::IntoBytes;

/// Writes a value at a key. Await it when it came from [`Kv::put`](super::Kv::put).
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until it is awaited"]
pub struct Put<C = ()> {
    client: C,
    request: pb::PutRequest,
}

impl Put {
    /// A write of `value` at `key`.
    pub fn new(key: impl IntoBytes, value: impl IntoBytes) -> Self {
        Self {
            client: (),
            request: pb::PutRequest {
                key: key.into_bytes(),
                value: value.into_bytes(),
                ..Default::default()
            },
        }
    }

    /// The key written.
    pub(crate) fn key(&self) -> &bytes::Bytes {
        &self.request.key
    }

    /// Checks the request and turns it into its wire message.
    pub(crate) fn build(self, _limits: &KvLimits) -> Result<pb::PutRequest> {
        let r = &self.request;
        if r.key.is_empty() {
            return Err(InvalidRequest::EmptyKey.into());
        }
        if r.lease < 0 {
            return Err(InvalidRequest::InvalidLeaseId(r.lease).into());
        }
        if r.ignore_value && !r.value.is_empty() {
            return Err(InvalidRequest::ValueWithIgnoreValue.into());
        }
        if r.ignore_lease && r.lease != 0 {
            return Err(InvalidRequest::LeaseWithIgnoreLease.into());
        }
        Ok(self.request)
    }
}

impl<C> Put<C> {
    pub(crate) fn with_client<D>(self, client: D) -> Put<D> {
        Put {
            client,
            request: self.request,
        }
    }

    pub(crate) fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    pub(crate) fn into_parts(self) -> (C, Put) {
        (
            self.client,
            Put {
                client: (),
                request: self.request,
            },
        )
    }

    /// Attaches the key to a lease: it is deleted when the lease ends.
    pub fn lease(mut self, lease: i64) -> Self {
        self.request.lease = lease;
        self
    }

    /// Returns the key as it was before this write.
    pub fn prev_kv(mut self) -> Self {
        self.request.prev_kv = true;
        self
    }

    /// Keeps the current value and only updates the lease (the key must exist; give no value).
    pub fn ignore_value(mut self) -> Self {
        self.request.ignore_value = true;
        self
    }

    /// Keeps the current lease and only updates the value (the key must exist).
    pub fn ignore_lease(mut self) -> Self {
        self.request.ignore_lease = true;
        self
    }
}
