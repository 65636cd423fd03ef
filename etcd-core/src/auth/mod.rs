//! Authentication and authorization: enabling auth, tokens, users, roles and permissions.
//!
//! [`Auth`] is a cheap-to-clone handle over any [`AuthService`]. Each method returns a
//! [`Call`]; await it to send it. Once auth is enabled every call needs a token of a user
//! with the right permissions, and managing users and roles needs the `root` role.
//!
//! ```no_run
//! # async fn example<S: etcd_core::auth::AuthService>(auth: etcd_core::auth::Auth<S>) -> etcd_core::Result<()> {
//! use etcd_core::auth::Permission;
//!
//! auth.user_add("root", "secret").await?;
//! auth.role_add("root").await?;
//! auth.user_grant_role("root", "root").await?;
//! auth.role_add("reader").await?;
//! auth.role_grant("reader", Permission::read_prefix("app/")).await?;
//! auth.user_add("alice", "pw").await?;
//! auth.user_grant_role("alice", "reader").await?;
//! auth.enable().await?;
//! let token = auth.authenticate("alice", "pw").await?.into_token();
//! # let _ = token;
//! # Ok(()) }
//! ```
//!
//! Passwords and tokens never appear in `Debug` output: a [`Call`] shows only its request
//! type, and [`AuthenticateResponse`] hides its token.

mod permission;
mod response;

use etcd_proto::{authpb, etcdserverpb as pb};

pub use permission::{Permission, PermissionKind};
pub use response::{
    AuthStatusResponse, AuthenticateResponse, NamesResponse, RoleGetResponse, UserGetResponse,
};

pub use crate::call::AckResponse;
use crate::call::{Call, invalid};
use crate::error::{InvalidRequest, Result};
use crate::key::KeyRange;

crate::service::service_alias! {
    /// etcd's Auth service as tower services of its request messages: `AuthEnable`,
    /// `AuthDisable`, `AuthStatus`, `Authenticate`, the `User*` and the `Role*` calls.
    /// [`GrpcAuth`](crate::grpc::GrpcAuth) implements it, and so does any stack of tower
    /// layers over it whose error converts into a boxed error.
    AuthService {
        pb::AuthEnableRequest => pb::AuthEnableResponse,
        pb::AuthDisableRequest => pb::AuthDisableResponse,
        pb::AuthStatusRequest => pb::AuthStatusResponse,
        pb::AuthenticateRequest => pb::AuthenticateResponse,
        pb::AuthUserAddRequest => pb::AuthUserAddResponse,
        pb::AuthUserGetRequest => pb::AuthUserGetResponse,
        pb::AuthUserListRequest => pb::AuthUserListResponse,
        pb::AuthUserDeleteRequest => pb::AuthUserDeleteResponse,
        pb::AuthUserChangePasswordRequest => pb::AuthUserChangePasswordResponse,
        pb::AuthUserGrantRoleRequest => pb::AuthUserGrantRoleResponse,
        pb::AuthUserRevokeRoleRequest => pb::AuthUserRevokeRoleResponse,
        pb::AuthRoleAddRequest => pb::AuthRoleAddResponse,
        pb::AuthRoleGetRequest => pb::AuthRoleGetResponse,
        pb::AuthRoleListRequest => pb::AuthRoleListResponse,
        pb::AuthRoleDeleteRequest => pb::AuthRoleDeleteResponse,
        pb::AuthRoleGrantPermissionRequest => pb::AuthRoleGrantPermissionResponse,
        pb::AuthRoleRevokePermissionRequest => pb::AuthRoleRevokePermissionResponse,
    }
}

/// A handle on etcd's Auth service. Cheap to clone; every method takes `&self`.
#[derive(Clone, Debug)]
pub struct Auth<S> {
    service: S,
}

/// Checks a user or role name: etcd refuses empty names.
fn name(what: &str, name: impl Into<String>) -> Result<String> {
    let name = name.into();
    if name.is_empty() {
        return Err(invalid(format!("the {what} name is empty")));
    }
    Ok(name)
}

