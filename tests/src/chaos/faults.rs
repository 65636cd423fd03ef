//! The faults a chaos run injects, drawn from a seed.

use std::time::Duration;

use etcd_proto::etcdserverpb::alarm_request::AlarmAction;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_testkit::{EtcdCluster, FaultProxy, Mode};
use serde::Serialize;

use crate::history::workload::Rng;

/// Which member a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Target {
    /// The leader when the fault starts.
    Leader,
    /// A follower when the fault starts.
    Follower,
}

/// One fault, with how long it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// SIGKILL the member, restart it after `down`.
    Kill {
        /// Which member.
        target: Target,
        /// How long it stays down.
        down: Duration,
    },
    /// SIGSTOP the member, SIGCONT it after `down`.
    Stop {
        /// Which member.
        target: Target,
        /// How long it stays stopped.
        down: Duration,
    },
    /// The client's connections to the member pass nothing for `down` (no reset).
    Blackhole {
        /// Which member.
        target: Target,
        /// How long.
        down: Duration,
    },
    /// Every chunk between the client and the member is delayed by `delay`, for `down`.
    Delay {
        /// Which member.
        target: Target,
        /// The added latency per chunk.
        delay: Duration,
        /// How long.
        down: Duration,
    },
    /// The next `n` client→member chunks reach the member, then their connection is
    /// reset before any answer: writes with an unknown outcome.
    Cut {
        /// Which member.
        target: Target,
        /// How many connections to cut.
        n: usize,
    },
    /// Every connection between the client and the member is reset.
    Reset {
        /// Which member.
        target: Target,
    },
    /// A follower is stopped while the others commit `entries` writes (outside the
    /// checked keys, straight to a member), then continued: with the cluster's low
    /// `--snapshot-count` it has to catch up from a snapshot (K12).
    Lag {
        /// How many writes it misses.
        entries: usize,
    },
    /// A follower is replaced: removed, wiped, added again with the same peer URL and
    /// started as a new member (K11).
    Replace,
    /// The cluster raises the NoSpace alarm for the leader (E3) and disarms it after
    /// `down`: meanwhile every request that could grow the database (puts, transactions
    /// that put, on 3.5 every transaction, lease grants) is refused with `database space
    /// exceeded`, certainly not applied. The alarm is raised through the Alarm API, which
    /// puts the cluster in the same refusing state as a backend over its quota, without
    /// writing the quota full first.
    NoSpace {
        /// How long the alarm stays raised.
        down: Duration,
    },
}

/// Where [`Fault::Lag`] writes: outside every checked key range.
pub const FILLER_PREFIX: &str = "/chaos-filler/";

impl Fault {
    /// A fault drawn from `rng`.
    pub fn draw(rng: &mut Rng) -> Self {
        let target = if rng.below(2) == 0 {
            Target::Leader
        } else {
            Target::Follower
        };
        let down = Duration::from_millis(2000 + rng.below(4000));
        match rng.below(9) {
            0 => Fault::Kill { target, down },
            1 => Fault::Stop { target, down },
            2 => Fault::Blackhole { target, down },
            3 => Fault::Delay {
                target,
                delay: Duration::from_millis(20 + rng.below(180)),
                down,
            },
            4 => Fault::Cut {
                target,
                n: 1 + rng.below(5) as usize,
            },
            5 => Fault::Reset { target },
            // etcd keeps 5,000 entries behind a snapshot for slow followers: miss more.
            6 => Fault::Lag { entries: 7_000 },
            7 => Fault::NoSpace { down },
            _ => Fault::Replace,
        }
    }

    fn target(self) -> Target {
        match self {
            Fault::Kill { target, .. }
            | Fault::Stop { target, .. }
            | Fault::Blackhole { target, .. }
            | Fault::Delay { target, .. }
            | Fault::Cut { target, .. }
            | Fault::Reset { target } => target,
            Fault::Lag { .. } | Fault::Replace => Target::Follower,
            Fault::NoSpace { .. } => Target::Leader,
        }
    }

    /// Injects the fault on `cluster` (whose members the client reaches through
    /// `proxies`), holds it, heals it, and waits until every member is healthy again.
    /// Returns the member it hit.
    pub async fn inject(self, cluster: &EtcdCluster, proxies: &[FaultProxy]) -> usize {
        let (leader, followers) = cluster.leader_and_followers().await;
        let member = match self.target() {
            Target::Leader => leader,
            Target::Follower => followers.first().copied().unwrap_or(leader),
        };
        let server = cluster.member(member);
        let proxy = &proxies[member];
        match self {
            Fault::Kill { down, .. } => {
                server.kill();
                tokio::time::sleep(down).await;
                server.restart().await;
            }
            Fault::Stop { down, .. } => {
                server.pause();
                tokio::time::sleep(down).await;
                server.resume();
            }
            Fault::Blackhole { down, .. } => {
                proxy.set_mode(Mode::Blackhole).await;
                tokio::time::sleep(down).await;
                proxy.set_mode(Mode::Pass).await;
            }
            Fault::Delay { delay, down, .. } => {
                proxy.set_mode(Mode::Delay(delay)).await;
                tokio::time::sleep(down).await;
                proxy.set_mode(Mode::Pass).await;
            }
            Fault::Cut { n, .. } => {
                proxy.set_mode(Mode::CutAfterRequest { n }).await;
                // The cuts happen as traffic flows; give it time, then stop cutting.
                tokio::time::sleep(Duration::from_secs(2)).await;
                proxy.set_mode(Mode::Pass).await;
            }
            Fault::Reset { .. } => {
                proxy.set_mode(Mode::DropAll).await;
                proxy.set_mode(Mode::Pass).await;
            }
            Fault::Replace => {
                cluster.replace_member(member).await;
            }
            Fault::Lag { entries } => {
                server.pause();
                fill(&cluster.member(leader).client_url(), entries).await;
                server.resume();
            }
            Fault::NoSpace { down } => {
                let url = server.client_url();
                alarm(&url, AlarmAction::Activate).await;
                tokio::time::sleep(down).await;
                alarm(&url, AlarmAction::Deactivate).await;
            }
        }
        cluster.wait_ready().await;
        member
    }
}

/// Raises or disarms the NoSpace alarm of the member at `url`, through that member,
/// retrying while the cluster elects a leader.
async fn alarm(url: &str, action: AlarmAction) {
    use etcd_proto::etcdserverpb::{AlarmRequest, AlarmType, StatusRequest};
    let mut maintenance = MaintenanceClient::new(crate::clients::channel(url));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let result = async {
            let member = maintenance
                .status(StatusRequest {})
                .await?
                .into_inner()
                .header
                .map_or(0, |h| h.member_id);
            maintenance
                .alarm(AlarmRequest {
                    action: action as i32,
                    member_id: member,
                    alarm: AlarmType::Nospace as i32,
                })
                .await
        }
        .await;
        match result {
            Ok(_) => return,
            Err(status) if std::time::Instant::now() < deadline => {
                eprintln!("chaos: alarm {action:?} failed ({status}); trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("chaos: alarm {action:?}: {status}"),
        }
    }
}

/// Commits `entries` small writes under [`FILLER_PREFIX`] through the member at `url`,
/// eight at a time.
pub async fn fill(url: &str, entries: usize) {
    let kv = crate::clients::raw_kv(url);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for i in (t..entries).step_by(8) {
                    // A failed write (an election) is simply one entry fewer.
                    let _ = kv.put(format!("{FILLER_PREFIX}{}", i % 512), "x").await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}
