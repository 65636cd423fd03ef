//! The auth API against real etcd: users, roles, permissions on a key, a range and a
//! prefix, enabling auth, tokens, and the typed errors of unauthenticated and
//! unauthorized calls.
//!
//! The facade does not send credentials yet, so calls that need a token go through the
//! core handles over a tonic channel with a tower layer that adds the `token` metadata.

use etcd_core::grpc::{GrpcAuth, GrpcKv};
use etcd_core::transport::GrpcTransport;
use etcd_testkit::EtcdServer;
use etcd3::auth::Permission;
use etcd3::{Client, Error, ServerErrorKind};

/// A transport to `url` that sends `token` with every call.
fn with_token(url: &str, token: &str) -> impl GrpcTransport {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect_lazy();
    let token = http::HeaderValue::from_str(token).unwrap();
    tower::ServiceBuilder::new()
        .map_request(move |mut request: http::Request<tonic::body::Body>| {
            request.headers_mut().insert("token", token.clone());
            request
        })
        .service(channel)
}

/// Whether auth is on, or `None` on etcd 3.4, which has no `AuthStatus` call and says so
/// with gRPC's `Unimplemented`.
async fn auth_enabled<S: etcd_core::auth::AuthService>(auth: &etcd_core::Auth<S>) -> Option<bool> {
    match auth.status().await {
        Ok(status) => Some(status.enabled()),
        Err(e) => {
            assert_unimplemented_on_3_4(&e);
            None
        }
    }
}

async fn auth_revision<S: etcd_core::auth::AuthService>(auth: &etcd_core::Auth<S>) -> Option<u64> {
    match auth.status().await {
        Ok(status) => Some(status.auth_revision()),
        Err(e) => {
            assert_unimplemented_on_3_4(&e);
            None
        }
    }
}

/// `Some(value)` on etcd 3.5, `None` on 3.4.
fn on_3_5<T>(value: T) -> Option<T> {
    (etcd_testkit::etcd_version() >= etcd_testkit::EtcdVersion::new(3, 5, 0)).then_some(value)
}

fn assert_unimplemented_on_3_4(e: &Error) {
    assert!(
        etcd_testkit::etcd_version() < etcd_testkit::EtcdVersion::new(3, 5, 0),
        "auth status failed on etcd 3.5: {e}"
    );
    match e {
        Error::Server(s) => assert_eq!(s.code(), tonic::Code::Unimplemented, "{e}"),
        other => panic!("expected Unimplemented, got {other:?}"),
    }
}

fn kind(e: &Error) -> Option<ServerErrorKind> {
    e.server_kind()
}

