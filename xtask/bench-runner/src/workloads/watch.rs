//! The watch workload: one prefix watch receiving the puts the same client makes.
//!
//! A run opens one prefix watch on `bench/watch/<client>/<c>/<round>/` and then drives
//! the put workload through the shared [`harness`](crate::harness) with `c` tasks for the
//! run's duration, every put to a key under that prefix and with a value stamped with the
//! time it was sent ([`stamped_value`](crate::protocol::stamped_value)). Once the puts are
//! done the watch must have received an event for each, exactly once: each is checked
//! (right key, none lost, none repeated), or the run fails after
//! [`DRAIN_TIMEOUT`](crate::protocol::DRAIN_TIMEOUT). ops = events received / time from
//! the first put to the last event; p50/p99 = put sent → event received; client and server
//! CPU over the same span. So a run measures the client's whole write-to-notification path:
//! its puts and its watch, on one connection.
//!
//! Warm-up: the same for [`WARMUP`](crate::child::WARMUP) under `.../warm/`, checked the
//! same way; not measured.

use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};

use crate::cpu;
use crate::harness::{self, Driver, Measured};
use crate::model::Workload;
use crate::protocol::{Checker, DRAIN_TIMEOUT, Events};

/// Our watch (or watches, merged): a stream of responses. Also used by the
/// `watches-10k` scale run.
pub(crate) struct OursEvents<S>(pub(crate) S);

impl<S> Events for OursEvents<S>
where
    S: Stream<Item = Result<etcd3::watch::WatchResponse, etcd3::watch::Error>> + Unpin + Send,
{
    async fn next(&mut self, checker: &mut Checker) -> Result<bool, String> {
        match self.0.next().await {
            None => Ok(false),
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(resp)) => {
                for ev in resp.events() {
                    if ev.kind() == etcd3::watch::EventKind::Put {
                        checker.event(ev.key(), ev.kv().value());
                    }
                }
                Ok(true)
            }
        }
    }
}

/// Their watch: the response stream of `WatchClient::watch`.
pub(crate) struct TheirsEvents(pub(crate) peer::WatchStream);

impl Events for TheirsEvents {
    async fn next(&mut self, checker: &mut Checker) -> Result<bool, String> {
        let Some(resp) = self.0.message().await.map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        if resp.canceled() {
            return Err(format!("watch canceled: {}", resp.cancel_reason()));
        }
        for ev in resp.events() {
            if ev.event_type() == peer::EventType::Put
                && let Some(kv) = ev.kv()
            {
                checker.event(kv.key(), kv.value());
            }
        }
        Ok(true)
    }
}

/// The warm-up, then the timed phase. `events` is a watch on `prefix/` opened by the caller
/// with the client `driver` wraps.
pub(crate) async fn run<D: Driver, E: Events>(
    driver: &D,
    events: &mut E,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    prefix: &str,
    etcd_pid: u32,
) -> Result<Measured, String> {
    let warm = phase(
        driver,
        events,
        concurrency,
        warmup,
        &format!("{prefix}/warm"),
    )
    .await;
    if let Some(e) = warm.first_error {
        return Err(format!("warm-up: {e}"));
    }
    let cpu0 = cpu::self_cpu();
    let srv0 = cpu::proc_cpu(etcd_pid).unwrap_or_default();
    let mut run = phase(
        driver,
        events,
        concurrency,
        duration,
        &format!("{prefix}/t"),
    )
    .await;
    run.client_cpu = cpu::self_cpu().saturating_sub(cpu0);
    run.server_cpu = cpu::proc_cpu(etcd_pid)
        .unwrap_or_default()
        .saturating_sub(srv0);
    Ok(run)
}

/// Puts under `key_prefix/` for `duration` while the watch receives their events, until
/// every acknowledged put has been seen (or the drain times out). CPU is the caller's to
/// measure.
async fn phase<D: Driver, E: Events>(
    driver: &D,
    events: &mut E,
    concurrency: usize,
    duration: Duration,
    key_prefix: &str,
) -> Measured {
    let mut checker = Checker::new(&format!("{key_prefix}/"));
    let t0 = Instant::now();
    let puts = harness::drive(
        driver,
        Workload::Watch,
        concurrency,
        duration,
        key_prefix.into(),
        0,
    );
    tokio::pin!(puts);
    let mut done = None;
    let mut drain_deadline = None;
    let stream_error = loop {
        if let Some((expected, _)) = &done
            && checker.complete(*expected)
        {
            break None;
        }
        tokio::select! {
            more = events.next(&mut checker) => match more {
                Ok(true) => {}
                Ok(false) => break Some("the watch stream ended".to_owned()),
                Err(e) => break Some(e),
            },
            m = &mut puts, if done.is_none() => {
                done = Some((m.latencies.len() as u64, m));
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(tokio::time::Instant::now)),
                if drain_deadline.is_some() => break Some("timed out waiting for the events".to_owned()),
        }
    };
    let elapsed = t0.elapsed();
    let (expected, put_errors, put_error) = match done {
        Some((n, m)) => (n, m.errors, m.first_error),
        None => (checker.received, 0, None),
    };
    let errors = checker.errors(expected) + put_errors + u64::from(stream_error.is_some());
    let first_error = put_error
        .map(|e| format!("put: {e}"))
        .or(stream_error)
        .or_else(|| checker.verdict(expected));
    let mut latencies = std::mem::take(&mut checker.latencies);
    latencies.sort_unstable();
    Measured {
        elapsed,
        items: checker.received,
        errors,
        first_error,
        latencies,
        client_cpu: Duration::ZERO,
        server_cpu: Duration::ZERO,
    }
}
