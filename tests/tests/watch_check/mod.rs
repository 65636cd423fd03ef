//! Watch validators (reliability.md §7.6): what a watch delivered, checked against a
//! reference history read from etcd by a raw watch that shares no code with the client.
#![allow(dead_code)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_core::KeyRange;
use etcd_core::grpc::GrpcWatch;
use etcd_core::proto::etcdserverpb as pb;
use etcd_core::proto::mvccpb;
use etcd_watch::{Error, Event, EventKind, WatchResponse, WatchStream, Watcher};
use futures::StreamExt;
use tonic::transport::Channel;

/// An event reduced to what the checks compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    pub put: bool,
    pub key: Bytes,
    pub value: Bytes,
    pub mod_rev: i64,
    pub create_rev: i64,
    pub version: i64,
    /// Previous value and its mod revision.
    pub prev: Option<(Bytes, i64)>,
}

impl Ev {
    pub fn from_event(e: &Event) -> Self {
        Ev {
            put: e.kind() == EventKind::Put,
            key: e.kv().key_bytes().clone(),
            value: e.kv().value_bytes().clone(),
            mod_rev: e.kv().mod_revision(),
            create_rev: e.kv().create_revision(),
            version: e.kv().version(),
            prev: e
                .prev_kv()
                .map(|p| (p.value_bytes().clone(), p.mod_revision())),
        }
    }

    fn from_pb(e: &mvccpb::Event) -> Self {
        let kv = e.kv.clone().unwrap_or_default();
        Ev {
            put: e.r#type == 0,
            key: kv.key,
            value: kv.value,
            mod_rev: kv.mod_revision,
            create_rev: kv.create_revision,
            version: kv.version,
            prev: e
                .prev_kv
                .as_ref()
                .map(|p| (p.value.clone(), p.mod_revision)),
        }
    }
}

/// A plain tonic channel to `url`.
pub fn channel(url: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect_lazy()
}

/// A watcher over one endpoint.
pub fn watcher(url: &str) -> Watcher<GrpcWatch<Channel>> {
    Watcher::new(GrpcWatch::new(channel(url)))
}

/// The reference: every event in `range` from `from` through `until`, with previous
/// values, read by a raw watch straight from the member at `url`. `until` must be the
/// revision of an event in `range`.
pub async fn reference(url: &str, range: &KeyRange, from: i64, until: i64) -> Vec<Ev> {
    let mut client =
        pb::watch_client::WatchClient::new(channel(url)).max_decoding_message_size(usize::MAX);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: range.start().clone(),
                range_end: range.end().clone(),
                start_revision: from,
                prev_kv: true,
                ..Default::default()
            },
        )),
    })
    .unwrap();
    let outgoing = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut stream = client.watch(outgoing).await.unwrap().into_inner();
    let mut events = Vec::new();
    if until < from {
        return events;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .expect("reference watch timed out")
            .expect("reference watch ended")
            .expect("reference watch failed");
        assert!(!next.canceled, "reference watch canceled: {next:?}");
        for e in &next.events {
            let ev = Ev::from_pb(e);
            if ev.mod_rev <= until {
                events.push(ev);
            }
        }
        if next
            .events
            .last()
            .is_some_and(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision) >= until)
        {
            break;
        }
    }
    drop(tx);
    events
}

/// What a watch is expected to deliver.
#[derive(Clone, Debug)]
pub struct Filter {
    pub range: KeyRange,
    /// The first revision it may deliver.
    pub start: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
}

impl Filter {
    pub fn new(range: KeyRange, start: i64) -> Self {
        Filter {
            range,
            start,
            no_put: false,
            no_delete: false,
            prev_kv: false,
        }
    }

    pub fn matches(&self, ev: &Ev) -> bool {
        self.range.contains(&ev.key)
            && ev.mod_rev >= self.start
            && (!self.no_put || !ev.put)
            && (!self.no_delete || ev.put)
    }

    /// The reference events this watch must deliver, up to `until`.
    pub fn expected(&self, reference: &[Ev], until: i64) -> Vec<Ev> {
        reference
            .iter()
            .filter(|e| self.matches(e) && e.mod_rev <= until)
            .map(|e| {
                let mut e = e.clone();
                if !self.prev_kv {
                    e.prev = None;
                }
                e
            })
            .collect()
    }
}

/// Everything one watch delivered.
#[derive(Debug, Default)]
pub struct Recorded {
    pub responses: Vec<WatchResponse>,
    pub terminal: Option<Error>,
    /// Whether the stream ended (after the terminal error, or without one).
    pub ended: bool,
}

impl Recorded {
    pub fn events(&self) -> Vec<Ev> {
        self.responses
            .iter()
            .flat_map(|r| r.events().iter().map(Ev::from_event))
            .collect()
    }

    pub fn last_event_rev(&self) -> i64 {
        self.responses
            .iter()
            .rev()
            .find_map(|r| r.events().last().map(|e| e.revision()))
            .unwrap_or(0)
    }
}

/// Reads a watch until it has delivered an event at `until` or later (or a progress
/// notification past it), it ends, or `timeout` passes.
pub async fn collect(stream: &mut WatchStream, until: i64, timeout: Duration) -> Recorded {
    let mut rec = Recorded::default();
    collect_more(stream, &mut rec, until, timeout).await;
    rec
}

