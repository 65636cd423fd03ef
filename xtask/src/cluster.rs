//! A throwaway local etcd cluster: N members on free loopback ports, data and logs in a temp dir.
//!
//! Cleanup is guaranteed even when xtask dies from a signal (Ctrl-C, `kill`), which std cannot
//! catch: a small `sh` "reaper" in its own process group holds a pipe from us; when the pipe
//! closes without a `done` message it kills the members and removes the temp dir.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::util::scrub_etcd_env;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 3;

const REAPER_SH: &str = r#"
trap '' INT TERM HUP
dir=$1
pids=
while read -r cmd arg; do
    case $cmd in
        pid) pids="$pids $arg" ;;
        done) exit 0 ;;
    esac
done
if [ -n "$pids" ]; then
    kill -9 $pids 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 $pids 2>/dev/null || break
        sleep 0.2
    done
fi
rm -rf -- "$dir"
"#;

/// The server certificate of a cluster that serves its clients over TLS.
#[derive(Clone, Debug)]
pub(crate) struct ServerTls {
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
}

/// A running cluster; dropping it kills the members and removes their data.
#[derive(Debug)]
pub(crate) struct Cluster {
    members: Vec<Member>,
    /// `https` when the members serve TLS, else `http`.
    scheme: &'static str,
    dir: Option<tempfile::TempDir>,
    reaper: Option<Child>,
    reaper_pipe: Option<ChildStdin>,
}

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    /// Where `GET /health` is served in plain HTTP: the client port, or with TLS the
    /// metrics port.
    health_port: u16,
    child: Child,
    log: PathBuf,
    stderr: PathBuf,
}

impl Cluster {
    /// Starts `members` members of `bin` and waits until all of them report healthy.
    pub(crate) fn start(bin: &Path, members: usize) -> anyhow::Result<Cluster> {
        Cluster::start_with(bin, members, &[])
    }

    /// Like [`Cluster::start`], with `extra_args` added to every member's command line (e.g.
    /// `--unsafe-no-fsync`).
    pub(crate) fn start_with(
        bin: &Path,
        members: usize,
        extra_args: &[&str],
    ) -> anyhow::Result<Cluster> {
        Cluster::start_tls(bin, members, extra_args, None)
    }

    /// Like [`Cluster::start_with`]; with `tls`, the members serve their clients over TLS
    /// (`https://`) with that certificate, and their health over a plain metrics URL.
    pub(crate) fn start_tls(
        bin: &Path,
        members: usize,
        extra_args: &[&str],
        tls: Option<&ServerTls>,
    ) -> anyhow::Result<Cluster> {
        if members == 0 {
            bail!("a cluster needs at least one member");
        }
        let mut attempt = 1;
        loop {
            let mut cluster = Cluster::spawn(bin, members, extra_args, tls)?;
            match cluster.wait_healthy() {
                Ok(()) => return Ok(cluster),
                // Another process may have grabbed one of the free ports we picked.
                Err(_)
                    if attempt < START_ATTEMPTS
                        && cluster.logs_contain("address already in use") =>
                {
                    eprintln!("xtask: etcd port already in use, retrying with other ports");
                    attempt += 1;
                }
                Err(err) => {
                    cluster.print_log_tails();
                    return Err(err);
                }
            }
        }
    }

