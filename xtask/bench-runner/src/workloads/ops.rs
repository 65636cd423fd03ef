//! put, get, get serializable, txn, range, scan (ours in pages, theirs whole) and lease
//! keep-alive round trips, for both clients,
//! and the puts of the watch workload (values stamped with the time they are sent).
//!
//! Shapes: the KV calls are the same request on both sides. For lease keep-alive round trips
//! the two APIs differ: ours renews once with `Lessor::keep_alive_once(id)` (one request
//! and one reply over the client's one shared `LeaseKeepAlive` stream, for every task; our
//! long-lived `keep_alive` handle renews on a schedule, not on demand), theirs sends on the
//! task's own long-lived stream from `LeaseClient::keep_alive(id)` (`LeaseKeeper::keep_alive()` then
//! `LeaseKeepAliveStream::message()`). Each task has its own lease, granted before the timed
//! part.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{LEASE_TTL_SECS, RANGE_KEYS, RANGE_PREFIX, VALUE_LEN, get_key};
use crate::harness::Driver;
use crate::model::Workload;
use crate::protocol::stamped_value;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn check_range<'a>(values: impl ExactSizeIterator<Item = &'a [u8]>) -> Result<u64, String> {
    let n = values.len() as u64;
    if n != RANGE_KEYS {
        return Err(format!("range: {n} keys, expected {RANGE_KEYS}"));
    }
    for v in values {
        if v.len() != VALUE_LEN {
            return Err("range: wrong value".into());
        }
    }
    Ok(n)
}

#[derive(Clone)]
pub(crate) struct Ours {
    pub(crate) client: etcd3::Client,
    pub(crate) value: Bytes,
}

pub(crate) enum OursTask {
    Kv,
    Lease(i64),
}

impl Driver for Ours {
    type Task = OursTask;

    async fn start(&self, w: Workload) -> Result<OursTask, String> {
        if w != Workload::LeaseKeepAlive {
            return Ok(OursTask::Kv);
        }
        let ttl = Duration::from_secs(LEASE_TTL_SECS);
        let lease = self.client.lease().grant(ttl).await.map_err(err)?;
        Ok(OursTask::Lease(lease.id()))
    }

    async fn op(
        &self,
        task: &mut OursTask,
        w: Workload,
        n: u64,
        prefix: &str,
    ) -> Result<u64, String> {
        use etcd3::kv::{Compare, Op};
        let kv = self.client.kv();
        match (w, task) {
            (Workload::Put, _) => {
                kv.put(format!("{prefix}/{n}"), self.value.clone())
                    .await
                    .map_err(err)?;
            }
            (Workload::Watch, _) => {
                kv.put(format!("{prefix}/{n}"), stamped_value())
                    .await
                    .map_err(err)?;
            }
            (Workload::Get | Workload::GetSerializable, _) => {
                let resp = if w == Workload::Get {
                    kv.get(get_key(n)).await
                } else {
                    kv.get(get_key(n)).serializable().await
                }
                .map_err(err)?;
                match resp.first() {
                    Some(item) if item.value().len() == VALUE_LEN => {}
                    _ => return Err("get: missing or wrong value".into()),
                }
            }
            (Workload::Txn, _) => {
                let resp = kv
                    .txn()
                    .when([Compare::version(get_key(n)).gt(0)])
                    .then([Op::put(format!("{prefix}/{n}"), self.value.clone())])
                    .await
                    .map_err(err)?;
                if !resp.succeeded() {
                    return Err("txn: compare failed".into());
                }
            }
            (Workload::Range, _) => {
                let resp = kv.get(RANGE_PREFIX).prefix().await.map_err(err)?;
                return check_range(resp.kvs().iter().map(|kv| kv.value()));
            }
            (Workload::Scan, _) => {
                // Pages of 1,000 keys at one revision: one page in memory at a time.
                let mut pages = kv.get(RANGE_PREFIX).prefix().paginate(1000);
                let mut keys = 0;
                while let Some(page) = pages.next().await {
                    let page = page.map_err(err)?;
                    if page.kvs().iter().any(|kv| kv.value().len() != VALUE_LEN) {
                        return Err("scan: wrong value".into());
                    }
                    keys += page.kvs().len() as u64;
                }
                if keys != RANGE_KEYS {
                    return Err(format!("scan: {keys} keys, expected {RANGE_KEYS}"));
                }
                return Ok(keys);
            }
            (Workload::LeaseKeepAlive, OursTask::Lease(id)) => {
                let resp = self
                    .client
                    .lease()
                    .keep_alive_once(*id)
                    .await
                    .map_err(err)?;
                if resp.ttl().is_zero() {
                    return Err("keep-alive: lease gone".into());
                }
            }
            (w, _) => return Err(format!("{} is not a request/response workload", w.name())),
        }
        Ok(1)
    }
}

