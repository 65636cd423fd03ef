//! The recipes of Go's `client/v3/experimental/recipes` in `etcd3::concurrency`, against
//! real etcd: each under a member kill on a three-member cluster, with several tasks on
//! clients and sessions of their own, plus the basic contracts on the shared server.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_testkit::{EtcdCluster, FaultProxy, Mode, shared_server, unique_prefix};
use etcd_tests::logs::Capture;
use etcd3::Client;
use etcd3::concurrency::{Error, Session};
use etcd3::kv::Op;

/// Every single step is bounded; generous, for a loaded machine.
const STEP: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, fut: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP:?}"))
}

/// Retries `op` on errors (a member killed under a call) until it succeeds, for `STEP`.
async fn retry<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = etcd3::Result<T>>,
{
    let deadline = Instant::now() + STEP;
    loop {
        match tokio::time::timeout(STEP, op()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(e)) => {
                assert!(
                    !e.is_session_expired(),
                    "{what}: the session must survive a member kill: {e:?}"
                );
                assert!(Instant::now() < deadline, "{what}: still failing: {e:?}");
                eprintln!("{what}: {e}, retrying");
            }
            Err(_) => panic!("{what}: no answer within {STEP:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 10 ms until it holds, for `STEP`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + STEP;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {STEP:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn count_keys(client: &Client, prefix: &str) -> usize {
    bounded("count", client.kv().get(prefix).prefix())
        .await
        .unwrap()
        .kvs()
        .len()
}

/// A client over every member (starting at member `i`, so the clients spread) and a
/// session on it.
async fn participant(cluster: &EtcdCluster, i: usize) -> (Client, Session) {
    let mut urls = cluster.client_urls();
    let n = urls.len();
    urls.rotate_left(i % n);
    let client = bounded(
        "connect",
        Client::builder(urls)
            .request_timeout(Duration::from_secs(3))
            .connect(),
    )
    .await
    .unwrap();
    let session = bounded(
        "session",
        Session::new(&client).ttl(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    (client, session)
}

/// What the tasks had done (by `progress`) at the kill and at the restart.
struct Kill {
    member: usize,
    at_kill: usize,
    at_restart: usize,
}

/// Kills the leader, restarts it after `down`, and lets the tasks run for `after` more;
/// checks that the tasks made progress while it was down.
async fn kill_leader_while_running(
    cluster: &EtcdCluster,
    down: Duration,
    after: Duration,
    progress: impl Fn() -> usize,
) -> Kill {
    let member = cluster.leader().await;
    let at_kill = progress();
    cluster.member(member).kill();
    tokio::time::sleep(down).await;
    let at_restart = progress();
    cluster.member(member).restart().await;
    tokio::time::sleep(after).await;
    assert!(
        at_restart > at_kill,
        "no progress while member {member} was down: {at_kill} then {at_restart}"
    );
    Kill {
        member,
        at_kill,
        at_restart,
    }
}

// ---------------------------------------------------------------------------------------
// RwLock
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rw_lock_keys_sharing_and_try() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let name = format!("{}rw", unique_prefix("rw_basic"));
    let sessions: Vec<Session> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(
                Session::new(&client)
                    .ttl(Duration::from_secs(5))
                    .await
                    .unwrap(),
            );
        }
        v
    };
    let locks: Vec<_> = sessions.iter().map(|s| s.rw_lock(&name)).collect();

    // Two readers at once.
    let r0 = locks[0].read().await.unwrap();
    let r1 = locks[1].read().await.unwrap();
    assert_eq!(
        r0.key(),
        format!("{name}/read/{:x}", sessions[0].lease_id()).as_bytes()
    );
    assert!(r1.revision() > r0.revision());
    // A writer cannot take it.
    match locks[2].try_write().await {
        Err(Error::Locked { owner }) => assert_eq!(&owner[..], r0.key()),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(count_keys(&client, &name).await, 2, "try_write left no key");

    // A waiting writer holds back a later reader.
    let writer = {
        let lock = locks[2].clone();
        tokio::spawn(async move { lock.write().await })
    };
    eventually("the writer queued", || async {
        count_keys(&client, &format!("{name}/write/")).await == 1
    })
    .await;
    match locks[3].try_read().await {
        Err(Error::Locked { owner }) => assert_eq!(&owner[..], locks[2].write_key()),
        other => panic!("expected Locked behind the writer, got {other:?}"),
    }
    let late_reader = {
        let lock = locks[3].clone();
        tokio::spawn(async move { lock.read().await })
    };
    eventually("the late reader queued", || async {
        count_keys(&client, &format!("{name}/read/")).await == 3
    })
    .await;
    assert!(r0.unlock().await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "one reader still holds");
    drop(r1); // unlocks in the background
    let w = bounded("writer", writer).await.unwrap().unwrap();
    assert!(w.revision() > r0.revision());
    assert!(
        w.txn()
            .then([Op::put(format!("{name}-data"), "w")])
            .await
            .unwrap()
            .succeeded()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!late_reader.is_finished(), "the writer holds");
    assert!(w.unlock().await.unwrap());
    let late = bounded("late reader", late_reader).await.unwrap().unwrap();
    assert!(late.revision() > w.revision());
    late.unlock().await.unwrap();

    // Cancel-safety: a dropped waiting write removes its key.
    let r = locks[0].read().await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(300), locks[1].write()).await;
    assert!(waiting.is_err(), "the writer waits for the reader");
    eventually("the cancelled writer's key is removed", || async {
        count_keys(&client, &format!("{name}/write/")).await == 0
    })
    .await;

    // A waiter whose session is lost fails with SessionExpired.
    let waiter = {
        let lock = locks[2].clone();
        tokio::spawn(async move { lock.write().await })
    };
    eventually("the writer queued", || async {
        count_keys(&client, &format!("{name}/write/")).await == 1
    })
    .await;
    sessions[2].close().await.unwrap();
    match bounded("lost writer", waiter).await.unwrap() {
        Err(Error::SessionExpired { lease_id, .. }) => {
            assert_eq!(lease_id, sessions[2].lease_id())
        }
        other => panic!("expected SessionExpired, got {other:?}"),
    }
    r.unlock().await.unwrap();
    for s in &sessions {
        s.close().await.unwrap();
    }
}

/// What the critical sections of the readers and writers saw.
#[derive(Default)]
struct RwRecord {
    readers: AtomicUsize,
    writers: AtomicUsize,
    overlaps: AtomicUsize,
    last_writer_token: AtomicI64,
    reads: AtomicUsize,
    writes: AtomicUsize,
}

/// Three readers and two writers, each on a client and session of its own, loop over
/// the lock while the leader is killed and restarted. In every critical section the
/// in-process record and a fenced write to etcd prove: never a writer together with
/// anyone, readers together (at least once), every fenced write applied while held,
/// writers' tokens increasing, and every reader's token above the last writer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rw_lock_excludes_writers_across_a_leader_kill() {
    let started = Instant::now();
    let cluster = EtcdCluster::start(3).await;
    let name = "rw/lock".to_owned();
    let record = Arc::new(RwRecord::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (client, session) = participant(&cluster, i).await;
        let lock = session.rw_lock(&name);
        let (record, stop) = (record.clone(), stop.clone());
        let writer = i >= 3;
        tasks.push(tokio::spawn(async move {
            let data = format!("rw/data/{i}");
            while !stop.load(Ordering::Relaxed) {
                if writer {
                    let guard = retry("write lock", || lock.write()).await;
                    let token = guard.revision();
                    assert_eq!(
                        record.writers.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two writers"
                    );
                    assert_eq!(
                        record.readers.load(Ordering::SeqCst),
                        0,
                        "a writer with readers"
                    );
                    let before = record.last_writer_token.fetch_max(token, Ordering::SeqCst);
                    assert!(
                        before < token,
                        "writer tokens increase: {before} then {token}"
                    );
                    let put = retry("fenced write", || {
                        guard
                            .txn()
                            .then([Op::put(data.as_str(), token.to_string())])
                            .into_future()
                    })
                    .await;
                    assert!(put.succeeded(), "a writer's fenced write while held");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    assert_eq!(
                        record.readers.load(Ordering::SeqCst),
                        0,
                        "a writer with readers"
                    );
                    record.writers.fetch_sub(1, Ordering::SeqCst);
                    record.writes.fetch_add(1, Ordering::Relaxed);
                    retry("write unlock", || guard.unlock()).await;
                } else {
                    let guard = retry("read lock", || lock.read()).await;
                    let token = guard.revision();
                    let others = record.readers.fetch_add(1, Ordering::SeqCst);
                    if others > 0 {
                        record.overlaps.fetch_add(1, Ordering::Relaxed);
                    }
                    assert_eq!(
                        record.writers.load(Ordering::SeqCst),
                        0,
                        "a reader with a writer"
                    );
                    let last = record.last_writer_token.load(Ordering::SeqCst);
                    assert!(
                        last < token,
                        "a reader's token {token} below the last writer's {last}"
                    );
                    let put = retry("fenced reader write", || {
                        guard
                            .txn()
                            .then([Op::put(data.as_str(), token.to_string())])
                            .into_future()
                    })
                    .await;
                    assert!(put.succeeded(), "a reader's fenced write while held");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    assert_eq!(
                        record.writers.load(Ordering::SeqCst),
                        0,
                        "a reader with a writer"
                    );
                    record.readers.fetch_sub(1, Ordering::SeqCst);
                    record.reads.fetch_add(1, Ordering::Relaxed);
                    retry("read unlock", || guard.unlock()).await;
                }
            }
            session.close().await.ok();
            drop(client);
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = kill_leader_while_running(
        &cluster,
        Duration::from_secs(4),
        Duration::from_secs(2),
        || record.reads.load(Ordering::Relaxed) + record.writes.load(Ordering::Relaxed),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        bounded("task", task).await.unwrap();
    }
    let (reads, writes) = (
        record.reads.load(Ordering::Relaxed),
        record.writes.load(Ordering::Relaxed),
    );
    eprintln!(
        "rw_lock: killed leader {} after {} critical sections, restarted after {}; {reads} \
         reads, {writes} writes, {} reader overlaps, last writer token {}; {:?}",
        killed.member,
        killed.at_kill,
        killed.at_restart,
        record.overlaps.load(Ordering::Relaxed),
        record.last_writer_token.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(
        record.overlaps.load(Ordering::Relaxed) > 0,
        "readers shared the lock"
    );
    assert!(writes >= 4 && reads >= 4, "both kinds made progress");
    assert!(
        reads + writes > killed.at_restart,
        "progress after the restart"
    );
}

// ---------------------------------------------------------------------------------------
// Queue and PriorityQueue
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn queue_fifo_wait_and_priorities() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let name = format!("{}q", unique_prefix("queue_basic"));
    let queue = client.queue(&name);
    assert_eq!(queue.try_dequeue().await.unwrap(), None);
    let a = queue.enqueue("a").await.unwrap();
    let b = queue.enqueue("b").await.unwrap();
    assert!(a.key().starts_with(format!("{name}/").as_bytes()));
    assert!(b.revision() > a.revision());
    assert_eq!(queue.len().await.unwrap(), 2);
    assert_eq!(queue.dequeue().await.unwrap(), a);
    assert_eq!(queue.dequeue().await.unwrap().value(), b"b");
    assert!(queue.is_empty().await.unwrap());

    // An empty queue's dequeue waits for the next put.
    let waiting = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.dequeue().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing to take yet");
    let c = queue.enqueue("c").await.unwrap();
    assert_eq!(
        bounded("waiting dequeue", waiting).await.unwrap().unwrap(),
        c
    );
    // The claim markers are removed again.
    eventually("no claim marker left", || async {
        count_keys(&client, &format!("{name}.claims/")).await == 0
    })
    .await;

    // Priorities first, FIFO within one.
    let pq = client.priority_queue(format!("{name}-pq"));
    for (value, priority) in [
        ("p5a", 5),
        ("p0a", 0),
        ("p5b", 5),
        ("p9", 9),
        ("p0b", 0),
        ("p1", 1),
    ] {
        let item = pq.enqueue(value, priority).await.unwrap();
        assert_eq!(item.priority(), Some(priority));
    }
    let mut order = Vec::new();
    while let Some(item) = pq.try_dequeue().await.unwrap() {
        order.push(String::from_utf8(item.value().to_vec()).unwrap());
    }
    assert_eq!(order, ["p0a", "p0b", "p1", "p5a", "p5b", "p9"]);
}

/// Dequeues with retries on errors that left nothing applied; an unknown outcome is a
/// failure (a dequeue resolves its own).
async fn dequeue_retrying<F, Fut>(what: &str, mut op: F) -> Option<etcd3::concurrency::Item>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = etcd3::Result<Option<etcd3::concurrency::Item>>>,
{
    let deadline = Instant::now() + STEP;
    loop {
        match tokio::time::timeout(STEP, op()).await {
            Ok(Ok(item)) => return item,
            Ok(Err(e)) => {
                assert!(
                    !e.is_outcome_unknown(),
                    "{what}: a claim left unknown: {e:?}"
                );
                assert!(Instant::now() < deadline, "{what}: still failing: {e:?}");
                eprintln!("{what}: {e}, retrying");
            }
            Err(_) => panic!("{what}: no answer within {STEP:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two producers enqueue numbered items while three consumers dequeue, across a leader
/// kill and restart; then one stop item per consumer. Every item whose enqueue succeeded
/// is dequeued exactly once, an item whose enqueue's outcome was unknown at most once,
/// nothing else; each consumer gets items in increasing create revision (it always takes
/// the oldest), so each producer's items reach it in the order they were produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delivers_every_item_once_across_a_leader_kill() {
    let started = Instant::now();
    let cluster = EtcdCluster::start(3).await;
    let name = "q/jobs";
    let produced = Arc::new(AtomicUsize::new(0));
    let consumed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let mut consumers = Vec::new();
    for c in 0..3 {
        let (client, _session) = participant(&cluster, c).await;
        let consumed = consumed.clone();
        consumers.push(tokio::spawn(async move {
            let queue = client.queue(name);
            let mut got: Vec<(String, i64)> = Vec::new();
            loop {
                let item =
                    dequeue_retrying("dequeue", || async { queue.dequeue().await.map(Some) })
                        .await
                        .unwrap();
                let value = String::from_utf8(item.value().to_vec()).unwrap();
                if value == "stop" {
                    return got;
                }
                got.push((value, item.revision()));
                consumed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut producers = Vec::new();
    for p in 0..2 {
        let (client, _session) = participant(&cluster, p + 1).await;
        let (produced, stop) = (produced.clone(), stop.clone());
        producers.push(tokio::spawn(async move {
            let queue = client.queue(name);
            let (mut sure, mut unsure) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("p{p}-{n:05}");
                match tokio::time::timeout(STEP, queue.enqueue(value.as_str())).await {
                    Ok(Ok(item)) => {
                        sure.push((value, item.revision()));
                        produced.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                    Ok(Err(e)) if e.is_outcome_unknown() => {
                        eprintln!("enqueue {value}: outcome unknown: {e}");
                        unsure.push(value);
                        n += 1;
                    }
                    // Not applied: the same item again.
                    Ok(Err(e)) => eprintln!("enqueue {value}: {e}, retrying"),
                    Err(_) => panic!("enqueue {value}: no answer within {STEP:?}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (sure, unsure)
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = kill_leader_while_running(
        &cluster,
        Duration::from_secs(4),
        Duration::from_secs(2),
        || consumed.load(Ordering::Relaxed),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut sure = Vec::new();
    let mut unsure = Vec::new();
    for producer in producers {
        let (s, u) = bounded("producer", producer).await.unwrap();
        // Each producer's items were enqueued in order.
        assert!(s.windows(2).all(|w| w[0].1 < w[1].1), "producer FIFO");
        sure.extend(s);
        unsure.extend(u);
    }
    let admin = Client::connect(cluster.client_urls()).await.unwrap();
    let stops = admin.queue(name);
    for _ in 0..3 {
        retry("stop item", || stops.enqueue("stop")).await;
    }
    let mut got = Vec::new();
    for consumer in consumers {
        let items = bounded("consumer", consumer).await.unwrap();
        assert!(
            items.windows(2).all(|w| w[0].1 < w[1].1),
            "a consumer gets items in create revision order"
        );
        for producer in ["p0-", "p1-"] {
            let seqs: Vec<&String> = items
                .iter()
                .map(|i| &i.0)
                .filter(|v| v.starts_with(producer))
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{producer} FIFO per consumer"
            );
        }
        got.extend(items);
    }
    let mut values: Vec<&str> = got.iter().map(|(v, _)| v.as_str()).collect();
    values.sort();
    let len = values.len();
    values.dedup();
    assert_eq!(values.len(), len, "an item dequeued twice");
    for (value, _) in &sure {
        assert!(
            values.binary_search(&value.as_str()).is_ok(),
            "{value} was never dequeued"
        );
    }
    let extra: Vec<&&str> = values
        .iter()
        .filter(|v| !sure.iter().any(|(s, _)| s == **v) && !unsure.contains(&v.to_string()))
        .collect();
    assert!(extra.is_empty(), "dequeued but never enqueued: {extra:?}");
    assert_eq!(stops.len().await.unwrap(), 0, "nothing left");
    eprintln!(
        "queue: killed leader {} at {} dequeued, {} at the restart; {} enqueued ({} unknown \
         outcomes), {} dequeued; {:?}",
        killed.member,
        killed.at_kill,
        killed.at_restart,
        sure.len(),
        unsure.len(),
        got.len(),
        started.elapsed()
    );
}

/// 240 items of five priorities, enqueued first; three consumers drain them across a
/// leader kill: each takes items in (priority, create revision) order, every item exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_queue_drains_in_order_across_a_leader_kill() {
    let started = Instant::now();
    let cluster = EtcdCluster::start(3).await;
    let name = "pq/jobs";
    let admin = Client::connect(cluster.client_urls()).await.unwrap();
    let pq = admin.priority_queue(name);
    for i in 0..240u16 {
        pq.enqueue(format!("{i:03}"), (i * 7) % 5).await.unwrap();
    }
    let consumed = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for c in 0..3 {
        let (client, _session) = participant(&cluster, c).await;
        let consumed = consumed.clone();
        consumers.push(tokio::spawn(async move {
            let pq = client.priority_queue(name);
            let mut got = Vec::new();
            while let Some(item) = dequeue_retrying("pq dequeue", || pq.try_dequeue()).await {
                got.push((
                    item.priority().unwrap(),
                    item.revision(),
                    item.value().to_vec(),
                ));
                consumed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            got
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = kill_leader_while_running(
        &cluster,
        Duration::from_millis(2500),
        Duration::from_millis(0),
        || consumed.load(Ordering::Relaxed),
    )
    .await;
    let mut all = Vec::new();
    for consumer in consumers {
        let got = bounded("consumer", consumer).await.unwrap();
        assert!(
            got.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)),
            "a consumer takes items by priority, then FIFO: {:?}",
            got.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>()
        );
        all.extend(got);
    }
    let mut values: Vec<Vec<u8>> = all.iter().map(|g| g.2.clone()).collect();
    values.sort();
    let expected: Vec<Vec<u8>> = (0..240).map(|i| format!("{i:03}").into_bytes()).collect();
    assert_eq!(values, expected, "every item exactly once");
    eprintln!(
        "priority queue: killed leader {} at {} dequeued, {} at the restart; {:?}",
        killed.member,
        killed.at_kill,
        killed.at_restart,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Barrier and DoubleBarrier
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn barrier_and_double_barrier_basics() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let name = format!("{}b", unique_prefix("barrier_basic"));
    let barrier = client.barrier(&name);
    bounded("wait, not held", barrier.wait()).await.unwrap();
    let revision = barrier.hold().await.unwrap();
    assert_eq!(barrier.hold().await.unwrap(), revision, "held already");
    assert!(barrier.is_held().await.unwrap());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), barrier.wait())
            .await
            .is_err(),
        "wait blocks while held"
    );
    assert!(barrier.release().await.unwrap());
    assert!(!barrier.release().await.unwrap());
    bounded("wait, released", barrier.wait()).await.unwrap();

    // A double barrier for two: the first waits, the second completes it, a third is
    // refused and leaves no key.
    let name = format!("{name}-double");
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(
            Session::new(&client)
                .ttl(Duration::from_secs(5))
                .await
                .unwrap(),
        );
    }
    let first = {
        let b = sessions[0].double_barrier(&name, 2);
        tokio::spawn(async move { b.enter().await })
    };
    let waiters = format!("{name}/waiters/");
    eventually("the first entered", || async {
        count_keys(&client, &waiters).await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished(), "one of two");
    let second = bounded("second enter", sessions[1].double_barrier(&name, 2).enter())
        .await
        .unwrap();
    let first = bounded("first enter", first).await.unwrap().unwrap();
    assert_eq!(
        second.key(),
        format!("{waiters}{:x}", sessions[1].lease_id()).as_bytes()
    );
    assert!(second.revision() > first.revision());
    assert!(
        first
            .txn()
            .then([Op::put(format!("{name}-data"), "x")])
            .await
            .unwrap()
            .succeeded(),
        "a fenced write inside the barrier"
    );
    match sessions[2].double_barrier(&name, 2).enter().await {
        Err(Error::BarrierFull { count }) => assert_eq!(count, 2),
        other => panic!("expected BarrierFull, got {other:?}"),
    }
    assert_eq!(count_keys(&client, &waiters).await, 2, "the third withdrew");

    // Leave: the first to leave waits for the other.
    let leaving = tokio::spawn(async move { first.leave().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!leaving.is_finished(), "waits for the other participant");
    bounded("second leave", second.leave()).await.unwrap();
    bounded("first leave", leaving).await.unwrap().unwrap();
    assert_eq!(
        count_keys(&client, &format!("{name}/")).await,
        0,
        "nothing left"
    );

    // Cancel-safety: a dropped, waiting enter removes its key.
    let name = format!("{name}-cancel");
    let barrier = sessions[0].double_barrier(&name, 2);
    let waiting = tokio::spawn(async move { barrier.enter().await });
    eventually("the participant entered", || async {
        count_keys(&client, &format!("{name}/")).await == 1
    })
    .await;
    assert!(!waiting.is_finished(), "one of two waits");
    waiting.abort();
    eventually("the cancelled participant's key is removed", || async {
        count_keys(&client, &format!("{name}/")).await == 0
    })
    .await;
    for s in &sessions {
        s.close().await.unwrap();
    }
}

/// Instants at which tasks passed a point, shared.
type Passed = Arc<std::sync::Mutex<Vec<(usize, Instant)>>>;

fn passed(log: &Passed, i: usize) {
    log.lock().unwrap().push((i, Instant::now()));
}

/// Waits until `log` holds `n` entries, and returns their instants.
async fn all_passed(log: &Passed, n: usize, what: &str) -> Vec<Instant> {
    eventually(what, || async { log.lock().unwrap().len() == n }).await;
    log.lock().unwrap().iter().map(|(_, at)| *at).collect()
}

/// Asserts that every instant is after `from` and within `window` of it.
fn within(instants: &[Instant], from: Instant, window: Duration, what: &str) {
    for at in instants {
        assert!(*at >= from, "{what}: one passed before it was allowed");
        assert!(
            at.duration_since(from) <= window,
            "{what}: one passed {:?} after, not within {window:?}",
            at.duration_since(from)
        );
    }
}

/// Four waiters on clients of their own block in `wait()` while the leader is killed and
/// restarted; none returns while the barrier is held, and all return within a second of
/// the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_waiters_pass_together_after_a_leader_kill() {
    let started = Instant::now();
    let cluster = EtcdCluster::start(3).await;
    let (holder, _session) = participant(&cluster, 0).await;
    let barrier = holder.barrier("b/gate");
    barrier.hold().await.unwrap();
    let log: Passed = Arc::default();
    let mut waiters = Vec::new();
    for i in 0..4 {
        let (client, _session) = participant(&cluster, i).await;
        let log = log.clone();
        waiters.push(tokio::spawn(async move {
            let barrier = client.barrier("b/gate");
            retry("wait", || barrier.wait()).await;
            passed(&log, i);
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leader = cluster.leader().await;
    cluster.member(leader).kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.member(leader).restart().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        log.lock().unwrap().is_empty(),
        "a waiter passed a held barrier"
    );

    let released_at = Instant::now();
    assert!(retry("release", || barrier.release()).await);
    let passed_at = all_passed(&log, 4, "every waiter passes").await;
    within(&passed_at, released_at, Duration::from_secs(1), "barrier");
    for w in waiters {
        w.await.unwrap();
    }
    eprintln!(
        "barrier: killed leader {leader}; waiters passed {:?} after the release; {:?}",
        passed_at
            .iter()
            .map(|at| at.duration_since(released_at))
            .collect::<Vec<_>>(),
        started.elapsed()
    );
}

/// A double barrier for four participants, each on a client and session of its own:
/// three enter and wait while the leader is killed and restarted; none passes before the
/// fourth enters, all pass within a second of it; each writes fenced inside; then three
/// leave and wait, and all pass within a second of the fourth's leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_enters_and_leaves_together_across_a_leader_kill() {
    const K: usize = 4;
    let started = Instant::now();
    let cluster = EtcdCluster::start(3).await;
    let entered: Passed = Arc::default();
    let left: Passed = Arc::default();
    // How many participants may call enter / leave.
    let (may_enter, _) = tokio::sync::watch::channel(0usize);
    let (may_leave, _) = tokio::sync::watch::channel(0usize);
    let mut tasks = Vec::new();
    for i in 0..K {
        let (client, session) = participant(&cluster, i).await;
        let (entered, left) = (entered.clone(), left.clone());
        let (mut may_enter, mut may_leave) = (may_enter.subscribe(), may_leave.subscribe());
        tasks.push(tokio::spawn(async move {
            let barrier = session.double_barrier("db/phase", K);
            may_enter.wait_for(|n| *n > i).await.unwrap();
            let inside = retry("enter", || barrier.enter()).await;
            passed(&entered, i);
            let fenced = retry("fenced write", || {
                inside
                    .txn()
                    .then([Op::put(
                        format!("db/data/{i}"),
                        inside.revision().to_string(),
                    )])
                    .into_future()
            })
            .await;
            assert!(fenced.succeeded(), "a fenced write inside the barrier");
            may_leave.wait_for(|n| *n > i).await.unwrap();
            retry("leave", || inside.leave()).await;
            passed(&left, i);
            session.close().await.ok();
            drop(client);
        }));
    }
    let observer = Client::connect(cluster.client_urls()).await.unwrap();
    may_enter.send_replace(K - 1);
    eventually("three entered", || async {
        count_keys(&observer, "db/phase/waiters/").await == K - 1
    })
    .await;
    let leader = cluster.leader().await;
    cluster.member(leader).kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.member(leader).restart().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        entered.lock().unwrap().is_empty(),
        "one passed with {} of {K}",
        K - 1
    );

    let last_enters = Instant::now();
    may_enter.send_replace(K);
    let entered_at = all_passed(&entered, K, "all enter").await;
    within(&entered_at, last_enters, Duration::from_secs(1), "enter");

    may_leave.send_replace(K - 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        left.lock().unwrap().is_empty(),
        "one left before the last leave"
    );
    let last_leaves = Instant::now();
    may_leave.send_replace(K);
    let left_at = all_passed(&left, K, "all leave").await;
    within(&left_at, last_leaves, Duration::from_secs(1), "leave");
    for task in tasks {
        bounded("participant", task).await.unwrap();
    }
    assert_eq!(
        count_keys(&observer, "db/phase/").await,
        0,
        "nothing left behind"
    );
    eprintln!(
        "double barrier: killed leader {leader}; entered {:?} after the last enter, left \
         {:?} after the last leave; {:?}",
        entered_at
            .iter()
            .map(|at| at.duration_since(last_enters))
            .collect::<Vec<_>>(),
        left_at
            .iter()
            .map(|at| at.duration_since(last_leaves))
            .collect::<Vec<_>>(),
        started.elapsed()
    );
}

/// A consumer waits on an empty queue behind a proxy; the proxy cuts the connection right
/// after the claim of the next item reached etcd (so it applied, and its answer was
/// lost). The dequeue sends the claim again, finds the item gone and its marker naming
/// the item, and returns it: the item is neither lost nor left in the queue.
#[tokio::test]
async fn a_dequeue_whose_claim_answer_is_lost_still_returns_the_item() {
    // What was logged shows which path a claim took.
    let logs = Capture::global();
    let server = shared_server();
    let name = format!("{}q", unique_prefix("queue_cut"));
    let proxy = FaultProxy::start(server.client_addr()).await;
    let consumer = bounded("connect", Client::connect([proxy.url()]))
        .await
        .unwrap();
    let producer = Client::connect(server.endpoints()).await.unwrap();
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 10, "no cut landed on a claim");
        let queue = consumer.queue(&name);
        let waiting = tokio::spawn(async move { queue.dequeue().await });
        // Let the dequeue read the empty queue and open its watch; then cut the next
        // request, the claim of the item the watch delivers.
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.set_mode(Mode::CutAfterRequest { n: 1 }).await;
        let item = producer
            .queue(&name)
            .enqueue(format!("item-{attempts}"))
            .await
            .unwrap();
        let got = bounded("dequeue", waiting).await.unwrap().unwrap();
        proxy.set_mode(Mode::Pass).await;
        assert_eq!(got, item, "the dequeue returns the item");
        assert_eq!(producer.queue(&name).len().await.unwrap(), 0);
        let key = format!("{:?}", Bytes::copy_from_slice(item.key()));
        let resolved = !logs
            .lines_since(0, &["resolved by its marker", &key])
            .is_empty();
        if resolved {
            assert!(
                !logs.lines_since(0, &["ours=true", &key]).is_empty(),
                "the marker named the item"
            );
            break;
        }
        eprintln!("attempt {attempts}: the cut missed the claim");
    }
    eventually("the claim markers are removed", || async {
        count_keys(&producer, &format!("{}.claims/", name)).await == 0
    })
    .await;
    eprintln!(
        "queue_cut: {attempts} attempt(s), {} cuts",
        proxy.stats().connections_cut
    );
}
