//! The multiplexer against a scripted fake server.

use std::time::Duration;

use etcd_core::stream::{RequestStream, ResponseStream};
use etcd_proto::{etcdserverpb as pb, mvccpb};
use futures_util::StreamExt;
use pb::watch_request::RequestUnion;
use tokio::sync::mpsc;

use crate::{Error, Watcher};

type ServerSide = (
    RequestStream<pb::WatchRequest>,
    mpsc::UnboundedSender<etcd_core::Result<pb::WatchResponse>>,
);

/// A watch service whose every stream is handed to the test.
fn fake() -> (
    Watcher<impl etcd_core::watch::WatchService>,
    mpsc::UnboundedReceiver<ServerSide>,
) {
    let (streams_tx, streams) = mpsc::unbounded_channel();
    let service = tower::service_fn(move |requests: RequestStream<pb::WatchRequest>| {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _ = streams_tx.send((requests, tx));
        let responses: ResponseStream<pb::WatchResponse> =
            futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        async move { Ok::<_, etcd_core::Error>(responses) }
    });
    let watcher =
        Watcher::new(service).with_backoff(Duration::from_millis(1), Duration::from_millis(5));
    (watcher, streams)
}

fn header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

fn created(id: i64, revision: i64) -> pb::WatchResponse {
    pb::WatchResponse {
        header: header(revision),
        watch_id: id,
        created: true,
        ..Default::default()
    }
}

fn events(id: i64, revs: &[i64]) -> pb::WatchResponse {
    pb::WatchResponse {
        header: header(*revs.last().unwrap()),
        watch_id: id,
        events: revs
            .iter()
            .map(|&r| mvccpb::Event {
                r#type: 0,
                kv: Some(mvccpb::KeyValue {
                    key: "k".into(),
                    mod_revision: r,
                    ..Default::default()
                }),
                prev_kv: None,
            })
            .collect(),
        ..Default::default()
    }
}

async fn next_request(requests: &mut RequestStream<pb::WatchRequest>) -> RequestUnion {
    tokio::time::timeout(Duration::from_secs(5), requests.next())
        .await
        .expect("no request")
        .expect("request stream ended")
        .request_union
        .unwrap()
}

fn start_revision(request: RequestUnion) -> i64 {
    match request {
        RequestUnion::CreateRequest(c) => c.start_revision,
        other => panic!("expected a creation, got {other:?}"),
    }
}

fn revisions(item: Option<Result<crate::WatchResponse, Error>>) -> Vec<i64> {
    item.unwrap()
        .unwrap()
        .events()
        .iter()
        .map(|e| e.revision())
        .collect()
}

/// etcd 3.5.1 answers a refused creation with watch id 0, the id of a live watch: creation
/// replies are matched in order, so the live watch goes on.
#[tokio::test]
async fn a_refused_creation_with_id_zero_does_not_touch_watch_zero() {
    let (watcher, mut streams) = fake();
    let first = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("a").await }
    });
    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 0);
    tx.send(Ok(created(0, 10))).unwrap();
    let mut first = first.await.unwrap().unwrap();

    let second = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("secret").await }
    });
    next_request(&mut requests).await;
    tx.send(Ok(pb::WatchResponse {
        canceled: true,
        cancel_reason: "etcdserver: permission denied".into(),
        ..created(0, 10)
    }))
    .unwrap();
    let refused = second.await.unwrap().unwrap_err();
    assert!(
        matches!(refused, Error::WatchCanceled { .. }),
        "{refused:?}"
    );

    tx.send(Ok(events(0, &[11]))).unwrap();
    assert_eq!(revisions(first.next().await), vec![11]);
}

/// The resume revision: creation header + 1 for a "from now" watch, then last event + 1,
/// then progress + 1; events the new stream sends again below it are dropped.
#[tokio::test]
async fn resumes_after_the_last_delivered_revision() {
    let (watcher, mut streams) = fake();
    let stream = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("k").await }
    });
    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 0);
    tx.send(Ok(created(7, 10))).unwrap();
    let mut stream = stream.await.unwrap().unwrap();

    // Broken before any event: resume after the creation revision.
    drop(tx);
    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 11);
    tx.send(Ok(created(1, 12))).unwrap();
    tx.send(Ok(events(1, &[11, 12, 12]))).unwrap();
    assert_eq!(revisions(stream.next().await), vec![11, 12, 12]);

    tx.send(Err(etcd_core::Error::Protocol("reset".into())))
        .unwrap();
    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 13);
    tx.send(Ok(created(0, 20))).unwrap();
    // A progress notification moves the resume point.
    tx.send(Ok(pb::WatchResponse {
        header: header(20),
        watch_id: 0,
        ..Default::default()
    }))
    .unwrap();
    let progress = stream.next().await.unwrap().unwrap();
    assert!(progress.is_progress_notify() && progress.revision() == 20);
    drop(tx);

    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 21);
    tx.send(Ok(created(0, 22))).unwrap();
    // A server re-sending old history (etcd #15271): dropped.
    tx.send(Ok(events(0, &[12]))).unwrap();
    tx.send(Ok(events(0, &[21, 22]))).unwrap();
    assert_eq!(revisions(stream.next().await), vec![21, 22]);
}

