//! The keep-alive task against a scripted in-memory lease service, in paused time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_core::proto::etcdserverpb as pb;
use etcd_core::stream::{RequestStream, ResponseStream};
use etcd_core::{Applied, Error as CoreError, ServerError};
use etcd_lease::{Error, KeepAliveConfig, Lessor, LossReason};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;

/// How the fake answers keep-alive requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Reply at once.
    Reply,
    /// Swallow requests (a blackholed member).
    Stall,
    /// Reply after this long (a slow link or member), one request after the other.
    Delay(Duration),
}

#[derive(Debug)]
struct State {
    leases: HashMap<i64, i64>,
    mode: Mode,
    /// Opens to refuse, before accepting again.
    refuse_opens: usize,
    opens: usize,
    unary_calls: usize,
    requests: Vec<(Instant, i64)>,
    next_id: i64,
}

#[derive(Clone, Debug)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn new() -> Self {
        Fake(Arc::new(Mutex::new(State {
            leases: HashMap::new(),
            mode: Mode::Reply,
            refuse_opens: 0,
            opens: 0,
            unary_calls: 0,
            requests: Vec::new(),
            next_id: 1000,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// Requests for `id` sent at or after `since`.
    fn requests_for(&self, id: i64, since: Instant) -> Vec<Instant> {
        self.state()
            .requests
            .iter()
            .filter(|(t, i)| *i == id && *t >= since)
            .map(|(t, _)| *t)
            .collect()
    }
}

fn not_found() -> CoreError {
    ServerError::new(
        tonic::Code::NotFound,
        "etcdserver: requested lease not found",
    )
    .into()
}

macro_rules! unary {
    ($request:ty, $response:ty, |$state:ident, $req:ident| $body:expr) => {
        impl tower::Service<$request> for Fake {
            type Response = $response;
            type Error = CoreError;
            type Future = BoxFuture<'static, Result<$response, CoreError>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CoreError>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, $req: $request) -> Self::Future {
                let mut $state = self.state();
                $state.unary_calls += 1;
                let result: Result<$response, CoreError> = $body;
                futures_util::future::ready(result).boxed()
            }
        }
    };
}

unary!(pb::LeaseGrantRequest, pb::LeaseGrantResponse, |s, r| {
    let id = if r.id == 0 {
        s.next_id += 1;
        s.next_id
    } else {
        r.id
    };
    s.leases.insert(id, r.ttl.max(2));
    Ok(pb::LeaseGrantResponse {
        id,
        ttl: r.ttl.max(2),
        ..Default::default()
    })
});
unary!(pb::LeaseRevokeRequest, pb::LeaseRevokeResponse, |s, r| {
    match s.leases.remove(&r.id) {
        Some(_) => Ok(Default::default()),
        None => Err(not_found()),
    }
});
unary!(
    pb::LeaseTimeToLiveRequest,
    pb::LeaseTimeToLiveResponse,
    |s, r| Ok(pb::LeaseTimeToLiveResponse {
        id: r.id,
        ttl: s.leases.get(&r.id).copied().unwrap_or(-1),
        ..Default::default()
    })
);
unary!(pb::LeaseLeasesRequest, pb::LeaseLeasesResponse, |s, _r| Ok(
    pb::LeaseLeasesResponse {
        leases: s.leases.keys().map(|&id| pb::LeaseStatus { id }).collect(),
        ..Default::default()
    }
));

impl tower::Service<RequestStream<pb::LeaseKeepAliveRequest>> for Fake {
    type Response = ResponseStream<pb::LeaseKeepAliveResponse>;
    type Error = CoreError;
    type Future = BoxFuture<'static, Result<Self::Response, CoreError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CoreError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, requests: RequestStream<pb::LeaseKeepAliveRequest>) -> Self::Future {
        let mut s = self.state();
        s.opens += 1;
        if s.refuse_opens > 0 {
            s.refuse_opens -= 1;
            let e = CoreError::Transport {
                message: "connection refused".into(),
                applied: Applied::No,
                source: None,
            };
            return futures_util::future::ready(Err(e)).boxed();
        }
        let fake = self.clone();
        let responses = requests.filter_map(move |req| {
            let (reply, delay) = {
                let mut s = fake.state();
                s.requests.push((Instant::now(), req.id));
                let reply = Ok(pb::LeaseKeepAliveResponse {
                    id: req.id,
                    ttl: s.leases.get(&req.id).copied().unwrap_or(0),
                    header: None,
                });
                match s.mode {
                    Mode::Reply => (Some(reply), None),
                    Mode::Stall => (None, None),
                    Mode::Delay(delay) => (Some(reply), Some(delay)),
                }
            };
            async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                reply
            }
        });
        futures_util::future::ready(Ok(responses.boxed())).boxed()
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test(start_paused = true)]
async fn renews_every_third_of_the_ttl_over_one_stream() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let mut keepers = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..50 {
        let lease = lessor.grant(secs(9.0)).await.unwrap();
        ids.push(lease.id());
        keepers.push(lessor.keep_alive(lease.id()).await.unwrap());
    }
    let start = Instant::now();
    tokio::time::sleep(secs(30.5)).await;
    assert_eq!(fake.state().opens, 1, "one stream for every lease");
    for (keeper, id) in keepers.iter().zip(&ids) {
        assert_eq!(keeper.loss(), None);
        assert_eq!(keeper.ttl(), secs(9.0));
        let sent = fake.requests_for(*id, start);
        // The first request (at `start`, as time is paused) and ten renewals.
        assert_eq!(sent.len(), 11, "{sent:?}");
        for pair in sent.windows(2) {
            assert_eq!(pair[1] - pair[0], secs(3.0));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_chosen_interval_replaces_the_default() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let lease = lessor.grant(secs(30.0)).await.unwrap();
    let keeper = lessor
        .keep_alive(lease.id())
        .every(secs(2.0))
        .await
        .unwrap();
    let start = Instant::now();
    tokio::time::sleep(secs(20.5)).await;
    assert_eq!(
        fake.requests_for(lease.id(), start).len(),
        11,
        "the first, then ten"
    );
    assert_eq!(keeper.renewals(), 11);
}

#[tokio::test(start_paused = true)]
async fn a_ttl_zero_reply_ends_only_that_lease() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let a = lessor.grant(secs(6.0)).await.unwrap().id();
    let b = lessor.grant(secs(6.0)).await.unwrap().id();
    let keep_a = lessor.keep_alive(a).await.unwrap();
    let keep_b = lessor.keep_alive(b).await.unwrap();
    // Revoked elsewhere: the fake forgets it, the next reply carries TTL 0.
    fake.state().leases.remove(&b);
    let started = Instant::now();
    assert_eq!(keep_b.lost().await, LossReason::NotFound);
    assert!(started.elapsed() <= secs(2.0));
    assert!(LossReason::NotFound.is_known_gone());
    tokio::time::sleep(secs(10.0)).await;
    assert_eq!(keep_a.loss(), None);
}

#[tokio::test(start_paused = true)]
async fn revoking_through_the_lessor_reports_revoked() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let id = lessor.grant(secs(6.0)).await.unwrap().id();
    let keeper = lessor.keep_alive(id).await.unwrap();
    lessor.revoke(id).await.unwrap();
    assert_eq!(keeper.lost().await, LossReason::Revoked);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_is_reopened_before_the_lease_expires() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let id = lessor.grant(secs(3.0)).await.unwrap().id();
    let keeper = lessor.keep_alive(id).await.unwrap();
    tokio::time::sleep(secs(1.5)).await;
    // The next request (at 2 s) gets no reply; after the 1 s ack timeout the stream is
    // reopened and the request sent again. Let the new stream answer.
    fake.state().mode = Mode::Stall;
    tokio::time::sleep(secs(1.0)).await;
    fake.state().mode = Mode::Reply;
    tokio::time::sleep(secs(10.0)).await;
    assert_eq!(keeper.loss(), None);
    assert_eq!(fake.state().opens, 2);
}

