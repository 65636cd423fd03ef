//! Command line of the parent run and of the child runs it starts.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::{Impl, Scale, Workload};
use crate::workloads::replay::History;

pub(crate) const USAGE: &str = "\
bench-runner --endpoint URL --etcd-pid PID --out-dir DIR [--duration-ms 2000] [--rounds 3]
             [--workloads put,get,get-serializable,txn,watch,watch-replay,cache-catchup,
                          lease-keepalive,range,scan]
             [--concurrency LIST (default per workload)] [--clients ours,theirs]
             [--scale watches-10k,leases-10k | --no-scale] [--quick]
             [--scale-watches N] [--scale-leases N] [--scale-hold-ms MS]";

/// The parent: runs every (workload, concurrency, client, round) in a child process.
#[derive(Clone, Debug)]
pub(crate) struct Args {
    pub(crate) endpoint: String,
    pub(crate) etcd_pid: u32,
    pub(crate) out_dir: PathBuf,
    pub(crate) duration: Duration,
    pub(crate) rounds: usize,
    /// Overrides every workload's default concurrencies when given.
    pub(crate) concurrency: Option<Vec<usize>>,
    pub(crate) workloads: Vec<Workload>,
    pub(crate) clients: Vec<Impl>,
    pub(crate) scale: Vec<Scale>,
    pub(crate) scale_watches: usize,
    pub(crate) scale_leases: usize,
    pub(crate) scale_hold: Duration,
}

impl Args {
    pub(crate) fn concurrency_of(&self, w: Workload) -> Vec<usize> {
        match &self.concurrency {
            Some(list) => list.clone(),
            None => w.default_concurrency().to_vec(),
        }
    }
}

/// What a child does: one timed run, or one scale run.
#[derive(Clone, Debug)]
pub(crate) enum ChildTask {
    Run {
        workload: Workload,
        concurrency: usize,
        imp: Impl,
        round: usize,
        duration: Duration,
        /// The revisions of the watch workload's history (`--history-revs FIRST-LAST`).
        history: Option<History>,
    },
    Scale {
        scale: Scale,
        count: usize,
        hold: Duration,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct ChildArgs {
    pub(crate) endpoint: String,
    pub(crate) etcd_pid: u32,
    pub(crate) task: ChildTask,
}

pub(crate) enum Mode {
    Parent(Args),
    Child(ChildArgs),
}

fn list<T>(text: &str, what: &str, one: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| one(s.trim()).ok_or_else(|| format!("{what}: unknown or bad value `{s}`")))
        .collect()
}

fn num<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("{what}: {e}"))
}

pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let mut child = false;
    let mut endpoint = None;
    let mut etcd_pid = None;
    let mut out_dir = None;
    let mut duration = Duration::from_secs(2);
    let mut rounds = 3;
    let mut concurrency = None;
    let mut workloads = Workload::ALL.to_vec();
    let mut clients = Impl::ALL.to_vec();
    let mut scale = Scale::ALL.to_vec();
    let mut quick = false;
    let (mut scale_watches, mut scale_leases, mut scale_hold) = (None, None, None);
    // Child-only options.
    let (mut workload, mut client, mut round, mut count) = (None, None, 0, None);
    let mut history = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--child" => child = true,
            "--endpoint" => endpoint = Some(value()?),
            "--etcd-pid" => etcd_pid = Some(num(&value()?, "--etcd-pid")?),
            "--out-dir" => out_dir = Some(PathBuf::from(value()?)),
            "--duration-ms" => duration = Duration::from_millis(num(&value()?, "--duration-ms")?),
            "--rounds" => rounds = num(&value()?, "--rounds")?,
            "--concurrency" => {
                concurrency = Some(list(&value()?, "--concurrency", |s| s.parse().ok())?)
            }
            "--workloads" => workloads = list(&value()?, "--workloads", Workload::from_name)?,
            "--clients" => clients = list(&value()?, "--clients", Impl::from_name)?,
            "--scale" => scale = list(&value()?, "--scale", Scale::from_name)?,
            "--no-scale" => scale.clear(),
            "--quick" => quick = true,
            "--scale-watches" => scale_watches = Some(num(&value()?, "--scale-watches")?),
            "--scale-leases" => scale_leases = Some(num(&value()?, "--scale-leases")?),
            "--scale-hold-ms" => {
                scale_hold = Some(Duration::from_millis(num(&value()?, "--scale-hold-ms")?))
            }
            "--workload" => workload = Some(value()?),
            "--client" => client = Some(value()?),
            "--round" => round = num(&value()?, "--round")?,
            "--count" => count = Some(num(&value()?, "--count")?),
            "--history-revs" => {
                let text = value()?;
                history = Some(
                    History::parse(&text)
                        .ok_or_else(|| format!("--history-revs: bad range `{text}`"))?,
                )
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}")),
        }
    }
    let endpoint = endpoint.ok_or("--endpoint is required")?;
    let etcd_pid = etcd_pid.ok_or("--etcd-pid is required")?;
    if child {
        let task = match (workload, &scale[..]) {
            (Some(w), _) => ChildTask::Run {
                workload: Workload::from_name(&w).ok_or_else(|| format!("unknown workload {w}"))?,
                concurrency: concurrency
                    .as_deref()
                    .and_then(<[usize]>::first)
                    .copied()
                    .ok_or("--concurrency is required")?,
                imp: client
                    .as_deref()
                    .and_then(Impl::from_name)
                    .ok_or("--client ours|theirs is required")?,
                round,
                duration,
                history,
            },
            (None, [s]) => ChildTask::Scale {
                scale: *s,
                count: count.ok_or("--count is required")?,
                hold: scale_hold.unwrap_or(Duration::ZERO),
            },
            _ => return Err("a child needs --workload or one --scale".into()),
        };
        return Ok(Mode::Child(ChildArgs {
            endpoint,
            etcd_pid,
            task,
        }));
    }
    Ok(Mode::Parent(Args {
        endpoint,
        etcd_pid,
        out_dir: out_dir.ok_or("--out-dir is required")?,
        duration,
        rounds,
        concurrency,
        workloads,
        clients,
        scale,
        scale_watches: scale_watches.unwrap_or(if quick { 1_000 } else { 10_000 }),
        scale_leases: scale_leases.unwrap_or(10_000),
        scale_hold: scale_hold.unwrap_or(Duration::from_secs(if quick { 10 } else { 60 })),
    }))
}
