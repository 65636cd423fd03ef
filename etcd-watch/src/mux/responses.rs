//! The server's answers: creation replies matched to requests in the order they were
//! sent, events delivered by whole revisions (fragments gathered), progress notifications,
//! and the resume revision each of them moves forward.

use etcd_core::watch::WatchService;
use etcd_proto::etcdserverpb as pb;

use super::sink::Refused;
use super::{Error, Event, MAX_SPURIOUS_COMPACTIONS, Mux, Phase, WatchId, WatchResponse};

impl<S: WatchService> Mux<S> {
    pub(super) fn response(&mut self, response: pb::WatchResponse) {
        if response.created {
            self.created(response);
            return;
        }
        if response.watch_id == -1 && response.events.is_empty() && !response.canceled {
            // A requested progress notification: for every watch on the stream. etcd
            // before 3.4.25 / 3.5.8 answers it at once with the store's revision (#15220),
            // so it can overtake events at or below that revision still on their way: it
            // is delivered, but does not move the resume point.
            let ids: Vec<WatchId> = self.by_server.values().copied().collect();
            for id in ids {
                self.progress(id, response.header, true);
            }
            return;
        }
        let Some(&id) = self.by_server.get(&response.watch_id) else {
            if response.canceled {
                self.ignored.remove(&response.watch_id);
            } else if !self.ignored.contains(&response.watch_id) {
                tracing::debug!(
                    watch_id = response.watch_id,
                    "response for an unknown watch"
                );
            }
            return;
        };
        if response.canceled {
            self.by_server.remove(&response.watch_id);
            if response.compact_revision > 0
                && self.spurious_compaction(id, response.compact_revision)
            {
                return;
            }
            let error = if response.compact_revision > 0 {
                Error::WatchCompacted {
                    compact_revision: response.compact_revision,
                }
            } else {
                Error::WatchCanceled {
                    reason: response.cancel_reason,
                }
            };
            self.end(id, error);
            return;
        }
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        let response = if response.fragment {
            let pending = match &mut watch.fragments {
                Some(merged) => {
                    merged.events.extend(response.events);
                    merged.header = response.header;
                    merged
                }
                None => watch.fragments.insert(response),
            };
            // Deliver the revisions this fragment completed (all but the last one seen,
            // which may go on in the next fragment): memory stays bounded by a revision,
            // not by the whole response.
            let rev = |e: &etcd_proto::mvccpb::Event| e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            let last = pending.events.last().map_or(0, rev);
            let complete = pending.events.partition_point(|e| rev(e) < last);
            if complete > 0 {
                let tail = pending.events.split_off(complete);
                let done = std::mem::replace(&mut pending.events, tail);
                let partial = pb::WatchResponse {
                    events: done,
                    header: pending.header,
                    ..pb::WatchResponse::default()
                };
                self.events(id, partial);
            }
            return;
        } else if let Some(mut merged) = watch.fragments.take() {
            merged.events.extend(response.events);
            merged.header = response.header;
            merged
        } else {
            response
        };
        if response.events.is_empty() {
            self.progress(id, response.header, false);
        } else {
            self.events(id, response);
        }
    }

    /// A creation reply: matched with the oldest creation request in flight.
    /// A compaction error for a watch whose resume revision is not compacted: create it
    /// again from there (see [`MAX_SPURIOUS_COMPACTIONS`]). Returns whether it did.
    pub(super) fn spurious_compaction(&mut self, id: WatchId, compact_revision: i64) -> bool {
        let Some(watch) = self.watches.get_mut(&id) else {
            return false;
        };
        let unaffected = watch.next_rev > 0 && watch.next_rev >= compact_revision;
        if !unaffected || watch.spurious_compactions >= MAX_SPURIOUS_COMPACTIONS {
            return false;
        }
        watch.spurious_compactions += 1;
        tracing::warn!(
            %id,
            compact_revision,
            resume_from = watch.next_rev,
            "the server ended a watch as compacted below its resume revision: creating it again"
        );
        watch.phase = Phase::Queued;
        watch.fragments = None;
        self.queued.push_back(id);
        true
    }

