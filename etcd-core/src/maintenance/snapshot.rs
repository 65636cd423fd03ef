//! Snapshots: the backend streamed in chunks, with etcd's sha256 trailer verified.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use etcd_proto::etcdserverpb as pb;
use futures_core::Stream;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::future::FromResponse;
use crate::stream::ResponseStream;

/// The length of the sha256 digest etcd appends to a snapshot.
const TRAILER_LEN: usize = 32;

/// What went wrong while taking a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The call failed, or the stream broke before its end.
    #[error(transparent)]
    Etcd(#[from] Error),
    /// Writing the snapshot failed.
    #[error("writing the snapshot failed: {0}")]
    Io(#[from] std::io::Error),
    /// The data does not hash to the sha256 trailer etcd sent after it: the snapshot is
    /// corrupt and must be discarded.
    #[error(
        "snapshot checksum mismatch: the trailer says sha256 {}, the data hashes to {}",
        hex(.expected),
        hex(.actual)
    )]
    ChecksumMismatch {
        /// The digest etcd sent.
        expected: [u8; 32],
        /// The digest of the data received.
        actual: [u8; 32],
    },
    /// The stream ended before a whole snapshot and trailer came.
    #[error("the snapshot stream ended after {received} bytes, without its sha256 trailer")]
    Truncated {
        /// The bytes received, trailer included.
        received: u64,
    },
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A snapshot that was received whole and verified.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnapshotInfo {
    size: u64,
    sha256: [u8; 32],
}

impl SnapshotInfo {
    /// The size of the backend data in bytes, without the 32-byte trailer.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The sha256 digest of the data, as etcd sent it in the trailer and as verified.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }
}

impl fmt::Debug for SnapshotInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotInfo")
            .field("size", &self.size)
            .field("sha256", &hex(&self.sha256))
            .finish()
    }
}

/// A snapshot being received: a stream of chunks of the backend file.
///
/// etcd ends a snapshot stream with the sha256 digest of the data. The stream holds the
/// last 32 bytes back until it ends, checks them against the data and then ends cleanly
/// (with [`info`](Self::info) available), or yields
/// [`SnapshotError::ChecksumMismatch`] or [`SnapshotError::Truncated`] as its last
/// item. The chunks are the data only, without the trailer. Chunks are handed on as
/// received, without copying.
pub struct Snapshot {
    inner: ResponseStream<pb::SnapshotResponse>,
    /// Received but possibly the trailer: held until more data proves otherwise.
    held: VecDeque<Bytes>,
    held_len: usize,
    /// Verified to precede the trailer: ready to hand on, already hashed.
    ready: VecDeque<Bytes>,
    hasher: Sha256,
    data_len: u64,
    received: u64,
    remaining: Option<u64>,
    state: State,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Streaming,
    Verified(SnapshotInfo),
    Failed,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("received", &self.received)
            .field("remaining", &self.remaining)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// A snapshot over the server's stream of snapshot messages.
    pub fn new(stream: ResponseStream<pb::SnapshotResponse>) -> Self {
        Self {
            inner: stream,
            held: VecDeque::new(),
            held_len: 0,
            ready: VecDeque::new(),
            hasher: Sha256::new(),
            data_len: 0,
            received: 0,
            remaining: None,
            state: State::Streaming,
        }
    }

    /// The bytes received so far, trailer included.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The bytes still to come, as the server counted them with its last message (`None`
    /// before the first).
    pub fn remaining_bytes(&self) -> Option<u64> {
        self.remaining
    }

    /// The size and verified digest, once the stream has ended with a good trailer.
    pub fn info(&self) -> Option<SnapshotInfo> {
        match self.state {
            State::Verified(info) => Some(info),
            _ => None,
        }
    }

    /// Writes the data, then, once verified, the trailer, to `writer` and flushes it: the
    /// bytes written are the snapshot file as `etcdctl snapshot save` writes it.
    pub async fn write_to<W>(mut self, writer: &mut W) -> Result<SnapshotInfo, SnapshotError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        while let Some(chunk) = self.next().await {
            writer.write_all(&chunk?).await?;
        }
        let info = self
            .info()
            .ok_or_else(|| Error::Protocol("snapshot stream polled after its end".into()))?;
        writer.write_all(info.sha256()).await?;
        writer.flush().await?;
        Ok(info)
    }

    /// Moves held chunks that cannot be part of the trailer to `ready`, hashing them.
    fn release(&mut self) {
        while let Some(front) = self.held.front() {
            if self.held_len - front.len() < TRAILER_LEN {
                break;
            }
            let chunk = self.held.pop_front().expect("front exists");
            self.held_len -= chunk.len();
            self.accept(chunk);
        }
    }

    fn accept(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.hasher.update(&chunk);
        self.data_len += chunk.len() as u64;
        self.ready.push_back(chunk);
    }

    /// The stream ended: split the held bytes into data and trailer, and verify.
    fn finish(&mut self) -> Result<(), SnapshotError> {
        if self.held_len < TRAILER_LEN {
            return Err(SnapshotError::Truncated {
                received: self.received,
            });
        }
        let mut tail = BytesMut::with_capacity(self.held_len);
        for chunk in self.held.drain(..) {
            tail.extend_from_slice(&chunk);
        }
        self.held_len = 0;
        let trailer = tail.split_off(tail.len() - TRAILER_LEN);
        self.accept(tail.freeze());
        let actual: [u8; 32] = self.hasher.finalize_reset().into();
        let expected: [u8; 32] = trailer[..].try_into().expect("32 bytes");
        if actual != expected {
            return Err(SnapshotError::ChecksumMismatch { expected, actual });
        }
        self.state = State::Verified(SnapshotInfo {
            size: self.data_len,
            sha256: actual,
        });
        Ok(())
    }
}

