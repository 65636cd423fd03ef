//! HTTP/2 frames (RFC 9113 section 4 and 6): the 9-byte header, and writing the frames a
//! client sends.

use bytes::{BufMut, BytesMut};

/// The client connection preface.
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The size of a frame header.
pub(super) const HEADER_LEN: usize = 9;

/// Frame types.
pub(super) mod kind {
    pub(in super::super) const DATA: u8 = 0x0;
    pub(in super::super) const HEADERS: u8 = 0x1;
    pub(in super::super) const PRIORITY: u8 = 0x2;
    pub(in super::super) const RST_STREAM: u8 = 0x3;
    pub(in super::super) const SETTINGS: u8 = 0x4;
    pub(in super::super) const PUSH_PROMISE: u8 = 0x5;
    pub(in super::super) const PING: u8 = 0x6;
    pub(in super::super) const GOAWAY: u8 = 0x7;
    pub(in super::super) const WINDOW_UPDATE: u8 = 0x8;
    pub(in super::super) const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub(super) mod flag {
    /// DATA and HEADERS: the last frame of the stream from its sender.
    pub(in super::super) const END_STREAM: u8 = 0x1;
    /// SETTINGS and PING: an acknowledgement.
    pub(in super::super) const ACK: u8 = 0x1;
    /// HEADERS and CONTINUATION: the header block is complete.
    pub(in super::super) const END_HEADERS: u8 = 0x4;
    /// DATA and HEADERS: the payload carries padding.
    pub(in super::super) const PADDED: u8 = 0x8;
    /// HEADERS: the payload starts with priority fields.
    pub(in super::super) const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameters.
pub(super) mod setting {
    pub(in super::super) const ENABLE_PUSH: u16 = 0x2;
    pub(in super::super) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub(in super::super) const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub(in super::super) const MAX_FRAME_SIZE: u16 = 0x5;
    pub(in super::super) const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes (RST_STREAM and GOAWAY).
pub(super) mod code {
    #[cfg(test)]
    pub(in super::super) const NO_ERROR: u32 = 0x0;
    pub(in super::super) const PROTOCOL_ERROR: u32 = 0x1;
    pub(in super::super) const STREAM_CLOSED: u32 = 0x5;
    pub(in super::super) const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub(in super::super) const FRAME_SIZE_ERROR: u32 = 0x6;
    pub(in super::super) const REFUSED_STREAM: u32 = 0x7;
    pub(in super::super) const CANCEL: u32 = 0x8;
    pub(in super::super) const COMPRESSION_ERROR: u32 = 0x9;
    pub(in super::super) const ENHANCE_YOUR_CALM: u32 = 0xb;

    /// The name RFC 9113 gives an error code.
    pub(in super::super) fn name(code: u32) -> &'static str {
        match code {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "an unknown error code",
        }
    }
}

/// The header of a received frame.
#[derive(Clone, Copy, Debug)]
pub(super) struct Head {
    pub(super) len: usize,
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
}

impl Head {
    /// Reads a frame header from the first [`HEADER_LEN`] bytes of `b`.
    pub(super) fn parse(b: &[u8]) -> Self {
        Self {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }
}

/// Appends a frame header.
pub(super) fn put_head(dst: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len < 1 << 24);
    dst.put_uint(len as u64, 3);
    dst.put_u8(kind);
    dst.put_u8(flags);
    dst.put_u32(stream & 0x7fff_ffff);
}

/// Appends header `block` as a HEADERS frame and as many CONTINUATION frames as
/// `max_frame` requires.
pub(super) fn put_headers(
    dst: &mut BytesMut,
    block: &[u8],
    stream: u32,
    end_stream: bool,
    max_frame: usize,
) {
    let mut rest = block;
    let mut first = true;
    loop {
        let take = rest.len().min(max_frame);
        let last = take == rest.len();
        let (kind, mut flags) = if first {
            let end = if end_stream { flag::END_STREAM } else { 0 };
            (kind::HEADERS, end)
        } else {
            (kind::CONTINUATION, 0)
        };
        if last {
            flags |= flag::END_HEADERS;
        }
        put_head(dst, take, kind, flags, stream);
        dst.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        first = false;
        if last {
            return;
        }
    }
}

/// Appends DATA frames carrying `data`, split at `max_frame`.
pub(super) fn put_data(dst: &mut BytesMut, stream: u32, data: &[u8], end: bool, max_frame: usize) {
    let mut rest = data;
    loop {
        let take = rest.len().min(max_frame);
        let last = take == rest.len();
        let flags = if last && end { flag::END_STREAM } else { 0 };
        put_head(dst, take, kind::DATA, flags, stream);
        dst.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        if last {
            return;
        }
    }
}

/// Appends a SETTINGS frame with `settings`.
pub(super) fn put_settings(dst: &mut BytesMut, settings: &[(u16, u32)]) {
    put_head(dst, settings.len() * 6, kind::SETTINGS, 0, 0);
    for &(id, value) in settings {
        dst.put_u16(id);
        dst.put_u32(value);
    }
}

/// Appends a WINDOW_UPDATE frame.
pub(super) fn put_window_update(dst: &mut BytesMut, stream: u32, increment: u32) {
    put_head(dst, 4, kind::WINDOW_UPDATE, 0, stream);
    dst.put_u32(increment & 0x7fff_ffff);
}

/// Appends a RST_STREAM frame.
pub(super) fn put_reset(dst: &mut BytesMut, stream: u32, code: u32) {
    put_head(dst, 4, kind::RST_STREAM, 0, stream);
    dst.put_u32(code);
}

/// Appends a PING frame (or its acknowledgement).
pub(super) fn put_ping(dst: &mut BytesMut, payload: [u8; 8], ack: bool) {
    put_head(dst, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
    dst.extend_from_slice(&payload);
}

/// Appends a GOAWAY frame.
pub(super) fn put_goaway(dst: &mut BytesMut, last_stream: u32, code: u32) {
    put_head(dst, 8, kind::GOAWAY, 0, 0);
    dst.put_u32(last_stream);
    dst.put_u32(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_split_into_continuations_at_the_frame_size() {
        let mut dst = BytesMut::new();
        dst.extend_from_slice(b"xx");
        put_headers(&mut dst, &[7u8; 25], 3, true, 10);
        assert_eq!(&dst[..2], b"xx");
        let mut at = 2;
        let mut seen = Vec::new();
        while at < dst.len() {
            let head = Head::parse(&dst[at..]);
            seen.push((head.len, head.kind, head.flags, head.stream));
            at += HEADER_LEN + head.len;
        }
        assert_eq!(
            seen,
            vec![
                (10, kind::HEADERS, flag::END_STREAM, 3),
                (10, kind::CONTINUATION, 0, 3),
                (5, kind::CONTINUATION, flag::END_HEADERS, 3),
            ]
        );
    }

    #[test]
    fn data_is_split_and_only_the_last_frame_ends_the_stream() {
        let mut dst = BytesMut::new();
        put_data(&mut dst, 5, &[1u8; 20], true, 8);
        let heads: Vec<_> = [0, 17, 34]
            .iter()
            .map(|&at| {
                let h = Head::parse(&dst[at..]);
                (h.len, h.flags)
            })
            .collect();
        assert_eq!(heads, vec![(8, 0), (8, 0), (4, flag::END_STREAM)]);
        assert_eq!(dst.len(), 3 * HEADER_LEN + 20);
        let mut empty = BytesMut::new();
        put_data(&mut empty, 5, &[], true, 8);
        assert_eq!(Head::parse(&empty).flags, flag::END_STREAM);
    }
}
