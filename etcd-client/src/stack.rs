//! The stack of layers each etcd service's calls pass through, over the members'
//! connections.

use bytes::Bytes;
use etcd_core::namespace::Namespace;
use tonic::transport::Channel;

use crate::failover::Failover;

/// The connection to one member, as the gRPC adapters see it.
pub type Transport = Channel;

/// The typed stack of the key-bearing services (KV, lease, watch): the namespace over
/// failover across the members.
pub type Stack<S> = Namespace<Failover<S>>;

/// A failover service over one `make(transport)` service per member.
pub(crate) fn failover<S>(
    members: &[(String, Transport)],
    make: impl Fn(Transport) -> S,
) -> Failover<S> {
    Failover::new(
        members
            .iter()
            .map(|(address, ch)| (address.clone(), make(ch.clone()))),
    )
}

/// The full typed stack of one key-bearing service.
pub(crate) fn stack<S>(
    members: &[(String, Transport)],
    make: impl Fn(Transport) -> S,
    namespace: &Bytes,
) -> Stack<S> {
    Namespace::new(failover(members, make), namespace.clone())
}
