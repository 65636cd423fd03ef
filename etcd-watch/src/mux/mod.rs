//! Many watches over one gRPC stream, resumed on a new stream whenever it breaks.
//!
//! One background task per [`Watcher`](crate::Watcher) owns the stream and every watch's
//! state. Users talk to it through [`Command`]s; it talks to them through each watch's
//! [`Sink`]. The design follows etcd's Go client (`client/v3/watch.go`, `watchGRPCStream`):
//!
//! * creation replies are matched to creation requests in the order they were sent, never
//!   by watch id (etcd 3.5.1 answers a refused creation with id 0);
//! * each watch keeps the revision to resume from: last delivered event + 1, progress
//!   revision + 1, or the creation header's revision + 1 for a "from now" watch; it never
//!   goes down, and events at or below the last delivered one (a server re-sending
//!   history) are dropped; an event between the last delivered one and a later progress
//!   revision (etcd #15220) is still delivered rather than lost;
//! * a stream that ends or fails is reopened (the service is called again, which a failover
//!   service sends to the next healthy member) after a backoff, and every live watch is
//!   created again from its resume revision.

mod responses;
mod sink;
mod stream;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use etcd_core::layer::Backoff;
use etcd_core::stream::ReopeningStream;
use etcd_core::watch::WatchService;
use etcd_proto::etcdserverpb as pb;
use futures_util::future::BoxFuture;
use pb::watch_request::RequestUnion;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::event::{Event, WatchId, WatchResponse};
use crate::options::Spec;
use crate::queue;

/// One item of a single watch's stream.
pub(crate) type Item = Result<WatchResponse, Error>;
/// One item of a group's stream.
pub(crate) type GroupItem = (WatchId, Item);

/// The bytes of responses that may wait for one consumer unless set otherwise.
pub(crate) const DEFAULT_BUFFER_BYTES: usize = 8 << 20;

/// Settings of a watcher's background task.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// The bytes of responses that may wait for one consumer (see [`queue`]).
    pub(crate) buffer: usize,
    /// The pause before reopening a broken stream, after each failure in a row.
    pub(crate) backoff: Backoff,
    /// How long creating a watch may take, until the server's created reply.
    pub(crate) create_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            // A burst at tens of thousands of responses a second, or a consumer descheduled
            // for a few milliseconds, must not pause a watch (which costs the server a
            // re-sync); the queue only allocates what is buffered.
            buffer: DEFAULT_BUFFER_BYTES,
            backoff: Backoff::new(Duration::from_millis(20), Duration::from_secs(2)),
            create_timeout: None,
        }
    }
}

/// Gets a new auth token for the watch stream (see [`Watcher::with_reauthentication`](crate::Watcher::with_reauthentication)):
/// resolves to `true` when the new token is worth a retry.
pub type Reauthenticate = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// What the handles ask of the task.
pub(crate) enum Command {
    /// Start a watch; answer on `created` once the server has created it.
    Create {
        id: WatchId,
        spec: Spec,
        sink: Sink,
        created: oneshot::Sender<Result<(), Error>>,
    },
    /// Stop a watch (cancelling it on the server at once).
    Cancel {
        id: WatchId,
        done: Option<oneshot::Sender<()>>,
    },
    /// Ask the server for a progress notification on the current stream.
    Progress { done: oneshot::Sender<()> },
    /// A paused watch's consumer has made room: create it again.
    Drained { id: WatchId },
}

/// Where a watch's responses go.
#[derive(Clone, Debug)]
pub(crate) enum Sink {
    /// A [`WatchStream`](crate::WatchStream) of its own.
    Single(queue::Sender<Item>),
    /// The shared stream of a [`WatchGroup`](crate::WatchGroup), tagged with the watch id.
    Group(queue::Sender<GroupItem>),
}

/// Where a watch stands with respect to the current stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// To be created on the next (or current) stream.
    Queued,
    /// Creation sent; its reply has not come yet.
    Creating,
    /// Created; the server knows it by this id.
    Active(i64),
    /// Cancelled on the server because its consumer fell behind; waits for room.
    Paused,
}

/// One watch, as the task knows it.
struct WatchState {
    spec: Spec,
    sink: Sink,
    phase: Phase,
    /// The revision to resume from; 0 for a "from now" watch not created yet.
    next_rev: i64,
    /// Events below this are never delivered (already delivered, or before the start).
    min_event_rev: i64,
    /// Answers the `watch()` call on the first creation.
    created: Option<oneshot::Sender<Result<(), Error>>>,
    /// The events of a fragmented response not delivered yet: those of its last revision
    /// seen so far, which may go on in the next fragment.
    fragments: Option<pb::WatchResponse>,
    /// Refused on auth grounds since it was last created, and retried with a new token.
    auth_retried: bool,
    /// Compaction errors that did not concern the watch (see [`MAX_SPURIOUS_COMPACTIONS`]).
    spurious_compactions: u8,
}

