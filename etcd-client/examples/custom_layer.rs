//! A custom tower layer on the client's transport: every gRPC call and stream of the
//! client passes through it. This one logs each call's method and how long it took.
//!
//! Run against a local etcd: `cargo run -p etcd3 --example custom_layer -- http://127.0.0.1:2379`

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use etcd3::Client;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

/// Logs the gRPC method of each call and its latency.
#[derive(Clone, Debug)]
struct LogLayer;

impl<S> tower::Layer<S> for LogLayer {
    type Service = Log<S>;
    fn layer(&self, inner: S) -> Log<S> {
        Log(inner)
    }
}

#[derive(Clone, Debug)]
struct Log<S>(S);

impl<S, B> tower::Service<http::Request<B>> for Log<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        self.0
            .call(request)
            .map(move |result| {
                println!("{method} answered in {:?}", started.elapsed());
                result
            })
            .boxed()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let client = Client::builder([endpoint])
        .layer(LogLayer)
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(2)))
        .connect()
        .await?;
    client.kv().put("layered", "yes").await?;
    let value = client.kv().get("layered").await?;
    println!("layered = {:?}", value.first().map(|kv| kv.value_str()));
    client.kv().delete("layered").await?;
    Ok(())
}
