//! The facade as one API: a program written against `etcd3` alone uses `?` on every
//! call of every subsystem (KV, lease, watch, lock, election, STM) in one function returning
//! `etcd3::Result`, and stores every handle it gets in a struct of its own, naming each
//! type from `etcd3`. It runs against a real etcd and checks what it got.

use std::time::Duration;

use etcd_testkit::{shared_server, unique_prefix};
use etcd3::concurrency::{Election, Isolation, Leadership, LockGuard, Mutex, Session};
use etcd3::kv::{Compare, Op};
use etcd3::lease::KeepAlive;
use etcd3::watch::WatchId;
use etcd3::{Client, GroupEvents, KeyRange, Kv, Lessor, WatchGroup, WatchStream, Watcher};
use futures::StreamExt;

/// Everything a long-lived service might keep.
struct App {
    client: Client,
    kv: Kv,
    lessor: Lessor,
    watcher: Watcher,
    stream: WatchStream,
    group: WatchGroup,
    events: GroupEvents,
    in_group: WatchId,
    keep_alive: KeepAlive,
    session: Session,
    mutex: Mutex,
    guard: LockGuard,
    election: Election,
    leadership: Leadership,
}

/// Sets the app up, `?` on every call.
async fn start(endpoints: Vec<String>, p: &str) -> etcd3::Result<App> {
    let client = Client::connect(endpoints).await?;
    let kv = client.kv().clone();
    let lessor = client.lease().clone();
    let watcher = client.watches().clone();

    let lease = lessor.grant(Duration::from_secs(10)).await?;
    kv.put(format!("{p}service/a"), "10.0.0.1:80")
        .lease(lease.id())
        .await?;
    let keep_alive = lessor
        .keep_alive(lease.id())
        .every(Duration::from_secs(2))
        .await?;
    let stream = client
        .watch(format!("{p}service/"))
        .prefix()
        .prev_kv()
        .await?;
    let (group, events) = client.watch_group();
    let in_group = group.add(KeyRange::prefix(format!("{p}config/"))).await?;
    let claimed = kv
        .txn()
        .when([Compare::version(format!("{p}leader")).eq(0)])
        .then([Op::put(format!("{p}leader"), "me")])
        .await?;
    assert!(claimed.succeeded());

    let session = client.session().ttl(Duration::from_secs(10)).await?;
    let mutex = session.mutex(format!("{p}lock"));
    let guard = mutex.lock().await?;
    let election = Election::new(&session, format!("{p}election"));
    let leadership = election.campaign("me").await?;
    leadership.proclaim("still me").await?;

    let moved = client
        .stm(move |txn| async move {
            let seen = txn.get("stm/a").await?;
            txn.put("stm/a", format!("{}+1", seen.is_some()));
            Ok::<_, etcd3::Error>(seen.is_some())
        })
        .isolation(Isolation::Serializable)
        .await?;
    let _ = moved;

    Ok(App {
        client,
        kv,
        lessor,
        watcher,
        stream,
        group,
        events,
        in_group,
        keep_alive,
        session,
        mutex,
        guard,
        election,
        leadership,
    })
}

#[tokio::test]
async fn one_error_type_and_nameable_handles_across_every_subsystem() {
    let p = unique_prefix("one_api");
    let mut app = start(shared_server().endpoints(), &p)
        .await
        .expect("the whole setup, with ? on every call");

    // The handles work after being stored.
    let r = app
        .kv
        .put(format!("{p}service/b"), "10.0.0.2:80")
        .await
        .unwrap()
        .revision();
    let got = tokio::time::timeout(Duration::from_secs(10), app.stream.next())
        .await
        .expect("an event")
        .expect("the stream is open")
        .expect("no error");
    assert_eq!(got.events()[0].kv().mod_revision(), r);
    app.kv.put(format!("{p}config/x"), "1").await.unwrap();
    let (id, response) = tokio::time::timeout(Duration::from_secs(10), app.events.next())
        .await
        .expect("a group event")
        .expect("the group is open");
    assert_eq!(id, app.in_group);
    assert_eq!(response.unwrap().events().len(), 1);
    assert!(app.keep_alive.loss().is_none());
    assert!(app.session.loss().is_none());
    assert!(
        app.kv
            .txn()
            .when([app.guard.is_owner()])
            .await
            .unwrap()
            .succeeded(),
        "the guard holds the lock"
    );
    let rival = app.client.session().await.unwrap();
    assert!(matches!(
        rival
            .mutex(app.mutex.prefix().strip_suffix(b"/").unwrap().to_vec())
            .try_lock()
            .await,
        Err(etcd3::Error::Locked { .. })
    ));
    rival.close().await.unwrap();
    let leader = app.election.leader().await.unwrap().expect("a leader");
    assert_eq!(leader.value(), b"still me");
    assert!(
        app.lessor
            .time_to_live(app.keep_alive.id())
            .await
            .unwrap()
            .ttl()
            > Duration::ZERO
    );
    let _ = app.watcher.request_progress().await;
    app.group.cancel(app.in_group).await.unwrap();
    app.leadership.resign().await.unwrap();
    app.guard.unlock().await.unwrap();
    app.session.close().await.unwrap();
    drop(app.client);
}
