use std::time::Duration;

use super::{Retry, RetryPolicy};

/// Wraps a service in [`Retry`]: calls are retried by a [`RetryPolicy`] and each call,
/// retries included, is bounded by an optional timeout.
///
/// ```
/// use std::time::Duration;
/// use etcd_core::layer::{RetryLayer, RetryPolicy};
///
/// let layer = RetryLayer::new(RetryPolicy::default(), Some(Duration::from_secs(5)));
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryLayer {
    policy: RetryPolicy,
    timeout: Option<Duration>,
}

impl RetryLayer {
    /// Retries by `policy`; with a `timeout`, a call that takes longer, retries included,
    /// fails with [`Error::Timeout`](crate::Error::Timeout).
    pub fn new(policy: RetryPolicy, timeout: Option<Duration>) -> Self {
        Self { policy, timeout }
    }
}

impl<S> tower::Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry::new(inner, self.policy, self.timeout)
    }
}
