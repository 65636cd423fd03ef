//! Service discovery with tower balancing: two gRPC servers register in etcd, a client
//! balances its calls over whatever `Client::discover` reports (tonic's balanced channel),
//! one server stops, and the calls move to the other.
//!
//! The servers serve etcd's own `v3lockpb.Lock` service definition (so the example needs
//! no `.proto` of its own); each answers with its name as the key.
//!
//! Run against a local etcd: `cargo run -p etcd3 --example discovery -- http://127.0.0.1:2379`

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etcd3::Client;
use etcd3::discovery::{Change, Endpoint};
use etcd3::proto::v3lockpb::lock_client::LockClient;
use etcd3::proto::v3lockpb::lock_server::{Lock, LockServer};
use etcd3::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use futures_util::TryStreamExt;
use tokio::sync::{oneshot, watch};
use tonic::transport::channel::Change as Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const SERVICE: &str = "example/discovery/greeter";

/// A server that answers every call with its name.
struct Named(&'static str);

#[tonic::async_trait]
impl Lock for Named {
    async fn lock(&self, _: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        Ok(Response::new(LockResponse {
            header: None,
            key: self.0.into(),
        }))
    }

    async fn unlock(&self, _: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        Ok(Response::new(UnlockResponse { header: None }))
    }
}

/// Starts a server named `name` on a free port; it stops when the sender is dropped or
/// fired.
async fn serve(
    name: &'static str,
) -> Result<(String, oneshot::Sender<()>), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(LockServer::new(Named(name)))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );
    Ok((addr, stop))
}

/// Sends `n` calls over the balanced channel and counts the answers by server.
async fn calls(
    client: &mut LockClient<tonic::transport::Channel>,
    n: usize,
) -> BTreeMap<String, usize> {
    let mut by_server = BTreeMap::new();
    for _ in 0..n {
        let answer = client.lock(LockRequest::default()).await;
        let name = match answer {
            Ok(response) => String::from_utf8_lossy(&response.into_inner().key).into_owned(),
            Err(status) => format!("error: {}", status.code()),
        };
        *by_server.entry(name).or_insert(0) += 1;
    }
    by_server
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let etcd = Client::connect([endpoint]).await?;

    // Two servers, each registered under the service's prefix.
    let (a_addr, stop_a) = serve("server-a").await?;
    let (b_addr, _stop_b) = serve("server-b").await?;
    let a = etcd
        .register(SERVICE, "a", Endpoint::new(a_addr))
        .ttl(Duration::from_secs(5))
        .await?;
    let _b = etcd
        .register(SERVICE, "b", Endpoint::new(b_addr))
        .ttl(Duration::from_secs(5))
        .await?;
    println!(
        "registered {} and {}",
        String::from_utf8_lossy(a.key()),
        String::from_utf8_lossy(_b.key())
    );

    // The client: a balanced channel fed by discovery.
    let (channel, updates) = tonic::transport::Channel::balance_channel::<String>(16);
    let mut instances = etcd.discover(SERVICE).await?;
    // The keys handed to the channel so far, for this example to wait on.
    let (known, mut handed) = watch::channel(BTreeSet::new());
    tokio::spawn(async move {
        while let Ok(Some(change)) = instances.try_next().await {
            let key = match &change {
                Change::Insert(key, _) | Change::Remove(key) => key.clone(),
            };
            let change = match change {
                Change::Insert(key, endpoint) => {
                    println!("discovered {key} at {}", endpoint.addr);
                    let uri = format!("http://{}", endpoint.addr);
                    match tonic::transport::Endpoint::from_shared(uri) {
                        Ok(endpoint) => Channel::Insert(key, endpoint),
                        Err(error) => {
                            eprintln!("{key}: bad address: {error}");
                            continue;
                        }
                    }
                }
                Change::Remove(key) => {
                    println!("removed {key}");
                    Channel::Remove(key)
                }
            };
            let inserted = matches!(change, Channel::Insert(..));
            if updates.send(change).await.is_err() {
                break;
            }
            known.send_modify(|keys| {
                if inserted {
                    keys.insert(key);
                } else {
                    keys.remove(&key);
                }
            });
        }
    });
    let mut client = LockClient::new(channel);

    // Both servers take calls.
    handed.wait_for(|keys| keys.len() == 2).await?;
    let before = calls(&mut client, 40).await;
    println!("before: {before:?}");
    if before.len() != 2 || before.keys().any(|name| name.starts_with("error")) {
        return Err(format!("both servers should take calls: {before:?}").into());
    }

    // Server a leaves: deregistered first (so no new call is sent to it), then stopped.
    let a_key = String::from_utf8_lossy(a.key()).into_owned();
    a.close().await?;
    handed.wait_for(|keys| !keys.contains(&a_key)).await?;
    let _ = stop_a.send(());
    let after = calls(&mut client, 40).await;
    println!("after: {after:?}");
    if after.get("server-b") != Some(&40) {
        return Err(format!("every call should go to server-b now: {after:?}").into());
    }
    println!("traffic moved to server-b");
    Ok(())
}
