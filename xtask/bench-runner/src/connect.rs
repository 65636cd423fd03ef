//! Connecting both clients to the bench's etcd: plain text, or TLS when `cargo xtask bench
//! --tls` names the throwaway CA that signed the server's certificate in `BENCH_TLS_CA`
//! (children inherit it).

/// The environment variable naming the CA certificate (PEM) of a TLS run.
pub(crate) const TLS_CA_VARIABLE: &str = "BENCH_TLS_CA";

/// The CA certificate of a TLS run; `None` for plain text.
pub(crate) fn tls_ca() -> Option<Vec<u8>> {
    let path = std::env::var_os(TLS_CA_VARIABLE)?;
    match std::fs::read(&path) {
        Ok(pem) => Some(pem),
        Err(e) => panic!("{TLS_CA_VARIABLE}={}: {e}", path.to_string_lossy()),
    }
}

/// Our client.
pub(crate) async fn ours(endpoint: &str) -> Result<etcd3::Client, String> {
    let builder = etcd3::Client::builder([endpoint]);
    let builder = match tls_ca() {
        Some(ca) => builder.tls(etcd3::Tls::new().ca_pem(ca)),
        None => builder,
    };
    builder.connect().await.map_err(|e| e.to_string())
}

/// Their client.
pub(crate) async fn theirs(endpoint: &str) -> Result<peer::Client, String> {
    let options = tls_ca().map(|ca| {
        peer::ConnectOptions::new()
            .with_tls(peer::TlsOptions::new().ca_certificate(peer::Certificate::from_pem(ca)))
    });
    peer::Client::connect([endpoint], options)
        .await
        .map_err(|e| e.to_string())
}
