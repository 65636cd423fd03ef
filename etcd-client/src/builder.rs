//! Settings for a client, and the stacks of services built from them.

use std::time::Duration;

use bytes::Bytes;
use etcd_core::grpc::{GrpcAuth, GrpcCluster, GrpcKv, GrpcLease, GrpcMaintenance, GrpcWatch};
use etcd_core::kv::KvLimits;
use etcd_core::{Error, IntoBytes, InvalidRequest, Result};

use crate::client::Client;
use crate::endpoint::{ConnectOptions, channel};
use crate::maintenance::Maintenance;
use crate::stack::{failover, stack};

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
            namespace: Bytes::new(),
            limits: KvLimits::default(),
        }
    }

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
        self.build()
    }

    fn build(self) -> Result<Client> {
        let ClientBuilder {
            endpoints,
            options,
            namespace,
            limits,
        } = self;
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
        // One stack per etcd service, over the same connections.
        Ok(Client {
            kv: etcd_core::Kv::new(stack(&members, GrpcKv::new, &namespace)).with_limits(limits),
            lease: etcd_lease::Lessor::new(stack(&members, GrpcLease::new, &namespace)),
            watcher: etcd_watch::Watcher::new(stack(&members, GrpcWatch::new, &namespace)),
            cluster: etcd_core::Cluster::new(failover(&members, GrpcCluster::new)),
            maintenance: Maintenance::new(failover(&members, GrpcMaintenance::new)),
            auth: etcd_core::Auth::new(failover(&members, GrpcAuth::new)),
        })
    }
}
