//! The client: one handle on a whole cluster.

use std::sync::Arc;
use std::time::Duration;

use etcd_core::Result;
use etcd_watch::{GroupEvents, Watch};

mod builder;

use crate::auth_session::AuthSession;
use crate::endpoints::Endpoints;
use crate::maintenance::Maintenance;
use crate::services::{AuthStack, ClusterStack, KvStack, LeaseStack, WatchStack};
pub use builder::ClientBuilder;

/// The KV handle of a [`Client`]: calls spread over the members, with failover.
pub type Kv = etcd_core::Kv<KvStack>;

/// The lease handle of a [`Client`]: unary calls spread over the members with failover;
/// all of the client's keep-alives share one stream, reopened on another member when it
/// breaks.
pub type Lessor = etcd_lease::Lessor<LeaseStack>;

/// The watch handle of a [`Client`]: all of the client's watches share one stream, which
/// is resumed on another member, without loss or duplicates, when it breaks.
pub type Watcher = etcd_watch::Watcher<WatchStack>;

/// Several watches of a [`Client`] whose responses reach one consumer, from
/// [`Client::watch_group`]: added and cancelled by ID, on the client's one watch stream.
pub type WatchGroup = etcd_watch::WatchGroup<WatchStack>;

/// The cluster membership handle of a [`Client`]: calls spread over the members, with
/// failover (membership changes are forwarded to the leader by whichever member answers).
pub type Cluster = etcd_core::Cluster<ClusterStack>;

/// The auth handle of a [`Client`]: users, roles, permissions, tokens; calls spread over
/// the members, with failover.
pub type Auth = etcd_core::Auth<AuthStack>;

/// A client for an etcd cluster. Cheap to clone, `Send + Sync`; every method takes `&self`.
///
/// ```no_run
/// # async fn example() -> etcd3::Result<()> {
/// let client = etcd3::Client::connect(["http://127.0.0.1:2379"]).await?;
/// client.kv().put("greeting", "hello").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) kv: Kv,
    pub(crate) lease: Lessor,
    pub(crate) watcher: Watcher,
    pub(crate) cluster: Cluster,
    pub(crate) maintenance: Maintenance,
    pub(crate) auth: Auth,
    pub(crate) session: AuthSession,
    pub(crate) locks: crate::concurrency::ServerLock,
    pub(crate) elections: crate::concurrency::ServerElection,
    pub(crate) endpoints: Endpoints,
    pub(crate) sync: Option<Arc<SyncTask>>,
}

/// The background task of [`ClientBuilder::auto_sync`]; ends when the last client clone
/// drops it.
#[derive(Debug)]
pub(crate) struct SyncTask(tokio::task::JoinHandle<()>);

impl SyncTask {
    pub(crate) fn start(client: &Client, interval: Duration) -> Self {
        let (cluster, endpoints) = (client.cluster.clone(), client.endpoints.clone());
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(error) = sync(&cluster, &endpoints).await {
                    tracing::debug!(%error, "endpoint sync failed; keeping the current endpoints");
                }
            }
        }))
    }
}

impl Drop for SyncTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sets the endpoints to the client URLs of the started voting members.
async fn sync(cluster: &Cluster, endpoints: &Endpoints) -> Result<Vec<String>> {
    let members = cluster.members().await?;
    let urls: Vec<String> = members
        .members()
        .iter()
        .filter(|m| !m.is_learner() && m.is_started())
        .flat_map(|m| m.client_urls().iter().cloned())
        .collect();
    endpoints.set(urls.iter().cloned())?;
    Ok(urls)
}

impl Client {
    /// Connects to a cluster through one or more of its members (`http://host:port`, or
    /// `host:port`), with the default settings; see [`Client::builder`] for the others.
    ///
    /// Connections are made on first use, so members that are down now do not make this
    /// fail; calls go to the members that answer. An address that is not a valid endpoint
    /// fails with [`Error::InvalidRequest`](crate::Error::InvalidRequest).
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
    /// # async fn example() -> etcd3::Result<()> {
    /// use std::time::Duration;
    /// let client = etcd3::Client::builder(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
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
        ClientBuilder::new(endpoints)
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
    pub fn watch_group(&self) -> (WatchGroup, GroupEvents) {
        self.watcher.group()
    }

    /// Asks the server for a progress notification on every watch of this client.
    pub async fn watch_progress(&self) -> Result<()> {
        self.watcher.request_progress().await
    }

    /// The watch handle itself, shared by [`watch`](Self::watch) and
    /// [`watch_group`](Self::watch_group).
    pub fn watches(&self) -> &Watcher {
        &self.watcher
    }

    /// A watcher with a gRPC stream of its own (on the same connection), with this client's
    /// settings: [`watch`](Self::watch) and [`watch_group`](Self::watch_group) share one stream
    /// for all their watches, which etcd serves from one loop. Watches on separate
    /// watchers are served in parallel; use this for watches that replay long histories
    /// or carry heavy traffic.
    ///
    /// ```no_run
    /// # async fn example(client: etcd3::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let audit = client.new_watcher();
    /// let mut stream = audit.watch("audit/").prefix().from_revision(1).await?;
    /// # let _ = stream; Ok(()) }
    /// ```
    pub fn new_watcher(&self) -> Watcher {
        self.watcher.on_new_stream()
    }

