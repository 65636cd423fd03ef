//! Tower layers of etcd's rules, over any transport: retries that never apply a write
//! twice, failover across the members of a cluster, reads that never go back in time, and
//! the one jittered backoff they and the watch and keep-alive streams share.
//!
//! They work on typed services (a [`GrpcKv`](crate::grpc::GrpcKv) and the like, whose
//! error is [`Error`](crate::Error)), since whether a call may be sent again depends on
//! the request (see [`Resend`](crate::resend::Resend)) and on how it failed. A stack of
//! them, as the `etcd3` facade builds it:
//!
//! ```text
//! Retry (policy, deadline of the whole call)
//!   └─ Failover (round-robin over healthy members; moves calls that never reached one)
//!        └─ Monotonic, when asked (refuses a member's read from behind the client)
//!             └─ one typed service per member (GrpcKv over that member's channel)
//! ```
//!
//! The `etcd-lease` and `etcd-watch` crates run over the same stack: a broken watch or
//! keep-alive stream is reopened through [`Failover`], so it lands on another member.

mod backoff;
pub mod failover;
mod monotonic;
pub mod retry;
mod tried;

pub use backoff::Backoff;
pub use failover::{Failover, FailoverLayer};
pub use monotonic::{Monotonic, MonotonicFuture, RevisionFloor, Revisioned};
pub use retry::{Retry, RetryLayer, RetryPolicy};
