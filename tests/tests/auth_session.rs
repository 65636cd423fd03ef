//! Auth sessions of the facade against real etcd (reliability.md §6.2 A1, A2, A3): a token
//! from credentials on every call and stream, one transparent re-authentication when the
//! token expires or the auth store changes (both the 3.4 and the 3.5 forms of the "old
//! revision" error), no loop on a wrong password, a caller's token never refreshed,
//! watches refused on auth grounds typed and retried, and no secret in `Debug` output or
//! logs.
//!
//! `Authenticate` calls are counted by the client itself
//! ([`AuthSession::authentications`](etcd3::AuthSession::authentications)).

use std::time::Duration;

use etcd_testkit::EtcdServer;
use etcd_tests::logs::Capture;
use etcd3::auth::Permission;
use etcd3::{Client, Error, ServerErrorKind};
use futures::StreamExt;

const ROOT_PW: &str = "root-secret-pw";
const ALICE_PW: &str = "alice-secret-pw";
const LONG: Duration = Duration::from_secs(20);

/// Simple tokens that expire after 2 s unused.
fn short_tokens() -> [&'static str; 2] {
    ["--auth-token=simple", "--auth-token-ttl=2"]
}

/// Root (with the root role), and `alice` who may read and write `app/` only; then auth
/// on. The admin client authenticates by itself once auth is on.
async fn enable_auth(url: &str) -> Client {
    let admin = Client::builder([url])
        .credentials("root", ROOT_PW)
        .connect()
        .await
        .unwrap();
    let auth = admin.auth();
    auth.user_add("root", ROOT_PW).await.unwrap();
    auth.role_add("root").await.unwrap();
    auth.user_grant_role("root", "root").await.unwrap();
    auth.role_add("app").await.unwrap();
    auth.role_grant("app", Permission::readwrite_prefix("app/"))
        .await
        .unwrap();
    auth.user_add("alice", ALICE_PW).await.unwrap();
    auth.user_grant_role("alice", "app").await.unwrap();
    auth.enable().await.unwrap();
    // Auth was off until now: the admin's first call found it so, and carried on without
    // a token; its next call is refused for want of one, and it authenticates.
    assert_eq!(admin.auth_session().authentications(), 1);
    assert!(!admin.auth_session().has_token());
    admin.kv().put("admin-check", "1").await.unwrap();
    assert!(admin.auth_session().has_token());
    assert_eq!(admin.auth_session().authentications(), 2);
    admin
}

async fn alice(url: &str) -> Client {
    Client::builder([url])
        .credentials("alice", ALICE_PW)
        .connect()
        .await
        .unwrap()
}

fn kind(e: &Error) -> Option<ServerErrorKind> {
    e.server_kind()
}

/// A1: an idle token expires; the next put authenticates once more and succeeds, and so
/// do many puts failing at the same time (one `Authenticate` for all). A wrong password
/// costs one `Authenticate` per call and fails typed. A caller's token is never refreshed.
#[tokio::test]
async fn a1_expired_token_is_renewed_once() {
    let server = EtcdServer::builder().args(short_tokens()).start().await;
    let url = server.client_url();
    let admin = enable_auth(&url).await;

    let client = alice(&url).await;
    let session = client.auth_session();
    assert_eq!(session.authentications(), 0, "connect sends nothing");
    client.kv().put("app/a", "1").await.unwrap();
    assert_eq!(session.authentications(), 1);
    client.kv().get("app/a").await.unwrap();
    assert_eq!(session.authentications(), 1);

    // Idle past the TTL: the token is gone on the server.
    tokio::time::sleep(Duration::from_secs(5)).await;
    client.kv().put("app/a", "2").await.unwrap();
    assert_eq!(
        session.authentications(),
        2,
        "exactly one re-authentication"
    );
    let got = client.kv().get("app/a").await.unwrap();
    assert_eq!(got.value(), Some(&b"2"[..]));

    // Many calls refused at once: one Authenticate between them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let puts = (0..16).map(|i| {
        let kv = client.kv().clone();
        async move { kv.put(format!("app/many/{i}"), "v").await }
    });
    for result in futures::future::join_all(puts).await {
        result.unwrap();
    }
    assert_eq!(session.authentications(), 3, "single flight");
    // Unary lease, cluster and maintenance calls carry the token too.
    let lease = client.lease().grant(Duration::from_secs(30)).await.unwrap();
    client.lease().revoke(lease.id()).await.unwrap();
    client.cluster().members().await.unwrap();
    admin.cluster().members().await.unwrap();
    admin.maintenance().status().await.unwrap();
    admin.maintenance().status_of(&url).await.unwrap();
    assert_eq!(session.authentications(), 3);

    // A wrong password: AuthFailed, one Authenticate per call, never a loop.
    let wrong = Client::builder([url.as_str()])
        .credentials("alice", "not-the-password")
        .connect()
        .await
        .unwrap();
    let e = wrong.kv().put("app/a", "x").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthFailed), "{e}");
    assert_eq!(wrong.auth_session().authentications(), 1);
    let e = wrong.kv().get("app/a").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthFailed), "{e}");
    assert_eq!(wrong.auth_session().authentications(), 2);

    // A caller's token: used as given, never refreshed.
    let token = admin
        .auth()
        .authenticate("alice", ALICE_PW)
        .await
        .unwrap()
        .into_token();
    let given = Client::builder([url.as_str()])
        .token(token.clone())
        .connect()
        .await
        .unwrap();
    given.kv().put("app/given", "1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let e = given.kv().put("app/given", "2").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::InvalidAuthToken), "{e}");
    assert_eq!(given.auth_session().authentications(), 0);
    assert!(!given.auth_session().refreshes());
    assert!(!format!("{given:?}").contains(&token));
}

