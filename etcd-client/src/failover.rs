//! Spreading calls over the members of a cluster, and moving off members that fail.
//!
//! [`Failover`] is a typed tower service over one inner service per member. Each call goes
//! to the next member in turn, skipping members that recently failed to connect. When a
//! call fails in a way that proves the request never reached the server, it is sent to the
//! next member; a read-only request is also sent on after any connection failure. A write
//! whose outcome is unknown is never resent: the caller gets the typed error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use etcd_core::idempotency::Idempotency;
use etcd_core::proto::etcdserverpb as pb;
use etcd_core::stream::RequestStream;
use etcd_core::{Applied, Error, Result};
use futures_util::future::BoxFuture;
use tower::{Service, ServiceExt};

/// How long a member that failed to connect is skipped, at first; doubled on each further
/// failure up to [`MAX_PENALTY`].
const FIRST_PENALTY: Duration = Duration::from_millis(500);
/// The longest a failing member is skipped before it is tried again.
const MAX_PENALTY: Duration = Duration::from_secs(10);

/// One member: its address, its service and its recent health.
#[derive(Debug)]
struct Member<S> {
    endpoint: String,
    service: S,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    skip_until: Option<Instant>,
    penalty: Duration,
}

/// A typed service that spreads calls over several members and fails over between them.
#[derive(Debug)]
pub struct Failover<S> {
    members: Arc<[Member<S>]>,
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
    /// A failover service over `(endpoint, service)` pairs, one per member.
    ///
    /// # Panics
    /// When `members` is empty; [`Client::connect`](crate::Client::connect) refuses that
    /// with a typed error first.
    pub fn new(members: impl IntoIterator<Item = (String, S)>) -> Self {
        let members: Arc<[Member<S>]> = members
            .into_iter()
            .map(|(endpoint, service)| Member {
                endpoint,
                service,
                health: Mutex::new(Health::default()),
            })
            .collect();
        assert!(
            !members.is_empty(),
            "a failover service needs at least one member"
        );
        Self {
            members,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The endpoints, in the order given.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.endpoint.as_str())
    }

    /// The inner service of the member at `endpoint`, to aim a call at that member alone
    /// (no failover). Endpoints match with or without their `http://` or `https://` scheme
    /// and a trailing slash.
    pub fn member(&self, endpoint: &str) -> Option<&S> {
        let wanted = normalized(endpoint);
        self.members
            .iter()
            .find(|m| normalized(&m.endpoint) == wanted)
            .map(|m| &m.service)
    }

    /// Every member's endpoint and inner service, in the order given.
    pub fn members(&self) -> impl Iterator<Item = (&str, &S)> {
        self.members
            .iter()
            .map(|m| (m.endpoint.as_str(), &m.service))
    }

    /// The members to try for one call: healthy ones first, starting with the next in turn,
    /// then the skipped ones, soonest to recover first.
    fn order(&self) -> Vec<usize> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let mut skipped = Vec::new();
        let mut order = Vec::with_capacity(n);
        for i in (start..n).chain(0..start) {
            match lock(&self.members[i].health).skip_until {
                Some(until) if until > now => skipped.push((until, i)),
                _ => order.push(i),
            }
        }
        skipped.sort();
        order.extend(skipped.into_iter().map(|(_, i)| i));
        order
    }

    fn record(&self, member: usize, reachable: bool) {
        let mut health = lock(&self.members[member].health);
        if reachable {
            *health = Health::default();
        } else {
            health.penalty = (health.penalty * 2).clamp(FIRST_PENALTY, MAX_PENALTY);
            health.skip_until = Some(Instant::now() + health.penalty);
            tracing::debug!(endpoint = %self.members[member].endpoint, penalty = ?health.penalty, "member unreachable");
        }
    }
}

/// An endpoint without its `http://` or `https://` scheme and trailing slashes, for
/// comparison.
fn normalized(endpoint: &str) -> &str {
    let endpoint = endpoint.trim();
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/')
}

fn lock(health: &Mutex<Health>) -> std::sync::MutexGuard<'_, Health> {
    health
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A request the failover service may send to a second member when the first fails.
pub trait Resend: Sized {
    /// A copy to send if this attempt fails, or `None` when the request cannot be sent
    /// twice (the outgoing stream of a bidirectional call: its owner reopens it).
    fn copy_for_resend(&self) -> Option<Self>;

    /// True when sending the request twice has the effect of sending it once.
    fn is_read_only(&self) -> bool;
}

