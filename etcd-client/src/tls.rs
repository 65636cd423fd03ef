//! TLS settings for `https://` endpoints: trusted CA, client certificate (mTLS) and the
//! name the server's certificate is checked against.

use std::fmt;

use bytes::Bytes;
use etcd_core::{Error, InvalidRequest};

/// TLS settings for a client, given to [`ClientBuilder::tls`](crate::ClientBuilder::tls).
///
/// TLS runs on rustls, through the default `tls` cargo feature (the `ring` crypto provider;
/// `tls-aws-lc` picks aws-lc-rs instead). The server's certificate is always verified,
/// against the CA certificates given here, and against the operating system's roots
/// (`native_roots`, feature `tls-native-roots`) or Mozilla's
/// (`webpki_roots`, feature `tls-webpki-roots`) when asked;
/// verification cannot be turned off.
///
/// ```no_run
/// # async fn example() -> etcd3::Result<()> {
/// use etcd3::{Client, Tls};
/// let ca = std::fs::read("ca.pem").unwrap();
/// let (cert, key) = (std::fs::read("client.pem").unwrap(), std::fs::read("client-key.pem").unwrap());
/// let client = Client::builder(["https://10.0.0.1:2379", "https://10.0.0.2:2379"])
///     .tls(Tls::new().ca_pem(ca).identity_pem(cert, key))
///     .connect()
///     .await?;
/// # let _ = client; Ok(()) }
/// ```
///
/// With TLS settings, an endpoint given without a scheme (`10.0.0.1:2379`) uses
/// `https://`; one given with `http://` stays plain text.
///
/// Connecting fails fast, with [`Error::Transport`] whose message names the TLS problem
/// and whose `applied` is [`Applied::No`](crate::Applied::No), when the server's
/// certificate is not signed by the CA given here or does not name the server, when the
/// server requires a client certificate and none (or an untrusted one) was given, and
/// when the server does not speak TLS. The TLS handshake gets the builder's connect
/// timeout.
#[derive(Clone, Default)]
pub struct Tls {
    ca: Vec<Bytes>,
    identity: Option<(Bytes, Bytes)>,
    server_name: Option<String>,
    native_roots: bool,
    webpki_roots: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca_pems", &self.ca.len())
            .field(
                "identity",
                &self
                    .identity
                    .as_ref()
                    .map(|_| "certificate and key (redacted)"),
            )
            .field("server_name", &self.server_name)
            .field("native_roots", &self.native_roots)
            .field("webpki_roots", &self.webpki_roots)
            .finish()
    }
}

impl Tls {
    /// Empty settings; add at least one CA with [`ca_pem`](Self::ca_pem).
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE` blocks) to sign the
    /// servers' certificates. May be called more than once; each adds.
    pub fn ca_pem(mut self, pem: impl Into<Bytes>) -> Self {
        self.ca.push(pem.into());
        self
    }

    /// Presents this client certificate (a PEM chain, leaf first) and its private key (PEM:
    /// PKCS#8, PKCS#1 or SEC1) to servers that ask for one (etcd's `--client-cert-auth`).
    /// The key never appears in `Debug` output.
    pub fn identity_pem(mut self, cert: impl Into<Bytes>, key: impl Into<Bytes>) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    /// Checks the servers' certificates against this DNS name (or IP address) instead of
    /// the host of each endpoint, and sends it as SNI: for endpoints given by IP address
    /// whose certificates only name a host, such as `https://10.0.0.1:2379` with a
    /// certificate for `etcd.example.com`.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Trusts the operating system's root certificates as well (read when the client
    /// connects; `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured): for servers whose
    /// certificates a public or company CA signed.
    #[cfg(feature = "tls-native-roots")]
    pub fn native_roots(mut self) -> Self {
        self.native_roots = true;
        self
    }

    /// Trusts Mozilla's root certificates as well, compiled into the program (the
    /// `webpki-roots` crate): the same roots on every machine.
    #[cfg(feature = "tls-webpki-roots")]
    pub fn webpki_roots(mut self) -> Self {
        self.webpki_roots = true;
        self
    }

    /// Whether any roots beyond the given CA certificates are trusted.
    #[cfg(feature = "_tls")]
    fn any_roots(&self) -> bool {
        self.native_roots || self.webpki_roots
    }

    /// Checks the settings: some roots to trust, PEM that parses, a valid server name.
    /// Both transports' configurations are made only from settings that passed.
    #[cfg(feature = "_tls")]
    fn check(&self) -> Result<(), Error> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

        let certificates = |what: &str, pem: &[u8]| -> Result<(), Error> {
            let count = CertificateDer::pem_slice_iter(pem)
                .try_fold(0usize, |n, cert| cert.map(|_| n + 1))
                .map_err(|e| invalid(format!("TLS {what}: not a valid PEM file ({e})")))?;
            if count == 0 {
                return Err(invalid(format!(
                    "TLS {what}: no PEM certificate (-----BEGIN CERTIFICATE-----) found"
                )));
            }
            Ok(())
        };

