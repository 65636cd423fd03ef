//! Sessions and locks against a real etcd: the fair queue, fencing, a waiter whose
//! session is lost (X2), fenced unlock (X3), cancel-safety, and mutual exclusion of fenced
//! writes (reliability.md §1.5, §6.2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_testkit::{shared_server, unique_prefix};
use etcd3::Client;
use etcd3::concurrency::{Error, Session, SessionLoss};
use etcd3::kv::{Compare, Op};
use etcd3::lease::LossReason;

async fn setup(name: &str) -> (Client, String) {
    let client = Client::connect(shared_server().endpoints()).await.unwrap();
    (client, unique_prefix(name))
}

async fn session(client: &Client) -> Session {
    Session::new(client)
        .ttl(Duration::from_secs(5))
        .await
        .unwrap()
}

/// Waits (up to 5 s) until exactly `count` lock keys are under `name`: a waiter has
/// queued, or a cancelled or failed one has removed its key.
async fn wait_for_keys(client: &Client, name: &str, count: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = keys_under(client, name).await.len();
        if now == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now} keys under {name}, expected {count}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn keys_under(client: &Client, prefix: &str) -> Vec<(String, i64)> {
    client
        .kv()
        .get(prefix)
        .prefix()
        .await
        .unwrap()
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_owned(), kv.create_revision()))
        .collect()
}

