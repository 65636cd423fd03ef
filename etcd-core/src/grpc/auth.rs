//! The Auth service over gRPC.

use etcd_proto::etcdserverpb as pb;
use pb::auth_client::AuthClient;

use super::{DEFAULT_MAX_RESPONSE_SIZE, max_response_size, unary_service};
use crate::transport::GrpcTransport;

/// etcd's Auth service over a gRPC transport: one `Service<Request>` for each of its
/// request messages (`pb::AuthEnableRequest`, `pb::AuthenticateRequest`,
/// `pb::AuthUserAddRequest`, `pb::AuthRoleGrantPermissionRequest`, ...).
///
/// It implements [`AuthService`](crate::auth::AuthService). It attaches no token: put the
/// `token` metadata on the transport (a tower layer) for calls that need one.
#[derive(Clone, Debug)]
pub struct GrpcAuth<T> {
    inner: AuthClient<T>,
}

impl<T: GrpcTransport> GrpcAuth<T> {
    /// Wraps a transport, accepting responses up to [`DEFAULT_MAX_RESPONSE_SIZE`] bytes
    /// (see `max_response_size`).
    pub fn new(transport: T) -> Self {
        Self {
            inner: AuthClient::new(transport).max_decoding_message_size(DEFAULT_MAX_RESPONSE_SIZE),
        }
    }

    /// The generated client, for calls the adapter does not cover.
    pub fn get_ref(&self) -> &AuthClient<T> {
        &self.inner
    }
}

max_response_size!(GrpcAuth);

unary_service!(
    GrpcAuth,
    pb::AuthEnableRequest,
    pb::AuthEnableResponse,
    auth_enable
);
unary_service!(
    GrpcAuth,
    pb::AuthDisableRequest,
    pb::AuthDisableResponse,
    auth_disable
);
unary_service!(
    GrpcAuth,
    pb::AuthStatusRequest,
    pb::AuthStatusResponse,
    auth_status
);
unary_service!(
    GrpcAuth,
    pb::AuthenticateRequest,
    pb::AuthenticateResponse,
    authenticate
);
unary_service!(
    GrpcAuth,
    pb::AuthUserAddRequest,
    pb::AuthUserAddResponse,
    user_add
);
unary_service!(
    GrpcAuth,
    pb::AuthUserGetRequest,
    pb::AuthUserGetResponse,
    user_get
);
unary_service!(
    GrpcAuth,
    pb::AuthUserListRequest,
    pb::AuthUserListResponse,
    user_list
);
unary_service!(
    GrpcAuth,
    pb::AuthUserDeleteRequest,
    pb::AuthUserDeleteResponse,
    user_delete
);
unary_service!(
    GrpcAuth,
    pb::AuthUserChangePasswordRequest,
    pb::AuthUserChangePasswordResponse,
    user_change_password
);
unary_service!(
    GrpcAuth,
    pb::AuthUserGrantRoleRequest,
    pb::AuthUserGrantRoleResponse,
    user_grant_role
);
unary_service!(
    GrpcAuth,
    pb::AuthUserRevokeRoleRequest,
    pb::AuthUserRevokeRoleResponse,
    user_revoke_role
);
unary_service!(
    GrpcAuth,
    pb::AuthRoleAddRequest,
    pb::AuthRoleAddResponse,
    role_add
);
unary_service!(
    GrpcAuth,
    pb::AuthRoleGetRequest,
    pb::AuthRoleGetResponse,
    role_get
);
unary_service!(
    GrpcAuth,
    pb::AuthRoleListRequest,
    pb::AuthRoleListResponse,
    role_list
);
unary_service!(
    GrpcAuth,
    pb::AuthRoleDeleteRequest,
    pb::AuthRoleDeleteResponse,
    role_delete
);
unary_service!(
    GrpcAuth,
    pb::AuthRoleGrantPermissionRequest,
    pb::AuthRoleGrantPermissionResponse,
    role_grant_permission
);
unary_service!(
    GrpcAuth,
    pb::AuthRoleRevokePermissionRequest,
    pb::AuthRoleRevokePermissionResponse,
    role_revoke_permission
);
