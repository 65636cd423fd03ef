//! The one backoff every reconnecting or retrying part of the client uses.

use std::time::Duration;

/// An exponential backoff with equal jitter: the pause before attempt `n` (from 0) is
/// `initial * 2^n`, at most `max`, then drawn uniformly from half of it to all of it, so
/// that clients that failed together (a member restarted under many of them) do not all
/// come back at the same instant.
///
/// ```
/// use std::time::Duration;
/// use etcd_core::layer::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
/// assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
/// assert_eq!(backoff.ceiling(9), Duration::from_secs(1));
/// let pause = backoff.pause(2);
/// assert!(pause >= Duration::from_millis(200) && pause <= Duration::from_millis(400));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The first pause (before jitter).
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest pause (before jitter, which only shortens it).
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The pause before attempt `attempt` before jitter: `initial * 2^attempt`, at most
    /// `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The jittered pause before attempt `attempt`: uniform in
    /// `[ceiling / 2, ceiling]`.
    pub fn pause(&self, attempt: u32) -> Duration {
        crate::jitter::equal(self.ceiling(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_jittered_within_their_bounds() {
        let backoff = Backoff::new(Duration::from_millis(25), Duration::from_millis(800));
        for attempt in 0..40 {
            let full = backoff.ceiling(attempt);
            assert!(full <= Duration::from_millis(800));
            let pauses: Vec<Duration> = (0..64).map(|_| backoff.pause(attempt)).collect();
            for pause in &pauses {
                assert!(
                    *pause >= full / 2 && *pause <= full,
                    "attempt {attempt}: {pause:?} not in [{:?}, {full:?}]",
                    full / 2
                );
            }
            assert!(
                pauses.iter().any(|p| *p != pauses[0]),
                "attempt {attempt}: every pause was {:?}",
                pauses[0]
            );
        }
    }
}