    pub(super) fn created(&mut self, response: pb::WatchResponse) {
        let server_id = response.watch_id;
        let slot = match self.creating.pop_front() {
            Some(slot) => slot,
            None => {
                tracing::warn!(
                    watch_id = server_id,
                    "creation reply with no creation pending"
                );
                None
            }
        };
        let Some(id) = slot else {
            // Removed while being created.
            if !response.canceled {
                self.send_cancel(server_id);
            }
            return;
        };
        if response.canceled {
            let reason = if response.cancel_reason.is_empty() {
                "watch creation refused".to_owned()
            } else {
                response.cancel_reason
            };
            let error = Error::WatchCanceled { reason };
            if self.reauth.is_some()
                && crate::error::is_auth_refusal(error.server_kind())
                && let Some(watch) = self.watches.get_mut(&id)
                && !watch.auth_retried
            {
                // The token travels with the stream: get a new one, open a new stream, and
                // create every watch again there (the others resume without loss).
                tracing::debug!(%id, %error, "watch refused on auth grounds: re-authenticating");
                watch.auth_retried = true;
                self.reauth_next = true;
                self.broken(None);
                return;
            }
            self.end(id, error);
            return;
        }
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        self.failures = 0;
        watch.phase = Phase::Active(server_id);
        watch.auth_retried = false;
        if watch.next_rev == 0 {
            // From now: everything after the revision the server created it at.
            let revision = response.header.map_or(0, |h| h.revision);
            watch.next_rev = revision + 1;
            watch.min_event_rev = revision + 1;
        }
        if let Some(created) = watch.created.take() {
            let _ = created.send(Ok(()));
            if watch.spec.created_notify {
                let _ = watch
                    .sink
                    .try_send(id, Ok(WatchResponse::created(id, response.header)));
            }
        }
        if self.by_server.insert(server_id, id).is_some() {
            tracing::warn!(watch_id = server_id, "server reused a live watch id");
        }
    }

    /// A progress notification for one watch: delivered when there is room (it is
    /// skipped otherwise). A notification of the watch's own (`progress_notify`, sent by
    /// the server in order with its events, and only once it has caught up) moves the
    /// resume point after its revision; a `requested` one (broadcast to the stream) does
    /// not, see etcd #15220.
    pub(super) fn progress(
        &mut self,
        id: WatchId,
        header: Option<pb::ResponseHeader>,
        requested: bool,
    ) {
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        let revision = header.map_or(0, |h| h.revision);
        match watch
            .sink
            .try_send(id, Ok(WatchResponse::progress(id, header, requested)))
        {
            Ok(()) if requested => {}
            Ok(()) => watch.next_rev = watch.next_rev.max(revision + 1),
            Err(Refused::Full) => {}
            Err(Refused::Closed) => {
                self.remove(id);
            }
        }
    }

    /// Events for one watch: delivered whole, or the watch is paused when its consumer
    /// has no room.
    pub(super) fn events(&mut self, id: WatchId, response: pb::WatchResponse) {
        let Some(watch) = self.watches.get_mut(&id) else {
            return;
        };
        let floor = watch.min_event_rev;
        let total = response.events.len();
        let events: Vec<Event> = response
            .events
            .into_iter()
            .filter(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision) >= floor)
            .map(Event::from)
            .collect();
        if events.len() < total {
            tracing::warn!(%id, dropped = total - events.len(), floor, "the server sent events below the watch's resume revision; dropped");
        }
        let Some(last) = events.last().map(Event::revision) else {
            return;
        };
        let delivered = WatchResponse::events_from(id, response.header, events);
        match watch.sink.try_send(id, Ok(delivered)) {
            Ok(()) => {
                watch.min_event_rev = last + 1;
                watch.next_rev = watch.next_rev.max(last + 1);
            }
            Err(Refused::Full) => self.pause(id),
            Err(Refused::Closed) => {
                self.remove(id);
            }
        }
    }
}
