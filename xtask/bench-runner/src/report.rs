//! Medians over the rounds, ratios ours/theirs, the targets, and the markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::args::Args;
use crate::json::{Fields, Value};
use crate::model::{Impl, RunResult, Workload};
use crate::scale::{CPU_TARGET_PCT, RSS_TARGET_MIB};
use crate::stats::median;

/// Medians of one client's runs at one (workload, concurrency).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Med {
    pub(crate) ops: f64,
    pub(crate) items: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) cpu: f64,
    pub(crate) srv: f64,
    pub(crate) rss: f64,
    pub(crate) checked: u64,
    pub(crate) errors: u64,
}

impl Med {
    fn of(runs: &[&RunResult]) -> Med {
        let m = |f: fn(&RunResult) -> f64| median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>());
        Med {
            ops: m(RunResult::ops_per_s),
            items: m(RunResult::items_per_s),
            p50: m(|r| r.p50_us),
            p99: m(|r| r.p99_us),
            cpu: m(RunResult::client_cpu_us_per_op),
            srv: m(RunResult::server_cpu_us_per_op),
            rss: m(|r| r.peak_rss_mib),
            checked: runs.iter().map(|r| r.checked).sum(),
            errors: runs.iter().map(|r| r.errors).sum(),
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) w: Workload,
    pub(crate) c: usize,
    pub(crate) ours: Option<Med>,
    pub(crate) theirs: Option<Med>,
}

impl Row {
    fn ratio(&self, f: fn(&Med) -> f64) -> f64 {
        match (&self.ours, &self.theirs) {
            (Some(o), Some(t)) => f(o) / f(t),
            _ => f64::NAN,
        }
    }

    pub(crate) fn ops_ratio(&self) -> f64 {
        self.ratio(|m| m.ops)
    }

    pub(crate) fn cpu_ratio(&self) -> f64 {
        self.ratio(|m| m.cpu)
    }

    pub(crate) fn rss_ratio(&self) -> f64 {
        self.ratio(|m| m.rss)
    }

    pub(crate) fn label(&self) -> String {
        format!("{} c={}", self.w.name(), self.c)
    }

    /// The target for this line, and whether it is met (`None`: report only).
    pub(crate) fn target(&self) -> (&'static str, Option<bool>) {
        let (ops, cpu, rss) = (self.ops_ratio(), self.cpu_ratio(), self.rss_ratio());
        let tls = crate::connect::tls_ca().is_some();
        let (text, met) = match self.w {
            Workload::Put | Workload::Get | Workload::GetSerializable | Workload::Txn if tls => {
                if self.c == 16 {
                    (
                        "TLS: ops ≥ 1.0×, CPU/op ≤ 0.5×",
                        Some(ops >= 1.0 && cpu <= 0.5),
                    )
                } else {
                    (
                        "TLS: ops ≥ 1.3×, CPU/op ≤ 0.5×",
                        Some(ops >= 1.3 && cpu <= 0.5),
                    )
                }
            }
            Workload::Put | Workload::Get | Workload::GetSerializable | Workload::Txn => (
                "ops ≥ 1.10×, CPU/op ≤ 0.70×",
                Some(ops >= 1.10 && cpu <= 0.70),
            ),
            Workload::Watch if self.c == 1 || self.c == 16 => ("events/s ≥ 1.0×", Some(ops >= 1.0)),
            Workload::Range => (
                "ops ≥ 1.0×, peak RSS ≤ 0.8×",
                Some(ops >= 1.0 && rss <= 0.8),
            ),
            _ => ("report only", None),
        };
        let errors = self.ours.map_or(0, |m| m.errors) + self.theirs.map_or(0, |m| m.errors);
        let both = self.ours.is_some() && self.theirs.is_some();
        (text, met.filter(|_| both).map(|m| m && errors == 0))
    }
}