#[tokio::test(start_paused = true)]
async fn no_reply_within_the_ttl_is_reported_as_possibly_expired() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let id = lessor.grant(secs(4.0)).await.unwrap().id();
    let keeper = lessor.keep_alive(id).await.unwrap();
    tokio::time::sleep(secs(1.0)).await;
    fake.state().mode = Mode::Stall;
    let reason = keeper.lost().await;
    assert_eq!(reason, LossReason::Expired);
    assert!(!reason.is_known_gone());
    let last = keeper.last_renewed().unwrap();
    let late = Instant::now() - last;
    assert!(late >= secs(4.0) && late <= secs(4.1), "{late:?}");
    // It kept reopening meanwhile, with backoff: not a storm.
    let opens = fake.state().opens;
    assert!((2..=8).contains(&opens), "{opens} opens");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_the_send_of_the_acknowledged_renewal() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let id = lessor.grant(secs(3.0)).await.unwrap().id();
    let start = Instant::now();
    // The first reply comes 0.8 s after its request; then the member goes silent.
    fake.state().mode = Mode::Delay(secs(0.8));
    let keeper = lessor.keep_alive(id).await.unwrap();
    fake.state().mode = Mode::Stall;
    let sent = fake.requests_for(id, start)[0];
    let acked = keeper.last_renewed().unwrap();
    assert_eq!(acked - sent, secs(0.8));
    assert_eq!(keeper.lost().await, LossReason::Expired);
    // The server restarted the TTL no earlier than the send: the lease may be gone from
    // `sent + TTL` on, and the loss is reported then, not at `acked + TTL` (0.8 s later).
    let lost = Instant::now();
    assert!(lost <= sent + secs(3.0), "{:?} after the send", lost - sent);
    assert!(lost >= sent + secs(3.0) - secs(0.05), "{:?}", lost - sent);
}

