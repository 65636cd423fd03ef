//! A leader-elected worker: several workers campaign; the leader does the work, fencing
//! every write on its leadership, and steps down when its session is lost or a fenced
//! write fails.
//!
//! ```sh
//! cargo xtask etcd &     # or any etcd on 127.0.0.1:2379
//! cargo run -p etcd3 --example leader_worker -- http://127.0.0.1:2379
//! ```

use std::time::Duration;

use etcd3::Client;
use etcd3::concurrency::{Session, SessionLoss};
use etcd3::kv::Op;
use futures_util::future::{Either, select};

const ELECTION: &str = "examples/leader_worker/election";
const OUTPUT: &str = "examples/leader_worker/last_tick";

/// Does `ticks` units of work while leading; returns why it stopped.
async fn lead(client: &Client, me: &str, ticks: u32) -> Result<String, Box<dyn std::error::Error>> {
    let session = Session::new(client).ttl(Duration::from_secs(5)).await?;
    let leadership = session.election(ELECTION).campaign(me).await?;
    println!("{me}: elected (term {})", leadership.revision());
    let work = async {
        for tick in 0..ticks {
            // Fenced: applied only while this leadership's key is still the leader's.
            let resp = leadership
                .txn()
                .then([Op::put(OUTPUT, format!("{me} tick {tick}"))])
                .await?;
            if !resp.succeeded() {
                return Ok::<_, etcd3::Error>(format!("lost leadership at tick {tick}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(format!("done after {ticks} ticks"))
    };
    let outcome = match select(std::pin::pin!(work), std::pin::pin!(session.lost())).await {
        Either::Left((done, _)) => done?,
        Either::Right((loss, _)) => match loss {
            SessionLoss::Lease(reason) => format!("session lost: {reason}"),
            other => format!("session ended: {other}"),
        },
    };
    leadership.resign().await?;
    session.close().await?;
    Ok(outcome)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let client = Client::connect([endpoint]).await?;
    let mut observer = etcd3::concurrency::observe(&client, ELECTION);
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let me = format!("worker-{i}");
                let outcome = lead(&client, &me, 5).await;
                println!("{me}: {outcome:?}");
            })
        })
        .collect();
    let watcher = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(leader)) = observer.next().await {
            println!("observer: leader is {:?}", leader.value_str());
        }
    });
    for w in workers {
        w.await?;
    }
    watcher.abort();
    let last = client.kv().get(OUTPUT).await?;
    println!(
        "last fenced write: {:?}",
        last.first().map(|kv| kv.value_str())
    );
    Ok(())
}
