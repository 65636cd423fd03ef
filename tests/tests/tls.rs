//! A4 of reliability.md: TLS against real etcd servers (`--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`), with certificates made at test time.
//!
//! A correct configuration works for KV, watch and lease keep-alive, by IP or through a
//! server-name override, and across a member kill in a 3-member cluster. A wrong CA, a
//! missing or expired client certificate and an `http://` endpoint on the TLS port each
//! fail within the connect timeout with a typed error that names the problem. A new
//! connection to a member resumes the TLS session of the one before.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use etcd_testkit::{EtcdCluster, EtcdServer, FaultProxy, Mode, ServerTls};
use etcd_tests::logs::Capture;
use etcd3::RetryPolicy;
use etcd3::{Applied, Client, Error, Http2Transport, Tls};
use futures::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// The connect timeout of the failing cases (the default): each must fail within it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A test CA, and the files of the certificates it signs.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
struct Leaf {
    cert: String,
    key: String,
}

enum Validity {
    Current,
    Expired,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
        }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, validity: Validity) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        if let Validity::Expired = validity {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn client(&self) -> Leaf {
        self.leaf(
            &["etcd-test-client"],
            ExtendedKeyUsagePurpose::ClientAuth,
            Validity::Current,
        )
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Server TLS with a certificate for `names`, requiring client certificates signed by
    /// this CA.
    fn server(&self, names: &[&str]) -> ServerTls {
        let leaf = self.leaf(
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Current,
        );
        ServerTls {
            cert_file: self.write("server.pem", &leaf.cert),
            key_file: self.write("server-key.pem", &leaf.key),
            trusted_ca_file: Some(self.write("ca.pem", &self.ca_pem())),
            client_cert_auth: true,
        }
    }

    /// Full client settings: this CA and a client certificate it signed.
    fn client_tls(&self) -> Tls {
        let client = self.client();
        Tls::new()
            .ca_pem(self.ca_pem())
            .identity_pem(client.cert, client.key)
    }
}

async fn tls_server(pki: &Pki) -> EtcdServer {
    EtcdServer::builder()
        .tls(pki.server(&["127.0.0.1", "localhost"]))
        .start()
        .await
}

async fn client(endpoints: Vec<String>, tls: Tls) -> Client {
    Client::builder(endpoints)
        .tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .unwrap()
}

/// Runs one read and checks that it failed within the connect timeout, with a transport
/// error that did not apply; `is_tls` for the failures that are never retried.
async fn assert_fails_fast(client: &Client, what: &str, is_tls: bool) -> Error {
    let started = Instant::now();
    let result = client.kv().get("k").await;
    let took = started.elapsed();
    let error = result.expect_err("the call must fail");
    eprintln!("{what}: failed after {took:?}: {error}");
    assert!(
        took < CONNECT_TIMEOUT,
        "{what}: took {took:?}, longer than the connect timeout: {error:?}"
    );
    match &error {
        Error::Transport {
            message, applied, ..
        } => {
            assert_eq!(*applied, Applied::No, "{what}: {error:?}");
            if is_tls {
                // Named by its endpoint, then what failed.
                assert!(
                    message.starts_with("https://127.0.0.1:")
                        && message.contains(": TLS handshake failed"),
                    "{what}: {message}"
                );
                assert!(
                    took < Duration::from_secs(1),
                    "{what}: not retried, {took:?}"
                );
            }
        }
        other => panic!("{what}: not a transport error: {other:?}"),
    }
    assert_eq!(error.is_tls(), is_tls, "{what}: {error:?}");
    error
}

#[tokio::test]
async fn correct_ca_and_client_certificate_work_for_kv_watch_and_leases() {
    let pki = Pki::new("etcd-test-ca");
    let server = tls_server(&pki).await;
    assert!(server.client_url().starts_with("https://"));
    let client = client(server.endpoints(), pki.client_tls()).await;

    let kv = client.kv();
    kv.put("tls/a", "1").await.unwrap();
    let got = kv.get("tls/a").await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"1");

    let mut watch = client.watch("tls/w").await.unwrap();
    kv.put("tls/w", "x").await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a watch event in time")
        .expect("the watch is open")
        .unwrap();
    assert_eq!(events.events()[0].kv().value(), b"x");

    let lessor = client.lease();
    let lease = lessor.grant(Duration::from_secs(2)).await.unwrap();
    let keeper = lessor.keep_alive(lease.id()).await.unwrap();
    kv.put("tls/leased", "v").lease(lease.id()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        kv.get("tls/leased").await.unwrap().kvs().len(),
        1,
        "kept alive over TLS"
    );
    drop(keeper);
}

