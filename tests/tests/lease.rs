//! Leases against a real etcd: grant, revoke, time-to-live, list, put with a lease, and
//! keep-alives through stream breaks, member kills and blackholes (reliability.md §6.2,
//! L1 to L7).

use std::any::TypeId;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_core::grpc::{GrpcKv, GrpcLease};
use etcd_core::layer::Failover;
use etcd_core::proto::etcdserverpb as pb;
use etcd_core::stream::RequestStream;
use etcd_core::{Kv, ServerErrorKind};
use etcd_lease::{Error, KeepAlive, Lessor, LossReason};
use etcd_testkit::{EtcdCluster, FaultProxy, Mode, shared_server, unique_prefix};
use etcd_tests::clients::{channel, raw_kv as kv};
use etcd_tests::counting::CallCounter;
use tokio::time::Instant;
use tonic::transport::Channel;

fn lessor(url: &str) -> Lessor<GrpcLease<Channel>> {
    Lessor::new(GrpcLease::new(channel(url)))
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A lease ID unlikely to exist: positive, from the clock.
fn fresh_id() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (nanos % (i64::MAX as u128 / 2)) as i64 + 1
}

/// The key's create revision, or `None` when it does not exist. Reads that fail (a
/// linearizable read during an election, say) are retried for up to 5 s.
async fn created_at(kv: &Kv<GrpcKv<Channel>>, key: &str) -> Option<i64> {
    let mut attempts = 0;
    loop {
        match kv.get(key).await {
            Ok(resp) => return resp.kvs().first().map(|kv| kv.create_revision()),
            Err(e) if attempts < 50 => {
                attempts += 1;
                eprintln!("read of {key} failed, retrying: {e}");
                tokio::time::sleep(secs(0.1)).await;
            }
            Err(e) => panic!("read of {key}: {e:?}"),
        }
    }
}

/// What a keep-alive did while observed.
#[derive(Debug, Default)]
struct Observed {
    /// When each reply arrived.
    acks: Vec<Instant>,
    /// Times the attached key was missing.
    key_missing: usize,
}

impl Observed {
    fn max_gap(&self) -> Duration {
        self.acks
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }

    fn mean_gap(&self) -> Duration {
        match self.acks.len() {
            0 | 1 => Duration::ZERO,
            n => (self.acks[n - 1] - self.acks[0]) / (n as u32 - 1),
        }
    }
}

/// Samples `keeper`'s replies for `time`, checking every 100 ms that `key` exists (read
/// from `kv`, when given). Panics if the lease is lost.
async fn observe(
    keeper: &KeepAlive,
    time: Duration,
    key: Option<(&Kv<GrpcKv<Channel>>, &str)>,
) -> Observed {
    let mut seen = Observed::default();
    let end = Instant::now() + time;
    let mut next_key_check = Instant::now();
    while Instant::now() < end {
        if let Some(reason) = keeper.loss() {
            panic!("lease {} lost: {reason}", keeper.id());
        }
        if let Some(at) = keeper.last_renewed()
            && seen.acks.last() != Some(&at)
        {
            seen.acks.push(at);
        }
        if let Some((kv, key)) = key
            && Instant::now() >= next_key_check
        {
            next_key_check += secs(0.1);
            if created_at(kv, key).await.is_none() {
                seen.key_missing += 1;
            }
        }
        tokio::time::sleep(secs(0.01)).await;
    }
    seen
}

#[tokio::test]
async fn grant_put_inspect_list_and_revoke() {
    let url = shared_server().client_url();
    let (lessor, kv) = (lessor(&url), kv(&url));
    let key = format!("{}k", unique_prefix("grant_put_inspect"));

    let lease = lessor.grant(secs(30.0)).await.unwrap();
    assert!(lease.id() > 0);
    assert_eq!(lease.ttl(), secs(30.0));
    kv.put(key.as_str(), "v").lease(lease.id()).await.unwrap();
    assert_eq!(
        kv.get(key.as_str()).await.unwrap().kvs()[0].lease(),
        lease.id()
    );

    let info = lessor.time_to_live(lease.id()).keys().await.unwrap();
    assert_eq!(info.id(), lease.id());
    assert_eq!(info.granted_ttl(), secs(30.0));
    assert!(
        info.ttl() > secs(25.0) && info.ttl() <= secs(30.0),
        "{info:?}"
    );
    assert_eq!(info.keys(), &[bytes::Bytes::from(key.clone())]);
    let without_keys = lessor.time_to_live(lease.id()).await.unwrap();
    assert!(without_keys.keys().is_empty());

    assert!(lessor.list().await.unwrap().ids().contains(&lease.id()));
    let once = lessor.keep_alive_once(lease.id()).await.unwrap();
    assert_eq!((once.id(), once.ttl()), (lease.id(), secs(30.0)));

    lessor.revoke(lease.id()).await.unwrap();
    assert_eq!(created_at(&kv, &key).await, None, "revoke deletes the key");
    assert!(matches!(
        lessor.time_to_live(lease.id()).await.unwrap_err(),
        Error::LeaseLost { id, reason: LossReason::NotFound } if id == lease.id()
    ));
    assert!(!lessor.list().await.unwrap().ids().contains(&lease.id()));
}

