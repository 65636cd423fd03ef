//! The watch fault scenarios W2–W11 of the reliability plan (§6.2), each driving
//! `etcd3::Client` as a user builds it (`Client::builder(endpoints)…connect()`, the
//! default HTTP/2 transport, only the builder options the scenario names). Where a watch's
//! deliveries must match the server's history, the watch is recorded with
//! [`Recorder::watch`], every write of the watched prefix goes through
//! [`Recorder::run`] (on a second `Client`, the "writer", aimed at a member the fault does
//! not touch), the server's history is collected by [`Reference`] (raw watches on the
//! members), and [`history::check`] must find nothing (ordered, unique, atomic, reliable,
//! prev_kv, filters, bookmarkable, nothing before the start or after the end, legitimate
//! compaction). A run's history is written to `target/chaos/<name>/` (or under
//! `CARGO_TARGET_DIR`).
//!
//! To know which member carries a watch stream, the watching client is given one
//! [`FaultProxy`] per member and the proxies' open connections are read (the watching
//! client makes no other calls).
//!
//! | test | scenario | fault | asserts |
//! |---|---|---|---|
//! | `w2_…` | W2 | SIGKILL the follower carrying 3 watches, restart it 4 s later; K1-mix writes through the leader | checker clean; each watch delivers again within 3 s of the kill; no error surfaced; the stream left the dead member |
//! | `w3_…` | W3 | proxy `DropAll` + `Pause` 2 s, 50 writes (5 of them two-key txns) meanwhile | checker clean (incl. atomic); all 55 events arrive, none before the unpause; the connection was really reset |
//! | `w4_…` | W4 | the only member of a watch from rev 2 is killed, 20 puts, compaction to 15, restart | checker clean (compaction legitimate); either everything, or the pre-kill events then a terminal `Compacted { ≥ 15 }` and the end |
//! | `w5_…` | W5 | `DropAll` on every proxy every 1.5 s (6 times); progress requested every 200 ms; one write in 40 in range | checker clean (bookmarkable, no duplicate); every reset was followed by own progress notifications; progress vouched past the last event |
//! | `w6_…` | W6 | a from-now watch created at header H; `DropAll` + `Pause`; writes at H+1, H+2 | checker clean; created at H; exactly H+1 and H+2 delivered, never H |
//! | `w7_…` | W7 | future watch (start = current + 20); C SIGSTOPped 4 s while writes go on; the client is left only C | C proven behind (its serializable read, queued before SIGCONT, answers below the last write); checker clean; nothing below the start; progress never below a delivered event or an earlier progress; the stream ends up on C |
//! | `w8a_…` | W8 (a) | one txn of 100 × 64 KiB (`--max-request-bytes=8388608`) | all 100 events in one delivered response, values intact |
//! | `w8b_…` | W8 (b) | 20 × 900 KiB catch-up from rev 1 (`--max-request-bytes=1048576`) | a raw `fragment` watch gets several fragments (the server split); the client's `fragment` watch delivers exactly the writes, equal to its unfragmented watch and to the raw one |
//! | `w9_…` | W9 | 300 watches on one stream, 150 cancelled, `DropAll` | the server's watcher gauge drops by 150 within 2 s of the cancels; checker clean for the 150 survivors; the cancelled deliver nothing; the gauge returns to 0 (no leak) |
//! | `w10_…` | W10 | the consumer (watch buffer 256) does not poll for 10 s while 2000 × 32 KiB puts are written | every event delivered once, in order, afterwards (no error); RSS growth during the stall below the buffer's bound (see the test) |
//! | `w11_…` | W11 | SIGSTOP both other members of the watches' member | the require-leader client's watch ends with `NoLeader` between 1 s and 6 s after; the plain watch stays open; after SIGCONT it delivers and a new require-leader watch works |
//!
//! The three-member tests run one at a time (a lock); W8, W10 use a single member (they
//! are about message sizes and the consumer, not the cluster).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_testkit::{EtcdCluster, EtcdServer, FaultProxy, Mode, unique_prefix};
use etcd_tests::clients::raw_kv;
use etcd_tests::history::model::{
    Nanos, PutReq, Request, Response, TxnOp, TxnReq, WatchItem, WatchTrace,
};
use etcd_tests::history::reference::PROGRESS_FLAG;
use etcd_tests::history::workload::Workload;
use etcd_tests::history::{Proof, RecordedWatch, Recorder, WatchSpec, prefix_end};
use etcd3::Client;
use etcd3::watch::{Error as WatchError, Watch, WatchStream};
use futures::StreamExt;

/// One test at a time: each runs its own members on two cores and measures timings.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long waiting for an observable condition may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A three-member cluster whose members send progress notifications every 100 ms (the
/// reference history needs them; several scenarios use them).
async fn three_members() -> EtcdCluster {
    EtcdCluster::builder(3).arg(PROGRESS_FLAG).start().await
}

/// A three-member cluster whose follower A the watching client reaches through a proxy
/// (its only endpoint), while the writing client uses the leader B; a proof over a fresh
/// prefix collected on every member.
struct Proxied {
    cluster: EtcdCluster,
    proxy: FaultProxy,
    watching: Client,
    writing: Client,
    proof: Proof,
}

async fn proxied_follower(name: &str) -> Proxied {
    let cluster = three_members().await;
    let (b, followers) = cluster.leader_and_followers().await;
    let a = followers[0];
    let proxy = FaultProxy::start(cluster.member(a).client_addr()).await;
    let watching = client([proxy.url()]).await;
    let writing = client([cluster.member(b).client_url()]).await;
    let proof = Proof::start(name, &cluster.client_urls());
    Proxied {
        cluster,
        proxy,
        watching,
        writing,
        proof,
    }
}

/// A client as a user builds it, with default settings.
async fn client<I: IntoIterator<Item = String>>(endpoints: I) -> Client {
    Client::builder(endpoints).connect().await.expect("connect")
}

/// A helper client that writes while members are paused: a deadline per call, so that a
/// write to a paused member fails (and is retried by the test) instead of hanging.
async fn writer<I: IntoIterator<Item = String>>(endpoints: I) -> Client {
    Client::builder(endpoints)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect")
}

/// One fault proxy per member, in member order.
async fn proxies(cluster: &EtcdCluster) -> Vec<FaultProxy> {
    let mut all = Vec::new();
    for addr in cluster.client_addrs() {
        all.push(FaultProxy::start(addr).await);
    }
    all
}

/// The members (indexes) whose proxy has open connections.
fn carriers(proxies: &[FaultProxy]) -> Vec<usize> {
    (0..proxies.len())
        .filter(|&i| proxies[i].stats().connections_active > 0)
        .collect()
}