        if self.ca.is_empty() && !self.any_roots() {
            return Err(invalid(
                "TLS settings without a CA certificate: add the CA that signed the servers' \
                 certificates with Tls::ca_pem, or trust the system's roots with \
                 Tls::native_roots (feature tls-native-roots)"
                    .into(),
            ));
        }
        for pem in &self.ca {
            certificates("CA certificate", pem)?;
        }
        if let Some((cert, key)) = &self.identity {
            certificates("client certificate", cert)?;
            PrivateKeyDer::from_pem_slice(key).map_err(|e| {
                invalid(format!(
                    "TLS client key: no PEM private key (PKCS#8, PKCS#1 or SEC1) found ({e})"
                ))
            })?;
        }
        if let Some(name) = &self.server_name {
            ServerName::try_from(name.as_str()).map_err(|e| {
                invalid(format!(
                    "TLS server name {name:?} is neither a DNS name nor an IP address ({e})"
                ))
            })?;
        }
        Ok(())
    }

    /// Checks the settings, and turns them into tonic's TLS configuration.
    #[cfg(feature = "_tls")]
    pub(crate) fn client_config(
        &self,
        handshake_timeout: std::time::Duration,
    ) -> Result<tonic::transport::ClientTlsConfig, Error> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};

        self.check()?;
        let mut config = ClientTlsConfig::new()
            .timeout(handshake_timeout)
            // etcd always speaks HTTP/2; do not insist on ALPN.
            .assume_http2(true);
        #[cfg(feature = "tls-native-roots")]
        if self.native_roots {
            config = config.with_native_roots();
        }
        #[cfg(feature = "tls-webpki-roots")]
        if self.webpki_roots {
            config = config.with_webpki_roots();
        }
        for pem in &self.ca {
            config = config.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        Ok(config)
    }
}

/// What our own HTTP/2 connections need for TLS: rustls' client settings (ALPN `h2`; kept
/// for the client's life, so sessions resume) and the name to check certificates against.
#[cfg(all(feature = "_tls", feature = "builtin-http2"))]
#[derive(Clone)]
pub(crate) struct TlsConnect {
    pub(crate) config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
    /// The server name override, if any (else each endpoint's host).
    pub(crate) server_name: Option<rustls_pki_types::ServerName<'static>>,
}

#[cfg(all(feature = "_tls", feature = "builtin-http2"))]
impl fmt::Debug for TlsConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnect")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

#[cfg(all(feature = "_tls", feature = "builtin-http2"))]
impl Tls {
    /// Checks the settings, and turns them into rustls' client settings for our own
    /// HTTP/2 connections: the same roots, client identity and server name as
    /// [`client_config`](Self::client_config) gives tonic.
    pub(crate) fn connect_config(&self) -> Result<TlsConnect, Error> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio_rustls::rustls::{ClientConfig, RootCertStore};

        // The same checks and messages as tonic's settings.
        self.check()?;
        let mut roots = RootCertStore::empty();
        for pem in &self.ca {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| invalid(format!("TLS CA certificate: not valid PEM ({e})")))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("TLS CA certificate refused: {e}")))?;
            }
        }
        #[cfg(feature = "tls-native-roots")]
        if self.native_roots {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "reading the system's root certificates");
            }
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
        }
        #[cfg(feature = "tls-webpki-roots")]
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let builder = ClientConfig::builder_with_provider(std::sync::Arc::new(crypto_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS settings refused: {e}")))?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(format!("TLS client certificate: not valid PEM ({e})")))?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
                    invalid(format!(
                        "TLS client key: no PEM private key (PKCS#8, PKCS#1 or SEC1) found ({e})"
                    ))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid(format!("TLS client certificate or key refused: {e}")))?
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let server_name = match &self.server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|e| {
                invalid(format!(
                    "TLS server name {name:?} is neither a DNS name nor an IP address ({e})"
                ))
            })?),
        };
        Ok(TlsConnect {
            config: std::sync::Arc::new(config),
            server_name,
        })
    }
}

/// The crypto provider the features pick: aws-lc-rs when `tls-aws-lc` is on, else ring.
#[cfg(all(feature = "_tls", feature = "builtin-http2"))]
fn crypto_provider() -> tokio_rustls::rustls::crypto::CryptoProvider {
    #[cfg(feature = "tls-aws-lc")]
    return tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "tls-ring", not(feature = "tls-aws-lc")))]
    return tokio_rustls::rustls::crypto::ring::default_provider();
}

pub(crate) fn invalid(why: String) -> Error {
    Error::InvalidRequest(InvalidRequest::Other(why.into()))
}

#[cfg(all(test, feature = "_tls"))]
mod tests {
    use super::*;
    use std::time::Duration;

    const NOT_PEM: &str = "hello";

    fn message(e: Error) -> String {
        match e {
            Error::InvalidRequest(InvalidRequest::Other(m)) => m.into_owned(),
            other => panic!("not an InvalidRequest: {other:?}"),
        }
    }

    #[test]
    fn a_ca_is_required() {
        let e = Tls::new()
            .client_config(Duration::from_secs(1))
            .unwrap_err();
        assert!(message(e).contains("without a CA"));
    }

    #[test]
    fn a_ca_that_is_not_pem_is_refused() {
        let e = Tls::new()
            .ca_pem(NOT_PEM)
            .client_config(Duration::from_secs(1))
            .unwrap_err();
        assert!(message(e).contains("CA certificate"));
    }

    #[cfg(feature = "tls-webpki-roots")]
    #[test]
    fn roots_stand_in_for_a_ca() {
        assert!(
            Tls::new()
                .webpki_roots()
                .client_config(Duration::from_secs(1))
                .is_ok()
        );
    }

    #[cfg(feature = "tls-native-roots")]
    #[test]
    fn the_systems_roots_stand_in_for_a_ca() {
        assert!(
            Tls::new()
                .native_roots()
                .client_config(Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let tls = Tls::new().identity_pem("CERT", "SECRET-KEY");
        let text = format!("{tls:?}");
        assert!(!text.contains("SECRET-KEY"), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }
}
