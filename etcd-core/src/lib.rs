//! The transport-agnostic core of an etcd v3 client.
//!
//! This crate holds what every part of the client shares: the [`Error`] type with its
//! classification of etcd's error statuses, key and range helpers, request builders, and
//! service handles such as [`Kv`] that run over **any** tower service speaking gRPC: a tonic
//! `Channel`, a `Channel` wrapped in your own tower layers, or an in-memory server. It opens
//! no sockets itself; the `etcd3` crate adds connections, TLS and failover.
//!
//! # Example
//!
//! A KV client over a bare tonic channel with a tower timeout layer, no facade involved:
//!
//! ```no_run
//! use std::time::Duration;
//! use etcd_core::{Kv, grpc::GrpcKv};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:2379").connect_lazy();
//! let transport = tower::ServiceBuilder::new()
//!     .timeout(Duration::from_secs(2))
//!     .service(channel);
//! let kv = Kv::new(GrpcKv::new(transport));
//!
//! kv.put("greeting", "hello").await?;
//! let resp = kv.get("greeting").await?;
//! assert_eq!(resp.value(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```
//!
//! Requests are checked before they are sent: an empty key, a transaction over the server's
//! operation limit or one that writes a key twice fail with [`Error::InvalidRequest`] and
//! nothing goes on the wire.

pub mod auth;
pub mod call;
pub mod cluster;
pub mod deadline;
pub mod election;
pub mod error;
pub mod future;
pub mod grpc;
mod jitter;
pub mod key;
pub mod kv;
pub mod layer;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod middleware;
pub mod namespace;
pub mod resend;
mod service;
pub mod stream;
pub mod transport;
pub mod watch;

pub use auth::Auth;
pub use cluster::Cluster;
pub use error::{Applied, BoxError, Error, InvalidRequest, Result, ServerError, ServerErrorKind};
pub use etcd_proto as proto;
pub use key::{IntoBytes, KeyRange};
pub use kv::Kv;
pub use maintenance::Maintenance;