/// Waits until `condition` holds, polling every 10 ms.
///
/// # Panics
/// After `within`, naming `what`.
async fn wait_for(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A recorded put; panics when it fails (the writer's member is never faulted).
async fn put(
    recorder: &Recorder,
    client: u32,
    kv: &etcd3::Kv,
    key: impl Into<String>,
    value: impl Into<String>,
) -> i64 {
    let request = Request::Put(PutReq {
        key: key.into(),
        value: value.into(),
        ..PutReq::default()
    });
    match recorder.run(client, kv, request).await {
        Response::Put(put) => put.revision,
        other => panic!("a put failed: {other:?}"),
    }
}

/// A recorded transaction putting two keys at one revision.
async fn put_two(
    recorder: &Recorder,
    client: u32,
    kv: &etcd3::Kv,
    pairs: [(String, String); 2],
) -> i64 {
    let request = Request::Txn(TxnReq {
        compares: Vec::new(),
        success: pairs
            .into_iter()
            .map(|(key, value)| {
                TxnOp::Put(PutReq {
                    key,
                    value,
                    ..PutReq::default()
                })
            })
            .collect(),
        failure: Vec::new(),
    });
    match recorder.run(client, kv, request).await {
        Response::Txn(txn) => txn.revision,
        other => panic!("a transaction failed: {other:?}"),
    }
}

/// A watch of every key under `prefix`, from now, with no options.
fn spec(prefix: &str) -> WatchSpec {
    WatchSpec {
        key: prefix.to_owned(),
        end: Some(prefix_end(prefix)),
        ..WatchSpec::default()
    }
}

/// Opens a recorded watch through `client`.
async fn open(recorder: &Arc<Recorder>, client: &Client, spec: WatchSpec) -> RecordedWatch {
    recorder
        .watch(100, client, spec)
        .await
        .expect("open a watch")
}

/// The store revision, read from the member at `url`.
async fn revision_at(url: &str) -> i64 {
    raw_kv(url)
        .get("/")
        .await
        .expect("read the revision")
        .revision()
}

/// Every event a trace delivered: (received at, revision, key).
fn delivered(trace: &WatchTrace) -> Vec<(Nanos, i64, String)> {
    trace
        .items
        .iter()
        .flat_map(|item| match item {
            WatchItem::Events { at, events } => events
                .iter()
                .map(|e| (*at, e.kv.mod_revision, e.kv.key.clone()))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Panics when the watch ended with an error (a transparent resume surfaces none).
fn assert_open(name: &str, trace: &WatchTrace) {
    let ended = trace
        .items
        .iter()
        .find(|i| matches!(i, WatchItem::Compacted { .. } | WatchItem::Failed { .. }));
    assert!(
        ended.is_none(),
        "{name}: watch {} surfaced {ended:?}",
        trace.id
    );
}

/// Waits for events on a plain watch stream until one at or past `revision`; returns the
/// revisions seen.
async fn revisions_until(stream: &mut WatchStream, revision: i64) -> Vec<i64> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.last().is_none_or(|&r| r < revision) {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no event at {revision} in time; saw {seen:?}"))
            .expect("the watch ended")
            .expect("the watch failed");
        seen.extend(item.events().iter().map(|e| e.revision()));
    }
    seen
}

/// The number of watchers the member at `url` has (its `etcd_debugging_mvcc_watcher_total`).
async fn server_watchers(url: &str) -> i64 {
    let resp = etcd_testkit::http::get(url, "/metrics", Duration::from_secs(5))
        .await
        .expect("read the metrics");
    let name = "etcd_debugging_mvcc_watcher_total";
    resp.body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().expect("a number") as i64)
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

/// Waits until the member at `url` has `n` watchers; returns how long it took.
async fn wait_watchers(url: &str, n: i64) -> Duration {
    let started = Instant::now();
    loop {
        let now = server_watchers(url).await;
        if now == n {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT,
            "the member has {now} watchers, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resident memory of this process, in bytes (`/proc/self/statm`).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a resident page count");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

fn secs(nanos: Nanos) -> f64 {
    nanos as f64 / 1e9
}

// ---------------------------------------------------------------------------------------
// W2
// ---------------------------------------------------------------------------------------

/// W2: three watches on the member A carrying the client's watch stream (the client knows
/// the two followers and starts at either); K1-mix writes through the leader B; A is SIGKILLed after 2 s and
/// restarted 4 s later. Every watch resumes on another member within 3 s of the kill,
/// without an error, and delivers exactly the server's history (checker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w2_watches_on_a_killed_member_resume_elsewhere_without_gap_or_duplicate() {
    let _serial = SERIAL.lock().await;
    let name = "w2_client_member_killed";
    let cluster = three_members().await;
    let (b, followers) = cluster.leader_and_followers().await;
    let proxies = proxies(&cluster).await;
    let watching = client(followers.iter().map(|&f| proxies[f].url())).await;
    let writing = client([cluster.member(b).client_url()]).await;

    let proof = Proof::start(name, &cluster.client_urls());
    let (prefix, recorder) = (proof.prefix.clone(), proof.recorder.clone());
    let workload = Arc::new(Workload::new(prefix.clone()));
    let mut first = 0;
    for i in 0..5 {
        let rev = put(
            &recorder,
            9,
            writing.kv(),
            format!("{prefix}k{i}"),
            format!("pre-{i}"),
        )
        .await;
        if first == 0 {
            first = rev;
        }
    }
    let watches = vec![
        open(
            &recorder,
            &watching,
            WatchSpec {
                prev_kv: true,
                progress_notify: true,
                ..spec(&prefix)
            },
        )
        .await,
        open(
            &recorder,
            &watching,
            WatchSpec {
                start_revision: first,
                ..spec(&prefix)
            },
        )
        .await,
        open(
            &recorder,
            &watching,
            WatchSpec {
                no_delete: true,
                prev_kv: true,
                // Vouches for a last revision that only deleted.
                progress_notify: true,
                ..spec(&prefix)
            },
        )
        .await,
    ];
    // A: the follower the client started at, which carries the stream.
    let carrier = carriers(&proxies);
    assert!(
        carrier.len() == 1 && followers.contains(&carrier[0]),
        "{name}: the watch stream is on {carrier:?}, not on one follower of {followers:?}"
    );
    let a = carrier[0];

    let stop = Arc::new(AtomicBool::new(false));
    let seed = 0x5732 ^ u64::from(std::process::id());
    println!("{name}: seed {seed:#x}");
    let tasks: Vec<_> = (0..2)
        .map(|c| {
            let (workload, recorder, kv, stop) = (
                Arc::clone(&workload),
                Arc::clone(&recorder),
                writing.kv().clone(),
                Arc::clone(&stop),
            );
            tokio::spawn(async move { workload.run(recorder, c, kv, seed, stop).await })
        })
        .collect();

    // Traffic first (the fault's timing, not a synchronisation).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = recorder.now();
    cluster.member(a).kill();
    // Every watch delivers again: the first event committed after the kill, which the
    // dead member cannot have sent (events already in flight from it do not count).
    let dead_from = revision_at(&cluster.member(b).client_url()).await;
    let resumed_after = |w: &RecordedWatch| {
        delivered(&w.snapshot())
            .into_iter()
            .find(|(_, revision, _)| *revision > dead_from)
            .map(|(at, _, _)| at - killed_at)
    };
    wait_for("every watch to deliver after the kill", WAIT, || {
        watches.iter().all(|w| resumed_after(w).is_some())
    })
    .await;
    let delays: std::collections::HashMap<u64, Nanos> = watches
        .iter()
        .filter_map(|w| Some((w.snapshot().id, resumed_after(w)?)))
        .collect();
    let moved_to = carriers(&proxies);
    tokio::time::sleep(
        Duration::from_secs(4).saturating_sub(Duration::from_nanos(recorder.now() - killed_at)),
    )
    .await;
    cluster.member(a).restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut ran = 0;
    for task in tasks {
        ran += task.await.expect("a workload task panicked");
    }

    let last = revision_at(&cluster.member(b).client_url()).await;
    let history = proof.prove(watches, last).await.history;
    println!(
        "{name}: {ran} operations; delivery resumed {:?} s after the kill; stream moved to {moved_to:?}",
        delays.values().map(|d| secs(*d)).collect::<Vec<_>>()
    );
    assert!(ran >= 100, "{name}: only {ran} operations ran");
    assert_eq!(history.watches.len(), 3);
    for trace in &history.watches {
        assert_open(name, trace);
        let delay = &delays[&trace.id];
        assert!(
            *delay <= 3_000_000_000,
            "{name}: watch {} delivered again only {} s after the kill",
            trace.id,
            secs(*delay)
        );
    }
    assert!(
        !moved_to.is_empty() && !moved_to.contains(&a),
        "{name}: after the kill the stream is on {moved_to:?}, not off the dead m{a}"
    );
}

// ---------------------------------------------------------------------------------------
// W3
// ---------------------------------------------------------------------------------------

/// W3: a watch from an early revision on A (the client's only endpoint, through a proxy);
/// the proxy resets every connection and stalls for 2 s while 50 writes (every tenth a
/// two-key transaction) go through B. All 55 events arrive after the stall, in order,
/// whole revisions at a time, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3_a_reset_and_stalled_connection_delivers_everything_after_the_stall() {
    let _serial = SERIAL.lock().await;
    let name = "w3_client_reset_and_pause";
    let Proxied {
        cluster: _cluster,
        proxy,
        watching,
        writing,
        proof,
    } = proxied_follower(name).await;
    let (prefix, recorder) = (proof.prefix.clone(), proof.recorder.clone());

    let first = put(&recorder, 1, writing.kv(), format!("{prefix}start"), "s").await;
    let mut before = first;
    for i in 0..4 {
        before = put(
            &recorder,
            1,
            writing.kv(),
            format!("{prefix}k{i}"),
            format!("pre-{i}"),
        )
        .await;
    }
    let watch = open(
        &recorder,
        &watching,
        WatchSpec {
            start_revision: first,
            ..spec(&prefix)
        },
    )
    .await;
    assert!(watch.wait_reached(before, WAIT).await, "{name}: no replay");

    proxy.set_mode(Mode::DropAll).await;
    proxy.set_mode(Mode::Pause).await;
    let mut last = 0;
    for i in 0..50 {
        last = if i % 10 == 9 {
            put_two(
                &recorder,
                1,
                writing.kv(),
                [
                    (format!("{prefix}t{i}a"), format!("{i}a")),
                    (format!("{prefix}t{i}b"), format!("{i}b")),
                ],
            )
            .await
        } else {
            put(
                &recorder,
                1,
                writing.kv(),
                format!("{prefix}k{}", i % 7),
                format!("v{i}"),
            )
            .await
        };
    }
    // The stall lasts 2 s (the fault), then the proxy forwards again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unpaused_at = recorder.now();
    proxy.set_mode(Mode::Pass).await;

    let history = proof.prove(vec![watch], last).await.history;
    let trace = &history.watches[0];
    assert_open(name, trace);
    let during: Vec<_> = delivered(trace)
        .into_iter()
        .filter(|(_, rev, _)| *rev > before)
        .collect();
    assert_eq!(during.len(), 55, "{name}: events written during the stall");
    assert!(
        during.iter().all(|(at, _, _)| *at >= unpaused_at),
        "{name}: events delivered while the proxy stalled: {during:?}"
    );
    let stats = proxy.stats();
    assert!(
        stats.connections_reset >= 1 && stats.connections_accepted >= 2,
        "{name}: the connection was not reset and reopened: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------
// W4
// ---------------------------------------------------------------------------------------

/// W4: a watch from revision 2 on A (its only endpoint) has delivered revisions 2–6; A is
/// killed, 20 puts go through B, B compacts to 15, A restarts. The watch either delivers
/// everything (if it got back before A applied the compaction) or the events up to some r
/// and then a terminal `Compacted { ≥ 15 }`, and ends: never a silent skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w4_resume_on_a_compacted_revision_is_a_terminal_typed_error() {
    let _serial = SERIAL.lock().await;
    let name = "w4_client_resume_compacted";
    let cluster = three_members().await;
    let (b, followers) = cluster.leader_and_followers().await;
    let (a, c) = (followers[0], followers[1]);
    let watching = client([cluster.member(a).client_url()]).await;
    let writing = client([cluster.member(b).client_url()]).await;
    // Not on A: a raw watch on A would resume from a compacted revision after its restart.
    let proof = Proof::start(
        name,
        &[
            cluster.member(b).client_url(),
            cluster.member(c).client_url(),
        ],
    );
    let (prefix, recorder) = (proof.prefix.clone(), proof.recorder.clone());
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(
            put(
                &recorder,
                1,
                writing.kv(),
                format!("{prefix}k"),
                format!("pre-{i}"),
            )
            .await,
        );
    }
    assert_eq!(revs[0], 2, "{name}: a fresh cluster's first write");
    let watch = open(
        &recorder,
        &watching,
        WatchSpec {
            start_revision: 2,
            ..spec(&prefix)
        },
    )
    .await;
    assert!(watch.wait_reached(revs[4], WAIT).await, "{name}: no replay");

    cluster.member(a).kill();
    let mut last = 0;
    for i in 0..20 {
        last = put(
            &recorder,
            1,
            writing.kv(),
            format!("{prefix}k"),
            format!("down-{i}"),
        )
        .await;
    }
    assert_eq!(last, 26);
    assert!(
        proof.reference().wait_reached(last, WAIT).await,
        "{name}: the reference watches are behind the compaction"
    );
    writing.kv().compact(15).await.expect("compact");
    recorder.record_compaction(15);
    cluster.member(a).restart().await;

    let history = proof.prove(vec![watch], last).await.history;
    let trace = &history.watches[0];
    let revisions: Vec<i64> = delivered(trace).iter().map(|(_, r, _)| *r).collect();
    match trace.items.last() {
        Some(WatchItem::Compacted {
            compact_revision, ..
        }) => {
            assert!(*compact_revision >= 15, "{name}: {trace:?}");
            println!("{name}: delivered {revisions:?}, then Compacted {{ {compact_revision} }}");
        }
        _ => {
            assert_open(name, trace);
            assert_eq!(
                revisions,
                (2..=last).collect::<Vec<_>>(),
                "{name}: not compacted, so everything"
            );
            println!("{name}: the watch got everything before the compaction reached A");
        }
    }
}

/// W12: a watch created from a compacted revision, through `Client`: its first and only
/// item is the terminal `Compacted` naming the compaction revision, the stream then ends,
/// and a watch on the same stream created afterwards delivers.
#[tokio::test]
async fn w12_a_watch_from_a_compacted_revision_ends_at_once_with_compacted() {
    let server = EtcdServer::start().await;
    let client = client([server.client_url()]).await;
    let kv = client.kv();
    let prefix = unique_prefix("w12");
    let mut first = 0;
    for i in 0..5 {
        let rev = kv
            .put(format!("{prefix}k"), format!("{i}"))
            .await
            .unwrap()
            .revision();
        if first == 0 {
            first = rev;
        }
    }
    let current = kv
        .put(format!("{prefix}k"), "now")
        .await
        .unwrap()
        .revision();
    kv.compact(current).await.unwrap();

    let mut old = client
        .watch(prefix.as_str())
        .prefix()
        .from_revision(first + 1)
        .await
        .expect("the watch is created; its refusal arrives on the stream");
    match tokio::time::timeout(WAIT, old.next())
        .await
        .expect("an answer")
    {
        Some(Err(WatchError::WatchCompacted { compact_revision })) => {
            assert_eq!(compact_revision, current);
        }
        other => panic!("w12: expected Compacted, got {other:?}"),
    }
    let end = tokio::time::timeout(WAIT, old.next())
        .await
        .expect("the end");
    assert!(
        end.is_none(),
        "w12: the stream goes on after Compacted: {end:?}"
    );

    let mut fresh = client.watch(prefix.as_str()).prefix().await.unwrap();
    let rev = kv
        .put(format!("{prefix}k"), "after")
        .await
        .unwrap()
        .revision();
    let got = tokio::time::timeout(WAIT, fresh.next())
        .await
        .expect("an event")
        .expect("the stream is open")
        .expect("no error");
    assert_eq!(got.events()[0].kv().mod_revision(), rev);
}

// ---------------------------------------------------------------------------------------
// W5
// ---------------------------------------------------------------------------------------

/// W5: a watch with progress notifications (members send them every 100 ms) on a range
/// that sees one write in forty (so that most 100 ms intervals have no event and get a
/// notification); the client asks for progress every 200 ms; every 1.5 s
/// every connection of the watching client is reset (6 times). Progress notifications are
/// bookmarks (no event at or below one follows it), the resumes duplicate nothing, and
/// every reconnect is followed by notifications again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w5_progress_notifications_stay_bookmarks_across_connection_resets() {
    let _serial = SERIAL.lock().await;
    let name = "w5_client_progress_resets";
    let cluster = three_members().await;
    let proxies = proxies(&cluster).await;
    let watching = client(proxies.iter().map(FaultProxy::url)).await;
    let writing = client(cluster.client_urls()).await;
    let proof = Proof::start(name, &cluster.client_urls());
    let (prefix, recorder) = (proof.prefix.clone(), proof.recorder.clone());
    let inside = format!("{prefix}in/");
    let watch = open(
        &recorder,
        &watching,
        WatchSpec {
            progress_notify: true,
            ..spec(&inside)
        },
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let writes = {
        let (recorder, kv, stop, prefix, inside) = (
            Arc::clone(&recorder),
            writing.kv().clone(),
            Arc::clone(&stop),
            prefix.clone(),
            inside.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0u64;
            // The last write is outside the range, so that a notification can vouch for
            // a revision past the last event.
            while !stop.load(Ordering::SeqCst) || i.is_multiple_of(40) {
                i += 1;
                let key = if i.is_multiple_of(40) {
                    format!("{inside}k{}", i % 3)
                } else {
                    format!("{prefix}out/k{}", i % 5)
                };
                put(&recorder, 1, &kv, key, format!("v{i}")).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            i
        })
    };
    let progress = {
        let (watching, stop) = (watching.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut asked = 0;
            while !stop.load(Ordering::SeqCst) {
                watching.watch_progress().await.expect("request progress");
                asked += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            asked
        })
    };
    let mut resets = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        resets.push(recorder.now());
        for proxy in &proxies {
            proxy.set_mode(Mode::DropAll).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let written = writes.await.expect("the writer panicked");
    let asked = progress.await.expect("the progress task panicked");
    // The members' own notifications (every 100 ms) for the revision of the last write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reset: u64 = proxies.iter().map(|p| p.stats().connections_reset).sum();

    let last = revision_at(&cluster.client_urls()[0]).await;
    let history = proof.prove(vec![watch], last).await.history;
    let trace = &history.watches[0];
    assert_open(name, trace);
    let progress: Vec<(Nanos, i64)> = trace
        .items
        .iter()
        .filter_map(|i| match i {
            WatchItem::Progress { at, revision } => Some((*at, *revision)),
            _ => None,
        })
        .collect();
    println!(
        "{name}: {written} writes, {asked} progress requests, {reset} connections reset, {} events and {} own progress notifications delivered",
        delivered(trace).len(),
        progress.len()
    );
    assert!(reset >= 6, "{name}: only {reset} connections were reset");
    // Notifications again after every reconnect: the resumed watch kept progress_notify.
    let mut windows = resets.clone();
    windows.push(u64::MAX);
    for pair in windows.windows(2) {
        assert!(
            progress
                .iter()
                .any(|(at, _)| *at > pair[0] && *at < pair[1]),
            "{name}: no progress notification after the reset at {} s",
            secs(pair[0])
        );
    }
    // They vouched for revisions past the last event: they carried the resume point.
    let last_event = delivered(trace).last().map_or(0, |(_, r, _)| *r);
    assert!(
        progress.iter().any(|(_, r)| *r > last_event),
        "{name}: no progress notification past the last event {last_event}"
    );
}

// ---------------------------------------------------------------------------------------
// W6
// ---------------------------------------------------------------------------------------

/// W6: `Put(a)` commits at H; a from-now watch is created (header H) and has delivered
/// nothing when its connection is reset and stalled; `b` and `c` are written (H+1, H+2)
/// meanwhile. After the stall exactly H+1 and H+2 are delivered: the resume starts at
/// H+1, never at H (which would replay the put made before the watch existed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w6_a_from_now_watch_resumes_after_its_creation_revision() {
    let _serial = SERIAL.lock().await;
    let name = "w6_client_from_now_resume";
    let Proxied {
        cluster: _cluster,
        proxy,
        watching,
        writing,
        proof,
    } = proxied_follower(name).await;
    let (prefix, recorder) = (proof.prefix.clone(), proof.recorder.clone());

    let h = put(&recorder, 1, writing.kv(), format!("{prefix}a"), "before").await;
    let watch = open(&recorder, &watching, spec(&prefix)).await;
    wait_for("the creation notice", WAIT, || {
        watch.snapshot().created_revision.is_some()
    })
    .await;
    assert_eq!(
        watch.snapshot().created_revision,
        Some(h),
        "{name}: created at another revision than the last write"
    );
    proxy.set_mode(Mode::DropAll).await;
    proxy.set_mode(Mode::Pause).await;
    let rb = put(&recorder, 1, writing.kv(), format!("{prefix}b"), "1").await;
    let rc = put(&recorder, 1, writing.kv(), format!("{prefix}c"), "2").await;
    assert_eq!((rb, rc), (h + 1, h + 2));
    // The outage lasts 500 ms (the fault).
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set_mode(Mode::Pass).await;

    let history = proof.prove(vec![watch], rc).await.history;
    let trace = &history.watches[0];
    assert_open(name, trace);
    let revisions: Vec<i64> = delivered(trace).iter().map(|(_, r, _)| *r).collect();
    assert_eq!(revisions, vec![h + 1, h + 2], "{name}");
    assert!(proxy.stats().connections_reset >= 1, "{name}: no reset");
}

// ---------------------------------------------------------------------------------------
// W7
// ---------------------------------------------------------------------------------------

/// W7: a future watch (start = current + 20, progress notifications on) through a client
/// with all three members, carried by member A (where the client started). Follower C (not
/// A) is SIGSTOPped for 4 s while
/// writes go on through the leader B (past the start), and the watch delivers them from A.
/// Then every member but C refuses the client, so the stream can only resume on C, which is continued
/// once the client's reconnect is waiting on it. C is proven behind at that point: a
/// serializable read sent to it before SIGCONT answers with a revision below the last
/// write. The watch delivers nothing below its start, its progress notifications never
/// go below an event already delivered or an earlier notification, and the checker
/// finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w7_a_future_watch_resumed_on_a_lagging_member() {
    let _serial = SERIAL.lock().await;
    let name = "w7_client_lagging_member";
    let cluster = three_members().await;
    let (b, followers) = cluster.leader_and_followers().await;
    let proxies = proxies(&cluster).await;
    let watching = client(proxies.iter().map(FaultProxy::url)).await;
    let writing = client([cluster.member(b).client_url()]).await;
    let proof = Proof::start(name, &cluster.client_urls());
    let (prefix, recorder) = (proof.prefix.clone(), proof.recorder.clone());

    let current = put(&recorder, 1, writing.kv(), format!("{prefix}k"), "first").await;
    let start = current + 20;
    let watch = open(
        &recorder,
        &watching,
        WatchSpec {
            start_revision: start,
            progress_notify: true,
            ..spec(&prefix)
        },
    )
    .await;
    // The client starts at a random member: A is the one carrying the stream, C a
    // follower that does not.
    let carrier = carriers(&proxies);
    assert_eq!(carrier.len(), 1, "{name}: the stream is on {carrier:?}");
    let a = carrier[0];
    let c = followers
        .iter()
        .copied()
        .find(|&f| f != a)
        .expect("a follower");
    // A raw client on C through a proxy of its own: the proxy shows when a probe was sent.
    let probe_proxy = FaultProxy::start(cluster.member(c).client_addr()).await;
    let probe = raw_kv(&probe_proxy.url());
    // C is in step before it stops (the probe's connection is made now).
    let c_before = probe
        .get(prefix.as_str())
        .serializable()
        .await
        .expect("probe C")
        .revision();

    cluster.member(c).pause();
    let paused = Instant::now();
    let mut last_written = current;
    let mut i = 0;
    while paused.elapsed() < Duration::from_secs(4) {
        i += 1;
        last_written = put(
            &recorder,
            1,
            writing.kv(),
            format!("{prefix}k"),
            format!("v{i}"),
        )
        .await;
    }
    assert!(last_written >= start + 20, "{name}: only {i} writes");
    assert!(
        watch.wait_reached(last_written, WAIT).await,
        "{name}: A did not deliver up to {last_written}"
    );

    // Only C is left to the client: every other member refuses (A may be the leader B,
    // and then the other follower must refuse too).
    for (i, proxy) in proxies.iter().enumerate() {
        if i != c {
            proxy.set_mode(Mode::Refuse).await;
        }
    }
    wait_for("the client's reconnect to reach C", WAIT, || {
        proxies[c].stats().bytes_client_to_server > 0
    })
    .await;
    let sent = probe_proxy.stats().bytes_client_to_server;
    let lag_probe = {
        let (probe, key) = (probe.clone(), prefix.clone());
        tokio::spawn(async move {
            probe
                .get(key.as_str())
                .serializable()
                .await
                .map(|r| r.revision())
        })
    };
    wait_for("the probe to be sent to C", WAIT, || {
        probe_proxy.stats().bytes_client_to_server > sent
    })
    .await;
    let resumed_at = recorder.now();
    cluster.member(c).resume();
    let c_at_resume = lag_probe.await.unwrap().expect("probe C after SIGCONT");
    println!(
        "{name}: start {start}; C at {c_before} when stopped, at {c_at_resume} when continued; last write {last_written}"
    );
    assert!(
        c_at_resume < last_written,
        "{name}: C was not behind when it was continued ({c_at_resume} ≥ {last_written}): the scenario did not happen"
    );

    // C serves the watch while it catches up: its notifications (every 100 ms while no
    // event is due) carry its own revision, behind what the watch delivered.
    wait_for("3 progress notifications from C", WAIT, || {
        watch
            .snapshot()
            .items
            .iter()
            .filter(|i| matches!(i, WatchItem::Progress { at, .. } if *at > resumed_at))
            .count()
            >= 3
    })
    .await;
    let mut last = last_written;
    for i in 0..20 {
        last = put(
            &recorder,
            1,
            writing.kv(),
            format!("{prefix}k"),
            format!("after-{i}"),
        )
        .await;
    }
    let history = proof.prove(vec![watch], last).await.history;
    let trace = &history.watches[0];
    assert_open(name, trace);
    let events = delivered(trace);
    assert!(
        events.iter().all(|(_, r, _)| *r >= start),
        "{name}: events below the start {start}"
    );
    assert!(
        events.iter().any(|(at, _, _)| *at > resumed_at),
        "{name}: nothing delivered after the resume on C"
    );
    // Bookmarks never go back: not below an earlier one, not below a delivered event.
    let mut floor = 0;
    for item in &trace.items {
        match item {
            WatchItem::Events { events, .. } => {
                floor = floor.max(events.last().map_or(0, |e| e.kv.mod_revision));
            }
            WatchItem::Progress { at, revision } => {
                assert!(
                    *revision >= floor,
                    "{name}: progress at {revision} (received at {} s; C continued at {} s) below an earlier bookmark or event {floor}",
                    secs(*at),
                    secs(resumed_at)
                );
                floor = *revision;
            }
            _ => {}
        }
    }
    let after: Vec<i64> = trace
        .items
        .iter()
        .filter_map(|i| match i {
            WatchItem::Progress { at, revision } if *at > resumed_at => Some(*revision),
            _ => None,
        })
        .collect();
    println!(
        "{name}: {} events; progress notifications after the resume on C: {after:?}",
        events.len()
    );
    let (on_a, on_c) = (proxies[a].stats(), proxies[c].stats());
    assert!(
        on_a.connections_active == 0 && on_c.connections_active >= 1,
        "{name}: the stream is not on C: A {on_a:?}, C {on_c:?}"
    );
}

// ---------------------------------------------------------------------------------------
// W8
// ---------------------------------------------------------------------------------------

/// W8 (a): one transaction of 100 × 64 KiB (6.4 MiB at one revision) reaches the client's
/// watch as one response of 100 intact events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w8a_a_big_revision_arrives_whole() {
    let _serial = SERIAL.lock().await;
    let server = EtcdServer::builder()
        .arg("--max-request-bytes=8388608")
        .start()
        .await;
    let watching = client(server.endpoints()).await;
    let mut stream = watching.watch("/big/").prefix().await.expect("watch");
    let ops: Vec<etcd3::kv::Op> = (0..100)
        .map(|i| {
            let mut value = vec![b'x'; 64 * 1024];
            value[..3].copy_from_slice(format!("{i:03}").as_bytes());
            etcd3::kv::Op::put(format!("/big/{i:03}"), value)
        })
        .collect();
    let rev = watching
        .kv()
        .txn()
        .then(ops)
        .await
        .expect("the big txn")
        .revision();
    let resp = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("no response in time")
        .expect("the watch ended")
        .expect("the watch failed");
    assert_eq!(resp.events().len(), 100, "one response of all 100 events");
    for (i, event) in resp.events().iter().enumerate() {
        assert_eq!(event.revision(), rev);
        assert_eq!(event.key(), format!("/big/{i:03}").as_bytes());
        let value = event.kv().value();
        assert_eq!(value.len(), 64 * 1024);
        assert_eq!(&value[..3], format!("{i:03}").as_bytes());
    }
}

/// (revision, key, value) of every event.
type Delivered = Vec<(i64, Vec<u8>, Vec<u8>)>;

/// What a client watch delivers up to `last`, and in how many responses.
async fn collect_all(stream: &mut WatchStream, last: i64) -> (Delivered, usize) {
    let (mut events, mut responses) = (Vec::new(), 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.last().is_none_or(|(r, _, _)| *r < last) {
        let resp = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("not everything in time")
            .expect("the watch ended")
            .expect("the watch failed");
        responses += 1;
        events.extend(
            resp.events()
                .iter()
                .map(|e| (e.revision(), e.key().to_vec(), e.kv().value().to_vec())),
        );
    }
    (events, responses)
}

/// W8 (b): 20 × 900 KiB puts, then watches from revision 1: the server's catch-up puts all
/// 20 revisions (about 18 MiB) in one response. A raw watch with `fragment` proves that
/// the server split it (several `fragment = true` messages); the client's `fragment` watch
/// delivers exactly the writes, the same as its unfragmented watch (decoded whole) and as
/// the raw watch reassembled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w8b_fragments_are_merged_into_what_an_unfragmented_watch_delivers() {
    use etcd3::proto::etcdserverpb as pb;
    let _serial = SERIAL.lock().await;
    let server = EtcdServer::builder()
        .arg("--max-request-bytes=1048576")
        .start()
        .await;
    let url = server.client_url();
    let watching = client(server.endpoints()).await;
    let mut written: Delivered = Vec::new();
    for i in 0..20 {
        let mut value = vec![b'y'; 900 * 1024];
        value[..2].copy_from_slice(format!("{i:02}").as_bytes());
        let key = format!("/frag/{i:02}");
        let rev = watching
            .kv()
            .put(key.clone(), value.clone())
            .await
            .expect("put")
            .revision();
        written.push((rev, key.into_bytes(), value));
    }
    let last = written.last().unwrap().0;

    // The raw watch: count the fragments the server sends.
    let create = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: b"/frag/".to_vec().into(),
                range_end: b"/frag0".to_vec().into(),
                start_revision: 1,
                fragment: true,
                ..pb::WatchCreateRequest::default()
            },
        )),
    };
    let mut raw = pb::watch_client::WatchClient::new(etcd_tests::clients::channel(&url))
        .max_decoding_message_size(64 << 20);
    let requests = futures::stream::iter([create]).chain(futures::stream::pending());
    let mut messages = raw.watch(requests).await.expect("raw watch").into_inner();
    let (mut raw_events, mut fragments) = (Delivered::new(), 0);
    while raw_events.last().is_none_or(|(r, _, _)| *r < last) {
        let message = tokio::time::timeout(WAIT, messages.message())
            .await
            .expect("raw watch stalled")
            .expect("raw watch failed")
            .expect("raw watch ended");
        fragments += usize::from(message.fragment);
        raw_events.extend(message.events.into_iter().map(|e| {
            let kv = e.kv.unwrap_or_default();
            (kv.mod_revision, kv.key.to_vec(), kv.value.to_vec())
        }));
    }
    drop(messages);

    let mut fragmented = watching
        .watch("/frag/")
        .prefix()
        .fragment()
        .from_revision(1)
        .await
        .expect("fragment watch");
    let (merged, merged_responses) = collect_all(&mut fragmented, last).await;
    drop(fragmented);
    let mut whole = watching
        .watch("/frag/")
        .prefix()
        .from_revision(1)
        .await
        .expect("watch");
    let (unfragmented, whole_responses) = collect_all(&mut whole, last).await;
    println!(
        "w8b: the server sent {fragments} fragments; the client delivered {merged_responses} responses with fragment, {whole_responses} without"
    );
    assert!(
        fragments >= 2,
        "the server did not split the 18 MiB response ({fragments} fragments)"
    );
    assert!(
        raw_events == written,
        "the raw watch differs from the writes"
    );
    assert!(
        merged == written,
        "the fragment watch differs from the writes"
    );
    assert!(
        merged == unfragmented,
        "the fragment watch differs from the unfragmented one"
    );
}

