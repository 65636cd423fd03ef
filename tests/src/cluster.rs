//! [`EtcdCluster`]: several etcd members on loopback forming one cluster.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use crate::server::{
    EtcdServer, MemberSpec, Options, binary_for, pick_free_ports, unique_token, url,
};

/// How many times a cluster start is retried when a picked port turned out
/// to be taken by the time etcd bound it.
const START_ATTEMPTS: usize = 3;

/// An etcd cluster of `n` members on loopback, all killed on drop.
///
/// Each member is an [`EtcdServer`] with the usual per-member controls
/// ([`kill`](EtcdServer::kill), [`pause`](EtcdServer::pause),
/// [`resume`](EtcdServer::resume), [`restart`](EtcdServer::restart)).
/// A restarted member rejoins with its old data dir and ports.
///
/// ```no_run
/// # async fn demo() {
/// use etcd_tests::EtcdCluster;
///
/// let cluster = EtcdCluster::start(3).await;
/// let endpoints = cluster.client_urls();
/// cluster.member(0).kill();
/// // ... the other two still have quorum ...
/// cluster.member(0).restart().await;
/// # let _ = endpoints;
/// # }
/// ```
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdServer>,
}

/// Builder for [`EtcdCluster`], for flags and environment shared by all
/// members.
#[derive(Debug, Clone)]
pub struct EtcdClusterBuilder {
    size: usize,
    options: Options,
}

impl EtcdClusterBuilder {
    /// Adds one extra command-line flag to every member.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.options.arg(arg);
        self
    }

    /// Adds several extra command-line flags to every member.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        for arg in args {
            self.options.arg(arg);
        }
        self
    }

    /// Sets an environment variable for every member.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.options.env(key, value);
        self
    }

    /// Sets how long to wait for each member's `/health` on start and
    /// restart (default [`DEFAULT_READY_TIMEOUT`](crate::server::DEFAULT_READY_TIMEOUT)).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.options.ready_timeout = timeout;
        self
    }

    /// Runs this binary instead of [`etcd_binary`](crate::etcd_binary).
    pub fn binary(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.options.binary = Some(path.into());
        self
    }

    /// Serves every member's client URLs over TLS (`https://`); see
    /// [`ServerTls`](crate::server::ServerTls).
    pub fn tls(mut self, tls: crate::server::ServerTls) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// Starts all members (`--initial-cluster-state new`) and waits until
    /// every one of them is healthy, which implies a leader was elected.
    ///
    /// # Panics
    ///
    /// Panics when `n` is zero, or a member cannot be spawned, exits or is
    /// not healthy in time; the message carries the member's log tail.
    pub async fn start(self) -> EtcdCluster {
        assert!(self.size > 0, "an etcd cluster needs at least one member");
        let mut last_error = String::new();
        'attempt: for _ in 0..START_ATTEMPTS {
            let addrs: Vec<(SocketAddr, SocketAddr, SocketAddr)> = (0..self.size)
                .map(|_| {
                    let [client, peer, metrics] = pick_free_ports::<3>();
                    (client, peer, metrics)
                })
                .collect();
            let initial_cluster = addrs
                .iter()
                .enumerate()
                .map(|(i, (_, peer, _))| format!("m{i}={}", url(*peer)))
                .collect::<Vec<_>>()
                .join(",");
            let token = unique_token();
            let binary = binary_for(&self.options);
            let mut members = Vec::with_capacity(self.size);
            for (i, (client, peer, metrics)) in addrs.into_iter().enumerate() {
                let spec = MemberSpec {
                    name: format!("m{i}"),
                    binary: binary.clone(),
                    client,
                    peer,
                    metrics,
                    initial_cluster: initial_cluster.clone(),
                    cluster_token: token.clone(),
                    options: self.options.clone(),
                };
                members.push(EtcdServer::spawn(spec).unwrap_or_else(|e| panic!("{e}")));
            }
            // All members run already; waiting for them one after the other
            // costs no more than waiting for the slowest.
            for member in &members {
                match member.wait_ready_inner().await {
                    Ok(()) => {}
                    Err(e) if e.port_in_use => {
                        last_error = e.message;
                        continue 'attempt;
                    }
                    Err(e) => panic!("{}", e.message),
                }
            }
            return EtcdCluster { members };
        }
        panic!("{last_error}")
    }
}

