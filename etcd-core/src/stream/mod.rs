//! Stream types of the bidirectional services (watch, lease keep-alive).
//!
//! A streaming service is a tower service that takes the stream of outgoing messages and
//! answers with the stream of incoming ones, so subsystems such as watches and lease
//! keep-alives depend only on these types, never on a transport.

use futures_core::stream::BoxStream;

use crate::error::Result;

/// The messages a client sends on a bidirectional stream.
pub type RequestStream<T> = BoxStream<'static, T>;

/// The messages a server sends back; a broken stream ends with an [`Error`](crate::Error).
pub type ResponseStream<T> = BoxStream<'static, Result<T>>;

mod reopening;

pub use reopening::{ReopeningStream, StreamEvent};
