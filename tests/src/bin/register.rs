//! `register ENDPOINT SERVICE NAME ADDR TTL_SECS`: registers one instance of `SERVICE`
//! through `etcd3::Client::register`, prints `registered <key> lease <id>` and then lives
//! until it is killed. The discovery tests SIGKILL it and time how long its key outlives
//! it.

use std::io::Write as _;
use std::time::Duration;

use etcd3::Client;
use etcd3::discovery::Endpoint;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, service, name, addr, ttl] = args.as_slice() else {
        eprintln!("usage: register ENDPOINT SERVICE NAME ADDR TTL_SECS");
        std::process::exit(2);
    };
    let ttl: u64 = ttl.parse().expect("TTL_SECS: a number of seconds");
    let client = Client::connect([endpoint.as_str()]).await.expect("connect");
    let registration = client
        .register(service, name, Endpoint::new(addr.as_str()))
        .ttl(Duration::from_secs(ttl))
        .await
        .expect("register");
    println!(
        "registered {} lease {:x}",
        String::from_utf8_lossy(registration.key()),
        registration.lease_id()
    );
    std::io::stdout().flush().expect("stdout");
    std::future::pending::<()>().await;
}
