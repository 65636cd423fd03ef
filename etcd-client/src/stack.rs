//! The stack of layers each etcd service's calls pass through, over the members'
//! connections.

use std::time::Duration;

use bytes::Bytes;
use etcd_core::layer::{Failover, Retry, RetryPolicy, RevisionFloor};
use etcd_core::middleware::{AuthToken, RequireLeader};
use etcd_core::namespace::Namespace;

use crate::auth_session::{AuthSession, Reauth};
use crate::endpoints::Endpoints;
use crate::member_transport::{AuthedTransport, Connection, MemberTransport, WrapChannel};

/// The typed stack of the key-bearing services (KV, lease, watch): the namespace, over
/// retries and the call deadline, over re-authentication when a token is refused
/// ([`Reauth`]), over failover across the members.
pub(crate) type Stack<S> = Namespace<Retry<Reauth<Failover<S>>>>;

/// The typed stack of the other services (cluster, auth): retries and the call deadline
/// over re-authentication, over failover across the members.
pub(crate) type StackWithoutNamespace<S> = Retry<Reauth<Failover<S>>>;

/// The settings of the typed layers.
#[derive(Clone, Debug, Default)]
pub(crate) struct StackSettings {
    /// The namespace prefix (empty: none).
    pub(crate) namespace: Bytes,
    /// How calls are retried.
    pub(crate) retry: RetryPolicy,
    /// The deadline of each unary call, retries included (streams: of opening them).
    pub(crate) request_timeout: Option<Duration>,
    /// Where tokens come from, and how they are renewed.
    pub(crate) session: AuthSession,
    /// Whether calls ask for a member with a leader (`hasleader`).
    pub(crate) require_leader: bool,
    /// The user's tower layers over each member's channel.
    pub(crate) wrap: Option<WrapChannel>,
    /// The highest revision seen, when reads must not go back in time.
    pub(crate) floor: Option<RevisionFloor>,
}

/// A member's connection, carrying the session's token and, when asked, the
/// require-leader metadata.
pub(crate) fn transport(channel: Connection, layers: &StackSettings) -> AuthedTransport {
    AuthToken::new(
        RequireLeader::new(
            MemberTransport::new(channel, layers.wrap.as_ref()),
            layers.require_leader,
        ),
        layers.session.cell().clone(),
    )
}

/// The full typed stack of one key-bearing service.
pub(crate) fn stack<S: Send + Sync + 'static>(
    members: &Endpoints,
    make: impl Fn(AuthedTransport) -> S + Send + Sync + 'static,
    layers: &StackSettings,
) -> Stack<S> {
    Namespace::new(
        stack_without_namespace(members, make, layers),
        layers.namespace.clone(),
    )
}

/// The typed stack of one service without keys.
pub(crate) fn stack_without_namespace<S: Send + Sync + 'static>(
    members: &Endpoints,
    make: impl Fn(AuthedTransport) -> S + Send + Sync + 'static,
    layers: &StackSettings,
) -> StackWithoutNamespace<S> {
    Retry::new(
        Reauth::new(members.failover(make), layers.session.clone()),
        layers.retry,
        layers.request_timeout,
    )
}