/// An answer to a progress request (watch id -1) is delivered, but does not move the
/// resume point: etcd 3.4.23 / 3.5.1 may send it before events at or below its revision
/// (etcd #15220), and resuming after it would lose them.
#[tokio::test]
async fn a_requested_progress_does_not_move_the_resume_point() {
    let (watcher, mut streams) = fake();
    let stream = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("k").from_revision(5).await }
    });
    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 5);
    tx.send(Ok(created(3, 9))).unwrap();
    let mut stream = stream.await.unwrap().unwrap();
    tx.send(Ok(events(3, &[5]))).unwrap();
    assert_eq!(revisions(stream.next().await), vec![5]);
    // The answer to a request overtakes the event at 7.
    tx.send(Ok(pb::WatchResponse {
        header: header(9),
        watch_id: -1,
        ..Default::default()
    }))
    .unwrap();
    let progress = stream.next().await.unwrap().unwrap();
    assert!(progress.is_progress_notify() && progress.is_requested_progress());
    assert_eq!(progress.revision(), 9);
    drop(tx);
    // Resumed after the last event, not after the requested progress.
    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 6);
    tx.send(Ok(created(0, 9))).unwrap();
    tx.send(Ok(events(0, &[7]))).unwrap();
    assert_eq!(revisions(stream.next().await), vec![7]);
    // The watch's own notification is a bookmark.
    tx.send(Ok(pb::WatchResponse {
        header: header(9),
        watch_id: 0,
        ..Default::default()
    }))
    .unwrap();
    let own = stream.next().await.unwrap().unwrap();
    assert!(own.is_progress_notify() && !own.is_requested_progress());
    drop(tx);
    let (mut requests, _tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 10);
}

/// Fragments are delivered by whole revisions as they come (a revision split over two
/// fragments is delivered once both are in); dropping the stream cancels on the server.
#[tokio::test]
async fn fragments_are_delivered_by_whole_revisions_and_drop_cancels() {
    let (watcher, mut streams) = fake();
    let stream = tokio::spawn({
        let watcher = watcher.clone();
        async move {
            watcher
                .watch("k")
                .prefix()
                .fragment()
                .from_revision(5)
                .await
        }
    });
    let (mut requests, tx) = streams.recv().await.unwrap();
    match next_request(&mut requests).await {
        RequestUnion::CreateRequest(c) => {
            assert!(c.fragment);
            assert_eq!(c.start_revision, 5);
            assert_eq!(&c.range_end[..], b"l");
        }
        other => panic!("{other:?}"),
    }
    tx.send(Ok(created(3, 9))).unwrap();
    let mut stream = stream.await.unwrap().unwrap();
    let fragments = [
        (&[5, 6][..], true),
        (&[6, 7][..], true),
        (&[7][..], true),
        (&[8][..], false),
    ];
    for (revs, fragment) in fragments {
        tx.send(Ok(pb::WatchResponse {
            fragment,
            ..events(3, revs)
        }))
        .unwrap();
    }
    assert_eq!(revisions(stream.next().await), vec![5]);
    assert_eq!(revisions(stream.next().await), vec![6, 6]);
    assert_eq!(revisions(stream.next().await), vec![7, 7, 8]);
    drop(stream);
    match next_request(&mut requests).await {
        RequestUnion::CancelRequest(c) => assert_eq!(c.watch_id, 3),
        other => panic!("{other:?}"),
    }
}

/// Compaction ends one watch with its compact revision; another on the stream goes on.
#[tokio::test]
async fn compaction_ends_only_its_watch() {
    let (watcher, mut streams) = fake();
    let a = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("a").from_revision(2).await }
    });
    let (mut requests, tx) = streams.recv().await.unwrap();
    next_request(&mut requests).await;
    tx.send(Ok(created(0, 30))).unwrap();
    let mut a = a.await.unwrap().unwrap();
    let b = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("b").await }
    });
    next_request(&mut requests).await;
    tx.send(Ok(created(1, 30))).unwrap();
    let mut b = b.await.unwrap().unwrap();
    tx.send(Ok(pb::WatchResponse {
        header: header(30),
        watch_id: 0,
        canceled: true,
        compact_revision: 25,
        ..Default::default()
    }))
    .unwrap();
    assert!(matches!(
        a.next().await,
        Some(Err(Error::WatchCompacted {
            compact_revision: 25
        }))
    ));
    assert!(a.next().await.is_none());
    tx.send(Ok(events(1, &[31]))).unwrap();
    assert_eq!(revisions(b.next().await), vec![31]);
}

