//! Software transactional memory against a real etcd: a bank of accounts, many tasks
//! moving amounts between them, the total never changes under each isolation level that
//! promises it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use etcd_testkit::{shared_server, unique_prefix};
use etcd3::Client;
use etcd3::concurrency::Isolation;

const ACCOUNTS: usize = 5;
const START: i64 = 100;
const TASKS: u64 = 6;
const TRANSFERS: u64 = 10;

fn amount(v: Option<Bytes>) -> i64 {
    v.map(|v| std::str::from_utf8(&v).unwrap().parse().unwrap())
        .unwrap_or(0)
}

/// A small deterministic generator (xorshift), seeded per task.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn total(client: &Client, prefix: &str) -> i64 {
    client
        .kv()
        .get(prefix)
        .prefix()
        .await
        .unwrap()
        .kvs()
        .iter()
        .map(|kv| kv.value_str().unwrap().parse::<i64>().unwrap())
        .sum()
}

async fn bank(isolation: Isolation) {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let prefix = unique_prefix(&format!("stm_{isolation:?}"));
    for i in 0..ACCOUNTS {
        client
            .kv()
            .put(format!("{prefix}{i}"), START.to_string())
            .await
            .unwrap();
    }
    let attempts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        let prefix = prefix.clone();
        let attempts = attempts.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((t + 1) * 0x1000_0001);
            for _ in 0..TRANSFERS {
                let from = (next(&mut rng) % ACCOUNTS as u64) as usize;
                let to = (from + 1 + (next(&mut rng) % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                let want = (next(&mut rng) % 20) as i64 + 1;
                let (prefix, attempts) = (prefix.clone(), attempts.clone());
                client
                    .stm(move |txn| {
                        let (prefix, attempts) = (prefix.clone(), attempts.clone());
                        async move {
                            attempts.fetch_add(1, Ordering::Relaxed);
                            let (kf, kt) = (format!("{prefix}{from}"), format!("{prefix}{to}"));
                            let a = amount(txn.get(&kf).await?);
                            // Widen the window for conflicts.
                            tokio::task::yield_now().await;
                            let b = amount(txn.get(&kt).await?);
                            let moved = want.min(a);
                            txn.put(&kf, (a - moved).to_string());
                            txn.put(&kt, (b + moved).to_string());
                            Ok::<_, etcd3::Error>(())
                        }
                    })
                    .isolation(isolation)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sum = total(&client, &prefix).await;
    eprintln!(
        "stm {isolation:?}: {} transfers, {} attempts, {:?}, total {sum}",
        TASKS * TRANSFERS,
        attempts.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert_eq!(sum, START * ACCOUNTS as i64, "money created or destroyed");
}

#[tokio::test]
async fn bank_serializable_snapshot() {
    bank(Isolation::SerializableSnapshot).await;
}

#[tokio::test]
async fn bank_serializable() {
    bank(Isolation::Serializable).await;
}

#[tokio::test]
async fn bank_repeatable_reads() {
    bank(Isolation::RepeatableReads).await;
}

/// Read committed promises nothing for read-modify-write: it is not asserted, only run,
/// to show the commit never conflicts.
#[tokio::test]
async fn read_committed_never_retries() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let prefix = unique_prefix("stm_rc");
    let key = format!("{prefix}k");
    client.kv().put(&key, "1").await.unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let r = runs.clone();
    let k = key.clone();
    let other = client.clone();
    let value = client
        .stm(move |txn| {
            let (r, k, other) = (r.clone(), k.clone(), other.clone());
            async move {
                r.fetch_add(1, Ordering::Relaxed);
                let v = amount(txn.get(&k).await?);
                // Another client writes the key in between: no conflict at this level.
                other.kv().put(&k, "50").await?;
                txn.put(&k, (v + 1).to_string());
                Ok::<_, etcd3::Error>(v)
            }
        })
        .isolation(Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(value, 1);
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert_eq!(
        client.kv().get(&key).await.unwrap().value(),
        Some(&b"2"[..]),
        "the concurrent write was overwritten (read committed)"
    );
}

/// A conflicting write between the function's read and its commit makes it run again;
/// the function's own error ends the transaction without committing.
#[tokio::test]
async fn conflicts_retry_and_errors_abort() {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    let prefix = unique_prefix("stm_retry");
    let key = format!("{prefix}k");
    client.kv().put(&key, "1").await.unwrap();
    for isolation in [
        Isolation::SerializableSnapshot,
        Isolation::Serializable,
        Isolation::RepeatableReads,
    ] {
        let runs = Arc::new(AtomicU64::new(0));
        let (r, k, other) = (runs.clone(), key.clone(), client.clone());
        client
            .stm(move |txn| {
                let (r, k, other) = (r.clone(), k.clone(), other.clone());
                async move {
                    let run = r.fetch_add(1, Ordering::Relaxed);
                    let v = amount(txn.get(&k).await?);
                    if run == 0 {
                        other.kv().put(&k, (v + 100).to_string()).await?;
                    }
                    txn.put(&k, (v + 1).to_string());
                    Ok::<_, etcd3::Error>(())
                }
            })
            .isolation(isolation)
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::Relaxed), 2, "{isolation:?}");
    }
    // 1 -> +100 +1 three times = 304.
    assert_eq!(
        client.kv().get(&key).await.unwrap().value(),
        Some(&b"304"[..])
    );

    let err = client
        .stm(|txn| async move {
            txn.put("never", "written");
            Err::<(), _>(etcd3::Error::Protocol("abort".into()))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, etcd3::Error::Protocol(_)));
    assert!(client.kv().get("never").await.unwrap().first().is_none());
}
