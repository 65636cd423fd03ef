//! Delivery to each watch's consumer, and backpressure: a consumer that falls behind has
//! its watch paused on the server until it makes room.

use etcd_core::watch::WatchService;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Command, Error, Item, Mux, Phase, Sink, WatchId};
use crate::queue;

pub(super) use crate::queue::Refused;

impl Sink {
    pub(super) fn try_send(&self, id: WatchId, item: Item) -> Result<(), Refused> {
        let weight = match &item {
            Ok(response) => queue::weight(response),
            Err(_) => 0,
        };
        match self {
            Sink::Single(tx) => tx.try_send(item, weight),
            Sink::Group(tx) => tx.try_send((id, item), weight),
        }
    }

    /// Delivers a terminal error, after the items already waiting, whatever they weigh.
    pub(super) fn send_last(self, id: WatchId, error: Error) {
        match self {
            Sink::Single(tx) => tx.send_last(Err(error)),
            Sink::Group(tx) => tx.send_last((id, Err(error))),
        }
    }

    /// Resolves to `true` once half the buffer is free again, `false` when the consumer
    /// has gone away.
    pub(super) fn drained(self) -> BoxFuture<'static, bool> {
        match self {
            Sink::Single(tx) => tx.drained().boxed(),
            Sink::Group(tx) => tx.drained().boxed(),
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
