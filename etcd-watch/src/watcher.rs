//! The handles: [`Watcher`], [`WatchStream`], [`WatchGroup`] and [`GroupEvents`].

use std::collections::HashSet;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_core::layer::Backoff;
use etcd_core::watch::WatchService;
use futures_core::Stream;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::event::{WatchId, WatchResponse};
use crate::mux::{Command, Config, GroupItem, Item, Mux, Reauthenticate, Sink};
use crate::options::{Spec, Watch};
use crate::queue::{self, queue};

/// What every handle of one watcher shares.
struct Shared<S> {
    service: S,
    config: Config,
    next_id: AtomicU64,
    /// The background task's mailbox, started on first use.
    commands: OnceLock<mpsc::UnboundedSender<Command>>,
    /// Gets a new auth token when the server refuses a watch on auth grounds.
    reauth: Option<Reauthenticate>,
}

impl<S: WatchService> Shared<S> {
    /// The task's mailbox, starting the task when it is not running yet.
    ///
    /// # Panics
    /// Outside a tokio runtime, on first use.
    fn commands(&self) -> &mpsc::UnboundedSender<Command> {
        self.commands.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let mux = Mux::new(self.service.clone(), self.config, rx, tx.downgrade())
                .with_reauth(self.reauth.clone());
            tokio::spawn(mux.run());
            tx
        })
    }

    fn next_id(&self) -> WatchId {
        WatchId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// Watches keys over one [`WatchService`]: every watch made through a watcher (and its
/// clones) shares **one** gRPC stream, driven by one background task.
///
/// Cheap to clone; every method takes `&self`. The background task starts on first use
/// (inside a tokio runtime) and stops when the watcher, its clones and all its watches
/// are dropped.
///
/// When the stream breaks, every live watch is created again on a new stream (by calling
/// the service again; a failover service sends that to the next healthy member), from the
/// revision after the last one it delivered: no event is lost, repeated, or delivered out
/// of order. Attempts are spaced by an exponential backoff.
pub struct Watcher<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Watcher<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for Watcher<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("buffer", &self.shared.config.buffer)
            .field("started", &self.shared.commands.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<S: WatchService> Watcher<S> {
    /// A watcher over `service`, with a buffer of 1024 responses per watch and a backoff from
    /// 20 ms to 2 s between attempts to reopen a broken stream.
    pub fn new(service: S) -> Self {
        Self::with_config(service, Config::default(), None)
    }

    fn with_config(service: S, config: Config, reauth: Option<Reauthenticate>) -> Self {
        Self {
            shared: Arc::new(Shared {
                service,
                config,
                next_id: AtomicU64::new(1),
                commands: OnceLock::new(),
                reauth,
            }),
        }
    }

    fn config(&self) -> Config {
        self.shared.config
    }

    /// Sets how many bytes of responses (keys, values and a small fixed cost per response
    /// and per event) may wait for a slow consumer of one watch (for a [`WatchStream`]) or
    /// of one group (for [`GroupEvents`]) before the watch is paused; 8 MiB by default. A
    /// response larger than that is still delivered when the buffer is at most half full. See
    /// [the crate docs](crate#backpressure). Call it before the first watch.
    ///
    /// # Panics
    /// When `bytes` is 0.
    pub fn with_buffer_bytes(self, bytes: usize) -> Self {
        assert!(bytes > 0, "a watch buffer holds at least one byte");
        Self::with_config(
            self.shared.service.clone(),
            Config {
                buffer: bytes,
                ..self.config()
            },
            self.shared.reauth.clone(),
        )
    }

    /// Sets the backoff between attempts to reopen a broken stream: `initial` after the
    /// first failure, doubling up to `max`, back to `initial` once a watch is created.
    /// Call it before the first watch.
    pub fn with_backoff(self, initial: Duration, max: Duration) -> Self {
        Self::with_config(
            self.shared.service.clone(),
            Config {
                backoff: Backoff::new(initial, max.max(initial)),
                ..self.config()
            },
            self.shared.reauth.clone(),
        )
    }

    /// Bounds the creation of each watch ([`Watch`] awaited, [`WatchGroup::add`]), from the
    /// request until the server's created reply, by `timeout`: when no member answers in
    /// time the watch is dropped and creation fails with
    /// [`etcd_core::Error::Timeout`]. A watch once created is never
    /// bounded: its stream is resumed, however long that takes. `None` (the default) waits
    /// for as long as it takes. The `etcd3` facade sets the client's request timeout.
    /// Call it before the first watch.
    pub fn with_create_timeout(self, timeout: Option<Duration>) -> Self {
        Self::with_config(
            self.shared.service.clone(),
            Config {
                create_timeout: timeout,
                ..self.config()
            },
            self.shared.reauth.clone(),
        )
    }

    /// Sets how the watcher gets a new auth token. When the server refuses to create a watch
    /// on auth grounds (an expired or outdated token, or permission denied: etcd 3.5.1
    /// says "permission denied" for an expired token too), `reauth` is called, the stream
    /// is opened again (the token travels with the stream; the other watches resume on the
    /// new one without loss) and the watch is created once more. A watch refused again
    /// ends with [`Error::WatchCanceled`], whose [`server_kind`](Error::server_kind) tells why.
    /// A stream broken by an auth error is reopened after `reauth` too. The `etcd3`
    /// facade sets this when it has credentials. Call it before the first watch.
    pub fn with_reauthentication(self, reauth: Reauthenticate) -> Self {
        Self::with_config(self.shared.service.clone(), self.config(), Some(reauth))
    }

    /// Another watcher over the same service with the same settings (buffer, backoff,
    /// re-authentication), whose watches share a gRPC stream and background task of their
    /// own instead of this watcher's.
    ///
    /// etcd sends a stream's responses from one loop per stream, so a stream carries
    /// events at the pace of one server core. Watches that replay long histories or see
    /// heavy traffic can be spread over several watchers to be served in parallel; the
    /// streams share the client's connection. Watches made through this watcher and its
    /// clones still share one stream.
    pub fn on_new_stream(&self) -> Self {
        Self::with_config(
            self.shared.service.clone(),
            self.config(),
            self.shared.reauth.clone(),
        )
    }

    /// Watches `key`; add `.prefix()`, `.range_end(..)` or `.from_key()` for ranges, and the
    /// other options as methods. Await the builder to create the watch: it resolves to a
    /// [`WatchStream`] once the server has created it.
    pub fn watch(&self, key: impl etcd_core::IntoBytes) -> Watch<Watcher<S>> {
        Watch::key(key).with_client(self.clone())
    }

    /// Watches every key.
    pub fn watch_all(&self) -> Watch<Watcher<S>> {
        Watch::all().with_client(self.clone())
    }

    /// A group of watches whose responses all reach one consumer, tagged with their
    /// [`WatchId`]: one consumer of several range watches. Watches are added to and
    /// cancelled from the [`WatchGroup`]; the [`GroupEvents`] stream is the consumer. The
    /// group shares this watcher's stream.
    pub fn group(&self) -> (WatchGroup<S>, GroupEvents) {
        let (tx, rx) = queue(self.shared.config.buffer);
        let group = WatchGroup {
            inner: Arc::new(GroupInner {
                watcher: self.clone(),
                sink: tx,
                ids: Mutex::new(HashSet::new()),
            }),
        };
        (group, GroupEvents { rx })
    }

    /// Asks the server for a progress notification on the watcher's stream: every watch on
    /// it then receives a response with
    /// [`is_progress_notify`](WatchResponse::is_progress_notify) and
    /// [`is_requested_progress`](WatchResponse::is_requested_progress). Does nothing while
    /// no stream is open.
    ///
    /// etcd from 3.4.25 and 3.5.8 answers once every watch on the stream has caught up, so
    /// all events up to the answer's revision have been delivered. Earlier versions
    /// (3.4.23 and 3.5.1 among them) answer at once with the store's revision (etcd
    /// #15220): events at or below it may still follow. Such answers therefore never move
    /// a watch's resume point.
    pub async fn request_progress(&self) -> Result<(), Error> {
        let (done, rx) = oneshot::channel();
        self.shared
            .commands()
            .send(Command::Progress { done })
            .map_err(|_| crate::error::closed())?;
        rx.await.map_err(|_| crate::error::closed())
    }

    /// Starts a watch and waits for its creation.
    async fn start(&self, spec: Spec, sink: Sink, id: WatchId) -> Result<(), Error> {
        spec.validate()?;
        let (created, rx) = oneshot::channel();
        self.shared
            .commands()
            .send(Command::Create {
                id,
                spec,
                sink,
                created,
            })
            .map_err(|_| crate::error::closed())?;
        let guard = CancelOnDrop::new(id, self.shared.commands().clone());
        let reply = match self.shared.config.create_timeout {
            None => rx.await,
            // Dropping the armed guard cancels the watch, which the task may still be
            // trying to create on some member.
            Some(limit) => match tokio::time::timeout(limit, rx).await {
                Ok(reply) => reply,
                Err(_) => return Err(etcd_core::Error::timeout("watch creation", limit)),
            },
        };
        match reply {
            Ok(Ok(())) => {
                guard.disarm();
                Ok(())
            }
            Ok(Err(error)) => {
                guard.disarm();
                Err(error)
            }
            Err(_) => Err(crate::error::closed()),
        }
    }
}

impl<S: WatchService> IntoFuture for Watch<Watcher<S>> {
    type Output = Result<WatchStream, Error>;
    type IntoFuture = BoxFuture<'static, Result<WatchStream, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        let (watcher, spec) = self.into_parts();
        Box::pin(async move {
            let buffer = spec.buffer.unwrap_or(watcher.shared.config.buffer).max(1);
            let (tx, rx) = queue(buffer);
            let id = watcher.shared.next_id();
            watcher.start(spec, Sink::Single(tx), id).await?;
            Ok(WatchStream {
                id,
                rx,
                guard: CancelOnDrop::new(id, watcher.shared.commands().clone()),
            })
        })
    }
}

/// Sends a cancel for a watch when dropped, unless disarmed.
struct CancelOnDrop {
    id: WatchId,
    commands: Option<mpsc::UnboundedSender<Command>>,
}

impl CancelOnDrop {
    fn new(id: WatchId, commands: mpsc::UnboundedSender<Command>) -> Self {
        Self {
            id,
            commands: Some(commands),
        }
    }

    fn disarm(mut self) {
        self.commands = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.take() {
            let _ = commands.send(Command::Cancel {
                id: self.id,
                done: None,
            });
        }
    }
}

/// One watch, as a stream of [`WatchResponse`]s.
///
/// Each item holds all events of one or more whole revisions, in order, each delivered
/// exactly once across stream failures. The stream ends after an error (compaction, a
/// server-side cancel, no leader), which is terminal. Dropping it cancels the watch on the
/// server at once.
#[must_use = "dropping it cancels the watch"]
pub struct WatchStream {
    id: WatchId,
    rx: queue::Receiver<Item>,
    guard: CancelOnDrop,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("id", &self.id)
            .field("buffered", &self.rx.len())
            .field("buffered_bytes", &self.rx.bytes())
            .finish()
    }
}

