//! A tower layer that counts the gRPC calls passing through a transport, by method path,
//! so tests can prove that a refused request never left the client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Counts requests per gRPC method path (such as `/etcdserverpb.KV/Put`).
#[derive(Clone, Debug, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl CallCounter {
    /// A counter with no calls yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls seen for one method path.
    pub fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Calls seen in total.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }

    /// Awaits `call` and asserts it made exactly one RPC (a refusal by the server is
    /// final, never retried).
    #[track_caller]
    pub fn sent_once<T>(
        &self,
        call: impl std::future::IntoFuture<Output = T>,
    ) -> impl std::future::Future<Output = T> {
        let caller = std::panic::Location::caller();
        async move {
            let before = self.total();
            let out = call.await;
            let sent = self.total() - before;
            assert_eq!(sent, 1, "sent {sent} times, not once (at {caller})");
            out
        }
    }

    /// The layer that feeds this counter.
    pub fn layer(&self) -> CountingLayer {
        CountingLayer {
            counter: self.clone(),
        }
    }
}

/// The layer of a [`CallCounter`].
#[derive(Clone, Debug)]
pub struct CountingLayer {
    counter: CallCounter,
}

impl<S> tower::Layer<S> for CountingLayer {
    type Service = Counting<S>;

    fn layer(&self, inner: S) -> Counting<S> {
        Counting {
            inner,
            counter: self.counter.clone(),
        }
    }
}

/// A transport that counts the requests it forwards.
#[derive(Clone, Debug)]
pub struct Counting<S> {
    inner: S,
    counter: CallCounter,
}

impl<S, B> tower::Service<http::Request<B>> for Counting<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> S::Future {
        *self
            .counter
            .counts
            .lock()
            .unwrap()
            .entry(request.uri().path().to_owned())
            .or_default() += 1;
        self.inner.call(request)
    }
}
