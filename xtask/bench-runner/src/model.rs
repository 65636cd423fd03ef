//! What is run (workloads, clients, scale runs) and what one run measured.

use std::collections::BTreeMap;

use crate::json::{self, Fields, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    Put,
    Get,
    GetSerializable,
    Txn,
    Watch,
    WatchReplay,
    CacheCatchUp,
    LeaseKeepAlive,
    Range,
    Scan,
}

impl Workload {
    pub(crate) const ALL: [Workload; 10] = [
        Workload::Put,
        Workload::Get,
        Workload::GetSerializable,
        Workload::Txn,
        Workload::Watch,
        Workload::WatchReplay,
        Workload::CacheCatchUp,
        Workload::LeaseKeepAlive,
        Workload::Range,
        Workload::Scan,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::GetSerializable => "get-serializable",
            Workload::Txn => "txn",
            Workload::Watch => "watch",
            Workload::WatchReplay => "watch-replay",
            Workload::CacheCatchUp => "cache-catchup",
            Workload::LeaseKeepAlive => "lease-keepalive",
            Workload::Range => "range",
            Workload::Scan => "scan",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The concurrencies run when `--concurrency` does not say: 256 range calls in flight
    /// would hold about 750 MB of responses, and 256 watches each replaying 20,000 events
    /// would be 5 million events a run.
    pub(crate) fn default_concurrency(self) -> &'static [usize] {
        match self {
            Workload::WatchReplay | Workload::CacheCatchUp | Workload::Range | Workload::Scan => {
                &[1, 16]
            }
            _ => &[1, 16, 256],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Impl {
    Ours,
    Theirs,
}

impl Impl {
    pub(crate) const ALL: [Impl; 2] = [Impl::Ours, Impl::Theirs];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Theirs => "theirs",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// The runs of our client alone, at a scale the peer has no equivalent API for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scale {
    /// 10,000 watches over one stream, one event each.
    Watches,
    /// 10,000 leases kept alive for a minute.
    Leases,
}

impl Scale {
    pub(crate) const ALL: [Scale; 2] = [Scale::Watches, Scale::Leases];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scale::Watches => "watches-10k",
            Scale::Leases => "leases-10k",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Scale> {
        Scale::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What one timed run (one child process) measured.
#[derive(Clone, Debug)]
pub(crate) struct RunResult {
    pub(crate) workload: Workload,
    pub(crate) concurrency: usize,
    pub(crate) imp: Impl,
    pub(crate) round: usize,
    pub(crate) elapsed_s: f64,
    /// Operations completed: calls, or events received (by all watches) for watch.
    pub(crate) ops: u64,
    /// Keys returned (range) or events (watch); equal to `ops` otherwise.
    pub(crate) items: u64,
    /// Responses or events checked (right count, right values, no loss, no repeat).
    pub(crate) checked: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) client_cpu_s: f64,
    pub(crate) server_cpu_s: f64,
    /// `VmHWM` of the child at the end of the run (warm-up included), MiB.
    pub(crate) peak_rss_mib: f64,
    /// `VmRSS` of the child at the end of the run, MiB.
    pub(crate) rss_mib: f64,
}

impl RunResult {
    /// A run that produced no measurement (the child failed).
    pub(crate) fn failed(
        workload: Workload,
        concurrency: usize,
        imp: Impl,
        round: usize,
        error: String,
    ) -> Self {
        RunResult {
            workload,
            concurrency,
            imp,
            round,
            elapsed_s: f64::NAN,
            ops: 0,
            items: 0,
            checked: 0,
            errors: 1,
            first_error: Some(error),
            p50_us: f64::NAN,
            p99_us: f64::NAN,
            client_cpu_s: f64::NAN,
            server_cpu_s: f64::NAN,
            peak_rss_mib: f64::NAN,
            rss_mib: f64::NAN,
        }
    }

    pub(crate) fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed_s
    }

    pub(crate) fn items_per_s(&self) -> f64 {
        self.items as f64 / self.elapsed_s
    }

    pub(crate) fn client_cpu_us_per_op(&self) -> f64 {
        self.client_cpu_s * 1e6 / self.ops.max(1) as f64
    }

    pub(crate) fn server_cpu_us_per_op(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.ops.max(1) as f64
    }

    pub(crate) fn json(&self) -> String {
        json::Writer::default()
            .str("workload", self.workload.name())
            .int("concurrency", self.concurrency as u64)
            .str("client", self.imp.name())
            .int("round", self.round as u64)
            .num("elapsed_s", self.elapsed_s, 4)
            .int("ops", self.ops)
            .int("items", self.items)
            .int("checked", self.checked)
            .int("errors", self.errors)
            .opt_str("first_error", self.first_error.as_deref())
            .num("ops_per_s", self.ops_per_s(), 1)
            .num("items_per_s", self.items_per_s(), 1)
            .num("p50_us", self.p50_us, 1)
            .num("p99_us", self.p99_us, 1)
            .num("client_cpu_s", self.client_cpu_s, 6)
            .num("server_cpu_s", self.server_cpu_s, 6)
            .num("client_cpu_us_per_op", self.client_cpu_us_per_op(), 3)
            .num("server_cpu_us_per_op", self.server_cpu_us_per_op(), 3)
            .num("peak_rss_mib", self.peak_rss_mib, 2)
            .num("rss_mib", self.rss_mib, 2)
            .finish()
    }

    pub(crate) fn from_json(map: &BTreeMap<String, Value>) -> Result<Self, String> {
        let text = |key: &str| {
            map.text(key)
                .ok_or_else(|| format!("no `{key}` in {map:?}"))
        };
        let int = |key: &str| {
            let n = map.num(key);
            if n.is_finite() { n as u64 } else { 0 }
        };
        Ok(RunResult {
            workload: Workload::from_name(text("workload")?).ok_or("unknown workload")?,
            concurrency: int("concurrency") as usize,
            imp: Impl::from_name(text("client")?).ok_or("unknown client")?,
            round: int("round") as usize,
            elapsed_s: map.num("elapsed_s"),
            ops: int("ops"),
            items: int("items"),
            checked: int("checked"),
            errors: int("errors"),
            first_error: map.text("first_error").map(str::to_owned),
            p50_us: map.num("p50_us"),
            p99_us: map.num("p99_us"),
            client_cpu_s: map.num("client_cpu_s"),
            server_cpu_s: map.num("server_cpu_s"),
            peak_rss_mib: map.num("peak_rss_mib"),
            rss_mib: map.num("rss_mib"),
        })
    }
}