impl WatchStream {
    /// The watch's id.
    pub fn id(&self) -> WatchId {
        self.id
    }

    /// Cancels the watch on the server and waits until the cancel request has been queued
    /// on the stream. Dropping the stream does the same without waiting.
    pub async fn cancel(mut self) {
        if let Some(commands) = self.guard.commands.take() {
            let (done, rx) = oneshot::channel();
            if commands
                .send(Command::Cancel {
                    id: self.id,
                    done: Some(done),
                })
                .is_ok()
            {
                let _ = rx.await;
            }
        }
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchResponse, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

struct GroupInner<S: WatchService> {
    watcher: Watcher<S>,
    sink: queue::Sender<GroupItem>,
    ids: Mutex<HashSet<WatchId>>,
}

impl<S: WatchService> Drop for GroupInner<S> {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(commands) = self.watcher.shared.commands.get() {
            for id in ids {
                let _ = commands.send(Command::Cancel { id, done: None });
            }
        }
    }
}

/// Several watches whose responses reach one consumer, the [`GroupEvents`] stream, tagged
/// with their [`WatchId`]. Made by [`Watcher::group`].
///
/// Cheap to clone. Dropping the last clone cancels the group's watches; the events stream
/// then ends once it has delivered what was waiting.
#[must_use = "dropping it cancels its watches"]
pub struct WatchGroup<S: WatchService> {
    inner: Arc<GroupInner<S>>,
}

impl<S: WatchService> Clone for WatchGroup<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: WatchService> fmt::Debug for WatchGroup<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchGroup").finish_non_exhaustive()
    }
}

