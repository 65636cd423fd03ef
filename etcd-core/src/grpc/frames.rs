//! gRPC's message framing over the DATA frames of a response: the 5-byte prefix, and a
//! [`Buf`] over frames that decoding slices without gathering them into one buffer.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Error, Result};

/// The length prefix of a gRPC message: a compression flag and a big-endian length.
pub(super) const PREFIX: usize = 5;

/// Writes the prefix of an uncompressed message of `len` bytes.
pub(super) fn put_prefix(buf: &mut BytesMut, len: usize) {
    buf.put_u8(0);
    buf.put_u32(len as u32);
}

/// Messages as their DATA frames brought them, not gathered into one buffer: decoding
/// slices the `bytes` fields out of the frames themselves and copies only the few that
/// straddle two frames. A large response thus costs its frames and nothing more.
///
/// Frames under [`SMALL_FRAME`] bytes that arrive behind others are copied into one
/// buffer instead of kept each on its own: a peer sending a message a byte per frame
/// would otherwise make every byte cost a frame's bookkeeping (and pin the buffer the
/// frame was read into).
#[derive(Clone, Debug, Default)]
pub(crate) struct Frames {
    /// The frame decoding reads from; empty only when nothing is left.
    front: Bytes,
    /// The frames behind it, in order.
    rest: VecDeque<Bytes>,
    /// Small frames copied together, behind `rest`.
    tail: BytesMut,
    remaining: usize,
}

/// Frames shorter than this are copied into [`Frames`]' tail rather than kept whole.
const SMALL_FRAME: usize = 1024;

impl Frames {
    /// The compression flag and the message length of the gRPC prefix at the front (at
    /// least [`PREFIX`] bytes must be there).
    fn prefix(&self) -> (u8, usize) {
        let mut prefix = [0u8; PREFIX];
        let mut at = 0;
        let pieces = std::iter::once(&self.front[..])
            .chain(self.rest.iter().map(|piece| &piece[..]))
            .chain(std::iter::once(&self.tail[..]));
        for piece in pieces {
            let take = (PREFIX - at).min(piece.len());
            prefix[at..at + take].copy_from_slice(&piece[..take]);
            at += take;
            if at == PREFIX {
                break;
            }
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        (prefix[0], len as usize)
    }

    /// The message length its prefix gives, once the prefix is all here. A prefix that
    /// says the message is compressed, or longer than `limit`, is refused at once.
    pub(super) fn declared_len(&self, limit: usize) -> Result<Option<usize>> {
        if self.remaining < PREFIX {
            return Ok(None);
        }
        let (flag, len) = self.prefix();
        check_uncompressed(flag)?;
        // (Capped so that prefix and message together always fit a `usize`.)
        let limit = limit.min(usize::MAX - PREFIX);
        if len > limit {
            return Err(Error::ResponseTooLarge { size: len, limit });
        }
        Ok(Some(len))
    }

    /// Appends a DATA frame.
    pub(super) fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.remaining += data.len();
        if self.front.is_empty() {
            self.front = data;
        } else if data.len() < SMALL_FRAME {
            self.tail.extend_from_slice(&data);
        } else {
            if !self.tail.is_empty() {
                self.rest.push_back(self.tail.split().freeze());
            }
            self.rest.push_back(data);
        }
    }

    /// Takes the next message off the front, without its prefix, once all of it is here
    /// (`None` until then): what a stream of messages is cut into. A message longer than
    /// `limit` is refused as soon as its prefix is here.
    pub(super) fn next_message(&mut self, limit: usize) -> Result<Option<Frames>> {
        let Some(len) = self.declared_len(limit)? else {
            return Ok(None);
        };
        if self.remaining < PREFIX + len {
            return Ok(None);
        }
        self.advance(PREFIX);
        Ok(Some(self.split_to(len)))
    }

    /// The first `len` bytes, moved whole frame by whole frame (only the last one split).
    fn split_to(&mut self, len: usize) -> Frames {
        let mut out = Frames::default();
        let mut left = len;
        while left > 0 {
            let piece = if self.front.len() <= left {
                std::mem::take(&mut self.front)
            } else {
                self.front.split_to(left)
            };
            left -= piece.len();
            self.remaining -= piece.len();
            out.push(piece);
            self.next_frame();
        }
        out
    }

