//! The background task that keeps every lease of a lessor alive over one stream.
//!
//! One task per [`Lessor`](crate::Lessor) (and its clones) owns one `LeaseKeepAlive`
//! stream. Each lease has its own schedule: a request is sent `interval` after the last
//! reply (TTL/3 by default, as etcd's Go client, `client/v3/lease.go`), and the lease is
//! reported [`Expired`](LossReason::Expired) when its local deadline passes with no newer
//! reply. The deadline is the *send* time of the last acknowledged renewal + TTL: the
//! server restarted the lease's TTL when it handled that request, which was no earlier than
//! the send, so the lease cannot expire on the server before it (whereas Go's
//! `deadlineLoop`, "reply + TTL", can report a lease alive for up to one round trip after
//! the server let it go). A reply with TTL 0 ends it as [`NotFound`](LossReason::NotFound).
//! Renewals due within 20 ms of each other go out together (a little early), so that many
//! leases cost one wake-up and one write per batch rather than one each.
//!
//! The stream is reopened, by calling the service again (a failover service sends each
//! call to the next healthy member), when it ends, fails, or stalls: requests are
//! outstanding and no reply came for [`KeepAliveConfig::ack_timeout`]. The first reopen
//! after a working stream is immediate; further ones back off. On a new stream every lease
//! still owed a reply is asked for again at once.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_core::Error as CoreError;
use etcd_core::layer::Backoff;
use etcd_core::stream::{ReopeningStream, StreamEvent};
use etcd_proto::etcdserverpb as pb;
use futures_util::future::poll_fn;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::LossReason;
use crate::error::Result;
use crate::response::secs;
use crate::{LeaseKeepAliveService, LeaseService};

/// Timing of the keep-alive task. Start from [`KeepAliveConfig::default`] and change the
/// fields you need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepAliveConfig {
    /// How long a new keep-alive waits for the server's first reply before the lease is
    /// reported [`Expired`](LossReason::Expired) (the TTL is not known before it). 5 s, as
    /// etcd's Go client without a dial timeout.
    pub first_ack_timeout: Duration,
    /// How long requests may stay unanswered before the stream is considered stalled (for
    /// example a blackholed member) and is reopened, on another member where the service
    /// fails over. 1 s by default: short enough for a 2 s TTL (renewal at 667 ms, reopen
    /// at about 1.7 s).
    pub ack_timeout: Duration,
    /// The pauses between attempts to reopen a failed stream: the first reopen is
    /// immediate, the second waits the backoff's first pause, each further one doubles
    /// it. Pauses are jittered so that clients broken together do not reconnect together.
    /// 100 ms doubling up to 1 s by default.
    pub reconnect_backoff: Backoff,
    /// How long starting a keep-alive ([`Lessor::keep_alive`](crate::Lessor::keep_alive)
    /// awaited, until the server's first reply) and a one-off renewal
    /// ([`Lessor::keep_alive_once`](crate::Lessor::keep_alive_once)) may take. Past it the
    /// call fails with [`etcd_core::Error::Timeout`] and the lease is
    /// not kept alive. A keep-alive once started is never bounded by it. `None` (the
    /// default): only [`first_ack_timeout`](Self::first_ack_timeout) applies. The
    /// `etcd3` facade sets the client's request timeout.
    pub start_timeout: Option<Duration>,
}

impl Default for KeepAliveConfig {
    fn default() -> Self {
        Self {
            first_ack_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(1),
            reconnect_backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
            start_timeout: None,
        }
    }
}

/// How early a renewal may go out to join others due at about the same time.
const BATCH: Duration = Duration::from_millis(20);

/// What a lease's handles see.
#[derive(Clone, Debug, Default)]
pub(crate) struct Status {
    /// The TTL of the last reply, in seconds (0 before the first).
    pub(crate) ttl: i64,
    pub(crate) last_ack: Option<Instant>,
    pub(crate) renewals: u64,
    pub(crate) lost: Option<LossReason>,
}

/// A registration answered to [`Command::Register`].
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) generation: u64,
    pub(crate) status: watch::Receiver<Status>,
}

/// How a revoke ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RevokeOutcome {
    Revoked,
    NotFound,
    Failed,
}

