//! Delivery to each watch's consumer, and backpressure: a consumer that falls behind has
//! its watch paused on the server until it makes room.

use etcd_core::watch::WatchService;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::{Command, Error, Item, Mux, Phase, Sink, WatchId};

/// Why an item could not be delivered now.
pub(super) enum Refused {
    Full,
    Closed,
}

impl Sink {
    pub(super) fn try_send(&self, id: WatchId, item: Item) -> Result<(), Refused> {
        use mpsc::error::TrySendError;
        let result = match self {
            Sink::Single(tx) => tx
                .try_send(item)
                .map_err(|e| matches!(e, TrySendError::Full(_))),
            Sink::Group(tx) => tx
                .try_send((id, item))
                .map_err(|e| matches!(e, TrySendError::Full(_))),
        };
        result.map_err(|full| if full { Refused::Full } else { Refused::Closed })
    }

    /// Delivers a terminal error: at once when there is room, else from a task of its own,
    /// after the items already waiting.
    pub(super) fn send_last(self, id: WatchId, error: Error) {
        match self {
            Sink::Single(tx) => {
                if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send(Err(error)) {
                    tokio::spawn(async move {
                        let _ = tx.send(item).await;
                    });
                }
            }
            Sink::Group(tx) => {
                if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send((id, Err(error))) {
                    tokio::spawn(async move {
                        let _ = tx.send(item).await;
                    });
                }
            }
        }
    }

    /// Resolves to `true` once half the buffer is free again, `false` when the consumer
    /// has gone away.
    pub(super) fn drained(self) -> BoxFuture<'static, bool> {
        match self {
            Sink::Single(tx) => {
                let n = tx.max_capacity().div_ceil(2);
                async move { tx.reserve_many(n).await.is_ok() }.boxed()
            }
            Sink::Group(tx) => {
                let n = tx.max_capacity().div_ceil(2);
                async move { tx.reserve_many(n).await.is_ok() }.boxed()
            }
        }
    }
}

impl<S: WatchService> Mux<S> {
    /// The consumer of a watch is full: cancel it on the server, and create it again from
    /// its resume revision once the consumer has made room. Nothing is lost.
    pub(super) fn pause(&mut self, id: WatchId) {
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        let Phase::Active(server_id) = watch.phase else {
            return;
        };
        tracing::debug!(%id, resume_from = watch.next_rev, "consumer full: pausing the watch");
        watch.phase = Phase::Paused;
        watch.fragments = None;
        let drained = watch.sink.clone().drained();
        self.by_server.remove(&server_id);
        self.send_cancel(server_id);
        let commands = self.weak_commands.clone();
        tokio::spawn(async move {
            let room = drained.await;
            if let Some(commands) = commands.upgrade() {
                let _ = commands.send(if room {
                    Command::Drained { id }
                } else {
                    Command::Cancel { id, done: None }
                });
            }
        });
    }
}
