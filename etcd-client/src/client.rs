//! The client: one handle on a whole cluster.

use etcd_core::grpc::{GrpcAuth, GrpcCluster, GrpcKv, GrpcLease, GrpcMaintenance, GrpcWatch};
use std::time::Duration;

use bytes::Bytes;
use etcd_core::kv::KvLimits;
use etcd_core::namespace::Namespace;
use etcd_core::{Error, IntoBytes, InvalidRequest, Result};
use etcd_watch::{GroupEvents, Watch, WatchGroup};
use tonic::transport::Channel;

use crate::endpoint::{ConnectOptions, channel};
use crate::failover::Failover;
use crate::maintenance::Maintenance;

/// The KV handle of a [`Client`]: calls spread over the members, with failover.
pub type Kv = etcd_core::Kv<Namespace<Failover<GrpcKv<Channel>>>>;

/// The lease handle of a [`Client`]: unary calls spread over the members with failover;
/// all of the client's keep-alives share one stream, reopened on another member when it
/// breaks.
pub type Lessor = etcd_lease::Lessor<Namespace<Failover<GrpcLease<Channel>>>>;

/// The watch handle of a [`Client`]: all of the client's watches share one stream, which
/// is resumed on another member, without loss or duplicates, when it breaks.
pub type Watcher = etcd_watch::Watcher<Namespace<Failover<GrpcWatch<Channel>>>>;

/// The cluster membership handle of a [`Client`]: calls spread over the members, with
/// failover (membership changes are forwarded to the leader by whichever member answers).
pub type Cluster = etcd_core::Cluster<Failover<GrpcCluster<Channel>>>;

/// The auth handle of a [`Client`]: users, roles, permissions, tokens; calls spread over
/// the members, with failover.
pub type Auth = etcd_core::Auth<Failover<GrpcAuth<Channel>>>;

/// A client for an etcd cluster. Cheap to clone, `Send + Sync`; every method takes `&self`.
///
/// ```no_run
/// # async fn example() -> etcd_client::Result<()> {
/// let client = etcd_client::Client::connect(["http://127.0.0.1:2379"]).await?;
/// client.kv().put("greeting", "hello").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    kv: Kv,
    lease: Lessor,
    watcher: Watcher,
    cluster: Cluster,
    maintenance: Maintenance,
    auth: Auth,
}

impl Client {
    /// Connects to a cluster through one or more of its members (`http://host:port`, or
    /// `host:port`), with the default settings; see [`Client::builder`] for the others.
    ///
    /// Connections are made on first use, so members that are down now do not make this
    /// fail; calls go to the members that answer. An address that is not a valid endpoint
    /// fails with [`Error::InvalidRequest`].
    pub async fn connect<E, I>(endpoints: I) -> Result<Self>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<str>,
    {
        Self::builder(endpoints).connect().await
    }

