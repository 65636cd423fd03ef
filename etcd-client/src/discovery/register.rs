//! Keeping one instance registered: a key under the service's prefix, attached to a lease
//! renewed over the client's keep-alive stream, written again whenever the lease is lost.

use std::fmt;
use std::future::IntoFuture;
use std::time::Duration;

use bytes::Bytes;
use etcd_core::layer::Backoff;
use futures_util::future::BoxFuture;
use tokio::sync::{oneshot, watch};

use super::Endpoint;
use crate::concurrency::Session;
use crate::{Client, Result};

/// The TTL of a registration's lease unless [`Register::ttl`] sets one.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// The pause between attempts to register again after a lost lease.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// Registers an instance. Made by [`Client::register`](crate::Client::register); set the
/// TTL with [`ttl`](Self::ttl) and await it.
#[must_use = "nothing is registered until the builder is awaited"]
pub struct Register {
    client: Client,
    /// The key, or why the service or instance name is not one.
    key: Result<Bytes>,
    endpoint: Endpoint,
    ttl: Duration,
}

impl fmt::Debug for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Register")
            .field(
                "key",
                &self.key.as_ref().map(|k| String::from_utf8_lossy(k)),
            )
            .field("endpoint", &self.endpoint)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Register {
    pub(crate) fn new(client: Client, key: Result<Bytes>, endpoint: Endpoint) -> Self {
        Self {
            client,
            key,
            endpoint,
            ttl: DEFAULT_TTL,
        }
    }

    /// The TTL of the registration's lease (default [`DEFAULT_TTL`]): how long the key
    /// outlives a process that dies without closing it (whole seconds, rounded up; etcd
    /// raises TTLs below its minimum).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}

impl IntoFuture for Register {
    type Output = Result<Registration>;
    type IntoFuture = BoxFuture<'static, Result<Registration>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Register {
                client,
                key,
                endpoint,
                ttl,
            } = self;
            let key = key?;
            let value = Bytes::from(endpoint.to_json());
            let session = register_once(&client, &key, &value, ttl).await?;
            let (status, status_rx) = watch::channel(Status {
                lease_id: session.lease_id(),
                registrations: 1,
                failing: None,
            });
            let (stop, stop_rx) = oneshot::channel();
            tokio::spawn(keep_registered(
                Target {
                    client,
                    key: key.clone(),
                    value,
                    ttl,
                },
                session,
                status,
                stop_rx,
            ));
            Ok(Registration {
                key,
                endpoint,
                status: status_rx,
                stop: Some(stop),
            })
        })
    }
}

/// An instance kept registered, from [`Client::register`](crate::Client::register).
///
/// Its key holds the [`Endpoint`] as JSON and is attached to a lease renewed over the
/// client's one keep-alive stream. When the lease is lost (the cluster was unreachable
/// for longer than the TTL, or someone revoked it), the key is written again under a new
/// lease, retried with backoff until it succeeds. [`close`](Self::close) revokes the
/// lease, which deletes the key, and waits for it; dropping the registration does the
/// same in the background. A process that dies is removed by etcd when the lease's TTL
/// runs out.
#[must_use = "dropping the registration removes it"]
pub struct Registration {
    key: Bytes,
    endpoint: Endpoint,
    status: watch::Receiver<Status>,
    /// Asks the task to revoke and end; the reply carries the revoke's result.
    stop: Option<oneshot::Sender<oneshot::Sender<Result<()>>>>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("endpoint", &self.endpoint)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Registration {
    /// The registered key: `{service}/{name}`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The registered endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The lease the key is attached to now (it changes when the key is written again).
    pub fn lease_id(&self) -> i64 {
        self.status.borrow().lease_id
    }

    /// How many times the key was written: 1, plus one for each time it was written
    /// again after a lost lease.
    pub fn registrations(&self) -> u64 {
        self.status.borrow().registrations
    }

    /// Why writing the key again is failing, while it is (the key is then missing).
    pub fn failing(&self) -> Option<String> {
        self.status.borrow().failing.clone()
    }

    /// Removes the registration: revokes its lease (etcd deletes the key) and waits for
    /// the answer.
    pub async fn close(mut self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        if let Some(stop) = self.stop.take()
            && stop.send(reply).is_ok()
            && let Ok(result) = answer.await
        {
            return result;
        }
        Ok(()) // the task has ended: nothing is registered any more
    }
}

/// What a registration's task reports.
#[derive(Clone, Debug)]
struct Status {
    lease_id: i64,
    registrations: u64,
    failing: Option<String>,
}

/// What to keep registered.
struct Target {
    client: Client,
    key: Bytes,
    value: Bytes,
    ttl: Duration,
}

/// A new lease kept alive, and the key written under it.
async fn register_once(
    client: &Client,
    key: &Bytes,
    value: &Bytes,
    ttl: Duration,
) -> Result<Session> {
    let session = Session::new(client).ttl(ttl).await?;
    let put = client
        .kv()
        .put(key.clone(), value.clone())
        .lease(session.lease_id())
        .await;
    match put {
        Ok(_) => Ok(session),
        Err(error) => {
            let _ = session.close().await;
            Err(error)
        }
    }
}

/// Writes the key again whenever its lease is lost, until asked to stop (or the
/// registration is dropped): then revokes the lease.
async fn keep_registered(
    target: Target,
    mut session: Session,
    status: watch::Sender<Status>,
    mut stop: oneshot::Receiver<oneshot::Sender<Result<()>>>,
) {
    let key = String::from_utf8_lossy(&target.key).into_owned();
    loop {
        tokio::select! {
            loss = session.lost() => {
                tracing::warn!(%key, %loss, "registration lost its lease: registering again");
                let mut failures = 0u32;
                session = loop {
                    let pause = if failures == 0 { Duration::ZERO } else { BACKOFF.pause(failures - 1) };
                    let attempt = async {
                        tokio::time::sleep(pause).await;
                        register_once(&target.client, &target.key, &target.value, target.ttl).await
                    };
                    tokio::select! {
                        attempt = attempt => match attempt {
                            Ok(session) => break session,
                            Err(error) => {
                                tracing::warn!(%key, %error, "registering again failed; retrying");
                                status.send_modify(|s| s.failing = Some(error.to_string()));
                                failures = failures.saturating_add(1);
                            }
                        },
                        request = &mut stop => {
                            // Nothing is registered: nothing to revoke.
                            if let Ok(reply) = request {
                                let _ = reply.send(Ok(()));
                            }
                            return;
                        }
                    }
                };
                status.send_modify(|s| {
                    s.lease_id = session.lease_id();
                    s.registrations += 1;
                    s.failing = None;
                });
            }
            request = &mut stop => {
                let result = session.close().await;
                if let Err(error) = &result {
                    tracing::warn!(%key, %error, "revoking the registration's lease failed; it expires after its TTL");
                }
                if let Ok(reply) = request {
                    let _ = reply.send(result);
                }
                return;
            }
        }
    }
}