#[tokio::test]
async fn a_chosen_id_is_granted_once() {
    let lessor = lessor(&shared_server().client_url());
    let id = fresh_id();
    let lease = lessor.grant(secs(20.0)).id(id).await.unwrap();
    assert_eq!(lease.id(), id);
    let e = lessor.grant(secs(20.0)).id(id).await.unwrap_err();
    assert_eq!(e.server_kind(), Some(ServerErrorKind::LeaseExists), "{e:?}");
    lessor.revoke(id).await.unwrap();
}

/// L7, through `Client` as a user builds it: each bad input gives its exact typed error,
/// a server's refusal is sent once, a local refusal not at all.
#[tokio::test]
async fn l7_error_table() {
    let calls = CallCounter::new();
    let client = etcd3::Client::builder([shared_server().client_url()])
        .layer(calls.layer())
        .connect()
        .await
        .unwrap();
    let (lessor, kv) = (client.lease(), client.kv());

    // Below the minimum TTL: raised by the server.
    let short = lessor.grant(secs(1.0)).await.unwrap();
    assert!(short.ttl() >= secs(2.0), "{short:?}");
    // Too long.
    let e = calls
        .sent_once(lessor.grant(Duration::from_secs(etcd_lease::MAX_TTL_SECS as u64 + 1)))
        .await
        .unwrap_err();
    assert_eq!(
        e.server_kind(),
        Some(ServerErrorKind::LeaseTtlTooLarge),
        "{e:?}"
    );

    let unknown = fresh_id();
    let e = calls.sent_once(lessor.revoke(unknown)).await.unwrap_err();
    assert_eq!(
        e.server_kind(),
        Some(ServerErrorKind::LeaseNotFound),
        "{e:?}"
    );
    assert!(e.is_lease_not_found());
    let e = calls
        .sent_once(lessor.time_to_live(unknown))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::LeaseLost { id, reason: LossReason::NotFound } if id == unknown),
        "{e:?}"
    );
    let key = format!("{}k", unique_prefix("l7"));
    let e = calls
        .sent_once(kv.put(key, "v").lease(unknown))
        .await
        .unwrap_err();
    assert_eq!(
        e.server_kind(),
        Some(ServerErrorKind::LeaseNotFound),
        "{e:?}"
    );
    let started = Instant::now();
    let e = lessor.keep_alive(unknown).await.unwrap_err();
    assert!(
        matches!(e, Error::LeaseLost { id, reason: LossReason::NotFound } if id == unknown),
        "{e:?}"
    );
    assert!(started.elapsed() < secs(1.0), "{:?}", started.elapsed());
    let e = lessor.keep_alive_once(unknown).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::LeaseLost {
                reason: LossReason::NotFound,
                ..
            }
        ),
        "{e:?}"
    );

    // Refused locally.
    let before = calls.total();
    for e in [
        lessor.grant(secs(5.0)).id(-7).await.unwrap_err(),
        lessor.grant(Duration::ZERO).await.unwrap_err(),
        lessor.keep_alive(-7).await.unwrap_err(),
        lessor.revoke(-7).await.unwrap_err(),
    ] {
        assert!(e.invalid_request().is_some(), "{e:?}");
    }
    assert_eq!(calls.total(), before, "a local refusal sends nothing");
    lessor.revoke(short.id()).await.unwrap();
}