impl EtcdCluster {
    /// The index of the current leader and of the followers, asked of every running
    /// member over gRPC (members that do not answer are skipped). Waits up to 10 s for the
    /// members to agree on a leader.
    ///
    /// # Panics
    ///
    /// When no leader is known after 10 s.
    pub async fn leader_and_followers(&self) -> (usize, Vec<usize>) {
        use etcd_proto::etcdserverpb::{StatusRequest, maintenance_client::MaintenanceClient};
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut ids = Vec::new();
            let mut leader_id = None;
            for url in self.client_urls() {
                let status = async {
                    let channel = tonic::transport::Endpoint::from_shared(url)
                        .ok()?
                        .connect_timeout(Duration::from_secs(1))
                        .timeout(Duration::from_secs(2))
                        .connect()
                        .await
                        .ok()?;
                    let status = MaintenanceClient::new(channel)
                        .status(StatusRequest {})
                        .await
                        .ok()?;
                    Some(status.into_inner())
                }
                .await;
                ids.push(
                    status
                        .as_ref()
                        .and_then(|s| s.header.as_ref())
                        .map(|h| h.member_id),
                );
                if let Some(s) = status.filter(|s| s.leader != 0) {
                    leader_id.get_or_insert(s.leader);
                }
            }
            if let Some(leader) = leader_id.and_then(|l| ids.iter().position(|id| *id == Some(l))) {
                let followers = (0..ids.len()).filter(|&i| i != leader).collect();
                return (leader, followers);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no leader among {ids:?} after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the current leader; see [`leader_and_followers`](Self::leader_and_followers).
    pub async fn leader(&self) -> usize {
        self.leader_and_followers().await.0
    }

    /// The index of some follower; see [`leader_and_followers`](Self::leader_and_followers).
    pub async fn follower(&self) -> usize {
        self.leader_and_followers().await.1[0]
    }

    /// Starts an `n`-member cluster with default flags and waits until all
    /// members are healthy. Same as `EtcdCluster::builder(n).start()`.
    ///
    /// # Panics
    ///
    /// See [`EtcdClusterBuilder::start`].
    pub async fn start(n: usize) -> EtcdCluster {
        Self::builder(n).start().await
    }

    /// Returns a builder for an `n`-member cluster.
    pub fn builder(n: usize) -> EtcdClusterBuilder {
        EtcdClusterBuilder {
            size: n,
            options: Options::default(),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always `false`: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i` (named `m{i}`), for per-member kill, pause, resume and
    /// restart.
    ///
    /// # Panics
    ///
    /// Panics when `i >= len()`.
    pub fn member(&self, i: usize) -> &EtcdServer {
        &self.members[i]
    }

    /// All members, in order.
    pub fn members(&self) -> &[EtcdServer] {
        &self.members
    }

    /// The client URLs of all members (running or not), in member order.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::client_url).collect()
    }

    /// The client addresses of all members, in member order.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(EtcdServer::client_addr).collect()
    }

    /// Replaces member `i` by a new, empty one with the same name, ports and peer URL
    /// (reliability plan K11): removes it from the cluster through another member, wipes
    /// its data, adds it again and starts it with `--initial-cluster-state=existing`; it
    /// catches up from the leader. Returns the old and the new member IDs.
    ///
    /// # Panics
    ///
    /// When the cluster refuses the change or the new member does not become healthy.
    pub async fn replace_member(&self, i: usize) -> (u64, u64) {
        self.rejoin(i, false).await
    }

    /// Replaces member `i` by an empty learner (a non-voting member that only replicates)
    /// with the same name, ports and peer URL, as [`replace_member`](Self::replace_member)
    /// does with a voter. Returns the old and the new member IDs.
    ///
    /// # Panics
    ///
    /// When the cluster refuses the change or the learner does not become healthy.
    pub async fn replace_with_learner(&self, i: usize) -> (u64, u64) {
        self.rejoin(i, true).await
    }

    async fn rejoin(&self, i: usize, is_learner: bool) -> (u64, u64) {
        use etcd_proto::etcdserverpb::{
            MemberAddRequest, MemberListRequest, MemberRemoveRequest, cluster_client::ClusterClient,
        };
        let other = self.client_urls()[(i + 1) % self.len()].clone();
        let mut cluster = ClusterClient::new(crate::clients::channel(&other));
        let peer = self.members[i].peer_url();
        let members = cluster
            .member_list(MemberListRequest { linearizable: true })
            .await
            .expect("list the members")
            .into_inner()
            .members;
        let old = members
            .iter()
            .find(|m| m.peer_ur_ls.contains(&peer))
            .unwrap_or_else(|| panic!("no member with peer URL {peer} in {members:?}"))
            .id;
        // etcd refuses a removal ("unhealthy cluster") until the members that remain have
        // been connected for five seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match cluster.member_remove(MemberRemoveRequest { id: old }).await {
                Ok(_) => break,
                Err(status)
                    if status.message().contains("unhealthy cluster")
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(status) => panic!("remove the member: {status}"),
            }
        }
        self.members[i].kill();
        let added = cluster
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![peer],
                is_learner,
            })
            .await
            .expect("add the member again")
            .into_inner();
        let new = added.member.map_or(0, |m| m.id);
        self.members[i].rejoin_wiped().await;
        (old, new)
    }

    /// Waits until every running member is healthy.
    ///
    /// # Panics
    ///
    /// Panics when a running member is not healthy within its ready timeout.
    pub async fn wait_ready(&self) {
        for member in self.members.iter().filter(|m| m.is_running()) {
            member.wait_ready().await;
        }
    }
}
