//! Spawning child processes that die with the test binary, and checking
//! whether a process is still alive.
//!
//! Every etcd process is started with `PR_SET_PDEATHSIG(SIGKILL)` (Linux), so
//! that a test binary that aborts (or is killed, even with `SIGKILL`) leaves
//! no etcd behind. [`spawn_with_pdeathsig`] does the same for any other
//! process a test starts. Linux sends
//! that signal when the *thread* that forked the child exits, not the process;
//! Rust tests run on short-lived threads while a shared server may outlive
//! them. All spawns therefore happen on one dedicated spawner thread that is
//! started lazily and lives until the process exits.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;

struct SpawnRequest {
    command: Command,
    reply: mpsc::SyncSender<io::Result<Child>>,
}

fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("etcd-testkit-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop only ends when
                // the process does; that is what keeps PDEATHSIG quiet.
                for mut request in rx {
                    let _ = request.reply.send(request.command.spawn());
                }
            })
            .expect("cannot start the etcd-testkit spawner thread");
        tx
    })
}

/// Spawns `command` on the long-lived spawner thread, with
/// `PR_SET_PDEATHSIG(SIGKILL)` set in the child: the child is killed when the
/// test process exits, however it exits.
///
/// Use it for helper processes of a test (an example program, a second
/// client) that must not outlive it. The caller still owns the [`Child`]
/// (kill and wait for it as usual). A `pre_exec` hook set on `command` before
/// runs before this one.
///
/// # Errors
///
/// When the spawn fails (e.g. the program does not exist).
#[allow(unsafe_code)]
pub fn spawn_with_pdeathsig(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::sync_channel(1);
    spawner()
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("the etcd-testkit spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the etcd-testkit spawner thread dropped a request"))?
}

/// Sends `signal` to `pid`.
#[allow(unsafe_code)]
pub(crate) fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a process with this pid exists and is not a zombie.
///
/// Reads `/proc/<pid>/stat`; a process that has exited but was not reaped yet
/// (state `Z` or `X`) counts as dead.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and
        // may itself contain spaces or parentheses.
        Ok(stat) => match stat.rfind(')') {
            Some(end) => !matches!(stat[end + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// Whether a process with this pid is stopped (state `T`, e.g. after
/// `SIGSTOP`).
pub fn process_stopped(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rfind(')') {
            Some(end) => matches!(stat[end + 1..].trim_start().chars().next(), Some('T')),
            None => false,
        },
        Err(_) => false,
    }
}