#[derive(Clone)]
pub(crate) struct Theirs {
    pub(crate) client: peer::Client,
    pub(crate) value: Vec<u8>,
}

pub(crate) enum TheirsTask {
    Kv(peer::KvClient),
    Lease(peer::LeaseKeeper, peer::LeaseKeepAliveStream),
}

impl Driver for Theirs {
    type Task = TheirsTask;

    async fn start(&self, w: Workload) -> Result<TheirsTask, String> {
        if w != Workload::LeaseKeepAlive {
            return Ok(TheirsTask::Kv(self.client.kv_client()));
        }
        let mut leases = self.client.lease_client();
        let lease = leases
            .grant(LEASE_TTL_SECS as i64, None)
            .await
            .map_err(err)?;
        let (keeper, stream) = leases.keep_alive(lease.id()).await.map_err(err)?;
        Ok(TheirsTask::Lease(keeper, stream))
    }

    async fn op(
        &self,
        task: &mut TheirsTask,
        w: Workload,
        n: u64,
        prefix: &str,
    ) -> Result<u64, String> {
        use peer::{Compare, CompareOp, GetOptions, Txn, TxnOp};
        match (w, task) {
            (Workload::Put, TheirsTask::Kv(kv)) => {
                kv.put(format!("{prefix}/{n}"), self.value.clone(), None)
                    .await
                    .map_err(err)?;
            }
            (Workload::Watch, TheirsTask::Kv(kv)) => {
                kv.put(format!("{prefix}/{n}"), stamped_value().to_vec(), None)
                    .await
                    .map_err(err)?;
            }
            (Workload::Get | Workload::GetSerializable, TheirsTask::Kv(kv)) => {
                let options =
                    (w == Workload::GetSerializable).then(|| GetOptions::new().with_serializable());
                let resp = kv.get(get_key(n), options).await.map_err(err)?;
                match resp.kvs().first() {
                    Some(item) if item.value().len() == VALUE_LEN => {}
                    _ => return Err("get: missing or wrong value".into()),
                }
            }
            (Workload::Txn, TheirsTask::Kv(kv)) => {
                let txn = Txn::new()
                    .when([Compare::version(get_key(n), CompareOp::Greater, 0)])
                    .and_then([TxnOp::put(
                        format!("{prefix}/{n}"),
                        self.value.clone(),
                        None,
                    )]);
                let resp = kv.txn(txn).await.map_err(err)?;
                if !resp.succeeded() {
                    return Err("txn: compare failed".into());
                }
            }
            // Theirs has no paginated read: the whole prefix in one call, as for range.
            (Workload::Range | Workload::Scan, TheirsTask::Kv(kv)) => {
                let options = Some(GetOptions::new().with_prefix());
                let resp = kv.get(RANGE_PREFIX, options).await.map_err(err)?;
                return check_range(resp.kvs().iter().map(|kv| kv.value()));
            }
            (Workload::LeaseKeepAlive, TheirsTask::Lease(keeper, stream)) => {
                keeper.keep_alive().await.map_err(err)?;
                match stream.message().await.map_err(err)? {
                    Some(resp) if resp.ttl() > 0 => {}
                    Some(_) => return Err("keep-alive: lease gone".into()),
                    None => return Err("keep-alive: stream ended".into()),
                }
            }
            (w, _) => return Err(format!("{} is not a request/response workload", w.name())),
        }
        Ok(1)
    }
}
