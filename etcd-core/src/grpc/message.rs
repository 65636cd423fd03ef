//! The response messages the direct codecs decode, each from its frames in place, with its
//! one long list sized before decoding.

use bytes::Buf;

use etcd_proto::etcdserverpb as pb;

/// A response message the direct codecs ([`unary`](super::unary),
/// [`streaming`](super::streaming)) decode.
pub(crate) trait Response: prost::Message + Default {
    /// An empty message, its lists sized for what `message` holds when that is worth it.
    fn sized_for<B: Buf + Clone>(_message: &B) -> Self {
        Self::default()
    }
}

impl Response for pb::PutResponse {}
impl Response for pb::DeleteRangeResponse {}
impl Response for pb::TxnResponse {}
impl Response for pb::CompactionResponse {}
impl Response for pb::LeaseKeepAliveResponse {}

impl Response for pb::RangeResponse {
    /// The key-values list allocated once at its size: grown by doubling, a 10,000-key
    /// answer would touch half as much again, and hold both copies while it grows.
    fn sized_for<B: Buf + Clone>(message: &B) -> Self {
        let mut response = Self::default();
        response.kvs.reserve_exact(presize(message, 2));
        response
    }
}

impl Response for pb::WatchResponse {
    /// The events list allocated once at its size, as for a range: a catch-up batch holds
    /// many events.
    fn sized_for<B: Buf + Clone>(message: &B) -> Self {
        let mut response = Self::default();
        response.events.reserve_exact(presize(message, 11));
        response
    }
}

/// Decodes `message`, its lists sized first; its `bytes` fields share `message`'s buffers.
pub(super) fn decode<M: Response>(
    message: impl Buf + Clone,
) -> std::result::Result<M, prost::DecodeError> {
    let mut response = M::sized_for(&message);
    response.merge(message)?;
    Ok(response)
}

/// What to size the list in field `number` of `message` for: how many it holds, when the
/// message is large enough for that to be worth a pass over it; 0 otherwise.
fn presize<B: Buf + Clone>(message: &B, number: u32) -> usize {
    if message.remaining() < PRESIZE_FROM {
        return 0;
    }
    count_field(message.clone(), number)
}

/// Messages from this size on have their lists sized before decoding (a smaller one holds
/// few items, not worth a pass over it).
const PRESIZE_FROM: usize = 16 << 10;

/// How many times field `number` occurs at the top level of `message` (0 when the message
/// is malformed: decoding will say so).
fn count_field(mut message: impl Buf, number: u32) -> usize {
    use prost::encoding::{DecodeContext, decode_key, skip_field};
    let mut count = 0;
    while message.has_remaining() {
        let Ok((tag, wire_type)) = decode_key(&mut message) else {
            return 0;
        };
        count += usize::from(tag == number);
        if skip_field(wire_type, tag, &mut message, DecodeContext::default()).is_err() {
            return 0;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};
    use prost::Message as _;

    use super::super::frames::{Frames, unprefix};
    use super::*;

    /// `message` prefixed, over frames of 1,000 bytes.
    fn over_frames(message: &impl prost::Message) -> Frames {
        let mut body = BytesMut::new();
        body.put_u8(0);
        body.put_u32(message.encoded_len() as u32);
        message.encode(&mut body).unwrap();
        let body = body.freeze();
        let mut frames = Frames::default();
        for chunk in body.chunks(1000) {
            frames.push(body.slice_ref(chunk));
        }
        unprefix(frames).unwrap()
    }

    #[test]
    fn a_message_over_many_frames_decodes_in_place() {
        let response = pb::RangeResponse {
            kvs: (0..100) // 30 KB: sized before decoding
                .map(|i| etcd_proto::mvccpb::KeyValue {
                    key: Bytes::from(format!("key/{i:03}")),
                    value: Bytes::from(vec![b'v'; 300]),
                    ..Default::default()
                })
                .collect(),
            count: 100,
            ..Default::default()
        };
        let message = over_frames(&response);
        let mut decoded = pb::RangeResponse::sized_for(&message);
        assert_eq!(decoded.kvs.capacity(), 100, "sized before decoding");
        decoded.merge(message).unwrap();
        assert_eq!(decoded, response);
        assert_eq!(decoded.kvs.capacity(), 100, "never grown");
    }

    #[test]
    fn a_catch_up_batch_has_its_events_sized() {
        let response = pb::WatchResponse {
            watch_id: 7,
            events: (0..200)
                .map(|i| etcd_proto::mvccpb::Event {
                    kv: Some(etcd_proto::mvccpb::KeyValue {
                        key: Bytes::from(format!("key/{i:03}")),
                        value: Bytes::from(vec![b'v'; 100]),
                        mod_revision: i + 1,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let message = over_frames(&response);
        let mut decoded = pb::WatchResponse::sized_for(&message);
        assert_eq!(decoded.events.capacity(), 200);
        decoded.merge(message).unwrap();
        assert_eq!(decoded, response);
        assert_eq!(decoded.events.capacity(), 200, "never grown");
    }
}
