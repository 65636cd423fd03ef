//! How keys move into a namespace and back out: [`Prefix`], and the [`PrefixKeys`] and
//! [`StripKeys`] rewrites of every request and response message.

use bytes::{Buf, Bytes, BytesMut};
use etcd_proto::etcdserverpb as pb;
use etcd_proto::{mvccpb, v3electionpb as election, v3lockpb as lock};
use futures_util::StreamExt;

use crate::key::{FROM_KEY, IntoBytes, prefix_end};
use crate::stream::{RequestStream, ResponseStream};

/// A namespace's key prefix, with the mapping of keys and ranges into it and back out.
///
/// The mapping follows etcd's own namespace client (`client/v3/namespace`):
///
/// | user `(key, range_end)` | sent to the server |
/// | --- | --- |
/// | `(k, "")`, one key | `(prefix + k, "")` |
/// | `(k, e)`, a range | `(prefix + k, prefix + e)` |
/// | `(k, "\0")`, every key from `k` on | `(prefix + k, end)` |
/// | `("\0", "\0")`, every key | `(prefix, end)` |
///
/// where `end` is [`prefix_end`] of the prefix, the first key after the namespace (`"\0"`,
/// no bound, for a prefix of only `0xff` bytes). So "every key" means every key of the
/// namespace, never a key outside it. An empty key stays empty, so that the server
/// refuses it exactly as it would without a namespace, and an empty prefix changes nothing.
///
/// Responses lose the prefix again: [`strip`](Self::strip) slices it off a key without
/// copying.
///
/// ```
/// use etcd_core::namespace::Prefix;
///
/// let ns = Prefix::new("tenant/");
/// assert_eq!(&ns.key(&"a".into())[..], b"tenant/a");
/// let (key, end) = ns.range(&"\0".into(), &"\0".into());
/// assert_eq!((&key[..], &end[..]), (&b"tenant/"[..], &b"tenant0"[..]));
///
/// let mut key = bytes::Bytes::from_static(b"tenant/a");
/// assert!(ns.strip(&mut key));
/// assert_eq!(&key[..], b"a");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Prefix {
    prefix: Bytes,
    end: Bytes,
}

impl Prefix {
    /// The namespace of every key starting with `prefix`.
    pub fn new(prefix: impl IntoBytes) -> Self {
        let prefix = prefix.into_bytes();
        let end = prefix_end(&prefix);
        Self { prefix, end }
    }

    /// The prefix itself.
    pub fn as_bytes(&self) -> &Bytes {
        &self.prefix
    }

    /// The first key after the namespace: `prefix_end(prefix)`, or `"\0"` (no bound) for an
    /// empty prefix or one of only `0xff` bytes.
    pub fn end(&self) -> &Bytes {
        &self.end
    }

    /// Whether the prefix is empty (the namespace is the whole key space).
    pub fn is_empty(&self) -> bool {
        self.prefix.is_empty()
    }

    /// `key` inside the namespace: `prefix + key` (one allocation); an empty key, or any
    /// key under an empty prefix, is returned as it is.
    pub fn key(&self, key: &Bytes) -> Bytes {
        if self.prefix.is_empty() || key.is_empty() {
            return key.clone();
        }
        let mut out = BytesMut::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(key);
        out.freeze()
    }

    /// The range `[key, range_end)` inside the namespace, with etcd's special forms mapped
    /// as the [type documentation](Self) shows.
    pub fn range(&self, key: &Bytes, range_end: &Bytes) -> (Bytes, Bytes) {
        if self.prefix.is_empty() {
            return (key.clone(), range_end.clone());
        }
        if range_end.is_empty() {
            (self.key(key), Bytes::new())
        } else if &range_end[..] == FROM_KEY {
            let key = if &key[..] == FROM_KEY {
                self.prefix.clone()
            } else {
                self.key(key)
            };
            (key, self.end.clone())
        } else {
            (self.key(key), self.key(range_end))
        }
    }

    /// Rewrites `key` and `range_end` in place with [`range`](Self::range).
    pub fn prefix_range(&self, key: &mut Bytes, range_end: &mut Bytes) {
        (*key, *range_end) = self.range(key, range_end);
    }

    /// Removes the prefix from `key` in place, without copying; returns false (and leaves
    /// the key alone) when the key is not in the namespace.
    pub fn strip(&self, key: &mut Bytes) -> bool {
        if key.starts_with(&self.prefix) {
            key.advance(self.prefix.len());
            true
        } else {
            false
        }
    }

