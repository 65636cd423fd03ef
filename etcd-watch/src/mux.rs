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

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::time::Duration;

use etcd_core::stream::{RequestStream, ResponseStream};
use etcd_core::watch::WatchService;
use etcd_core::{Error as CoreError, ServerErrorKind};
use etcd_proto::etcdserverpb as pb;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use pb::watch_request::RequestUnion;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

use crate::error::Error;
use crate::event::{Event, WatchId, WatchResponse};
use crate::options::Spec;

/// One item of a single watch's stream.
pub(crate) type Item = Result<WatchResponse, Error>;
/// One item of a group's stream.
pub(crate) type GroupItem = (WatchId, Item);

/// Settings of a watcher's background task.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) buffer: usize,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    /// How long creating a watch may take, until the server's created reply.
    pub(crate) create_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            // A burst at tens of thousands of responses a second, or a consumer descheduled
            // for a few milliseconds, must not pause a watch (which costs the server a
            // re-sync); the channel only allocates what is buffered.
            buffer: 1024,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
            create_timeout: None,
        }
    }
}

/// The pause before reopening a broken stream, for a backoff of `backoff`: equal jitter,
/// uniform in `[backoff / 2, backoff]`, so that watchers broken together (a member
/// restarted under many clients) do not all come back at the same instant.
fn reconnect_pause(backoff: Duration) -> Duration {
    etcd_core::jitter::equal(backoff)
}

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
    Single(mpsc::Sender<Item>),
    /// The shared stream of a [`WatchGroup`](crate::WatchGroup), tagged with the watch id.
    Group(mpsc::Sender<GroupItem>),
}

/// Why an item could not be delivered now.
enum Refused {
    Full,
    Closed,
}

impl Sink {
    fn try_send(&self, id: WatchId, item: Item) -> Result<(), Refused> {
        use mpsc::error::TrySendError;
        let result = match self {
            Sink::Single(tx) => tx
                .try_send(item)
                .map_err(|e| matches!(e, TrySendError::Full(_))),
            Sink::Group(tx) => tx
                .try_send((id, item))
                .map_err(|e| matches!(e, TrySendError::Full(_))),
        };
        result.map_err(|full| if full { Refused::Full } else { Refused::Closed })
    }

    /// Delivers a terminal error: at once when there is room, else from a task of its own,
    /// after the items already waiting.
    fn send_last(self, id: WatchId, error: Error) {
        match self {
            Sink::Single(tx) => {
                if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send(Err(error)) {
                    tokio::spawn(async move {
                        let _ = tx.send(item).await;
                    });
                }
            }
            Sink::Group(tx) => {
                if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send((id, Err(error))) {
                    tokio::spawn(async move {
                        let _ = tx.send(item).await;
                    });
                }
            }
        }
    }

    /// Resolves to `true` once half the buffer is free again, `false` when the consumer
    /// has gone away.
    fn drained(self) -> BoxFuture<'static, bool> {
        match self {
            Sink::Single(tx) => {
                let n = tx.max_capacity().div_ceil(2);
                async move { tx.reserve_many(n).await.is_ok() }.boxed()
            }
            Sink::Group(tx) => {
                let n = tx.max_capacity().div_ceil(2);
                async move { tx.reserve_many(n).await.is_ok() }.boxed()
            }
        }
    }
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

/// The stream, as far as it exists.
enum Conn {
    /// No stream (no watch needs one).
    Idle,
    /// Waiting before reopening a broken stream.
    Backoff(Pin<Box<tokio::time::Sleep>>),
    /// The service was called; requests are queued on `requests` meanwhile.
    Opening {
        requests: mpsc::UnboundedSender<pb::WatchRequest>,
        opening: BoxFuture<'static, Result<ResponseStream<pb::WatchResponse>, CoreError>>,
    },
    /// The stream is up.
    Open {
        requests: mpsc::UnboundedSender<pb::WatchRequest>,
        responses: ResponseStream<pb::WatchResponse>,
    },
}

