//! Memory of this process, from `/proc/self/status`.

/// Resident set size now and at its peak (`VmRSS`, `VmHWM`), in MiB.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rss {
    pub(crate) now_mib: f64,
    pub(crate) peak_mib: f64,
}

pub(crate) fn rss() -> Rss {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(f64::NAN)
    };
    Rss {
        now_mib: kib("VmRSS:") / 1024.0,
        peak_mib: kib("VmHWM:") / 1024.0,
    }
}