    /// Starts configuring a client for the given members.
    ///
    /// ```no_run
    /// # async fn example() -> etcd_client::Result<()> {
    /// use std::time::Duration;
    /// let client = etcd_client::Client::builder(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
    ///     .namespace("tenant-a/")
    ///     .connect_timeout(Duration::from_secs(3))
    ///     .keep_alive(Duration::from_secs(30), Duration::from_secs(10))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder<E, I>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = E>,
        E: AsRef<str>,
    {
        ClientBuilder {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.as_ref().trim().to_owned())
                .collect(),
            options: ConnectOptions::default(),
            namespace: Bytes::new(),
            limits: KvLimits::default(),
        }
    }

    fn from_builder(builder: ClientBuilder) -> Result<Self> {
        let ClientBuilder {
            endpoints,
            options,
            namespace,
            limits,
        } = builder;
        let members = endpoints
            .into_iter()
            .map(|address| channel(&address, &options).map(|ch| (address, ch)))
            .collect::<Result<Vec<_>>>()?;
        if members.is_empty() {
            return Err(Error::InvalidRequest(InvalidRequest::Other(
                "no endpoints given: name at least one member, such as http://127.0.0.1:2379"
                    .into(),
            )));
        }
        // One failover service per etcd service, over the same connections.
        Ok(Self {
            kv: etcd_core::Kv::new(Namespace::new(
                failover(&members, GrpcKv::new),
                namespace.clone(),
            ))
            .with_limits(limits),
            lease: etcd_lease::Lessor::new(Namespace::new(
                failover(&members, GrpcLease::new),
                namespace.clone(),
            )),
            watcher: etcd_watch::Watcher::new(Namespace::new(
                failover(&members, GrpcWatch::new),
                namespace,
            )),
            cluster: etcd_core::Cluster::new(failover(&members, GrpcCluster::new)),
            maintenance: Maintenance::new(failover(&members, GrpcMaintenance::new)),
            auth: etcd_core::Auth::new(failover(&members, GrpcAuth::new)),
        })
    }

    /// The KV service: get, put, delete, transactions and compaction.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// Leases: grant (optionally with a chosen ID), revoke, time-to-live, list, and
    /// keep-alive of many leases over one stream.
    pub fn lease(&self) -> &Lessor {
        &self.lease
    }

    /// Watches `key`; add `.prefix()`, `.range_end(..)`, `.from_revision(..)`,
    /// `.prev_kv()` and the other options, then await it for a stream of responses.
    pub fn watch(&self, key: impl etcd_core::IntoBytes) -> Watch<Watcher> {
        self.watcher.watch(key)
    }

    /// One watcher carrying several range watches, added and cancelled by ID, whose events
    /// all reach one consumer tagged with their watch ID.
    pub fn watcher(
        &self,
    ) -> (
        WatchGroup<Namespace<Failover<GrpcWatch<Channel>>>>,
        GroupEvents,
    ) {
        self.watcher.group()
    }

    /// Asks the server for a progress notification on every watch of this client.
    pub async fn watch_progress(&self) -> std::result::Result<(), etcd_watch::Error> {
        self.watcher.request_progress().await
    }

    /// The watch handle itself, shared by [`watch`](Self::watch) and
    /// [`watcher`](Self::watcher).
    pub fn watches(&self) -> &Watcher {
        &self.watcher
    }

    /// Cluster membership: list, add (as a voter or a learner), remove, update, promote.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Maintenance: status, alarms, defragment, hashes, move leader, snapshots; for any
    /// member or aimed at one (`status_of(endpoint)`, `member(endpoint)`).
    pub fn maintenance(&self) -> &Maintenance {
        &self.maintenance
    }

    /// Auth: enable and disable, tokens, users, roles and permissions.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The endpoints the client was given, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.maintenance.endpoints()
    }
}

/// A failover service over one `make(channel)` service per member.
fn failover<S>(members: &[(String, Channel)], make: impl Fn(Channel) -> S) -> Failover<S> {
    Failover::new(
        members
            .iter()
            .map(|(address, ch)| (address.clone(), make(ch.clone()))),
    )
}

/// Settings for a [`Client`], from [`Client::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .connect() is awaited"]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    options: ConnectOptions,
    namespace: Bytes,
    limits: KvLimits,
}

impl ClientBuilder {
    /// Puts every key of the KV, watch and lease APIs under `prefix`: requests get it
    /// prepended, responses have it removed, and "all keys" means all keys of the
    /// namespace. An empty prefix (the default) changes nothing.
    pub fn namespace(mut self, prefix: impl IntoBytes) -> Self {
        self.namespace = prefix.into_bytes();
        self
    }

    /// How long establishing a connection to a member may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// HTTP/2 keep-alive: a ping every `interval` while calls or streams are open, and the
    /// connection is dropped when an answer takes longer than `timeout` (default 30 s and
    /// 10 s). etcd refuses pings more often than every 5 s unless its
    /// `--grpc-keepalive-min-time` is lowered, and idle connections are never pinged.
    pub fn keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.options.keep_alive = Some((interval, timeout));
        self
    }

    /// Sends no HTTP/2 keep-alive pings.
    pub fn no_keep_alive(mut self) -> Self {
        self.options.keep_alive = None;
        self
    }

    /// The server's `--max-txn-ops`, when the cluster sets it (default 128): larger
    /// transactions are refused before sending.
    pub fn max_txn_ops(mut self, ops: usize) -> Self {
        self.limits.max_txn_ops = ops;
        self
    }

    /// Builds the client. Connections are made on first use, so this fails only on
    /// invalid settings, with [`Error::InvalidRequest`].
    pub async fn connect(self) -> Result<Client> {
        Client::from_builder(self)
    }
}
