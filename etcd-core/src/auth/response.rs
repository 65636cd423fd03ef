//! Responses of the auth service.

use std::fmt;

use etcd_proto::etcdserverpb as pb;

use super::Permission;
use crate::error::Result;
use crate::future::FromResponse;
use crate::kv::ResponseHeader;

/// Whether auth is enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthStatusResponse {
    header: ResponseHeader,
    enabled: bool,
    auth_revision: u64,
}

impl AuthStatusResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// True when auth is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The revision of the auth store: it grows with every change of users, roles or
    /// permissions, and tokens issued before a change are refused afterwards.
    pub fn auth_revision(&self) -> u64 {
        self.auth_revision
    }
}

impl FromResponse<pb::AuthStatusResponse> for AuthStatusResponse {
    fn from_response(r: pb::AuthStatusResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            enabled: r.enabled,
            auth_revision: r.auth_revision,
        })
    }
}

/// A token for a user. Its `Debug` output never shows the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthenticateResponse {
    header: ResponseHeader,
    token: String,
}

impl AuthenticateResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The token, sent in the `token` metadata of later calls. Keep it out of logs.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Takes the token.
    pub fn into_token(self) -> String {
        self.token
    }
}

impl fmt::Debug for AuthenticateResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateResponse")
            .field("header", &self.header)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl FromResponse<pb::AuthenticateResponse> for AuthenticateResponse {
    fn from_response(r: pb::AuthenticateResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            token: r.token,
        })
    }
}

/// A user's roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserGetResponse {
    header: ResponseHeader,
    roles: Vec<String>,
}

impl UserGetResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The roles granted to the user.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
}

impl FromResponse<pb::AuthUserGetResponse> for UserGetResponse {
    fn from_response(r: pb::AuthUserGetResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            roles: r.roles,
        })
    }
}

/// A list of names: every user, or every role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamesResponse {
    header: ResponseHeader,
    names: Vec<String>,
}

impl NamesResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True when `name` is in the list.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

impl FromResponse<pb::AuthUserListResponse> for NamesResponse {
    fn from_response(r: pb::AuthUserListResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            names: r.users,
        })
    }
}

impl FromResponse<pb::AuthRoleListResponse> for NamesResponse {
    fn from_response(r: pb::AuthRoleListResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            names: r.roles,
        })
    }
}

/// A role's permissions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleGetResponse {
    header: ResponseHeader,
    permissions: Vec<Permission>,
}

impl RoleGetResponse {
    /// The response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The permissions the role grants (none for `root`, which may do everything).
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }
}

impl FromResponse<pb::AuthRoleGetResponse> for RoleGetResponse {
    fn from_response(r: pb::AuthRoleGetResponse) -> Result<Self> {
        Ok(Self {
            header: r.header.into(),
            permissions: r.perm.into_iter().map(Permission::from).collect(),
        })
    }
}
