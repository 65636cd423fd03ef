//! etcd's fair queue, shared by the mutex, the election and the read-write lock: each
//! session puts one key under a prefix, and waits until no key under a second prefix
//! (the keys that go *ahead* of it) has a lower create revision, watching only the
//! newest such key each time. For the mutex and the election both prefixes are the same
//! (the key with the lowest create revision is at the head); a reader of the read-write
//! lock waits only for the writers ahead of it (`{name}/write/`), a writer for every key
//! ahead of it (`{name}/`).

use std::pin::pin;

use bytes::Bytes;
use etcd_core::kv::{Compare, Get, KeyValue, Op, OpResponse, Put, SortOrder, SortTarget, Txn};
use futures_util::StreamExt;
use futures_util::future::{Either, select};

use super::{Error, Result, Session};

/// A session's place in a queue.
#[derive(Debug)]
pub(crate) struct Place {
    /// The session's key.
    pub(crate) key: Bytes,
    /// Its create revision: the fencing token.
    pub(crate) revision: i64,
    /// True when this call put the key; false when the session's key was already there.
    pub(crate) created: bool,
    /// The key's value before this call, when it was already there.
    pub(crate) existing: Option<KeyValue>,
    /// The oldest key going ahead (under `ahead`) when the key was put.
    pub(crate) head: Option<KeyValue>,
}

impl Place {
    /// Whether no key going ahead had a lower create revision when the key was put.
    pub(crate) fn at_head(&self) -> bool {
        self.head
            .as_ref()
            .is_none_or(|head| head.create_revision() >= self.revision)
    }
}

/// The head of the queue under `prefix`: `Get(prefix).prefix()` sorted by create
/// revision, first only.
pub(crate) fn head(prefix: &Bytes) -> Get {
    Get::new(prefix.clone())
        .prefix()
        .sort(SortTarget::CreateRevision, SortOrder::Ascend)
        .limit(1)
}

/// Puts the session's key `{prefix}{lease:x}` with `value` unless it exists, and reads the
/// oldest key under `ahead` (the keys this one waits for) in the same transaction.
pub(crate) async fn enqueue(
    session: &Session,
    prefix: &Bytes,
    ahead: &Bytes,
    value: Bytes,
) -> Result<Place> {
    let key = session.key_in(prefix);
    let kv = session.client().kv();
    let resp = kv
        .txn()
        .when([Compare::create_revision(key.clone()).eq(0)])
        .then([
            Op::from(Put::new(key.clone(), value).lease(session.lease_id())),
            Op::from(head(ahead)),
        ])
        .otherwise([Op::get(key.clone()), Op::from(head(ahead))])
        .await?;
    let created = resp.succeeded();
    let revision = resp.revision();
    let mut responses = resp.into_responses().into_iter();
    let first = responses.next();
    let head = match responses.next() {
        Some(OpResponse::Get(get)) => get.into_kvs().into_iter().next(),
        _ => return Err(protocol("the queue's head was not read")),
    };
    if created {
        return Ok(Place {
            key,
            revision,
            created,
            existing: None,
            head,
        });
    }
    let existing = match first {
        Some(OpResponse::Get(get)) => get.into_kvs().into_iter().next(),
        _ => None,
    };
    // Absent: deleted between the compare and the read, which cannot happen in one txn.
    let existing = existing.ok_or_else(|| protocol("the session's queue key vanished"))?;
    Ok(Place {
        key,
        revision: existing.create_revision(),
        created,
        existing: Some(existing),
        head,
    })
}

fn protocol(message: &'static str) -> Error {
    Error::Protocol(message.into())
}

/// Waits until no key under `ahead` has a create revision below `revision` (the
/// session's key `key`), watching only the immediate predecessor each time. Fails with
/// [`Error::SessionExpired`] as soon as the session is lost or its key is deleted, and
/// again if, once at the head, the key is not there any more.
pub(crate) async fn wait_turn(
    session: &Session,
    ahead: &Bytes,
    key: &Bytes,
    revision: i64,
) -> Result<()> {
    let client = session.client();
    let expired = expiry(session, key, revision).await?;
    match select(
        pin!(predecessors_gone(session, ahead, revision)),
        pin!(expired),
    )
    .await
    {
        Either::Left((done, _)) => done?,
        Either::Right((expired, _)) => return Err(expired),
    }
    // At the head: make sure the key is still ours (etcd #11456) and the session alive.
    let resp = client.kv().get(key.clone()).await?;
    match resp.first() {
        Some(kv) if kv.create_revision() == revision && session.loss().is_none() => Ok(()),
        _ => Err(session.expired()),
    }
}

