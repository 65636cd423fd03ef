//! Member addresses and the connections to them.

use std::time::Duration;

use etcd_core::{Error, InvalidRequest};
use tonic::transport::{Channel, Endpoint};

/// Connection settings shared by every member's connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnectOptions {
    /// How long establishing a connection may take.
    pub(crate) connect_timeout: Duration,
    /// HTTP/2 keep-alive: ping interval and how long to wait for the answer. Pings are only
    /// sent while calls or streams are open, and not more often than every 5 s by default,
    /// as etcd's server refuses faster or idle pings (`too_many_pings`).
    pub(crate) keep_alive: Option<(Duration, Duration)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            keep_alive: Some((Duration::from_secs(30), Duration::from_secs(10))),
        }
    }
}

/// Checks a member address and makes a lazily connecting channel to it: nothing is dialled
/// until the first call, and a member that is down at start does not fail the client.
pub(crate) fn channel(address: &str, options: &ConnectOptions) -> Result<Channel, Error> {
    let invalid = |why: String| Error::InvalidRequest(InvalidRequest::Other(why.into()));
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    if uri.starts_with("https://") {
        return Err(invalid(format!(
            "endpoint {address}: TLS (https://) is not supported by this version yet"
        )));
    }
    if !uri.starts_with("http://") {
        return Err(invalid(format!(
            "endpoint {address}: the scheme must be http:// or https://"
        )));
    }
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| invalid(format!("endpoint {address} is not a valid URL: {e}")))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true);
    if let Some((interval, timeout)) = options.keep_alive {
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(false);
    }
    Ok(endpoint.connect_lazy())
}
