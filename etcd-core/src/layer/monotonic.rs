//! Monotonic reads: a client never reads a revision older than one it has already seen.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

use etcd_proto::etcdserverpb as pb;
use pin_project_lite::pin_project;

use crate::resend::Resend;
use crate::{Error, Result};

/// The highest revision a client has seen in a response, shared by all its services.
/// Cheap to clone (clones share it).
#[derive(Clone, Debug, Default)]
pub struct RevisionFloor(Arc<AtomicI64>);

impl RevisionFloor {
    /// A floor at revision 0: nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest revision seen.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    /// Notes that `revision` was seen.
    pub fn raise(&self, revision: i64) {
        self.0.fetch_max(revision, Ordering::AcqRel);
    }
}

/// A response that carries the store revision it was served at (its header's).
pub trait Revisioned {
    /// The revision in the response's header (0 when it has none).
    fn revision(&self) -> i64;
}

macro_rules! revisioned {
    ($($response:ty),* $(,)?) => {$(
        impl Revisioned for $response {
            fn revision(&self) -> i64 {
                self.header.as_ref().map_or(0, |header| header.revision)
            }
        }
    )*};
}
revisioned!(
    pb::RangeResponse,
    pb::PutResponse,
    pb::DeleteRangeResponse,
    pb::TxnResponse,
    pb::CompactionResponse,
);

/// A typed service over one member that refuses to go back in time: a read answered at a
/// revision below the [`RevisionFloor`] fails with [`Error::StaleRead`] (which failover
/// takes as this member's problem, sending the read to the next member), and every answer
/// raises the floor. Writes are never refused (their answer is at the newest revision the
/// leader knows).
///
/// Like etcd's Go client's `ordering` package, for a member that fell behind the others
/// (partitioned, or catching up from a snapshot) or was restored from an older snapshot.
/// Put it under [`Failover`](super::Failover), around each member's service, with one
/// floor shared by all of them.
#[derive(Clone, Debug)]
pub struct Monotonic<S> {
    inner: S,
    floor: Option<RevisionFloor>,
}

impl<S> Monotonic<S> {
    /// Checks `inner`'s answers against `floor`; with `None`, a pass-through.
    pub fn new(inner: S, floor: Option<RevisionFloor>) -> Self {
        Self { inner, floor }
    }
}

impl<S, R> tower::Service<R> for Monotonic<S>
where
    S: tower::Service<R, Error = Error>,
    S::Response: Revisioned,
    R: Resend,
{
    type Response = S::Response;
    type Error = Error;
    type Future = MonotonicFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let check = self
            .floor
            .clone()
            .map(|floor| (floor, request.is_read_only()));
        MonotonicFuture {
            inner: self.inner.call(request),
            check,
        }
    }
}

pin_project! {
    /// A call in flight through [`Monotonic`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct MonotonicFuture<F> {
        #[pin]
        inner: F,
        // The floor, and whether the request only reads.
        check: Option<(RevisionFloor, bool)>,
    }
}

impl<F, T> Future for MonotonicFuture<F>
where
    F: Future<Output = Result<T>>,
    T: Revisioned,
{
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        if let Some((floor, read_only)) = this.check {
            let revision = response.revision();
            let seen = floor.get();
            if *read_only && revision < seen {
                return Poll::Ready(Err(Error::StaleRead { revision, seen }));
            }
            floor.raise(revision);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn at(revision: i64) -> pb::RangeResponse {
        pb::RangeResponse {
            header: Some(pb::ResponseHeader {
                revision,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn reads_below_the_floor_are_refused_and_answers_raise_it() {
        let floor = RevisionFloor::new();
        let member = |revision: i64| {
            Monotonic::new(
                tower::service_fn(move |_: pb::RangeRequest| async move { Ok(at(revision)) }),
                Some(floor.clone()),
            )
        };
        member(10)
            .oneshot(pb::RangeRequest::default())
            .await
            .unwrap();
        assert_eq!(floor.get(), 10);
        let stale = member(7)
            .oneshot(pb::RangeRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                stale,
                Error::StaleRead {
                    revision: 7,
                    seen: 10
                }
            ),
            "{stale:?}"
        );
        assert_eq!(floor.get(), 10, "a refused answer does not lower the floor");
        member(12)
            .oneshot(pb::RangeRequest::default())
            .await
            .unwrap();
        assert_eq!(floor.get(), 12);

        // Without a floor, a pass-through.
        let plain = Monotonic::new(
            tower::service_fn(|_: pb::RangeRequest| async { Ok(at(1)) }),
            None,
        );
        plain.oneshot(pb::RangeRequest::default()).await.unwrap();
    }
}