/// Resolves with [`Error::SessionExpired`] once the session is lost or its key `key`
/// (created at `revision`) is deleted: race a wait against it. The watch on the key is
/// open when this returns.
pub(crate) async fn expiry<'a>(
    session: &'a Session,
    key: &Bytes,
    revision: i64,
) -> Result<impl std::future::Future<Output = Error> + 'a> {
    // Any delete of the key from its creation on.
    let own = session
        .client()
        .watch(key.clone())
        .from_revision(revision + 1)
        .no_put()
        .await?;
    let gone = async {
        let mut own = own;
        loop {
            match own.next().await {
                Some(Ok(resp)) if !resp.events().is_empty() => return,
                Some(Ok(_)) => {}
                // Compacted, canceled or closed: the callers' final checks still run.
                Some(Err(_)) | None => return std::future::pending().await,
            }
        }
    };
    Ok(async move {
        let lost = pin!(session.lost());
        let gone = pin!(gone);
        let _ = select(lost, gone).await;
        session.expired()
    })
}

/// Loops: reads the newest key under `ahead` created before `revision`, and waits for its
/// deletion.
async fn predecessors_gone(session: &Session, ahead: &Bytes, revision: i64) -> Result<()> {
    let client = session.client();
    loop {
        let resp = client
            .kv()
            .get(ahead.clone())
            .prefix()
            .max_create_revision(revision - 1)
            .sort(SortTarget::CreateRevision, SortOrder::Descend)
            .limit(1)
            .await?;
        let Some(predecessor) = resp.first() else {
            return Ok(());
        };
        let mut deletes = client
            .watch(predecessor.key_bytes().clone())
            .from_revision(resp.revision() + 1)
            .no_put()
            .await?;
        loop {
            match deletes.next().await {
                Some(Ok(resp)) if !resp.events().is_empty() => break,
                Some(Ok(_)) => {}
                Some(Err(etcd_watch::Error::WatchCompacted { .. })) | None => break,
                Some(Err(e)) => return Err(e),
            }
        }
    }
}

/// Deletes `key` if its create revision is still `revision`: the fenced unlock and resign.
pub(crate) fn fenced_delete(kv: &crate::Kv, key: &Bytes, revision: i64) -> Txn<crate::Kv> {
    kv.txn()
        .when([Compare::create_revision(key.clone()).eq(revision)])
        .then([Op::delete(key.clone())])
}

/// Deletes a waiter's key when dropped while armed: makes `lock()` and `campaign()`
/// futures cancel-safe.
#[derive(Debug)]
pub(crate) struct Cleanup {
    kv: Option<crate::Kv>,
    key: Bytes,
    revision: i64,
}

impl Cleanup {
    pub(crate) fn new(session: &Session, place: &Place) -> Self {
        Self::for_key(session, &place.key, place.revision, place.created)
    }

    /// Deletes `key` (fenced on `revision`) unless disarmed; does nothing at all when not
    /// `armed` (a key this call did not put).
    pub(crate) fn for_key(session: &Session, key: &Bytes, revision: i64, armed: bool) -> Self {
        Self {
            kv: armed.then(|| session.client().kv().clone()),
            key: key.clone(),
            revision,
        }
    }

    /// The key stays.
    pub(crate) fn disarm(mut self) {
        self.kv = None;
    }

    /// Deletes the key now (fenced), and waits for the answer.
    pub(crate) async fn run(mut self) {
        if let Some(kv) = self.kv.take() {
            let _ = fenced_delete(&kv, &self.key, self.revision).await;
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(kv) = self.kv.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let txn = fenced_delete(&kv, &self.key, self.revision);
            runtime.spawn(async move {
                let _ = txn.await;
            });
        }
    }
}
