//! Spreading calls over the members of a cluster, and moving off members that fail.
//!
//! [`Failover`] is a typed tower service over one inner service per member. Each call goes
//! to the next member in turn (each failover service starts its turn at a random member,
//! so that many clients given the same list do not all load its first member), skipping
//! members that recently failed to connect, left a call unanswered until it was dropped
//! (its deadline passed), refused it as a learner, or answered a read from behind the
//! client ([`Monotonic`](super::Monotonic)). When a call fails in a way that proves the
//! request never reached the server, or a learner refused it (`etcdserver: rpc not
//! supported for learner`, before doing anything), it is sent to the next member; a
//! read-only request is also sent on after any connection failure or a stale answer. A
//! write whose outcome is unknown is never resent: the caller gets the typed error.

mod errors;
mod health;
mod layer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use crate::resend::Resend;
use crate::{Error, Result};
use errors::{every_member_failed, may_resend, naming, should_skip};
use health::{Target, Unanswered, lock, member_list, normalized};

pub use layer::FailoverLayer;

/// A typed service that spreads calls over several members and fails over between them.
///
/// The member list can change while calls run ([`set_members`](Self::set_members)): calls
/// already under way finish on the list they started with.
#[derive(Debug)]
pub struct Failover<S> {
    members: Arc<RwLock<Arc<[Target<S>]>>>,
    next: Arc<AtomicUsize>,
}

impl<S> Clone for Failover<S> {
    fn clone(&self) -> Self {
        Self {
            members: Arc::clone(&self.members),
            next: Arc::clone(&self.next),
        }
    }
}

impl<S> Failover<S> {
    /// A failover service over `(endpoint, service)` pairs, one per member. Its first call
    /// goes to a member chosen at random, the next ones round-robin from there.
    ///
    /// # Panics
    /// When `members` is empty; the `etcd3` facade refuses an empty endpoint list
    /// with a typed error first.
    pub fn new(members: impl IntoIterator<Item = (String, S)>) -> Self {
        let members = member_list(members);
        assert!(
            !members.is_empty(),
            "a failover service needs at least one member"
        );
        // A random starting member: clients given the same list spread over it.
        let start = crate::jitter::below(members.len() as u64) as usize;
        Self {
            members: Arc::new(RwLock::new(members)),
            next: Arc::new(AtomicUsize::new(start)),
        }
    }

    /// Makes the next call go to the member at `index` in the list (modulo its length)
    /// instead of a random one, the following ones round-robin from there: for a
    /// preferred member, or a test that must know where the first call goes.
    pub fn starting_at(self, index: usize) -> Self {
        let n = self.current().len().max(1);
        self.next.store(index % n, Ordering::Relaxed);
        self
    }

    /// Replaces the member list. Members whose endpoint stays keep their health record.
    /// An empty list is ignored (a client always has at least one member); returns
    /// whether the list was replaced.
    pub fn set_members(&self, members: impl IntoIterator<Item = (String, S)>) -> bool {
        let fresh = member_list(members);
        if fresh.is_empty() {
            return false;
        }
        let mut current = self.members.write().unwrap_or_else(|p| p.into_inner());
        for member in fresh.iter() {
            if let Some(old) = current.iter().find(|m| m.endpoint == member.endpoint) {
                *lock(&member.health) = std::mem::take(&mut *lock(&old.health));
            }
        }
        *current = fresh;
        true
    }

    /// The current member list.
    fn current(&self) -> Arc<[Target<S>]> {
        Arc::clone(&self.members.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The endpoints, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.current()
            .iter()
            .map(|m| m.endpoint.to_string())
            .collect()
    }

    /// The members to try for one call: healthy ones first, starting with the next in turn,
    /// then the skipped ones, soonest to recover first.
    fn order(&self, members: &[Target<S>]) -> Vec<usize> {
        let n = members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let mut skipped = Vec::new();
        let mut order = Vec::with_capacity(n);
        for i in (start..n).chain(0..start) {
            match lock(&members[i].health).skip_until {
                Some(until) if until > now => skipped.push((until, i)),
                _ => order.push(i),
            }
        }
        skipped.sort();
        order.extend(skipped.into_iter().map(|(_, i)| i));
        order
    }
}

impl<S: Clone> Failover<S> {
    /// The inner service of the member at `endpoint`, to aim a call at that member alone
    /// (no failover). Endpoints match with or without their `http://` or `https://` scheme
    /// and a trailing slash.
    pub fn member(&self, endpoint: &str) -> Option<S> {
        let wanted = normalized(endpoint);
        self.current()
            .iter()
            .find(|m| normalized(&m.endpoint) == wanted)
            .map(|m| m.service.clone())
    }

