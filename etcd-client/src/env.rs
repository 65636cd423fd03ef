//! Client settings from etcdctl's environment variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_core::{Error, InvalidRequest, Result};

use crate::client::{Client, ClientBuilder};
use crate::tls::Tls;

/// etcdctl's default endpoint. It has no scheme, so it is `https://` when TLS settings are
/// given and `http://` otherwise, as with etcdctl.
const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";

/// What etcdctl's variables say, parsed but not yet acted on (no file read).
#[derive(Clone, Default, PartialEq, Eq)]
struct EnvSettings {
    endpoints: Vec<String>,
    ca: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
    dial_timeout: Option<Duration>,
    command_timeout: Option<Duration>,
    keep_alive_time: Option<Duration>,
    keep_alive_timeout: Option<Duration>,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for EnvSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSettings")
            .field("endpoints", &self.endpoints)
            .field("ca", &self.ca)
            .field("identity", &self.identity)
            .field("dial_timeout", &self.dial_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("keep_alive_time", &self.keep_alive_time)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
            .field(
                "user",
                &self.credentials.as_ref().map(|(user, _)| user.as_str()),
            )
            .finish()
    }
}

fn invalid(variable: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(InvalidRequest::Other(format!("{variable}: {why}").into()))
}

/// Reads etcdctl's variables through `lookup` (a variable's value, or `None` when it is
/// unset). Empty values count as unset, as with etcdctl.
fn parse(lookup: &dyn Fn(&str) -> Option<String>) -> Result<EnvSettings> {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let duration = |name: &str| -> Result<Option<Duration>> {
        get(name)
            .map(|v| parse_go_duration(v.trim()).map_err(|why| invalid(name, why)))
            .transpose()
    };

    for unsupported in ["ETCDCTL_DISCOVERY_SRV", "ETCDCTL_DISCOVERY_SRV_NAME"] {
        if get(unsupported).is_some() {
            return Err(invalid(
                unsupported,
                "DNS SRV discovery is not supported: list the members in ETCDCTL_ENDPOINTS",
            ));
        }
    }
    if let Some(skip) = get("ETCDCTL_INSECURE_SKIP_TLS_VERIFY") {
        let name = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY";
        if parse_go_bool(skip.trim()).ok_or_else(|| invalid(name, "not a boolean"))? {
            return Err(invalid(
                name,
                "skipping the verification of servers' certificates is not supported: give \
                 the CA that signed them in ETCDCTL_CACERT",
            ));
        }
    }

    let endpoints = match get("ETCDCTL_ENDPOINTS") {
        Some(list) => {
            let endpoints: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            if endpoints.is_empty() {
                return Err(invalid("ETCDCTL_ENDPOINTS", "no endpoint in the list"));
            }
            endpoints
        }
        None => vec![DEFAULT_ENDPOINT.to_owned()],
    };

    let identity = match (get("ETCDCTL_CERT"), get("ETCDCTL_KEY")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "ETCDCTL_KEY",
                "ETCDCTL_CERT is set but its key is not",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "ETCDCTL_CERT",
                "ETCDCTL_KEY is set but its certificate is not",
            ));
        }
    };
    let ca = get("ETCDCTL_CACERT").map(PathBuf::from);
    if ca.is_none() && identity.is_some() {
        return Err(invalid(
            "ETCDCTL_CACERT",
            "a client certificate is set but no CA: the system's roots are not used, so \
             name the CA that signed the servers' certificates",
        ));
    }

    let credentials = match (get("ETCDCTL_USER"), lookup("ETCDCTL_PASSWORD")) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "ETCDCTL_USER",
                "ETCDCTL_PASSWORD is set but no user name",
            ));
        }
        // etcdctl's `--user name:password`; a separate password wins.
        (Some(user), password) => match (user.split_once(':'), password) {
            (_, Some(password)) => Some((user, password)),
            (Some((name, password)), None) => Some((name.to_owned(), password.to_owned())),
            (None, None) => {
                return Err(invalid(
                    "ETCDCTL_PASSWORD",
                    "ETCDCTL_USER has no password (set ETCDCTL_PASSWORD, or ETCDCTL_USER \
                     as name:password)",
                ));
            }
        },
    };

    Ok(EnvSettings {
        endpoints,
        ca,
        identity,
        dial_timeout: duration("ETCDCTL_DIAL_TIMEOUT")?,
        command_timeout: duration("ETCDCTL_COMMAND_TIMEOUT")?,
        keep_alive_time: duration("ETCDCTL_KEEPALIVE_TIME")?,
        keep_alive_timeout: duration("ETCDCTL_KEEPALIVE_TIMEOUT")?,
        credentials,
    })
}

