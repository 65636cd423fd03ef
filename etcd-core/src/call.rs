//! One request bound to the service that will send it: the builder returned by the cluster,
//! maintenance and auth handles.
//!
//! A [`Call`] is sent by awaiting it. The request was checked when the call was made; a
//! request found invalid is never sent, and awaiting the call fails at once with
//! [`Error::InvalidRequest`](crate::Error::InvalidRequest). Calls with options (for example
//! [`MemberList::linearizable`](crate::cluster::MemberList)) have them as methods.

use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;

use etcd_proto::etcdserverpb as pb;
use tower::ServiceExt;
use tower::util::Oneshot;

use crate::error::{BoxError, Result};
use crate::future::{FromResponse, ResponseFuture};
use crate::kv::ResponseHeader;

/// A request ready to be sent over `S`, answered with a `T`. Await it to send it.
///
/// Its `Debug` output names the request type only: auth requests carry passwords, which
/// must never reach a log.
#[must_use = "a request does nothing until it is awaited"]
pub struct Call<S, R, T> {
    service: S,
    request: Result<R>,
    _response: PhantomData<fn() -> T>,
}

impl<S, R, T> Call<S, R, T> {
    /// A call of `request` over `service`. An `Err` request is a validation error: awaiting
    /// the call returns it without sending anything. (The handles make calls; this is for
    /// layers that aim a handle's requests elsewhere.)
    pub fn new(service: S, request: Result<R>) -> Self {
        Self {
            service,
            request,
            _response: PhantomData,
        }
    }

    /// Changes the request message, when it passed validation.
    pub(crate) fn map_request(mut self, f: impl FnOnce(&mut R)) -> Self {
        if let Ok(request) = &mut self.request {
            f(request);
        }
        self
    }
}

impl<S, R, T> fmt::Debug for Call<S, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("request", &std::any::type_name::<R>())
            .field("valid", &self.request.is_ok())
            .finish_non_exhaustive()
    }
}

impl<S, R, T> IntoFuture for Call<S, R, T>
where
    S: tower::Service<R, Error: Into<BoxError>>,
    T: FromResponse<S::Response>,
{
    type Output = Result<T>;
    type IntoFuture = ResponseFuture<Oneshot<S, R>, T>;

    fn into_future(self) -> Self::IntoFuture {
        match self.request {
            Ok(request) => ResponseFuture::sent(self.service.oneshot(request)),
            Err(error) => ResponseFuture::rejected(error),
        }
    }
}

/// The answer to a call that returns nothing but the response header (enabling auth,
/// adding a user, defragmenting, moving the leader, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckResponse {
    header: ResponseHeader,
}

impl AckResponse {
    /// The response header; `header().member_id` is the member that answered. etcd
    /// leaves the header out of a defragment's answer: it is then all zeros.
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }
}

/// Implements `FromResponse<$pb>` for [`AckResponse`] from each header-only response.
macro_rules! ack_from {
    ($($pb:ty),* $(,)?) => {$(
        impl FromResponse<$pb> for AckResponse {
            fn from_response(response: $pb) -> Result<Self> {
                Ok(Self { header: response.header.into() })
            }
        }
    )*};
}
ack_from!(
    pb::DefragmentResponse,
    pb::MoveLeaderResponse,
    pb::AuthEnableResponse,
    pb::AuthDisableResponse,
    pb::AuthUserAddResponse,
    pb::AuthUserDeleteResponse,
    pb::AuthUserChangePasswordResponse,
    pb::AuthUserGrantRoleResponse,
    pb::AuthUserRevokeRoleResponse,
    pb::AuthRoleAddResponse,
    pb::AuthRoleDeleteResponse,
    pb::AuthRoleGrantPermissionResponse,
    pb::AuthRoleRevokePermissionResponse,
);

/// Fails validation with [`InvalidRequest::Other`](crate::InvalidRequest::Other).
pub(crate) fn invalid(why: impl Into<std::borrow::Cow<'static, str>>) -> crate::Error {
    crate::Error::InvalidRequest(crate::InvalidRequest::Other(why.into()))
}