#[tokio::test]
async fn lock_key_revision_try_lock_and_unlock() {
    let (client, p) = setup("lock_basic").await;
    let name = format!("{p}lk");
    let a = session(&client).await;
    let b = session(&client).await;

    let guard = a.lock(&name).await.unwrap();
    assert_eq!(
        guard.key(),
        format!("{name}/{:x}", a.lease_id()).as_bytes(),
        "the lock key is {{name}}/{{lease:x}}"
    );
    let created = client.kv().get(guard.key()).await.unwrap();
    assert_eq!(created.first().unwrap().create_revision(), guard.revision());
    assert_eq!(created.first().unwrap().lease(), a.lease_id());
    assert!(guard.is_held().await.unwrap());

    // Held: try_lock fails at once, naming the holder, and leaves no key behind.
    match b.mutex(&name).try_lock().await {
        Err(Error::Locked { owner }) => assert_eq!(&owner[..], guard.key()),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(keys_under(&client, &name).await.len(), 1);

    // The fence holds for the owner only.
    let ok = guard
        .txn()
        .then([Op::put(format!("{p}data"), "a")])
        .await
        .unwrap();
    assert!(ok.succeeded());

    assert!(guard.unlock().await.unwrap(), "unlock deletes the key");
    assert!(!guard.is_held().await.unwrap());
    let g2 = b.mutex(&name).try_lock().await.unwrap();
    assert!(g2.revision() > guard.revision(), "tokens increase");
    // The stale owner's fence now fails.
    let stale = guard
        .txn()
        .then([Op::put(format!("{p}data"), "stale")])
        .await
        .unwrap();
    assert!(
        !stale.succeeded(),
        "a fenced write after losing the lock fails"
    );
    g2.unlock().await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// X2 (etcd #11456, #19597): B waits behind A; B's lease is revoked by another client
/// (so B's keep-alive does not know yet); B's lock() fails promptly with SessionExpired
/// and never succeeds, even once A unlocks.
#[tokio::test]
async fn x2_waiter_whose_lease_is_revoked_fails_promptly() {
    let (client, p) = setup("x2").await;
    let other = Client::connect(shared_server().endpoints()).await.unwrap();
    let name = format!("{p}lk");
    let a = session(&client).await;
    let b = session(&client).await;
    let held = a.lock(&name).await.unwrap();

    let waiter = {
        let b = b.clone();
        let name = name.clone();
        tokio::spawn(async move { b.lock(&name).await })
    };
    wait_for_keys(&client, &name, 2, "B queues").await;
    let revoked_at = Instant::now();
    other.lease().revoke(b.lease_id()).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("B must fail promptly, not wait for A")
        .unwrap();
    let took = revoked_at.elapsed();
    eprintln!("x2: waiter failed {took:?} after its lease was revoked: {result:?}");
    match result {
        Err(Error::SessionExpired { lease_id, .. }) => assert_eq!(lease_id, b.lease_id()),
        other => panic!("expected SessionExpired, got {other:?}"),
    }
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // A unlocks; B's session is gone and a new lock() on it fails at once.
    held.unlock().await.unwrap();
    let loss = tokio::time::timeout(Duration::from_secs(5), b.lost())
        .await
        .expect("the keep-alive notices the revoked lease");
    assert_eq!(loss, SessionLoss::Lease(LossReason::NotFound));
    assert!(b.lock(&name).await.unwrap_err().is_session_expired());
    assert!(keys_under(&client, &name).await.is_empty());
    a.close().await.unwrap();
}

/// X2, the session's side: revoking through the session's own client ends the wait
/// through the session's lost() signal.
#[tokio::test]
async fn x2_waiter_fails_when_its_session_is_lost() {
    let (client, p) = setup("x2_lost").await;
    let name = format!("{p}lk");
    let a = session(&client).await;
    let b = session(&client).await;
    let _held = a.lock(&name).await.unwrap();
    let waiter = {
        let b = b.clone();
        let name = name.clone();
        tokio::spawn(async move { b.lock(&name).await })
    };
    wait_for_keys(&client, &name, 2, "B queues").await;
    let t = Instant::now();
    b.orphan();
    let result = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap();
    match result {
        Err(Error::SessionExpired { loss, .. }) => assert_eq!(loss, Some(SessionLoss::Orphaned)),
        other => panic!("expected SessionExpired, got {other:?}"),
    }
    eprintln!("x2_lost: failed {:?} after orphan", t.elapsed());
    wait_for_keys(&client, &name, 1, "the failed waiter removes its key").await;
    a.close().await.unwrap();
}

/// X3 (etcd #22082): a retried, stale unlock after the same session locked again does not
/// delete the new lock key.
#[tokio::test]
async fn x3_stale_unlock_does_not_delete_the_new_lock() {
    let (client, p) = setup("x3").await;
    let name = format!("{p}lk");
    let s = session(&client).await;
    let first = s.lock(&name).await.unwrap();
    assert!(first.unlock().await.unwrap());
    let second = s.lock(&name).await.unwrap();
    assert_eq!(first.key(), second.key(), "same session, same key name");
    assert!(second.revision() > first.revision());

    // The retry of the first unlock (its response was lost, say).
    assert!(
        !first.unlock().await.unwrap(),
        "the stale unlock deletes nothing"
    );
    let raw = first.unlock_txn().await.unwrap();
    assert!(!raw.succeeded());
    let now = client.kv().get(second.key()).await.unwrap();
    assert_eq!(
        now.first().map(|kv| kv.create_revision()),
        Some(second.revision()),
        "the new lock key survives"
    );
    assert!(second.unlock().await.unwrap());
    s.close().await.unwrap();
}

/// Dropping a waiting lock() future removes its key; a dropped guard unlocks.
#[tokio::test]
async fn cancelled_waiter_and_dropped_guard_clean_up() {
    let (client, p) = setup("cancel").await;
    let name = format!("{p}lk");
    let a = session(&client).await;
    let b = session(&client).await;
    let held = a.lock(&name).await.unwrap();
    let timed_out = tokio::time::timeout(Duration::from_millis(300), b.lock(&name)).await;
    assert!(timed_out.is_err(), "B waits");
    wait_for_keys(&client, &name, 1, "the cancelled waiter removes its key").await;
    drop(held);
    wait_for_keys(&client, &name, 0, "the dropped guard unlocks").await;
    let g = b.mutex(&name).try_lock().await.unwrap();
    g.unlock().await.unwrap();
}

/// The queue is fair: waiters acquire in the order they queued, each watching only its
/// predecessor.
#[tokio::test]
async fn waiters_acquire_in_queue_order() {
    let (client, p) = setup("fifo").await;
    let name = format!("{p}lk");
    let holder = session(&client).await;
    let held = holder.lock(&name).await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let s = session(&client).await;
        let queued = name.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let g = s.lock(&queued).await.unwrap();
            order.lock().unwrap().push((i, g.revision()));
            tokio::time::sleep(Duration::from_millis(20)).await;
            g.unlock().await.unwrap();
            s.close().await.unwrap();
        }));
        // Queue them in a known order.
        wait_for_keys(&client, &name, i + 2, "the next waiter queues").await;
    }
    held.unlock().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order.iter().map(|o| o.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(order.windows(2).all(|w| w[0].1 < w[1].1));
    holder.close().await.unwrap();
}

