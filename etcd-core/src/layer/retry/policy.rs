//! The retry policy, and which failures it retries.

use std::time::Duration;

use crate::layer::Backoff;
use crate::{Applied, Error, ServerErrorKind};

/// How calls are retried and how long they may take. Start from
/// [`RetryPolicy::default`] (or [`never`](RetryPolicy::never)) and change what you need
/// with the `with_*` methods; the fields are public to read.
///
/// ```
/// use std::time::Duration;
/// let policy = etcd_core::layer::RetryPolicy::default()
///     .with_max_retries(3)
///     .with_backoff(Duration::from_millis(50), Duration::from_secs(1));
/// assert_eq!(policy.max_retries, 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The most times a call is sent again after its first attempt.
    pub max_retries: u32,
    /// The pause before the first retry; doubled for each further one. Each pause is
    /// jittered ("equal jitter": drawn uniformly from half the pause to the whole), so
    /// that clients failing together do not retry together.
    pub initial_backoff: Duration,
    /// The longest pause between two attempts (before jitter, which only shortens it).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 8,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(800),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn never() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The same policy with at most `retries` resends after the first attempt.
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The same policy with pauses starting at `initial` and doubling up to `max`.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// The backoff between attempts: retry number `n` (from 0) waits
    /// `initial_backoff * 2^n`, at most `max_backoff`, with equal jitter.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.initial_backoff, self.max_backoff)
    }
}

/// Whether a call that failed with `error` may be sent again.
pub(super) fn may_retry(error: &Error, read_only: bool) -> bool {
    match error {
        Error::Server(e) if e.kind().is_transient() || e.kind().is_refused_by_member() => true,
        Error::Server(e) => {
            read_only
                && matches!(
                    e.kind(),
                    ServerErrorKind::RequestTimedOut
                        | ServerErrorKind::Unavailable
                        | ServerErrorKind::Stopped
                        | ServerErrorKind::Canceled
                )
        }
        // A failed TLS handshake (untrusted certificate, refused client certificate,
        // no TLS on the port) fails the same way every time.
        Error::Transport { .. } if error.is_tls() => false,
        Error::Transport { applied, .. } => read_only || *applied == Applied::No,
        // Every member was behind: one may have caught up by the next attempt.
        Error::StaleRead { .. } => read_only,
        _ => false,
    }
}