// ---------------------------------------------------------------------------------------
// W9
// ---------------------------------------------------------------------------------------

/// W9: 300 watches on the client's one stream (150 recorded watches, 150 in a group), each
/// on a prefix of its own; the 150 of the group are cancelled. The member's watcher gauge
/// drops by 150 within 2 s (cancel requests go out at once); then every connection is
/// reset between two rounds of writes: the 150 survivors resume and deliver exactly the
/// server's history (checker), the cancelled ones deliver nothing, and once everything is
/// dropped the member has no watcher left (no leak). The reference history is
/// collected on the other members, so that A's gauge counts the client's watchers only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w9_three_hundred_watches_half_cancelled_survive_a_reset() {
    let _serial = SERIAL.lock().await;
    let name = "w9_client_300_watches";
    let cluster = three_members().await;
    let (b, followers) = cluster.leader_and_followers().await;
    let (a, c) = (followers[0], followers[1]);
    let url_a = cluster.member(a).client_url();
    let proxy = FaultProxy::start(cluster.member(a).client_addr()).await;
    let watching = client([proxy.url()]).await;
    let writing = client([cluster.member(b).client_url()]).await;
    // Not on A, whose watcher gauge must count the client's watches only.
    let proof = Proof::start(
        name,
        &[
            cluster.member(b).client_url(),
            cluster.member(c).client_url(),
        ],
    );
    let (prefix, recorder) = (proof.prefix.clone(), proof.recorder.clone());

    let start = put(&recorder, 1, writing.kv(), format!("{prefix}start"), "s").await;
    let sub = |i: usize| format!("{prefix}{i:03}/");
    let (group, mut group_events) = watching.watch_group();
    let mut cancelled = Vec::new();
    let mut survivors = Vec::new();
    for i in 0..300 {
        let created = tokio::time::timeout(WAIT, async {
            if i % 2 == 0 {
                let id = group
                    .add(Watch::key(sub(i)).prefix().from_revision(start))
                    .await
                    .expect("add a watch");
                cancelled.push(id);
            } else {
                // Progress notifications vouch for the revisions after its last event.
                let spec = WatchSpec {
                    start_revision: start,
                    progress_notify: true,
                    ..spec(&sub(i))
                };
                survivors.push(open(&recorder, &watching, spec).await);
            }
        })
        .await;
        assert!(
            created.is_ok(),
            "{name}: watch #{i} was not created within {WAIT:?} ({} watchers on the member)",
            server_watchers(&url_a).await
        );
    }
    wait_watchers(&url_a, 300).await;
    let cancelling = Instant::now();
    for id in cancelled {
        group.cancel(id).await.expect("cancel");
    }
    let took = wait_watchers(&url_a, 150).await.max(cancelling.elapsed());
    assert!(
        took <= Duration::from_secs(2),
        "{name}: the server dropped the cancelled watchers only after {took:?}"
    );

    for i in 0..300 {
        put(
            &recorder,
            1,
            writing.kv(),
            format!("{}a", sub(i)),
            format!("a{i}"),
        )
        .await;
    }
    proxy.set_mode(Mode::DropAll).await;
    let mut last = 0;
    for i in 0..300 {
        last = put(
            &recorder,
            1,
            writing.kv(),
            format!("{}b", sub(i)),
            format!("b{i}"),
        )
        .await;
    }
    // Resumed on a new stream: the survivors only.
    wait_watchers(&url_a, 150).await;
    assert!(proxy.stats().connections_reset >= 1, "{name}: no reset");

    let history = proof.prove(survivors, last).await.history;
    for trace in &history.watches {
        assert_open(name, trace);
        assert_eq!(delivered(trace).len(), 2, "{name}: watch on {}", trace.key);
    }
    // The cancelled watches never deliver (none had an event before its cancel).
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(500), group_events.next()).await {
        panic!("{name}: a cancelled watch delivered {item:?}");
    }
    drop(group);
    drop(group_events);
    // prove() dropped the recorded watches: A has no watcher left.
    wait_watchers(&url_a, 0).await;
}

