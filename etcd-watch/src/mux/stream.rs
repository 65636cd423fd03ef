//! The one gRPC stream (a [`ReopeningStream`](etcd_core::stream::ReopeningStream)):
//! opening it when watches wait, sending on it, and reopening it after a backoff when it
//! breaks, with every live watch queued to be created again.

use etcd_core::stream::StreamEvent;
use etcd_core::watch::WatchService;
use etcd_core::{Error as CoreError, ServerErrorKind};
use etcd_proto::etcdserverpb as pb;
use futures_util::FutureExt;
use pb::watch_request::RequestUnion;
use tower::ServiceExt;

use super::{Error, Mux, Phase, WatchId};

impl<S: WatchService> Mux<S> {
    /// Opens a stream when watches wait for one, and sends their creation requests.
    pub(super) fn pump(&mut self) {
        while let Some(id) = self.queued.front() {
            match self.watches.get(id) {
                Some(watch) if watch.phase == Phase::Queued => break,
                _ => {
                    self.queued.pop_front();
                }
            }
        }
        if self.queued.is_empty() {
            if self.watches.is_empty() && self.stream.is_connected() {
                tracing::debug!("no watches left: closing the watch stream");
                self.close_stream();
            }
            return;
        }
        if self.stream.is_idle() {
            let service = self.service.clone();
            let reauth = match (&self.reauth, std::mem::take(&mut self.reauth_next)) {
                (Some(reauth), true) => {
                    tracing::debug!("getting a new auth token before reopening the watch stream");
                    Some(reauth())
                }
                _ => None,
            };
            tracing::debug!(watches = self.watches.len(), "opening a watch stream");
            self.stream.open_with(move |outgoing| {
                let open = service
                    .oneshot(outgoing)
                    .map(|result| result.map_err(|e| CoreError::from_boxed(e.into())));
                match reauth {
                    Some(reauth) => reauth.then(move |_| open).boxed(),
                    None => open.boxed(),
                }
            });
        }
        if !self.stream.is_connected() {
            return; // backing off
        }
        while let Some(id) = self.queued.pop_front() {
            let Some(watch) = self.watches.get_mut(&id) else {
                continue;
            };
            if watch.phase != Phase::Queued {
                continue;
            }
            let mut request = watch.spec.create_request(watch.next_rev);
            if let Some(RequestUnion::CreateRequest(create)) = &mut request.request_union {
                // An id of our own, never reused: etcd 3.5.1 answers a creation refused on
                // auth grounds with the *requested* id, which, left to the server (0), is
                // the id of the stream's first watch, and that watch then stops receiving
                // events (etcd #12385).
                self.next_server_id += 1;
                create.watch_id = self.next_server_id;
            }
            self.stream.send(request);
            watch.phase = Phase::Creating;
            self.creating.push_back(Some(id));
        }
    }

    pub(super) fn close_stream(&mut self) {
        self.stream.close();
        self.creating.clear();
        self.by_server.clear();
        self.ignored.clear();
    }

    pub(super) fn send(&self, request: RequestUnion) {
        self.stream.send(pb::WatchRequest {
            request_union: Some(request),
        });
    }

    pub(super) fn send_cancel(&mut self, server_id: i64) {
        self.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
            watch_id: server_id,
        }));
        self.ignored.insert(server_id);
    }

    pub(super) fn stream_event(&mut self, event: StreamEvent<pb::WatchResponse>) {
        match event {
            // Opened on the next pump.
            StreamEvent::WaitOver => {}
            StreamEvent::Opened => {}
            StreamEvent::Broken(error) => self.broken(error),
            StreamEvent::Response(response) => self.response(response),
        }
    }

    /// Ends every watch whose phase `which` selects, each with `error()`.
    fn end_each(&mut self, which: impl Fn(&Phase) -> bool, error: impl Fn() -> Error) {
        let ids: Vec<WatchId> = self
            .watches
            .iter()
            .filter(|(_, watch)| which(&watch.phase))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.end(id, error());
        }
    }

    /// The stream failed: queue every watch for the next one, or end them all when the
    /// member has no leader (require-leader streams) or a response was over the size
    /// limit.
    pub(super) fn broken(&mut self, error: Option<CoreError>) {
        self.close_stream();
        if let Some(error) = &error
            && crate::error::is_auth_refusal(error.server_kind())
        {
            self.reauth_next = true;
        }
        if let Some(error) = &error
            && error.server_kind() == Some(ServerErrorKind::NoLeader)
        {
            tracing::info!("watch stream closed: the member has no leader");
            self.end_each(|_| true, || Error::WatchNoLeader);
            self.queued.clear();
            return;
        }
        // A response over the client's size limit would come again on resuming. Which
        // watch it was for cannot be known without reading it, so every watch the server
        // was serving on this stream ends; the others (queued, paused) resume as usual.
        if let Some(&CoreError::ResponseTooLarge { size, limit }) = error.as_ref() {
            tracing::warn!(
                size,
                limit,
                "watch response over the size limit: ending the stream's watches"
            );
            self.end_each(
                |phase| matches!(phase, Phase::Creating | Phase::Active(_)),
                || Error::ResponseTooLarge { size, limit },
            );
        }
        match &error {
            Some(error) => {
                tracing::info!(%error, failures = self.failures, "watch stream broken; resuming")
            }
            None => tracing::info!(failures = self.failures, "watch stream ended; resuming"),
        }
        self.queued.clear();
        let mut ids: Vec<WatchId> = Vec::with_capacity(self.watches.len());
        for (id, watch) in &mut self.watches {
            watch.fragments = None;
            if watch.phase != Phase::Paused {
                watch.phase = Phase::Queued;
                ids.push(*id);
            }
        }
        ids.sort_unstable();
        self.queued.extend(ids);
        if !self.watches.is_empty() {
            // Jittered, so that watchers broken together (a member restarted under many
            // clients) do not all come back at the same instant.
            let pause = self.config.backoff.pause(self.failures);
            self.stream.wait(pause);
            self.failures = self.failures.saturating_add(1);
        }
    }
}
