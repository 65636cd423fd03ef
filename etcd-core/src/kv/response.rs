//! Responses of the KV service, with zero-copy accessors.

use bytes::Bytes;
use etcd_proto::{etcdserverpb as pb, mvccpb};

use crate::error::{Error, Result};

/// The header etcd puts on every response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResponseHeader {
    /// The ID of the cluster that answered.
    pub cluster_id: u64,
    /// The ID of the member that answered.
    pub member_id: u64,
    /// The store revision when the request was applied.
    pub revision: i64,
    /// The raft term when the request was applied.
    pub raft_term: u64,
}

impl From<Option<pb::ResponseHeader>> for ResponseHeader {
    fn from(header: Option<pb::ResponseHeader>) -> Self {
        header.map_or_else(Self::default, |h| Self {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        })
    }
}

/// A key with its value and metadata, as stored at some revision.
///
/// Key and value are [`Bytes`] that share the buffer the response was decoded from: reading
/// them copies nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyValue {
    key: Bytes,
    value: Bytes,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

impl KeyValue {
    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The key as a string, when it is UTF-8.
    pub fn key_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.key)
    }

    /// The key as shared bytes (a cheap clone away from owning it).
    pub fn key_bytes(&self) -> &Bytes {
        &self.key
    }

    /// The value (empty for keys-only reads).
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as a string, when it is UTF-8.
    pub fn value_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.value)
    }

    /// The value as shared bytes.
    pub fn value_bytes(&self) -> &Bytes {
        &self.value
    }

    /// The revision of the key's last creation.
    pub fn create_revision(&self) -> i64 {
        self.create_revision
    }

    /// The revision of the key's last modification.
    pub fn mod_revision(&self) -> i64 {
        self.mod_revision
    }

    /// How often the key was written since its creation (1 after the first put).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The lease the key is attached to, or 0.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Takes the key and value out.
    pub fn into_key_value(self) -> (Bytes, Bytes) {
        (self.key, self.value)
    }
}

impl From<mvccpb::KeyValue> for KeyValue {
    fn from(kv: mvccpb::KeyValue) -> Self {
        Self {
            key: kv.key,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

/// Moves keys and values into our type; the vector is reused in place.
fn key_values(kvs: Vec<mvccpb::KeyValue>) -> Vec<KeyValue> {
    kvs.into_iter().map(KeyValue::from).collect()
}

/// The answer to a get (etcd's Range).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetResponse {
    header: ResponseHeader,
    kvs: Vec<KeyValue>,
    more: bool,
    count: i64,
}

impl GetResponse {
    /// The response header; `header().revision` is the revision read.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The store revision the read saw.
    pub fn revision(&self) -> i64 {
        self.header.revision
    }

    /// The keys found (none with `count_only`), in the requested order.
    pub fn kvs(&self) -> &[KeyValue] {
        &self.kvs
    }

    /// Takes the keys found.
    pub fn into_kvs(self) -> Vec<KeyValue> {
        self.kvs
    }

    /// The first key found, if any.
    pub fn first(&self) -> Option<&KeyValue> {
        self.kvs.first()
    }

    /// The first key's value, if any key was found.
    pub fn value(&self) -> Option<&[u8]> {
        self.kvs.first().map(KeyValue::value)
    }

    /// True when a limit cut the result short: more keys are in the range.
    pub fn more(&self) -> bool {
        self.more
    }

    /// The number of keys in the whole range, regardless of the limit.
    pub fn count(&self) -> i64 {
        self.count
    }
}

impl From<pb::RangeResponse> for GetResponse {
    fn from(r: pb::RangeResponse) -> Self {
        Self {
            header: r.header.into(),
            kvs: key_values(r.kvs),
            more: r.more,
            count: r.count,
        }
    }
}

/// The answer to a put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    header: ResponseHeader,
    prev_kv: Option<KeyValue>,
}

impl PutResponse {
    /// The response header; `header().revision` is the revision of the write.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The revision the put created.
    pub fn revision(&self) -> i64 {
        self.header.revision
    }

    /// The key as it was before the put, when `prev_kv` was asked and the key existed.
    pub fn prev_kv(&self) -> Option<&KeyValue> {
        self.prev_kv.as_ref()
    }
}

impl From<pb::PutResponse> for PutResponse {
    fn from(r: pb::PutResponse) -> Self {
        Self {
            header: r.header.into(),
            prev_kv: r.prev_kv.map(KeyValue::from),
        }
    }
}

/// The answer to a delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteResponse {
    header: ResponseHeader,
    deleted: i64,
    prev_kvs: Vec<KeyValue>,
}

impl DeleteResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The store revision after the delete (unchanged when nothing was deleted).
    pub fn revision(&self) -> i64 {
        self.header.revision
    }

    /// How many keys were deleted.
    pub fn deleted(&self) -> i64 {
        self.deleted
    }

    /// The deleted keys as they were, when `prev_kv` was asked.
    pub fn prev_kvs(&self) -> &[KeyValue] {
        &self.prev_kvs
    }
}

impl From<pb::DeleteRangeResponse> for DeleteResponse {
    fn from(r: pb::DeleteRangeResponse) -> Self {
        Self {
            header: r.header.into(),
            deleted: r.deleted,
            prev_kvs: key_values(r.prev_kvs),
        }
    }
}

/// The answer to a compaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactResponse {
    header: ResponseHeader,
}

impl CompactResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }
}

impl From<pb::CompactionResponse> for CompactResponse {
    fn from(r: pb::CompactionResponse) -> Self {
        Self {
            header: r.header.into(),
        }
    }
}

/// The answer to one operation of a transaction's chosen branch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpResponse {
    /// A get's answer.
    Get(GetResponse),
    /// A put's answer.
    Put(PutResponse),
    /// A delete's answer.
    Delete(DeleteResponse),
    /// A nested transaction's answer.
    Txn(TxnResponse),
}

/// The answer to a transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    header: ResponseHeader,
    succeeded: bool,
    responses: Vec<OpResponse>,
}

impl TxnResponse {
    /// The response header; only the top-level header's revision is meaningful.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The store revision after the transaction.
    pub fn revision(&self) -> i64 {
        self.header.revision
    }

    /// True when every compare held and the `then` branch ran; false when `otherwise` ran.
    pub fn succeeded(&self) -> bool {
        self.succeeded
    }

    /// The answers of the branch that ran, one per operation, in order.
    pub fn responses(&self) -> &[OpResponse] {
        &self.responses
    }

    /// Takes the answers of the branch that ran.
    pub fn into_responses(self) -> Vec<OpResponse> {
        self.responses
    }
}

impl TryFrom<pb::TxnResponse> for TxnResponse {
    type Error = Error;

    fn try_from(r: pb::TxnResponse) -> Result<Self> {
        use pb::response_op::Response;
        let responses = r
            .responses
            .into_iter()
            .map(|op| match op.response {
                Some(Response::ResponseRange(r)) => Ok(OpResponse::Get(r.into())),
                Some(Response::ResponsePut(r)) => Ok(OpResponse::Put(r.into())),
                Some(Response::ResponseDeleteRange(r)) => Ok(OpResponse::Delete(r.into())),
                Some(Response::ResponseTxn(r)) => Ok(OpResponse::Txn(TxnResponse::try_from(r)?)),
                None => Err(Error::Protocol(
                    "a transaction response holds an empty operation".into(),
                )),
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            header: r.header.into(),
            succeeded: r.succeeded,
            responses,
        })
    }
}