/// A compaction error for revisions the watch no longer needs (its resume revision is at
/// or above the compaction) is the server's mistake: the watch is created again from its
/// resume revision and nothing is lost; after three such errors it ends typed.
#[tokio::test]
async fn a_compaction_below_the_resume_revision_recreates_the_watch() {
    let (watcher, mut streams) = fake();
    let a = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("a").from_revision(2).await }
    });
    let (mut requests, tx) = streams.recv().await.unwrap();
    next_request(&mut requests).await;
    tx.send(Ok(created(0, 30))).unwrap();
    let mut a = a.await.unwrap().unwrap();
    tx.send(Ok(events(0, &[20, 21]))).unwrap();
    assert_eq!(revisions(a.next().await), vec![20, 21]);
    let compacted = |id| {
        Ok(pb::WatchResponse {
            header: header(40),
            watch_id: id,
            canceled: true,
            compact_revision: 22,
            ..Default::default()
        })
    };
    for round in 0..3 {
        tx.send(compacted(round)).unwrap();
        // Created again from 22, on the same stream.
        assert_eq!(
            start_revision(next_request(&mut requests).await),
            22,
            "round {round}"
        );
        tx.send(Ok(created(round + 1, 40))).unwrap();
    }
    tx.send(Ok(events(3, &[22]))).unwrap();
    assert_eq!(revisions(a.next().await), vec![22]);
    // A fourth one ends the watch.
    tx.send(compacted(3)).unwrap();
    assert!(matches!(
        a.next().await,
        Some(Err(Error::WatchCompacted {
            compact_revision: 22
        }))
    ));
}

/// A watch refused on auth grounds gets a new token (the reauthentication hook, once), a
/// new stream and one more creation; refused again, it ends typed. The other watch moves
/// to the new stream without loss. Every creation asks for an id of its own.
#[tokio::test]
async fn an_auth_refusal_reauthenticates_once_on_a_new_stream() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (watcher, mut streams) = fake();
    let calls = Arc::new(AtomicUsize::new(0));
    let watcher = watcher.with_reauthentication(Arc::new({
        let calls = Arc::clone(&calls);
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { true })
        }
    }));
    let create_id = |request: RequestUnion| match request {
        RequestUnion::CreateRequest(c) => (c.watch_id, c.start_revision),
        other => panic!("expected a creation, got {other:?}"),
    };
    let first = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("a").await }
    });
    let (mut requests, tx) = streams.recv().await.unwrap();
    let (id_a, _) = create_id(next_request(&mut requests).await);
    assert!(id_a > 0);
    tx.send(Ok(created(id_a, 10))).unwrap();
    let mut first = first.await.unwrap().unwrap();

    let second = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("secret").await }
    });
    let (id_s, _) = create_id(next_request(&mut requests).await);
    assert!(id_s > id_a);
    tx.send(Ok(pb::WatchResponse {
        canceled: true,
        cancel_reason: "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
            .into(),
        ..created(id_s, 10)
    }))
    .unwrap();

    // A new stream, after one reauthentication: both watches are created again.
    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (again_a, from) = create_id(next_request(&mut requests).await);
    assert_eq!(from, 11);
    let (again_s, _) = create_id(next_request(&mut requests).await);
    assert!(again_a > id_s && again_s > again_a);
    tx.send(Ok(created(again_a, 10))).unwrap();
    tx.send(Ok(pb::WatchResponse {
        canceled: true,
        cancel_reason: "etcdserver: permission denied".into(),
        ..created(again_s, 10)
    }))
    .unwrap();
    let refused = second.await.unwrap().unwrap_err();
    assert_eq!(
        refused.server_kind(),
        Some(etcd_core::ServerErrorKind::PermissionDenied),
        "{refused:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one reauthentication only");

    tx.send(Ok(events(again_a, &[11]))).unwrap();
    assert_eq!(revisions(first.next().await), vec![11]);
}

/// A creation the server never answers fails with a typed timeout and is cancelled; a
/// watch created in time is not ended by the timeout.
#[tokio::test(start_paused = true)]
async fn the_create_timeout_bounds_creation_only() {
    let (watcher, mut streams) = fake();
    let watcher = watcher.with_create_timeout(Some(Duration::from_secs(2)));
    let started = tokio::time::Instant::now();
    let unanswered = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("a").await }
    });
    let (mut requests, _tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 0);
    let e = unanswered.await.unwrap().unwrap_err();
    assert!(matches!(e, etcd_core::Error::Timeout { .. }), "{e:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));

    // The next watch (on a new stream: the abandoned one closed with its last watch) is
    // created in time and lives past the timeout.
    let answered = tokio::spawn({
        let watcher = watcher.clone();
        async move { watcher.watch("b").await }
    });
    let (mut requests, tx) = streams.recv().await.unwrap();
    assert_eq!(start_revision(next_request(&mut requests).await), 0);
    tx.send(Ok(created(2, 10))).unwrap();
    let mut stream = answered.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    tx.send(Ok(events(2, &[11]))).unwrap();
    assert_eq!(revisions(stream.next().await), [11]);
}