#[tokio::test(start_paused = true)]
async fn failed_opens_back_off_and_renewal_resumes() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let id = lessor.grant(secs(6.0)).await.unwrap().id();
    let keeper = lessor.keep_alive(id).await.unwrap();
    tokio::time::sleep(secs(1.0)).await;
    // Break the stream by stalling it, then refuse the next three opens.
    fake.state().refuse_opens = 3;
    fake.state().mode = Mode::Stall;
    // Once the broken stream is being reopened (the first refusal), the member answers
    // again: the backoff is jittered, so wait for the event, not for a fixed time.
    while fake.state().opens < 2 {
        tokio::time::sleep(secs(0.01)).await;
    }
    fake.state().mode = Mode::Reply;
    tokio::time::sleep(secs(12.0)).await;
    assert_eq!(keeper.loss(), None);
    assert_eq!(fake.state().opens, 5, "first, three refused, one accepted");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_stops_renewing() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let id = lessor.grant(secs(3.0)).await.unwrap().id();
    let keeper = lessor.keep_alive(id).await.unwrap();
    tokio::time::sleep(secs(2.5)).await;
    drop(keeper);
    tokio::time::sleep(secs(0.1)).await;
    let since = Instant::now();
    tokio::time::sleep(secs(10.0)).await;
    assert!(fake.requests_for(id, since).is_empty());
}

#[tokio::test(start_paused = true)]
async fn two_handles_share_one_lease_until_both_are_dropped() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let id = lessor.grant(secs(3.0)).await.unwrap().id();
    let first = lessor.keep_alive(id).await.unwrap();
    let second = lessor.keep_alive(id).await.unwrap();
    drop(first);
    let since = Instant::now();
    tokio::time::sleep(secs(5.0)).await;
    assert_eq!(fake.requests_for(id, since).len(), 5);
    assert_eq!(second.loss(), None);
}

