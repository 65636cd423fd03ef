//! etcd v3 leases: grant them, and keep many of them alive over one stream.
//!
//! [`Lessor`] grants, revokes, inspects and lists leases over any tower service that
//! implements [`LeaseService`] and [`LeaseKeepAliveService`] (etcd-core's
//! [`GrpcLease`](etcd_core::grpc::GrpcLease) over a tonic channel, a failover service over
//! several members, or your own stack). [`Lessor::keep_alive`] returns a [`KeepAlive`]
//! handle; one background task renews every lease of the lessor over a single
//! `LeaseKeepAlive` stream, at TTL/3 or at a chosen interval, reopens the stream when it
//! breaks or stalls, and tells each handle honestly when its lease is lost:
//!
//! * [`LossReason::NotFound`] / [`LossReason::Revoked`]: the server said the lease is gone;
//! * [`LossReason::Expired`]: no renewal was acknowledged in time (the send time of the
//!   last acknowledged renewal + TTL passed), so the lease *may* be gone. See
//!   [`LossReason::is_known_gone`].
//!
//! # Example
//!
//! Grant a lease, attach a key, keep it alive, and watch for its loss:
//!
//! ```no_run
//! use std::time::Duration;
//! use etcd_core::{Kv, grpc::{GrpcKv, GrpcLease}};
//! use etcd_lease::Lessor;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:2379").connect_lazy();
//! let kv = Kv::new(GrpcKv::new(channel.clone()));
//! let lessor = Lessor::new(GrpcLease::new(channel));
//!
//! let lease = lessor.grant(Duration::from_secs(10)).await?;
//! kv.put("service/a", "10.0.0.1:80").lease(lease.id()).await?;
//!
//! let keeper = lessor.keep_alive(lease.id()).await?; // renewed every TTL/3 from now on
//! let why = keeper.lost().await;                      // resolves only if the lease is lost
//! if why.is_known_gone() {
//!     println!("lease gone: {why}");
//! } else {
//!     println!("lease possibly expired while unreachable: {why}");
//! }
//! # Ok(()) }
//! ```
//!
//! For short-lived ownership, [`KeepAlive::revoke_on_drop`] turns the handle into a
//! [`LeaseGuard`] that revokes the lease (deleting its keys) when dropped or closed.

mod error;
mod handle;
mod keep_alive;
mod lessor;
mod response;

pub use error::{Error, Result};
pub use etcd_core::lease::LossReason;
pub use etcd_core::lease::{LeaseKeepAliveService, LeaseService};
pub use handle::{KeepAlive, LeaseGuard};
pub use keep_alive::KeepAliveConfig;
pub use lessor::{Grant, KeepAliveBuilder, Lessor, MAX_TTL_SECS, TimeToLive};
pub use response::{KeepAliveResponse, Lease, LeasesResponse, RevokeResponse, TimeToLiveResponse};
