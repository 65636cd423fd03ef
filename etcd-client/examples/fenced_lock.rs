//! A fenced critical section: tasks increment a shared counter under a lock, and every
//! write carries the lock's fencing token (`is_owner()`), so a holder that lost its lock
//! (paused past its lease's TTL, say) cannot overwrite its successor's work.
//!
//! ```sh
//! cargo run -p etcd3 --example fenced_lock -- http://127.0.0.1:2379
//! ```

use std::time::Duration;

use etcd3::Client;
use etcd3::concurrency::Session;
use etcd3::kv::{Compare, Op};

const LOCK: &str = "examples/fenced_lock/lock";
const COUNTER: &str = "examples/fenced_lock/counter";

async fn worker(
    client: Client,
    rounds: u32,
) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    let session = Session::new(&client).ttl(Duration::from_secs(5)).await?;
    let mut applied = 0;
    for _ in 0..rounds {
        let guard = session.lock(LOCK).await?;
        let read = client.kv().get(COUNTER).await?;
        let (n, seen) = read.first().map_or((0, 0), |kv| {
            (
                kv.value_str()
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                kv.mod_revision(),
            )
        });
        // The write applies only if we still hold the lock (token = guard.revision())
        // and nobody changed the counter since we read it.
        let resp = guard
            .txn()
            .when([Compare::mod_revision(COUNTER).eq(seen)])
            .then([Op::put(COUNTER, (n + 1).to_string())])
            .await?;
        if resp.succeeded() {
            applied += 1;
        } else {
            eprintln!("token {} was stale: write refused", guard.revision());
        }
        guard.unlock().await?;
    }
    session.close().await?;
    Ok(applied)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let client = Client::connect([endpoint]).await?;
    client.kv().put(COUNTER, "0").await?;
    let tasks: Vec<_> = (0..4)
        .map(|_| tokio::spawn(worker(client.clone(), 5)))
        .collect();
    let mut applied = 0;
    for t in tasks {
        applied += t.await??;
    }
    let counter = client.kv().get(COUNTER).await?;
    let value = counter
        .first()
        .map(|kv| kv.value_str().unwrap_or("?").to_owned());
    println!("{applied} fenced increments applied; counter = {value:?}");
    Ok(())
}
