//! A short tour of what the client does today.
//!
//! `cargo xtask demo` starts a throwaway etcd and runs this against it. To run it against
//! your own cluster: `cargo run -p etcd3 --example demo -- http://127.0.0.1:2379`
//! (or set `ETCD_ENDPOINTS`, comma-separated).

use etcd3::kv::{Compare, Op, SortOrder, SortTarget};
use std::time::Duration;

use etcd3::watch::Watch;
use etcd3::{Client, Error, InvalidRequest, KeyRange, ServerErrorKind};
use futures_util::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints: Vec<String> = match std::env::args().nth(1) {
        Some(arg) => arg.split(',').map(str::to_owned).collect(),
        None => std::env::var("ETCD_ENDPOINTS")
            .unwrap_or_else(|_| "http://127.0.0.1:2379".into())
            .split(',')
            .map(str::to_owned)
            .collect(),
    };
    println!("== connecting to {}", endpoints.join(", "));
    let client = Client::connect(&endpoints).await?;
    let kv = client.kv();

    println!("\n== put and get");
    let put = kv.put("demo/greeting", "hello").await?;
    println!("put demo/greeting = hello at revision {}", put.revision());
    let put = kv.put("demo/greeting", "hello again").prev_kv().await?;
    let prev = put
        .prev_kv()
        .map(|kv| kv.value_str().unwrap_or("?").to_owned());
    println!("overwrote it; the previous value was {prev:?}");
    let got = kv.get("demo/greeting").await?;
    let item = got.first().expect("just written");
    println!(
        "get demo/greeting = {:?} (version {}, created at {}, modified at {})",
        item.value_str()?,
        item.version(),
        item.create_revision(),
        item.mod_revision()
    );

    println!("\n== ranges");
    for (name, port) in [("a", 8001), ("b", 8002), ("c", 8003)] {
        kv.put(format!("demo/services/{name}"), format!("10.0.0.1:{port}"))
            .await?;
    }
    let services = kv
        .get("demo/services/")
        .prefix()
        .sort(SortTarget::Key, SortOrder::Descend)
        .limit(2)
        .await?;
    println!(
        "first 2 of {} services, in reverse key order (more: {}):",
        services.count(),
        services.more()
    );
    for item in services.kvs() {
        println!("  {} -> {}", item.key_str()?, item.value_str()?);
    }
    let count = kv.get("demo/").prefix().count_only().await?.count();
    println!("keys under demo/: {count}");

    println!("\n== a transaction: claim a name only if nobody has it");
    for attempt in 1..=2 {
        let txn = kv
            .txn()
            .when([Compare::version("demo/owner").eq(0)])
            .then([Op::put("demo/owner", format!("attempt {attempt}"))])
            .otherwise([Op::get("demo/owner")])
            .await?;
        println!(
            "attempt {attempt}: {}",
            if txn.succeeded() {
                "claimed"
            } else {
                "already taken"
            }
        );
    }

    println!("\n== leases: a chosen ID, a key attached, kept alive on an interval");
    let leases = client.lease();
    let lease_id = 0x5eed_0000 + i64::from(std::process::id() % 0xffff);
    let lease = leases.grant(Duration::from_secs(2)).id(lease_id).await?;
    println!("granted lease {:#x} with TTL {:?}", lease.id(), lease.ttl());
    kv.put("demo/session", "alive").lease(lease.id()).await?;
    let keeper = leases
        .keep_alive(lease.id())
        .every(Duration::from_millis(500))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = kv.get("demo/session").await?.kvs().len();
    println!(
        "after 3 s (longer than the TTL) the key is still there: {} ({} renewals)",
        still == 1,
        keeper.renewals()
    );
    leases.revoke(lease.id()).await?;
    println!("revoked; the keeper reports: {}", keeper.lost().await);
    println!(
        "and the attached key is gone: {}",
        kv.get("demo/session").await?.kvs().is_empty()
    );

    println!("\n== watches: one stream, several range watches, one consumer");
    let (watcher, mut events) = client.watch_group();
    let a = watcher.add(KeyRange::range("demo/w/a", "demo/w/c")).await?;
    let z = watcher
        .add(Watch::key("demo/w/z/").prefix().prev_kv())
        .await?;
    println!("{a} covers [demo/w/a, demo/w/c), {z} the prefix demo/w/z/");
    let mut single = client.watch("demo/w/").prefix().await?;
    for (key, value) in [
        ("demo/w/a1", "1"),
        ("demo/w/b1", "2"),
        ("demo/w/c1", "3"),
        ("demo/w/z/1", "4"),
    ] {
        kv.put(key, value).await?;
    }
    let mut seen = 0;
    while seen < 3 {
        let (id, resp) = events.next().await.ok_or("watcher closed")?;
        for event in resp?.events() {
            seen += 1;
            println!(
                "  {id}: {:?} {} = {}",
                event.kind(),
                event.kv().key_str()?,
                event.kv().value_str()?
            );
        }
    }
    let mut on_prefix = 0;
    while on_prefix < 4 {
        let resp = single.next().await.ok_or("watch closed")??;
        on_prefix += resp.events().len();
    }
    println!("a plain watch on demo/w/ saw all {on_prefix} puts, in revision order");
    watcher.cancel(a).await?;
    drop(single);

    println!("\n== bad input gets a typed error, and the client stays usable");
    match kv.put("", "no key").await {
        Err(Error::InvalidRequest(InvalidRequest::EmptyKey)) => {
            println!("empty key: refused locally, nothing sent")
        }
        other => println!("unexpected: {other:?}"),
    }
    let future = kv
        .get("demo/greeting")
        .revision(put.revision() + 1000)
        .await;
    match future {
        Err(e) if e.server_kind() == Some(ServerErrorKind::FutureRevision) => {
            println!("future revision: {e}")
        }
        other => println!("unexpected: {other:?}"),
    }
    let too_many = kv
        .txn()
        .then((0..200).map(|i| Op::put(format!("demo/t{i}"), "x")))
        .await;
    if let Err(e) = too_many {
        println!("200 ops in one transaction: {e}");
    }

    println!("\n== compaction");
    let now = kv.get("demo/greeting").await?.revision();
    kv.compact(now).physical().await?;
    match kv.get("demo/greeting").revision(now - 1).await {
        Err(e) if e.server_kind() == Some(ServerErrorKind::Compacted) => {
            println!("reading before revision {now}: {e}")
        }
        other => println!("unexpected: {other:?}"),
    }

    println!("\n== clean up");
    let deleted = kv.delete("demo/").prefix().await?.deleted();
    println!("deleted {deleted} keys under demo/");
    println!("\nThe tour is over.");
    Ok(())
}
