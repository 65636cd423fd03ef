//! The client: one handle on a whole cluster.

use etcd_core::grpc::{GrpcKv, GrpcLease, GrpcWatch};
use etcd_core::{Error, InvalidRequest, Result};
use etcd_watch::{GroupEvents, Watch, WatchGroup};
use tonic::transport::Channel;

use crate::endpoint::{ConnectOptions, channel};
use crate::failover::Failover;

/// The KV handle of a [`Client`]: calls spread over the members, with failover.
pub type Kv = etcd_core::Kv<Failover<GrpcKv<Channel>>>;

/// The lease handle of a [`Client`]: unary calls spread over the members with failover;
/// all of the client's keep-alives share one stream, reopened on another member when it
/// breaks.
pub type Lessor = etcd_lease::Lessor<Failover<GrpcLease<Channel>>>;

/// The watch handle of a [`Client`]: all of the client's watches share one stream, which
/// is resumed on another member, without loss or duplicates, when it breaks.
pub type Watcher = etcd_watch::Watcher<Failover<GrpcWatch<Channel>>>;

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
}

impl Client {
    /// Connects to a cluster through one or more of its members (`http://host:port`, or
    /// `host:port`).
    ///
    /// Connections are made on first use, so members that are down now do not make this
    /// fail; calls go to the members that answer. An address that is not a valid endpoint
    /// fails with [`Error::InvalidRequest`].
    pub async fn connect<E, I>(endpoints: I) -> Result<Self>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<str>,
    {
        let options = ConnectOptions::default();
        let members = endpoints
            .into_iter()
            .map(|e| {
                let address = e.as_ref().trim().to_owned();
                channel(&address, &options).map(|ch| (address, ch))
            })
            .collect::<Result<Vec<_>>>()?;
        if members.is_empty() {
            return Err(Error::InvalidRequest(InvalidRequest::Other(
                "no endpoints given: name at least one member, such as http://127.0.0.1:2379"
                    .into(),
            )));
        }
        let kv = Failover::new(
            members
                .iter()
                .map(|(a, ch)| (a.clone(), GrpcKv::new(ch.clone()))),
        );
        let lease = Failover::new(
            members
                .iter()
                .map(|(a, ch)| (a.clone(), GrpcLease::new(ch.clone()))),
        );
        let watch = Failover::new(
            members
                .iter()
                .map(|(a, ch)| (a.clone(), GrpcWatch::new(ch.clone()))),
        );
        Ok(Self {
            kv: etcd_core::Kv::new(kv),
            lease: etcd_lease::Lessor::new(lease),
            watcher: etcd_watch::Watcher::new(watch),
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
    pub fn watcher(&self) -> (WatchGroup<Failover<GrpcWatch<Channel>>>, GroupEvents) {
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
}