// ---------------------------------------------------------------------------------------
// W10
// ---------------------------------------------------------------------------------------

/// The value size of W10's puts.
const W10_VALUE: usize = 32 * 1024;
/// How many bytes of responses W10's watch buffers for its consumer (`Watch::buffer_bytes`;
/// the watcher's default).
const W10_BUFFER: u64 = 8 << 20;

/// W10: the consumer of a watch does not poll for 10 s while 2000 puts of 32 KiB (62.5 MiB)
/// are written. Afterwards every event arrives exactly once, in order, with its value (a
/// typed error would end the stream: none may come here).
///
/// Memory: a client whose memory is bounded holds at most the watch's buffer of 8 MiB of
/// responses (plus one) for a consumer that does not read. Each response is one revision
/// here (one 32 KiB event, about 33 KiB encoded) in a buffer of its own; twice that is
/// allowed for the allocator's rounding and free lists: 2 × (8 MiB + 33 KiB) ≈ 16.1 MiB.
/// 12 MiB more are allowed for the transport's windows, the writer's transient
/// buffers and the allocator, so RSS may grow by at most about 28 MiB during the stall. A
/// client that held all 2000 responses would pin at least 2000 × 33 KiB = 64.5 MiB and
/// fail: bounded and unbounded differ by 8×, far beyond that 2× slack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w10_a_stalled_consumer_loses_nothing_and_memory_stays_bounded() {
    let _serial = SERIAL.lock().await;
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let watching = client(server.endpoints()).await;
    let writing = client(server.endpoints()).await;
    let prefix = unique_prefix("w10");
    let start = writing
        .kv()
        .put(format!("{prefix}start"), "s")
        .await
        .expect("put")
        .revision();
    let mut stream = watching
        .watch(prefix.clone())
        .prefix()
        .from_revision(start + 1)
        .buffer_bytes(W10_BUFFER as usize)
        .await
        .expect("watch");
    // Warm the writer's connection and allocator with the same size of write.
    writing
        .kv()
        .put("/w10-warmup", vec![b'w'; W10_VALUE])
        .await
        .expect("put");
    let before = rss_bytes();
    let stalled = Instant::now();
    let mut written = Vec::new();
    for i in 0..2000 {
        let key = format!("{prefix}k{}", i % 50);
        let mut value = vec![b'z'; W10_VALUE];
        value[..6].copy_from_slice(format!("{i:06}").as_bytes());
        let rev = writing
            .kv()
            .put(key.clone(), value)
            .await
            .expect("put")
            .revision();
        written.push((rev, key, i));
    }
    let writing_took = stalled.elapsed();
    assert!(
        writing_took < Duration::from_secs(10),
        "the 2000 writes took {writing_took:?}, longer than the stall"
    );
    // The consumer's stall: 10 s from the first write (the fault, not a synchronisation).
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stalled.elapsed())).await;
    let during = rss_bytes();
    let watchers = server_watchers(&url).await;

    let last = written.last().unwrap().0;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.last().is_none_or(|(r, _, _)| *r < last) {
        let resp = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("not everything in time")
            .expect("the watch ended")
            .expect("the watch failed");
        for e in resp.events() {
            let value = e.kv().value();
            assert_eq!(value.len(), W10_VALUE);
            let i: usize = std::str::from_utf8(&value[..6]).unwrap().parse().unwrap();
            got.push((e.revision(), e.kv().key_str().unwrap().to_owned(), i));
        }
    }
    let growth = during.saturating_sub(before);
    let bound = 2 * (W10_BUFFER + W10_VALUE as u64 + 1024) + (12 << 20);
    println!(
        "w10: writes took {writing_took:?}; RSS {} MiB before, {} MiB after the stall (+{} MiB, bound {} MiB); {watchers} watchers on the server during the stall",
        before >> 20,
        during >> 20,
        growth >> 20,
        bound >> 20
    );
    assert!(got == written, "events lost, repeated or reordered");
    assert!(
        growth <= bound,
        "RSS grew by {growth} bytes while the consumer stalled (bound {bound})"
    );
}