impl RevokeOutcome {
    pub(crate) fn of<T>(result: &Result<T>) -> Self {
        match result {
            Ok(_) => RevokeOutcome::Revoked,
            Err(e) if e.is_lease_not_found() => RevokeOutcome::NotFound,
            Err(_) => RevokeOutcome::Failed,
        }
    }
}

/// Messages to the task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Keep `id` alive (or join its existing keep-alive).
    Register {
        id: i64,
        every: Option<Duration>,
        reply: oneshot::Sender<Registration>,
    },
    /// One handle of `id` was dropped.
    Release { id: i64, generation: u64 },
    /// A revoke of `id` is in flight: a TTL-0 reply means "revoked".
    Revoking { id: i64 },
    /// A revoke of `id` ended.
    RevokeDone { id: i64, outcome: RevokeOutcome },
    /// Renew `id` once over the stream, answering with the server's reply.
    Once {
        id: i64,
        reply: oneshot::Sender<pb::LeaseKeepAliveResponse>,
    },
    /// Revoke `id` (from a guard), answering on `reply` when given.
    Revoke {
        id: i64,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
}

/// Starts the task for `service` and returns its command channel.
pub(crate) fn spawn<S>(service: S, config: KeepAliveConfig) -> mpsc::UnboundedSender<Command>
where
    S: LeaseService + LeaseKeepAliveService,
{
    let (commands, receiver) = mpsc::unbounded_channel();
    let keeper = Keeper {
        service,
        config,
        commands: receiver,
        weak: commands.downgrade(),
        leases: HashMap::new(),
        once: HashMap::new(),
        timers: BinaryHeap::new(),
        next_generation: 0,
        link: Link::default(),
        failures: 0,
        sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
        sleep_at: None,
    };
    tokio::spawn(keeper.run());
    commands
}

/// One lease being kept alive.
#[derive(Debug)]
struct Lease {
    generation: u64,
    handles: usize,
    status: watch::Sender<Status>,
    every: Option<Duration>,
    /// A request is owed a reply (sent, or to send as soon as a stream is open).
    in_flight: bool,
    next_send: Instant,
    deadline: Instant,
    /// The timer entry that is current for this lease; older entries are ignored.
    wake_at: Instant,
    /// Revokes in flight through this client.
    revoking: u32,
}

/// The stream and its bookkeeping.
#[derive(Default)]
struct Link {
    stream: ReopeningStream<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>,
    /// Requests sent on the current stream and not answered yet.
    outstanding: usize,
    /// When each unanswered request on the current stream was sent, per lease, oldest
    /// first. etcd answers the requests of one stream in order, so a reply for a lease
    /// answers its oldest unanswered request.
    sent: HashMap<i64, VecDeque<Instant>>,
    /// When the stream last made progress while requests were outstanding.
    waiting_since: Option<Instant>,
}

impl Link {
    /// Sends a keep-alive for `id` if a stream is opening or open. Returns false when not
    /// (the request is then sent when one opens).
    fn send(&mut self, id: i64, now: Instant) -> bool {
        if !self.stream.send(pb::LeaseKeepAliveRequest { id }) {
            return false;
        }
        if self.outstanding == 0 {
            self.waiting_since = Some(now);
        }
        self.outstanding += 1;
        self.sent.entry(id).or_default().push_back(now);
        true
    }

    /// The send time of the request a reply for `id` answers (its oldest unanswered one on
    /// this stream), forgotten from now on. `None` for a reply nothing was sent for.
    fn answered(&mut self, id: i64) -> Option<Instant> {
        let MapEntry::Occupied(mut entry) = self.sent.entry(id) else {
            return None;
        };
        let sent = entry.get_mut().pop_front();
        if entry.get().is_empty() {
            entry.remove();
        }
        sent
    }

    fn close(&mut self) {
        self.stream.close();
        self.outstanding = 0;
        self.sent.clear();
        self.waiting_since = None;
    }
}

/// Events the keeper handles in one turn at most, after the one that woke it.
const MAX_EVENTS_AT_ONCE: usize = 256;