/// L1 (short form): a TTL-2 lease kept alive for 6 s keeps its key; an identical lease
/// without keep-alive loses its key.
#[tokio::test]
async fn keep_alive_keeps_a_short_lease_and_its_key() {
    let url = shared_server().client_url();
    let (lessor, kv) = (lessor(&url), kv(&url));
    let p = unique_prefix("keep_alive_short");
    let (kept_key, dropped_key) = (format!("{p}kept"), format!("{p}dropped"));

    let kept = lessor.grant(secs(2.0)).await.unwrap();
    let dropped = lessor.grant(secs(2.0)).await.unwrap();
    kv.put(kept_key.as_str(), "v")
        .lease(kept.id())
        .await
        .unwrap();
    kv.put(dropped_key.as_str(), "v")
        .lease(dropped.id())
        .await
        .unwrap();
    let created = created_at(&kv, &kept_key).await;

    let keeper = lessor.keep_alive(kept.id()).await.unwrap();
    assert_eq!(keeper.ttl(), secs(2.0));
    let seen = observe(&keeper, secs(6.0), Some((&kv, &kept_key))).await;
    eprintln!(
        "TTL 2 s: {} replies in 6 s, mean gap {:?}, max gap {:?}",
        seen.acks.len(),
        seen.mean_gap(),
        seen.max_gap()
    );
    assert_eq!(seen.key_missing, 0);
    assert_eq!(created_at(&kv, &kept_key).await, created, "never deleted");
    // TTL/3 = 667 ms, within 30 %.
    let mean = seen.mean_gap();
    assert!(
        mean > secs(0.667 * 0.7) && mean < secs(0.667 * 1.3),
        "{mean:?}"
    );
    assert!(seen.max_gap() < secs(2.0));
    assert_eq!(
        created_at(&kv, &dropped_key).await,
        None,
        "expired lease's key"
    );

    // Dropping the handle stops renewals: the lease then expires.
    drop(keeper);
    tokio::time::sleep(secs(3.5)).await;
    assert_eq!(created_at(&kv, &kept_key).await, None);
}

#[tokio::test]
async fn a_chosen_interval_is_used() {
    let lessor = lessor(&shared_server().client_url());
    let lease = lessor.grant(secs(20.0)).await.unwrap();
    let keeper = lessor
        .keep_alive(lease.id())
        .every(secs(0.3))
        .await
        .unwrap();
    let seen = observe(&keeper, secs(2.5), None).await;
    let mean = seen.mean_gap();
    eprintln!("every 300 ms: mean gap {mean:?}");
    assert!(mean > secs(0.28) && mean < secs(0.4), "{mean:?}");
    lessor.revoke(lease.id()).await.unwrap();
    assert_eq!(keeper.lost().await, LossReason::Revoked);
}

/// L6: three leases on one stream; revoking #2 through another client ends only #2.
#[tokio::test]
async fn l6_only_the_revoked_lease_is_reported() {
    let url = shared_server().client_url();
    let (client, admin) = (lessor(&url), lessor(&url));
    let mut keepers = Vec::new();
    for _ in 0..3 {
        let lease = client.grant(secs(3.0)).await.unwrap();
        keepers.push(client.keep_alive(lease.id()).await.unwrap());
    }
    admin.revoke(keepers[1].id()).await.unwrap();
    let started = Instant::now();
    let reason = tokio::time::timeout(secs(3.0), keepers[1].lost())
        .await
        .expect("the revoked lease is reported");
    eprintln!("revoked elsewhere: reported after {:?}", started.elapsed());
    assert_eq!(reason, LossReason::NotFound);
    assert!(reason.is_known_gone());
    tokio::time::sleep(secs(4.0)).await;
    for keeper in [&keepers[0], &keepers[2]] {
        assert_eq!(keeper.loss(), None);
        assert!(admin.time_to_live(keeper.id()).await.is_ok());
    }
    for keeper in [&keepers[0], &keepers[2]] {
        client.revoke(keeper.id()).await.unwrap();
        assert_eq!(keeper.lost().await, LossReason::Revoked);
    }
}

#[tokio::test]
async fn a_guard_revokes_when_dropped_or_closed() {
    let url = shared_server().client_url();
    let (lessor, kv) = (lessor(&url), kv(&url));
    let p = unique_prefix("guard");
    let mut guards = Vec::new();
    for name in ["closed", "dropped"] {
        let lease = lessor.grant(secs(30.0)).await.unwrap();
        kv.put(format!("{p}{name}"), "v")
            .lease(lease.id())
            .await
            .unwrap();
        guards.push(
            lessor
                .keep_alive(lease.id())
                .await
                .unwrap()
                .revoke_on_drop(),
        );
    }
    let dropped = guards.pop().unwrap();
    let closed = guards.pop().unwrap();
    closed.close().await.unwrap();
    assert_eq!(created_at(&kv, &format!("{p}closed")).await, None);
    drop(dropped);
    let deadline = Instant::now() + secs(2.0);
    while created_at(&kv, &format!("{p}dropped")).await.is_some() {
        assert!(Instant::now() < deadline, "dropped guard did not revoke");
        tokio::time::sleep(secs(0.05)).await;
    }
}

