//! The handle on a lease kept alive, and the guard that revokes it.

use std::fmt;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::LossReason;
use crate::error::{self, Result};
use crate::keep_alive::{Command, Status};
use crate::response::secs;

/// A lease kept alive in the background, from [`Lessor::keep_alive`](crate::Lessor::keep_alive).
///
/// All the leases of one [`Lessor`](crate::Lessor) are renewed over one `LeaseKeepAlive`
/// stream by one background task. Dropping the handle stops renewing the lease (it then
/// expires after its TTL); so does revoking it through the lessor. Several handles may
/// keep the same lease alive; it is renewed until the last one is dropped.
#[must_use = "dropping it stops renewing the lease"]
pub struct KeepAlive {
    id: i64,
    generation: u64,
    status: watch::Receiver<Status>,
    commands: mpsc::UnboundedSender<Command>,
}

impl KeepAlive {
    pub(crate) fn new(
        id: i64,
        generation: u64,
        status: watch::Receiver<Status>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self {
            id,
            generation,
            status,
            commands,
        }
    }

    /// The lease ID.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL the server granted in its last keep-alive reply.
    pub fn ttl(&self) -> Duration {
        secs(self.status.borrow().ttl)
    }

    /// When the last keep-alive reply arrived.
    pub fn last_renewed(&self) -> Option<Instant> {
        self.status.borrow().last_ack
    }

    /// How many keep-alive replies have arrived for this lease.
    pub fn renewals(&self) -> u64 {
        self.status.borrow().renewals
    }

    /// Why the lease is no longer kept alive, or `None` while it is.
    pub fn loss(&self) -> Option<LossReason> {
        self.status.borrow().lost
    }

    /// Resolves when the lease is no longer kept alive, with the reason. Never resolves
    /// while renewals succeed.
    pub async fn lost(&self) -> LossReason {
        let mut status = self.status.clone();
        match status.wait_for(|s| s.lost.is_some()).await {
            Ok(s) => s.lost.unwrap_or(LossReason::Halted),
            Err(_) => LossReason::Halted,
        }
    }

    /// Waits for the first reply, failing with the typed reason when the lease is lost
    /// before any.
    pub(crate) async fn first_renewal(&mut self) -> Result<()> {
        let status = self
            .status
            .wait_for(|s| s.renewals > 0 || s.lost.is_some())
            .await
            .map_err(|_| error::halted(self.id))?;
        match status.lost {
            Some(reason) => Err(error::lost(self.id, reason)),
            None => Ok(()),
        }
    }

    /// Turns the handle into a guard that revokes the lease when dropped or
    /// [closed](LeaseGuard::close): for short-lived ownership.
    pub fn revoke_on_drop(self) -> LeaseGuard {
        LeaseGuard {
            keep_alive: self,
            armed: true,
        }
    }
}

impl fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.borrow();
        f.debug_struct("KeepAlive")
            .field("id", &self.id)
            .field("ttl", &status.ttl)
            .field("renewals", &status.renewals)
            .field("lost", &status.lost)
            .finish()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        // The task is gone when this fails, and then nothing is renewed anyway.
        let _ = self.commands.send(Command::Release {
            id: self.id,
            generation: self.generation,
        });
    }
}

/// A lease kept alive that is revoked when the guard is dropped or closed.
///
/// Made with [`KeepAlive::revoke_on_drop`]. Dropping the guard revokes in the background
/// (the keys attached to the lease are deleted soon after); [`close`](LeaseGuard::close)
/// revokes and waits for the answer. It dereferences to the [`KeepAlive`] handle.
#[derive(Debug)]
pub struct LeaseGuard {
    keep_alive: KeepAlive,
    armed: bool,
}

impl LeaseGuard {
    /// Revokes the lease and waits for the server's answer. The lease's keys are deleted.
    pub async fn close(mut self) -> Result<()> {
        self.armed = false;
        let (reply, answer) = oneshot::channel();
        self.keep_alive
            .commands
            .send(Command::Revoke {
                id: self.keep_alive.id,
                reply: Some(reply),
            })
            .map_err(|_| error::halted(self.keep_alive.id))?;
        answer
            .await
            .map_err(|_| error::halted(self.keep_alive.id))?
    }
}

impl std::ops::Deref for LeaseGuard {
    type Target = KeepAlive;

    fn deref(&self) -> &KeepAlive {
        &self.keep_alive
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.keep_alive.commands.send(Command::Revoke {
                id: self.keep_alive.id,
                reply: None,
            });
        }
    }
}
