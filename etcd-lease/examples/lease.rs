//! Grant a lease, attach a key, keep the lease alive for a while, then revoke it: with
//! etcd-core and etcd-lease only, over a plain tonic channel (no facade).
//!
//! ```text
//! cargo run -p etcd-lease --example lease -- http://127.0.0.1:2379
//! ```

use std::time::Duration;

use etcd_core::Kv;
use etcd_core::grpc::{GrpcKv, GrpcLease};
use etcd_lease::Lessor;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".to_owned());
    let channel = tonic::transport::Endpoint::from_shared(endpoint)?
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let kv = Kv::new(GrpcKv::new(channel.clone()));
    let lessor = Lessor::new(GrpcLease::new(channel));

    // A lease, then a key put with it: the key lives as long as the lease.
    let lease = lessor.grant(Duration::from_secs(5)).await?;
    println!("granted lease {} with TTL {:?}", lease.id(), lease.ttl());
    kv.put("example/lease/key", "alive")
        .lease(lease.id())
        .await?;

    // Keep it alive in the background (every TTL/3 by default; `.every(..)` to choose).
    let keeper = lessor.keep_alive(lease.id()).await?;
    tokio::select! {
        why = keeper.lost() => println!("lease lost: {why}"),
        _ = tokio::time::sleep(Duration::from_secs(12)) => {
            println!("after 12 s (> TTL): {} renewals, TTL {:?}", keeper.renewals(), keeper.ttl());
        }
    }
    let info = lessor.time_to_live(lease.id()).keys().await?;
    println!("time to live {:?}, keys {:?}", info.ttl(), info.keys());

    // Revoking ends the keep-alive and deletes the key.
    lessor.revoke(lease.id()).await?;
    println!("keep-alive ended: {}", keeper.lost().await);
    assert!(kv.get("example/lease/key").await?.kvs().is_empty());
    Ok(())
}