/// Returns after one trip to the back of the scheduler's queue, so that tasks already
/// scheduled on this worker usually run first. (A task that wakes itself while it is being
/// polled is queued behind the others, and an idle worker is woken that may take it
/// earlier; unlike `tokio::task::yield_now`, this does not have the worker poll its I/O
/// driver first.)
async fn yield_to_scheduled() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// What woke the task.
enum Event {
    Command(Option<Command>),
    Stream(StreamEvent<pb::LeaseKeepAliveResponse>),
    Timer,
}

struct Keeper<S> {
    service: S,
    config: KeepAliveConfig,
    commands: mpsc::UnboundedReceiver<Command>,
    weak: mpsc::WeakUnboundedSender<Command>,
    leases: HashMap<i64, Lease>,
    /// Callers of a one-off renewal, waiting for the reply for their lease.
    once: HashMap<i64, Vec<oneshot::Sender<pb::LeaseKeepAliveResponse>>>,
    /// Wake-ups per lease: `(when, id)`, earliest first.
    timers: BinaryHeap<Reverse<(Instant, i64)>>,
    next_generation: u64,
    link: Link,
    /// Stream failures since the last reply.
    failures: u32,
    sleep: Pin<Box<Sleep>>,
    sleep_at: Option<Instant>,
}

