//! tower-http's `TraceLayer` on the client's transport: every gRPC call and stream of the
//! client gets a span, and its request, response (with the gRPC status) and end are
//! logged through `tracing`, here printed by `tracing_subscriber`'s fmt subscriber.
//!
//! Run against a local etcd (`RUST_LOG` picks what is printed, by default the trace
//! layer's debug events):
//!
//! ```text
//! cargo run -p etcd3 --example trace_layer -- http://127.0.0.1:2379
//! ```

use etcd3::Client;
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("tower_http=debug"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let client = Client::builder([endpoint])
        // Classifies each call by its grpc-status, not by the HTTP status (always 200).
        .layer(TraceLayer::new_for_grpc())
        .connect()
        .await?;

    let key = "examples/trace_layer";
    client.kv().put(key, "traced").await?;
    let read = client.kv().get(key).await?;
    match read.first() {
        Some(kv) => println!("read {key} = {}", kv.value_str()?),
        None => return Err(format!("{key} was put but not read back").into()),
    }
    let deleted = client.kv().delete(key).await?.deleted();
    println!("deleted {deleted} key(s)");
    Ok(())
}