    /// The client URLs, `http://127.0.0.1:PORT` (`https://` with TLS), one per member.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}://127.0.0.1:{}", self.scheme, m.client_port))
            .collect()
    }

    /// The process ids of the members, in member order.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.child.id()).collect()
    }

    /// The temp dir holding the members' data dirs and logs.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// An error if a member has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        for m in &mut self.members {
            if let Some(status) = m.child.try_wait()? {
                let err = anyhow::anyhow!("etcd member {} exited unexpectedly ({status})", m.name);
                self.print_log_tails();
                return Err(err);
            }
        }
        Ok(())
    }

    fn spawn(
        bin: &Path,
        members: usize,
        extra_args: &[&str],
        tls: Option<&ServerTls>,
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("xtask-etcd-")
            .tempdir()
            .context("cannot create a temp dir for etcd")?;
        let mut reaper = Command::new("sh")
            .args(["-c", REAPER_SH, "xtask-etcd-reaper"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot spawn sh (the cleanup helper)")?;
        let reaper_pipe = reaper.stdin.take();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut cluster = Cluster {
            members: Vec::with_capacity(members),
            scheme,
            dir: Some(dir),
            reaper: Some(reaper),
            reaper_pipe,
        };

        let ports = free_ports(3 * members)?;
        let (client_ports, rest) = ports.split_at(members);
        let (peer_ports, metrics_ports) = rest.split_at(members);
        let names: Vec<String> = (0..members).map(|i| format!("m{i}")).collect();
        let initial_cluster = names
            .iter()
            .zip(peer_ports)
            .map(|(name, port)| format!("{name}=http://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!("xtask-{}-{nanos}", std::process::id());

        for (i, name) in names.into_iter().enumerate() {
            let base = cluster.dir().to_path_buf();
            let log = base.join(format!("{name}.log"));
            let stderr = base.join(format!("{name}.stderr"));
            let client = format!("{scheme}://127.0.0.1:{}", client_ports[i]);
            let peer = format!("http://127.0.0.1:{}", peer_ports[i]);
            let stderr_file = std::fs::File::create(&stderr)?;
            let mut command = Command::new(bin);
            let command = scrub_etcd_env(&mut command);
            let health_port = match tls {
                None => client_ports[i],
                Some(tls) => {
                    command
                        .arg(format!("--cert-file={}", tls.cert_file.display()))
                        .arg(format!("--key-file={}", tls.key_file.display()))
                        .arg(format!(
                            "--listen-metrics-urls=http://127.0.0.1:{}",
                            metrics_ports[i]
                        ));
                    metrics_ports[i]
                }
            };
            let child = command
                .arg(format!("--name={name}"))
                .arg(format!(
                    "--data-dir={}",
                    base.join(format!("{name}.etcd")).display()
                ))
                .arg(format!("--listen-client-urls={client}"))
                .arg(format!("--advertise-client-urls={client}"))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster={initial_cluster}"))
                .arg(format!("--initial-cluster-token={token}"))
                .arg("--initial-cluster-state=new")
                .arg("--logger=zap")
                .arg(format!("--log-outputs={}", log.display()))
                .args(extra_args)
                .stdin(Stdio::null())
                .stdout(stderr_file.try_clone()?)
                .stderr(stderr_file)
                .spawn()
                .with_context(|| format!("cannot start {}", bin.display()))?;
            if let Some(pipe) = &mut cluster.reaper_pipe {
                let _ = writeln!(pipe, "pid {}", child.id());
            }
            cluster.members.push(Member {
                name,
                client_port: client_ports[i],
                health_port,
                child,
                log,
                stderr,
            });
        }
        Ok(cluster)
    }

    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut pending: Vec<usize> = (0..self.members.len()).collect();
        while !pending.is_empty() {
            for m in &mut self.members {
                if let Some(status) = m.child.try_wait()? {
                    bail!("etcd member {} exited during startup ({status})", m.name);
                }
            }
            pending.retain(|&i| !healthy(self.members[i].health_port));
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = pending
                    .iter()
                    .map(|&i| self.members[i].name.as_str())
                    .collect();
                bail!(
                    "etcd did not become healthy within {}s (members {})",
                    STARTUP_TIMEOUT.as_secs(),
                    names.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn logs_contain(&self, needle: &str) -> bool {
        self.members.iter().any(|m| {
            [&m.log, &m.stderr]
                .iter()
                .any(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains(needle)))
        })
    }

    fn print_log_tails(&self) {
        for m in &self.members {
            for path in [&m.stderr, &m.log] {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                eprintln!("---- last lines of {} ----", path.display());
                for line in &lines[lines.len().saturating_sub(20)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
        drop(self.dir.take());
        // The members are gone and reaped: tell the reaper to exit without killing anything.
        if let Some(mut pipe) = self.reaper_pipe.take() {
            let _ = writeln!(pipe, "done");
        }
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.wait();
        }
    }
}

/// `n` distinct free loopback ports (all held until all are picked).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free loopback ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// `GET /health` says `"health":"true"`.
fn healthy(port: u16) -> bool {
    health(port).unwrap_or(false)
}

fn health(port: u16) -> std::io::Result<bool> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    Ok(response.starts_with("HTTP/1.1 200") && response.contains(r#""health":"true""#))
}