impl<S: WatchService> WatchGroup<S> {
    /// Adds a watch (a [`Watch`] with its options, or a [`KeyRange`](etcd_core::KeyRange))
    /// and waits for the server to create it. Its responses then arrive on the group's
    /// [`GroupEvents`] tagged with the returned id.
    pub async fn add(&self, watch: impl Into<Watch>) -> Result<WatchId, Error> {
        let (_, spec) = watch.into().into_parts();
        let watcher = &self.inner.watcher;
        let id = watcher.shared.next_id();
        watcher
            .start(spec, Sink::Group(self.inner.sink.clone()), id)
            .await?;
        self.ids().insert(id);
        Ok(id)
    }

    /// Cancels a watch of the group on the server. Responses already waiting in the
    /// group's stream stay there; no new ones come. Cancelling an unknown or ended watch
    /// does nothing.
    pub async fn cancel(&self, id: WatchId) -> Result<(), Error> {
        self.ids().remove(&id);
        let (done, rx) = oneshot::channel();
        self.inner
            .watcher
            .shared
            .commands()
            .send(Command::Cancel {
                id,
                done: Some(done),
            })
            .map_err(|_| crate::error::closed())?;
        rx.await.map_err(|_| crate::error::closed())
    }

    /// Asks for a progress notification for every watch of the watcher's stream (see
    /// [`Watcher::request_progress`]).
    pub async fn request_progress(&self) -> Result<(), Error> {
        self.inner.watcher.request_progress().await
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<WatchId>> {
        self.inner.ids.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The consumer of a [`WatchGroup`]: every response of every watch of the group, tagged
/// with its watch's id. An error ends only the watch it is tagged with.
#[must_use = "its events are only delivered through it"]
pub struct GroupEvents {
    rx: queue::Receiver<GroupItem>,
}

impl fmt::Debug for GroupEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupEvents")
            .field("buffered", &self.rx.len())
            .field("buffered_bytes", &self.rx.bytes())
            .finish()
    }
}

impl Stream for GroupEvents {
    type Item = (WatchId, Result<WatchResponse, Error>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Makes sure the future types are `Send`.
#[allow(dead_code)]
fn assert_send<S: WatchService>(w: Watcher<S>) -> impl Future + Send {
    async move {
        let _ = w.watch("k").await;
        let (g, _) = w.group();
        let _ = g.add(Watch::key("k")).await;
    }
}
