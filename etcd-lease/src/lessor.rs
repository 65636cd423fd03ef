//! The lease handle: grant, revoke, inspect, list and keep alive.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_core::{BoxError, Error as CoreError, InvalidRequest};
use etcd_proto::etcdserverpb as pb;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tower::{Service, ServiceExt};

use crate::LossReason;
use crate::error::{self, Result};
use crate::handle::KeepAlive;
use crate::keep_alive::{self, Command, KeepAliveConfig, RevokeOutcome};
use crate::response::{
    KeepAliveResponse, Lease, LeasesResponse, RevokeResponse, TimeToLiveResponse,
};
use crate::{LeaseKeepAliveService, LeaseService};

/// The largest TTL etcd accepts, in seconds (`lease.MaxLeaseTTL`).
pub const MAX_TTL_SECS: i64 = 9_000_000_000;

/// A handle on etcd's leases over any service implementing [`LeaseService`] and
/// [`LeaseKeepAliveService`]. Cheap to clone; clones share one keep-alive task and stream.
///
/// ```no_run
/// # async fn example<S>(lessor: etcd_lease::Lessor<S>) -> etcd_lease::Result<()>
/// # where S: etcd_lease::LeaseService + etcd_lease::LeaseKeepAliveService {
/// use std::time::Duration;
///
/// let lease = lessor.grant(Duration::from_secs(10)).await?;
/// let keeper = lessor.keep_alive(lease.id()).await?;
/// assert_eq!(keeper.ttl(), lease.ttl());
/// let info = lessor.time_to_live(lease.id()).keys().await?;
/// # let _ = info;
/// lessor.revoke(lease.id()).await?;
/// assert!(keeper.lost().await.is_known_gone());
/// # Ok(()) }
/// ```
pub struct Lessor<S> {
    service: S,
    config: KeepAliveConfig,
    keeper: Arc<Mutex<Option<mpsc::UnboundedSender<Command>>>>,
}

impl<S: Clone> Clone for Lessor<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            config: self.config,
            keeper: Arc::clone(&self.keeper),
        }
    }
}

impl<S> fmt::Debug for Lessor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lessor")
            .field("config", &self.config)
            .field("keep_alive_running", &self.running_keeper().is_some())
            .finish_non_exhaustive()
    }
}

/// Calls one unary service method, recovering a typed error.
async fn call<S, R>(service: S, request: R) -> Result<S::Response, CoreError>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    service
        .oneshot(request)
        .await
        .map_err(|e| CoreError::from_boxed(e.into()))
}

fn check_id(id: i64) -> Result<()> {
    if id <= 0 {
        return Err(InvalidRequest::InvalidLeaseId(id).into());
    }
    Ok(())
}

