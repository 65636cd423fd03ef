//! Dialling a member and driving its HTTP/2 connection, with keep-alive pings.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::{ConnectError, Live, Shared};
use crate::connector::{Activity, Watched};

/// Flow-control windows: large enough that a big range response (megabytes) streams
/// without waiting for window updates; the same order as hyper's defaults.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;
/// The largest frame the server may send us (HTTP/2 allows up to 16 MiB - 1).
const MAX_FRAME: u32 = 1 << 20;

/// Connects to the member over TCP and starts HTTP/2 on the connection; a task of its own
/// drives the connection until it closes.
pub(super) async fn dial(shared: &Arc<Shared>, attempt: u64) -> Result<Live, ConnectError> {
    let address = shared.authority.as_str();
    let connect = TcpStream::connect(address);
    let tcp = tokio::time::timeout(shared.options.connect_timeout, connect)
        .await
        .map_err(|_| ConnectError::timed_out())?
        .map_err(ConnectError::io)?;
    tcp.set_nodelay(true).map_err(ConnectError::io)?;
    let activity = Arc::new(Activity::new());
    let io = Watched::new(tcp, false, Some(activity.clone()));
    let (send, connection) = h2::client::Builder::new()
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(ConnectError::handshake)?;
    let open = Arc::new(AtomicUsize::new(0));
    tracing::debug!(member = address, attempt, "connected");
    tokio::spawn(drive(
        connection,
        Driver {
            keep_alive: shared.options.keep_alive,
            activity,
            open: open.clone(),
            shared: Arc::downgrade(shared),
            attempt,
        },
    ));
    Ok(Live {
        send,
        open,
        attempt,
    })
}

type Connection = h2::client::Connection<Watched, Bytes>;

struct Driver {
    keep_alive: Option<(Duration, Duration)>,
    activity: Arc<Activity>,
    open: Arc<AtomicUsize>,
    shared: Weak<Shared>,
    attempt: u64,
}

/// Runs the connection until it closes (the member hung up, or a keep-alive ping went
/// unanswered), then forgets it so that the next call dials again.
async fn drive(mut connection: Connection, driver: Driver) {
    let result = match (driver.keep_alive, connection.ping_pong()) {
        (Some((interval, timeout)), Some(ping)) => {
            keep_alive(connection, ping, interval, timeout, &driver).await
        }
        _ => connection.await.map_err(|e| e.to_string()),
    };
    if let Some(shared) = driver.shared.upgrade() {
        shared.forget(driver.attempt);
        match result {
            Ok(()) => tracing::debug!(member = %shared.authority, "connection closed"),
            Err(error) => tracing::debug!(member = %shared.authority, %error, "connection failed"),
        }
    }
}

/// Drives `connection`, pinging when calls are open and nothing was read for `interval`;
/// a ping unanswered for `timeout` ends it.
async fn keep_alive(
    connection: Connection,
    mut ping: h2::PingPong,
    interval: Duration,
    timeout: Duration,
    driver: &Driver,
) -> Result<(), String> {
    let mut connection = std::pin::pin!(connection);
    loop {
        let quiet_since = driver.activity.last_read();
        let due = tokio::time::Instant::from_std(quiet_since + interval);
        tokio::select! {
            closed = &mut connection => return closed.map_err(|e| e.to_string()),
            () = tokio::time::sleep_until(due) => {}
        }
        if driver.activity.last_read() > quiet_since {
            continue;
        }
        if driver.open.load(Ordering::Relaxed) == 0 {
            // Idle: no pings (etcd refuses pings on idle connections); look again later.
            tokio::select! {
                closed = &mut connection => return closed.map_err(|e| e.to_string()),
                () = tokio::time::sleep(interval) => continue,
            }
        }
        ping.send_ping(h2::Ping::opaque())
            .map_err(|e| e.to_string())?;
        let pong = tokio::time::timeout(timeout, poll_fn(|cx| ping.poll_pong(cx)));
        tokio::select! {
            closed = &mut connection => return closed.map_err(|e| e.to_string()),
            answered = pong => match answered {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("keep-alive timed out: no answer to a ping within {timeout:?}")),
            },
        }
    }
}