/// Without credentials on an auth-enabled server, calls fail typed (`UserEmpty`) and
/// nothing authenticates.
#[tokio::test]
async fn no_credentials_means_no_token() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let _admin = enable_auth(&url).await;
    let anonymous = Client::connect([url.as_str()]).await.unwrap();
    let e = anonymous.kv().put("app/a", "1").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::UserEmpty), "{e}");
    assert_eq!(anonymous.auth_session().authentications(), 0);
}

/// An ECDSA P-256 key pair for JWT tokens (ES256), written to `dir`; the flag that
/// makes etcd sign with it.
fn jwt_keys(dir: &std::path::Path) -> String {
    let private = dir.join("jwt.key");
    let public = dir.join("jwt.pub");
    let key = rcgen::KeyPair::generate().expect("an ECDSA key pair");
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256",
        public.display(),
        private.display()
    )
}

/// A2 with JWT tokens, which carry the auth revision: after every change of users or
/// roles, a token issued before it is refused as old (3.4.23: `InvalidArgument: etcdserver:
/// revision of auth store is old`; 3.5.1: `Unknown: auth: revision in header is old`).
/// The first put after a change authenticates exactly once more; puts running while the
/// admin changes roles all succeed.
#[tokio::test]
async fn a2_old_auth_revision_is_renewed_jwt() {
    let keys = tempfile::tempdir().unwrap();
    let flag = jwt_keys(keys.path());
    let server = EtcdServer::builder().arg(flag).start().await;
    let url = server.client_url();
    let admin = enable_auth(&url).await;
    let client = alice(&url).await;
    let session = client.auth_session();
    client.kv().put("app/1", "a").await.unwrap();
    assert_eq!(session.authentications(), 1);

    // Bump the auth revision; the token now names an old one.
    admin.auth().user_add("bob", "bob-pw").await.unwrap();
    client.kv().put("app/1", "b").await.unwrap();
    assert_eq!(
        session.authentications(),
        2,
        "exactly one re-authentication"
    );
    // Reads too.
    admin.auth().role_add("extra").await.unwrap();
    let got = client.kv().get("app/1").await.unwrap();
    assert_eq!(got.value(), Some(&b"b"[..]));
    assert_eq!(session.authentications(), 3);

    concurrent_changes(&admin, &client).await;
}

/// A2 with simple tokens (the revision is read at request time, so old revisions only
/// come from a race between proposal and apply): puts running while the admin changes
/// users and roles (port of etcd's `TestV3AuthOldRevConcurrent`) all succeed.
#[tokio::test]
async fn a2_old_auth_revision_is_renewed_simple() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let admin = enable_auth(&url).await;
    let client = alice(&url).await;
    client.kv().put("app/1", "a").await.unwrap();
    concurrent_changes(&admin, &client).await;
}

/// `client` puts 10 keys from each of 8 tasks while `admin` adds 10 roles and users;
/// every put succeeds. Re-authentication is single-flight and each one follows a new auth
/// revision, so there are at most as many as auth changes (20), plus one for a change
/// that overtook an authentication in progress.
async fn concurrent_changes(admin: &Client, client: &Client) {
    let before = client.auth_session().authentications();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let kv = client.kv().clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    kv.put(format!("app/c/{w}/{i}"), "v").await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for i in 0..10 {
        admin.auth().role_add(format!("r{i}")).await.unwrap();
        admin.auth().user_add(format!("u{i}"), "pw").await.unwrap();
    }
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let reauths = client.auth_session().authentications() - before;
    eprintln!("{reauths} re-authentications for 80 puts over 20 auth changes");
    assert!(
        reauths <= 21,
        "{reauths} re-authentications for 20 auth changes"
    );
    let all = client
        .kv()
        .get("app/c/")
        .prefix()
        .count_only()
        .await
        .unwrap();
    assert_eq!(all.count(), 80);
}

