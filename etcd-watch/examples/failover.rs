//! etcd-watch with failover over several members and no facade: the tower layers of
//! `etcd-core` (retry, failover) over one tonic channel per member, a KV handle writing
//! keys and a watch seeing every one of them, in order, while members come and go.
//!
//! ```text
//! cargo run -p etcd-watch --example failover -- \
//!     http://127.0.0.1:2379 http://127.0.0.1:22379 http://127.0.0.1:32379
//! ```
//!
//! Stop any one member while it runs: the watch is reopened on another member from the
//! revision after the last event it delivered, so no event is lost or repeated.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_core::Kv;
use etcd_core::grpc::{GrpcKv, GrpcWatch};
use etcd_core::layer::{FailoverLayer, RetryLayer, RetryPolicy};
use etcd_watch::Watcher;
use futures_util::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceBuilder;

/// How many keys the example writes.
const KEYS: usize = 40;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut endpoints: Vec<String> = std::env::args().skip(1).collect();
    if endpoints.is_empty() {
        endpoints = ["2379", "22379", "32379"]
            .map(|port| format!("http://127.0.0.1:{port}"))
            .to_vec();
    }
    let channels = endpoints
        .iter()
        .map(|url| Ok((url.clone(), channel(url)?)))
        .collect::<Result<Vec<(String, Channel)>, tonic::transport::Error>>()?;

    // One failover service per etcd service, each over every member's channel. Both
    // start at the first member listed; a call that never reached a member (refused
    // connection) moves to the next one, and a broken watch stream is reopened on the
    // next member in turn.
    let kv = Kv::new(
        ServiceBuilder::new()
            .layer(RetryLayer::new(
                RetryPolicy::default(),
                Some(Duration::from_secs(5)),
            ))
            .layer(FailoverLayer::starting_at(0))
            .service(members(&channels, GrpcKv::new)),
    );
    let watcher = Watcher::new(
        ServiceBuilder::new()
            .layer(FailoverLayer::starting_at(0))
            .service(members(&channels, GrpcWatch::new)),
    );

    let prefix = format!("example/failover/{}/", std::process::id());
    let start = kv
        .put(format!("{prefix}start"), "")
        .await?
        .header()
        .revision;
    let mut events = watcher
        .watch(prefix.clone())
        .prefix()
        .from_revision(start + 1)
        .await?;
    println!("watching {prefix} from revision {}", start + 1);

    let writer = tokio::spawn({
        let (kv, prefix) = (kv.clone(), prefix.clone());
        async move {
            for i in 0..KEYS {
                let key = format!("{prefix}{i:03}");
                // A put whose outcome is unknown (its member died with the request in
                // flight) is written again: the same value, so the key's final state is
                // the same whether or not the first attempt landed.
                while let Err(error) = kv.put(key.clone(), i.to_string()).await {
                    eprintln!("put {key}: {error}; writing it again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    // Every key seen, with the revisions of its events; revisions must only go up.
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut last = start;
    while seen.len() < KEYS {
        let response = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .map_err(|_| "no event for 30 s")?
            .ok_or("the watch ended")??;
        for event in response.events() {
            let revision = event.revision();
            if revision <= last {
                return Err(format!("revision {revision} after {last}: repeated").into());
            }
            last = revision;
            let key = event.kv().key_str().unwrap_or("<binary>").to_owned();
            seen.entry(key).or_default().push(revision);
        }
    }
    writer.await?;

    // The last write of each key is the one the server holds: the watch saw it.
    let stored = kv.get(prefix.clone()).prefix().await?;
    for item in stored.kvs() {
        let key = item.key_str().unwrap_or("<binary>");
        if key.ends_with("start") {
            continue;
        }
        let revisions = seen.get(key).ok_or_else(|| format!("{key}: never seen"))?;
        if !revisions.contains(&item.mod_revision()) {
            return Err(format!("{key}: revision {} not seen", item.mod_revision()).into());
        }
    }
    kv.delete(prefix).prefix().await?;
    println!("all {KEYS} keys seen in order, up to revision {last}");
    Ok(())
}

/// A lazily connected channel to one member, with keep-alive pings so that a member that
/// stops answering without closing its connections is found out.
fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(1))
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(2))
        .connect_lazy())
}

/// One typed service per member, named by its endpoint, for [`FailoverLayer`].
fn members<S>(channels: &[(String, Channel)], make: fn(Channel) -> S) -> Vec<(String, S)> {
    channels
        .iter()
        .map(|(url, channel)| (url.clone(), make(channel.clone())))
        .collect()
}
