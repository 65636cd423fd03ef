//! Member addresses and the connections to them.

use std::time::Duration;

use etcd_core::Error;
use tonic::transport::Endpoint;

use crate::connector::Connector;
#[cfg(feature = "builtin-http2")]
use crate::http2::H2Channel;
use crate::member_transport::Connection;
use crate::tls::Tls;

/// The environment variable that picks the HTTP/2 implementation of the members when the
/// builder did not (see [`Http2Transport`]).
pub(crate) const HTTP2_VARIABLE: &str = "ETCD_CLIENT_HTTP2";

/// Which HTTP/2 implementation serves the members, plain-text (`http://`) and TLS
/// (`https://`) alike; chosen with
/// [`ClientBuilder::http2_transport`](crate::ClientBuilder::http2_transport) or the
/// `ETCD_CLIENT_HTTP2` environment variable (`builtin` or `tonic`).
///
/// Over TLS, ours runs rustls on the connection itself (the handshake by tokio-rustls,
/// ALPN `h2`, sessions resumed), with the same CA, client identity and server name
/// settings as tonic's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Http2Transport {
    /// HTTP/2 of this crate's own: callers write their frames onto the connection
    /// themselves and one task per connection reads it. The default; needs the
    /// `builtin-http2` feature (on by default), without which choosing it fails the
    /// client's `connect` with [`Error::InvalidRequest`].
    Builtin,
    /// tonic's `Channel` (hyper and h2, with tokio-rustls for TLS): the default when the
    /// `builtin-http2` feature is off.
    Tonic,
}

impl Default for Http2Transport {
    /// [`Builtin`](Self::Builtin) with the `builtin-http2` feature, [`Tonic`](Self::Tonic)
    /// without it.
    fn default() -> Self {
        if cfg!(feature = "builtin-http2") {
            Self::Builtin
        } else {
            Self::Tonic
        }
    }
}

impl Http2Transport {
    /// The transport to use: the builder's choice, else the environment variable's
    /// (`variable` is its value; empty counts as unset), else the default. An unknown
    /// value, or `Builtin` without the `builtin-http2` feature, is an
    /// [`Error::InvalidRequest`].
    pub(crate) fn resolve(chosen: Option<Self>, variable: Option<&str>) -> Result<Self, Error> {
        let invalid = crate::tls::invalid;
        let transport = match (chosen, variable.map(str::trim)) {
            (Some(chosen), _) => chosen,
            (None, None | Some("")) => Self::default(),
            (None, Some(value)) if value.eq_ignore_ascii_case("builtin") => Self::Builtin,
            (None, Some(value)) if value.eq_ignore_ascii_case("tonic") => Self::Tonic,
            (None, Some(value)) => {
                return Err(invalid(format!(
                    "{HTTP2_VARIABLE}={value:?}: expected `builtin` or `tonic`"
                )));
            }
        };
        if transport == Self::Builtin && !cfg!(feature = "builtin-http2") {
            return Err(invalid(
                "the built-in HTTP/2 transport was chosen, but etcd-client was built without \
                 its `builtin-http2` feature: choose Http2Transport::Tonic (or \
                 ETCD_CLIENT_HTTP2=tonic) or enable the feature"
                    .to_owned(),
            ));
        }
        Ok(transport)
    }
}

/// etcd's default `--grpc-keepalive-min-time`: pings more often than this are answered
/// with GOAWAY `too_many_pings`, which closes the connection and every call on it.
pub(crate) const DEFAULT_SERVER_KEEPALIVE_MIN_TIME: Duration = Duration::from_secs(5);