fn read(variable: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| invalid(variable, format!("cannot read {}: {e}", path.display())))
}

impl EnvSettings {
    /// Reads the files named and makes the builder.
    fn into_builder(self) -> Result<ClientBuilder> {
        let mut builder = Client::builder(&self.endpoints);
        if let Some(ca) = &self.ca {
            let mut tls = Tls::new().ca_pem(read("ETCDCTL_CACERT", ca)?);
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity_pem(read("ETCDCTL_CERT", cert)?, read("ETCDCTL_KEY", key)?);
            }
            builder = builder.tls(tls);
        }
        if let Some(timeout) = self.dial_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = self.command_timeout {
            builder = builder.request_timeout(timeout);
        }
        if self.keep_alive_time.is_some() || self.keep_alive_timeout.is_some() {
            // The builder's defaults for whichever is not set.
            builder = builder.keep_alive(
                self.keep_alive_time.unwrap_or(Duration::from_secs(30)),
                self.keep_alive_timeout.unwrap_or(Duration::from_secs(10)),
            );
        }
        if let Some((user, password)) = self.credentials {
            builder = builder.credentials(user, password);
        }
        Ok(builder)
    }
}

impl ClientBuilder {
    /// Settings from etcdctl's environment variables, to adjust further before
    /// [`connect`](ClientBuilder::connect):
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `ETCDCTL_ENDPOINTS` | comma-separated members; default `127.0.0.1:2379` (`https://` with TLS settings, else `http://`) |
    /// | `ETCDCTL_CACERT` | PEM file of the CA that signed the servers' certificates; turns TLS on |
    /// | `ETCDCTL_CERT`, `ETCDCTL_KEY` | PEM files of a client certificate and its key (mTLS); both or neither, and only with `ETCDCTL_CACERT` |
    /// | `ETCDCTL_USER`, `ETCDCTL_PASSWORD` | credentials; `ETCDCTL_USER` may also be `name:password` |
    /// | `ETCDCTL_DIAL_TIMEOUT` | connect timeout, a Go duration such as `2s` or `500ms` |
    /// | `ETCDCTL_COMMAND_TIMEOUT` | request timeout, a Go duration |
    /// | `ETCDCTL_KEEPALIVE_TIME`, `ETCDCTL_KEEPALIVE_TIMEOUT` | HTTP/2 keep-alive interval and timeout, Go durations; an interval below 5 s needs [`server_keepalive_min_time`](ClientBuilder::server_keepalive_min_time) on the builder, else `connect` fails |
    /// | `ETCDCTL_INSECURE_SKIP_TLS_VERIFY` | refused when true: certificates are always verified |
    /// | `ETCDCTL_DISCOVERY_SRV` | refused: not supported |
    ///
    /// Empty variables count as unset; others are ignored. A bad value fails with
    /// [`Error::InvalidRequest`] naming the variable, as does a file that cannot be read.
    pub fn from_env() -> Result<ClientBuilder> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading the variables through `lookup` instead
    /// of the process environment (`None` for an unset variable).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ClientBuilder> {
        parse(&lookup)?.into_builder()
    }
}

