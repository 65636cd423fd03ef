//! Issue #5, reliability design §6.2: the facade's failover under member faults.
//!
//! * K5: the member serving the client's watch is blackholed (its connections stay open,
//!   nothing passes). HTTP/2 keepalive notices within keepalive interval + timeout, or,
//!   without keepalive, the first call's deadline does; from then on calls are routed away
//!   but for a few probes spaced by a doubling penalty. No call outlives its deadline.
//! * K7: a client that knows only member A, whose peers are stopped: linearizable reads and
//!   writes fail with a typed error and never return data; serializable reads return the
//!   last committed state.
//! * K2: a follower is killed under traffic and restarted: reads never fail, writes fail
//!   only with an unknown outcome, work resumes at once, acknowledged writes are kept.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_testkit::{EtcdCluster, FaultProxy, Mode, unique_prefix};
use etcd3::{Client, Error, ServerErrorKind};
use futures::StreamExt;

/// One cluster test at a time: each measures failover timings on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one call did.
#[derive(Clone, Debug)]
struct Call {
    task: usize,
    write: bool,
    /// When it started, from the test's origin.
    start: Duration,
    took: Duration,
    /// `None` on success, else the error.
    error: Option<String>,
    /// The write failed with an unknown outcome.
    unknown: bool,
}

impl Call {
    fn end(&self) -> Duration {
        self.start + self.took
    }
}

/// Puts and gets recorded by a few traffic tasks.
#[derive(Default)]
struct Traffic {
    calls: Mutex<Vec<Call>>,
    /// Acknowledged writes: key → value.
    acked: Mutex<BTreeMap<String, String>>,
    /// Writes with an unknown outcome: key → value.
    unknown: Mutex<BTreeMap<String, String>>,
    stop: AtomicBool,
}

