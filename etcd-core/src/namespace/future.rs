//! The future of a call through a [`Namespace`](super::Namespace).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::keys::{Prefix, StripKeys};

pin_project! {
    /// A call in flight through a [`Namespace`](super::Namespace): the inner service's
    /// future, whose response loses the namespace's prefix when it arrives.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        prefix: Prefix,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, prefix: Prefix) -> Self {
        Self { inner, prefix }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    T: StripKeys,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.inner.poll(cx).map(|result| {
            result.map(|mut response| {
                if !this.prefix.is_empty() {
                    response.strip_keys(this.prefix);
                }
                response
            })
        })
    }
}