/// Continues recording into `rec`.
pub async fn collect_more(
    stream: &mut WatchStream,
    rec: &mut Recorded,
    until: i64,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    if rec.last_event_rev() >= until {
        return;
    }
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return,
            Ok(None) => {
                rec.ended = true;
                return;
            }
            Ok(Some(Err(e))) => {
                assert!(
                    rec.terminal.is_none(),
                    "a second error after {:?}: {e:?}",
                    rec.terminal
                );
                rec.terminal = Some(e);
                // (i) nothing after a terminal error: the stream must end.
                let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
                assert!(
                    matches!(next, Ok(None)),
                    "the stream went on after a terminal error: {next:?}"
                );
                rec.ended = true;
                return;
            }
            Ok(Some(Ok(resp))) => {
                let done = resp.events().last().is_some_and(|e| e.revision() >= until)
                    || (resp.is_progress_notify() && resp.revision() >= until);
                rec.responses.push(resp);
                if done {
                    return;
                }
            }
        }
    }
}

/// The validators: ordered, unique, atomic, bookmarkable, filter, then reliable and
/// resumable (delivered events equal the reference slice), prev_kv and is-create. `until`
/// is the last revision the watch was read up to.
pub fn validate(label: &str, rec: &Recorded, reference: &[Ev], filter: &Filter, until: i64) {
    let mut last_rev = 0i64;
    let mut progress_rev = 0i64;
    let mut seen = HashSet::new();
    for (i, resp) in rec.responses.iter().enumerate() {
        if resp.is_created() {
            assert_eq!(i, 0, "{label}: a creation notice after other responses");
            continue;
        }
        if resp.is_progress_notify() {
            // Bookmarkable: progress revisions do not go down and cover the events.
            assert!(
                resp.revision() >= last_rev,
                "{label}: progress at {} after an event at {last_rev}",
                resp.revision()
            );
            assert!(
                resp.revision() >= progress_rev,
                "{label}: progress went down"
            );
            progress_rev = resp.revision();
            continue;
        }
        assert!(
            !resp.events().is_empty(),
            "{label}: an empty event response"
        );
        let first = resp.events()[0].revision();
        // Atomic + ordered across responses: a response starts at a later revision than the
        // previous one ended.
        assert!(
            first > last_rev,
            "{label}: response {i} starts at {first}, previous ended at {last_rev} (split or reordered)"
        );
        let mut prev_in_resp = first;
        for e in resp.events() {
            let ev = Ev::from_event(e);
            assert!(
                ev.mod_rev >= prev_in_resp,
                "{label}: unordered in a response"
            );
            prev_in_resp = ev.mod_rev;
            assert!(
                ev.mod_rev > progress_rev,
                "{label}: event at {} after progress at {progress_rev}",
                ev.mod_rev
            );
            assert!(
                seen.insert((ev.mod_rev, ev.key.clone())),
                "{label}: duplicate event {ev:?}"
            );
            assert!(
                filter.matches(&ev),
                "{label}: event outside the filter {ev:?}"
            );
            assert_eq!(
                e.is_create(),
                ev.put && ev.version == 1,
                "{label}: is_create wrong"
            );
            if !filter.prev_kv {
                assert!(ev.prev.is_none(), "{label}: prev_kv without asking");
            }
        }
        last_rev = prev_in_resp;
    }
    // Reliable + resumable + prev_kv: exactly the reference slice.
    let expected = filter.expected(reference, until);
    let got = rec.events();
    if got != expected {
        let first_diff = got
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "{label}: delivered {} events, reference has {}; first difference at {first_diff}:\n got      {:?}\n expected {:?}",
            got.len(),
            expected.len(),
            got.get(first_diff),
            expected.get(first_diff)
        );
    }
}

/// The revision of the last event of `filter` in the reference, up to `until`.
pub fn last_expected(reference: &[Ev], filter: &Filter, until: i64) -> i64 {
    filter
        .expected(reference, until)
        .last()
        .map_or(0, |e| e.mod_rev)
}

/// The number of watchers the server holds, from its metrics.
pub async fn server_watchers(url: &str) -> i64 {
    server_gauge(url, "etcd_debugging_mvcc_watcher_total").await
}

/// The server's count of open watch streams.
pub async fn server_watch_streams(url: &str) -> i64 {
    server_gauge(url, "etcd_debugging_mvcc_watch_stream_total").await
}

async fn server_gauge(url: &str, name: &str) -> i64 {
    let resp = etcd_testkit::http::get(url, "/metrics", Duration::from_secs(5))
        .await
        .unwrap();
    resp.body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().unwrap() as i64)
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

/// Waits until the server's watcher gauge equals `n`.
pub async fn wait_watchers(url: &str, n: i64) {
    wait_gauge(url, "etcd_debugging_mvcc_watcher_total", n).await
}

/// Waits until the server's count of watch streams equals `n`.
pub async fn wait_watch_streams(url: &str, n: i64) {
    wait_gauge(url, "etcd_debugging_mvcc_watch_stream_total", n).await
}

async fn wait_gauge(url: &str, name: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = server_gauge(url, name).await;
        if now == n {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {now}, expected {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn is_compacted(e: &Option<Error>) -> Option<i64> {
    e.as_ref().and_then(Error::compact_revision)
}