/// L5: the only endpoint is blackholed for longer than the TTL: the handle reports a
/// possible expiry within TTL + 1 s of the last reply.
#[tokio::test]
async fn l5_unreachable_for_longer_than_the_ttl_is_reported_as_possibly_expired() {
    let server = shared_server();
    let proxy = FaultProxy::start(server.client_addr()).await;
    let lessor = lessor(&proxy.url());
    let lease = lessor.grant(secs(4.0)).await.unwrap();
    let keeper = lessor.keep_alive(lease.id()).await.unwrap();
    tokio::time::sleep(secs(1.0)).await;
    proxy.set_mode(Mode::Blackhole).await;
    let blackholed = Instant::now();
    let reason = tokio::time::timeout(secs(6.0), keeper.lost())
        .await
        .expect("loss reported");
    let since_ack = Instant::now() - keeper.last_renewed().unwrap();
    eprintln!(
        "blackhole: Expired {:?} after the last reply, {:?} after the blackhole",
        since_ack,
        blackholed.elapsed()
    );
    assert_eq!(reason, LossReason::Expired);
    assert!(!reason.is_known_gone());
    // The deadline is the send time of the last acknowledged renewal + TTL, a round trip
    // before its reply + TTL.
    assert!(
        since_ack >= secs(3.8) && since_ack <= secs(5.0),
        "{since_ack:?}"
    );
    proxy.set_mode(Mode::Pass).await;
    // The server's verdict is not asserted (see reliability.md §1.4); clean up.
    let _ = self::lessor(&server.client_url()).revoke(lease.id()).await;
}

/// A lease service per member that records on which member each keep-alive stream opens.
#[derive(Clone, Debug)]
struct Tagged<S> {
    member: usize,
    streams: Arc<Mutex<Vec<usize>>>,
    inner: S,
}

impl<S, R> tower::Service<R> for Tagged<S>
where
    S: tower::Service<R>,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        if TypeId::of::<R>() == TypeId::of::<RequestStream<pb::LeaseKeepAliveRequest>>() {
            self.streams.lock().unwrap().push(self.member);
        }
        self.inner.call(request)
    }
}

/// L3 and L2: the member carrying the keep-alive stream is blackholed, then (on the member
/// the stream moved to) killed, then the leader is killed. Each time the stream is
/// re-established on another member within the TTL and the lease survives, its key never
/// deleted.
#[tokio::test]
async fn l3_l2_the_stream_moves_off_blackholed_killed_and_leader_members() {
    let cluster = EtcdCluster::start(3).await;
    let proxies = [
        FaultProxy::start(cluster.member(0).client_addr()).await,
        FaultProxy::start(cluster.member(1).client_addr()).await,
        FaultProxy::start(cluster.member(2).client_addr()).await,
    ];
    let streams = Arc::new(Mutex::new(Vec::new()));
    let failover = Failover::new(proxies.iter().enumerate().map(|(member, proxy)| {
        let service = Tagged {
            member,
            streams: Arc::clone(&streams),
            inner: GrpcLease::new(channel(&proxy.url())),
        };
        (proxy.url(), service)
    }));
    let lessor = Lessor::new(failover);
    let ttl = secs(5.0);
    let lease = lessor.grant(ttl).await.unwrap();
    let key = format!("{}k", unique_prefix("l3"));
    let opens = || streams.lock().unwrap().len();
    let current = || *streams.lock().unwrap().last().unwrap();

    let keeper = lessor.keep_alive(lease.id()).await.unwrap();
    let first = current();
    let reader = (first + 1) % 3; // never faulted in phase 1
    let reader_kv = kv(&cluster.member(reader).client_url());
    reader_kv
        .put(key.as_str(), "v")
        .lease(lease.id())
        .await
        .unwrap();
    let created = created_at(&reader_kv, &key).await;
    observe(&keeper, secs(1.0), None).await;

    // Phase 1: blackhole the stream's member.
    proxies[first].set_mode(Mode::Blackhole).await;
    let faulted = Instant::now();
    let before = keeper.renewals();
    let seen = observe(&keeper, secs(6.0), Some((&reader_kv, &key))).await;
    let resumed = seen
        .acks
        .iter()
        .find(|&&t| t > faulted)
        .map(|&t| t - faulted);
    eprintln!(
        "blackhole: stream members {:?}, first reply after {resumed:?}, max gap {:?}",
        streams.lock().unwrap(),
        seen.max_gap()
    );
    assert!(keeper.renewals() > before);
    assert_ne!(current(), first, "the stream moved");
    assert!(seen.max_gap() < ttl, "{:?}", seen.max_gap());
    assert_eq!(seen.key_missing, 0);
    proxies[first].set_mode(Mode::Pass).await;

    // Phase 2: kill the member the stream uses now.
    let second = current();
    let opens_before = opens();
    let reader = (0..3).find(|&m| m != second).unwrap();
    let reader_kv = kv(&cluster.member(reader).client_url());
    cluster.member(second).kill();
    let faulted = Instant::now();
    let seen = observe(&keeper, secs(6.0), Some((&reader_kv, &key))).await;
    let resumed = seen
        .acks
        .iter()
        .find(|&&t| t > faulted)
        .map(|&t| t - faulted);
    eprintln!(
        "kill: stream members {:?}, first reply after {resumed:?}, max gap {:?}",
        streams.lock().unwrap(),
        seen.max_gap()
    );
    assert!(opens() > opens_before);
    assert_ne!(current(), second, "the stream moved");
    assert!(seen.max_gap() < ttl, "{:?}", seen.max_gap());
    assert_eq!(seen.key_missing, 0);
    assert_eq!(created_at(&reader_kv, &key).await, created, "never deleted");

    // Phase 3 (L2): with the member back, kill the leader. Renewals stall during the
    // election; the gap between replies stays below the TTL.
    cluster.member(second).restart().await;
    let leader = cluster.leader().await;
    let reader = (0..3).find(|&m| m != leader).unwrap();
    let reader_kv = kv(&cluster.member(reader).client_url());
    cluster.member(leader).kill();
    let faulted = Instant::now();
    let seen = observe(&keeper, secs(6.0), Some((&reader_kv, &key))).await;
    let resumed = seen
        .acks
        .iter()
        .find(|&&t| t > faulted)
        .map(|&t| t - faulted);
    eprintln!(
        "leader kill: stream members {:?}, first reply after {resumed:?}, max gap {:?}",
        streams.lock().unwrap(),
        seen.max_gap()
    );
    assert!(seen.max_gap() < ttl, "{:?}", seen.max_gap());
    assert_eq!(seen.key_missing, 0);
    assert_eq!(created_at(&reader_kv, &key).await, created, "never deleted");
    assert_eq!(keeper.loss(), None);
}

