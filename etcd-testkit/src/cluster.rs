//! [`EtcdCluster`]: several etcd members on loopback forming one cluster.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use crate::http;
use crate::server::{
    EtcdServer, MemberSpec, Options, binary_for, pick_free_ports, unique_token, url,
};

/// How many times a cluster start is retried when a picked port turned out
/// to be taken by the time etcd bound it.
const START_ATTEMPTS: usize = 3;

/// An etcd cluster of `n` members on loopback, all killed on drop (and with the
/// test process, see [`crate::process`]).
///
/// Each member is an [`EtcdServer`] with the usual per-member controls
/// ([`kill`](EtcdServer::kill), [`pause`](EtcdServer::pause),
/// [`resume`](EtcdServer::resume), [`restart`](EtcdServer::restart)).
/// A restarted member rejoins with its old data dir and ports.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use etcd_testkit::{EtcdCluster, http};
///
/// let cluster = EtcdCluster::start(3).await;
/// let endpoints = cluster.client_urls(); // what a client under test connects to
/// let (leader, followers) = cluster.leader_and_followers().await;
/// assert_eq!(followers.len(), 2);
///
/// cluster.member(leader).kill(); // SIGKILL: the other two keep a quorum
/// let (new_leader, _) = cluster.leader_and_followers().await; // once they elected one
/// assert_ne!(new_leader, leader);
/// http::kv_put(&endpoints[new_leader], b"k", b"v").await.unwrap();
///
/// cluster.member(leader).restart().await; // same data dir and ports; catches up
/// let back = cluster.member(leader).client_url();
/// assert_eq!(http::kv_get(&back, b"k").await.unwrap(), Some(b"v".to_vec()));
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
    /// member (`POST /v3/maintenance/status` through its JSON gateway, 2 s per member;
    /// members that do not answer, such as killed or paused ones, are skipped). Waits up
    /// to 10 s for the members to agree on a leader.
    ///
    /// # Panics
    ///
    /// When no leader is known after 10 s, and at once for a cluster started with
    /// [`ServerTls`](crate::ServerTls): the kit speaks plain HTTP only.
    pub async fn leader_and_followers(&self) -> (usize, Vec<usize>) {
        self.assert_plain_http("find the leader");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut ids = Vec::new();
            let mut leader_id = None;
            for url in self.client_urls() {
                let status = gateway(&url, "/v3/maintenance/status", "{}").await.ok();
                ids.push(status.as_deref().and_then(|s| u64_field(s, "member_id")));
                if let Some(leader) = status
                    .as_deref()
                    .and_then(|s| u64_field(s, "leader"))
                    .filter(|&l| l != 0)
                {
                    leader_id.get_or_insert(leader);
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
        self.assert_plain_http("replace a member");
        let other = self.client_urls()[(i + 1) % self.len()].clone();
        let peer = self.members[i].peer_url();
        let members = gateway(
            &other,
            "/v3/cluster/member/list",
            r#"{"linearizable":true}"#,
        )
        .await
        .unwrap_or_else(|e| panic!("list the members: {e}"));
        let old = member_id_by_peer(&members, &peer)
            .unwrap_or_else(|| panic!("no member with peer URL {peer} in {members}"));
        // etcd refuses a removal ("unhealthy cluster") until the members that remain have
        // been connected for five seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let remove = format!(r#"{{"ID":"{old}"}}"#);
            match gateway(&other, "/v3/cluster/member/remove", &remove).await {
                Ok(_) => break,
                Err(e)
                    if e.contains("unhealthy cluster") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("remove the member: {e}"),
            }
        }
        self.members[i].kill();
        let add = format!(r#"{{"peerURLs":["{peer}"],"isLearner":{is_learner}}}"#);
        let added = gateway(&other, "/v3/cluster/member/add", &add)
            .await
            .unwrap_or_else(|e| panic!("add the member again: {e}"));
        let new = added
            .find(r#""member":"#)
            .and_then(|at| u64_field(&added[at..], "ID"))
            .unwrap_or(0);
        self.members[i].rejoin_wiped().await;
        (old, new)
    }

    fn assert_plain_http(&self, what: &str) {
        assert!(
            self.members[0].client_url().starts_with("http://"),
            "cannot {what} of a TLS cluster: the kit reaches etcd's JSON gateway over plain \
             HTTP only"
        );
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

/// `POST path` with the JSON `body` to the gateway at `url` (2 s): the reply's body, or
/// why there is none (the error names the path and the member, and carries etcd's error).
async fn gateway(url: &str, path: &str, body: &str) -> Result<String, String> {
    match http::post(url, path, body, Duration::from_secs(2)).await {
        Ok(reply) if reply.status == 200 => Ok(reply.body),
        Ok(reply) => Err(format!("{path} on {url}: {} {}", reply.status, reply.body)),
        Err(e) => Err(format!("{path} on {url}: {e}")),
    }
}

/// The first `"key":` of a gateway reply, as the number it holds (the gateway writes
/// 64-bit integers as JSON strings, e.g. `"leader":"13668033151171901709"`).
fn u64_field(json: &str, key: &str) -> Option<u64> {
    let pattern = format!("\"{key}\":");
    let rest = json[json.find(&pattern)? + pattern.len()..].trim_start();
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// In a member list reply (`{"members":[{"ID":"..","name":"..","peerURLs":[..],..},..]}`),
/// the ID of the member whose peer URLs include `peer`.
fn member_id_by_peer(json: &str, peer: &str) -> Option<u64> {
    let quoted = format!("\"{peer}\"");
    // Each piece after an `"ID":` holds that member's fields up to the next member's ID.
    json.split(r#""ID":"#)
        .skip(1)
        .find(|member| member.contains(&quoted))
        .and_then(|member| u64_field(&format!(r#""ID":{member}"#), "ID"))
}

#[cfg(test)]
mod tests {
    use super::{member_id_by_peer, u64_field};

    #[test]
    fn reads_gateway_replies() {
        let status = r#"{"header":{"cluster_id":"1","member_id":"13668033151171901709","revision":"1"},"version":"3.4.23","leader":"42","raftIndex":"4"}"#;
        assert_eq!(u64_field(status, "member_id"), Some(13668033151171901709));
        assert_eq!(u64_field(status, "leader"), Some(42));
        assert_eq!(u64_field(status, "absent"), None);
        assert_eq!(u64_field(r#"{"leader": 7}"#, "leader"), Some(7));

        let list = r#"{"header":{"member_id":"9"},"members":[{"ID":"11","name":"m0","peerURLs":["http://127.0.0.1:2380"],"clientURLs":["http://127.0.0.1:2379"]},{"ID":"22","peerURLs":["http://127.0.0.1:23800"],"isLearner":true}]}"#;
        assert_eq!(member_id_by_peer(list, "http://127.0.0.1:2380"), Some(11));
        assert_eq!(member_id_by_peer(list, "http://127.0.0.1:23800"), Some(22));
        assert_eq!(member_id_by_peer(list, "http://127.0.0.1:238"), None);
    }
}
