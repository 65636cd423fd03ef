//! Wire-tier middleware: tower layers over a gRPC transport (`http::Request` in,
//! `http::Response` out), below the typed services of the [`grpc`](crate::grpc) adapters.
//!
//! - [`auth_token`]: attaches an auth token, read from a shared [`TokenCell`], to every
//!   call and stream except `Authenticate`.
//! - [`require_leader`]: asks etcd to serve calls only from a member with a leader.

pub mod auth_token;
pub mod require_leader;

pub use auth_token::{AuthToken, AuthTokenLayer, TokenCell};
pub use require_leader::{RequireLeader, RequireLeaderLayer};
