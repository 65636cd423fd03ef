//! A seeded, recorded mixed workload on a small key set (the reliability plan's K1 mix):
//! 25% put, 20% get, 10% serializable get, 10% prefix range with a limit, 15%
//! compare-and-swap, 10% multi-operation transaction, 10% delete. Every put value is
//! unique (`c{client}-{n}`), which is what lets the checker place every write.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Recorder;
use super::model::*;

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same workload.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The shape of a workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Keys are `{prefix}k0` .. `{prefix}k{keys-1}`.
    pub prefix: String,
    /// How many keys.
    pub keys: u64,
    /// Pause between one client's operations (bounds the load on a 2-core machine).
    pub pause: Duration,
}

impl Workload {
    /// The K1 shape: 10 keys under `prefix`, a 5 ms pause.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            keys: 10,
            pause: Duration::from_millis(5),
        }
    }

    /// The end of the prefix's range (for watches and the reference).
    pub fn range_end(&self) -> String {
        super::prefix_end(&self.prefix)
    }

    fn key(&self, rng: &mut Rng) -> String {
        format!("{}k{}", self.prefix, rng.below(self.keys))
    }

    /// Runs logical client `client` until `stop` is set: operations drawn from `seed`,
    /// sent through `kv`, recorded by `recorder`. Returns how many it ran.
    pub async fn run(
        &self,
        recorder: Arc<Recorder>,
        client: u32,
        kv: etcd3::Kv,
        seed: u64,
        stop: Arc<AtomicBool>,
    ) -> u64 {
        let mut rng = Rng::new(seed ^ (u64::from(client) << 32));
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let value = format!("c{client}-{n}");
            let req = self.next_request(&mut rng, &seen, value);
            let resp = recorder.run(client, &kv, req).await;
            remember(&mut seen, &resp);
            tokio::time::sleep(self.pause).await;
        }
        n
    }

    fn next_request(
        &self,
        rng: &mut Rng,
        seen: &HashMap<String, String>,
        value: String,
    ) -> Request {
        let roll = rng.below(100);
        let get = |key: String| GetReq {
            key,
            ..GetReq::default()
        };
        match roll {
            0..25 => Request::Put(PutReq {
                key: self.key(rng),
                value,
                prev_kv: rng.below(2) == 0,
                ..PutReq::default()
            }),
            25..45 => Request::Get(get(self.key(rng))),
            45..55 => Request::Get(GetReq {
                serializable: true,
                ..get(self.key(rng))
            }),
            55..65 => Request::Get(GetReq {
                key: self.prefix.clone(),
                end: Some(self.range_end()),
                limit: 1 + rng.below(self.keys) as i64,
                keys_only: rng.below(4) == 0,
                ..GetReq::default()
            }),
            65..80 => {
                let key = self.key(rng);
                let compare = match seen.get(&key) {
                    Some(last) => Compare {
                        key: key.clone(),
                        target: CompareTarget::Value(last.clone()),
                        op: CompareOp::Equal,
                    },
                    None => Compare {
                        key: key.clone(),
                        target: CompareTarget::Version(0),
                        op: CompareOp::Equal,
                    },
                };
                Request::Txn(TxnReq {
                    compares: vec![compare],
                    success: vec![TxnOp::Put(PutReq {
                        key: key.clone(),
                        value,
                        ..PutReq::default()
                    })],
                    failure: vec![TxnOp::Get(get(key))],
                })
            }
            80..90 => {
                // Up to four operations on distinct keys (etcd refuses a transaction that
                // writes one key twice).
                let mut keys: Vec<String> = Vec::new();
                let mut ops = Vec::new();
                for i in 0..1 + rng.below(4) {
                    let key = self.key(rng);
                    if keys.contains(&key) {
                        continue;
                    }
                    keys.push(key.clone());
                    ops.push(match rng.below(3) {
                        0 => TxnOp::Get(get(key)),
                        1 => TxnOp::Put(PutReq {
                            key,
                            value: format!("{value}.{i}"),
                            ..PutReq::default()
                        }),
                        _ => TxnOp::Delete(DeleteReq {
                            key,
                            ..DeleteReq::default()
                        }),
                    });
                }
                Request::Txn(TxnReq {
                    success: ops,
                    ..TxnReq::default()
                })
            }
            _ => Request::Delete(DeleteReq {
                key: self.key(rng),
                prev_kv: rng.below(2) == 0,
                ..DeleteReq::default()
            }),
        }
    }
}

/// Remembers the last value read of each key, for compare-and-swap.
fn remember(seen: &mut HashMap<String, String>, resp: &Response) {
    let mut note = |get: &GetResp| {
        for kv in &get.kvs {
            if !kv.value.is_empty() {
                seen.insert(kv.key.clone(), kv.value.clone());
            }
        }
    };
    match resp {
        Response::Get(get) => note(get),
        Response::Txn(txn) => {
            for r in &txn.results {
                if let TxnResult::Get(get) = r {
                    note(get);
                }
            }
        }
        _ => {}
    }
}
