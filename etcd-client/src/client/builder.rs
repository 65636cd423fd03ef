//! Settings for a client, and the stacks of services built from them.

use std::time::Duration;

use etcd_core::grpc::{GrpcAuth, GrpcCluster, GrpcKv, GrpcLease, GrpcMaintenance, GrpcWatch};
use etcd_core::kv::KvLimits;
use etcd_core::{BoxError, IntoBytes, Result};
#[allow(unused_imports)] // named by the docs
use etcd_core::{Error, InvalidRequest};

use super::Client;
use crate::auth_session::{AuthSession, AuthSettings, Credentials, reauthenticating};
use crate::endpoint::{ConnectOptions, HTTP2_VARIABLE, Http2Transport, channel, check_keep_alive};
use crate::endpoints::Endpoints;
use crate::maintenance::Maintenance;
use crate::member_transport::{
    MakeTransport, MemberTransport, TransportBody, TransportService, WrapChannel, box_transport,
};
use crate::services::{
    AuthStack, ClusterStack, ElectionStack, KvStack, LeaseStack, LockStack, WatchStack,
};
use crate::stack::{StackSettings, stack, stack_without_namespace, transport};
use etcd_core::layer::{Monotonic, RetryPolicy, RevisionFloor};

/// Settings for a [`Client`], from [`Client::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .connect() is awaited"]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    options: ConnectOptions,
    layers: StackSettings,
    limits: KvLimits,
    auto_sync: Option<Duration>,
    auth: AuthSettings,
    /// The HTTP/2 of plain-text members, when chosen here.
    http2: Option<Http2Transport>,
    /// The lease keep-alive's timing, when chosen here.
    lease_keep_alive: Option<etcd_lease::KeepAliveConfig>,
    /// The user's transport of each endpoint, replacing our own connections.
    transport: Option<MakeTransport>,
    /// The largest response message accepted.
    max_response_size: usize,
}