    /// A local copy of `range`, kept in step with etcd (see [`Cache`](crate::Cache)):
    /// listed page by page at one revision, then followed by a watch on this client's
    /// watch stream (shared by all its caches and watches). Resolves once the first list
    /// is in.
    ///
    /// ```no_run
    /// # async fn example(client: etcd3::Client) -> etcd3::Result<()> {
    /// use etcd3::KeyRange;
    /// let flags = client.cache(KeyRange::prefix("flags/")).await?;
    /// let written = client.kv().put("flags/dark-mode", "on").await?.revision();
    /// flags.wait_for(written).await?;
    /// assert_eq!(flags.get("flags/dark-mode").unwrap().value(), b"on");
    /// # Ok(()) }
    /// ```
    pub async fn cache(&self, range: etcd_core::KeyRange) -> Result<crate::Cache> {
        crate::Cache::start(self.kv.clone(), self.watcher.clone(), range).await
    }

    /// A local copy of `range` as it was at `revision`, then caught up with every change
    /// since and kept in step (see [`Cache::start_at`](crate::Cache::start_at)): for a
    /// process resuming from a revision it already knows. A compacted `revision` fails
    /// with [`ServerErrorKind::Compacted`](crate::ServerErrorKind::Compacted).
    ///
    /// ```no_run
    /// # async fn example(client: etcd3::Client, saved_at: i64) -> etcd3::Result<()> {
    /// use etcd3::KeyRange;
    /// let flags = client.cache_at(KeyRange::prefix("flags/"), saved_at).await?;
    /// let now = client.kv().get("flags/").count_only().await?.revision();
    /// flags.wait_for(now).await?; // caught up
    /// # Ok(()) }
    /// ```
    pub async fn cache_at(
        &self,
        range: etcd_core::KeyRange,
        revision: i64,
    ) -> Result<crate::Cache> {
        crate::Cache::start_at(self.kv.clone(), self.watcher.clone(), range, revision).await
    }

    /// Registers an instance of `service` as `{service}/{name}` holding `endpoint`, kept
    /// alive under a lease until the [`Registration`](crate::discovery::Registration) is
    /// closed or dropped, and written again if the lease is lost (see
    /// [`discovery`](crate::discovery)). Await it; set the lease's TTL with
    /// [`Register::ttl`](crate::discovery::Register::ttl). An empty service or name is
    /// [`Error::InvalidRequest`](crate::Error::InvalidRequest) when awaited.
    ///
    /// ```no_run
    /// # async fn example(client: etcd3::Client) -> etcd3::Result<()> {
    /// use etcd3::discovery::Endpoint;
    /// let endpoint = Endpoint::new("10.0.0.1:50051")
    ///     .with_metadata(serde_json::json!({"zone": "eu-1"}));
    /// let registration = client
    ///     .register("services/greeter", "instance-1", endpoint)
    ///     .await?;
    /// // ... serve ...
    /// registration.close().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "discovery")]
    pub fn register(
        &self,
        service: &str,
        name: &str,
        endpoint: crate::discovery::Endpoint,
    ) -> crate::discovery::Register {
        crate::discovery::Register::new(
            self.clone(),
            crate::discovery::instance_key(service, name),
            endpoint,
        )
    }

    /// The instances of `service` (the keys under `{service}/`) as they come and go: a
    /// [`tower::discover::Discover`] stream of inserts and removals, starting with every
    /// instance registered now (see [`Discovery`](crate::discovery::Discovery)).
    #[cfg(feature = "discovery")]
    pub async fn discover(&self, service: &str) -> Result<crate::discovery::Discovery> {
        let prefix = crate::discovery::service_prefix(service)?;
        let cache = self.cache(etcd_core::KeyRange::prefix(prefix)).await?;
        Ok(crate::discovery::Discovery::new(cache))
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

    /// The client's auth state: its user, whether calls carry a token, how many times it
    /// authenticated; and [`refresh`](AuthSession::refresh) to get a new token now.
    pub fn auth_session(&self) -> &AuthSession {
        &self.session
    }

    /// The client's endpoints, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.list()
    }

    /// Replaces the client's endpoints, for every clone of the client: calls and streams
    /// opened from now on go to the new members; connections to endpoints that stay are
    /// kept. An empty or invalid list fails with
    /// [`Error::InvalidRequest`](crate::Error::InvalidRequest) and changes nothing.
    pub fn set_endpoints<E, I>(&self, endpoints: I) -> Result<()>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<str>,
    {
        self.endpoints
            .set(endpoints.into_iter().map(|e| e.as_ref().to_owned()))
    }

    /// Adds an endpoint (no change when it is already there).
    pub fn add_endpoint(&self, endpoint: impl AsRef<str>) -> Result<()> {
        let mut list = self.endpoints();
        if !list.iter().any(|e| e == endpoint.as_ref().trim()) {
            list.push(endpoint.as_ref().to_owned());
        }
        self.set_endpoints(list)
    }

    /// Removes an endpoint; removing the last one fails with
    /// [`Error::InvalidRequest`](crate::Error::InvalidRequest).
    pub fn remove_endpoint(&self, endpoint: impl AsRef<str>) -> Result<()> {
        let list = self
            .endpoints()
            .into_iter()
            .filter(|e| e != endpoint.as_ref().trim());
        self.set_endpoints(list)
    }

    /// Reads the member list once and makes the client URLs of the started voting members
    /// (learners skipped) the client's endpoints; returns them. See
    /// [`ClientBuilder::auto_sync`] to do it on an interval.
    pub async fn sync_endpoints(&self) -> Result<Vec<String>> {
        sync(&self.cluster, &self.endpoints).await
    }
}
