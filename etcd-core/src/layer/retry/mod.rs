//! Retries with backoff, by etcd's rules, and the deadline of each call.
//!
//! A call is sent again only when doing so cannot apply it twice:
//!
//! * any request the server refused before doing anything, for a reason that passes
//!   (no leader, leader changed, too many requests, unhealthy cluster) or that another
//!   member does not share (a learner refusing what only voters serve);
//! * any request that provably never left the client (every member refused the
//!   connection);
//! * a read, after any failure of the connection or the server's read path.
//!
//! A write whose outcome is unknown (a timeout after the server proposed it, a connection
//! broken after it was sent) is never resent: the caller gets the typed error and decides.
//! Attempts are spaced by an exponential backoff and limited by a budget, and the whole
//! call, retries included, by the request timeout.

mod layer;
mod policy;

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use super::tried;
use crate::resend::Resend;
use crate::{Error, Result};

pub use layer::RetryLayer;
pub use policy::RetryPolicy;
use policy::may_retry;

/// A typed service that retries calls by [`RetryPolicy`] and bounds each call, retries
/// included, by a timeout.
#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    timeout: Option<Duration>,
}

impl<S> Retry<S> {
    /// Retries calls to `inner` by `policy`; with a `timeout`, a call that takes longer
    /// fails with [`Error::Timeout`].
    pub fn new(inner: S, policy: RetryPolicy, timeout: Option<Duration>) -> Self {
        Self {
            inner,
            policy,
            timeout,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, R> Service<R> for Retry<S>
where
    S: Service<R, Error = Error> + Clone + Send + 'static,
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
        let inner = self.inner.clone();
        let policy = self.policy;
        let call = short_name::<R>();
        let span = tracing::debug_span!("etcd", call);
        let attempts = attempts(inner, policy, request);
        // A call's own deadline (`.timeout(..)` on the request) replaces the client's.
        match crate::deadline::current().or(self.timeout) {
            None => Box::pin(attempts.instrument(span)),
            Some(limit) => Box::pin(
                async move {
                    // Failover below notes the members the call goes to, for the error.
                    match tried::within(limit, attempts).await {
                        Ok(result) => result,
                        Err(endpoints) => Err(Error::Timeout {
                            call: Some(call),
                            limit: Some(limit),
                            endpoints,
                        }),
                    }
                }
                .instrument(span),
            ),
        }
    }
}

async fn attempts<S, R>(inner: S, policy: RetryPolicy, request: R) -> Result<S::Response>
where
    S: Service<R, Error = Error> + Clone,
    R: Resend,
{
    let read_only = request.is_read_only();
    let mut request = Some(request);
    let mut retry = 0;
    loop {
        let Some(this) = request.take() else {
            return Err(Error::Protocol("retry without a request".into()));
        };
        if retry < policy.max_retries {
            request = this.copy_for_resend();
        }
        let attempt = tracing::debug_span!("attempt", n = retry + 1);
        match inner.clone().oneshot(this).instrument(attempt).await {
            Ok(response) => return Ok(response),
            Err(error) if request.is_some() && may_retry(&error, read_only) => {
                let pause = policy.backoff().pause(retry);
                tracing::debug!(%error, retry, ?pause, "retrying");
                tokio::time::sleep(pause).await;
                retry += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The request type's name without its module path, for spans.
fn short_name<R>() -> &'static str {
    let full = std::any::type_name::<R>();
    let end = full.find('<').unwrap_or(full.len());
    full[..end].rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb as pb;
    use crate::{Applied, ServerError, ServerErrorKind};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tonic::Code;

    fn server(message: &str) -> Error {
        Error::Server(ServerError::new(Code::Unavailable, message))
    }

    /// A service failing `failures` times with `error()`, then answering.
    fn flaky(
        failures: u32,
        error: fn() -> Error,
    ) -> (
        impl Service<
            pb::PutRequest,
            Response = (),
            Error = Error,
            Future = BoxFuture<'static, Result<()>>,
        > + Clone,
        Arc<AtomicU32>,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let svc = tower::service_fn(move |_: pb::PutRequest| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { if n < failures { Err(error()) } else { Ok(()) } })
                as BoxFuture<'static, Result<()>>
        });
        (svc, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn transient_refusals_are_retried_with_backoff() {
        let (svc, calls) = flaky(3, || server("etcdserver: no leader"));
        let started = tokio::time::Instant::now();
        Retry::new(svc, RetryPolicy::default(), None)
            .oneshot(pb::PutRequest::default())
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Pauses of 25, 50 and 100 ms, each jittered to between half and all of it.
        let took = started.elapsed();
        let full = Duration::from_millis(25 + 50 + 100);
        assert!(took >= full / 2 && took <= full, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn writes_with_an_unknown_outcome_are_never_resent() {
        let (svc, calls) = flaky(1, || server("etcdserver: request timed out"));
        let e = Retry::new(svc, RetryPolicy::default(), None)
            .oneshot(pb::PutRequest::default())
            .await
            .unwrap_err();
        assert!(e.is_outcome_unknown());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_retried_after_a_timeout_of_the_server() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let svc = tower::service_fn(move |_: pb::RangeRequest| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(server("etcdserver: request timed out"))
                } else {
                    Ok(())
                }
            }
        });
        Retry::new(svc, RetryPolicy::default(), None)
            .oneshot(pb::RangeRequest::default())
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_and_the_deadline_bound_a_call() {
        let (svc, calls) = flaky(u32::MAX, || server("etcdserver: leader changed"));
        let policy = RetryPolicy {
            max_retries: 3,
            ..RetryPolicy::default()
        };
        let e = Retry::new(svc.clone(), policy, None)
            .oneshot(pb::PutRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.server_kind(), Some(ServerErrorKind::LeaderChanged));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "one attempt and three retries"
        );

        let e = Retry::new(
            svc,
            RetryPolicy::default(),
            Some(Duration::from_millis(100)),
        )
        .oneshot(pb::PutRequest::default())
        .await
        .unwrap_err();
        assert!(
            matches!(e, Error::Timeout { call: Some("PutRequest"), limit: Some(l), .. } if l == Duration::from_millis(100)),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "request timed out: PutRequest took longer than 100ms"
        );
    }

    #[test]
    fn invalid_requests_and_permanent_refusals_are_final() {
        let invalid = Error::InvalidRequest(crate::InvalidRequest::EmptyKey);
        assert!(!may_retry(&invalid, true));
        let compacted = Error::Server(ServerError::new(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ));
        assert!(!may_retry(&compacted, true));
        let never_sent = Error::Transport {
            message: "refused".into(),
            applied: Applied::No,
            source: None,
        };
        assert!(may_retry(&never_sent, false));
        let maybe_sent = Error::Transport {
            message: "reset".into(),
            applied: Applied::Unknown,
            source: None,
        };
        assert!(!may_retry(&maybe_sent, false));
        assert!(may_retry(&maybe_sent, true));
    }

    #[test]
    fn refusals_before_apply_are_classified() {
        let learner = server("etcdserver: rpc not supported for learner");
        assert!(
            may_retry(&learner, false),
            "a learner's refusal goes elsewhere"
        );
        for message in [
            "etcdserver: cluster version not found during downgrade",
            "etcdserver: not capable",
        ] {
            // Unavailable on the wire, but the same on every member: not retried, and
            // known not applied.
            let e = server(message);
            assert!(!may_retry(&e, true), "{message}");
            assert!(!e.is_outcome_unknown(), "{message}");
        }
        let bad_transferee = Error::Server(ServerError::new(
            Code::FailedPrecondition,
            "etcdserver: bad leader transferee",
        ));
        assert!(!may_retry(&bad_transferee, false));
        assert!(!bad_transferee.is_outcome_unknown());
    }

    #[test]
    fn span_names_are_short() {
        assert_eq!(short_name::<pb::RangeRequest>(), "RangeRequest");
    }
}
