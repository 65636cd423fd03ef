//! What a watch delivers: responses of events at one or more revisions.

use std::fmt;

use etcd_core::kv::{KeyValue, ResponseHeader};
use etcd_proto::{etcdserverpb as pb, mvccpb};

/// The client-side identity of a watch. It stays the same when the watch is resumed on a
/// new stream (where the server gives it a new id of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(pub(crate) u64);

impl WatchId {
    /// The number behind the id (unique within one [`Watcher`](crate::Watcher)).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for WatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "watch#{}", self.0)
    }
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted (or its lease expired).
    Delete,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    kind: EventKind,
    kv: KeyValue,
    prev_kv: Option<KeyValue>,
}

impl Event {
    /// What happened.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// The key after the change. For a delete only the key and the modification revision
    /// are meaningful.
    pub fn kv(&self) -> &KeyValue {
        &self.kv
    }

    /// The key before the change, when the watch asked for it
    /// ([`prev_kv`](crate::Watch::prev_kv)) and the key existed. It may be missing when the
    /// previous version was compacted.
    pub fn prev_kv(&self) -> Option<&KeyValue> {
        self.prev_kv.as_ref()
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        self.kv.key()
    }

    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision()
    }

    /// True for a put that created the key (its first version).
    pub fn is_create(&self) -> bool {
        self.kind == EventKind::Put && self.kv.version() == 1
    }

    /// Takes the event apart: kind, key-value after the change, key-value before it.
    pub fn into_parts(self) -> (EventKind, KeyValue, Option<KeyValue>) {
        (self.kind, self.kv, self.prev_kv)
    }
}

impl From<mvccpb::Event> for Event {
    fn from(event: mvccpb::Event) -> Self {
        let kind = if event.r#type == mvccpb::event::EventType::Delete as i32 {
            EventKind::Delete
        } else {
            EventKind::Put
        };
        Self {
            kind,
            kv: event.kv.map(KeyValue::from).unwrap_or_default(),
            prev_kv: event.prev_kv.map(KeyValue::from),
        }
    }
}

/// What a response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Events,
    /// `requested`: the answer to a progress request, not the watch's own notification.
    Progress {
        requested: bool,
    },
    Created,
}

/// One delivery of a watch: all events of one or more whole revisions, a progress
/// notification, or (when asked for) the notice that the watch was created.
///
/// Events of one revision are never split over two responses: the fragments of a large
/// response are delivered by whole revisions as they arrive (a revision split over two
/// fragments is held until both are in). Keys and values share the buffer the message was
/// decoded from.
#[derive(Clone, Debug)]
pub struct WatchResponse {
    watch_id: WatchId,
    header: ResponseHeader,
    events: Vec<Event>,
    kind: Kind,
}

impl WatchResponse {
    pub(crate) fn events_from(
        id: WatchId,
        header: Option<pb::ResponseHeader>,
        events: Vec<Event>,
    ) -> Self {
        Self {
            watch_id: id,
            header: header.into(),
            events,
            kind: Kind::Events,
        }
    }

    pub(crate) fn progress(
        id: WatchId,
        header: Option<pb::ResponseHeader>,
        requested: bool,
    ) -> Self {
        Self {
            watch_id: id,
            header: header.into(),
            events: Vec::new(),
            kind: Kind::Progress { requested },
        }
    }

    pub(crate) fn created(id: WatchId, header: Option<pb::ResponseHeader>) -> Self {
        Self {
            watch_id: id,
            header: header.into(),
            events: Vec::new(),
            kind: Kind::Created,
        }
    }

    /// The watch this response belongs to.
    pub fn watch_id(&self) -> WatchId {
        self.watch_id
    }

    /// The header of the (last) message this response was made of.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The store revision in the header. For a progress notification: every event of the
    /// watch up to this revision has been delivered (for an answer to a progress request,
    /// only on etcd ≥ 3.4.25 / 3.5.8: see [`is_requested_progress`](Self::is_requested_progress)).
    pub fn revision(&self) -> i64 {
        self.header.revision
    }

    /// The events, ordered by revision.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Takes the events out.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// True for a progress notification (no events; the watch has delivered everything up
    /// to [`revision`](Self::revision)).
    pub fn is_progress_notify(&self) -> bool {
        matches!(self.kind, Kind::Progress { .. })
    }

    /// True for a progress notification that answers
    /// [`request_progress`](crate::Watcher::request_progress), rather than one the watch
    /// received by itself (with [`progress_notify`](crate::Watch::progress_notify)).
    ///
    /// etcd before 3.4.25 and 3.5.8 answers a progress request at once with the store's
    /// revision, even while a watch is still sending older events (etcd #15220): events
    /// at or below such a notification's revision may still follow. They are delivered,
    /// and such a notification does not move the watch's resume point, so nothing is lost
    /// when the stream breaks. The watch's own notifications are exact bookmarks.
    pub fn is_requested_progress(&self) -> bool {
        self.kind == Kind::Progress { requested: true }
    }

    /// True for the creation notice a watch with
    /// [`created_notify`](crate::Watch::created_notify) receives first.
    pub fn is_created(&self) -> bool {
        self.kind == Kind::Created
    }
}
