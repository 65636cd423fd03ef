//! The watch request builder.

use bytes::Bytes;
use etcd_core::key::{IntoBytes, KeyRange};
use etcd_core::{InvalidRequest, Result};
use etcd_proto::etcdserverpb as pb;
use pb::watch_create_request::FilterType;

/// A watch of a key or a range of keys, with its options.
///
/// From [`Watcher::watch`](crate::Watcher::watch) it is awaited to start the watch; on its
/// own (`Watch::key(..)`, or a [`KeyRange`] converted with `into()`) it is added to a
/// [`WatchGroup`](crate::WatchGroup).
#[derive(Clone, Debug)]
#[must_use = "a watch does nothing until it is awaited or added to a group"]
pub struct Watch<C = ()> {
    client: C,
    pub(crate) spec: Spec,
}

/// Everything about a watch but the client it goes to.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) range: KeyRange,
    pub(crate) start_revision: i64,
    pub(crate) prev_kv: bool,
    pub(crate) progress_notify: bool,
    pub(crate) no_put: bool,
    pub(crate) no_delete: bool,
    pub(crate) fragment: bool,
    pub(crate) created_notify: bool,
    pub(crate) buffer: Option<usize>,
}

impl Watch {
    /// A watch of one key, from now on.
    pub fn key(key: impl IntoBytes) -> Self {
        Self::range(KeyRange::key(key))
    }

    /// A watch of a range of keys, from now on.
    pub fn range(range: KeyRange) -> Self {
        Self {
            client: (),
            spec: Spec {
                range,
                start_revision: 0,
                prev_kv: false,
                progress_notify: false,
                no_put: false,
                no_delete: false,
                fragment: false,
                created_notify: false,
                buffer: None,
            },
        }
    }

    /// A watch of every key, from now on.
    pub fn all() -> Self {
        Self::range(KeyRange::all())
    }
}

impl From<KeyRange> for Watch {
    fn from(range: KeyRange) -> Self {
        Self::range(range)
    }
}

impl<C> Watch<C> {
    pub(crate) fn with_client<D>(self, client: D) -> Watch<D> {
        Watch {
            client,
            spec: self.spec,
        }
    }

    pub(crate) fn into_parts(self) -> (C, Spec) {
        (self.client, self.spec)
    }

    /// Watches every key that starts with the given key (every key, when it is empty).
    pub fn prefix(mut self) -> Self {
        self.spec.range = KeyRange::prefix(self.spec.range.start().clone());
        self
    }

    /// Watches every key from the given key on.
    #[allow(clippy::wrong_self_convention)] // etcd calls this option "from key"
    pub fn from_key(mut self) -> Self {
        self.spec.range = KeyRange::from_key(self.spec.range.start().clone());
        self
    }

    /// Watches the keys in `[key, end)`.
    pub fn range_end(mut self, end: impl IntoBytes) -> Self {
        self.spec.range = KeyRange::range(self.spec.range.start().clone(), end);
        self
    }

    /// Delivers events from `revision` on (history included, as far as it is not
    /// compacted). 0 means "from now": events after the watch is created.
    pub fn from_revision(mut self, revision: i64) -> Self {
        self.spec.start_revision = revision;
        self
    }

    /// Delivers only events after the watch is created (the default).
    pub fn from_now(mut self) -> Self {
        self.spec.start_revision = 0;
        self
    }

    /// Includes each key's previous value in its events.
    pub fn prev_kv(mut self) -> Self {
        self.spec.prev_kv = true;
        self
    }

    /// Asks the server for periodic progress notifications while no events come (every
    /// 10 minutes by default; `--experimental-watch-progress-notify-interval` sets it).
    pub fn progress_notify(mut self) -> Self {
        self.spec.progress_notify = true;
        self
    }

    /// Leaves out put events.
    pub fn no_put(mut self) -> Self {
        self.spec.no_put = true;
        self
    }

    /// Leaves out delete events.
    pub fn no_delete(mut self) -> Self {
        self.spec.no_delete = true;
        self
    }

    /// Lets the server split very large responses into fragments (of its
    /// `--max-request-bytes`). They are delivered as they arrive, by whole revisions: a
    /// revision split over two fragments is held until both are in.
    pub fn fragment(mut self) -> Self {
        self.spec.fragment = true;
        self
    }

    /// Delivers a [`WatchResponse`](crate::WatchResponse) with
    /// [`is_created`](crate::WatchResponse::is_created) first, once the server has created
    /// the watch (not again when it is resumed).
    pub fn created_notify(mut self) -> Self {
        self.spec.created_notify = true;
        self
    }

    /// How many bytes of responses may wait for the consumer of this watch (a
    /// [`WatchStream`](crate::WatchStream) only); the watcher's default otherwise (see
    /// [`Watcher::with_buffer_bytes`](crate::Watcher::with_buffer_bytes)). See
    /// [the crate docs](crate#backpressure) for what happens when they fill up.
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.spec.buffer = Some(bytes);
        self
    }
}

impl Spec {
    /// Checks the options.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.range.start().is_empty() {
            return Err(InvalidRequest::EmptyKey.into());
        }
        if self.start_revision < 0 {
            return Err(InvalidRequest::NegativeRevision(self.start_revision).into());
        }
        if self.buffer == Some(0) {
            return Err(InvalidRequest::OutOfRange {
                what: "watch buffer",
                value: 0,
            }
            .into());
        }
        Ok(())
    }

    /// The creation message, starting at `start_revision` (0: now).
    pub(crate) fn create_request(&self, start_revision: i64) -> pb::WatchRequest {
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if self.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        let key: Bytes = self.range.start().clone();
        pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key,
                    range_end: self.range.end().clone(),
                    start_revision,
                    progress_notify: self.progress_notify,
                    filters,
                    prev_kv: self.prev_kv,
                    watch_id: 0,
                    fragment: self.fragment,
                },
            )),
        }
    }
}