macro_rules! resend_by_clone {
    ($($request:ty),* $(,)?) => {$(
        impl Resend for $request {
            fn copy_for_resend(&self) -> Option<Self> {
                Some(self.clone())
            }
            fn is_read_only(&self) -> bool {
                Idempotency::is_read_only(self)
            }
        }
    )*};
}
resend_by_clone!(
    pb::RangeRequest,
    pb::PutRequest,
    pb::DeleteRangeRequest,
    pb::TxnRequest,
    pb::CompactionRequest,
    pb::LeaseGrantRequest,
    pb::LeaseRevokeRequest,
    pb::LeaseTimeToLiveRequest,
    pb::LeaseLeasesRequest,
    pb::MemberListRequest,
    pb::MemberAddRequest,
    pb::MemberRemoveRequest,
    pb::MemberUpdateRequest,
    pb::MemberPromoteRequest,
    pb::AlarmRequest,
    pb::StatusRequest,
    pb::DefragmentRequest,
    pb::HashRequest,
    pb::HashKvRequest,
    pb::MoveLeaderRequest,
    pb::SnapshotRequest,
    pb::DowngradeRequest,
    pb::AuthEnableRequest,
    pb::AuthDisableRequest,
    pb::AuthStatusRequest,
    pb::AuthenticateRequest,
    pb::AuthUserAddRequest,
    pb::AuthUserGetRequest,
    pb::AuthUserListRequest,
    pb::AuthUserDeleteRequest,
    pb::AuthUserChangePasswordRequest,
    pb::AuthUserGrantRoleRequest,
    pb::AuthUserRevokeRoleRequest,
    pb::AuthRoleAddRequest,
    pb::AuthRoleGetRequest,
    pb::AuthRoleListRequest,
    pb::AuthRoleDeleteRequest,
    pb::AuthRoleGrantPermissionRequest,
    pb::AuthRoleRevokePermissionRequest,
    etcd_core::proto::v3lockpb::LockRequest,
    etcd_core::proto::v3lockpb::UnlockRequest,
    etcd_core::proto::v3electionpb::CampaignRequest,
    etcd_core::proto::v3electionpb::ProclaimRequest,
    etcd_core::proto::v3electionpb::LeaderRequest,
    etcd_core::proto::v3electionpb::ResignRequest,
    etcd_core::election::ObserveRequest,
);

impl<T> Resend for RequestStream<T> {
    fn copy_for_resend(&self) -> Option<Self> {
        None
    }
    fn is_read_only(&self) -> bool {
        false
    }
}

/// Whether a failed call may be sent to another member, and whether it shows the member is
/// unreachable.
fn may_resend(error: &Error, read_only: bool) -> bool {
    match error {
        Error::Transport { applied, .. } => read_only || *applied == Applied::No,
        _ => false,
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
            let order = this.order();
            let read_only = request.is_read_only();
            let mut request = Some(request);
            let mut last_error = None;
            for (attempt, &member) in order.iter().enumerate() {
                let last = attempt + 1 == order.len();
                let Some(req) = request.take() else { break };
                if !last {
                    request = req.copy_for_resend();
                }
                let service = this.members[member].service.clone();
                match service.oneshot(req).await {
                    Ok(response) => {
                        this.record(member, true);
                        return Ok(response);
                    }
                    Err(error) => {
                        if matches!(error, Error::Transport { .. }) {
                            this.record(member, false);
                        }
                        if !may_resend(&error, read_only) {
                            return Err(error);
                        }
                        tracing::debug!(endpoint = %this.members[member].endpoint, %error, "trying the next member");
                        last_error = Some(error);
                    }
                }
            }
            Err(last_error
                .unwrap_or_else(|| Error::Protocol("no member to send the request to".into())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_by_endpoint_with_or_without_scheme() {
        let failover = Failover::new([
            ("http://127.0.0.1:2379".to_owned(), 1),
            ("127.0.0.1:22379".to_owned(), 2),
        ]);
        assert_eq!(failover.member("http://127.0.0.1:2379"), Some(&1));
        assert_eq!(failover.member("127.0.0.1:2379/"), Some(&1));
        assert_eq!(failover.member("http://127.0.0.1:22379"), Some(&2));
        assert_eq!(failover.member("127.0.0.1:32379"), None);
        let all: Vec<_> = failover
            .members()
            .map(|(e, s)| (e.to_owned(), *s))
            .collect();
        assert_eq!(all.len(), 2);
    }
}