/// Many bytes and many calls at once over one TLS connection: 4 MiB values both ways
/// (records split and joined, a full socket holding records back), 200 concurrent puts and
/// gets, and a watch receiving 2 MiB of events, all intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_and_many_concurrent_calls_pass_intact_over_tls() {
    let pki = Pki::new("etcd-test-ca");
    let server = EtcdServer::builder()
        .tls(pki.server(&["127.0.0.1", "localhost"]))
        .arg("--max-request-bytes=10485760")
        .start()
        .await;
    let client = client(server.endpoints(), pki.client_tls()).await;
    let kv = client.kv();

    let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    kv.put("tls/big", big.clone()).await.unwrap();
    let got = kv.get("tls/big").await.unwrap();
    assert!(got.kvs()[0].value() == &big[..], "4 MiB back intact");

    let mut watch = client.watch("tls/many/").prefix().await.unwrap();
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let kv = kv.clone();
            tokio::spawn(async move {
                let value = vec![(i % 256) as u8; 10_000];
                kv.put(format!("tls/many/{i:03}"), value.clone())
                    .await
                    .unwrap();
                let got = kv.get(format!("tls/many/{i:03}")).await.unwrap();
                assert_eq!(got.kvs()[0].value(), &value[..]);
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let mut seen = 0;
    while seen < 200 {
        let response = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch events in time")
            .expect("the watch is open")
            .unwrap();
        for event in response.events() {
            let i: usize = std::str::from_utf8(&event.key()[9..])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(event.kv().value(), &vec![(i % 256) as u8; 10_000][..]);
            seen += 1;
        }
    }
}

#[tokio::test]
async fn a_bare_host_port_endpoint_uses_https_with_tls_settings() {
    let pki = Pki::new("etcd-test-ca");
    let server = tls_server(&pki).await;
    let client = client(vec![server.client_addr().to_string()], pki.client_tls()).await;
    client.kv().put("tls/bare", "1").await.unwrap();
}

#[tokio::test]
async fn a_wrong_ca_fails_fast_and_typed() {
    let pki = Pki::new("etcd-test-ca");
    let server = tls_server(&pki).await;
    let other = Pki::new("some-other-ca");
    let client_cert = pki.client();
    let tls = Tls::new()
        .ca_pem(other.ca_pem())
        .identity_pem(client_cert.cert, client_cert.key);
    let client = client(server.endpoints(), tls).await;
    let error = assert_fails_fast(&client, "wrong CA", true).await;
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn no_client_certificate_fails_fast_and_typed() {
    let pki = Pki::new("etcd-test-ca");
    let server = tls_server(&pki).await;
    let client = client(server.endpoints(), Tls::new().ca_pem(pki.ca_pem())).await;
    let error = assert_fails_fast(&client, "no client certificate", true).await;
    assert!(error.to_string().contains("client certificate"), "{error}");
}

#[tokio::test]
async fn an_expired_client_certificate_fails_fast_and_typed() {
    let pki = Pki::new("etcd-test-ca");
    let server = tls_server(&pki).await;
    let expired = pki.leaf(
        &["etcd-test-client"],
        ExtendedKeyUsagePurpose::ClientAuth,
        Validity::Expired,
    );
    let tls = Tls::new()
        .ca_pem(pki.ca_pem())
        .identity_pem(expired.cert, expired.key);
    let client = client(server.endpoints(), tls).await;
    let error = assert_fails_fast(&client, "expired client certificate", true).await;
    assert!(error.to_string().contains("client certificate"), "{error}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_fails_fast_and_typed() {
    let pki = Pki::new("etcd-test-ca");
    let server = tls_server(&pki).await;
    let other = Pki::new("some-other-ca").client();
    let tls = Tls::new()
        .ca_pem(pki.ca_pem())
        .identity_pem(other.cert, other.key);
    let client = client(server.endpoints(), tls).await;
    assert_fails_fast(&client, "client certificate from another CA", true).await;
}

#[tokio::test]
async fn http_on_the_tls_port_fails_fast_and_typed() {
    let pki = Pki::new("etcd-test-ca");
    let server = tls_server(&pki).await;
    let endpoint = server.client_url().replacen("https://", "http://", 1);
    // Retried like any connection the server hangs up on (a proxy whose member went away
    // looks the same), within the retry budget.
    let client = client(vec![endpoint.clone()], pki.client_tls()).await;
    let error = assert_fails_fast(&client, "http:// on a TLS port", false).await;
    assert!(
        error.to_string().contains("use an https:// endpoint"),
        "{error}"
    );
    // Without retries, at once.
    let client = Client::builder([endpoint])
        .retry_policy(RetryPolicy::never())
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let error = client.kv().get("k").await.unwrap_err();
    eprintln!(
        "http:// on a TLS port, no retries: {:?}: {error}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(1), "{error:?}");
    assert_eq!(error.applied(), Applied::No, "{error:?}");
}

#[tokio::test]
async fn https_on_a_plain_port_fails_fast_and_typed() {
    let pki = Pki::new("etcd-test-ca");
    let server = EtcdServer::start().await;
    let endpoint = server.client_url().replacen("http://", "https://", 1);
    let client = client(vec![endpoint], pki.client_tls()).await;
    let error = assert_fails_fast(&client, "https:// on a plain port", false).await;
    assert!(
        error.to_string().contains("use an http:// endpoint"),
        "{error}"
    );
}

#[tokio::test]
async fn https_without_tls_settings_is_an_invalid_request() {
    let error = Client::connect(["https://127.0.0.1:2379"])
        .await
        .expect_err("https:// needs TLS settings");
    assert!(
        matches!(error, Error::InvalidRequest(_)),
        "not an InvalidRequest: {error:?}"
    );
    assert!(error.to_string().contains(".tls("), "{error}");
}

#[tokio::test]
async fn tls_settings_without_a_ca_are_an_invalid_request() {
    let pki = Pki::new("etcd-test-ca");
    let client_cert = pki.client();
    let error = Client::builder(["https://127.0.0.1:2379"])
        .tls(Tls::new().identity_pem(client_cert.cert, client_cert.key))
        .connect()
        .await
        .expect_err("a CA is needed");
    assert!(matches!(error, Error::InvalidRequest(_)), "{error:?}");
    let error = Client::builder(["https://127.0.0.1:2379"])
        .tls(
            Tls::new()
                .ca_pem(pki.ca_pem())
                .identity_pem(pki.client().cert, "not a key"),
        )
        .connect()
        .await
        .expect_err("a bad key is refused");
    assert!(error.to_string().contains("client key"), "{error:?}");
}

#[tokio::test]
async fn a_server_name_override_verifies_a_certificate_for_another_name() {
    let pki = Pki::new("etcd-test-ca");
    let server = EtcdServer::builder()
        .tls(pki.server(&["etcd.test"]))
        .start()
        .await;
    // By IP alone, the certificate (for etcd.test only) does not match.
    let plain = client(server.endpoints(), pki.client_tls()).await;
    let error = assert_fails_fast(&plain, "certificate for another name", true).await;
    assert!(error.to_string().contains("name"), "{error}");
    // With the override, it does.
    let client = client(
        server.endpoints(),
        pki.client_tls().server_name("etcd.test"),
    )
    .await;
    client.kv().put("tls/override", "1").await.unwrap();
    assert_eq!(
        client.kv().get("tls/override").await.unwrap().kvs().len(),
        1
    );
}

#[tokio::test]
async fn a_tls_cluster_survives_a_member_kill() {
    let pki = Pki::new("etcd-test-ca");
    let cluster = EtcdCluster::builder(3)
        .tls(pki.server(&["127.0.0.1", "localhost"]))
        .start()
        .await;
    let client = client(cluster.client_urls(), pki.client_tls()).await;
    let kv = client.kv();
    kv.put("tls/cluster", "before").await.unwrap();
    cluster.member(0).kill();
    // Killing the leader may time a write out (its outcome unknown) until a new leader is
    // elected; reads and the writes after that go through the other members over TLS.
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..10 {
        let value = format!("after-{i}");
        loop {
            match kv.put("tls/cluster", value.clone()).await {
                Ok(_) => break,
                Err(e) if !e.is_tls() && Instant::now() < deadline => {
                    eprintln!("put {i} after the kill: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("put {i} after the kill: {e:?}"),
            }
        }
        let got = kv.get("tls/cluster").await.unwrap();
        assert_eq!(got.kvs()[0].value(), value.as_bytes());
    }
}

#[tokio::test]
async fn etcdctl_variables_configure_tls() {
    let pki = Pki::new("etcd-test-ca");
    let server = tls_server(&pki).await;
    let client_cert = pki.client();
    let vars = [
        ("ETCDCTL_ENDPOINTS", server.client_url()),
        (
            "ETCDCTL_CACERT",
            pki.write("env-ca.pem", &pki.ca_pem()).display().to_string(),
        ),
        (
            "ETCDCTL_CERT",
            pki.write("env-client.pem", &client_cert.cert)
                .display()
                .to_string(),
        ),
        (
            "ETCDCTL_KEY",
            pki.write("env-client-key.pem", &client_cert.key)
                .display()
                .to_string(),
        ),
        ("ETCDCTL_DIAL_TIMEOUT", "2s".to_owned()),
        ("ETCDCTL_COMMAND_TIMEOUT", "5s".to_owned()),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let client = etcd3::ClientBuilder::from_lookup(lookup)
        .unwrap()
        .connect()
        .await
        .unwrap();
    client.kv().put("tls/env", "1").await.unwrap();
    assert_eq!(client.kv().get("tls/env").await.unwrap().kvs().len(), 1);
}

/// Sessions resume: once the connection to a member is reset, the next connection's
/// handshake resumes the TLS session of the first (etcd's TLS server hands out session
/// tickets, and the client keeps each member's rustls settings, with their session cache,
/// for its life). The client logs, per connection, whether its handshake resumed.
#[tokio::test]
async fn a_new_connection_to_a_member_resumes_its_tls_session() {
    let logs = Capture::global();
    let mark = logs.mark();
    let pki = Pki::new("resumption-ca");
    let server = tls_server(&pki).await;
    let proxy = FaultProxy::start(server.client_addr()).await;
    let member = proxy.addr().to_string();
    // Ours: tonic's channel does its own TLS and logs nothing of the kind.
    let client = Client::builder([format!("https://{member}")])
        .tls(pki.client_tls())
        .http2_transport(Http2Transport::Builtin)
        .connect()
        .await
        .unwrap();
    client.kv().put("resume/k", "1").await.unwrap();
    proxy.set_mode(Mode::DropAll).await;
    // The reset is seen by the next call or by the connection's reader first; either way
    // a call after it runs on a new connection (retried where the reset lost it).
    let deadline = Instant::now() + Duration::from_secs(10);
    let member_field = format!("member=\"{member}\"");
    let connections = || logs.lines_since(mark, &["message=connected", &member_field]);
    while connections().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no second connection: {:?}",
            connections()
        );
        let _ = client.kv().get("resume/k").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = client.kv().get("resume/k").await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"1");
    let connections = connections();
    assert!(
        connections[0].contains("tls_resumed=false"),
        "the first handshake is a full one: {connections:?}"
    );
    assert!(
        connections[1].contains("tls_resumed=true"),
        "the second handshake resumes the session: {connections:?}"
    );
}
