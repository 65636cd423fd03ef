//! Mirrors a prefix from one etcd cluster to another and keeps it in step: the prefix is
//! read page by page at one revision (`paginate`), written to the destination, and then
//! every change after that revision is applied as it is watched, one transaction per
//! revision, so the destination only ever holds states the source held.
//!
//! ```text
//! cargo run -p etcd3 --example mirror -- <source endpoint> <destination endpoint> <prefix> [changes]
//! ```
//!
//! With `changes`, it stops after mirroring that many watched changes (for tests); without,
//! it runs until interrupted.

use etcd3::kv::Op;
use etcd3::watch::EventKind;
use etcd3::{Client, Result};
use futures_util::StreamExt;

/// The most operations etcd takes in one transaction by default (`--max-txn-ops`).
const MAX_OPS: usize = 128;

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, destination, prefix, rest @ ..] = &args[..] else {
        return Err(
            "usage: mirror <source endpoint> <destination endpoint> <prefix> [changes]".into(),
        );
    };
    let stop_after: Option<usize> = rest.first().map(|n| n.parse()).transpose()?;
    let source = Client::connect([source]).await?;
    let destination = Client::connect([destination]).await?;

    let revision = copy(&source, &destination, prefix).await?;
    println!("copied {prefix} as of revision {revision}");
    let applied = follow(&source, &destination, prefix, revision + 1, stop_after).await?;
    println!("mirrored {applied} changes");
    Ok(())
}

/// Replaces the destination's prefix by the source's as of one revision, which it returns.
async fn copy(source: &Client, destination: &Client, prefix: &str) -> Result<i64> {
    destination.kv().delete(prefix).prefix().await?;
    let mut pages = source.kv().get(prefix).prefix().paginate(1000);
    let mut keys = 0;
    while let Some(page) = pages.next().await {
        let page = page?;
        for chunk in page.kvs().chunks(MAX_OPS) {
            let puts = chunk
                .iter()
                .map(|kv| Op::put(kv.key_bytes().clone(), kv.value_bytes().clone()));
            destination.kv().txn().then(puts).await?;
        }
        keys += page.kvs().len();
    }
    println!("{keys} keys copied");
    // An empty prefix still pins a revision (the first page's).
    Ok(pages.revision().unwrap_or_default())
}

/// Applies every change of the source's prefix from `from` on, each revision's changes in
/// one transaction; returns how many were applied once `stop_after` is reached.
async fn follow(
    source: &Client,
    destination: &Client,
    prefix: &str,
    from: i64,
    stop_after: Option<usize>,
) -> Result<usize> {
    let mut changes = source.watch(prefix).prefix().from_revision(from).await?;
    let mut applied = 0;
    while let Some(response) = changes.next().await {
        let response = response?;
        let mut ops = Vec::new();
        let mut revision = None;
        for event in response.events() {
            // One transaction per source revision: a new revision flushes the last one's.
            if revision.is_some_and(|r| r != event.revision()) {
                apply(destination, std::mem::take(&mut ops)).await?;
            }
            revision = Some(event.revision());
            let key = event.kv().key_bytes().clone();
            ops.push(match event.kind() {
                EventKind::Put => Op::put(key, event.kv().value_bytes().clone()),
                EventKind::Delete => Op::delete(key),
            });
            applied += 1;
        }
        apply(destination, ops).await?;
        if stop_after.is_some_and(|n| applied >= n) {
            break;
        }
    }
    Ok(applied)
}

/// Writes one revision's changes, in as few transactions as etcd allows.
async fn apply(destination: &Client, ops: Vec<Op>) -> Result<()> {
    for chunk in ops.chunks(MAX_OPS) {
        destination.kv().txn().then(chunk.iter().cloned()).await?;
    }
    Ok(())
}
