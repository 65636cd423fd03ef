//! Service discovery: instances register under a service's prefix, clients follow them as a
//! [`tower::discover::Discover`].
//!
//! An instance of service `services/greeter` registers as the key
//! `services/greeter/{name}` holding its [`Endpoint`] as JSON, attached to a lease the
//! client keeps alive ([`Client::register`](crate::Client::register)); the key vanishes
//! when the instance closes its [`Registration`], drops it, or dies (after the lease's
//! TTL). [`Client::discover`](crate::Client::discover) follows the prefix as a stream of
//! [`Change`]s, which tower's balancers and tonic's
//! `Channel::balance_channel` take.
//!
//! Keys and values are those of the Go client's `naming/endpoints` (its `endpoints.Manager`
//! writes `{"Op":0,"Addr":"…","Metadata":…}` under `{target}/{key}`, its gRPC resolver
//! watches `{target}/`), so Go and Rust services find each other.
//!
//! ```no_run
//! use etcd3::Client;
//! use etcd3::discovery::Endpoint;
//! use etcd3::discovery::Change;
//! use futures_util::TryStreamExt;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect(["http://127.0.0.1:2379"]).await?;
//!
//! // In each instance of the service:
//! let registration = client
//!     .register("services/greeter", "instance-1", Endpoint::new("10.0.0.1:50051"))
//!     .await?;
//!
//! // In its clients: tonic endpoints fed to a balanced channel.
//! let (channel, updates) = tonic::transport::Channel::balance_channel::<String>(16);
//! let mut instances = client.discover("services/greeter").await?;
//! tokio::spawn(async move {
//!     while let Some(change) = instances.try_next().await? {
//!         // tonic's channel takes its own `Change` of tonic endpoints.
//!         use tonic::transport::channel::Change as ChannelChange;
//!         let change = match change {
//!             Change::Insert(key, endpoint) => {
//!                 let uri = format!("http://{}", endpoint.addr);
//!                 ChannelChange::Insert(key, tonic::transport::Endpoint::from_shared(uri)?)
//!             }
//!             Change::Remove(key) => ChannelChange::Remove(key),
//!         };
//!         if updates.send(change).await.is_err() {
//!             break; // the channel is gone
//!         }
//!     }
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! });
//! # let _ = channel;
//! registration.close().await?; // deregisters at once
//! # Ok(()) }
//! ```

mod discover;
mod endpoint;
mod register;

pub use discover::Discovery;
pub use endpoint::{Endpoint, ParseError};
pub use register::{DEFAULT_TTL, Register, Registration};
/// What a [`Discovery`] stream reports (tower's type, re-exported).
pub use tower::discover::Change;

use bytes::Bytes;

use crate::{Error, InvalidRequest, Result};

/// The prefix a service's instances register under: `{service}/`.
pub(crate) fn service_prefix(service: &str) -> Result<String> {
    let service = service.strip_suffix('/').unwrap_or(service);
    if service.is_empty() {
        return Err(Error::InvalidRequest(InvalidRequest::Other(
            "a service name must not be empty".into(),
        )));
    }
    Ok(format!("{service}/"))
}

/// An instance's key: `{service}/{name}`.
pub(crate) fn instance_key(service: &str, name: &str) -> Result<Bytes> {
    if name.is_empty() {
        return Err(Error::InvalidRequest(InvalidRequest::Other(
            "an instance name must not be empty".into(),
        )));
    }
    Ok(format!("{}{name}", service_prefix(service)?).into())
}
