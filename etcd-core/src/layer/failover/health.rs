//! Each member's recent health: members that failed to connect, left a call unanswered
//! or refused it as a learner are skipped for a while.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a member that failed to connect (or to answer in time) is skipped, at first;
/// doubled on each further failure up to [`MAX_PENALTY`].
const FIRST_PENALTY: Duration = Duration::from_millis(500);
/// The longest a failing member is skipped before it is tried again.
const MAX_PENALTY: Duration = Duration::from_secs(10);

/// One member: its address, its service and its recent health.
#[derive(Debug)]
pub(super) struct Target<S> {
    pub(super) endpoint: Arc<str>,
    pub(super) service: S,
    pub(super) health: Mutex<Health>,
}

#[derive(Debug, Default)]
pub(super) struct Health {
    pub(super) skip_until: Option<Instant>,
    penalty: Duration,
}

pub(super) fn member_list<S>(members: impl IntoIterator<Item = (String, S)>) -> Arc<[Target<S>]> {
    members
        .into_iter()
        .map(|(endpoint, service)| Target {
            endpoint: endpoint.into(),
            service,
            health: Mutex::new(Health::default()),
        })
        .collect()
}

impl<S> Target<S> {
    pub(super) fn record(&self, reachable: bool) {
        let mut health = lock(&self.health);
        if reachable {
            *health = Health::default();
        } else {
            health.penalty = (health.penalty * 2).clamp(FIRST_PENALTY, MAX_PENALTY);
            health.skip_until = Some(Instant::now() + health.penalty);
            tracing::warn!(endpoint = %self.endpoint, penalty = ?health.penalty, "member unreachable, stalled, a learner or behind: skipped for a while");
        }
    }
}

/// Counts a call against its member when the call is dropped before the member answered:
/// the deadline of the call passed (the retry layer's request timeout) or its caller gave
/// up. A member that stalls without breaking the connection (a blackholed network, a
/// stopped process, a dead peer and no keepalive) shows only this way; without it, every
/// call sent to it in turn would wait out its whole deadline. A caller that drops a call
/// on purpose costs the member a short penalty at worst: penalised members are still
/// tried, after the others.
pub(super) struct Unanswered<'a, S>(pub(super) Option<&'a Target<S>>);

impl<S> Drop for Unanswered<'_, S> {
    fn drop(&mut self) {
        if let Some(member) = self.0.take() {
            tracing::debug!(endpoint = %member.endpoint, "no answer before the call was dropped");
            member.record(false);
        }
    }
}

/// An endpoint without its `http://` or `https://` scheme and trailing slashes, for
/// comparison.
pub(super) fn normalized(endpoint: &str) -> &str {
    let endpoint = endpoint.trim();
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/')
}

pub(super) fn lock(health: &Mutex<Health>) -> std::sync::MutexGuard<'_, Health> {
    health
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