#[tokio::test(start_paused = true)]
async fn a_guard_revokes_its_lease() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let a = lessor.grant(secs(6.0)).await.unwrap().id();
    let b = lessor.grant(secs(6.0)).await.unwrap().id();
    let guard_a = lessor.keep_alive(a).await.unwrap().revoke_on_drop();
    let guard_b = lessor.keep_alive(b).await.unwrap().revoke_on_drop();
    assert_eq!(guard_a.id(), a);
    guard_a.close().await.unwrap();
    drop(guard_b);
    tokio::time::sleep(secs(0.1)).await;
    assert!(fake.state().leases.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_unknown_lease_fails_keep_alive_at_once() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let started = Instant::now();
    let e = lessor.keep_alive(77).await.unwrap_err();
    assert_lost(&e, 77, LossReason::NotFound);
    assert!(e.is_lease_not_found());
    assert!(started.elapsed() < secs(0.1));
    let e = lessor.keep_alive_once(77).await.unwrap_err();
    assert_lost(&e, 77, LossReason::NotFound);
    let e = lessor.time_to_live(77).await.unwrap_err();
    assert_lost(&e, 77, LossReason::NotFound);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server_fails_the_first_keep_alive_after_the_first_ack_timeout() {
    let fake = Fake::new();
    fake.state().mode = Mode::Stall;
    let config = KeepAliveConfig::default();
    let lessor = Lessor::new(fake.clone());
    let started = Instant::now();
    let e = lessor.keep_alive(5).await.unwrap_err();
    assert_lost(&e, 5, LossReason::Expired);
    assert_eq!(started.elapsed(), config.first_ack_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_start_timeout_bounds_only_the_start_of_a_keep_alive() {
    let fake = Fake::new();
    let mut config = KeepAliveConfig::default();
    config.start_timeout = Some(secs(2.0));
    let lessor = Lessor::with_config(fake.clone(), config);
    let id = lessor.grant(secs(3.0)).await.unwrap().id();
    fake.state().mode = Mode::Stall;
    let started = Instant::now();
    let e = lessor.keep_alive(id).await.unwrap_err();
    assert!(matches!(e, CoreError::Timeout { .. }), "{e:?}");
    assert_eq!(started.elapsed(), secs(2.0));
    let started = Instant::now();
    let e = lessor.keep_alive_once(id).await.unwrap_err();
    assert!(matches!(e, CoreError::Timeout { .. }), "{e:?}");
    assert_eq!(started.elapsed(), secs(2.0));
    // Once started, a keep-alive outlives the start timeout.
    fake.state().mode = Mode::Reply;
    let keeper = lessor.keep_alive(id).await.unwrap();
    tokio::time::sleep(secs(10.0)).await;
    assert_eq!(keeper.loss(), None);
    assert!(keeper.renewals() >= 10, "{}", keeper.renewals());
}

#[tokio::test(start_paused = true)]
async fn invalid_requests_are_refused_without_sending() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let invalid = |e: Error| e.invalid_request().is_some();
    assert!(invalid(lessor.grant(Duration::ZERO).await.unwrap_err()));
    assert!(invalid(lessor.grant(secs(5.0)).id(-3).await.unwrap_err()));
    assert!(invalid(lessor.grant(secs(5.0)).id(0).await.unwrap_err()));
    assert!(invalid(lessor.revoke(-1).await.unwrap_err()));
    assert!(invalid(lessor.time_to_live(0).await.unwrap_err()));
    assert!(invalid(lessor.keep_alive(-1).await.unwrap_err()));
    assert!(invalid(lessor.keep_alive_once(-1).await.unwrap_err()));
    assert!(invalid(
        lessor
            .keep_alive(1)
            .every(Duration::ZERO)
            .await
            .unwrap_err()
    ));
    let s = fake.state();
    assert_eq!((s.unary_calls, s.opens), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn sub_second_ttls_round_up() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let lease = lessor.grant(secs(2.2)).await.unwrap();
    assert_eq!(lease.ttl(), secs(3.0));
    let list = lessor.list().await.unwrap();
    assert_eq!(list.ids(), &[lease.id()]);
}

#[tokio::test(start_paused = true)]
async fn one_off_renewals_share_the_one_stream() {
    let fake = Fake::new();
    let lessor = Lessor::new(fake.clone());
    let a = lessor.grant(secs(9.0)).await.unwrap().id();
    let b = lessor.grant(secs(6.0)).await.unwrap().id();
    let keeper = lessor.keep_alive(a).await.unwrap();
    for _ in 0..10 {
        assert_eq!(lessor.keep_alive_once(a).await.unwrap().ttl(), secs(9.0));
        assert_eq!(lessor.keep_alive_once(b).await.unwrap().ttl(), secs(6.0));
    }
    let e = lessor.keep_alive_once(77).await.unwrap_err();
    assert_lost(&e, 77, LossReason::NotFound);
    assert_eq!(
        fake.state().opens,
        1,
        "one stream for renewals of every kind"
    );
    assert_eq!(keeper.loss(), None);
}

/// Asserts `error` says lease `id` is gone for `reason`.
#[track_caller]
fn assert_lost(error: &Error, id: i64, reason: LossReason) {
    assert!(
        matches!(error, Error::LeaseLost { id: i, reason: r } if *i == id && *r == reason),
        "expected lease {id} lost ({reason:?}), got {error:?}"
    );
}