impl<S> Lessor<S>
where
    S: LeaseService + LeaseKeepAliveService,
{
    /// A lessor over `service`, with the default [`KeepAliveConfig`].
    pub fn new(service: S) -> Self {
        Self::with_config(service, KeepAliveConfig::default())
    }

    /// A lessor over `service` with the given keep-alive timing.
    pub fn with_config(service: S, config: KeepAliveConfig) -> Self {
        Self {
            service,
            config,
            keeper: Arc::new(Mutex::new(None)),
        }
    }

    /// The keep-alive timing in force.
    pub fn config(&self) -> &KeepAliveConfig {
        &self.config
    }

    /// Grants a lease of `ttl` (rounded up to whole seconds); the server chooses the ID
    /// unless [`Grant::id`] sets one. Await the builder to send it.
    ///
    /// A zero TTL is refused before sending. etcd raises TTLs below its minimum (2 s at
    /// default settings) and refuses TTLs above [`MAX_TTL_SECS`]
    /// ([`ServerErrorKind::LeaseTtlTooLarge`](etcd_core::ServerErrorKind::LeaseTtlTooLarge)).
    pub fn grant(&self, ttl: Duration) -> Grant<S> {
        Grant {
            lessor: self.clone(),
            ttl,
            id: None,
        }
    }

    /// Revokes lease `id`: the lease ends and its keys are deleted. Keep-alives of this
    /// lease through this lessor end with [`LossReason::Revoked`](crate::LossReason::Revoked).
    ///
    /// An unknown lease fails with
    /// [`ServerErrorKind::LeaseNotFound`](etcd_core::ServerErrorKind::LeaseNotFound)
    /// ([`Error::is_lease_not_found`](crate::Error::is_lease_not_found)).
    pub fn revoke(&self, id: i64) -> impl Future<Output = Result<RevokeResponse>> + Send + 'static {
        let service = self.service.clone();
        let keeper = self.running_keeper();
        async move {
            check_id(id)?;
            if let Some(keeper) = &keeper {
                let _ = keeper.send(Command::Revoking { id });
            }
            let result = call(service, pb::LeaseRevokeRequest { id })
                .await
                .map(RevokeResponse::from);
            if let Some(keeper) = &keeper {
                let outcome = RevokeOutcome::of(&result);
                let _ = keeper.send(Command::RevokeDone { id, outcome });
            }
            result
        }
    }

    /// Asks how long lease `id` has left; add [`TimeToLive::keys`] for its keys. Await the
    /// builder to send it. An unknown or expired lease fails with [`Error::LeaseLost`](crate::Error::LeaseLost) ([`LossReason::NotFound`]).
    pub fn time_to_live(&self, id: i64) -> TimeToLive<S> {
        TimeToLive {
            service: self.service.clone(),
            request: pb::LeaseTimeToLiveRequest { id, keys: false },
        }
    }

    /// Lists every live lease of the cluster.
    pub fn list(&self) -> impl Future<Output = Result<LeasesResponse>> + Send + 'static {
        let service = self.service.clone();
        async move { Ok(call(service, pb::LeaseLeasesRequest {}).await?.into()) }
    }

    /// Renews lease `id` once and returns the TTL granted. The request goes over the
    /// lessor's one keep-alive stream (opened if needed, and sent again on a new stream if
    /// that one breaks), so a renewal costs one message each way, not a stream. An unknown
    /// or expired lease fails with [`Error::LeaseLost`](crate::Error::LeaseLost) ([`LossReason::NotFound`]); no reply within
    /// [`KeepAliveConfig::first_ack_timeout`](crate::KeepAliveConfig::first_ack_timeout)
    /// (or [`start_timeout`](crate::KeepAliveConfig::start_timeout), when shorter) fails
    /// with a timeout.
    pub fn keep_alive_once(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<KeepAliveResponse>> + Send + 'static {
        let commands = (id > 0).then(|| self.keeper());
        let timeout = self.config.first_ack_timeout;
        let timeout = self
            .config
            .start_timeout
            .map_or(timeout, |t| t.min(timeout));
        async move {
            check_id(id)?;
            let Some(commands) = commands else {
                return Err(InvalidRequest::InvalidLeaseId(id).into());
            };
            let (reply, answer) = oneshot::channel();
            commands
                .send(Command::Once { id, reply })
                .map_err(|_| error::halted(id))?;
            match tokio::time::timeout(timeout, answer).await {
                Err(_) => Err(CoreError::timeout("lease keep-alive once", timeout)),
                Ok(Err(_)) => Err(error::halted(id)),
                Ok(Ok(reply)) if reply.ttl <= 0 => Err(error::lost(id, LossReason::NotFound)),
                Ok(Ok(reply)) => Ok(reply.into()),
            }
        }
    }

    /// Keeps lease `id` alive in the background until the returned handle is dropped or
    /// the lease is lost. Renewal happens every TTL/3 unless [`KeepAliveBuilder::every`]
    /// sets an interval.
    ///
    /// Awaiting the builder waits for the server's first reply, so an unknown lease fails
    /// at once with [`Error::LeaseLost`](crate::Error::LeaseLost) ([`LossReason::NotFound`]), and the handle knows the granted TTL. No reply
    /// within [`KeepAliveConfig::start_timeout`](crate::KeepAliveConfig::start_timeout)
    /// fails with [`etcd_core::Error::Timeout`]; none within
    /// [`first_ack_timeout`](crate::KeepAliveConfig::first_ack_timeout) with
    /// [`Error::LeaseLost`](crate::Error::LeaseLost) ([`LossReason::Expired`]). All leases
    /// of a lessor (and its clones) are renewed over one `LeaseKeepAlive` stream, reopened
    /// when it breaks or stalls.
    pub fn keep_alive(&self, id: i64) -> KeepAliveBuilder<S> {
        KeepAliveBuilder {
            lessor: self.clone(),
            id,
            every: None,
        }
    }

    /// The command channel of the keep-alive task, started on first use (and again if
    /// the runtime it ran on has shut down).
    fn keeper(&self) -> mpsc::UnboundedSender<Command> {
        let mut keeper = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        match &*keeper {
            Some(commands) if !commands.is_closed() => commands.clone(),
            _ => keeper
                .insert(keep_alive::spawn(self.service.clone(), self.config))
                .clone(),
        }
    }
}

impl<S> Lessor<S> {
    /// The command channel of the keep-alive task, if it runs.
    fn running_keeper(&self) -> Option<mpsc::UnboundedSender<Command>> {
        let keeper = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        keeper.as_ref().filter(|c| !c.is_closed()).cloned()
    }
}

/// Grants a lease. Made by [`Lessor::grant`]; await it to send it.
#[must_use = "a request does nothing until it is awaited"]
pub struct Grant<S> {
    lessor: Lessor<S>,
    ttl: Duration,
    id: Option<i64>,
}

