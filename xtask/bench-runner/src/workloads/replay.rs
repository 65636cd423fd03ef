//! The watch-replay workload (report only): event delivery of replayed history.
//!
//! Before the first run the parent writes [`HISTORY`] = 20,000 puts of 256-byte values
//! under [`HISTORY_PREFIX`] (`bench/watch-history/000000` ..), once, with our client, as 400
//! transactions of [`TXN_PUTS`] = 50 puts, checks that they took the contiguous revisions
//! `[first_rev, last_rev]` and passes that range to every child (`--history-revs
//! FIRST-LAST`). Transactions, because etcd replays a watch's past in passes of at most
//! 1,000 revisions every 100 ms: 20,000 single-put revisions would pace both clients alike,
//! while 400 revisions go in one pass. Both sides ask for fragmented responses (a pass is
//! about 6 MB, over the peer's 4 MB decoding limit); the bench's etcd runs with
//! `--max-request-bytes 32768`, the fragment size, because etcd sizes each fragment by
//! re-measuring it after every event added (quadratic in the events per fragment: at the
//! default 1.5 MiB it spent 80-160 µs of server CPU per event, at 32 KiB about 20).
//! Nothing else writes while a child runs.
//!
//! A run at concurrency `c` opens `c` prefix watches on one client, all from `first_rev`,
//! each on a gRPC stream of its own: ours through `client.new_watcher()` per watch (etcd
//! serves a stream from one loop, so one stream would be served by one server core),
//! theirs `WatchClient::watch` (a stream per watch). The timed part starts before the
//! watches are opened and ends once every watch has received all [`HISTORY`] events, or
//! fails after [`TIMEOUT`]; etcd hands a new watch its past on a 100 ms tick, so a run
//! includes 0-100 ms of waiting for it, which is why this is reported, not a target. Every
//! event is checked: a put of exactly the next history key, mod_revisions never going back
//! (none lost, none repeated, in order). ops = events received by all watches / elapsed;
//! p50/p99 = the time a watch took, opening included, to receive its whole replay.
//!
//! Warm-up: one watch replaying the first [`WARMUP_EVENTS`] keys (a key range, not the
//! prefix), checked the same way, then dropped; not measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::cpu;
use crate::harness::Measured;
use crate::workloads::watch_key;

/// Puts in the replayed history.
pub(crate) const HISTORY: u64 = 20_000;
/// Puts per transaction (one revision) of the history.
pub(crate) const TXN_PUTS: u64 = 50;
/// Keys of the history: `bench/watch-history/000000` ..
pub(crate) const HISTORY_PREFIX: &str = "bench/watch-history/";
/// A run fails when its watches have not received everything after this long.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);
/// Events replayed by the warm-up watch.
pub(crate) const WARMUP_EVENTS: u64 = 1_000;

/// The revisions of the history, as written by the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct History {
    pub(crate) first_rev: i64,
    pub(crate) last_rev: i64,
}

impl History {
    /// `FIRST-LAST`, the child's `--history-revs`.
    pub(crate) fn arg(self) -> String {
        format!("{}-{}", self.first_rev, self.last_rev)
    }

    pub(crate) fn parse(text: &str) -> Option<History> {
        let (a, b) = text.split_once('-')?;
        let h = History {
            first_rev: a.parse().ok()?,
            last_rev: b.parse().ok()?,
        };
        (h.first_rev > 0 && h.last_rev >= h.first_rev).then_some(h)
    }
}

/// Checks one watch's replay: `expected` puts of the history keys `0, 1, 2, ..` in that
/// order (the order of the transactions and of the puts within each), with mod_revisions
/// never going back. A key past the next expected one means events were lost; an earlier
/// one, that an event was repeated.
pub(crate) struct Replay {
    expected: u64,
    /// The key index the next event must have.
    next_index: u64,
    last_rev: i64,
    received: u64,
    lost: u64,
    repeated: u64,
    foreign: u64,
}