/// What happened to the stream.
enum ConnEvent {
    BackoffDone,
    Opened(Result<ResponseStream<pb::WatchResponse>, CoreError>),
    Response(pb::WatchResponse),
    Broken(Option<CoreError>),
}

impl Conn {
    fn requests(&self) -> Option<&mpsc::UnboundedSender<pb::WatchRequest>> {
        match self {
            Conn::Opening { requests, .. } | Conn::Open { requests, .. } => Some(requests),
            _ => None,
        }
    }

    async fn next(&mut self) -> ConnEvent {
        match self {
            Conn::Idle => std::future::pending().await,
            Conn::Backoff(sleep) => {
                sleep.as_mut().await;
                ConnEvent::BackoffDone
            }
            Conn::Opening { opening, .. } => ConnEvent::Opened(opening.await),
            Conn::Open { responses, .. } => match responses.next().await {
                Some(Ok(response)) => ConnEvent::Response(response),
                Some(Err(error)) => ConnEvent::Broken(Some(error)),
                None => ConnEvent::Broken(None),
            },
        }
    }
}

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
    conn: Conn,
    backoff: Duration,
    /// Gets a new auth token (see `Watcher::with_reauthentication`).
    reauth: Option<crate::watcher::Reauthenticate>,
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
            conn: Conn::Idle,
            backoff: config.backoff_initial,
            reauth: None,
            reauth_next: false,
            next_server_id: 0,
        }
    }

    /// Sets how a new auth token is obtained.
    pub(crate) fn with_reauth(mut self, reauth: Option<crate::watcher::Reauthenticate>) -> Self {
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
                event = self.conn.next() => self.conn_event(event),
            }
        }
    }

    /// Opens a stream when watches wait for one, and sends their creation requests.
    fn pump(&mut self) {
        while let Some(id) = self.queued.front() {
            match self.watches.get(id) {
                Some(watch) if watch.phase == Phase::Queued => break,
                _ => {
                    self.queued.pop_front();
                }
            }
        }
        if self.queued.is_empty() {
            if self.watches.is_empty() && !matches!(self.conn, Conn::Idle | Conn::Backoff(_)) {
                tracing::debug!("no watches left: closing the watch stream");
                self.close_stream();
            }
            return;
        }
        if matches!(self.conn, Conn::Idle) {
            let (requests, rx) = mpsc::unbounded_channel();
            let mut rx = rx;
            let outgoing: RequestStream<pb::WatchRequest> =
                futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
            let open = self
                .service
                .clone()
                .oneshot(outgoing)
                .map(|result| result.map_err(|e| CoreError::from_boxed(e.into())));
            let opening = match (&self.reauth, std::mem::take(&mut self.reauth_next)) {
                (Some(reauth), true) => {
                    tracing::debug!("getting a new auth token before reopening the watch stream");
                    reauth().then(move |_| open).boxed()
                }
                _ => open.boxed(),
            };
            tracing::debug!(watches = self.watches.len(), "opening a watch stream");
            self.conn = Conn::Opening { requests, opening };
        }
        let Some(requests) = self.conn.requests() else {
            return; // backing off
        };
        while let Some(id) = self.queued.pop_front() {
            let Some(watch) = self.watches.get_mut(&id) else {
                continue;
            };
            if watch.phase != Phase::Queued {
                continue;
            }
            let mut request = watch.spec.create_request(watch.next_rev);
            if let Some(RequestUnion::CreateRequest(create)) = &mut request.request_union {
                // An id of our own, never reused: etcd 3.5.1 answers a creation refused on
                // auth grounds with the *requested* id, which, left to the server (0), is
                // the id of the stream's first watch, and that watch then stops receiving
                // events (etcd #12385).
                self.next_server_id += 1;
                create.watch_id = self.next_server_id;
            }
            let _ = requests.send(request);
            watch.phase = Phase::Creating;
            self.creating.push_back(Some(id));
        }
    }

    fn close_stream(&mut self) {
        self.conn = Conn::Idle;
        self.creating.clear();
        self.by_server.clear();
        self.ignored.clear();
    }

    fn send(&self, request: RequestUnion) {
        if let Some(requests) = self.conn.requests() {
            let _ = requests.send(pb::WatchRequest {
                request_union: Some(request),
            });
        }
    }

    fn send_cancel(&mut self, server_id: i64) {
        self.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
            watch_id: server_id,
        }));
        self.ignored.insert(server_id);
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

    fn conn_event(&mut self, event: ConnEvent) {
        match event {
            ConnEvent::BackoffDone => self.conn = Conn::Idle,
            ConnEvent::Opened(Ok(responses)) => {
                let Conn::Opening { requests, .. } = std::mem::replace(&mut self.conn, Conn::Idle)
                else {
                    unreachable!("opened while not opening");
                };
                self.conn = Conn::Open {
                    requests,
                    responses,
                };
            }
            ConnEvent::Opened(Err(error)) => self.broken(Some(error)),
            ConnEvent::Broken(error) => self.broken(error),
            ConnEvent::Response(response) => self.response(response),
        }
    }

    /// The stream failed: queue every watch for the next one, or end them all when the
    /// member has no leader (require-leader streams).
    fn broken(&mut self, error: Option<CoreError>) {
        self.close_stream();
        if let Some(error) = &error
            && crate::error::is_auth_refusal(error.server_kind())
        {
            self.reauth_next = true;
        }
        if let Some(error) = &error
            && error.server_kind() == Some(ServerErrorKind::NoLeader)
        {
            tracing::info!("watch stream closed: the member has no leader");
            let ids: Vec<WatchId> = self.watches.keys().copied().collect();
            for id in ids {
                self.end(id, Error::WatchNoLeader);
            }
            self.queued.clear();
            return;
        }
        match &error {
            Some(error) => {
                tracing::info!(%error, backoff = ?self.backoff, "watch stream broken; resuming")
            }
            None => tracing::info!(backoff = ?self.backoff, "watch stream ended; resuming"),
        }
        self.queued.clear();
        let mut ids: Vec<WatchId> = Vec::with_capacity(self.watches.len());
        for (id, watch) in &mut self.watches {
            watch.fragments = None;
            if watch.phase != Phase::Paused {
                watch.phase = Phase::Queued;
                ids.push(*id);
            }
        }
        ids.sort_unstable();
        self.queued.extend(ids);
        if !self.watches.is_empty() {
            let pause = reconnect_pause(self.backoff);
            self.conn = Conn::Backoff(Box::pin(tokio::time::sleep(pause)));
            self.backoff = (self.backoff * 2).min(self.config.backoff_max);
        }
    }

    fn response(&mut self, response: pb::WatchResponse) {
        if response.created {
            self.created(response);
            return;
        }
        if response.watch_id == -1 && response.events.is_empty() && !response.canceled {
            // A requested progress notification: for every watch on the stream. etcd
            // before 3.4.25 / 3.5.8 answers it at once with the store's revision (#15220),
            // so it can overtake events at or below that revision still on their way: it
            // is delivered, but does not move the resume point.
            let ids: Vec<WatchId> = self.by_server.values().copied().collect();
            for id in ids {
                self.progress(id, response.header, true);
            }
            return;
        }
        let Some(&id) = self.by_server.get(&response.watch_id) else {
            if response.canceled {
                self.ignored.remove(&response.watch_id);
            } else if !self.ignored.contains(&response.watch_id) {
                tracing::debug!(
                    watch_id = response.watch_id,
                    "response for an unknown watch"
                );
            }
            return;
        };
        if response.canceled {
            self.by_server.remove(&response.watch_id);
            if response.compact_revision > 0
                && self.spurious_compaction(id, response.compact_revision)
            {
                return;
            }
            let error = if response.compact_revision > 0 {
                Error::WatchCompacted {
                    compact_revision: response.compact_revision,
                }
            } else {
                Error::WatchCanceled {
                    reason: response.cancel_reason,
                }
            };
            self.end(id, error);
            return;
        }
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        let response = if response.fragment {
            let pending = match &mut watch.fragments {
                Some(merged) => {
                    merged.events.extend(response.events);
                    merged.header = response.header;
                    merged
                }
                None => watch.fragments.insert(response),
            };
            // Deliver the revisions this fragment completed (all but the last one seen,
            // which may go on in the next fragment): memory stays bounded by a revision,
            // not by the whole response.
            let rev = |e: &etcd_proto::mvccpb::Event| e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            let last = pending.events.last().map_or(0, rev);
            let complete = pending.events.partition_point(|e| rev(e) < last);
            if complete > 0 {
                let tail = pending.events.split_off(complete);
                let done = std::mem::replace(&mut pending.events, tail);
                let partial = pb::WatchResponse {
                    events: done,
                    header: pending.header,
                    ..pb::WatchResponse::default()
                };
                self.events(id, partial);
            }
            return;
        } else if let Some(mut merged) = watch.fragments.take() {
            merged.events.extend(response.events);
            merged.header = response.header;
            merged
        } else {
            response
        };
        if response.events.is_empty() {
            self.progress(id, response.header, false);
        } else {
            self.events(id, response);
        }
    }

    /// A creation reply: matched with the oldest creation request in flight.
    /// A compaction error for a watch whose resume revision is not compacted: create it
    /// again from there (see [`MAX_SPURIOUS_COMPACTIONS`]). Returns whether it did.
    fn spurious_compaction(&mut self, id: WatchId, compact_revision: i64) -> bool {
        let Some(watch) = self.watches.get_mut(&id) else {
            return false;
        };
        let unaffected = watch.next_rev > 0 && watch.next_rev >= compact_revision;
        if !unaffected || watch.spurious_compactions >= MAX_SPURIOUS_COMPACTIONS {
            return false;
        }
        watch.spurious_compactions += 1;
        tracing::warn!(
            %id,
            compact_revision,
            resume_from = watch.next_rev,
            "the server ended a watch as compacted below its resume revision: creating it again"
        );
        watch.phase = Phase::Queued;
        watch.fragments = None;
        self.queued.push_back(id);
        true
    }

    fn created(&mut self, response: pb::WatchResponse) {
        let server_id = response.watch_id;
        let slot = match self.creating.pop_front() {
            Some(slot) => slot,
            None => {
                tracing::warn!(
                    watch_id = server_id,
                    "creation reply with no creation pending"
                );
                None
            }
        };
        let Some(id) = slot else {
            // Removed while being created.
            if !response.canceled {
                self.send_cancel(server_id);
            }
            return;
        };
        if response.canceled {
            let reason = if response.cancel_reason.is_empty() {
                "watch creation refused".to_owned()
            } else {
                response.cancel_reason
            };
            let error = Error::WatchCanceled { reason };
            if self.reauth.is_some()
                && crate::error::is_auth_refusal(error.server_kind())
                && let Some(watch) = self.watches.get_mut(&id)
                && !watch.auth_retried
            {
                // The token travels with the stream: get a new one, open a new stream, and
                // create every watch again there (the others resume without loss).
                tracing::debug!(%id, %error, "watch refused on auth grounds: re-authenticating");
                watch.auth_retried = true;
                self.reauth_next = true;
                self.broken(None);
                return;
            }
            self.end(id, error);
            return;
        }
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        self.backoff = self.config.backoff_initial;
        watch.phase = Phase::Active(server_id);
        watch.auth_retried = false;
        if watch.next_rev == 0 {
            // From now: everything after the revision the server created it at.
            let revision = response.header.map_or(0, |h| h.revision);
            watch.next_rev = revision + 1;
            watch.min_event_rev = revision + 1;
        }
        if let Some(created) = watch.created.take() {
            let _ = created.send(Ok(()));
            if watch.spec.created_notify {
                let _ = watch
                    .sink
                    .try_send(id, Ok(WatchResponse::created(id, response.header)));
            }
        }
        if self.by_server.insert(server_id, id).is_some() {
            tracing::warn!(watch_id = server_id, "server reused a live watch id");
        }
    }

    /// A progress notification for one watch: delivered when there is room (it is
    /// skipped otherwise). A notification of the watch's own (`progress_notify`, sent by
    /// the server in order with its events, and only once it has caught up) moves the
    /// resume point after its revision; a `requested` one (broadcast to the stream) does
    /// not, see etcd #15220.
    fn progress(&mut self, id: WatchId, header: Option<pb::ResponseHeader>, requested: bool) {
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        let revision = header.map_or(0, |h| h.revision);
        match watch
            .sink
            .try_send(id, Ok(WatchResponse::progress(id, header, requested)))
        {
            Ok(()) if requested => {}
            Ok(()) => watch.next_rev = watch.next_rev.max(revision + 1),
            Err(Refused::Full) => {}
            Err(Refused::Closed) => {
                self.remove(id);
            }
        }
    }

    /// Events for one watch: delivered whole, or the watch is paused when its consumer
    /// has no room.
    fn events(&mut self, id: WatchId, response: pb::WatchResponse) {
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        let floor = watch.min_event_rev;
        let total = response.events.len();
        let events: Vec<Event> = response
            .events
            .into_iter()
            .filter(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision) >= floor)
            .map(Event::from)
            .collect();
        if events.len() < total {
            tracing::warn!(%id, dropped = total - events.len(), floor, "the server sent events below the watch's resume revision; dropped");
        }
        let Some(last) = events.last().map(Event::revision) else {
            return;
        };
        let delivered = WatchResponse::events_from(id, response.header, events);
        match watch.sink.try_send(id, Ok(delivered)) {
            Ok(()) => {
                watch.min_event_rev = last + 1;
                watch.next_rev = watch.next_rev.max(last + 1);
            }
            Err(Refused::Full) => self.pause(id),
            Err(Refused::Closed) => {
                self.remove(id);
            }
        }
    }

    /// The consumer of a watch is full: cancel it on the server, and create it again from
    /// its resume revision once the consumer has made room. Nothing is lost.
    fn pause(&mut self, id: WatchId) {
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        let Phase::Active(server_id) = watch.phase else {
            return;
        };
        tracing::debug!(%id, resume_from = watch.next_rev, "consumer full: pausing the watch");
        watch.phase = Phase::Paused;
        watch.fragments = None;
        let drained = watch.sink.clone().drained();
        self.by_server.remove(&server_id);
        self.send_cancel(server_id);
        let commands = self.weak_commands.clone();
        tokio::spawn(async move {
            let room = drained.await;
            if let Some(commands) = commands.upgrade() {
                let _ = commands.send(if room {
                    Command::Drained { id }
                } else {
                    Command::Cancel { id, done: None }
                });
            }
        });
    }
}

#[cfg(test)]
mod jitter_tests {
    use super::*;

    #[test]
    fn reconnect_pauses_are_jittered_within_their_bounds() {
        for backoff in [Duration::from_millis(20), Duration::from_secs(2)] {
            let pauses: Vec<Duration> = (0..64).map(|_| reconnect_pause(backoff)).collect();
            assert!(
                pauses.iter().all(|p| *p >= backoff / 2 && *p <= backoff),
                "{pauses:?}"
            );
            assert!(pauses.iter().any(|p| *p != pauses[0]), "{pauses:?}");
        }
    }
}