    /// Whether `key` (as stored on the server) belongs to the namespace.
    pub fn contains(&self, key: &[u8]) -> bool {
        key.starts_with(&self.prefix)
    }
}

/// A request whose keys a [`Namespace`](super::Namespace) moves into its prefix before
/// sending.
///
/// Implemented for every KV request (including the compares and operations of nested
/// transactions), the lease requests (which carry no keys), the request streams of
/// watches (whose creation requests are rewritten as they are sent) and lease
/// keep-alives (unchanged), and the requests of the `Lock` and `Election` services (lock
/// and election names, and the keys they hand out).
pub trait PrefixKeys {
    /// Rewrites the keys of `self` into `prefix`'s namespace.
    fn prefix_keys(&mut self, prefix: &Prefix);
}

/// A response from which a [`Namespace`](super::Namespace) removes its prefix before
/// returning it.
///
/// Implemented for every KV response (`kvs`, `prev_kv`, `prev_kvs`, nested transaction
/// results), the lease responses (a time-to-live's `keys` keeps only the keys of the
/// namespace), the response streams of watches (event `kv` and `prev_kv`) and lease
/// keep-alives (unchanged), and the responses of the `Lock` and `Election` services
/// (lock keys, leader keys and leader key-values, also on an observe stream).
pub trait StripKeys {
    /// Removes `prefix` from the keys of `self`.
    fn strip_keys(&mut self, prefix: &Prefix);
}

/// Messages without keys.
macro_rules! no_keys {
    ($trait:ident, $method:ident: $($ty:ty),+ $(,)?) => {
        $(
            impl $trait for $ty {
                #[inline]
                fn $method(&mut self, _prefix: &Prefix) {}
            }
        )+
    };
}

no_keys!(
    PrefixKeys,
    prefix_keys: pb::CompactionRequest,
    pb::LeaseGrantRequest,
    pb::LeaseRevokeRequest,
    pb::LeaseTimeToLiveRequest,
    pb::LeaseLeasesRequest,
    pb::LeaseKeepAliveRequest,
    RequestStream<pb::LeaseKeepAliveRequest>,
);

no_keys!(
    StripKeys,
    strip_keys: pb::CompactionResponse,
    pb::LeaseGrantResponse,
    pb::LeaseRevokeResponse,
    pb::LeaseLeasesResponse,
    pb::LeaseKeepAliveResponse,
    ResponseStream<pb::LeaseKeepAliveResponse>,
    lock::UnlockResponse,
    election::ResignResponse,
    election::ProclaimResponse,
);

impl PrefixKeys for pb::RangeRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        prefix.prefix_range(&mut self.key, &mut self.range_end);
    }
}

impl PrefixKeys for pb::PutRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        self.key = prefix.key(&self.key);
    }
}

impl PrefixKeys for pb::DeleteRangeRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        prefix.prefix_range(&mut self.key, &mut self.range_end);
    }
}

impl PrefixKeys for pb::Compare {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        prefix.prefix_range(&mut self.key, &mut self.range_end);
    }
}

impl PrefixKeys for pb::RequestOp {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        use pb::request_op::Request;
        match &mut self.request {
            Some(Request::RequestRange(r)) => r.prefix_keys(prefix),
            Some(Request::RequestPut(r)) => r.prefix_keys(prefix),
            Some(Request::RequestDeleteRange(r)) => r.prefix_keys(prefix),
            Some(Request::RequestTxn(r)) => r.prefix_keys(prefix),
            None => {}
        }
    }
}

impl PrefixKeys for pb::TxnRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        for compare in &mut self.compare {
            compare.prefix_keys(prefix);
        }
        for op in self.success.iter_mut().chain(&mut self.failure) {
            op.prefix_keys(prefix);
        }
    }
}

impl PrefixKeys for pb::WatchCreateRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        prefix.prefix_range(&mut self.key, &mut self.range_end);
    }
}

impl PrefixKeys for pb::WatchRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        if let Some(pb::watch_request::RequestUnion::CreateRequest(create)) =
            &mut self.request_union
        {
            create.prefix_keys(prefix);
        }
    }
}

impl PrefixKeys for RequestStream<pb::WatchRequest> {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        if prefix.is_empty() {
            return;
        }
        let prefix = prefix.clone();
        let requests = std::mem::replace(self, futures_util::stream::empty().boxed());
        *self = requests
            .map(move |mut request| {
                request.prefix_keys(&prefix);
                request
            })
            .boxed();
    }
}

impl StripKeys for mvccpb::KeyValue {
    fn strip_keys(&mut self, prefix: &Prefix) {
        prefix.strip(&mut self.key);
    }
}

