//! Scale runs of our client alone (the peer has no equivalent API): 10,000 watches over one
//! stream, and 10,000 leases kept alive for a minute. Each runs in a child process of its own.
//!
//! * `watches-10k`: one client opens `count` watches, keys `scale/w/<i>`, concurrently (256
//!   creations in flight), all multiplexed by our watcher on one gRPC stream; the server's
//!   gauge `etcd_debugging_mvcc_watch_stream_total` (on `<endpoint>/metrics`) must go up by
//!   exactly 1. Then the parent puts one value to each key (64 putters) and every event is
//!   checked. Target: one stream, peak RSS (`VmHWM`) ≤ 64 MiB.
//! * `leases-10k`: `count` leases of TTL 10 s granted (64 in flight) and kept alive by
//!   `Lessor::keep_alive` handles, all renewed over one stream, for `hold`; then none may be
//!   lost (every handle's `loss()` is `None`, every lease is in the server's lease list).
//!   Client CPU is measured over the hold only. Target: none lost, CPU ≤ 5% of one core, peak
//!   RSS ≤ 64 MiB.

use std::collections::HashSet;
use std::future::IntoFuture;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};

use crate::json::Writer;
use crate::model::Scale;
use crate::protocol::{Checker, Control, Ready, phase};
use crate::workloads::watch::OursEvents;
use crate::{cpu, mem};

/// The targets.
pub(crate) const RSS_TARGET_MIB: f64 = 64.0;
pub(crate) const CPU_TARGET_PCT: f64 = 5.0;
const LEASE_TTL: Duration = Duration::from_secs(10);
const METRIC: &str = "etcd_debugging_mvcc_watch_stream_total";