/// A3: alice may read `app/` only. A watch on a forbidden key ends typed
/// (`PermissionDenied`, from the cancel reason) while a watch on an allowed key keeps
/// delivering (on etcd 3.5.1 a refused creation answers with watch id 0, etcd #12385). A
/// watch created after the token expired is created after one re-authentication.
#[tokio::test]
async fn a3_watches_refused_and_renewed() {
    let server = EtcdServer::builder().args(short_tokens()).start().await;
    let url = server.client_url();
    let admin = enable_auth(&url).await;
    let client = alice(&url).await;

    let mut allowed = client.watch("app/k1").await.unwrap();
    let e = client.watch("secret/x").await.unwrap_err();
    assert_eq!(
        e.server_kind(),
        Some(ServerErrorKind::PermissionDenied),
        "{e}"
    );
    // One Authenticate for the first call, at most one more for the refused watch.
    assert!(client.auth_session().authentications() <= 2);

    admin.kv().put("app/k1", "1").await.unwrap();
    let resp = tokio::time::timeout(LONG, allowed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events()[0].kv().value(), b"1");

    // The token expires; a new watch on the stream is refused for it (3.4.23: "invalid
    // auth token"; 3.5.1: "permission denied"), authenticates again and is created.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = client.auth_session().authentications();
    let mut later = client.watch("app/k2").await.unwrap();
    assert_eq!(client.auth_session().authentications(), before + 1);
    admin.kv().put("app/k2", "2").await.unwrap();
    admin.kv().put("app/k1", "3").await.unwrap();
    let resp = tokio::time::timeout(LONG, later.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events()[0].kv().value(), b"2");
    // The first watch moved to the new stream without losing anything.
    let resp = tokio::time::timeout(LONG, allowed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events()[0].kv().value(), b"3");
}

/// Passwords and tokens appear neither in `Debug` output nor in logs, through
/// authentication, expiry, re-authentication and a wrong password.
#[tokio::test]
async fn secrets_stay_out_of_debug_output_and_logs() {
    let logs = Capture::global();
    let server = EtcdServer::builder().args(short_tokens()).start().await;
    let url = server.client_url();
    let admin = enable_auth(&url).await;
    let builder = Client::builder([url.as_str()]).credentials("alice", ALICE_PW);
    let shown_builder = format!("{builder:?}");
    let client = builder.connect().await.unwrap();
    client.kv().put("app/a", "1").await.unwrap();
    let mut watch = client.watch("app/a").await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    client.kv().put("app/a", "2").await.unwrap();
    let _ = tokio::time::timeout(LONG, watch.next()).await.unwrap();
    let wrong = Client::builder([url.as_str()])
        .credentials("alice", "wrong-secret-pw")
        .connect()
        .await
        .unwrap();
    wrong.kv().get("app/a").await.unwrap_err();
    // A caller's token, used until it expires.
    let token = admin
        .auth()
        .authenticate("alice", ALICE_PW)
        .await
        .unwrap()
        .into_token();
    let given = Client::builder([url.as_str()])
        .token(token.clone())
        .connect()
        .await
        .unwrap();
    given.kv().put("app/given", "1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    given.kv().put("app/given", "2").await.unwrap_err();
    assert!(client.auth_session().has_token());

    let shown = [
        shown_builder,
        format!("{client:?}"),
        format!("{admin:?}"),
        format!("{wrong:?}"),
        format!("{given:?}"),
        format!("{:?}", client.auth_session()),
        logs.text(),
    ];
    // A simple token is `<random>.<index>`: its random part is what must not leak.
    let secret_part = token.split('.').next().unwrap().to_owned();
    for text in &shown {
        for secret in [ROOT_PW, ALICE_PW, "wrong-secret-pw", secret_part.as_str()] {
            assert!(!text.contains(secret), "{secret:?} leaked into {text}");
        }
    }
    assert!(shown[1].contains("alice"), "{}", shown[1]);
    let logged = shown.last().unwrap();
    assert!(logged.contains("authenticating"), "{logged}");
}