impl ClientBuilder {
    pub(crate) fn new<E, I>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = E>,
        E: AsRef<str>,
    {
        Self {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.as_ref().trim().to_owned())
                .collect(),
            options: ConnectOptions::default(),
            layers: StackSettings::default(),
            limits: KvLimits::default(),
            auto_sync: None,
            auth: AuthSettings::default(),
            http2: None,
            lease_keep_alive: None,
            transport: None,
            max_response_size: etcd_core::grpc::DEFAULT_MAX_RESPONSE_SIZE,
        }
    }

    /// Puts every key of the KV, watch and lease APIs under `prefix`: requests get it
    /// prepended, responses have it removed, and "all keys" means all keys of the
    /// namespace. An empty prefix (the default) changes nothing.
    pub fn namespace(mut self, prefix: impl IntoBytes) -> Self {
        self.layers.namespace = prefix.into_bytes();
        self
    }

    /// How long establishing a connection to a member may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// HTTP/2 keep-alive: a ping every `interval` while calls or streams are open, and the
    /// connection is dropped when an answer takes longer than `timeout` (default 30 s and
    /// 10 s). Idle connections are never pinged (etcd refuses that).
    ///
    /// etcd closes a connection pinged more often than its `--grpc-keepalive-min-time`
    /// (5 s by default) with GOAWAY `too_many_pings`, failing every call on it. So an
    /// `interval` below 5 s makes [`connect`](Self::connect) fail with
    /// [`Error::InvalidRequest`], unless the servers' lower minimum is declared with
    /// [`server_keepalive_min_time`](Self::server_keepalive_min_time). A zero interval or
    /// timeout is refused the same way.
    ///
    /// ```no_run
    /// # async fn example() -> etcd3::Result<()> {
    /// use std::time::Duration;
    /// // The cluster runs with --grpc-keepalive-min-time=500ms.
    /// let client = etcd3::Client::builder(["http://127.0.0.1:2379"])
    ///     .keep_alive(Duration::from_secs(1), Duration::from_millis(500))
    ///     .server_keepalive_min_time(Duration::from_millis(500))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.options.keep_alive = Some((interval, timeout));
        self
    }

    /// Declares the servers' `--grpc-keepalive-min-time` when the cluster runs with a
    /// value other than etcd's default of 5 s: [`keep_alive`](Self::keep_alive) intervals
    /// down to `min` are then accepted (and intervals below it refused). Declaring less
    /// than the servers allow gets connections closed with GOAWAY `too_many_pings`.
    pub fn server_keepalive_min_time(mut self, min: Duration) -> Self {
        self.options.server_keepalive_min_time = min;
        self
    }

    /// Sends no HTTP/2 keep-alive pings.
    pub fn no_keep_alive(mut self) -> Self {
        self.options.keep_alive = None;
        self
    }

    /// Which HTTP/2 implementation serves the members (`http://` and `https://`): this
    /// crate's own ([`Http2Transport::Builtin`], the default) or tonic's `Channel` (hyper
    /// and h2, [`Http2Transport::Tonic`]).
    ///
    /// When this is not called, the environment variable `ETCD_CLIENT_HTTP2` decides:
    /// `builtin` or `tonic` (any case; empty or unset means the default). Any other value
    /// makes [`connect`](Self::connect) fail with [`Error::InvalidRequest`], as does
    /// choosing `Builtin` (here or in the variable) when etcd-client was built without its
    /// `builtin-http2` feature (whose absence makes `Tonic` the default).
    ///
    /// ```no_run
    /// # async fn example() -> etcd3::Result<()> {
    /// use etcd3::{Client, Http2Transport};
    /// let client = Client::builder(["http://127.0.0.1:2379"])
    ///     .http2_transport(Http2Transport::Tonic)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn http2_transport(mut self, transport: Http2Transport) -> Self {
        self.http2 = Some(transport);
        self
    }

    /// TLS for `https://` endpoints (and endpoints given without a scheme): the CA that
    /// signed the servers' certificates, optionally a client certificate, and a server
    /// name override; see [`Tls`](crate::Tls). Without it, `https://` endpoints are
    /// refused with [`Error::InvalidRequest`].
    pub fn tls(mut self, tls: crate::Tls) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// The deadline of every call, retries included. For watches and keep-alives it bounds
    /// their creation: a watch until the server's created reply (`client.watch(..)`
    /// awaited, `WatchGroup::add`), a keep-alive until the first renewal's reply
    /// (`client.lease().keep_alive(..)` awaited, `keep_alive_once`); the streams, once
    /// established, are not bounded. A call that takes longer fails with
    /// [`Error::Timeout`](crate::Error::Timeout) (inside the watch or lease error); a
    /// write that timed out may still have been applied. Default: none.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.layers.request_timeout = Some(timeout);
        self
    }

    /// The largest response message the client accepts, in bytes: 2 GiB − 1 by default
    /// ([`DEFAULT_MAX_RESPONSE_SIZE`](etcd_core::grpc::DEFAULT_MAX_RESPONSE_SIZE), as
    /// etcd's Go client). A larger one fails its call with
    /// [`Error::ResponseTooLarge`](crate::Error::ResponseTooLarge) as soon as its length
    /// arrives, before any of it is buffered; on the watch stream it ends the stream's
    /// watches with that error. etcd itself sets no limit on responses (a range over many
    /// keys may be large), so lower it where you know your responses are smaller, to
    /// bound what a broken or hostile server can make the client hold. The watches of
    /// one stream share its fate: a watch that needs a large response is best given a
    /// watcher of its own ([`Client::new_watcher`]), and a [`Cache`](crate::Cache) whose
    /// range cannot be followed stops (`Health::Stopped`).
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = bytes;
        self
    }

    /// The timing of lease keep-alives (first-reply and stall timeouts, reconnect
    /// backoff; default: [`KeepAliveConfig::default`](etcd_lease::KeepAliveConfig)).
    /// Unless `config` sets its own
    /// [`start_timeout`](etcd_lease::KeepAliveConfig::start_timeout), starting a
    /// keep-alive is bounded by the [request timeout](Self::request_timeout).
    pub fn lease_keep_alive(mut self, config: etcd_lease::KeepAliveConfig) -> Self {
        self.lease_keep_alive = Some(config);
        self
    }

    /// How calls are retried (default: [`RetryPolicy::default`]; [`RetryPolicy::never`]
    /// turns retries off). Only calls that cannot apply twice are ever resent.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.layers.retry = policy;
        self
    }

    /// Asks etcd to serve every call and stream only from a member that has a leader:
    /// a member cut off from its cluster then refuses unary calls at once with
    /// [`NoLeader`](crate::ServerErrorKind::NoLeader) (retried on another member) and
    /// ends watch and keep-alive streams (reopened on another member), instead of
    /// hanging or serving stale data. Default: off.
    pub fn require_leader(mut self, require: bool) -> Self {
        self.layers.require_leader = require;
        self
    }

    /// Monotonic reads: the client remembers the highest revision it has seen in any KV
    /// answer, and a read a member answers at an older revision (a member that fell
    /// behind, or was restored from an older snapshot) is sent to another member instead;
    /// when no member is current, the read fails with
    /// [`Error::StaleRead`](crate::Error::StaleRead). Serializable reads then never go
    /// back in time either, whichever member serves them. Default: off.
    pub fn monotonic_reads(mut self, on: bool) -> Self {
        self.layers.floor = on.then(RevisionFloor::new);
        self
    }

    /// Adds a tower layer over every member's connection (the wire tier: it sees
    /// `http::Request`s of gRPC calls and streams), for tracing, metrics, rate limits,
    /// timeouts or anything else. StackSettings added later wrap earlier ones. The client's own
    /// auth-token and require-leader middleware sit above them.
    ///
    /// The layered service may answer with any HTTP body of [`Bytes`](bytes::Bytes) (tower-http's
    /// `TraceLayer` wraps the body to see its end, for example); the client puts it in
    /// tonic's [`Body`](tonic::body::Body). Its errors become
    /// [`Error::Transport`](crate::Error::Transport).
    ///
    /// ```no_run
    /// # async fn example() -> etcd3::Result<()> {
    /// use std::time::Duration;
    /// let client = etcd3::Client::builder(["http://127.0.0.1:2379"])
    ///     .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(2)))
    ///     .layer(tower_http::trace::TraceLayer::new_for_grpc())
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Without layers, calls go straight to each member's connection. Each layer costs
    /// every call an allocation (the layered service is type-erased), and one more when
    /// its response body is not tonic's `Body`.
    pub fn layer<L, B>(mut self, layer: L) -> Self
    where
        L: tower::Layer<MemberTransport> + Send + Sync + 'static,
        L::Service: TransportService<B>,
        B: TransportBody,
    {
        let inner = self.layers.wrap.take();
        let wrap = WrapChannel::new(move |link| {
            let below = MemberTransport::new(link, inner.as_ref());
            box_transport(layer.layer(below))
        });
        self.layers.wrap = Some(wrap);
        self
    }

    /// Gives every endpoint a transport of your own, made by `make` from the endpoint's
    /// URL: any tower service that carries gRPC calls, such as a tonic `Channel` set up
    /// your way, a hyper client, a tunnel or an in-process server.
    ///
    /// The client calls `make` once per endpoint, for those given to [`Client::builder`]
    /// and for those found or set later ([`auto_sync`](Self::auto_sync),
    /// [`Client::sync_endpoints`], [`Client::set_endpoints`]; an endpoint that stays
    /// keeps its transport), and sends that member's calls and streams through the
    /// service returned. Calling this again replaces the earlier `make`.
    ///
    /// The client then makes no connection of its own, so the settings of its own
    /// connections do not apply: [`tls`](Self::tls), [`keep_alive`](Self::keep_alive),
    /// [`no_keep_alive`](Self::no_keep_alive),
    /// [`server_keepalive_min_time`](Self::server_keepalive_min_time),
    /// [`http2_transport`](Self::http2_transport) (and `ETCD_CLIENT_HTTP2`) and
    /// [`connect_timeout`](Self::connect_timeout) are ignored, and `make` gets each URL as
    /// written, with no scheme added. Everything else stays, above the transport: the
    /// [layers](Self::layer) wrap it, and above them sit the auth token, require-leader,
    /// retries, the request timeout, failover across the endpoints and the namespace.
    ///
    /// `make` runs in [`connect`](Self::connect) and whenever the endpoints change, and
    /// must not wait on the network: make connections lazily (tonic's `connect_lazy`), so
    /// that a member down at start does not fail the client. An error from `make` fails
    /// `connect` (or the change of endpoints, leaving them as they were) with
    /// [`Error::InvalidRequest`] naming the endpoint.
    ///
    /// The service may answer with any HTTP body of [`Bytes`](bytes::Bytes), and fail with any error
    /// (which becomes [`Error::Transport`](crate::Error::Transport)). Failover resends a
    /// write on another member only when the error proves the request never left: a
    /// refused connection under tonic or hyper does, and a transport of yours can say so
    /// with [`NeverSent`](etcd_core::transport::NeverSent).
    ///
    /// ```no_run
    /// # async fn example() -> etcd3::Result<()> {
    /// use std::time::Duration;
    /// use tonic::transport::Endpoint;
    ///
    /// let client = etcd3::Client::builder(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
    ///     .transport(|url| {
    ///         let channel = Endpoint::from_shared(url.to_owned())?
    ///             .connect_timeout(Duration::from_secs(1))
    ///             .connect_lazy();
    ///         // Bounds each call, and the opening of each watch or keep-alive stream.
    ///         let transport = tower::ServiceBuilder::new()
    ///             .timeout(Duration::from_secs(5))
    ///             .service(channel);
    ///         Ok::<_, tonic::transport::Error>(transport)
    ///     })
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn transport<F, S, B, E>(mut self, make: F) -> Self
    where
        F: Fn(&str) -> std::result::Result<S, E> + Send + Sync + 'static,
        E: Into<BoxError>,
        S: TransportService<B>,
        B: TransportBody,
    {
        self.transport = Some(MakeTransport::new(move |address| {
            make(address).map(box_transport).map_err(Into::into)
        }));
        self
    }

    /// Keeps the endpoints in step with the cluster: every `interval`, the member list is
    /// read and the endpoints become the client URLs of its started voting members
    /// (learners are skipped). Stops when the last clone of the client is dropped.
    /// Default: off (see [`Client::sync_endpoints`] to do it once).
    pub fn auto_sync(mut self, interval: Duration) -> Self {
        self.auto_sync = Some(interval);
        self
    }

    /// The server's `--max-txn-ops`, when the cluster sets it (default 128): larger
    /// transactions are refused before sending.
    pub fn max_txn_ops(mut self, ops: usize) -> Self {
        self.limits.max_txn_ops = ops;
        self
    }

    /// Authenticates as `user`: the client gets a token on its first call, sends it with
    /// every call and stream, and gets a new one when the server refuses it (expired, or
    /// issued before a change of users, roles or permissions), retrying the refused call
    /// once. A wrong password fails calls with
    /// [`ServerErrorKind::AuthFailed`](crate::ServerErrorKind::AuthFailed); with auth
    /// disabled on the server, calls go without a token. See [`AuthSession`](crate::AuthSession). The
    /// password never appears in `Debug` output or logs.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth.credentials = Some(Credentials::new(user, password));
        self
    }

    /// Sends `token` (from an earlier `Authenticate`) with every call. The client never
    /// refreshes a token it was given: when the server refuses it, calls fail with
    /// [`ServerErrorKind::InvalidAuthToken`](crate::ServerErrorKind::InvalidAuthToken).
    /// Overrides [`credentials`](Self::credentials). A token that is not visible ASCII
    /// makes `connect` fail with [`Error::InvalidRequest`].
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth.token = Some(token.into());
        self
    }

    /// Builds the client. Connections are made on first use, so this fails only on
    /// invalid settings, with [`Error::InvalidRequest`].
    pub async fn connect(self) -> Result<Client> {
        self.build()
    }

    fn build(self) -> Result<Client> {
        let ClientBuilder {
            endpoints,
            mut options,
            layers,
            limits,
            auth,
            auto_sync,
            http2,
            lease_keep_alive,
            transport: user_transport,
            max_response_size: limit,
        } = self;
        // The settings of our own connections, which a user transport replaces.
        if user_transport.is_none() {
            let variable = std::env::var_os(HTTP2_VARIABLE);
            let variable = variable.as_ref().map(|v| v.to_string_lossy());
            options.http2 = Http2Transport::resolve(http2, variable.as_deref())?;
            check_keep_alive(&options)?;
        }
        let mut layers = layers;
        layers.session = AuthSession::new(auth)?;
        let members = {
            let layers = layers.clone();
            Endpoints::new(endpoints, move |address| {
                let link = match &user_transport {
                    Some(make) => make.link(address)?,
                    None => channel(address, &options)?,
                };
                Ok(transport(link, &layers))
            })?
        };
        layers.session.set_authenticator(
            members.failover(move |t| GrpcAuth::new(t).max_response_size(limit)),
        );
        // Starting a keep-alive or a watch is bounded by the request timeout; the streams
        // themselves are not.
        let mut keep_alive_config = lease_keep_alive.unwrap_or_default();
        if keep_alive_config.start_timeout.is_none() {
            keep_alive_config.start_timeout = layers.request_timeout;
        }
        // One stack per etcd service, over the same connections.
        let mut client = Client {
            kv: etcd_core::Kv::new(KvStack(stack(
                &members,
                {
                    let floor = layers.floor.clone();
                    move |transport| {
                        Monotonic::new(
                            GrpcKv::new(transport).max_response_size(limit),
                            floor.clone(),
                        )
                    }
                },
                &layers,
            )))
            .with_limits(limits),
            lease: etcd_lease::Lessor::with_config(
                LeaseStack(stack(
                    &members,
                    move |t| GrpcLease::new(t).max_response_size(limit),
                    &layers,
                )),
                keep_alive_config,
            ),
            watcher: reauthenticating(
                etcd_watch::Watcher::new(WatchStack(stack(
                    &members,
                    move |t| GrpcWatch::new(t).max_response_size(limit),
                    &layers,
                )))
                .with_create_timeout(layers.request_timeout),
                &layers.session,
            ),
            cluster: etcd_core::Cluster::new(ClusterStack(stack_without_namespace(
                &members,
                move |t| GrpcCluster::new(t).max_response_size(limit),
                &layers,
            ))),
            maintenance: Maintenance::new(
                members.failover(move |t| GrpcMaintenance::new(t).max_response_size(limit)),
                layers.session.clone(),
            ),
            auth: etcd_core::Auth::new(AuthStack(stack_without_namespace(
                &members,
                move |t| GrpcAuth::new(t).max_response_size(limit),
                &layers,
            ))),
            session: layers.session.clone(),
            locks: etcd_core::lock::LockHandle::new(LockStack(stack(
                &members,
                move |t| etcd_core::grpc::GrpcLock::new(t).max_response_size(limit),
                &layers,
            ))),
            elections: etcd_core::election::ElectionHandle::new(ElectionStack(stack(
                &members,
                move |t| etcd_core::grpc::GrpcElection::new(t).max_response_size(limit),
                &layers,
            ))),
            endpoints: members,
            sync: None,
        };
        if let Some(interval) = auto_sync {
            client.sync = Some(std::sync::Arc::new(super::SyncTask::start(
                &client, interval,
            )));
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<Client>) -> String {
        match result {
            Err(Error::InvalidRequest(InvalidRequest::Other(why))) => why.to_string(),
            Err(other) => panic!("expected InvalidRequest, got {other:?}"),
            Ok(_) => panic!("expected InvalidRequest, got a client"),
        }
    }

    #[tokio::test]
    async fn a_keep_alive_faster_than_the_servers_allow_is_refused() {
        let builder = Client::builder(["http://127.0.0.1:2379"]);
        let why = refused(
            builder
                .clone()
                .keep_alive(Duration::from_secs(1), Duration::from_millis(500))
                .connect()
                .await,
        );
        assert!(why.contains("too_many_pings"), "{why}");
        assert!(why.contains("server_keepalive_min_time"), "{why}");
        // Just below etcd's default minimum, and zero, are refused too.
        refused(
            builder
                .clone()
                .keep_alive(Duration::from_millis(4999), Duration::from_secs(1))
                .connect()
                .await,
        );
        refused(
            builder
                .clone()
                .keep_alive(Duration::ZERO, Duration::from_secs(1))
                .server_keepalive_min_time(Duration::ZERO)
                .connect()
                .await,
        );
        // A declared lower minimum is honoured, and still enforced.
        builder
            .clone()
            .keep_alive(Duration::from_secs(1), Duration::from_millis(500))
            .server_keepalive_min_time(Duration::from_millis(500))
            .connect()
            .await
            .expect("allowed by the declared minimum");
        refused(
            builder
                .clone()
                .keep_alive(Duration::from_millis(400), Duration::from_millis(500))
                .server_keepalive_min_time(Duration::from_millis(500))
                .connect()
                .await,
        );
        // The default, etcd's minimum itself, and no keep-alive at all are accepted.
        builder.clone().connect().await.expect("the default");
        builder
            .clone()
            .keep_alive(Duration::from_secs(5), Duration::from_secs(1))
            .connect()
            .await
            .expect("etcd's minimum");
        builder
            .clone()
            .keep_alive(Duration::from_secs(1), Duration::from_secs(1))
            .no_keep_alive()
            .connect()
            .await
            .expect("no keep-alive");
    }

    /// A tonic channel to `url`, as a user would make it.
    fn users_channel(url: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?.connect_lazy())
    }

    #[tokio::test]
    async fn an_endpoint_the_users_transport_refuses_fails_connect() {
        let builder = Client::builder(["http://127.0.0.1:2379", "http://not a url"]);
        let why = refused(builder.transport(users_channel).connect().await);
        assert!(why.contains("endpoint http://not a url"), "{why}");
        assert!(
            why.contains("the transport given to the builder refused it"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn the_settings_of_our_own_connections_do_not_bind_a_users_transport() {
        // A keep-alive etcd would punish, and no scheme: both are the transport's business.
        let client = Client::builder(["127.0.0.1:2379"])
            .keep_alive(Duration::from_secs(1), Duration::from_millis(500))
            .transport(|url: &str| users_channel(&format!("http://{url}")))
            .connect()
            .await
            .expect("a client over the user's transport");
        assert_eq!(client.endpoints(), ["127.0.0.1:2379"]);
    }
}
