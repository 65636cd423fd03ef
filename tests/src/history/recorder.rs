//! Recording what clients under test do through `etcd3::Client`: every call with its
//! instants and outcome, every watch's deliveries, every kept-alive lease's status.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd3::kv::{Compare as ClientCompare, Delete, Get, Op as ClientOp, OpResponse, Put};
use etcd3::lease::KeepAlive;
use futures::StreamExt;

use super::model::*;

/// Collects a [`History`] from any number of tasks.
#[derive(Debug)]
pub struct Recorder {
    origin: Instant,
    next_id: AtomicU64,
    history: Mutex<History>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            next_id: AtomicU64::new(1),
            history: Mutex::new(History::default()),
        })
    }

    /// The recorder's clock: nanoseconds since it was made.
    pub fn now(&self) -> Nanos {
        self.since(Instant::now())
    }

    /// An instant on the recorder's clock (0 for instants before its start).
    pub fn since(&self, instant: Instant) -> Nanos {
        instant.saturating_duration_since(self.origin).as_nanos() as Nanos
    }

    /// When the recorder's clock started.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// A copy of what was recorded so far.
    pub fn history(&self) -> History {
        self.lock().clone()
    }

    /// Declares key prefixes that unrecorded parts of the workload write (see
    /// [`History::foreign`]).
    pub fn set_foreign(&self, prefixes: Vec<String>) {
        self.lock().foreign = prefixes;
    }

    /// Names locks whose fenced writes the checker proves (see [`History::locks`]).
    pub fn set_locks(&self, names: Vec<String>) {
        self.lock().locks = names;
    }

    /// Notes a compaction the workload made.
    pub fn record_compaction(&self, revision: i64) {
        self.lock().compactions.push(revision);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `req` through `kv` as logical client `client` and records it. A failed call is
    /// recorded with the client's own verdict on whether it may have applied; one whose
    /// outcome is unknown is recorded as never returning.
    pub async fn run(&self, client: u32, kv: &etcd3::Kv, req: Request) -> Response {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let call = self.now();
        let result = execute(kv, &req).await;
        let ret = self.now();
        let elapsed = ret - call;
        let (resp, ret) = match result {
            Ok(resp) => (resp, Some(ret)),
            Err(e) => {
                let outcome = if e.is_outcome_unknown() {
                    Outcome::Unknown
                } else {
                    Outcome::NotApplied
                };
                let ret = (outcome == Outcome::NotApplied).then_some(ret);
                let message = e.to_string();
                (Response::Failed { outcome, message }, ret)
            }
        };
        self.lock().ops.push(Op {
            client,
            id,
            call,
            ret,
            elapsed,
            req,
            resp: resp.clone(),
        });
        resp
    }

    /// Opens a watch described by `spec` on `client`'s watcher and records what it
    /// delivers until [`RecordedWatch::finish`].
    pub async fn watch(
        self: &Arc<Self>,
        client: u32,
        etcd: &etcd3::Client,
        spec: WatchSpec,
    ) -> Result<RecordedWatch, etcd3::watch::Error> {
        let mut watch = etcd.watch(spec.key.clone()).created_notify();
        if let Some(end) = &spec.end {
            watch = watch.range_end(end.clone());
        }
        if spec.start_revision > 0 {
            watch = watch.from_revision(spec.start_revision);
        }
        if spec.prev_kv {
            watch = watch.prev_kv();
        }
        if spec.no_put {
            watch = watch.no_put();
        }
        if spec.no_delete {
            watch = watch.no_delete();
        }
        if spec.progress_notify {
            watch = watch.progress_notify();
        }
        let mut stream = watch.await?;
        let trace = Arc::new(Mutex::new(WatchTrace {
            client,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            key: spec.key,
            end: spec.end,
            start_revision: spec.start_revision,
            prev_kv: spec.prev_kv,
            no_put: spec.no_put,
            no_delete: spec.no_delete,
            ..WatchTrace::default()
        }));
        let reached = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = {
            let (recorder, trace, reached, stop) = (
                Arc::clone(self),
                Arc::clone(&trace),
                Arc::clone(&reached),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                loop {
                    let item = tokio::select! {
                        item = stream.next() => item,
                        _ = stop.notified() => break,
                    };
                    let at = recorder.now();
                    let mut trace = trace.lock().unwrap_or_else(|p| p.into_inner());
                    match item {
                        None => break,
                        Some(Ok(resp)) if resp.is_created() => {
                            trace.created_revision = Some(resp.revision());
                            // A watch from now has nothing to deliver up to its creation;
                            // one from a revision may still be replaying up to there.
                            if trace.start_revision == 0 {
                                reached.fetch_max(resp.revision() as u64, Ordering::SeqCst);
                            }
                        }
                        Some(Ok(resp)) if resp.is_progress_notify() => {
                            // Only the watch's own notifications are exact bookmarks.
                            if !resp.is_requested_progress() {
                                trace.items.push(WatchItem::Progress {
                                    at,
                                    revision: resp.revision(),
                                });
                                reached.fetch_max(resp.revision() as u64, Ordering::SeqCst);
                            }
                        }
                        Some(Ok(resp)) => {
                            let events: Vec<Event> = resp.events().iter().map(event).collect();
                            if let Some(last) = events.last() {
                                reached.fetch_max(last.kv.mod_revision as u64, Ordering::SeqCst);
                            }
                            trace.items.push(WatchItem::Events { at, events });
                        }
                        Some(Err(etcd3::watch::Error::WatchCompacted { compact_revision })) => {
                            trace.items.push(WatchItem::Compacted {
                                at,
                                compact_revision,
                            });
                        }
                        Some(Err(e)) => trace.items.push(WatchItem::Failed {
                            at,
                            message: e.to_string(),
                        }),
                    }
                }
            })
        };
        Ok(RecordedWatch {
            recorder: Arc::clone(self),
            trace,
            reached,
            stop,
            task,
        })
    }

    /// Samples a kept-alive lease's status every `every` until
    /// [`RecordedLease::finish`]; `keys` are the keys the workload attached to it.
    pub fn lease(
        self: &Arc<Self>,
        keep_alive: KeepAlive,
        keys: Vec<String>,
        every: Duration,
    ) -> RecordedLease {
        let trace = Arc::new(Mutex::new(LeaseTrace {
            id: keep_alive.id(),
            ttl: keep_alive.ttl().as_secs() as i64,
            keys,
            samples: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (recorder, trace, stop) = (Arc::clone(self), Arc::clone(&trace), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    // The instant is taken before the status is read: "alive" held at
                    // or after it.
                    let at = recorder.now();
                    let sample = LeaseSample {
                        at,
                        last_renewed: keep_alive
                            .last_renewed()
                            .map(|i| recorder.since(i.into_std())),
                        alive: keep_alive.loss().is_none(),
                    };
                    trace
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .samples
                        .push(sample);
                }
                keep_alive
            })
        };
        RecordedLease {
            recorder: Arc::clone(self),
            trace,
            stop,
            task,
        }
    }
}