    /// Every member's endpoint and inner service, in order.
    pub fn members(&self) -> Vec<(String, S)> {
        self.current()
            .iter()
            .map(|m| (m.endpoint.to_string(), m.service.clone()))
            .collect()
    }
}

impl<S, R> Service<R> for Failover<S>
where
    S: Service<R, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Response: Send,
    R: Resend + Send + 'static,
{
    type Response = S::Response;
    type Error = Error;
    type Future = BoxFuture<'static, Result<S::Response>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let members = this.current();
            let order = this.order(&members);
            let read_only = request.is_read_only();
            let mut request = Some(request);
            let mut failures = Vec::new();
            for (attempt, &member) in order.iter().enumerate() {
                let last = attempt + 1 == order.len();
                let Some(req) = request.take() else { break };
                if !last {
                    request = req.copy_for_resend();
                }
                let service = members[member].service.clone();
                let mut pending = Unanswered(Some(&members[member]));
                super::tried::record(&members[member].endpoint);
                let span = tracing::debug_span!(
                    "member",
                    endpoint = %members[member].endpoint,
                    attempt = attempt + 1
                );
                let result = service.oneshot(req).instrument(span).await;
                pending.0 = None;
                match result {
                    Ok(response) => {
                        members[member].record(true);
                        return Ok(response);
                    }
                    Err(error) => {
                        if should_skip(&error) {
                            members[member].record(false);
                        }
                        let endpoint = &members[member].endpoint;
                        if !may_resend(&error, read_only) {
                            return Err(naming(error, endpoint));
                        }
                        tracing::debug!(%endpoint, %error, "trying the next member");
                        failures.push((endpoint.clone(), error));
                    }
                }
            }
            Err(every_member_failed(failures))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Applied;
    use crate::proto::etcdserverpb as pb;
    use std::time::Duration;

    /// A call every member refused names each member and its cause, and is certainly not
    /// applied when no attempt reached a server.
    #[tokio::test]
    async fn a_call_every_member_refused_names_each_member() {
        let refusing = |why: &'static str| {
            tower::util::BoxCloneSyncService::new(tower::service_fn(
                move |_: pb::PutRequest| async move {
                    Err::<(), _>(Error::Transport {
                        message: why.into(),
                        applied: Applied::No,
                        source: None,
                    })
                },
            ))
        };
        let failover = Failover::new([
            ("http://a:2379".to_owned(), refusing("connection refused")),
            ("http://b:2379".to_owned(), refusing("no route to host")),
        ]);
        let error = failover
            .oneshot(pb::PutRequest::default())
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("all 2 members failed"), "{text}");
        assert!(text.contains("http://a:2379: connection refused"), "{text}");
        assert!(text.contains("http://b:2379: no route to host"), "{text}");
        assert_eq!(error.applied(), Applied::No);

