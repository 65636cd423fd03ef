//! The queue between the watcher's task and one consumer (a watch's stream, or a group's),
//! bounded by the bytes its responses hold rather than by their number: a catch-up batch
//! of large values and a progress notification do not weigh the same.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{Notify, mpsc};

use crate::event::WatchResponse;

/// What one response weighs in the queue, besides its keys and values: the response and
/// the record of each event, so that many empty responses fill the queue too.
const RESPONSE_OVERHEAD: usize = std::mem::size_of::<WatchResponse>() + 64;
const EVENT_OVERHEAD: usize = std::mem::size_of::<crate::Event>();

/// The bytes `response` holds while it waits: its keys and values, and its records.
pub(crate) fn weight(response: &WatchResponse) -> usize {
    response
        .events()
        .iter()
        .fold(RESPONSE_OVERHEAD, |sum, event| {
            let prev = event
                .prev_kv()
                .map_or(0, |kv| kv.key().len() + kv.value().len());
            sum + EVENT_OVERHEAD + event.kv().key().len() + event.kv().value().len() + prev
        })
}

/// A new queue of `budget` bytes (an item is always taken into a queue at most half full,
/// however large).
pub(crate) fn queue<T>(budget: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Room {
        used: AtomicUsize::new(0),
        budget,
        freed: Notify::new(),
    });
    (
        Sender {
            tx,
            room: room.clone(),
        },
        Receiver { rx, room },
    )
}

/// How full a queue is.
#[derive(Debug)]
struct Room {
    used: AtomicUsize,
    budget: usize,
    /// Told when a consumer takes an item that brings the queue to half its budget or less.
    freed: Notify,
}

impl Room {
    fn half_free(&self) -> bool {
        self.used.load(Ordering::Acquire) <= self.budget / 2
    }
}

/// Why an item was not queued.
pub(crate) enum Refused {
    /// The queue holds its budget's worth.
    Full,
    /// The consumer has gone away.
    Closed,
}

/// The task's end of a queue.
#[derive(Debug)]
pub(crate) struct Sender<T> {
    tx: mpsc::UnboundedSender<(T, usize)>,
    room: Arc<Room>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            room: self.room.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// Queues `item` of `weight` bytes unless that would take a queue more than half full
    /// past its budget. Never waits. An item is always taken while the queue is at most
    /// half full, so that one taken once [`drained`](Self::drained) says so is never
    /// refused again: what waits stays under the budget plus one item.
    pub(crate) fn try_send(&self, item: T, weight: usize) -> Result<(), Refused> {
        let used = self.room.used.load(Ordering::Acquire);
        if used > self.room.budget / 2 && used.saturating_add(weight) > self.room.budget {
            return Err(if self.tx.is_closed() {
                Refused::Closed
            } else {
                Refused::Full
            });
        }
        self.room.used.fetch_add(weight, Ordering::AcqRel);
        self.tx.send((item, weight)).map_err(|_| {
            self.room.used.fetch_sub(weight, Ordering::AcqRel);
            Refused::Closed
        })
    }

    /// Queues `item` whatever the queue holds: a watch's last word (its error) is never
    /// dropped, and it ends the watch, so it adds to the budget at most once.
    pub(crate) fn send_last(&self, item: T) {
        let _ = self.tx.send((item, 0));
    }

    /// Resolves to `true` once the queue is at half its budget or less, `false` when the
    /// consumer has gone away.
    pub(crate) async fn drained(self) -> bool {
        loop {
            let freed = self.room.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.room.half_free() {
                return true;
            }
            tokio::select! {
                () = freed => {}
                () = self.tx.closed() => return false,
            }
        }
    }
}

/// The consumer's end of a queue.
#[derive(Debug)]
pub(crate) struct Receiver<T> {
    rx: mpsc::UnboundedReceiver<(T, usize)>,
    room: Arc<Room>,
}

impl<T> Receiver<T> {
    /// The next item, `None` once every sender is gone.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|(item, weight)| {
                if weight > 0 {
                    let before = self.room.used.fetch_sub(weight, Ordering::AcqRel);
                    let half = self.room.budget / 2;
                    if before > half && before - weight <= half {
                        self.room.freed.notify_waiters();
                    }
                }
                item
            })
        })
    }

    /// How many items wait.
    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }

    /// How many bytes wait, by [`weight`].
    pub(crate) fn bytes(&self) -> usize {
        self.room.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn the_budget_bounds_bytes_not_items() {
        let (tx, mut rx) = queue::<u32>(100);
        // An item is taken whatever its weight while the queue is at most half full.
        assert!(tx.try_send(1, 500).is_ok());
        assert!(matches!(tx.try_send(2, 1), Err(Refused::Full)));
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(1));
        assert_eq!(rx.bytes(), 0);
        assert!(tx.try_send(1, 50).is_ok());
        assert!(tx.try_send(2, 80).is_ok(), "half full: taken");
        assert!(matches!(tx.try_send(3, 1), Err(Refused::Full)));
        poll_fn(|cx| rx.poll_recv(cx)).await;
        poll_fn(|cx| rx.poll_recv(cx)).await;
        // Then as many as fit.
        for i in 0..10 {
            assert!(tx.try_send(i, 10).is_ok(), "item {i}");
        }
        assert!(matches!(tx.try_send(10, 1), Err(Refused::Full)));
        assert_eq!((rx.len(), rx.bytes()), (10, 100));
        // The last word always goes in.
        tx.send_last(99);
        assert_eq!(rx.len(), 11);
    }

    #[tokio::test]
    async fn drained_resolves_at_half_the_budget() {
        let (tx, mut rx) = queue::<u32>(100);
        for i in 0..10 {
            assert!(tx.try_send(i, 10).is_ok());
        }
        let drained = tokio::spawn(tx.clone().drained());
        for _ in 0..4 {
            poll_fn(|cx| rx.poll_recv(cx)).await;
        }
        tokio::task::yield_now().await;
        assert!(!drained.is_finished(), "60 bytes still wait");
        poll_fn(|cx| rx.poll_recv(cx)).await;
        assert!(drained.await.unwrap(), "50 bytes: half the budget");
        // A consumer that goes away ends the wait too.
        assert!(tx.try_send(0, 10).is_ok());
        let drained = tokio::spawn(tx.clone().drained());
        drop(rx);
        assert!(!drained.await.unwrap());
        assert!(matches!(tx.try_send(1, 100), Err(Refused::Closed)));
    }

    #[tokio::test]
    async fn an_item_refused_is_taken_once_drained() {
        // A small item waits, then a large one is refused: once `drained` says so, the
        // large one is taken (a watch resumed then is never paused again at once).
        let (tx, mut rx) = queue::<u32>(100);
        assert!(tx.try_send(0, 60).is_ok());
        assert!(matches!(tx.try_send(1, 80), Err(Refused::Full)));
        let drained = tokio::spawn(tx.clone().drained());
        tokio::task::yield_now().await;
        assert!(!drained.is_finished());
        poll_fn(|cx| rx.poll_recv(cx)).await;
        assert!(drained.await.unwrap());
        assert!(tx.try_send(1, 80).is_ok());
    }
}