/// Refuses an HTTP/2 keep-alive the servers would punish: an interval below their
/// `--grpc-keepalive-min-time` (the connection would be closed with GOAWAY
/// `too_many_pings` as soon as pings go out, failing every call on it, over and over), or
/// a zero interval or timeout.
pub(crate) fn check_keep_alive(options: &ConnectOptions) -> Result<(), Error> {
    let invalid = crate::tls::invalid;
    let Some((interval, timeout)) = options.keep_alive else {
        return Ok(());
    };
    if interval.is_zero() || timeout.is_zero() {
        return Err(invalid(format!(
            "HTTP/2 keep-alive interval {interval:?} and timeout {timeout:?}: both must be              above zero (use no_keep_alive() for none)"
        )));
    }
    let min = options.server_keepalive_min_time;
    if interval < min {
        return Err(invalid(format!(
            "an HTTP/2 keep-alive every {interval:?} is more often than the servers allow              ({min:?}, etcd's --grpc-keepalive-min-time, 5s unless lowered): etcd would              close the connection with GOAWAY too_many_pings, failing the calls on it. Use              an interval of at least {min:?}, or, if the cluster runs with a lower              --grpc-keepalive-min-time, declare it with              ClientBuilder::server_keepalive_min_time"
        )));
    }
    Ok(())
}

/// Connection settings shared by every member's connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnectOptions {
    /// How long establishing a connection may take.
    pub(crate) connect_timeout: Duration,
    /// HTTP/2 keep-alive: ping interval and how long to wait for the answer. Pings are only
    /// sent while calls or streams are open, as etcd's server refuses idle pings; an
    /// interval below `server_keepalive_min_time` is refused when the client is built
    /// ([`check_keep_alive`]), as etcd answers faster pings with GOAWAY `too_many_pings`.
    pub(crate) keep_alive: Option<(Duration, Duration)>,
    /// The servers' `--grpc-keepalive-min-time`: the shortest keep-alive interval they
    /// accept (etcd's default, 5 s, unless the user declares another).
    pub(crate) server_keepalive_min_time: Duration,
    /// TLS settings for `https://` endpoints (and for endpoints without a scheme).
    pub(crate) tls: Option<Tls>,
    /// The HTTP/2 of `http://` members (resolved when the client is built).
    pub(crate) http2: Http2Transport,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            keep_alive: Some((Duration::from_secs(30), Duration::from_secs(10))),
            server_keepalive_min_time: DEFAULT_SERVER_KEEPALIVE_MIN_TIME,
            tls: None,
            http2: Http2Transport::default(),
        }
    }
}

/// Checks a member address and makes a lazily connecting channel to it: nothing is dialled
/// until the first call, and a member that is down at start does not fail the client.
pub(crate) fn channel(address: &str, options: &ConnectOptions) -> Result<Connection, Error> {
    let invalid = crate::tls::invalid;
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
    #[cfg(feature = "builtin-http2")]
    if options.http2 == Http2Transport::Builtin {
        let uri: http::Uri = uri.parse().map_err(|e| not_a_url(&e))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid(format!("endpoint {address} has no host")))?;
        let authority = if authority.port().is_some() {
            authority
        } else {
            // The scheme's default port, which tonic would use too.
            let port = if https { 443 } else { 80 };
            format!("{authority}:{port}")
                .parse()
                .map_err(|e| invalid(format!("endpoint {address}: {e}")))?
        };
        if !https {
            return Ok(Connection::Direct(H2Channel::new(
                authority,
                options.clone(),
            )));
        }
        #[cfg(feature = "_tls")]
        {
            let tls = options.tls.as_ref().ok_or_else(|| missing_tls(address))?;
            return Ok(Connection::Direct(H2Channel::with_tls(
                authority,
                options.clone(),
                tls.connect_config()?,
            )));
        }
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
    if https {
        // tonic runs TLS over the connector's connections; the handshake gets the connect
        // timeout too.
        endpoint = with_tls(endpoint, address, options)?;
    }
    // The connect timeout is set on the connector, for the TCP connection alone.
    let connector = Connector::new(options.connect_timeout, https);
    Ok(Connection::Tonic(
        endpoint.connect_with_connector_lazy(connector),
    ))
}