pub(crate) fn summarize(results: &[RunResult], args: &Args) -> Vec<Row> {
    let mut rows = Vec::new();
    for &w in &args.workloads {
        for c in args.concurrency_of(w) {
            let med = |imp: Impl| {
                let runs: Vec<&RunResult> = results
                    .iter()
                    .filter(|r| r.workload == w && r.concurrency == c && r.imp == imp)
                    .collect();
                (!runs.is_empty()).then(|| Med::of(&runs))
            };
            rows.push(Row {
                w,
                c,
                ours: med(Impl::Ours),
                theirs: med(Impl::Theirs),
            });
        }
    }
    rows
}

/// `x` with `decimals` digits, or `—` when unknown.
pub(crate) fn num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "—".into()
    }
}

fn pair(row: &Row, f: fn(&Med) -> f64, decimals: usize) -> String {
    let side = |m: &Option<Med>| m.as_ref().map_or("—".into(), |m| num(f(m), decimals));
    format!("{} / {}", side(&row.ours), side(&row.theirs))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**PASS**",
        Some(false) => "**FAIL**",
        None => "—",
    }
}

pub(crate) fn markdown(rows: &[Row], scales: &[BTreeMap<String, Value>], args: &Args) -> String {
    let mut md = String::new();
    if crate::connect::tls_ca().is_some() {
        md.push_str(
            "**TLS**: etcd serves its clients over TLS (a certificate of a throwaway CA both \
             clients trust; rustls with ring on both sides).\n\n",
        );
    }
    let _ = writeln!(
        md,
        "Medians over {} round(s) of {:.1} s per run, each run in a process of its own \
         (warm-up {} ms first); ratio = ours/theirs (ops/s: higher is better; CPU/op and \
         peak RSS: lower is better). Peak RSS is the child's `VmHWM` at the end of its run. \
         watch: one prefix watch receiving the puts (256 B) that `conc` tasks of the same \
         client make for the run's duration, every event checked (none lost or repeated); \
         ops = events/s from the first put to the last event; p50/p99 = put sent → event \
         received. watch-replay: `conc` watches on one client, each replaying from its first \
         revision a history of {} puts × 256 B written once beforehand, in fragments of 32 \
         KiB (the server runs with --max-request-bytes 32768), every event checked (in \
         revision order); ops = events/s over all watches, timed from before the watches are \
         opened (etcd hands a new watch its past on a 100 ms tick, so a run includes 0–100 \
         ms of waiting) until the last one has every event; a watch per stream on both sides \
         (ours `client.new_watcher()` per watch); p50/p99 = time for one watch to receive \
         its whole replay; warm-up = one replay of {} keys. cache-catchup: `conc` caches of \
         the same history's prefix, each listed at the revision before it and caught up to its \
         last revision (every put applied to the copy), ours `Cache::start_at` + `wait_for` \
         on a watcher per cache, theirs a `get` into a `BTreeMap` then a fragmented watch \
         applied to it by hand; every copy checked key by key; ops = events applied/s over \
         all caches. range: one prefix get of 10,000 \
         keys × 256 B per op. lease-keepalive: ours `keep_alive_once` (every task over the \
         client's one keep-alive stream), theirs one `LeaseKeeper` stream per task.\n",
        args.rounds,
        args.duration.as_secs_f64(),
        crate::child::WARMUP.as_millis(),
        crate::workloads::replay::HISTORY,
        crate::workloads::replay::WARMUP_EVENTS,
    );
    md.push_str(
        "| workload | conc | ops/s ours | ops/s theirs | ops/s ratio | p50 µs ours / theirs \
         | p99 µs ours / theirs | client CPU µs/op ours / theirs | CPU/op ratio \
         | server CPU µs/op ours / theirs | peak RSS MiB ours / theirs | RSS ratio \
         | checked ours / theirs | target | verdict |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for row in rows {
        let side = |m: &Option<Med>, f: fn(&Med) -> f64| m.as_ref().map_or(f64::NAN, f);
        let checked = |m: &Option<Med>| {
            m.as_ref().map_or("—".into(), |m| {
                if m.errors > 0 {
                    format!("{} (**{} errors**)", m.checked, m.errors)
                } else {
                    m.checked.to_string()
                }
            })
        };
        let ops_cell = |m: &Option<Med>| {
            let ops = num(side(m, |m| m.ops), 0);
            if matches!(row.w, Workload::Range | Workload::Scan) {
                format!("{ops} ({} keys/s)", num(side(m, |m| m.items), 0))
            } else {
                ops
            }
        };
        let (ours_ops, theirs_ops) = (ops_cell(&row.ours), ops_cell(&row.theirs));
        let (target, met) = row.target();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | **{}** | {} | {} | {} | **{}** | {} | {} | **{}** | {} / {} \
             | {} | {} |",
            row.w.name(),
            row.c,
            ours_ops,
            theirs_ops,
            num(row.ops_ratio(), 2),
            pair(row, |m| m.p50, 0),
            pair(row, |m| m.p99, 0),
            pair(row, |m| m.cpu, 1),
            num(row.cpu_ratio(), 2),
            pair(row, |m| m.srv, 1),
            pair(row, |m| m.rss, 1),
            num(row.rss_ratio(), 2),
            checked(&row.ours),
            checked(&row.theirs),
            target,
            verdict(met),
        );
    }
    if !scales.is_empty() {
        md.push_str("\nScale runs, our client only (no peer equivalent):\n\n");
        md.push_str("| run | count | result | target | verdict |\n|---|---:|---|---|---|\n");
        for s in scales {
            let name = s.text("workload").unwrap_or("?");
            let result = scale_text(s);
            let target = match name {
                "watches-10k" => format!("one stream, peak RSS ≤ {RSS_TARGET_MIB:.0} MiB"),
                _ => format!(
                    "none lost, CPU ≤ {CPU_TARGET_PCT:.0}% of a core, peak RSS ≤ \
                     {RSS_TARGET_MIB:.0} MiB"
                ),
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {result} | {target} | {} |",
                num(s.num("count"), 0),
                verdict(Some(s.flag("pass"))),
            );
        }
    }
    md
}