#[tokio::test]
async fn users_roles_permissions_and_tokens() {
    let server = EtcdServer::start().await;
    let url = server.client_url();
    let client = Client::connect([url.as_str()]).await.unwrap();
    let auth = client.auth();
    let kv = client.kv();

    // Auth is off: status says so (etcd 3.5; 3.4 lacks the call), authenticate is
    // refused, enable needs a root user.
    assert_eq!(auth_enabled(auth).await, on_3_5(false));
    let e = auth.authenticate("root", "pw").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthNotEnabled), "{e}");
    let e = auth.enable().await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthManagement), "{e}");

    // Root, and two roles: a reader of a prefix and a key, a writer of a range and a key.
    auth.user_add("root", "rootpw").await.unwrap();
    auth.role_add("root").await.unwrap();
    auth.user_grant_role("root", "root").await.unwrap();
    auth.role_add("reader").await.unwrap();
    auth.role_grant("reader", Permission::read_prefix("app/"))
        .await
        .unwrap();
    auth.role_grant("reader", Permission::read("one"))
        .await
        .unwrap();
    auth.role_add("writer").await.unwrap();
    auth.role_grant("writer", Permission::write_range("b", "d"))
        .await
        .unwrap();
    auth.role_grant("writer", Permission::readwrite("rw"))
        .await
        .unwrap();
    let e = auth.role_add("reader").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthManagement), "{e}");

    let reader = auth.role_get("reader").await.unwrap();
    let mut perms = reader.permissions().to_vec();
    perms.sort_by(|a, b| a.range().start().cmp(b.range().start()));
    assert_eq!(
        perms,
        [Permission::read_prefix("app/"), Permission::read("one")]
    );
    let writer = auth.role_get("writer").await.unwrap();
    assert!(
        writer
            .permissions()
            .contains(&Permission::write_range("b", "d"))
    );

    auth.user_add("alice", "alicepw").await.unwrap();
    auth.user_grant_role("alice", "reader").await.unwrap();
    auth.user_grant_role("alice", "writer").await.unwrap();
    assert_eq!(
        auth.user_get("alice").await.unwrap().roles(),
        ["reader", "writer"]
    );
    let users = auth.user_list().await.unwrap();
    assert!(
        users.contains("root") && users.contains("alice"),
        "{users:?}"
    );
    let roles = auth.role_list().await.unwrap();
    for r in ["root", "reader", "writer"] {
        assert!(roles.contains(r), "{roles:?}");
    }
    let e = auth.user_get("nobody").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthManagement), "{e}");

    for key in ["app/x", "one", "b", "two", "rw"] {
        kv.put(key, "v").await.unwrap();
    }

    // Enable: unauthenticated calls are refused with a typed error.
    auth.enable().await.expect("enable auth");
    let e = kv.get("app/x").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::UserEmpty), "{e}");
    let e = auth.authenticate("alice", "wrong").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthFailed), "{e}");
    let e = auth.authenticate("nobody", "x").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthFailed), "{e}");
    // A token that was never issued.
    let forged = etcd_core::Kv::new(GrpcKv::new(with_token(&url, "forged.1")));
    let e = forged.get("app/x").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::InvalidAuthToken), "{e}");

    // Alice's token: her permissions, nothing more.
    let token = auth.authenticate("alice", "alicepw").await.unwrap();
    assert!(!token.token().is_empty());
    assert!(!format!("{token:?}").contains(token.token()));
    let alice = etcd_core::Kv::new(GrpcKv::new(with_token(&url, token.token())));
    assert_eq!(alice.get("app/x").await.unwrap().value(), Some(&b"v"[..]));
    assert_eq!(alice.get("app/").prefix().await.unwrap().count(), 1);
    alice.get("one").await.expect("read a granted key");
    alice
        .put("b", "w")
        .await
        .expect("write in the granted range");
    alice.put("rw", "w").await.expect("write a readwrite key");
    alice.get("rw").await.expect("read a readwrite key");
    let denied = [
        alice.get("two").await.unwrap_err(),
        alice.put("app/x", "w").await.unwrap_err(),
        alice.put("d", "w").await.unwrap_err(),
        alice.get("b").await.unwrap_err(),
    ];
    for e in denied {
        assert_eq!(kind(&e), Some(ServerErrorKind::PermissionDenied), "{e}");
    }

    // Root's token manages auth while it is on.
    let root_token = auth.authenticate("root", "rootpw").await.unwrap();
    let root = etcd_core::Auth::new(GrpcAuth::new(with_token(&url, root_token.token())));
    assert_eq!(auth_enabled(&root).await, on_3_5(true));
    let revision = auth_revision(&root).await;

    // Revoke the prefix: alice's new token can no longer read it.
    root.role_revoke("reader", Permission::read_prefix("app/"))
        .await
        .expect("revoke permission");
    if let (Some(before), Some(after)) = (revision, auth_revision(&root).await) {
        assert!(after > before);
    }
    let e = root
        .role_revoke("reader", Permission::read_prefix("app/"))
        .await
        .unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthManagement), "{e}");
    let e = alice.get("app/x").await.unwrap_err();
    assert!(
        matches!(
            kind(&e),
            Some(ServerErrorKind::AuthOldRevision | ServerErrorKind::PermissionDenied)
        ),
        "{e}"
    );
    let token = root.authenticate("alice", "alicepw").await.unwrap();
    let alice = etcd_core::Kv::new(GrpcKv::new(with_token(&url, token.token())));
    let e = alice.get("app/x").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::PermissionDenied), "{e}");
    alice.get("one").await.expect("the key grant remains");

    // Revoke a role from the user; change the password.
    root.user_revoke_role("alice", "writer").await.unwrap();
    assert_eq!(root.user_get("alice").await.unwrap().roles(), ["reader"]);
    root.user_change_password("alice", "newpw").await.unwrap();
    let e = root.authenticate("alice", "alicepw").await.unwrap_err();
    assert_eq!(kind(&e), Some(ServerErrorKind::AuthFailed), "{e}");
    root.authenticate("alice", "newpw")
        .await
        .expect("new password");

    // Delete the user and a role.
    root.user_delete("alice").await.unwrap();
    assert!(!root.user_list().await.unwrap().contains("alice"));
    root.role_delete("writer").await.unwrap();
    assert!(!root.role_list().await.unwrap().contains("writer"));

    // Disable: unauthenticated calls work again.
    root.disable().await.expect("disable auth");
    assert_eq!(auth_enabled(auth).await, on_3_5(false));
    kv.get("app/x")
        .await
        .expect("unauthenticated read after disable");
}

#[tokio::test]
async fn bad_auth_requests_are_refused_before_sending() {
    // Nothing listens on port 1: a request that were sent would fail with a transport error.
    let client = Client::connect(["http://127.0.0.1:1"]).await.unwrap();
    let auth = client.auth();
    let refused = |e: Error| assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    refused(auth.user_add("", "pw").await.unwrap_err());
    refused(auth.authenticate("", "pw").await.unwrap_err());
    refused(auth.role_add("").await.unwrap_err());
    refused(auth.user_grant_role("alice", "").await.unwrap_err());
    refused(
        auth.role_grant("r", Permission::read(""))
            .await
            .unwrap_err(),
    );
    refused(
        auth.role_revoke("", Permission::read("k"))
            .await
            .unwrap_err(),
    );
    // Passwords stay out of Debug output.
    let call = auth.user_add("alice", "hunter2");
    assert!(!format!("{call:?}").contains("hunter2"));
}