/// The Elixir client's flow through the facade: start a lease with a chosen ID, put with
/// it, keep it alive on an interval, revoke it.
#[tokio::test]
async fn the_facade_grants_keeps_alive_and_revokes() {
    let client = etcd3::Client::connect(shared_server().endpoints())
        .await
        .unwrap();
    let p = unique_prefix("facade_lease");
    let key = format!("{p}k");
    let id = fresh_id();
    let lease = client.lease().grant(secs(2.0)).id(id).await.unwrap();
    assert_eq!(lease.id(), id);
    client.kv().put(&key, "v").lease(id).await.unwrap();
    let keeper = client
        .lease()
        .keep_alive(id)
        .every(secs(0.4))
        .await
        .unwrap();
    tokio::time::sleep(secs(3.0)).await;
    assert_eq!(
        client.kv().get(&key).await.unwrap().kvs().len(),
        1,
        "kept past its TTL"
    );
    assert!(keeper.renewals() >= 5, "renewals: {}", keeper.renewals());
    client.lease().revoke(id).await.unwrap();
    assert_eq!(keeper.lost().await, LossReason::Revoked);
    assert!(client.kv().get(&key).await.unwrap().kvs().is_empty());
}

/// The keep-alive's timing is set on the facade's builder; its start stays bounded by the
/// request timeout unless the configuration bounds it itself; leases are kept alive with it.
#[tokio::test]
async fn keep_alive_timing_is_set_on_the_client_builder() {
    let mut config = etcd_lease::KeepAliveConfig::default();
    config.ack_timeout = Duration::from_millis(400);
    let client = etcd3::Client::builder([shared_server().client_url()])
        .request_timeout(Duration::from_secs(3))
        .lease_keep_alive(config)
        .connect()
        .await
        .unwrap();
    let used = client.lease().config();
    assert_eq!(used.ack_timeout, Duration::from_millis(400));
    assert_eq!(used.start_timeout, Some(Duration::from_secs(3)));

    let lease = client.lease().grant(secs(2.0)).await.unwrap();
    let kept = client.lease().keep_alive(lease.id()).await.unwrap();
    tokio::time::sleep(secs(3.0)).await;
    assert!(kept.loss().is_none(), "{:?}", kept.loss());
    let ttl = client.lease().time_to_live(lease.id()).await.unwrap();
    assert!(ttl.ttl() > Duration::ZERO, "{ttl:?}");
    client.lease().revoke(lease.id()).await.unwrap();
}
