//! An async client for etcd v3.
//!
//! [`Client`] connects to one or more members of a cluster, spreads calls over them and
//! moves off members that cannot be reached. Everything below it comes from layered crates
//! you can also use on their own: `etcd-core` (types, errors, request builders, services
//! over any tower transport), `etcd-lease` and `etcd-watch`.
//!
//! # Example
//!
//! ```no_run
//! use etcd3::{Client, kv::{Compare, Op}};
//!
//! # async fn example() -> etcd3::Result<()> {
//! let client = Client::connect(["http://127.0.0.1:2379"]).await?;
//! let kv = client.kv();
//!
//! kv.put("service/a", "10.0.0.1:80").await?;
//! for item in kv.get("service/").prefix().await?.kvs() {
//!     println!("{:?} = {:?}", item.key_str(), item.value_str());
//! }
//!
//! let claimed = kv
//!     .txn()
//!     .when([Compare::version("leader").eq(0)])
//!     .then([Op::put("leader", "me")])
//!     .await?
//!     .succeeded();
//! # let _ = claimed;
//! # Ok(()) }
//! ```
//!
//! # Transport and features
//!
//! Members, plain-text (`http://`) and TLS (`https://`), are served by HTTP/2 of this
//! crate's own (with rustls on the connection for TLS), or by tonic's `Channel` (hyper and
//! h2) when [`ClientBuilder::http2_transport`] or the environment variable
//! `ETCD_CLIENT_HTTP2=tonic` says so (see [`Http2Transport`]). Cargo features, all on by
//! default:
//!
//! - `tls`: `https://` members, with rustls and its `ring` crypto provider (`tls-aws-lc`
//!   picks aws-lc-rs instead; `tls-native-roots` and `tls-webpki-roots` add
//!   `Tls::native_roots` and `Tls::webpki_roots`);
//! - `builtin-http2`: the HTTP/2 of our own. Without it, tonic's channel serves every
//!   member;
//! - `discovery`: service registration and discovery ([`discovery`]), with `serde_json`
//!   for the endpoint values.

mod auth_session;
mod client;
pub mod concurrency;
mod connector;
#[cfg(feature = "discovery")]
pub mod discovery;
mod endpoint;
mod endpoints;
mod env;
#[cfg(feature = "builtin-http2")]
mod http2;
pub mod maintenance;
mod member_transport;
pub mod services;
mod stack;
mod tls;

#[cfg(all(
    feature = "_tls",
    not(any(feature = "tls-ring", feature = "tls-aws-lc"))
))]
compile_error!(
    "etcd3's TLS needs a crypto provider: enable the feature `tls-ring` (what `tls` picks) or `tls-aws-lc`"
);

pub use auth_session::{AuthSession, Credentials};
pub use client::ClientBuilder;
pub use client::{Auth, Client, Cluster, Kv, Lessor, WatchGroup, Watcher};
pub use endpoint::Http2Transport;
pub use etcd_core::layer::RetryPolicy;
#[doc(inline)]
pub use etcd_core::{
    Applied, Error, IntoBytes, InvalidRequest, KeyRange, Result, ServerError, ServerErrorKind,
};
pub use etcd_core::{auth, call, cluster, key, kv, layer};
/// Leases and their keep-alive (the `etcd-lease` crate).
pub use etcd_lease as lease;
/// The generated protobuf messages and gRPC clients (an escape hatch).
pub use etcd_proto as proto;
/// Watches, multiplexed over one stream and resumed after failures (the `etcd-watch` crate).
pub use etcd_watch as watch;
pub use etcd_watch::cache::Cache;
pub use etcd_watch::{GroupEvents, WatchStream};
pub use maintenance::Maintenance;
pub use member_transport::{MemberTransport, TransportBody, TransportService};
pub use tls::Tls;