impl Replay {
    fn new(expected: u64) -> Self {
        Replay {
            expected,
            next_index: 0,
            last_rev: 0,
            received: 0,
            lost: 0,
            repeated: 0,
            foreign: 0,
        }
    }

    pub(crate) fn event(&mut self, is_put: bool, key: &[u8], mod_revision: i64) {
        let index = key
            .strip_prefix(HISTORY_PREFIX.as_bytes())
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|rest| rest.parse::<u64>().ok());
        let Some(index) = index.filter(|&i| is_put && i < HISTORY && !self.complete()) else {
            self.foreign += 1;
            return;
        };
        if index < self.next_index || mod_revision < self.last_rev {
            self.repeated += 1;
            return;
        }
        let skipped = index - self.next_index;
        self.lost += skipped;
        self.received += skipped + 1; // the lost ones count as gone by, so that the run ends
        self.next_index = index + 1;
        self.last_rev = mod_revision;
    }

    /// Events the replay must receive.
    pub(crate) fn expected(&self) -> u64 {
        self.expected
    }

    pub(crate) fn complete(&self) -> bool {
        self.received >= self.expected
    }

    /// Events in order (none of them lost).
    fn good(&self) -> u64 {
        self.received - self.lost
    }

    fn errors(&self) -> u64 {
        let missing = self.expected.saturating_sub(self.received);
        self.lost + missing + self.repeated + self.foreign
    }

    fn verdict(&self) -> Option<String> {
        (self.errors() > 0).then(|| {
            format!(
                "{} of {} events received in order: {} lost, {} not received, {} repeated or \
                 out of order, {} unexpected",
                self.good(),
                self.expected,
                self.lost,
                self.expected.saturating_sub(self.received),
                self.repeated,
                self.foreign
            )
        })
    }
}

/// What one replaying watch watches: `key` (a prefix, or the range `[key, range_end)`)
/// from `from_rev`; `to_rev` is the revision of its last event.
pub(crate) struct Keys {
    pub(crate) key: String,
    pub(crate) range_end: Option<String>,
    pub(crate) from_rev: i64,
    pub(crate) to_rev: i64,
}

