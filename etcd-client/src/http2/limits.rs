//! What the connection allows a server, in one place. Each limit bounds memory or work a
//! peer could otherwise make the client spend without end; going past one is a typed
//! error (the stream's or the whole connection's), never a panic or unbounded growth.
//!
//! | limit | bounds | past it |
//! |---|---|---|
//! | [`MAX_HEADER_LIST_SIZE`] | a decoded header block (advertised in SETTINGS) | the stream fails |
//! | [`MAX_HEADER_BLOCK`] | an encoded header block (HEADERS + CONTINUATION bytes) | connection error |
//! | [`MAX_CONTINUATIONS`] | CONTINUATION frames in one header block | connection error |
//! | [`MAX_FRAME`] | a frame's payload (advertised in SETTINGS) | connection error |
//! | [`STREAM_WINDOW`], [`CONNECTION_WINDOW`] | received data not yet read (advertised) | stream / connection error |
//! | [`MAX_PENDING_WRITE`] | replies (PING and SETTINGS acknowledgements, resets) queued for a peer that does not read | the connection stops reading until they drain |
//! | [`MAX_IDLE_FRAMES`] | frames that carry nothing (empty DATA, PRIORITY, unknown types) | connection error |
//! | [`MAX_SEND_BUFFER`] | a streaming request's data waiting for flow-control window | the request stream waits for room |

/// The decoded size of a header block we accept (RFC 9113 section 6.5.2: the sum of the
/// fields' name and value lengths plus 32 bytes each). Advertised to the server as
/// SETTINGS_MAX_HEADER_LIST_SIZE; a block past it fails its stream (the HPACK state is still
/// kept in step). It bounds what a small block referencing a large table entry many times
/// can expand to.
pub(super) const MAX_HEADER_LIST_SIZE: u32 = 16 << 20;

/// The encoded size of one header block, over all of its frames.
pub(super) const MAX_HEADER_BLOCK: usize = 1 << 20;

/// CONTINUATION frames in one header block: a flood of empty ones is bounded in count,
/// not only in bytes. A server that splits a block at the smallest frame size (16 KiB)
/// needs 64 for [`MAX_HEADER_BLOCK`].
pub(super) const MAX_CONTINUATIONS: usize = 256;

/// The largest frame payload the server may send us (HTTP/2 allows up to 16 MiB - 1).
pub(super) const MAX_FRAME: u32 = 1 << 20;

/// Our receive window per stream: large enough that a big range response (megabytes)
/// streams without waiting for window updates. Data past it is a stream error.
pub(super) const STREAM_WINDOW: u32 = 4 << 20;

/// Our receive window for the whole connection. Data past it is a connection error.
pub(super) const CONNECTION_WINDOW: u32 = 8 << 20;

/// Bytes waiting to be written (our replies to PING and SETTINGS, resets, window updates,
/// and requests) above which the connection stops reading until the server reads them:
/// a peer that sends control frames without reading the answers cannot grow them.
pub(super) const MAX_PENDING_WRITE: usize = 1 << 20;

/// Frames that carry nothing for anybody: DATA without data that does not end its stream,
/// PRIORITY, and frame types HTTP/2 does not define. etcd sends none; a peer that sends
/// more than this on one connection is flooding it.
pub(super) const MAX_IDLE_FRAMES: u32 = 10_000;

/// A streaming request's data (watch and lease keep-alive requests) waiting for
/// flow-control window: the request stream takes its next message only once less than
/// this is queued.
pub(super) const MAX_SEND_BUFFER: usize = 400 << 10;
