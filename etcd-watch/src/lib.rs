//! Watch keys and prefixes of etcd v3, with automatic resume.
//!
//! A [`Watcher`] runs over any [`WatchService`](etcd_core::watch::WatchService) (such as
//! [`GrpcWatch`](etcd_core::grpc::GrpcWatch) over a tonic channel, or a failover service
//! over several members). All its watches share **one** gRPC stream, driven by one
//! background task.
//!
//! # Example
//!
//! ```no_run
//! use etcd_core::grpc::GrpcWatch;
//! use etcd_watch::{EventKind, Watcher};
//! use futures_util::StreamExt;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:2379").connect_lazy();
//! let watcher = Watcher::new(GrpcWatch::new(channel));
//!
//! // One watch, as a Stream.
//! let mut stream = watcher.watch("app/").prefix().prev_kv().await?;
//! while let Some(response) = stream.next().await {
//!     for event in response?.events() {
//!         match event.kind() {
//!             EventKind::Put => println!("put {:?} at {}", event.kv().key_str(), event.revision()),
//!             EventKind::Delete => println!("deleted {:?}", event.kv().key_str()),
//!         }
//!     }
//! }
//!
//! // Several watches, one consumer: responses are tagged with their watch's id.
//! let (group, mut events) = watcher.group();
//! let a = group.add(etcd_core::KeyRange::range("a", "c")).await?;
//! let z = group.add(etcd_watch::Watch::key("z/").prefix().from_revision(1)).await?;
//! while let Some((id, response)) = events.next().await {
//!     println!("{id}: {} events", response?.events().len());
//! #   break;
//! }
//! group.cancel(a).await?;
//! # let _ = z;
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! A watch delivers each event of its range exactly once, in revision order, with all
//! events of one revision in the same [`WatchResponse`] (fragments of a large response are
//! delivered by whole revisions), whatever happens to the stream:
//!
//! * When the stream breaks (member killed or restarted, connection reset, a blackhole
//!   found by HTTP/2 keepalive), every live watch is created again on a new stream from its
//!   **resume revision**: the revision after the last event it delivered, after the last
//!   progress notification of its own it delivered (not one answering
//!   [`Watcher::request_progress`], see [`WatchResponse::is_requested_progress`]), or after the creation revision of a "from now"
//!   watch that has delivered nothing yet. The resume revision never goes down, and events
//!   at or below the last delivered one, or below the start revision (a server re-sending
//!   history), are dropped. The stream does not see the break. Attempts are spaced by an exponential backoff (20 ms to 2 s by default).
//! * When the resume revision has been compacted, the watch ends with
//!   [`Error::WatchCompacted`] carrying the compact revision; the other watches go on.
//! * Creation replies are matched to requests in the order they were sent, never by id.
//! * Dropping a [`WatchStream`] cancels the watch on the server at once.
//! * With a require-leader service (`GrpcWatch::require_leader(true)`), watches end with
//!   [`Error::WatchNoLeader`] when their member loses its leader.
//!
//! # Backpressure
//!
//! Each watch (or each group) has a buffer bounded by the bytes its responses hold: their
//! keys and values, plus a small fixed cost per response and per event (8 MiB by default;
//! see [`Watcher::with_buffer_bytes`] and [`Watch::buffer_bytes`]). The background task
//! never waits for a consumer: when a response would take a watch's buffer past its bound,
//! the watch is **paused**: it is cancelled on the server and the response is dropped,
//! without moving the resume revision. Once the consumer has emptied half of the buffer,
//! the watch is created again from its resume revision and the server sends the missed
//! events again. Nothing is lost, memory stays bounded by the buffer (plus one response,
//! as a response is always taken into a buffer at most half full), and a slow consumer
//! never holds up other watches. Progress notifications that find the buffer full are
//! skipped (they do not move the resume revision then).

pub mod cache;
mod error;
mod event;
mod mux;
mod options;
mod queue;
mod watcher;

pub use error::{Error, Result};
pub use etcd_core::kv::KeyValue;
pub use event::{Event, EventKind, WatchId, WatchResponse};
pub use mux::Reauthenticate;
pub use options::Watch;
pub use watcher::{GroupEvents, WatchGroup, WatchStream, Watcher};

#[cfg(test)]
mod tests;