// ---------------------------------------------------------------------------------------
// W11
// ---------------------------------------------------------------------------------------

/// W11: two clients on follower A only, one built with `require_leader(true)`, each with a
/// watch; both other members are SIGSTOPped, so A loses its leader.
///
/// Bound: etcd (3.4 and 3.5, `v3rpc.monitorLeader`) checks every election timeout (1 s
/// here) whether the member has a leader and cancels require-leader streams after 3 such
/// checks in a row; a follower notices the loss after its randomized election timeout,
/// at most 2 election timeouts after the last heartbeat. The stream thus ends at most
/// 2 + 3 = 5 election timeouts (5 s) after the stop; 1 s more is allowed for two cores
/// shared by three etcd processes and the test. It cannot end before one election timeout
/// (1 s): A cannot know earlier that it lost its leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w11_a_require_leader_watch_ends_with_no_leader_and_a_plain_one_stays() {
    let _serial = SERIAL.lock().await;
    let name = "w11_client_require_leader";
    let cluster = EtcdCluster::start(3).await;
    let (leader, followers) = cluster.leader_and_followers().await;
    let (a, other) = (followers[0], followers[1]);
    let url_a = cluster.member(a).client_url();
    let leader_required = Client::builder([url_a.clone()])
        .require_leader(true)
        .connect()
        .await
        .expect("connect");
    let plain = client([url_a.clone()]).await;
    let writing = writer(cluster.client_urls()).await;
    let prefix = unique_prefix(name);
    let mut rl = leader_required
        .watch(prefix.clone())
        .prefix()
        .await
        .expect("watch");
    let mut pl = plain.watch(prefix.clone()).prefix().await.expect("watch");
    let r = writing
        .kv()
        .put(format!("{prefix}a"), "1")
        .await
        .expect("put")
        .revision();
    assert_eq!(revisions_until(&mut rl, r).await, vec![r]);
    assert_eq!(revisions_until(&mut pl, r).await, vec![r]);

    cluster.member(leader).pause();
    cluster.member(other).pause();
    let paused = Instant::now();
    let item = tokio::time::timeout(Duration::from_secs(15), rl.next())
        .await
        .expect("the require-leader watch did not end within 15 s");
    let took = paused.elapsed();
    println!("{name}: NoLeader after {took:?}");
    assert!(
        matches!(item, Some(Err(WatchError::WatchNoLeader))),
        "{name}: expected NoLeader, got {item:?}"
    );
    assert!(rl.next().await.is_none(), "{name}: the watch goes on");
    assert!(
        took >= Duration::from_secs(1) && took <= Duration::from_secs(6),
        "{name}: NoLeader after {took:?}, outside [1 s, 6 s]"
    );
    // The plain watch is still open (and silent: nothing was written).
    if let Ok(item) = tokio::time::timeout(Duration::from_secs(1), pl.next()).await {
        panic!("{name}: the plain watch yielded {item:?} without a leader");
    }

    cluster.member(leader).resume();
    cluster.member(other).resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    let r2 = loop {
        match writing.kv().put(format!("{prefix}b"), "2").await {
            Ok(resp) => break resp.revision(),
            Err(e) => assert!(
                Instant::now() < deadline,
                "{name}: no write after SIGCONT: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A write attempt that timed out during the recovery may have been applied too (its
    // outcome is unknown): the plain watch delivers those, in order, then r2.
    let seen = revisions_until(&mut pl, r2).await;
    assert!(
        seen.first().is_some_and(|&f| f > r)
            && seen.windows(2).all(|w| w[0] < w[1])
            && seen.last() == Some(&r2),
        "{name}: the plain watch delivered {seen:?} after {r}, expected ... {r2}"
    );
    let mut again = leader_required
        .watch(prefix.clone())
        .prefix()
        .from_revision(r2)
        .await
        .expect("a new require-leader watch");
    assert_eq!(revisions_until(&mut again, r2).await, vec![r2]);
}
