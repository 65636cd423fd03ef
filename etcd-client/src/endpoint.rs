//! Member addresses and the connections to them.

use std::time::Duration;

use etcd_core::{Error, InvalidRequest};
use tonic::transport::{Channel, Endpoint};

use crate::connector::Connector;
use crate::http2::H2Channel;
use crate::tls::Tls;

/// Connection settings shared by every member's connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnectOptions {
    /// How long establishing a connection may take.
    pub(crate) connect_timeout: Duration,
    /// HTTP/2 keep-alive: ping interval and how long to wait for the answer. Pings are only
    /// sent while calls or streams are open, and not more often than every 5 s by default,
    /// as etcd's server refuses faster or idle pings (`too_many_pings`).
    pub(crate) keep_alive: Option<(Duration, Duration)>,
    /// TLS settings for `https://` endpoints (and for endpoints without a scheme).
    pub(crate) tls: Option<Tls>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            keep_alive: Some((Duration::from_secs(30), Duration::from_secs(10))),
            tls: None,
        }
    }
}

/// A member's connection: the direct HTTP/2 channel for `http://` members, tonic's channel
/// (which runs TLS) for `https://` ones.
#[derive(Clone, Debug)]
pub(crate) enum Link {
    /// Plain text, calls written straight onto the HTTP/2 connection.
    Direct(H2Channel),
    /// TLS, through tonic's channel.
    Tonic(Channel),
}

/// Checks a member address and makes a lazily connecting channel to it: nothing is dialled
/// until the first call, and a member that is down at start does not fail the client.
pub(crate) fn channel(address: &str, options: &ConnectOptions) -> Result<Link, Error> {
    let invalid = |why: String| Error::InvalidRequest(InvalidRequest::Other(why.into()));
    let uri = if address.contains("://") {
        address.to_owned()
    } else if options.tls.is_some() {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    };
    let https = uri.starts_with("https://");
    if !https && !uri.starts_with("http://") {
        return Err(invalid(format!(
            "endpoint {address}: the scheme must be http:// or https://"
        )));
    }
    let not_a_url =
        |e: &dyn std::fmt::Display| invalid(format!("endpoint {address} is not a valid URL: {e}"));
    if !https {
        let uri: http::Uri = uri.parse().map_err(|e| not_a_url(&e))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid(format!("endpoint {address} has no host")))?;
        let authority = if authority.port().is_some() {
            authority
        } else {
            // The HTTP default port, which tonic would use too.
            format!("{authority}:80")
                .parse()
                .map_err(|e| invalid(format!("endpoint {address}: {e}")))?
        };
        return Ok(Link::Direct(H2Channel::new(authority, options.clone())));
    }
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| not_a_url(&e))?
        .tcp_nodelay(true);
    if let Some((interval, timeout)) = options.keep_alive {
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(false);
    }
    // tonic runs TLS over the connector's connections; the handshake gets the connect
    // timeout too.
    endpoint = with_tls(endpoint, address, options)?;
    // The connect timeout is set on the connector, for the TCP connection alone.
    let connector = Connector::new(options.connect_timeout, https);
    Ok(Link::Tonic(endpoint.connect_with_connector_lazy(connector)))
}

/// Sets up TLS for an `https://` endpoint.
#[cfg(feature = "tls")]
fn with_tls(
    endpoint: Endpoint,
    address: &str,
    options: &ConnectOptions,
) -> Result<Endpoint, Error> {
    let Some(tls) = &options.tls else {
        return Err(crate::tls::invalid(format!(
            "endpoint {address} uses https:// but no TLS settings were given: add \
             .tls(Tls::new().ca_pem(..)) to the builder (or set ETCDCTL_CACERT for from_env)"
        )));
    };
    endpoint
        .tls_config(tls.client_config(options.connect_timeout)?)
        .map_err(|e| crate::tls::invalid(format!("endpoint {address}: TLS settings refused: {e}")))
}

/// Without the `tls` feature, `https://` endpoints are refused.
#[cfg(not(feature = "tls"))]
fn with_tls(_: Endpoint, address: &str, _: &ConnectOptions) -> Result<Endpoint, Error> {
    Err(crate::tls::invalid(format!(
        "endpoint {address} uses https://, but etcd-client was built without its `tls` feature"
    )))
}