impl Stream for Snapshot {
    type Item = Result<Bytes, SnapshotError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if !matches!(this.state, State::Failed)
                && let Some(chunk) = this.ready.pop_front()
            {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if !matches!(this.state, State::Streaming) {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.state = State::Failed;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(Some(Ok(message))) => {
                    this.remaining = Some(message.remaining_bytes);
                    this.received += message.blob.len() as u64;
                    this.held_len += message.blob.len();
                    this.held.push_back(message.blob);
                    this.release();
                }
                Poll::Ready(None) => {
                    if let Err(e) = this.finish() {
                        this.state = State::Failed;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }
}

impl FromResponse<ResponseStream<pb::SnapshotResponse>> for Snapshot {
    fn from_response(stream: ResponseStream<pb::SnapshotResponse>) -> Result<Self> {
        Ok(Self::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages etcd sends for `data`: chunks of `chunk` bytes, then the digest alone.
    fn messages(data: &[u8], chunk: usize) -> Vec<pb::SnapshotResponse> {
        let mut out: Vec<_> = data
            .chunks(chunk)
            .map(|c| pb::SnapshotResponse {
                header: None,
                remaining_bytes: 0,
                blob: Bytes::copy_from_slice(c),
            })
            .collect();
        out.push(pb::SnapshotResponse {
            header: None,
            remaining_bytes: 0,
            blob: Bytes::copy_from_slice(&Sha256::digest(data)),
        });
        out
    }

    fn snapshot(messages: Vec<pb::SnapshotResponse>) -> Snapshot {
        Snapshot::new(futures_util::stream::iter(messages.into_iter().map(Ok)).boxed())
    }

    async fn written(
        messages: Vec<pb::SnapshotResponse>,
    ) -> (Vec<u8>, Result<SnapshotInfo, SnapshotError>) {
        let mut out = Vec::new();
        let result = snapshot(messages).write_to(&mut out).await;
        (out, result)
    }

    #[tokio::test]
    async fn a_good_snapshot_is_written_with_its_trailer() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in [1, 7, 31, 32, 33, 4096, 20_000] {
            let (out, result) = written(messages(&data, chunk)).await;
            let info = result.unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
            assert_eq!(info.size(), data.len() as u64);
            assert_eq!(&info.sha256()[..], &Sha256::digest(&data)[..]);
            assert_eq!(&out[..data.len()], &data[..]);
            assert_eq!(&out[data.len()..], &info.sha256()[..]);
        }
    }

    #[tokio::test]
    async fn the_trailer_may_share_a_message_with_data() {
        let data = b"some backend bytes".to_vec();
        let mut whole = data.clone();
        whole.extend_from_slice(&Sha256::digest(&data));
        let one = vec![pb::SnapshotResponse {
            header: None,
            remaining_bytes: 0,
            blob: whole.into(),
        }];
        let (out, result) = written(one).await;
        assert_eq!(result.unwrap().size(), data.len() as u64);
        assert!(out.starts_with(&data));
    }

    #[tokio::test]
    async fn a_corrupt_byte_is_a_checksum_mismatch() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
        let mut msgs = messages(&data, 1024);
        let mut blob = msgs[2].blob.to_vec();
        blob[100] ^= 0x01;
        msgs[2].blob = blob.into();
        let (_, result) = written(msgs).await;
        match result {
            Err(SnapshotError::ChecksumMismatch { expected, actual }) => {
                assert_eq!(&expected[..], &Sha256::digest(&data)[..]);
                assert_ne!(expected, actual);
            }
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_corrupt_trailer_is_a_checksum_mismatch() {
        let mut msgs = messages(b"data", 2);
        let last = msgs.len() - 1;
        let mut trailer = msgs[last].blob.to_vec();
        trailer[31] ^= 0xff;
        msgs[last].blob = trailer.into();
        let (_, result) = written(msgs).await;
        assert!(
            matches!(result, Err(SnapshotError::ChecksumMismatch { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_shorter_than_a_trailer_is_truncated() {
        let msgs = vec![pb::SnapshotResponse {
            header: None,
            remaining_bytes: 10,
            blob: Bytes::from_static(b"short"),
        }];
        let (out, result) = written(msgs).await;
        assert!(out.is_empty());
        assert!(
            matches!(result, Err(SnapshotError::Truncated { received: 5 })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_broken_stream_is_an_etcd_error() {
        let items: Vec<Result<pb::SnapshotResponse>> = vec![
            Ok(messages(b"abc", 3).remove(0)),
            Err(Error::Protocol("broken".into())),
        ];
        let snap = Snapshot::new(futures_util::stream::iter(items).boxed());
        let mut out = Vec::new();
        let result = snap.write_to(&mut out).await;
        assert!(matches!(result, Err(SnapshotError::Etcd(_))), "{result:?}");
    }
}
