//! Protobuf messages and gRPC clients of the etcd v3 API.
//!
//! This crate is the wire layer of the workspace: plain [`prost`] message
//! types and [`tonic`] client stubs for every service etcd 3.4 and 3.5 serve
//! over gRPC — `KV`, `Watch`, `Lease`, `Cluster`, `Maintenance` and `Auth`
//! (in [`etcdserverpb`]), plus the `Lock` ([`v3lockpb`]) and `Election`
//! ([`v3electionpb`]) services, with the shared record types in [`mvccpb`]
//! and [`authpb`]. It holds no client logic; higher-level crates build on it.
//!
//! Protobuf module, message, field and enum names follow etcd's own `.proto`
//! definitions, so etcd's API documentation applies directly: a proto field
//! `peerURLs` becomes `peer_ur_ls` in Rust, `ID` becomes `id`, `TTL` becomes
//! `ttl`, and enum fields are `i32`s with typed accessors (e.g.
//! [`RangeRequest::sort_order()`](etcdserverpb::RangeRequest::sort_order)).
//! All `bytes` fields are [`bytes::Bytes`].
//!
//! # Generated and committed
//!
//! The Rust code in `src/generated/` is generated from the `.proto` files in
//! `proto/` (written for this crate; `proto/WIRE.md` records how their field
//! numbers were checked against etcd) and committed, so building this crate
//! needs neither `protoc` nor a build script. After editing a `.proto` file,
//! regenerate from the workspace root with:
//!
//! ```text
//! cargo xtask codegen          # rewrite src/generated/
//! cargo xtask codegen --check  # only verify it is up to date (also run by `cargo test`)
//! ```
//!
//! # Clients
//!
//! The clients (e.g. [`etcdserverpb::kv_client::KvClient`]) are generic over
//! any `tonic::client::GrpcService`; this crate deliberately generates no
//! `connect()` helpers tied to a particular transport.
//!
//! # Features
//!
//! - `server` (off by default): also compile the generated server traits and
//!   wrappers (`etcdserverpb::kv_server::KvServer` and friends), e.g. for
//!   in-process fake etcd servers in tests.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use etcd_proto::etcdserverpb::{RangeRequest, range_request::{SortOrder, SortTarget}};
//! use prost::Message;
//!
//! // All keys with prefix "app/", newest modification first, at most 10.
//! let mut request = RangeRequest {
//!     key: Bytes::from_static(b"app/"),
//!     range_end: Bytes::from_static(b"app0"), // "app/" with its last byte + 1
//!     limit: 10,
//!     keys_only: true,
//!     ..Default::default()
//! };
//! request.set_sort_order(SortOrder::Descend);
//! request.set_sort_target(SortTarget::Mod);
//!
//! let wire = request.encode_to_vec();
//! let decoded = RangeRequest::decode(wire.as_slice()).unwrap();
//! assert_eq!(decoded, request);
//! assert_eq!(decoded.sort_order(), SortOrder::Descend);
//! ```

/// The etcd v3 gRPC API: `KV`, `Watch`, `Lease`, `Cluster`, `Maintenance`
/// and `Auth` services with their request and response messages.
#[rustfmt::skip]
#[allow(missing_docs, missing_debug_implementations, unreachable_pub, clippy::all, clippy::pedantic)]
#[path = "generated/etcdserverpb.rs"]
pub mod etcdserverpb;

/// Key-value records (`KeyValue`) and watch events (`Event`) of etcd's
/// multi-version store.
#[rustfmt::skip]
#[allow(missing_docs, missing_debug_implementations, unreachable_pub, clippy::all, clippy::pedantic)]
#[path = "generated/mvccpb.rs"]
pub mod mvccpb;

/// Users, roles and permissions of etcd's authentication subsystem.
#[rustfmt::skip]
#[allow(missing_docs, missing_debug_implementations, unreachable_pub, clippy::all, clippy::pedantic)]
#[path = "generated/authpb.rs"]
pub mod authpb;

/// etcd's server-side distributed lock service (`Lock`).
#[rustfmt::skip]
#[allow(missing_docs, missing_debug_implementations, unreachable_pub, clippy::all, clippy::pedantic)]
#[path = "generated/v3lockpb.rs"]
pub mod v3lockpb;

/// etcd's server-side leader election service (`Election`).
#[rustfmt::skip]
#[allow(missing_docs, missing_debug_implementations, unreachable_pub, clippy::all, clippy::pedantic)]
#[path = "generated/v3electionpb.rs"]
pub mod v3electionpb;
