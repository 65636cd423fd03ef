//! Wire-tier middleware: tower layers over a gRPC transport (`http::Request` in,
//! `http::Response` out), below the typed services of the [`grpc`](crate::grpc) adapters.
//!
//! - [`auth_token`]: attaches an auth token, read from a shared [`TokenCell`], to every
//!   call and stream except `Authenticate`.

pub mod auth_token;

pub use auth_token::{AuthToken, AuthTokenLayer, TokenCell};