    /// Moves to the next frame once the front one is used up.
    fn next_frame(&mut self) {
        while self.front.is_empty() {
            match self.rest.pop_front() {
                Some(next) => self.front = next,
                None if self.tail.is_empty() => return,
                None => self.front = self.tail.split().freeze(),
            }
        }
    }
}

/// Refuses a message whose prefix says it is compressed (compression is never asked for).
fn check_uncompressed(flag: u8) -> Result<()> {
    if flag != 0 {
        return Err(Error::Protocol(
            "the response is compressed, which was not asked for".into(),
        ));
    }
    Ok(())
}

/// The one message of a unary response body, its prefix checked and removed.
pub(super) fn unprefix(mut data: Frames) -> Result<Frames> {
    if data.remaining() < PREFIX {
        return Err(Error::Protocol("the response has no message".into()));
    }
    check_uncompressed(data.get_u8())?;
    let len = data.get_u32() as usize;
    if data.remaining() != len {
        return Err(Error::Protocol(
            format!(
                "the response's message is {} bytes long where its prefix says {len}",
                data.remaining()
            )
            .into(),
        ));
    }
    Ok(data)
}

impl Buf for Frames {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        &self.front
    }

    fn advance(&mut self, mut cnt: usize) {
        if cnt < self.front.len() {
            // Within the front frame: what decoding a field does most of the time.
            self.front.advance(cnt);
            self.remaining -= cnt;
            return;
        }
        assert!(cnt <= self.remaining, "advance past the end of the message");
        self.remaining -= cnt;
        while cnt > 0 {
            let step = cnt.min(self.front.len());
            self.front.advance(step);
            cnt -= step;
            self.next_frame();
        }
        self.next_frame();
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        if len <= self.front.len() {
            let out = self.front.split_to(len);
            self.remaining -= len;
            self.next_frame();
            return out;
        }
        assert!(len <= self.remaining, "copy past the end of the message");
        let mut out = BytesMut::with_capacity(len);
        out.put((&mut *self).take(len));
        out.freeze()
    }
}