impl<S: AuthService> Auth<S> {
    /// A handle over `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }

    fn call<R, T>(&self, request: Result<R>) -> Call<S, R, T> {
        Call::new(self.service.clone(), request)
    }

    /// Enables auth. The `root` user must exist and hold the `root` role, or etcd refuses
    /// with [`ServerErrorKind::AuthManagement`](crate::ServerErrorKind::AuthManagement).
    pub fn enable(&self) -> Call<S, pb::AuthEnableRequest, AckResponse> {
        self.call(Ok(pb::AuthEnableRequest {}))
    }

    /// Disables auth (needs a `root` token while auth is on).
    pub fn disable(&self) -> Call<S, pb::AuthDisableRequest, AckResponse> {
        self.call(Ok(pb::AuthDisableRequest {}))
    }

    /// Whether auth is enabled, and the auth store's revision. etcd 3.5 and later: etcd
    /// 3.4 has no such call and answers with gRPC code `Unimplemented`
    /// ([`ServerErrorKind::Other`](crate::ServerErrorKind::Other)).
    pub fn status(&self) -> Call<S, pb::AuthStatusRequest, AuthStatusResponse> {
        self.call(Ok(pb::AuthStatusRequest {}))
    }

    /// Exchanges a user's name and password for a token. A wrong name or password fails
    /// with [`ServerErrorKind::AuthFailed`](crate::ServerErrorKind::AuthFailed); with auth
    /// disabled etcd answers
    /// [`AuthNotEnabled`](crate::ServerErrorKind::AuthNotEnabled).
    pub fn authenticate(
        &self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Call<S, pb::AuthenticateRequest, AuthenticateResponse> {
        let request = name("user", user).map(|name| pb::AuthenticateRequest {
            name,
            password: password.into(),
        });
        self.call(request)
    }

    /// Adds a user with a password.
    pub fn user_add(
        &self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Call<S, pb::AuthUserAddRequest, AckResponse> {
        let request = name("user", user).map(|name| pb::AuthUserAddRequest {
            name,
            password: password.into(),
            options: Some(authpb::UserAddOptions { no_password: false }),
            hashed_password: String::new(),
        });
        self.call(request)
    }

    /// Adds a user that cannot authenticate with a password (only with a TLS client
    /// certificate naming it). etcd 3.5 and later; etcd 3.4 ignores the option and stores
    /// an empty password.
    pub fn user_add_without_password(
        &self,
        user: impl Into<String>,
    ) -> Call<S, pb::AuthUserAddRequest, AckResponse> {
        let request = name("user", user).map(|name| pb::AuthUserAddRequest {
            name,
            password: String::new(),
            options: Some(authpb::UserAddOptions { no_password: true }),
            hashed_password: String::new(),
        });
        self.call(request)
    }

    /// A user's roles.
    pub fn user_get(
        &self,
        user: impl Into<String>,
    ) -> Call<S, pb::AuthUserGetRequest, UserGetResponse> {
        self.call(name("user", user).map(|name| pb::AuthUserGetRequest { name }))
    }

    /// Every user's name.
    pub fn user_list(&self) -> Call<S, pb::AuthUserListRequest, NamesResponse> {
        self.call(Ok(pb::AuthUserListRequest {}))
    }

    /// Deletes a user.
    pub fn user_delete(
        &self,
        user: impl Into<String>,
    ) -> Call<S, pb::AuthUserDeleteRequest, AckResponse> {
        self.call(name("user", user).map(|name| pb::AuthUserDeleteRequest { name }))
    }

    /// Changes a user's password. Tokens issued before stay valid until they expire.
    pub fn user_change_password(
        &self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Call<S, pb::AuthUserChangePasswordRequest, AckResponse> {
        let request = name("user", user).map(|name| pb::AuthUserChangePasswordRequest {
            name,
            password: password.into(),
            hashed_password: String::new(),
        });
        self.call(request)
    }

    /// Grants `role` to `user`.
    pub fn user_grant_role(
        &self,
        user: impl Into<String>,
        role: impl Into<String>,
    ) -> Call<S, pb::AuthUserGrantRoleRequest, AckResponse> {
        let request = name("user", user).and_then(|user| {
            name_role(role).map(|role| pb::AuthUserGrantRoleRequest { user, role })
        });
        self.call(request)
    }

    /// Revokes `role` from `user`.
    pub fn user_revoke_role(
        &self,
        user: impl Into<String>,
        role: impl Into<String>,
    ) -> Call<S, pb::AuthUserRevokeRoleRequest, AckResponse> {
        let request = name("user", user).and_then(|name| {
            name_role(role).map(|role| pb::AuthUserRevokeRoleRequest { name, role })
        });
        self.call(request)
    }

    /// Adds a role, with no permissions.
    pub fn role_add(
        &self,
        role: impl Into<String>,
    ) -> Call<S, pb::AuthRoleAddRequest, AckResponse> {
        self.call(name_role(role).map(|name| pb::AuthRoleAddRequest { name }))
    }

    /// A role's permissions.
    pub fn role_get(
        &self,
        role: impl Into<String>,
    ) -> Call<S, pb::AuthRoleGetRequest, RoleGetResponse> {
        self.call(name_role(role).map(|role| pb::AuthRoleGetRequest { role }))
    }

    /// Every role's name.
    pub fn role_list(&self) -> Call<S, pb::AuthRoleListRequest, NamesResponse> {
        self.call(Ok(pb::AuthRoleListRequest {}))
    }

    /// Deletes a role, revoking it from every user.
    pub fn role_delete(
        &self,
        role: impl Into<String>,
    ) -> Call<S, pb::AuthRoleDeleteRequest, AckResponse> {
        self.call(name_role(role).map(|role| pb::AuthRoleDeleteRequest { role }))
    }

    /// Grants a permission to a role: [`Permission::read`], [`Permission::write_prefix`],
    /// [`Permission::readwrite_range`] and so on. Granting a range the role already has
    /// replaces its kind.
    pub fn role_grant(
        &self,
        role: impl Into<String>,
        permission: Permission,
    ) -> Call<S, pb::AuthRoleGrantPermissionRequest, AckResponse> {
        let request = name_role(role).and_then(|name| {
            checked_range(permission.range())?;
            Ok(pb::AuthRoleGrantPermissionRequest {
                name,
                perm: Some(permission.into_wire()),
            })
        });
        self.call(request)
    }

    /// Revokes a role's permission on exactly `range` (the key range it was granted on:
    /// pass the [`Permission`] itself or its [`KeyRange`]). A range that was not granted
    /// fails with [`ServerErrorKind::AuthManagement`](crate::ServerErrorKind::AuthManagement).
    pub fn role_revoke(
        &self,
        role: impl Into<String>,
        range: impl Into<KeyRange>,
    ) -> Call<S, pb::AuthRoleRevokePermissionRequest, AckResponse> {
        let range = range.into();
        let request = name_role(role).and_then(|role| {
            checked_range(&range)?;
            let (key, range_end) = range.into_parts();
            Ok(pb::AuthRoleRevokePermissionRequest {
                role,
                key,
                range_end,
            })
        });
        self.call(request)
    }
}

fn name_role(role: impl Into<String>) -> Result<String> {
    name("role", role)
}

/// A permission needs a key: an empty key with no range end covers nothing.
fn checked_range(range: &KeyRange) -> Result<()> {
    if range.start().is_empty() && range.end().is_empty() {
        return Err(InvalidRequest::EmptyKey.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ranges_are_checked() {
        assert!(name("user", "").is_err());
        assert_eq!(name("user", "alice").unwrap(), "alice");
        assert!(checked_range(&KeyRange::key("")).is_err());
        assert!(checked_range(&KeyRange::prefix("")).is_ok());
        let wire = Permission::write_range("a", "c").into_wire();
        assert_eq!(wire.perm_type, authpb::permission::Type::Write as i32);
        assert_eq!((&wire.key[..], &wire.range_end[..]), (&b"a"[..], &b"c"[..]));
        assert_eq!(Permission::from(wire), Permission::write_range("a", "c"));
    }
}