/// Sets up TLS for an `https://` endpoint.
#[cfg(feature = "_tls")]
fn with_tls(
    endpoint: Endpoint,
    address: &str,
    options: &ConnectOptions,
) -> Result<Endpoint, Error> {
    let Some(tls) = &options.tls else {
        return Err(missing_tls(address));
    };
    endpoint
        .tls_config(tls.client_config(options.connect_timeout)?)
        .map_err(|e| crate::tls::invalid(format!("endpoint {address}: TLS settings refused: {e}")))
}

/// An `https://` endpoint without TLS settings.
#[cfg(feature = "_tls")]
fn missing_tls(address: &str) -> Error {
    crate::tls::invalid(format!(
        "endpoint {address} uses https:// but no TLS settings were given: add \
         .tls(Tls::new().ca_pem(..)) to the builder (or set ETCDCTL_CACERT for from_env)"
    ))
}

/// Without the `tls` feature, `https://` endpoints are refused.
#[cfg(not(feature = "_tls"))]
fn with_tls(_: Endpoint, address: &str, _: &ConnectOptions) -> Result<Endpoint, Error> {
    Err(crate::tls::invalid(format!(
        "endpoint {address} uses https://, but etcd-client was built without its `tls` feature"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<Http2Transport, Error>) -> String {
        match result {
            Err(Error::InvalidRequest(why)) => why.to_string(),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn the_builder_wins_over_the_variable() {
        let tonic = Http2Transport::resolve(Some(Http2Transport::Tonic), Some("builtin"));
        assert_eq!(tonic.unwrap(), Http2Transport::Tonic);
        // Even over a value that is not understood.
        let tonic = Http2Transport::resolve(Some(Http2Transport::Tonic), Some("h3"));
        assert_eq!(tonic.unwrap(), Http2Transport::Tonic);
    }

    #[test]
    fn the_variable_picks_when_the_builder_did_not() {
        for (value, expected) in [
            ("tonic", Http2Transport::Tonic),
            (" Tonic\n", Http2Transport::Tonic),
            ("", Http2Transport::default()),
            ("  ", Http2Transport::default()),
        ] {
            let resolved = Http2Transport::resolve(None, Some(value));
            assert_eq!(resolved.unwrap(), expected, "{value:?}");
        }
        assert_eq!(
            Http2Transport::resolve(None, None).unwrap(),
            Http2Transport::default()
        );
    }

    #[test]
    fn an_unknown_value_is_refused() {
        let why = refused(Http2Transport::resolve(None, Some("hyper")));
        assert!(why.contains("ETCD_CLIENT_HTTP2"), "{why}");
        assert!(why.contains("\"hyper\""), "{why}");
    }

    #[cfg(feature = "builtin-http2")]
    #[test]
    fn builtin_is_the_default_with_the_feature() {
        assert_eq!(Http2Transport::default(), Http2Transport::Builtin);
        let builtin = Http2Transport::resolve(None, Some("BUILTIN"));
        assert_eq!(builtin.unwrap(), Http2Transport::Builtin);
    }

    #[cfg(not(feature = "builtin-http2"))]
    #[test]
    fn builtin_is_refused_without_the_feature() {
        assert_eq!(Http2Transport::default(), Http2Transport::Tonic);
        let why = refused(Http2Transport::resolve(Some(Http2Transport::Builtin), None));
        assert!(why.contains("builtin-http2"), "{why}");
        let why = refused(Http2Transport::resolve(None, Some("builtin")));
        assert!(why.contains("builtin-http2"), "{why}");
    }

    #[tokio::test]
    async fn plain_text_members_get_the_chosen_transport() {
        let tonic = ConnectOptions {
            http2: Http2Transport::Tonic,
            ..ConnectOptions::default()
        };
        let link = channel("http://127.0.0.1:2379", &tonic).unwrap();
        assert!(matches!(link, Connection::Tonic(_)), "{link:?}");
        #[cfg(feature = "builtin-http2")]
        {
            let link = channel("127.0.0.1:2379", &ConnectOptions::default()).unwrap();
            assert!(matches!(link, Connection::Direct(_)), "{link:?}");
        }
    }
}