#[cfg(test)]
pub(super) fn frames(parts: &[&'static [u8]]) -> Frames {
    let mut frames = Frames::default();
    for part in parts {
        frames.push(Bytes::from_static(part));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_read_back_from_its_prefix() {
        let mut one = unprefix(frames(&[b"\0\0\0\0\x03abc"])).unwrap();
        assert_eq!(one.copy_to_bytes(3), Bytes::from_static(b"abc"));
        // The prefix and the message split over frames, one frame empty.
        let mut split = unprefix(frames(&[b"\0\0", b"", b"\0\0\x05a", b"bc", b"de"])).unwrap();
        assert_eq!(split.remaining(), 5);
        assert_eq!(split.copy_to_bytes(1), Bytes::from_static(b"a"));
        assert_eq!(split.copy_to_bytes(3), Bytes::from_static(b"bcd"));
        split.advance(1);
        assert_eq!(split.remaining(), 0);
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        for parts in [
            &[&b"\0\0"[..]][..],
            &[b"\0\0\0\0\x09abc"],
            &[b"\x01\0\0\0\x03abc"],
        ] {
            assert!(matches!(unprefix(frames(parts)), Err(Error::Protocol(_))));
        }
        let mut compressed = frames(&[b"\x01\0\0\0\x01a"]);
        assert!(matches!(
            compressed.next_message(usize::MAX),
            Err(Error::Protocol(_))
        ));
        // Refused once the prefix is here, without waiting for the message it announces.
        let unfinished = frames(&[b"z", b"zzzz", b"z"]);
        assert!(matches!(
            unfinished.declared_len(usize::MAX),
            Err(Error::Protocol(_))
        ));
        // Likewise a message longer than the limit.
        let mut large = frames(&[b"\0\0\0", b"\x01\0"]);
        let error = large.next_message(255).unwrap_err();
        assert!(
            matches!(
                error,
                Error::ResponseTooLarge {
                    size: 256,
                    limit: 255
                }
            ),
            "{error:?}"
        );
        assert!(large.next_message(256).unwrap().is_none());
    }

    /// Random messages, sent over random frames (small ones, copied into the tail, and
    /// large ones, kept whole), cut and read back with random steps: every byte comes back
    /// in order.
    #[test]
    fn random_frames_and_reads_give_back_every_message() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        for round in 0..200 {
            let messages: Vec<Vec<u8>> = (0..1 + next(8))
                .map(|m| (0..next(5000)).map(|i| (i * 7 + m) as u8).collect())
                .collect();
            let mut wire = BytesMut::new();
            for message in &messages {
                put_prefix(&mut wire, message.len());
                wire.extend_from_slice(message);
            }
            let wire = wire.freeze();
            let mut stream = Frames::default();
            let mut got = Vec::new();
            let mut at = 0;
            while at < wire.len() {
                let size = if next(2) == 0 {
                    1 + next(64)
                } else {
                    1 + next(4000)
                };
                let end = (at + size).min(wire.len());
                stream.push(wire.slice(at..end));
                at = end;
                while let Some(mut message) = stream.next_message(usize::MAX).unwrap() {
                    let mut read = Vec::new();
                    while message.has_remaining() {
                        let step = 1 + next(message.remaining().min(3000));
                        match next(3) {
                            0 => read.extend_from_slice(&message.copy_to_bytes(step)),
                            1 => {
                                let chunk = message.chunk();
                                let step = step.min(chunk.len());
                                read.extend_from_slice(&chunk[..step]);
                                message.advance(step);
                            }
                            _ => read.push(message.get_u8()),
                        }
                    }
                    got.push(read);
                }
            }
            assert_eq!(got, messages, "round {round}");
            assert_eq!(stream.remaining(), 0, "round {round}");
        }
    }

    #[test]
    fn a_message_a_byte_per_frame_is_kept_in_one_buffer() {
        let mut stream = Frames::default();
        let message: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut sent = vec![0, 0, 1, 0x86, 0xa0];
        sent.extend(&message);
        sent.extend(b"\0\0\0\0\x02ab");
        for byte in &sent {
            stream.push(Bytes::copy_from_slice(std::slice::from_ref(byte)));
        }
        // The first frame is kept as it came; the rest are gathered in the tail.
        assert!(stream.rest.is_empty(), "{} frames kept", stream.rest.len());
        let mut first = stream.next_message(usize::MAX).unwrap().unwrap();
        assert_eq!(first.copy_to_bytes(message.len()), Bytes::from(message));
        let mut second = stream.next_message(usize::MAX).unwrap().unwrap();
        assert_eq!(second.copy_to_bytes(2), Bytes::from_static(b"ab"));
        assert_eq!(stream.remaining(), 0);
        // Small frames behind a large one stay in order.
        let large = vec![7u8; SMALL_FRAME];
        let mut mixed = frames(&[b"\0\0\0", b"\x04", b"\x03"]);
        mixed.push(Bytes::from(large.clone()));
        mixed.push(Bytes::from_static(b"xyz"));
        let mut whole = mixed.next_message(usize::MAX).unwrap().unwrap();
        let mut expected = large;
        expected.extend(b"xyz");
        assert_eq!(whole.copy_to_bytes(expected.len()), Bytes::from(expected));
    }

    #[test]
    fn a_stream_is_cut_into_its_messages_wherever_frames_end() {
        // Three messages ("abc", "", "de") then the start of a fourth, over odd frames.
        let mut stream = frames(&[
            b"\0\0\0",
            b"\0\x03ab",
            b"c\0\0\0\0\0\0\0\0\0\x02d",
            b"e\0\0",
        ]);
        let mut first = stream.next_message(usize::MAX).unwrap().unwrap();
        assert_eq!(first.copy_to_bytes(3), Bytes::from_static(b"abc"));
        assert_eq!(
            stream
                .next_message(usize::MAX)
                .unwrap()
                .unwrap()
                .remaining(),
            0
        );
        let mut third = stream.next_message(usize::MAX).unwrap().unwrap();
        assert_eq!(third.remaining(), 2);
        assert_eq!(third.copy_to_bytes(2), Bytes::from_static(b"de"));
        // The fourth's prefix is not all here, then its body is not.
        assert!(stream.next_message(usize::MAX).unwrap().is_none());
        stream.push(Bytes::from_static(b"\0\0\x04xy"));
        assert!(stream.next_message(usize::MAX).unwrap().is_none());
        stream.push(Bytes::from_static(b"zw"));
        let mut fourth = stream.next_message(usize::MAX).unwrap().unwrap();
        assert_eq!(fourth.copy_to_bytes(4), Bytes::from_static(b"xyzw"));
        assert_eq!(stream.remaining(), 0);
    }
}
