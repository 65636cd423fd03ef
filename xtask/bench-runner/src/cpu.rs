//! CPU time of this process (`getrusage`) and of the etcd server (`/proc/<pid>/stat`), and the
//! monotonic clock shared by the parent and its children.

use std::time::Duration;

/// User + system CPU time of this process so far.
pub(crate) fn self_cpu() -> Duration {
    // SAFETY: `getrusage` only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// utime + stime of process `pid` from `/proc/<pid>/stat` (clock-tick resolution).
pub(crate) fn proc_cpu(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; the fields after it are plain.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| std::io::Error::other("malformed /proc/<pid>/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); utime and stime are fields 14 and 15.
    let parse = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| std::io::Error::other("malformed /proc/<pid>/stat"))
    };
    let ticks = parse(14)? + parse(15)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the machine, so a time
/// stamped by the parent (in a put value) can be compared with one read by a child.
pub(crate) fn mono_ns() -> u64 {
    // SAFETY: `clock_gettime` only writes into the zeroed struct we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