        let alone = Failover::new([("http://c:2379".to_owned(), refusing("refused"))]);
        let error = alone.oneshot(pb::PutRequest::default()).await.unwrap_err();
        assert_eq!(error.to_string(), "transport error: http://c:2379: refused");
    }

    /// A read that times out names the call, the limit and the members it was sent to:
    /// the first member refused the connection, the second never answered.
    #[tokio::test(start_paused = true)]
    async fn a_timeout_names_the_members_the_call_was_sent_to() {
        let refused = tower::service_fn(|_: pb::RangeRequest| async {
            Err::<&'static str, _>(Error::Transport {
                message: "connection refused".into(),
                applied: Applied::No,
                source: None,
            })
        });
        let stalled = tower::service_fn(|_: pb::RangeRequest| {
            futures_util::future::pending::<Result<&'static str>>()
        });
        let failover = Failover::new([
            (
                "http://a:2379".to_owned(),
                tower::util::BoxCloneSyncService::new(refused),
            ),
            (
                "http://b:2379".to_owned(),
                tower::util::BoxCloneSyncService::new(stalled),
            ),
        ])
        .starting_at(0);
        let retry = crate::layer::Retry::new(
            failover,
            crate::layer::RetryPolicy::never(),
            Some(Duration::from_millis(300)),
        );
        let error = retry
            .oneshot(pb::RangeRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "request timed out: RangeRequest took longer than 300ms, sent to http://a:2379, \
             http://b:2379"
        );
        assert!(error.is_outcome_unknown() || error.applied() == Applied::Unknown);
    }

    /// A member that never answers is skipped after a call to it was dropped at its
    /// deadline, instead of stalling every call sent to it in turn.
    #[tokio::test(start_paused = true)]
    async fn a_member_that_left_a_call_unanswered_is_skipped() {
        let stalled = tower::service_fn(|_: pb::RangeRequest| {
            futures_util::future::pending::<Result<&'static str>>()
        });
        let live = tower::service_fn(|_: pb::RangeRequest| async { Ok("live") });
        let failover = Failover::new([
            (
                "stalled".to_owned(),
                tower::util::BoxCloneSyncService::new(stalled),
            ),
            (
                "live".to_owned(),
                tower::util::BoxCloneSyncService::new(live),
            ),
        ]);
        let deadline = Duration::from_millis(100);
        let call = || {
            tokio::time::timeout(
                deadline,
                failover.clone().oneshot(pb::RangeRequest::default()),
            )
        };
        // The round-robin starts at a random member: within two calls, one goes to the
        // stalled member and times out.
        let mut timed_out = false;
        for _ in 0..2 {
            if call().await.is_err() {
                timed_out = true;
                break;
            }
        }
        assert!(timed_out, "one of two calls went to the stalled member");
        for _ in 0..4 {
            assert_eq!(
                call().await.expect("sent to the live member").unwrap(),
                "live"
            );
        }
    }

    #[test]
    fn members_are_found_by_endpoint_with_or_without_scheme() {
        let failover = Failover::new([
            ("http://127.0.0.1:2379".to_owned(), 1),
            ("127.0.0.1:22379".to_owned(), 2),
        ]);
        assert_eq!(failover.member("http://127.0.0.1:2379"), Some(1));
        assert_eq!(failover.member("127.0.0.1:2379/"), Some(1));
        assert_eq!(failover.member("http://127.0.0.1:22379"), Some(2));
        assert_eq!(failover.member("127.0.0.1:32379"), None);
        assert_eq!(failover.members().len(), 2);
        assert!(failover.set_members([("127.0.0.1:32379".to_owned(), 3)]));
        assert_eq!(failover.member("127.0.0.1:32379"), Some(3));
        assert_eq!(failover.endpoints(), ["127.0.0.1:32379"]);
        assert!(
            !failover.set_members(Vec::<(String, i32)>::new()),
            "never empty"
        );
    }

    /// Clients built over the same list do not all start at its first member.
    #[test]
    fn the_round_robin_starts_at_a_random_member() {
        let starts: std::collections::HashSet<usize> = (0..64)
            .map(|_| {
                let failover = Failover::new([
                    ("a".to_owned(), 0),
                    ("b".to_owned(), 1),
                    ("c".to_owned(), 2),
                ]);
                failover.order(&failover.current())[0]
            })
            .collect();
        // Each start is uniform over three members: the chance that 64 agree is 3^-63.
        assert!(starts.len() >= 2, "every failover started at {starts:?}");
        // From its start, a failover goes round the members in turn.
        let failover = Failover::new([
            ("a".to_owned(), 0),
            ("b".to_owned(), 1),
            ("c".to_owned(), 2),
        ]);
        let firsts: Vec<usize> = (0..3)
            .map(|_| failover.order(&failover.current())[0])
            .collect();
        assert_eq!(firsts[1], (firsts[0] + 1) % 3);
        assert_eq!(firsts[2], (firsts[0] + 2) % 3);
        // Unless told where to start.
        let failover = Failover::new([
            ("a".to_owned(), 0),
            ("b".to_owned(), 1),
            ("c".to_owned(), 2),
        ])
        .starting_at(4);
        assert_eq!(failover.order(&failover.current())[0], 1);
    }

    /// A learner's refusal sends a write on to a voter (it was refused before anything
    /// was done), and the learner is skipped by the next calls.
    #[tokio::test]
    async fn a_learner_refusal_moves_the_call_to_another_member() {
        use std::sync::atomic::AtomicU32;
        let learner_calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&learner_calls);
        let learner = tower::service_fn(move |_: pb::PutRequest| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                Err::<&'static str, _>(Error::Server(crate::ServerError::new(
                    tonic::Code::Unavailable,
                    "etcdserver: rpc not supported for learner",
                )))
            }
        });
        let voter = tower::service_fn(|_: pb::PutRequest| async { Ok("voter") });
        let failover = Failover::new([
            (
                "learner".to_owned(),
                tower::util::BoxCloneSyncService::new(learner),
            ),
            (
                "voter".to_owned(),
                tower::util::BoxCloneSyncService::new(voter),
            ),
        ]);
        for _ in 0..6 {
            let put = pb::PutRequest {
                key: b"k".to_vec().into(),
                ..Default::default()
            };
            assert_eq!(failover.clone().oneshot(put).await.unwrap(), "voter");
        }
        assert!(
            learner_calls.load(Ordering::SeqCst) <= 1,
            "the learner was skipped after refusing once"
        );
    }
}