impl<T: StripKeys> StripKeys for Option<T> {
    fn strip_keys(&mut self, prefix: &Prefix) {
        if let Some(inner) = self {
            inner.strip_keys(prefix);
        }
    }
}

impl<T: StripKeys> StripKeys for Vec<T> {
    fn strip_keys(&mut self, prefix: &Prefix) {
        for item in self {
            item.strip_keys(prefix);
        }
    }
}

impl StripKeys for pb::RangeResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        self.kvs.strip_keys(prefix);
    }
}

impl StripKeys for pb::PutResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        self.prev_kv.strip_keys(prefix);
    }
}

impl StripKeys for pb::DeleteRangeResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        self.prev_kvs.strip_keys(prefix);
    }
}

impl StripKeys for pb::ResponseOp {
    fn strip_keys(&mut self, prefix: &Prefix) {
        use pb::response_op::Response;
        match &mut self.response {
            Some(Response::ResponseRange(r)) => r.strip_keys(prefix),
            Some(Response::ResponsePut(r)) => r.strip_keys(prefix),
            Some(Response::ResponseDeleteRange(r)) => r.strip_keys(prefix),
            Some(Response::ResponseTxn(r)) => r.strip_keys(prefix),
            None => {}
        }
    }
}

impl StripKeys for pb::TxnResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        self.responses.strip_keys(prefix);
    }
}

/// A lease may hold keys of several namespaces; only this namespace's are listed.
impl StripKeys for pb::LeaseTimeToLiveResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        if prefix.is_empty() {
            return;
        }
        self.keys.retain_mut(|key| prefix.strip(key));
    }
}

impl StripKeys for mvccpb::Event {
    fn strip_keys(&mut self, prefix: &Prefix) {
        self.kv.strip_keys(prefix);
        self.prev_kv.strip_keys(prefix);
    }
}

impl StripKeys for pb::WatchResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        self.events.strip_keys(prefix);
    }
}

/// Makes each response of `stream` lose the prefix as it arrives (nothing to do for an
/// empty prefix).
fn strip_each<T: StripKeys + Send + 'static>(stream: &mut ResponseStream<T>, prefix: &Prefix) {
    if prefix.is_empty() {
        return;
    }
    let prefix = prefix.clone();
    let responses = std::mem::replace(stream, futures_util::stream::empty().boxed());
    *stream = responses
        .map(move |mut response| {
            if let Ok(response) = &mut response {
                response.strip_keys(&prefix);
            }
            response
        })
        .boxed();
}

impl StripKeys for ResponseStream<pb::WatchResponse> {
    fn strip_keys(&mut self, prefix: &Prefix) {
        strip_each(self, prefix);
    }
}

impl PrefixKeys for lock::LockRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        self.name = prefix.key(&self.name);
    }
}

impl StripKeys for lock::LockResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        prefix.strip(&mut self.key);
    }
}

impl PrefixKeys for lock::UnlockRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        self.key = prefix.key(&self.key);
    }
}

impl PrefixKeys for election::LeaderKey {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        self.name = prefix.key(&self.name);
        self.key = prefix.key(&self.key);
    }
}

impl StripKeys for election::LeaderKey {
    fn strip_keys(&mut self, prefix: &Prefix) {
        prefix.strip(&mut self.name);
        prefix.strip(&mut self.key);
    }
}

impl PrefixKeys for election::CampaignRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        self.name = prefix.key(&self.name);
    }
}

impl StripKeys for election::CampaignResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        self.leader.strip_keys(prefix);
    }
}

impl PrefixKeys for election::ProclaimRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        if let Some(leader) = &mut self.leader {
            leader.prefix_keys(prefix);
        }
    }
}

impl PrefixKeys for election::ResignRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        if let Some(leader) = &mut self.leader {
            leader.prefix_keys(prefix);
        }
    }
}

/// The request of both `Leader` and `Observe`.
impl PrefixKeys for election::LeaderRequest {
    fn prefix_keys(&mut self, prefix: &Prefix) {
        self.name = prefix.key(&self.name);
    }
}

impl StripKeys for election::LeaderResponse {
    fn strip_keys(&mut self, prefix: &Prefix) {
        self.kv.strip_keys(prefix);
    }
}

/// The answer to `Observe`: one leader response per change of leader.
impl StripKeys for ResponseStream<election::LeaderResponse> {
    fn strip_keys(&mut self, prefix: &Prefix) {
        strip_each(self, prefix);
    }
}