pub(crate) async fn run(scale: Scale, endpoint: &str, count: usize, hold: Duration) -> String {
    let head = Writer::default()
        .str("workload", scale.name())
        .str("client", "ours")
        .int("count", count as u64);
    let result = match scale {
        Scale::Watches => watches(head, endpoint, count).await,
        Scale::Leases => leases(head, endpoint, count, hold).await,
    };
    result.unwrap_or_else(|e| {
        Writer::default()
            .str("workload", scale.name())
            .str("client", "ours")
            .int("count", count as u64)
            .int("errors", 1)
            .str("first_error", &e)
            .bool("pass", false)
            .finish()
    })
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn watches(head: Writer, endpoint: &str, count: usize) -> Result<String, String> {
    let before = stable_watch_streams(endpoint).await?;
    let client = crate::connect::ours(endpoint).await?;
    let t0 = Instant::now();
    let streams: Vec<_> = futures_util::stream::iter(0..count)
        .map(|i| client.watch(format!("scale/w/{i}")).into_future())
        .buffer_unordered(256)
        .try_collect()
        .await
        .map_err(err)?;
    let create_s = t0.elapsed().as_secs_f64();
    let after = watch_streams(endpoint).await?;
    let rss_created = mem::rss();

    let mut events = OursEvents(futures_util::stream::select_all(streams));
    let mut control = Control::start();
    let ready = Ready {
        prefix: "scale/w/".into(),
        putters: 64,
        duration: Duration::ZERO,
        count: count as u64,
    };
    let mut checker = Checker::new(&ready.prefix);
    let cpu0 = cpu::self_cpu();
    let t1 = Instant::now();
    let result = phase(&mut events, &mut control, &mut checker, &ready).await;
    let deliver_s = t1.elapsed().as_secs_f64();
    let cpu_s = cpu::self_cpu().saturating_sub(cpu0).as_secs_f64();
    let rss = mem::rss();
    let (errors, first_error) = match result {
        Ok(n) => (checker.errors(n), checker.verdict(n)),
        Err(e) => (checker.errors(count as u64).max(1), Some(e)),
    };
    let delta = after - before;
    let pass = errors == 0 && delta == 1.0 && rss.peak_mib <= RSS_TARGET_MIB;
    Ok(head
        .num("create_s", create_s, 3)
        .num("deliver_s", deliver_s, 3)
        .int("events", checker.received)
        .num("events_per_s", checker.received as f64 / deliver_s, 1)
        .num("client_cpu_s", cpu_s, 4)
        .num("streams_before", before, 0)
        .num("streams_after", after, 0)
        .num("stream_delta", delta, 0)
        .num("rss_after_create_mib", rss_created.now_mib, 2)
        .num("rss_mib", rss.now_mib, 2)
        .num("peak_rss_mib", rss.peak_mib, 2)
        .int("errors", errors)
        .opt_str("first_error", first_error.as_deref())
        .bool("pass", pass)
        .finish())
}

async fn leases(
    head: Writer,
    endpoint: &str,
    count: usize,
    hold: Duration,
) -> Result<String, String> {
    let client = crate::connect::ours(endpoint).await?;
    let lessor = client.lease();
    let t0 = Instant::now();
    let handles: Vec<_> = futures_util::stream::iter(0..count)
        .map(|_| async move {
            let lease = lessor.grant(LEASE_TTL).await?;
            lessor.keep_alive(lease.id()).await
        })
        .buffer_unordered(64)
        .try_collect()
        .await
        .map_err(err)?;
    let setup_s = t0.elapsed().as_secs_f64();
    let renewals0: u64 = handles.iter().map(|h| h.renewals()).sum();

    let cpu0 = cpu::self_cpu();
    let t1 = Instant::now();
    tokio::time::sleep(hold).await;
    let cpu_s = cpu::self_cpu().saturating_sub(cpu0).as_secs_f64();
    let wall_s = t1.elapsed().as_secs_f64();
    let rss = mem::rss();

    let renewals = handles.iter().map(|h| h.renewals()).sum::<u64>() - renewals0;
    let lost = handles.iter().filter(|h| h.loss().is_some()).count();
    let listed: HashSet<i64> = lessor
        .list()
        .await
        .map_err(err)?
        .ids()
        .iter()
        .copied()
        .collect();
    let alive = handles.iter().filter(|h| listed.contains(&h.id())).count();
    let mut sample_expired = 0;
    for h in handles.iter().step_by((count / 100).max(1)) {
        match lessor.time_to_live(h.id()).await {
            Ok(ttl) if !ttl.ttl().is_zero() => {}
            _ => sample_expired += 1,
        }
    }
    let cpu_pct = cpu_s / wall_s * 100.0;
    let errors = (lost + (count - alive) + sample_expired) as u64;
    let first_error = (errors > 0).then(|| {
        format!(
            "{lost} handles lost, {} leases not listed, {sample_expired} sampled with TTL 0",
            count - alive
        )
    });
    let pass = errors == 0 && cpu_pct <= CPU_TARGET_PCT && rss.peak_mib <= RSS_TARGET_MIB;
    Ok(head
        .num("setup_s", setup_s, 3)
        .num("hold_s", wall_s, 3)
        .num("client_cpu_s", cpu_s, 4)
        .num("cpu_pct", cpu_pct, 2)
        .int("renewals", renewals)
        .num("renewals_per_s", renewals as f64 / wall_s, 1)
        .int("lost", lost as u64)
        .int("listed", alive as u64)
        .num("rss_mib", rss.now_mib, 2)
        .num("peak_rss_mib", rss.peak_mib, 2)
        .int("errors", errors)
        .opt_str("first_error", first_error.as_deref())
        .bool("pass", pass)
        .finish())
}

/// The server's count of watch streams, once it is steady (a stream of an earlier child may
/// still be closing).
async fn stable_watch_streams(endpoint: &str) -> Result<f64, String> {
    let mut last = watch_streams(endpoint).await?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = watch_streams(endpoint).await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// `etcd_debugging_mvcc_watch_stream_total` from `<endpoint>/metrics`.
async fn watch_streams(endpoint: &str) -> Result<f64, String> {
    let owned = endpoint.to_owned();
    let body = tokio::task::spawn_blocking(move || http_get(&owned, "/metrics"))
        .await
        .map_err(err)??;
    body.lines()
        .find_map(|line| line.strip_prefix(METRIC)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no {METRIC} in {endpoint}/metrics"))
}

/// A plain HTTP/1.0 GET (the metrics are served on the client URL).
fn http_get(endpoint: &str, path: &str) -> Result<String, String> {
    let host = endpoint
        .split(',')
        .next()
        .unwrap_or(endpoint)
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(host).map_err(|e| format!("{host}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(err)?;
    let mut body = String::new();
    conn.read_to_string(&mut body).map_err(err)?;
    Ok(body)
}