impl Traffic {
    /// Runs `tasks` tasks, each putting a unique value and reading it back, until
    /// [`stop`](Self::stop). Times are measured from `origin`.
    fn start(
        self: &Arc<Self>,
        kv: &etcd3::Kv,
        prefix: &str,
        tasks: usize,
        origin: Instant,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..tasks)
            .map(|task| {
                let this = Arc::clone(self);
                let kv = kv.clone();
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !this.stop.load(Ordering::SeqCst) {
                        let key = format!("{prefix}t{task}/{i}");
                        let value = format!("v{task}-{i}");
                        let start = Instant::now();
                        let put = kv.put(key.as_str(), value.as_str()).await;
                        let unknown = put.as_ref().is_err_and(|e| e.is_outcome_unknown());
                        this.record(task, true, origin, start, put.as_ref().err(), unknown);
                        match put {
                            Ok(_) => {
                                this.acked
                                    .lock()
                                    .unwrap()
                                    .insert(key.clone(), value.clone());
                            }
                            Err(e) if e.is_outcome_unknown() => {
                                this.unknown
                                    .lock()
                                    .unwrap()
                                    .insert(key.clone(), value.clone());
                            }
                            Err(_) => {}
                        }
                        let start = Instant::now();
                        let get = kv.get(key.as_str()).await;
                        this.record(task, false, origin, start, get.as_ref().err(), false);
                        if let Ok(got) = &get {
                            let acked = this.acked.lock().unwrap().get(&key).cloned();
                            if let Some(v) = acked {
                                assert_eq!(
                                    got.value(),
                                    Some(v.as_bytes()),
                                    "a linearizable read lost the acknowledged write of {key}"
                                );
                            }
                        }
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect()
    }

    fn record(
        &self,
        task: usize,
        write: bool,
        origin: Instant,
        start: Instant,
        error: Option<&Error>,
        unknown: bool,
    ) {
        self.calls.lock().unwrap().push(Call {
            task,
            write,
            start: start - origin,
            took: start.elapsed(),
            error: error.map(|e| format!("{e:?}")),
            unknown,
        });
    }

    async fn stop(&self, tasks: Vec<tokio::task::JoinHandle<()>>) -> Vec<Call> {
        self.stop.store(true, Ordering::SeqCst);
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a traffic task did not stop")
                .expect("a traffic task panicked");
        }
        let mut calls = self.calls.lock().unwrap().clone();
        calls.sort_by_key(|c| c.start);
        calls
    }

    /// Every acknowledged write is readable with its value; every write with an unknown
    /// outcome is either absent or has its value.
    async fn check_writes(&self, kv: &etcd3::Kv) {
        let acked = self.acked.lock().unwrap().clone();
        let unknown = self.unknown.lock().unwrap().clone();
        for (key, value) in &acked {
            let got = kv.get(key.as_str()).await.expect("final read");
            assert_eq!(
                got.value(),
                Some(value.as_bytes()),
                "acknowledged {key} lost"
            );
        }
        for (key, value) in &unknown {
            let got = kv.get(key.as_str()).await.expect("final read");
            if let Some(v) = got.value() {
                assert_eq!(v, value.as_bytes(), "{key}");
            }
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The index of the proxy whose member serves the client's watch: a large value is written
/// straight to a member, and only the watch's connection carries it back.
async fn watch_member(cluster: &EtcdCluster, proxies: &[FaultProxy], key: &str) -> usize {
    let direct = Client::connect([cluster.member(0).client_url()])
        .await
        .unwrap();
    let before: Vec<u64> = proxies
        .iter()
        .map(|p| p.stats().bytes_server_to_client)
        .collect();
    direct.kv().put(key, vec![b'x'; 64 * 1024]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (grown, member) = loop {
        let grown: Vec<u64> = proxies
            .iter()
            .zip(&before)
            .map(|(p, b)| p.stats().bytes_server_to_client - b)
            .collect();
        if let Some(member) = grown.iter().position(|&g| g >= 64 * 1024) {
            break (grown, member);
        }
        assert!(
            Instant::now() < deadline,
            "no proxy carried the watch event: {grown:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        grown.iter().filter(|&&g| g >= 64 * 1024).count(),
        1,
        "{grown:?}"
    );
    member
}

const K5_BLACKHOLE: Duration = Duration::from_secs(8);
/// A call slower than this went to the blackholed member (the others answer in
/// milliseconds).
const K5_SLOW: Duration = Duration::from_millis(600);

/// How a K5 client is set up, and what it is held to.
struct K5 {
    keep_alive: Option<(Duration, Duration)>,
    request_timeout: Duration,
    /// The longest the client may take to notice the stall (the first call to the
    /// blackholed member ends); from then on calls are routed away from it.
    detected_within: Duration,
    /// Calls that still went to the blackholed member after that: once a member's penalty
    /// is over, the next calls try it again (one per traffic task at most), and the
    /// penalty doubles each time (0.5, 1, 2, 4 s).
    max_late_hits: usize,
}

/// What a K5 run measured.
#[derive(Debug)]
struct K5Run {
    calls: Vec<Call>,
    faulted: Duration,
    healed: Duration,
    watch_resumed: Option<Duration>,
}

impl K5Run {
    /// Calls that started during the blackhole and were slow or failed.
    fn hits(&self) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.start >= self.faulted && c.start < self.healed)
            .filter(|c| c.took >= K5_SLOW || c.error.is_some())
            .collect()
    }
}

/// K5: the proxy of the member serving the client's watch is blackholed for 8 s under
/// put/get traffic from two tasks, then passes traffic again.
async fn k5(setup: &K5) -> K5Run {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::builder(3)
        .arg("--grpc-keepalive-min-time=500ms")
        .start()
        .await;
    let mut proxies = Vec::new();
    for m in cluster.members() {
        proxies.push(FaultProxy::start(m.client_addr()).await);
    }
    let builder =
        Client::builder(proxies.iter().map(FaultProxy::url)).request_timeout(setup.request_timeout);
    let builder = match setup.keep_alive {
        // The cluster allows pings every 500 ms (above).
        Some((interval, timeout)) => builder
            .keep_alive(interval, timeout)
            .server_keepalive_min_time(Duration::from_millis(500)),
        None => builder.no_keep_alive(),
    };
    let client = builder.connect().await.unwrap();
    let p = unique_prefix("k5");

    // A watch stream stays open, so keepalive pings are allowed on its connection.
    let mut watch = client.watch(format!("{p}w/")).prefix().await.unwrap();
    let events = Arc::new(AtomicUsize::new(0));
    let watched = {
        let events = Arc::clone(&events);
        tokio::spawn(async move {
            while let Some(item) = watch.next().await {
                let r = item.expect("the watch failed");
                events.fetch_add(r.events().len(), Ordering::SeqCst);
            }
        })
    };
    let faulty = watch_member(&cluster, &proxies, &format!("{p}w/probe")).await;
    let writer = Client::connect(cluster.client_urls()).await.unwrap();

    let origin = Instant::now();
    let traffic = Arc::new(Traffic::default());
    let tasks = traffic.start(client.kv(), &p, 2, origin);
    tokio::time::sleep(Duration::from_secs(2)).await;

    proxies[faulty].set_mode(Mode::Blackhole).await;
    let faulted = origin.elapsed();
    let events_at_fault = events.load(Ordering::SeqCst);
    // Writes of watched keys go straight to the members, to see when the watch resumes.
    let mut watch_resumed = None;
    let mut i = 0;
    while origin.elapsed() < faulted + K5_BLACKHOLE {
        writer
            .kv()
            .put(format!("{p}w/{i}"), "x")
            .await
            .expect("a direct write");
        i += 1;
        if watch_resumed.is_none() && events.load(Ordering::SeqCst) > events_at_fault {
            watch_resumed = Some(origin.elapsed() - faulted);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxies[faulty].set_mode(Mode::Pass).await;
    let healed = origin.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = traffic.stop(tasks).await;
    traffic.check_writes(client.kv()).await;
    // The watch rode the blackhole out: it neither failed nor ended.
    if watched.is_finished() {
        watched.await.expect("the watch failed");
        panic!("the watch stream ended during K5");
    }
    watched.abort();
    let run = K5Run {
        calls,
        faulted,
        healed,
        watch_resumed,
    };

    let hits = run.hits();
    let last_hit = hits.iter().map(|c| c.end() - faulted).max();
    // The client learns of the stall when the first call to the member ends.
    let detected = hits
        .iter()
        .map(|c| c.end() - faulted)
        .min()
        .expect("no call went to the blackholed member");
    let routed_away = detected + Duration::from_millis(100);
    let late = hits
        .iter()
        .filter(|c| c.start - faulted > routed_away)
        .count();
    let during = run
        .calls
        .iter()
        .filter(|c| c.start >= faulted && c.start < healed)
        .count();
    let slowest = run.calls.iter().map(|c| c.took).max().unwrap_or_default();
    eprintln!(
        "K5 (keepalive {:?}, timeout {:?}): blackholed member {faulty}; {during} calls during \
         the blackhole, {} slow or failed ({} failed), the last ending {:.2?}s after the \
         fault; first detected after {:.2}s, {late} started later (probes); slowest call {:.2}s; watch resumed after \
         {watch_resumed:.2?}; connections accepted per proxy {:?}",
        setup.keep_alive,
        setup.request_timeout,
        hits.len(),
        hits.iter().filter(|c| c.error.is_some()).count(),
        last_hit.map(secs),
        secs(detected),
        secs(slowest),
        proxies
            .iter()
            .map(|p| p.stats().connections_accepted)
            .collect::<Vec<_>>(),
    );
    for c in &hits {
        eprintln!(
            "  t+{:.2}s task {} {} took {:.2}s: {}",
            secs(c.start - faulted),
            c.task,
            if c.write { "put" } else { "get" },
            secs(c.took),
            c.error.as_deref().unwrap_or("ok")
        );
    }

    for c in &run.calls {
        assert!(
            c.took <= setup.request_timeout + Duration::from_millis(250),
            "a call outlived its deadline: {c:?}"
        );
        if let Some(e) = &c.error {
            assert!(
                c.unknown || e.starts_with("Timeout {"),
                "a call may fail only by its deadline or with an unknown outcome: {c:?}"
            );
        }
    }
    assert!(
        detected <= setup.detected_within,
        "the stall was noticed only {detected:?} after the fault"
    );
    assert!(
        late <= setup.max_late_hits,
        "{late} calls went to the blackholed member after it was noticed at {detected:?}"
    );
    assert!(
        run.calls
            .iter()
            .filter(|c| c.start >= faulted + routed_away && c.start < healed)
            .count()
            > 10,
        "too little traffic during the blackhole"
    );
    assert!(
        run.calls
            .iter()
            .any(|c| c.start > healed && c.error.is_none()),
        "no call succeeded after the blackhole"
    );
    run
}

/// K5 with keepalive 1 s / 500 ms (allowed by `--grpc-keepalive-min-time=500ms` while
/// streams are open) and a 2 s deadline: keepalive notices the dead connection, the calls
/// on it fail (reads are resent to another member, so only writes fail, with an unknown
/// outcome), and from keepalive + timeout + 1 s after the fault on, calls no longer go to
/// that member but for a rare retry once its penalty is over. The watch moves too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k5_calls_move_off_a_blackholed_member_within_keepalive() {
    let run = k5(&K5 {
        keep_alive: Some((Duration::from_secs(1), Duration::from_millis(500))),
        request_timeout: Duration::from_secs(2),
        // Keepalive interval + timeout + 1 s.
        detected_within: Duration::from_millis(2500),
        // Probes at about +2.0 (or +2.5) and +4.5 s: the penalty is 0.5 s, then 1 s or 2 s.
        max_late_hits: 4,
    })
    .await;
    for c in run.hits() {
        assert!(
            c.error.is_none() || c.write,
            "reads are resent, never fail: {c:?}"
        );
    }
    let resumed = run
        .watch_resumed
        .expect("the watch delivered nothing during the blackhole");
    assert!(
        resumed < Duration::from_secs(4),
        "watch resumed after {resumed:?}"
    );
}

/// K5 without keepalive (the upstream `…NoKeepAlive*` tests): nothing notices the stalled
/// connection but the 1 s deadline of the calls on it. A call that missed its deadline
/// counts against its member like a broken connection, so later calls go elsewhere and
/// only a few probes, spaced by a doubling penalty, still reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k5_calls_move_off_a_blackholed_member_after_a_timeout() {
    let run = k5(&K5 {
        keep_alive: None,
        request_timeout: Duration::from_secs(1),
        // The deadline + 1 s.
        detected_within: Duration::from_secs(2),
        // Probes at about +1.5, +3.0 and +6.0 s. Before a timed-out call counted against its
        // member, every call sent to it timed out: about 14 after the first.
        max_late_hits: 6,
    })
    .await;
    // Reads that time out fail (the deadline covers the retries); nothing else fails.
    let timeouts = run.hits().iter().filter(|c| c.error.is_some()).count();
    assert!(timeouts <= 8, "{timeouts} calls timed out");
}

/// Whether `e` is one of the errors a linearizable call on a member without quorum may
/// fail with.
fn is_no_quorum_error(e: &Error) -> bool {
    matches!(e, Error::Timeout { .. })
        || matches!(
            e.server_kind(),
            Some(
                ServerErrorKind::RequestTimedOut
                    | ServerErrorKind::LeaderChanged
                    | ServerErrorKind::NoLeader
            )
        )
}

const K7_TIMEOUT: Duration = Duration::from_secs(2);
const K7_PAUSE: Duration = Duration::from_secs(6);

/// K7: the client knows only member A (a follower); the two other members are stopped for
/// 6 s, so A has no quorum. Linearizable gets and puts on A fail with a typed error within
/// their deadline and never return data; serializable gets return the value written
/// before. After SIGCONT, calls work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k7_a_member_without_quorum_serves_no_linearizable_call() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let (_, followers) = cluster.leader_and_followers().await;
    let a = followers[0];
    let others: Vec<usize> = (0..3).filter(|&m| m != a).collect();
    let client = Client::builder([cluster.member(a).client_url()])
        .request_timeout(K7_TIMEOUT)
        .connect()
        .await
        .unwrap();
    let key = format!("{}k", unique_prefix("k7"));
    let written = client.kv().put(key.as_str(), "before").await.unwrap();
    let revision = written.header().revision;
    // A has applied the write before it is cut off.
    let seen = client.kv().get(key.as_str()).await.unwrap();
    assert_eq!(seen.value(), Some(&b"before"[..]));

    for &m in &others {
        cluster.member(m).pause();
    }
    let stopped = Instant::now();
    let failures: Mutex<BTreeMap<String, (usize, Duration, Duration)>> = Mutex::default();
    let note = |what: &str, e: &Error, took: Duration| {
        let kind = match e {
            Error::Timeout { .. } => "Timeout".to_owned(),
            Error::Server(s) => format!("{:?}", s.kind()),
            other => format!("{other:?}"),
        };
        let mut failures = failures.lock().unwrap();
        let entry =
            failures
                .entry(format!("{what}: {kind}"))
                .or_insert((0, Duration::MAX, Duration::ZERO));
        entry.0 += 1;
        entry.1 = entry.1.min(took);
        entry.2 = entry.2.max(took);
    };
    // Only calls started well inside the pause count: a call needs up to its deadline.
    let inside = || stopped.elapsed() + K7_TIMEOUT <= K7_PAUSE;
    let deadline = K7_TIMEOUT + Duration::from_millis(250);
    let kv = client.kv();
    let gets = async {
        while inside() {
            let t = Instant::now();
            match kv.get(key.as_str()).await {
                Ok(r) => panic!("a linearizable get without quorum returned data: {r:?}"),
                Err(e) => {
                    assert!(is_no_quorum_error(&e), "get: {e:?}");
                    note("get", &e, t.elapsed());
                }
            }
            assert!(t.elapsed() <= deadline, "get took {:?}", t.elapsed());
        }
    };
    let puts = async {
        let mut i = 0;
        while inside() {
            let t = Instant::now();
            match kv.put(key.as_str(), format!("during-{i}")).await {
                Ok(r) => panic!("a put without quorum succeeded: {r:?}"),
                Err(e) => {
                    assert!(is_no_quorum_error(&e), "put: {e:?}");
                    note("put", &e, t.elapsed());
                }
            }
            assert!(t.elapsed() <= deadline, "put took {:?}", t.elapsed());
            i += 1;
        }
    };
    let serializable = async {
        let (mut ok, mut failed) = (0, 0);
        while inside() {
            let t = Instant::now();
            match kv.get(key.as_str()).serializable().await {
                Ok(r) => {
                    ok += 1;
                    assert_eq!(r.value(), Some(&b"before"[..]), "serializable read");
                    assert_eq!(r.header().revision, revision, "serializable read revision");
                }
                Err(e) => {
                    failed += 1;
                    note("serializable get", &e, t.elapsed());
                }
            }
            assert!(
                t.elapsed() <= deadline,
                "serializable get took {:?}",
                t.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (ok, failed)
    };
    let ((), (), (serializable_ok, serializable_err)) = tokio::join!(gets, puts, serializable);
    let failures = failures.into_inner().unwrap();
    tokio::time::sleep(K7_PAUSE.saturating_sub(stopped.elapsed())).await;
    for &m in &others {
        cluster.member(m).resume();
    }
    let resumed = Instant::now();
    let back = loop {
        let put = client.kv().put(key.as_str(), "after").await;
        if put.is_ok() && client.kv().get(key.as_str()).await.is_ok() {
            break resumed.elapsed();
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "not back 20 s after SIGCONT: {put:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "K7: member {a} alone for {:.1}s; failures (count, fastest, \
         slowest): {failures:?}; serializable gets: {serializable_ok} ok (value and revision \
         as before), {serializable_err} failed; calls work {:.2}s after SIGCONT",
        secs(K7_PAUSE),
        secs(back)
    );
    let count = |what: &str| {
        failures
            .iter()
            .filter(|(k, _)| k.starts_with(what))
            .map(|(_, v)| v.0)
            .sum::<usize>()
    };
    assert!(count("get:") >= 2 && count("put:") >= 2, "{failures:?}");
    assert!(serializable_ok + serializable_err >= 10);
    assert_eq!(
        client.kv().get(key.as_str()).await.unwrap().value(),
        Some(&b"after"[..])
    );
}

/// K2: a follower is SIGKILLed 2 s into put/get traffic from two tasks and restarted 3 s
/// later. Calls on the dead member fail fast and move on: reads never fail, writes fail
/// only with an unknown outcome (sent on the connection that broke), some call succeeds
/// within 2 s of the kill, no call is slow, and every acknowledged write is readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k2_calls_ride_out_a_follower_kill_and_restart() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::start(3).await;
    let victim = cluster.follower().await;
    let client = Client::builder(cluster.client_urls())
        .request_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let p = unique_prefix("k2");
    let origin = Instant::now();
    let traffic = Arc::new(Traffic::default());
    let tasks = traffic.start(client.kv(), &p, 2, origin);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.member(victim).kill();
    let killed = origin.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.member(victim).restart().await;
    let restarted = origin.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = traffic.stop(tasks).await;

    let after_kill: Vec<&Call> = calls.iter().filter(|c| c.start >= killed).collect();
    let failed: Vec<&&Call> = after_kill.iter().filter(|c| c.error.is_some()).collect();
    let first_ok = after_kill
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| c.end() - killed)
        .min();
    let slowest = after_kill.iter().map(|c| c.took).max().unwrap_or_default();
    let during = calls
        .iter()
        .filter(|c| c.start >= killed && c.start < restarted)
        .count();
    eprintln!(
        "K2: follower {victim} killed at {:.2}s, back at {:.2}s; {} calls after the kill \
         ({during} while it was down), {} failed ({} reads, {} writes with an unknown \
         outcome); first success {:.3?} after the kill; slowest call after the kill {:.3}s; \
         {} acknowledged writes",
        secs(killed),
        secs(restarted),
        after_kill.len(),
        failed.len(),
        failed.iter().filter(|c| !c.write).count(),
        failed.iter().filter(|c| c.write && c.unknown).count(),
        first_ok.map(secs),
        secs(slowest),
        traffic.acked.lock().unwrap().len(),
    );
    for c in &failed {
        eprintln!(
            "  t+{:.3}s task {} {}: {}",
            secs(c.start - killed),
            c.task,
            if c.write { "put" } else { "get" },
            c.error.as_deref().unwrap_or("")
        );
    }
    for c in &failed {
        assert!(c.write, "a read failed: {c:?}");
        assert!(
            c.unknown,
            "a write failed other than with an unknown outcome: {c:?}"
        );
    }
    assert!(
        failed.len() <= 4,
        "{} calls failed: the dead member was not avoided",
        failed.len()
    );
    let first_ok = first_ok.expect("no call succeeded after the kill");
    assert!(
        first_ok <= Duration::from_secs(2),
        "first success {first_ok:?}"
    );
    assert!(
        slowest <= Duration::from_secs(2),
        "calls on the dead member did not fail fast: slowest {slowest:?}"
    );
    assert!(during > 20, "too little traffic while the member was down");
    traffic.check_writes(client.kv()).await;
}