impl<S> fmt::Debug for Grant<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("ttl", &self.ttl)
            .field("id", &self.id)
            .finish()
    }
}

impl<S> Grant<S> {
    /// Asks for this lease ID instead of one chosen by the server (so that a restarted
    /// process can find its lease again). IDs must be positive; an ID in use fails with
    /// [`ServerErrorKind::LeaseExists`](etcd_core::ServerErrorKind::LeaseExists).
    pub fn id(mut self, id: i64) -> Self {
        self.id = Some(id);
        self
    }

    fn build(&self) -> Result<pb::LeaseGrantRequest> {
        if let Some(id) = self.id {
            check_id(id)?;
        }
        if self.ttl.is_zero() {
            return Err(InvalidRequest::OutOfRange {
                what: "lease TTL (seconds)",
                value: 0,
            }
            .into());
        }
        let whole = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        Ok(pb::LeaseGrantRequest {
            ttl: i64::try_from(whole).unwrap_or(i64::MAX),
            id: self.id.unwrap_or(0),
        })
    }
}

impl<S> IntoFuture for Grant<S>
where
    S: LeaseService + LeaseKeepAliveService,
{
    type Output = Result<Lease>;
    type IntoFuture = BoxFuture<'static, Result<Lease>>;

    fn into_future(self) -> Self::IntoFuture {
        let request = self.build();
        let service = self.lessor.service;
        Box::pin(async move { Ok(call(service, request?).await?.into()) })
    }
}

/// Asks for a lease's remaining time. Made by [`Lessor::time_to_live`]; await it to send
/// it.
#[must_use = "a request does nothing until it is awaited"]
pub struct TimeToLive<S> {
    service: S,
    request: pb::LeaseTimeToLiveRequest,
}

impl<S> fmt::Debug for TimeToLive<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeToLive")
            .field("id", &self.request.id)
            .field("keys", &self.request.keys)
            .finish()
    }
}

impl<S> TimeToLive<S> {
    /// Also lists the keys attached to the lease.
    pub fn keys(mut self) -> Self {
        self.request.keys = true;
        self
    }
}

impl<S> IntoFuture for TimeToLive<S>
where
    S: LeaseService,
{
    type Output = Result<TimeToLiveResponse>;
    type IntoFuture = BoxFuture<'static, Result<TimeToLiveResponse>>;

    fn into_future(self) -> Self::IntoFuture {
        let Self { service, request } = self;
        Box::pin(async move {
            let id = request.id;
            check_id(id)?;
            let response = call(service, request).await?;
            // etcd answers an unknown lease with TTL -1, not with an error.
            if response.ttl < 0 {
                return Err(error::lost(id, LossReason::NotFound));
            }
            Ok(response.into())
        })
    }
}

/// Starts keeping a lease alive. Made by [`Lessor::keep_alive`]; await it for the
/// [`KeepAlive`] handle.
#[must_use = "a keep-alive does nothing until it is awaited"]
pub struct KeepAliveBuilder<S> {
    lessor: Lessor<S>,
    id: i64,
    every: Option<Duration>,
}

impl<S> fmt::Debug for KeepAliveBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAliveBuilder")
            .field("id", &self.id)
            .field("every", &self.every)
            .finish()
    }
}

impl<S> KeepAliveBuilder<S> {
    /// Renews every `interval` after each reply instead of every TTL/3. An interval at or
    /// above the TTL
    /// lets the lease expire between renewals; the handle then reports
    /// [`LossReason::Expired`](crate::LossReason::Expired). When several handles keep the
    /// same lease alive, the shortest interval wins.
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }
}

impl<S> IntoFuture for KeepAliveBuilder<S>
where
    S: LeaseService + LeaseKeepAliveService,
{
    type Output = Result<KeepAlive>;
    type IntoFuture = BoxFuture<'static, Result<KeepAlive>>;

    fn into_future(self) -> Self::IntoFuture {
        let Self { lessor, id, every } = self;
        Box::pin(async move {
            check_id(id)?;
            if every.is_some_and(|e| e.is_zero()) {
                return Err(InvalidRequest::OutOfRange {
                    what: "keep-alive interval (ms)",
                    value: 0,
                }
                .into());
            }
            let commands = lessor.keeper();
            let (reply, registration) = oneshot::channel();
            commands
                .send(Command::Register { id, every, reply })
                .map_err(|_| error::halted(id))?;
            let registration = registration.await.map_err(|_| error::halted(id))?;
            let mut handle =
                KeepAlive::new(id, registration.generation, registration.status, commands);
            match lessor.config.start_timeout {
                None => handle.first_renewal().await?,
                // Dropping the handle stops the keep-alive.
                Some(limit) => tokio::time::timeout(limit, handle.first_renewal())
                    .await
                    .map_err(|_| CoreError::timeout("lease keep-alive start", limit))??,
            }
            Ok(handle)
        })
    }
}