impl Client {
    /// Connects with the settings of etcdctl's environment variables (`ETCDCTL_ENDPOINTS`,
    /// `ETCDCTL_CACERT`, `ETCDCTL_CERT`, `ETCDCTL_KEY`, `ETCDCTL_USER`,
    /// `ETCDCTL_PASSWORD`, `ETCDCTL_DIAL_TIMEOUT`, ...); see [`ClientBuilder::from_env`].
    ///
    /// ```no_run
    /// # async fn example() -> etcd3::Result<()> {
    /// // ETCDCTL_ENDPOINTS=https://10.0.0.1:2379 ETCDCTL_CACERT=/etc/etcd/ca.pem ...
    /// let client = etcd3::Client::from_env().await?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub async fn from_env() -> Result<Client> {
        ClientBuilder::from_env()?.connect().await
    }
}

/// `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `time.ParseDuration` for durations that are not negative: `300ms`, `1.5s`, `2m30s`,
/// `0`. Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`.
fn parse_go_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 2s, 500ms or 1m30s");
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: u128 = 0;
    let mut rest = rest;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?} has a number without a unit (such as s or ms)"))?;
        let (number, after) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let digits = |d: &str| -> std::result::Result<u128, String> {
            if d.is_empty() {
                Ok(0)
            } else {
                d.parse().map_err(|_| bad())
            }
        };
        // Digits beyond nanoseconds are dropped, as Go does.
        let fraction = &fraction[..fraction.len().min(18)];
        let scale = 10u128.pow(fraction.len() as u32);
        let whole = digits(whole)?.checked_mul(unit_nanos).ok_or_else(bad)?;
        let fraction = digits(fraction)? * unit_nanos / scale;
        nanos = nanos
            .checked_add(whole)
            .and_then(|n| n.checked_add(fraction))
            .ok_or_else(bad)?;
        rest = after;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<EnvSettings> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&move |name| vars.get(name).cloned())
    }

    fn error(vars: &[(&str, &str)]) -> String {
        match from(vars) {
            Err(Error::InvalidRequest(InvalidRequest::Other(m))) => m.into_owned(),
            other => panic!("{vars:?}: not an InvalidRequest: {other:?}"),
        }
    }

    #[test]
    fn nothing_set_means_etcdctl_defaults() {
        let settings = from(&[]).unwrap();
        assert_eq!(settings.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(
            settings,
            EnvSettings {
                endpoints: vec!["127.0.0.1:2379".into()],
                ..EnvSettings::default()
            }
        );
    }

    #[test]
    fn every_variable_is_read() {
        let settings = from(&[
            (
                "ETCDCTL_ENDPOINTS",
                " https://10.0.0.1:2379, https://10.0.0.2:2379 ,,",
            ),
            ("ETCDCTL_CACERT", "/etc/etcd/ca.pem"),
            ("ETCDCTL_CERT", "/etc/etcd/client.pem"),
            ("ETCDCTL_KEY", "/etc/etcd/client-key.pem"),
            ("ETCDCTL_DIAL_TIMEOUT", "2s"),
            ("ETCDCTL_COMMAND_TIMEOUT", "1m30s"),
            ("ETCDCTL_KEEPALIVE_TIME", "500ms"),
            ("ETCDCTL_KEEPALIVE_TIMEOUT", "1.5s"),
            ("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "false"),
            ("ETCDCTL_USER", "app"),
            ("ETCDCTL_PASSWORD", "s3:cret"),
        ])
        .unwrap();
        assert_eq!(
            settings,
            EnvSettings {
                endpoints: vec![
                    "https://10.0.0.1:2379".into(),
                    "https://10.0.0.2:2379".into()
                ],
                ca: Some("/etc/etcd/ca.pem".into()),
                identity: Some((
                    "/etc/etcd/client.pem".into(),
                    "/etc/etcd/client-key.pem".into()
                )),
                dial_timeout: Some(Duration::from_secs(2)),
                command_timeout: Some(Duration::from_secs(90)),
                keep_alive_time: Some(Duration::from_millis(500)),
                keep_alive_timeout: Some(Duration::from_millis(1500)),
                credentials: Some(("app".into(), "s3:cret".into())),
            }
        );
        assert!(!format!("{settings:?}").contains("s3:cret"));
    }

    #[test]
    fn a_user_may_carry_its_password() {
        let settings = from(&[("ETCDCTL_USER", "root:pa:ss")]).unwrap();
        assert_eq!(settings.credentials, Some(("root".into(), "pa:ss".into())));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (vars, variable) in [
            (&[("ETCDCTL_DIAL_TIMEOUT", "2")][..], "ETCDCTL_DIAL_TIMEOUT"),
            (
                &[("ETCDCTL_DIAL_TIMEOUT", "two seconds")],
                "ETCDCTL_DIAL_TIMEOUT",
            ),
            (
                &[("ETCDCTL_KEEPALIVE_TIME", "-1s")],
                "ETCDCTL_KEEPALIVE_TIME",
            ),
            (
                &[("ETCDCTL_KEEPALIVE_TIMEOUT", "5d")],
                "ETCDCTL_KEEPALIVE_TIMEOUT",
            ),
            (
                &[("ETCDCTL_COMMAND_TIMEOUT", "1.2.3s")],
                "ETCDCTL_COMMAND_TIMEOUT",
            ),
            (&[("ETCDCTL_ENDPOINTS", " , ")], "ETCDCTL_ENDPOINTS"),
            (
                &[("ETCDCTL_CERT", "c.pem"), ("ETCDCTL_CACERT", "ca.pem")],
                "ETCDCTL_KEY",
            ),
            (
                &[("ETCDCTL_KEY", "k.pem"), ("ETCDCTL_CACERT", "ca.pem")],
                "ETCDCTL_CERT",
            ),
            (
                &[("ETCDCTL_CERT", "c.pem"), ("ETCDCTL_KEY", "k.pem")],
                "ETCDCTL_CACERT",
            ),
            (&[("ETCDCTL_USER", "root")], "ETCDCTL_PASSWORD"),
            (&[("ETCDCTL_PASSWORD", "x")], "ETCDCTL_USER"),
            (
                &[("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true")],
                "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
            ),
            (
                &[("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "yes")],
                "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
            ),
            (
                &[("ETCDCTL_DISCOVERY_SRV", "example.com")],
                "ETCDCTL_DISCOVERY_SRV",
            ),
        ] {
            let message = error(vars);
            assert!(message.starts_with(variable), "{vars:?}: {message}");
        }
    }

    #[test]
    fn files_that_cannot_be_read_name_their_variable() {
        let missing = std::env::temp_dir().join("etcd-client-no-such-ca.pem");
        let lookup =
            |name: &str| (name == "ETCDCTL_CACERT").then(|| missing.to_string_lossy().into_owned());
        match ClientBuilder::from_lookup(lookup) {
            Err(Error::InvalidRequest(InvalidRequest::Other(m))) => {
                assert!(m.starts_with("ETCDCTL_CACERT: cannot read"), "{m}")
            }
            other => panic!("not an InvalidRequest: {other:?}"),
        }
    }

    #[test]
    fn go_durations() {
        for (text, expected) in [
            ("0", Duration::ZERO),
            ("2s", Duration::from_secs(2)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m30s", Duration::from_secs(90)),
            ("1h", Duration::from_secs(3600)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("100ns", Duration::from_nanos(100)),
            ("+3s", Duration::from_secs(3)),
        ] {
            assert_eq!(parse_go_duration(text), Ok(expected), "{text}");
        }
        for text in ["", "s", "3", "3x", "-1s", "1..5s", "ms5"] {
            assert!(parse_go_duration(text).is_err(), "{text}");
        }
    }
}
