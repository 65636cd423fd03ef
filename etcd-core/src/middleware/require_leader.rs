//! Asking etcd to serve a call only from a member that has a leader.
//!
//! With the `hasleader: true` metadata, a member that has lost its leader refuses unary
//! calls at once with [`NoLeader`](crate::ServerErrorKind::NoLeader) (before handling them,
//! so the call may safely go to another member) and ends watch and keep-alive streams,
//! instead of serving stale reads or hanging.
//!
//! ```no_run
//! use etcd_core::middleware::RequireLeaderLayer;
//! # #[tokio::main] async fn main() {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:2379").connect_lazy();
//! let transport = tower::ServiceBuilder::new().layer(RequireLeaderLayer::new(true)).service(channel);
//! let kv = etcd_core::Kv::new(etcd_core::grpc::GrpcKv::new(transport));
//! # let _ = kv;
//! # }
//! ```

use std::task::{Context, Poll};

use http::HeaderValue;

/// The metadata key etcd reads.
const HAS_LEADER: &str = "hasleader";

/// A layer adding `hasleader: true` to every call when enabled.
#[derive(Clone, Copy, Debug)]
pub struct RequireLeaderLayer {
    enabled: bool,
}

impl RequireLeaderLayer {
    /// A layer that asks for a leader when `enabled`, and changes nothing otherwise.
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }
}

impl<S> tower::Layer<S> for RequireLeaderLayer {
    type Service = RequireLeader<S>;

    fn layer(&self, inner: S) -> RequireLeader<S> {
        RequireLeader::new(inner, self.enabled)
    }
}

/// A transport whose calls ask for a member with a leader, when enabled.
#[derive(Clone, Debug)]
pub struct RequireLeader<S> {
    inner: S,
    enabled: bool,
}

impl<S> RequireLeader<S> {
    /// Wraps `inner`; with `enabled` false the calls pass unchanged.
    pub fn new(inner: S, enabled: bool) -> Self {
        Self { inner, enabled }
    }

    /// The wrapped transport.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> tower::Service<http::Request<B>> for RequireLeader<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> S::Future {
        if self.enabled {
            request
                .headers_mut()
                .insert(HAS_LEADER, HeaderValue::from_static("true"));
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Service, ServiceExt};

    #[tokio::test]
    async fn the_header_is_added_only_when_enabled() {
        for enabled in [true, false] {
            let mut svc = RequireLeader::new(
                tower::service_fn(|req: http::Request<()>| async move {
                    Ok::<_, std::convert::Infallible>(req.headers().get(HAS_LEADER).cloned())
                }),
                enabled,
            );
            let seen = svc
                .ready()
                .await
                .unwrap()
                .call(http::Request::new(()))
                .await
                .unwrap();
            assert_eq!(seen.is_some(), enabled);
        }
    }
}
