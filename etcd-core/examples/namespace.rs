//! Two tenants sharing one etcd through namespaces.
//!
//! ```sh
//! cargo run -p etcd-core --example namespace -- http://127.0.0.1:2379
//! ```

use etcd_core::Kv;
use etcd_core::grpc::GrpcKv;
use etcd_core::kv::{Compare, Op};
use etcd_core::namespace::Namespace;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".to_owned());
    let channel = tonic::transport::Endpoint::from_shared(endpoint)?.connect_lazy();

    let raw = Kv::new(GrpcKv::new(channel.clone()));
    let alice = Kv::new(Namespace::new(
        GrpcKv::new(channel.clone()),
        "example/alice/",
    ));
    let bob = Kv::new(Namespace::new(GrpcKv::new(channel), "example/bob/"));

    alice.put("config", "dark mode").await?;
    bob.put("config", "light mode").await?;

    // Each tenant sees its own "config", and "every key" means every key of its namespace.
    for (name, kv) in [("alice", &alice), ("bob", &bob)] {
        for item in kv.get("").prefix().await?.kvs() {
            println!("{name}: {:?} = {:?}", item.key_str()?, item.value_str()?);
        }
    }

    // Transactions compare and write inside the namespace.
    let txn = alice
        .txn()
        .when([Compare::value("config").eq("dark mode")])
        .then([Op::put("theme", "solarized")])
        .await?;
    println!("alice's txn succeeded: {}", txn.succeeded());

    // A client without a namespace sees the real keys.
    for item in raw.get("example/").prefix().await?.kvs() {
        println!("raw: {:?}", item.key_str()?);
    }
    raw.delete("example/").prefix().await?;
    Ok(())
}