/// Mutual exclusion with fencing: tasks increment a counter under the lock with
/// `is_owner()` and the counter's mod revision in the transaction. The final counter
/// equals the number of fenced transactions that succeeded, and fencing tokens increase
/// in acquisition order.
#[tokio::test]
async fn fenced_increments_never_lose_an_update() {
    let (client, p) = setup("fenced_counter").await;
    let name = format!("{p}lk");
    let counter = format!("{p}counter");
    client.kv().put(&counter, "0").await.unwrap();
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    const TASKS: usize = 5;
    const ROUNDS: usize = 8;
    for _ in 0..TASKS {
        let client = client.clone();
        let name = name.clone();
        let counter = counter.clone();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let s = session(&client).await;
            let mut succeeded = 0;
            for _ in 0..ROUNDS {
                let g = s.lock(&name).await.unwrap();
                tokens.lock().unwrap().push(g.revision());
                let read = client.kv().get(&counter).await.unwrap();
                let kv = read.first().unwrap();
                let n: i64 = kv.value_str().unwrap().parse().unwrap();
                let resp = g
                    .txn()
                    .when([Compare::mod_revision(&counter).eq(kv.mod_revision())])
                    .then([Op::put(&counter, (n + 1).to_string())])
                    .await
                    .unwrap();
                if resp.succeeded() {
                    succeeded += 1;
                }
                g.unlock().await.unwrap();
            }
            s.close().await.unwrap();
            succeeded
        }));
    }
    let mut succeeded = 0;
    for t in tasks {
        succeeded += t.await.unwrap();
    }
    let final_value: i64 = client
        .kv()
        .get(&counter)
        .await
        .unwrap()
        .first()
        .unwrap()
        .value_str()
        .unwrap()
        .parse()
        .unwrap();
    let tokens = tokens.lock().unwrap().clone();
    eprintln!(
        "fenced counter: {} acquisitions, {succeeded} fenced writes succeeded, {:?}",
        tokens.len(),
        started.elapsed()
    );
    assert_eq!(final_value, succeeded as i64);
    assert_eq!(
        succeeded,
        TASKS * ROUNDS,
        "no pauses: every fenced write applies"
    );
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens strictly increase: {tokens:?}"
    );
}

/// Sessions: close revokes the lease (keys gone), orphan stops renewing but leaves it, a
/// caller's lease can carry a session (the Elixir client's add_lock).
#[tokio::test]
async fn session_close_orphan_and_callers_lease() {
    let (client, p) = setup("session").await;
    let name = format!("{p}lk");

    let s = session(&client).await;
    assert!(s.loss().is_none());
    let g = s.lock(&name).await.unwrap();
    let lease = s.lease_id();
    s.close().await.unwrap();
    assert_eq!(s.lost().await, SessionLoss::Closed);
    assert!(client.kv().get(g.key()).await.unwrap().first().is_none());
    assert!(
        client
            .lease()
            .time_to_live(lease)
            .await
            .is_err_and(|e| e.is_lease_not_found())
    );
    drop(g);

    let s = session(&client).await;
    s.orphan();
    assert_eq!(s.lost().await, SessionLoss::Orphaned);
    let ttl = client.lease().time_to_live(s.lease_id()).await.unwrap();
    assert!(ttl.ttl() > Duration::ZERO, "an orphaned lease lives on");
    client.lease().revoke(s.lease_id()).await.unwrap();

    let lease = client
        .lease()
        .grant(Duration::from_secs(10))
        .await
        .unwrap()
        .id();
    let s = Session::new(&client).lease(lease).await.unwrap();
    assert_eq!(s.lease_id(), lease);
    let g = s.lock(&name).await.unwrap();
    assert_eq!(g.key(), format!("{name}/{lease:x}").as_bytes());
    let stored = client.kv().get(g.key()).await.unwrap();
    assert_eq!(stored.first().unwrap().lease(), lease);
    g.unlock().await.unwrap();
    s.close().await.unwrap();

    // An unknown lease is refused.
    let err = Session::new(&client).lease(lease).await.unwrap_err();
    assert!(err.is_lease_not_found(), "{err:?}");
}

/// The server-side Lock service: the same queue and keys as the client-side mutex.
#[tokio::test]
async fn server_side_lock_service() {
    let (client, p) = setup("lock_service").await;
    let name = format!("{p}lk");
    let a = session(&client).await;
    let b = session(&client).await;
    let held = client
        .lock_service()
        .lock(name.as_str(), a.lease_id())
        .await
        .unwrap();
    assert_eq!(held.key, format!("{name}/{:x}", a.lease_id()).into_bytes());
    // The client-side mutex sees the server's lock.
    assert!(matches!(
        b.mutex(&name).try_lock().await,
        Err(Error::Locked { .. })
    ));
    let waiter = {
        let client = client.clone();
        let (name, lease) = (name.clone(), b.lease_id());
        tokio::spawn(async move { client.lock_service().lock(name.as_str(), lease).await })
    };
    wait_for_keys(&client, &name, 2, "the second lock queues").await;
    assert!(!waiter.is_finished(), "the second lock waits");
    client.lock_service().unlock(held.key).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        second.key,
        format!("{name}/{:x}", b.lease_id()).into_bytes()
    );
    client.lock_service().unlock(second.key).await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}