/// One client's way of opening a replaying watch and reading it to the end (or, for the
/// cache-catchup workload, of catching a cache up, see [`cache`](super::cache)).
pub(crate) trait Watcher: Send + Sync + 'static {
    /// Watches `keys` from their revision and feeds
    /// every event to `replay` until it is complete.
    fn replay(
        &self,
        keys: Keys,
        replay: &mut Replay,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// Our client.
pub(crate) struct Ours(pub(crate) etcd3::Client);

impl Watcher for Ours {
    async fn replay(&self, keys: Keys, replay: &mut Replay) -> Result<(), String> {
        // A watcher of its own per watch: a gRPC stream each, as theirs.
        let watcher = self.0.new_watcher();
        let watch = watcher
            .watch(keys.key)
            .from_revision(keys.from_rev)
            .fragment();
        let watch = match keys.range_end {
            Some(end) => watch.range_end(end),
            None => watch.prefix(),
        };
        let mut stream = watch.await.map_err(|e| e.to_string())?;
        while !replay.complete() {
            let resp = stream
                .next()
                .await
                .ok_or("the watch stream ended")?
                .map_err(|e| e.to_string())?;
            for ev in resp.events() {
                let is_put = ev.kind() == etcd3::watch::EventKind::Put;
                replay.event(is_put, ev.key(), ev.kv().mod_revision());
            }
        }
        Ok(())
    }
}

/// Their client.
pub(crate) struct Theirs(pub(crate) peer::Client);

impl Watcher for Theirs {
    async fn replay(&self, keys: Keys, replay: &mut Replay) -> Result<(), String> {
        let options = peer::WatchOptions::new()
            .with_start_revision(keys.from_rev)
            .with_fragment();
        let options = match keys.range_end {
            Some(end) => options.with_range(end),
            None => options.with_prefix(),
        };
        let mut stream = self
            .0
            .watch_client()
            .watch(keys.key, Some(options))
            .await
            .map_err(|e| e.to_string())?;
        while !replay.complete() {
            let resp = next_response(&mut stream).await?;
            for ev in resp.events() {
                let is_put = ev.event_type() == peer::EventType::Put;
                match ev.kv() {
                    Some(kv) => replay.event(is_put, kv.key(), kv.mod_revision()),
                    None => replay.foreign += 1,
                }
            }
        }
        Ok(())
    }
}

/// Their watch's next response; the stream's end or a cancel is an error.
pub(crate) async fn next_response(
    stream: &mut peer::WatchStream,
) -> Result<peer::WatchResponse, String> {
    let resp = stream
        .message()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the watch stream ended")?;
    if resp.canceled() {
        return Err(format!("watch canceled: {}", resp.cancel_reason()));
    }
    Ok(resp)
}

/// The warm-up replay, then `watches` concurrent replays of the whole history.
pub(crate) async fn run<W: Watcher>(
    client: W,
    history: History,
    watches: usize,
    etcd_pid: u32,
) -> Result<Measured, String> {
    if history.last_rev - history.first_rev + 1 != (HISTORY / TXN_PUTS) as i64 {
        return Err(format!(
            "the history is not {HISTORY} revisions: {history:?}"
        ));
    }
    // Warm-up: keys 0 .. WARMUP_EVENTS, a key range, so exactly that many events.
    let mut warm = Replay::new(WARMUP_EVENTS);
    let keys = Keys {
        key: watch_key(0),
        range_end: Some(watch_key(WARMUP_EVENTS)),
        from_rev: history.first_rev,
        to_rev: history.first_rev + ((WARMUP_EVENTS - 1) / TXN_PUTS) as i64,
    };
    let warm_run = client.replay(keys, &mut warm);
    match tokio::time::timeout(TIMEOUT, warm_run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("warm-up: {e}")),
        Err(_) => return Err(format!("warm-up: timed out after {TIMEOUT:?}")),
    }
    if let Some(v) = warm.verdict() {
        return Err(format!("warm-up: {v}"));
    }

    let client = Arc::new(client);
    let prefix: Arc<str> = HISTORY_PREFIX.into();
    let cpu0 = cpu::self_cpu();
    let srv0 = cpu::proc_cpu(etcd_pid).unwrap_or_default();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..watches.max(1))
        .map(|_| {
            let (client, prefix) = (client.clone(), prefix.clone());
            tokio::spawn(async move {
                let mut replay = Replay::new(HISTORY);
                let result = tokio::time::timeout(
                    TIMEOUT,
                    client.replay(
                        Keys {
                            key: prefix.to_string(),
                            range_end: None,
                            from_rev: history.first_rev,
                            to_rev: history.last_rev,
                        },
                        &mut replay,
                    ),
                )
                .await;
                let done = t0.elapsed();
                let error = match result {
                    Ok(Ok(())) => replay.verdict(),
                    Ok(Err(e)) => Some(match replay.verdict() {
                        Some(v) => format!("{e}; {v}"),
                        None => e,
                    }),
                    Err(_) => Some(format!(
                        "timed out after {TIMEOUT:?}; {}",
                        replay.verdict().unwrap_or_default()
                    )),
                };
                let errors = match &error {
                    Some(_) => replay.errors().max(1),
                    None => 0,
                };
                (replay.good(), errors, error, done)
            })
        })
        .collect();
    let mut received = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((n, e, error, done)) => {
                received += n;
                errors += e;
                if let Some(error) = error {
                    first_error.get_or_insert(error);
                }
                latencies.push(done.as_nanos() as u64);
            }
            Err(e) => {
                errors += HISTORY;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let elapsed = t0.elapsed();
    let client_cpu = cpu::self_cpu().saturating_sub(cpu0);
    let server_cpu = cpu::proc_cpu(etcd_pid)
        .unwrap_or_default()
        .saturating_sub(srv0);
    latencies.sort_unstable();
    Ok(Measured {
        elapsed,
        items: received,
        errors,
        first_error,
        latencies,
        client_cpu,
        server_cpu,
    })
}