fn scale_text(s: &BTreeMap<String, Value>) -> String {
    let mut text = match s.text("workload") {
        Some("watches-10k") => format!(
            "created in {} s; {} events delivered in {} s ({}/s), client CPU {} s; \
             watch streams on the server {} → {} (Δ {}); RSS {} MiB after creating, {} MiB \
             at the end, peak {} MiB",
            num(s.num("create_s"), 2),
            num(s.num("events"), 0),
            num(s.num("deliver_s"), 2),
            num(s.num("events_per_s"), 0),
            num(s.num("client_cpu_s"), 2),
            num(s.num("streams_before"), 0),
            num(s.num("streams_after"), 0),
            num(s.num("stream_delta"), 0),
            num(s.num("rss_after_create_mib"), 1),
            num(s.num("rss_mib"), 1),
            num(s.num("peak_rss_mib"), 1),
        ),
        _ => format!(
            "set up in {} s, held {} s: {} lost, {} of {} listed by the server; client CPU \
             {} s = {}% of a core; {} renewals ({}/s); RSS {} MiB, peak {} MiB",
            num(s.num("setup_s"), 2),
            num(s.num("hold_s"), 1),
            num(s.num("lost"), 0),
            num(s.num("listed"), 0),
            num(s.num("count"), 0),
            num(s.num("client_cpu_s"), 3),
            num(s.num("cpu_pct"), 2),
            num(s.num("renewals"), 0),
            num(s.num("renewals_per_s"), 0),
            num(s.num("rss_mib"), 1),
            num(s.num("peak_rss_mib"), 1),
        ),
    };
    if let Some(e) = s.text("first_error") {
        let _ = write!(text, "; **error: {}**", e.replace('|', "\\|"));
    }
    text
}
