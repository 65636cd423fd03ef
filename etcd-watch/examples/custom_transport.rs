//! etcd-watch without the facade: a watcher over a tonic channel wrapped in a user-built
//! tower stack, next to a KV handle over the same channel.
//!
//! ```text
//! cargo run -p etcd-watch --example custom_transport -- http://127.0.0.1:2379
//! ```

use std::time::Duration;

use etcd_core::Kv;
use etcd_core::grpc::{GrpcKv, GrpcWatch};
use etcd_watch::{EventKind, Watcher};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".to_owned());
    let channel = tonic::transport::Endpoint::from_shared(endpoint)?
        // Finds a silently dead connection (a blackhole) while the watch stream is open.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy();
    // Any tower layers. A timeout bounds each KV call, and the opening of each watch
    // stream (not its lifetime): a stream that cannot open in time is retried.
    let transport = tower::ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .service(channel);

    let kv = Kv::new(GrpcKv::new(transport.clone()));
    let watcher = Watcher::new(GrpcWatch::new(transport));

    let start = kv.put("example/watch/seed", "0").await?.header().revision;
    let mut stream = watcher
        .watch("example/watch/")
        .prefix()
        .prev_kv()
        .from_revision(start)
        .await?;
    for i in 1..=3 {
        kv.put("example/watch/counter", i.to_string()).await?;
    }
    kv.delete("example/watch/").prefix().await?;

    let mut seen = 0;
    while let Some(response) = stream.next().await {
        for event in response?.events() {
            let key = event.kv().key_str().unwrap_or("<binary>");
            match event.kind() {
                EventKind::Put => println!(
                    "rev {}: put {key} = {:?}",
                    event.revision(),
                    event.kv().value_str()
                ),
                EventKind::Delete => println!("rev {}: delete {key}", event.revision()),
            }
            seen += 1;
        }
        if seen >= 6 {
            break;
        }
    }
    Ok(())
}