impl<S> Keeper<S>
where
    S: LeaseService + LeaseKeepAliveService,
{
    async fn run(mut self) {
        loop {
            self.arm_timer();
            let event = poll_fn(|cx| self.poll_event(cx)).await;
            if matches!(event, Event::Command(Some(_))) {
                // Callers that one batch of replies woke send their next renewals one after
                // another; each wakes this task. Letting the ones already scheduled run
                // first sends their renewals together, in one message, instead of one
                // message (and one write) each.
                yield_to_scheduled().await;
            }
            let now = Instant::now();
            if !self.handle(event, now) {
                break;
            }
            // What else is ready is handled at the same instant (one clock read, one timer
            // update for the lot), a bounded number at a time.
            for _ in 0..MAX_EVENTS_AT_ONCE {
                let ready = poll_fn(|cx| Poll::Ready(self.poll_event(cx))).await;
                let Poll::Ready(event) = ready else { break };
                if !self.handle(event, now) {
                    return;
                }
            }
        }
        // Every handle and lessor is gone: nothing to report to.
    }

    /// Handles one event; false when the task is to end.
    fn handle(&mut self, event: Event, now: Instant) -> bool {
        match event {
            Event::Command(None) => return false,
            Event::Command(Some(command)) => self.on_command(command, now),
            Event::Stream(StreamEvent::Opened) => {
                tracing::debug!("lease keep-alive stream open");
            }
            Event::Stream(StreamEvent::Response(reply)) => self.on_reply(reply, now),
            Event::Stream(StreamEvent::Broken(Some(error))) => self.on_failure(&error, now),
            Event::Stream(StreamEvent::Broken(None)) => {
                let error = CoreError::Protocol("the keep-alive stream ended".into());
                self.on_failure(&error, now);
            }
            Event::Stream(StreamEvent::WaitOver) => self.open(now),
            Event::Timer => self.on_timer(now),
        }
        true
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Poll::Ready(command) = self.commands.poll_recv(cx) {
            return Poll::Ready(Event::Command(command));
        }
        if let Poll::Ready(event) = self.link.stream.poll_event(cx) {
            return Poll::Ready(Event::Stream(event));
        }
        if self.sleep_at.is_some() && self.sleep.as_mut().poll(cx).is_ready() {
            self.sleep_at = None;
            return Poll::Ready(Event::Timer);
        }
        Poll::Pending
    }

    /// Points the timer at the next thing to do.
    fn arm_timer(&mut self) {
        let mut next = self.timers.peek().map(|Reverse((when, _))| *when);
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.link.stream.is_connected()
            && let (true, Some(since)) = (self.link.outstanding > 0, self.link.waiting_since)
        {
            consider(since + self.config.ack_timeout);
        }
        if next != self.sleep_at {
            if let Some(at) = next {
                self.sleep.as_mut().reset(at);
            }
            self.sleep_at = next;
        }
    }

    fn on_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Register { id, every, reply } => {
                let generation = self.next_generation;
                let lease = match self.leases.entry(id) {
                    MapEntry::Occupied(entry) => {
                        let lease = entry.into_mut();
                        if let Some(every) = every {
                            lease.every = Some(lease.every.map_or(every, |e| e.min(every)));
                        }
                        lease
                    }
                    MapEntry::Vacant(entry) => {
                        self.next_generation += 1;
                        self.timers.push(Reverse((now, id)));
                        entry.insert(Lease {
                            generation,
                            handles: 0,
                            status: watch::Sender::new(Status::default()),
                            every,
                            in_flight: false,
                            next_send: now,
                            deadline: now + self.config.first_ack_timeout,
                            wake_at: now,
                            revoking: 0,
                        })
                    }
                };
                lease.handles += 1;
                let registration = Registration {
                    generation: lease.generation,
                    status: lease.status.subscribe(),
                };
                let generation = lease.generation;
                if reply.send(registration).is_err() {
                    self.release(id, generation);
                }
                if self.link.stream.is_idle() && !self.leases.is_empty() {
                    self.open(now);
                }
            }
            Command::Once { id, reply } => {
                let waiters = self.once.entry(id).or_default();
                let asked = !waiters.is_empty()
                    || self.leases.get(&id).is_some_and(|lease| lease.in_flight);
                waiters.push(reply);
                if self.link.stream.is_idle() {
                    self.open(now);
                } else if !asked {
                    self.link.send(id, now);
                }
            }
            Command::Release { id, generation } => self.release(id, generation),
            Command::Revoking { id } => {
                if let Some(lease) = self.leases.get_mut(&id) {
                    lease.revoking += 1;
                }
            }
            Command::RevokeDone { id, outcome } => match outcome {
                RevokeOutcome::Revoked => self.lose(id, LossReason::Revoked),
                RevokeOutcome::NotFound => self.lose(id, LossReason::NotFound),
                RevokeOutcome::Failed => {
                    if let Some(lease) = self.leases.get_mut(&id) {
                        lease.revoking = lease.revoking.saturating_sub(1);
                    }
                }
            },
            Command::Revoke { id, reply } => {
                if let Some(lease) = self.leases.get_mut(&id) {
                    lease.revoking += 1;
                }
                let service = self.service.clone();
                let weak = self.weak.clone();
                tokio::spawn(async move {
                    let result = service
                        .oneshot(pb::LeaseRevokeRequest { id })
                        .await
                        .map(drop)
                        .map_err(|e| CoreError::from_boxed(e.into()));
                    let outcome = RevokeOutcome::of(&result);
                    if let Err(e) = &result {
                        tracing::debug!(lease = id, error = %e, "revoke on drop failed");
                    }
                    if let Some(commands) = weak.upgrade() {
                        let _ = commands.send(Command::RevokeDone { id, outcome });
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                });
            }
        }
    }

    /// One handle of `id` is gone; the last one stops the renewals.
    fn release(&mut self, id: i64, generation: u64) {
        if let MapEntry::Occupied(mut entry) = self.leases.entry(id) {
            let lease = entry.get_mut();
            if lease.generation != generation {
                return;
            }
            lease.handles = lease.handles.saturating_sub(1);
            if lease.handles == 0 {
                entry.remove();
                tracing::debug!(lease = id, "keep-alive stopped: no handle left");
                self.close_if_unused();
            }
        }
    }

    /// Ends `id`'s keep-alive and tells its handles why.
    fn lose(&mut self, id: i64, reason: LossReason) {
        if let Some(lease) = self.leases.remove(&id) {
            if reason == LossReason::Revoked {
                tracing::debug!(lease = id, "lease revoked through this client");
            } else {
                tracing::warn!(lease = id, %reason, "lease lost");
            }
            lease.status.send_modify(|s| s.lost = Some(reason));
            self.close_if_unused();
        }
    }

    fn close_if_unused(&mut self) {
        if self.leases.is_empty() && self.once.is_empty() {
            self.link.close();
            self.timers.clear();
            self.failures = 0;
        }
    }

    /// Opens a new stream and asks again for every lease owed a reply.
    fn open(&mut self, now: Instant) {
        self.link.close();
        self.link.stream.open(self.service.clone());
        for (&id, lease) in &self.leases {
            if lease.in_flight {
                self.link.send(id, now);
            }
        }
        // One-off renewals still wanted (their callers may have given up).
        self.once.retain(|_, waiters| {
            waiters.retain(|w| !w.is_closed());
            !waiters.is_empty()
        });
        for &id in self.once.keys() {
            if !self.leases.get(&id).is_some_and(|lease| lease.in_flight) {
                self.link.send(id, now);
            }
        }
    }

    /// The stream broke, failed to open, or stalled: reopen, at once the first time.
    fn on_failure(&mut self, error: &CoreError, now: Instant) {
        self.failures += 1;
        if matches!(error, CoreError::ResponseTooLarge { .. }) {
            // Not a passing failure: a renewal's reply is some 40 bytes.
            tracing::warn!(%error, "lease keep-alive reply over the client's size limit");
        } else {
            tracing::debug!(%error, failures = self.failures, "lease keep-alive stream failed");
        }
        self.link.close();
        if self.leases.is_empty() && self.once.is_empty() {
            return;
        }
        if self.failures <= 1 {
            self.open(now);
        } else {
            // After two failures in a row, the backoff's first pause.
            let pause = self.config.reconnect_backoff.pause(self.failures - 2);
            self.link.stream.wait(pause);
        }
    }

    fn on_reply(&mut self, reply: pb::LeaseKeepAliveResponse, now: Instant) {
        self.failures = 0;
        self.link.outstanding = self.link.outstanding.saturating_sub(1);
        self.link.waiting_since = (self.link.outstanding > 0).then_some(now);
        let id = reply.id;
        let sent = self.link.answered(id);
        for waiter in self.once.remove(&id).unwrap_or_default() {
            let _ = waiter.send(reply);
        }
        let Some(lease) = self.leases.get_mut(&id) else {
            return; // Released or lost meanwhile.
        };
        lease.in_flight = false;
        if reply.ttl <= 0 {
            let reason = if lease.revoking > 0 {
                LossReason::Revoked
            } else {
                LossReason::NotFound
            };
            self.lose(id, reason);
            return;
        }
        let ttl = secs(reply.ttl);
        // The server restarted the TTL when it handled the request, no earlier than its
        // send: the lease lives at least until `sent + ttl`. A reply to nothing we sent
        // (not expected from etcd) proves nothing about when, so it moves no deadline.
        match sent {
            Some(sent) => lease.deadline = sent + ttl,
            None => tracing::debug!(lease = id, "keep-alive reply to no request of ours"),
        }
        lease.next_send = now + lease.every.unwrap_or(ttl / 3);
        lease.wake_at = lease.next_send.min(lease.deadline);
        self.timers.push(Reverse((lease.wake_at, id)));
        lease.status.send_if_modified(|s| {
            let first = s.renewals == 0;
            s.ttl = reply.ttl;
            s.last_ack = Some(now);
            s.renewals += 1;
            // Only the first reply wakes anyone (the keep-alive call waits for it); later
            // ones are read on demand.
            first
        });
    }

    fn on_timer(&mut self, now: Instant) {
        if self.link.stream.is_connected()
            && let (true, Some(since)) = (self.link.outstanding > 0, self.link.waiting_since)
            && since + self.config.ack_timeout <= now
        {
            tracing::debug!(
                outstanding = self.link.outstanding,
                "lease keep-alive stream stalled; reopening"
            );
            let error = CoreError::timeout("lease keep-alive renewal", self.config.ack_timeout);
            self.on_failure(&error, now);
        }
        // Renewals due within BATCH go out together: with many leases, one wake-up and
        // one write serve dozens of them instead of one each.
        let horizon = now + BATCH;
        let mut later = Vec::new();
        while let Some(&Reverse((when, id))) = self.timers.peek() {
            if when > horizon {
                break;
            }
            self.timers.pop();
            let Some(lease) = self.leases.get_mut(&id) else {
                continue;
            };
            if lease.wake_at != when {
                continue; // Superseded by a later schedule.
            }
            if lease.deadline <= now {
                self.lose(id, LossReason::Expired);
                continue;
            }
            if !lease.in_flight && lease.next_send <= horizon {
                lease.in_flight = true;
                self.link.send(id, now);
            }
            lease.wake_at = if lease.in_flight {
                lease.deadline
            } else {
                lease.next_send.min(lease.deadline)
            };
            later.push(Reverse((lease.wake_at, id)));
        }
        self.timers.extend(later);
    }
}
