//! Reading a large range page by page, every page at the revision of the first.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use etcd_proto::etcdserverpb as pb;
use futures_core::Stream;
use futures_core::stream::BoxStream;
use pb::range_request::{SortOrder as PbOrder, SortTarget as PbTarget};

use super::{Get, GetResponse, Kv, KvService};
use crate::error::{InvalidRequest, Result};

/// The pages of a range read at one revision, from [`Get::paginate`]: a [`Stream`] of
/// [`GetResponse`]s, each holding up to the page size of keys in key order.
///
/// The first page is read at the revision the request names (the latest by default) and
/// every later page at the revision the first one was read at, so together they are one
/// consistent snapshot of the range however long the scan takes and however the keys
/// change meanwhile. Only one page is held at a time. When compaction passes that revision
/// before the last page, the stream ends with the server's
/// [`Compacted`](crate::ServerErrorKind::Compacted) error: a scan never mixes revisions.
///
/// ```no_run
/// # async fn example<S: etcd_core::kv::KvService>(kv: etcd_core::Kv<S>) -> etcd_core::Result<()> {
/// use futures_util::StreamExt;
///
/// let mut pages = kv.get("big/").prefix().paginate(1000);
/// let mut keys = 0;
/// while let Some(page) = pages.next().await {
///     keys += page?.kvs().len();
/// }
/// println!("{keys} keys, as they were at revision {:?}", pages.revision());
/// # Ok(()) }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Pages {
    inner: BoxStream<'static, Result<GetResponse>>,
    revision: Arc<AtomicI64>,
}

impl Pages {
    /// The revision every page is read at: the one the request named, or the one the
    /// first page was read at; `None` before the first page arrives. (A page's own
    /// [`revision`](GetResponse::revision) is the store's revision when it was served,
    /// which moves on as the keys change.)
    pub fn revision(&self) -> Option<i64> {
        match self.revision.load(Ordering::Acquire) {
            0 => None,
            revision => Some(revision),
        }
    }
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages(..)")
    }
}

impl Stream for Pages {
    type Item = Result<GetResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Where a scan stands between two pages.
struct Cursor<S> {
    kv: Kv<S>,
    /// The scan's request: range end, options, and the revision (pinned after the first
    /// page).
    template: pb::RangeRequest,
    /// Where the next page starts; `None` once the scan is done.
    next_key: Option<Bytes>,
    /// The pinned revision, for [`Pages::revision`].
    revision: Arc<AtomicI64>,
    page_size: i64,
    /// Keys still wanted when the request set a limit over the whole scan.
    remaining: Option<i64>,
}

impl<S: KvService> Get<Kv<S>> {
    /// Reads the range in pages of at most `page_size` keys, all at one revision (see
    /// [`Pages`]). Works with every option but sorting (pages follow key order),
    /// `count_only`, and a limit, which then bounds the whole scan. A page size below 1,
    /// or an option that cannot be paginated, makes the first item an
    /// [`InvalidRequest`](crate::Error::InvalidRequest) and nothing is sent.
    pub fn paginate(self, page_size: i64) -> Pages {
        let (kv, get) = self.into_parts();
        let request = match get.build(&kv.limits) {
            Ok(request) => paginable(request, page_size),
            Err(error) => Err(error),
        };
        let revision = Arc::new(AtomicI64::new(0));
        let cursor = request.map(|mut template| Cursor {
            remaining: (template.limit > 0).then_some(template.limit),
            next_key: Some(std::mem::take(&mut template.key)),
            revision: Arc::clone(&revision),
            template,
            kv,
            page_size,
        });
        let inner = match cursor {
            Ok(cursor) => Box::pin(futures_util::stream::unfold(cursor, next_page)) as BoxStream<_>,
            Err(error) => Box::pin(futures_util::stream::iter([Err(error)])),
        };
        Pages { inner, revision }
    }
}

/// Checks that `request` can be read in pages of `page_size`.
fn paginable(request: pb::RangeRequest, page_size: i64) -> Result<pb::RangeRequest> {
    if page_size < 1 {
        return Err(InvalidRequest::OutOfRange {
            what: "page size",
            value: page_size,
        }
        .into());
    }
    let by_key = request.sort_target == PbTarget::Key as i32
        && matches!(
            PbOrder::try_from(request.sort_order),
            Ok(PbOrder::None | PbOrder::Ascend)
        );
    if !by_key {
        return Err(InvalidRequest::Other(
            "a paginated read follows key order: it cannot be sorted otherwise".into(),
        )
        .into());
    }
    if request.count_only {
        return Err(InvalidRequest::Other(
            "a paginated read returns keys: count_only has nothing to paginate".into(),
        )
        .into());
    }
    Ok(request)
}

/// Reads the page `cursor` points at, and moves the cursor past it.
async fn next_page<S: KvService>(
    mut cursor: Cursor<S>,
) -> Option<(Result<GetResponse>, Cursor<S>)> {
    let key = cursor.next_key.take()?;
    let request = pb::RangeRequest {
        key,
        limit: cursor.remaining.map_or(cursor.page_size, |remaining| {
            remaining.min(cursor.page_size)
        }),
        ..cursor.template.clone()
    };
    let page: GetResponse = match cursor.kv.send(Ok(request)).await {
        Ok(page) => page,
        // No next key: the stream ends after the error.
        Err(error) => return Some((Err(error), cursor)),
    };
    // Every later page at the first page's revision.
    if cursor.template.revision <= 0 {
        cursor.template.revision = page.revision();
    }
    cursor
        .revision
        .store(cursor.template.revision, Ordering::Release);
    if let Some(remaining) = &mut cursor.remaining {
        *remaining -= page.kvs().len() as i64;
    }
    let wanted = cursor.remaining.is_none_or(|remaining| remaining > 0);
    if page.more() && wanted {
        cursor.next_key = page.kvs().last().map(|last| after(last.key()));
    }
    Some((Ok(page), cursor))
}

/// The smallest key after `key`: `key` followed by a zero byte.
fn after(key: &[u8]) -> Bytes {
    let mut next = BytesMut::with_capacity(key.len() + 1);
    next.put_slice(key);
    next.put_u8(0);
    next.freeze()
}