/// How often a watch is created again after a compaction error for revisions it no longer
/// needs. etcd decides "compacted" when a watch's next revision is below the compaction
/// revision; a member that caught up from a snapshot may nevertheless end watches whose
/// next revision is above it (seen on 3.4.23 and 3.5.1). Such a watch lost nothing and is
/// created again from its resume revision; only repeated refusals end it.
const MAX_SPURIOUS_COMPACTIONS: u8 = 3;

/// The background task of one watcher.
pub(crate) struct Mux<S> {
    service: S,
    config: Config,
    commands: mpsc::UnboundedReceiver<Command>,
    /// For the tasks that wait for a paused watch's consumer; weak, so that the task ends
    /// when every handle is gone.
    weak_commands: mpsc::WeakUnboundedSender<Command>,
    watches: HashMap<WatchId, WatchState>,
    /// Watches to create on the current (or next) stream, in order.
    queued: VecDeque<WatchId>,
    /// Creation requests sent on the current stream, oldest first; `None` for a watch
    /// removed before its reply came (cancelled on the server when the reply comes).
    creating: VecDeque<Option<WatchId>>,
    /// The current stream's server ids.
    by_server: HashMap<i64, WatchId>,
    /// Server ids cancelled by us whose responses are ignored.
    ignored: HashSet<i64>,
    stream: ReopeningStream<pb::WatchRequest, pb::WatchResponse>,
    /// Reopenings in a row without a watch created in between.
    failures: u32,
    /// Gets a new auth token (see `Watcher::with_reauthentication`).
    reauth: Option<Reauthenticate>,
    /// The next stream is opened after getting a new token.
    reauth_next: bool,
    /// The last watch id requested of the server.
    next_server_id: i64,
}

impl<S: WatchService> Mux<S> {
    pub(crate) fn new(
        service: S,
        config: Config,
        commands: mpsc::UnboundedReceiver<Command>,
        weak_commands: mpsc::WeakUnboundedSender<Command>,
    ) -> Self {
        Self {
            service,
            config,
            commands,
            weak_commands,
            watches: HashMap::new(),
            queued: VecDeque::new(),
            creating: VecDeque::new(),
            by_server: HashMap::new(),
            ignored: HashSet::new(),
            stream: ReopeningStream::new(),
            failures: 0,
            reauth: None,
            reauth_next: false,
            next_server_id: 0,
        }
    }

    /// Sets how a new auth token is obtained.
    pub(crate) fn with_reauth(mut self, reauth: Option<Reauthenticate>) -> Self {
        self.reauth = reauth;
        self
    }

    /// Runs until every handle (watcher, stream, group) is gone.
    pub(crate) async fn run(mut self) {
        loop {
            self.pump();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                event = self.stream.next_event() => self.stream_event(event),
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Create {
                id,
                spec,
                sink,
                created,
            } => {
                let next_rev = spec.start_revision;
                self.watches.insert(
                    id,
                    WatchState {
                        min_event_rev: next_rev,
                        spec,
                        sink,
                        phase: Phase::Queued,
                        next_rev,
                        created: Some(created),
                        fragments: None,
                        auth_retried: false,
                        spurious_compactions: 0,
                    },
                );
                self.queued.push_back(id);
            }
            Command::Cancel { id, done } => {
                self.remove(id);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Progress { done } => {
                self.send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}));
                let _ = done.send(());
            }
            Command::Drained { id } => {
                if let Some(watch) = self.watches.get_mut(&id)
                    && watch.phase == Phase::Paused
                {
                    tracing::debug!(%id, from = watch.next_rev, "consumer caught up: resuming the watch");
                    watch.phase = Phase::Queued;
                    self.queued.push_back(id);
                }
            }
        }
    }

    /// Forgets a watch, cancelling it on the server if it is there.
    fn remove(&mut self, id: WatchId) -> Option<WatchState> {
        let watch = self.watches.remove(&id)?;
        match watch.phase {
            Phase::Active(server_id) => {
                self.by_server.remove(&server_id);
                self.send_cancel(server_id);
            }
            Phase::Creating => {
                if let Some(slot) = self.creating.iter_mut().find(|slot| **slot == Some(id)) {
                    *slot = None;
                }
            }
            Phase::Queued | Phase::Paused => {}
        }
        Some(watch)
    }

    /// Ends a watch with an error (the server has already dropped it, or never made it).
    fn end(&mut self, id: WatchId, error: Error) {
        let Some(mut watch) = self.watches.remove(&id) else {
            return;
        };
        if let Phase::Active(server_id) = watch.phase {
            self.by_server.remove(&server_id);
        }
        tracing::debug!(%id, %error, "watch ended");
        match watch.created.take() {
            Some(created) => {
                let _ = created.send(Err(error));
            }
            None => watch.sink.send_last(id, error),
        }
    }
}