/// What to watch, for [`Recorder::watch`].
#[derive(Clone, Debug, Default)]
pub struct WatchSpec {
    /// The key, or the start of the range.
    pub key: String,
    /// The end of the range, as in [`GetReq::end`].
    pub end: Option<String>,
    /// The first revision; 0 for "after the current one".
    pub start_revision: i64,
    /// Ask for previous key-values.
    pub prev_kv: bool,
    /// Filter out puts.
    pub no_put: bool,
    /// Filter out deletes.
    pub no_delete: bool,
    /// Ask for the server's progress notifications.
    pub progress_notify: bool,
}

/// A watch being recorded.
#[derive(Debug)]
pub struct RecordedWatch {
    recorder: Arc<Recorder>,
    trace: Arc<Mutex<WatchTrace>>,
    reached: Arc<AtomicU64>,
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordedWatch {
    /// The highest revision the watch has vouched for so far (by an event, a progress
    /// notification or its creation).
    pub fn reached(&self) -> i64 {
        self.reached.load(Ordering::SeqCst) as i64
    }

    /// Waits up to `within` until the watch has delivered everything up to `revision`
    /// (an event or a progress notification of its own at or past it, or, for a watch
    /// from now, its creation at or past it), without stopping it; returns whether it
    /// did. For tests that must know a watch caught up before they inject the next fault.
    ///
    /// Unlike [`finish`](Self::finish), the creation revision of a watch with a start
    /// revision does not count: it tells where the store was, not what was delivered.
    pub async fn wait_reached(&self, revision: i64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if delivered_up_to(&self.snapshot()) >= revision {
                return true;
            }
            if self.task.is_finished() || Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A copy of what the watch recorded so far (its trace keeps growing until
    /// [`finish`](Self::finish)).
    pub fn snapshot(&self) -> WatchTrace {
        self.trace.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits up to `within` for the watch to vouch for `revision` (an event or progress
    /// notification at or past it, or its end), then stops it and adds its trace to the
    /// history. A watch that did not get there is recorded as having to: the checker
    /// flags it as stalled.
    pub async fn finish(self, revision: i64, within: Duration) {
        let deadline = Instant::now() + within;
        while (self.reached.load(Ordering::SeqCst) as i64) < revision
            && !self.task.is_finished()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.notify_one();
        let _ = self.task.await;
        let mut trace = self.trace.lock().unwrap_or_else(|p| p.into_inner()).clone();
        trace.must_reach = Some(revision);
        self.recorder.lock().watches.push(trace);
    }
}

/// The last revision a trace has delivered everything up to (see
/// [`RecordedWatch::wait_reached`]).
fn delivered_up_to(trace: &WatchTrace) -> i64 {
    let from_now = match trace.created_revision {
        Some(created) if trace.start_revision == 0 => created,
        _ => 0,
    };
    trace
        .items
        .iter()
        .filter_map(|item| match item {
            WatchItem::Events { events, .. } => events.last().map(|e| e.kv.mod_revision),
            WatchItem::Progress { revision, .. } => Some(*revision),
            _ => None,
        })
        .fold(from_now, i64::max)
}

/// A lease being sampled.
#[derive(Debug)]
pub struct RecordedLease {
    recorder: Arc<Recorder>,
    trace: Arc<Mutex<LeaseTrace>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<KeepAlive>,
}

impl RecordedLease {
    /// Whether the last sample found the lease alive (true before the first sample).
    pub fn is_alive(&self) -> bool {
        let trace = self.trace.lock().unwrap_or_else(|p| p.into_inner());
        trace.samples.last().is_none_or(|s| s.alive)
    }

    /// Stops sampling, adds the trace to the history and hands the lease back.
    pub async fn finish(self) -> Option<KeepAlive> {
        self.stop.store(true, Ordering::SeqCst);
        let keep_alive = self.task.await.ok();
        let trace = self.trace.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.recorder.lock().leases.push(trace);
        keep_alive
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn kv(kv: &etcd3::kv::KeyValue) -> Kv {
    Kv {
        key: text(kv.key()),
        value: text(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

fn event(e: &etcd3::watch::Event) -> Event {
    Event {
        kind: match e.kind() {
            etcd3::watch::EventKind::Put => EventKind::Put,
            _ => EventKind::Delete,
        },
        kv: kv(e.kv()),
        prev: e.prev_kv().map(kv),
    }
}

fn get_builder<C>(mut get: Get<C>, req: &GetReq) -> Get<C> {
    if let Some(end) = &req.end {
        get = get.range_end(end.clone());
    }
    if req.revision > 0 {
        get = get.revision(req.revision);
    }
    if req.limit > 0 {
        get = get.limit(req.limit);
    }
    if req.serializable {
        get = get.serializable();
    }
    if req.keys_only {
        get = get.keys_only();
    }
    if req.count_only {
        get = get.count_only();
    }
    get
}

fn put_builder<C>(mut put: Put<C>, req: &PutReq) -> Put<C> {
    if req.lease != 0 {
        put = put.lease(req.lease);
    }
    if req.prev_kv {
        put = put.prev_kv();
    }
    put
}

fn delete_builder<C>(mut delete: Delete<C>, req: &DeleteReq) -> Delete<C> {
    if let Some(end) = &req.end {
        delete = delete.range_end(end.clone());
    }
    if req.prev_kv {
        delete = delete.prev_kv();
    }
    delete
}

fn client_op(op: &TxnOp) -> ClientOp {
    match op {
        TxnOp::Get(g) => get_builder(Get::new(g.key.clone()), g).into(),
        TxnOp::Put(p) => put_builder(Put::new(p.key.clone(), p.value.clone()), p).into(),
        TxnOp::Delete(d) => delete_builder(Delete::new(d.key.clone()), d).into(),
    }
}

fn client_compare(c: &Compare) -> ClientCompare {
    macro_rules! apply {
        ($on:expr, $operand:expr) => {
            match c.op {
                CompareOp::Equal => $on.eq($operand),
                CompareOp::NotEqual => $on.ne($operand),
                CompareOp::Less => $on.lt($operand),
                CompareOp::Greater => $on.gt($operand),
            }
        };
    }
    let key = c.key.clone();
    match &c.target {
        CompareTarget::Value(v) => apply!(ClientCompare::value(key), v.clone()),
        CompareTarget::Version(n) => apply!(ClientCompare::version(key), *n),
        CompareTarget::Create(n) => apply!(ClientCompare::create_revision(key), *n),
        CompareTarget::Mod(n) => apply!(ClientCompare::mod_revision(key), *n),
        CompareTarget::Lease(n) => apply!(ClientCompare::lease(key), *n),
    }
}

fn get_resp(r: &etcd3::kv::GetResponse) -> GetResp {
    GetResp {
        revision: r.revision(),
        kvs: r.kvs().iter().map(kv).collect(),
        count: r.count(),
        more: r.more(),
    }
}

fn put_resp(r: &etcd3::kv::PutResponse) -> PutResp {
    PutResp {
        revision: r.revision(),
        prev: r.prev_kv().map(kv),
    }
}

fn delete_resp(r: &etcd3::kv::DeleteResponse) -> DeleteResp {
    DeleteResp {
        revision: r.revision(),
        deleted: r.deleted(),
        prev_kvs: r.prev_kvs().iter().map(kv).collect(),
    }
}

async fn execute(kv: &etcd3::Kv, req: &Request) -> etcd3::Result<Response> {
    Ok(match req {
        Request::Get(g) => Response::Get(get_resp(&get_builder(kv.get(g.key.clone()), g).await?)),
        Request::Put(p) => Response::Put(put_resp(
            &put_builder(kv.put(p.key.clone(), p.value.clone()), p).await?,
        )),
        Request::Delete(d) => Response::Delete(delete_resp(
            &delete_builder(kv.delete(d.key.clone()), d).await?,
        )),
        Request::Txn(t) => {
            let resp = kv
                .txn()
                .when(t.compares.iter().map(client_compare))
                .then(t.success.iter().map(client_op))
                .otherwise(t.failure.iter().map(client_op))
                .await?;
            Response::Txn(TxnResp {
                revision: resp.revision(),
                succeeded: resp.succeeded(),
                results: resp
                    .responses()
                    .iter()
                    .filter_map(|r| match r {
                        OpResponse::Get(g) => Some(TxnResult::Get(get_resp(g))),
                        OpResponse::Put(p) => Some(TxnResult::Put(put_resp(p))),
                        OpResponse::Delete(d) => Some(TxnResult::Delete(delete_resp(d))),
                        _ => None,
                    })
                    .collect(),
            })
        }
    })
}
