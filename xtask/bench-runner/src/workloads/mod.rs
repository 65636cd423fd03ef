//! The workloads, written once per client: request/response ones ([`ops`]) run by the shared
//! [`harness`](crate::harness); the watch workload ([`watch`]) has its own loop, replaying a
//! history the parent writes once.

pub(crate) mod cache;
pub(crate) mod ops;
pub(crate) mod replay;
pub(crate) mod watch;

/// Value size of every put.
pub(crate) const VALUE_LEN: usize = 256;
/// Keys read by get and compared by txn: `bench/get/0000` ..
pub(crate) const GET_KEYS: u64 = 1000;
/// Keys returned by one range call: `bench/range/00000` ..
pub(crate) const RANGE_KEYS: u64 = 10_000;
pub(crate) const RANGE_PREFIX: &str = "bench/range/";
/// TTL of the leases of the lease-keepalive workload; they expire after the child exits.
pub(crate) const LEASE_TTL_SECS: u64 = 60;

pub(crate) fn get_key(n: u64) -> String {
    format!("bench/get/{:04}", n % GET_KEYS)
}

pub(crate) fn range_key(n: u64) -> String {
    format!("{RANGE_PREFIX}{n:05}")
}

/// A key of the watch workload's history: `bench/watch-history/000000` ..
pub(crate) fn watch_key(n: u64) -> String {
    format!("{}{n:06}", replay::HISTORY_PREFIX)
}
