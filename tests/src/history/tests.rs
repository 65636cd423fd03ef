//! The checker's own tests: hand-made histories, clean ones that must pass and ones with a
//! planted anomaly that must be flagged.

use std::collections::BTreeMap;

use super::model::*;
use super::{Anomaly, Report, check};

/// A minimal etcd: applies writes in order and keeps the records a reference watch would.
#[derive(Default)]
struct Server {
    revision: i64,
    kvs: BTreeMap<String, Kv>,
    records: Vec<RevisionRecord>,
}

impl Server {
    fn new() -> Self {
        // Revision 1 is the empty store.
        Self {
            revision: 1,
            ..Self::default()
        }
    }

    fn put(&mut self, key: &str, value: &str) -> i64 {
        self.put_leased(key, value, 0)
    }

    fn put_leased(&mut self, key: &str, value: &str, lease: i64) -> i64 {
        self.revision += 1;
        let rev = self.revision;
        let prev = self.kvs.get(key);
        let kv = Kv {
            key: key.into(),
            value: value.into(),
            create_revision: prev.map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.map_or(1, |p| p.version + 1),
            lease,
        };
        self.kvs.insert(key.into(), kv.clone());
        self.record(vec![Event {
            kind: EventKind::Put,
            kv,
            prev: None,
        }]);
        rev
    }

    fn delete(&mut self, key: &str) -> i64 {
        self.revision += 1;
        self.kvs.remove(key);
        let kv = Kv {
            key: key.into(),
            mod_revision: self.revision,
            ..Kv::default()
        };
        self.record(vec![Event {
            kind: EventKind::Delete,
            kv,
            prev: None,
        }]);
        self.revision
    }

    fn record(&mut self, events: Vec<Event>) {
        self.records.push(RevisionRecord {
            revision: self.revision,
            seen_at: self.revision as u64 * 1000,
            events,
        });
    }

    fn kv(&self, key: &str) -> Option<Kv> {
        self.kvs.get(key).cloned()
    }
}

fn op(id: u64, call: u64, ret: Option<u64>, req: Request, resp: Response) -> Op {
    Op {
        client: id as u32,
        id,
        call,
        ret,
        elapsed: 0,
        req,
        resp,
    }
}

fn put_req(key: &str, value: &str) -> Request {
    Request::Put(PutReq {
        key: key.into(),
        value: value.into(),
        ..PutReq::default()
    })
}

fn put_ok(revision: i64) -> Response {
    Response::Put(PutResp {
        revision,
        prev: None,
    })
}

fn get_req(key: &str) -> Request {
    Request::Get(GetReq {
        key: key.into(),
        ..GetReq::default()
    })
}

fn get_ok(revision: i64, kv: Option<Kv>) -> Response {
    let kvs: Vec<Kv> = kv.into_iter().collect();
    Response::Get(GetResp {
        revision,
        count: kvs.len() as i64,
        kvs,
        more: false,
    })
}

fn unknown() -> Response {
    Response::Failed {
        outcome: Outcome::Unknown,
        message: "request timed out".into(),
    }
}

fn run(ops: Vec<Op>, server: &Server) -> Report {
    let history = History {
        ops,
        ..History::default()
    };
    check(&history, server.records.clone())
}

fn assert_clean(report: &Report) {
    assert!(report.is_clean(), "expected no anomaly, got:\n{report}");
}

fn assert_flags(report: &Report, what: &str, found: impl Fn(&Anomaly) -> bool) {
    assert!(
        report.anomalies.iter().any(found),
        "expected {what}, got:\n{report}"
    );
}

#[test]
fn a_clean_history_of_puts_gets_deletes_and_a_cas_passes() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let kv1 = s.kv("a");
    let r2 = s.put("a", "c1-2");
    let kv2 = s.kv("a");
    let cas = Request::Txn(TxnReq {
        compares: vec![Compare {
            key: "a".into(),
            target: CompareTarget::Value("c1-2".into()),
            op: CompareOp::Equal,
        }],
        success: vec![TxnOp::Put(PutReq {
            key: "b".into(),
            value: "c0-3".into(),
            prev_kv: true,
            ..PutReq::default()
        })],
        failure: vec![TxnOp::Get(GetReq {
            key: "a".into(),
            ..GetReq::default()
        })],
    });
    let r3 = s.put("b", "c0-3");
    let r4 = s.delete("a");
    let ops = vec![
        op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1)),
        op(2, 5, Some(15), get_req("a"), get_ok(r1, kv1)),
        op(3, 20, Some(30), put_req("a", "c1-2"), put_ok(r2)),
        op(4, 31, Some(40), get_req("a"), get_ok(r2, kv2.clone())),
        op(
            5,
            41,
            Some(50),
            cas,
            Response::Txn(TxnResp {
                revision: r3,
                succeeded: true,
                results: vec![TxnResult::Put(PutResp {
                    revision: r3,
                    prev: None,
                })],
            }),
        ),
        op(
            6,
            51,
            Some(60),
            Request::Delete(DeleteReq {
                key: "a".into(),
                end: None,
                prev_kv: true,
            }),
            Response::Delete(DeleteResp {
                revision: r4,
                deleted: 1,
                prev_kvs: kv2.into_iter().collect(),
            }),
        ),
        op(7, 61, Some(70), get_req("a"), get_ok(r4, None)),
    ];
    let report = run(ops, &s);
    assert_clean(&report);
    assert_eq!(report.ops, 7);
}

#[test]
fn a_lost_acknowledged_write_is_flagged() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let ops = vec![
        op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1)),
        // Acknowledged, but the server never applied it.
        op(2, 20, Some(30), put_req("a", "c0-2"), put_ok(r1 + 1)),
    ];
    let report = run(ops, &s);
    assert_flags(&report, "a lost write", |a| {
        matches!(a, Anomaly::LostWrite { op: 2, .. })
    });
}

#[test]
fn a_write_applied_twice_is_flagged() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    // A retry of the same put applied it a second time.
    s.put("a", "c0-1");
    let ops = vec![op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1))];
    let report = run(ops, &s);
    assert_flags(
        &report,
        "a duplicate",
        |a| matches!(a, Anomaly::DuplicateWrite { value, .. } if value == "c0-1"),
    );
}

#[test]
fn an_unknown_outcome_write_applied_twice_is_flagged() {
    let mut s = Server::new();
    s.put("a", "c0-1");
    s.put("a", "c0-1");
    let ops = vec![op(1, 0, None, put_req("a", "c0-1"), unknown())];
    let report = run(ops, &s);
    assert_flags(&report, "a duplicate", |a| {
        matches!(a, Anomaly::DuplicateWrite { .. })
    });
}

#[test]
fn unknown_outcomes_applied_once_or_never_are_fine() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let kv1 = s.kv("a");
    let ops = vec![
        // Timed out, but applied.
        op(1, 0, None, put_req("a", "c0-1"), unknown()),
        // Timed out and never applied.
        op(2, 5, None, put_req("a", "c1-1"), unknown()),
        op(3, 100, Some(110), get_req("a"), get_ok(r1, kv1)),
    ];
    let report = run(ops, &s);
    assert_clean(&report);
    assert_eq!((report.unknown, report.unknown_applied), (2, 1));
}

#[test]
fn an_unknown_outcome_delete_is_matched_to_its_revision() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    s.delete("a");
    let ops = vec![
        op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1)),
        op(
            2,
            20,
            None,
            Request::Delete(DeleteReq {
                key: "a".into(),
                ..DeleteReq::default()
            }),
            unknown(),
        ),
    ];
    let report = run(ops, &s);
    assert_clean(&report);
    assert_eq!(report.unknown_applied, 1);
}

#[test]
fn a_write_reported_not_applied_that_landed_is_flagged() {
    let mut s = Server::new();
    s.put("a", "c0-1");
    let ops = vec![op(
        1,
        0,
        Some(10),
        put_req("a", "c0-1"),
        Response::Failed {
            outcome: Outcome::NotApplied,
            message: "connection refused".into(),
        },
    )];
    let report = run(ops, &s);
    assert_flags(&report, "applied despite rejection", |a| {
        matches!(a, Anomaly::AppliedDespiteRejection { op: 1, .. })
    });
}

#[test]
fn a_misreported_revision_is_flagged() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let ops = vec![op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1 + 5))];
    let report = run(ops, &s);
    assert_flags(&report, "a revision mismatch", |a| {
        matches!(a, Anomaly::RevisionMismatch { op: 1, .. })
    });
}

#[test]
fn a_write_nobody_made_is_flagged() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    s.put("a", "intruder");
    let ops = vec![op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1))];
    let report = run(ops, &s);
    assert_flags(&report, "a phantom write", |a| {
        matches!(a, Anomaly::PhantomWrite { .. })
    });
}

#[test]
fn a_stale_read_is_flagged() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let kv1 = s.kv("a");
    let r2 = s.put("a", "c0-2");
    let ops = vec![
        op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1)),
        op(2, 20, Some(30), put_req("a", "c0-2"), put_ok(r2)),
        // Began after the second put returned, yet read the state before it.
        op(3, 40, Some(50), get_req("a"), get_ok(r1, kv1)),
    ];
    let report = run(ops, &s);
    assert_flags(&report, "a stale read", |a| {
        matches!(
            a,
            Anomaly::RealTime {
                earlier: 2,
                later: 3,
                ..
            }
        )
    });
    assert_flags(
        &report,
        "no linearization",
        |a| matches!(a, Anomaly::NotLinearizable { key, .. } if key == "a"),
    );
}

#[test]
fn a_stale_serializable_read_is_allowed_but_a_wrong_one_is_not() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let kv1 = s.kv("a");
    let r2 = s.put("a", "c0-2");
    let serializable = Request::Get(GetReq {
        key: "a".into(),
        serializable: true,
        ..GetReq::default()
    });
    let ops = vec![
        op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1)),
        op(2, 20, Some(30), put_req("a", "c0-2"), put_ok(r2)),
        op(
            3,
            40,
            Some(50),
            serializable.clone(),
            get_ok(r1, kv1.clone()),
        ),
    ];
    assert_clean(&run(ops.clone(), &s));
    // The same stale answer claiming the newer revision is wrong.
    let mut wrong = ops;
    wrong[2] = op(3, 40, Some(50), serializable, get_ok(r2, kv1));
    let report = run(wrong, &s);
    assert_flags(&report, "a wrong result", |a| {
        matches!(a, Anomaly::WrongResult { op: 3, .. })
    });
}

#[test]
fn a_non_linearizable_pair_is_found_by_the_search() {
    // A read sees the new value, a later read the old one again: no order of the
    // register's operations explains both.
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let kv1 = s.kv("a");
    let r2 = s.put("a", "c0-2");
    let kv2 = s.kv("a");
    let ops = vec![
        op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1)),
        op(2, 15, Some(100), put_req("a", "c0-2"), put_ok(r2)),
        // Reads the new value, then a later read sees the old one again.
        op(3, 20, Some(30), get_req("a"), get_ok(r2, kv2)),
        op(4, 40, Some(50), get_req("a"), get_ok(r2, kv1)),
    ];
    let report = run(ops, &s);
    assert_flags(
        &report,
        "no linearization",
        |a| matches!(a, Anomaly::NotLinearizable { key, .. } if key == "a"),
    );
}

#[test]
fn the_search_accepts_overlapping_operations_in_either_order() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let r2 = s.put("a", "c1-1");
    let kv2 = s.kv("a");
    let ops = vec![
        // Overlapping puts; the read after both sees the one the server applied last.
        op(1, 0, Some(50), put_req("a", "c0-1"), put_ok(r1)),
        op(2, 10, Some(40), put_req("a", "c1-1"), put_ok(r2)),
        op(3, 60, Some(70), get_req("a"), get_ok(r2, kv2)),
    ];
    assert_clean(&run(ops, &s));
}

#[test]
fn a_cas_whose_branch_contradicts_the_state_is_flagged() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    let r2 = s.put("b", "c0-2");
    let cas = Request::Txn(TxnReq {
        compares: vec![Compare {
            key: "a".into(),
            target: CompareTarget::Value("other".into()),
            op: CompareOp::Equal,
        }],
        success: vec![TxnOp::Put(PutReq {
            key: "b".into(),
            value: "c0-2".into(),
            ..PutReq::default()
        })],
        failure: vec![],
    });
    let ops = vec![
        op(1, 0, Some(10), put_req("a", "c0-1"), put_ok(r1)),
        op(
            2,
            20,
            Some(30),
            cas,
            Response::Txn(TxnResp {
                revision: r2,
                succeeded: true,
                results: vec![TxnResult::Put(PutResp::default())],
            }),
        ),
    ];
    let report = run(ops, &s);
    assert_flags(&report, "a wrong branch", |a| {
        matches!(a, Anomaly::WrongResult { op: 2, .. })
    });
}

fn watch_events(s: &Server, from: i64) -> Vec<WatchItem> {
    s.records
        .iter()
        .filter(|r| r.revision >= from)
        .map(|r| WatchItem::Events {
            at: r.seen_at + 1,
            events: r.events.clone(),
        })
        .collect()
}

fn watch_history(s: &Server, items: Vec<WatchItem>, start: i64) -> History {
    let mut ops = Vec::new();
    for (i, record) in s.records.iter().enumerate() {
        let event = &record.events[0];
        let (req, resp) = match event.kind {
            EventKind::Put => (
                put_req(&event.kv.key, &event.kv.value),
                put_ok(record.revision),
            ),
            EventKind::Delete => (
                Request::Delete(DeleteReq {
                    key: event.kv.key.clone(),
                    ..DeleteReq::default()
                }),
                Response::Delete(DeleteResp {
                    revision: record.revision,
                    deleted: 1,
                    prev_kvs: vec![],
                }),
            ),
        };
        let at = i as u64 * 100;
        ops.push(op(i as u64, at, Some(at + 10), req, resp));
    }
    History {
        ops,
        watches: vec![WatchTrace {
            id: 7,
            key: "a".into(),
            end: Some("b".into()),
            start_revision: start,
            items,
            ..WatchTrace::default()
        }],
        ..History::default()
    }
}

fn busy_server() -> Server {
    let mut s = Server::new();
    for i in 0..10 {
        s.put(&format!("a{}", i % 3), &format!("c0-{i}"));
    }
    s.delete("a1");
    s
}

#[test]
fn a_complete_watch_passes() {
    let s = busy_server();
    let history = watch_history(&s, watch_events(&s, 4), 4);
    assert_clean(&check(&history, s.records.clone()));
}

#[test]
fn a_watch_gap_is_flagged() {
    let s = busy_server();
    let mut items = watch_events(&s, 2);
    items.remove(4);
    let history = watch_history(&s, items, 2);
    let report = check(&history, s.records.clone());
    assert_flags(
        &report,
        "a watch gap",
        |a| matches!(a, Anomaly::Watch { watch: 7, detail } if detail.contains("reliable")),
    );
}

#[test]
fn a_repeated_watch_event_is_flagged() {
    let s = busy_server();
    let mut items = watch_events(&s, 2);
    let again = items[3].clone();
    items.insert(4, again);
    let history = watch_history(&s, items, 2);
    let report = check(&history, s.records.clone());
    assert_flags(
        &report,
        "a repeated event",
        |a| matches!(a, Anomaly::Watch { detail, .. } if detail.contains("twice")),
    );
}

#[test]
fn a_watch_event_before_its_start_or_after_progress_is_flagged() {
    let s = busy_server();
    let history = watch_history(&s, watch_events(&s, 3), 5);
    let report = check(&history, s.records.clone());
    assert_flags(
        &report,
        "an event before the start",
        |a| matches!(a, Anomaly::Watch { detail, .. } if detail.contains("before its start")),
    );
    let mut items = watch_events(&s, 2);
    items.insert(3, WatchItem::Progress { at: 1, revision: 6 });
    let history = watch_history(&s, items, 2);
    let report = check(&history, s.records.clone());
    assert_flags(
        &report,
        "an event under progress",
        |a| matches!(a, Anomaly::Watch { detail, .. } if detail.contains("bookmarkable")),
    );
}

#[test]
fn an_unwarranted_compaction_error_is_flagged() {
    let s = busy_server();
    let mut items = watch_events(&s, 2);
    items.truncate(3);
    items.push(WatchItem::Compacted {
        at: 1,
        compact_revision: 3,
    });
    let mut history = watch_history(&s, items, 2);
    history.compactions = vec![3];
    let report = check(&history, s.records.clone());
    assert_flags(
        &report,
        "an unwarranted compaction",
        |a| matches!(a, Anomaly::Watch { detail, .. } if detail.contains("compacted")),
    );
}

/// A server that let lease 0x10 go at 10 s (its key deleted by nobody's write), and a
/// history whose lease trace holds `samples`.
fn expired_lease(samples: Vec<LeaseSample>) -> (History, Vec<RevisionRecord>) {
    const SECOND: u64 = 1_000_000_000;
    let mut s = Server::new();
    let r1 = s.put_leased("l", "c0-1", 0x10);
    s.delete("l");
    s.records.last_mut().unwrap().seen_at = 10 * SECOND;
    let mut put = put_req("l", "c0-1");
    if let Request::Put(p) = &mut put {
        p.lease = 0x10;
    }
    let history = History {
        ops: vec![op(1, 0, Some(10), put, put_ok(r1))],
        leases: vec![LeaseTrace {
            id: 0x10,
            ttl: 5,
            keys: vec!["l".into()],
            samples,
        }],
        ..History::default()
    };
    (history, s.records)
}

fn sample(at_ms: u64, renewed_ms: u64, alive: bool) -> LeaseSample {
    LeaseSample {
        at: at_ms * 1_000_000,
        last_renewed: Some(renewed_ms * 1_000_000),
        alive,
    }
}

#[test]
fn a_lease_reported_alive_after_its_expiry_is_flagged() {
    // The client's last acknowledgement (3 s) was older than the TTL when the server let
    // the lease go (10 s), yet it still says alive after.
    let (history, records) = expired_lease(vec![
        sample(9_990, 3_000, true),
        sample(10_005, 3_000, true),
    ]);
    let report = check(&history, records);
    assert_flags(
        &report,
        "alive after expiry",
        |a| matches!(a, Anomaly::Lease { detail, .. } if detail.contains("let it go")),
    );
    // Reporting the loss in time is clean; the deletion is the expiry.
    let (history, records) = expired_lease(vec![
        sample(7_990, 3_000, true),
        sample(8_100, 3_000, false),
    ]);
    let report = check(&history, records);
    assert_clean(&report);
    assert_eq!(report.expiries, 1);
}

#[test]
fn a_lease_let_go_despite_a_fresh_acknowledgement_is_a_server_bug() {
    // Renewed at 9.5 s with a 5 s TTL, yet let go at 10 s: etcd's bug, not the client's.
    let (history, records) = expired_lease(vec![
        sample(9_600, 9_500, true),
        sample(10_100, 9_500, true),
    ]);
    let report = check(&history, records);
    assert_clean(&report);
    assert_eq!(report.server_bugs.len(), 1, "{report}");
}

#[test]
fn a_lease_reported_alive_long_after_its_last_renewal_is_flagged() {
    let s = Server::new();
    let history = History {
        leases: vec![LeaseTrace {
            id: 1,
            ttl: 2,
            keys: vec![],
            samples: vec![LeaseSample {
                at: 4_000_000_000,
                last_renewed: Some(500_000_000),
                alive: true,
            }],
        }],
        ..History::default()
    };
    let report = check(&history, s.records.clone());
    assert_flags(
        &report,
        "alive past its TTL",
        |a| matches!(a, Anomaly::Lease { detail, .. } if detail.contains("TTL")),
    );
}

#[test]
fn histories_survive_a_json_round_trip() {
    let s = busy_server();
    let history = watch_history(&s, watch_events(&s, 2), 2);
    let json = serde_json::to_string(&history).unwrap();
    let back: History = serde_json::from_str(&json).unwrap();
    assert_eq!(back, history);
}

#[test]
fn the_search_handles_thousands_of_overlapping_operations() {
    let mut s = Server::new();
    let mut ops = Vec::new();
    for i in 0..3000u64 {
        // Each operation overlaps its neighbours; the server applies them in call order.
        let (call, ret) = (i * 10, i * 10 + 25);
        if i % 2 == 0 {
            let value = format!("c{}-{i}", i % 4);
            let rev = s.put("k", &value);
            ops.push(op(i, call, Some(ret), put_req("k", &value), put_ok(rev)));
        } else {
            ops.push(op(
                i,
                call,
                Some(ret),
                get_req("k"),
                get_ok(s.revision, s.kv("k")),
            ));
        }
    }
    let report = run(ops, &s);
    assert_clean(&report);
    assert!(report.inconclusive.is_empty(), "{report}");
}

#[test]
fn writes_of_multi_key_transactions_count_for_each_key() {
    let mut s = Server::new();
    // One transaction puts "a" and "b" at one revision.
    s.revision += 1;
    let rev = s.revision;
    let mut events = Vec::new();
    for (key, value) in [("a", "c0-1.0"), ("b", "c0-1.1")] {
        let kv = Kv {
            key: key.into(),
            value: value.into(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: 0,
        };
        s.kvs.insert(key.into(), kv.clone());
        events.push(Event {
            kind: EventKind::Put,
            kv,
            prev: None,
        });
    }
    s.record(events);
    let put = |key: &str, value: &str| {
        TxnOp::Put(PutReq {
            key: key.into(),
            value: value.into(),
            ..PutReq::default()
        })
    };
    let txn = Request::Txn(TxnReq {
        success: vec![put("a", "c0-1.0"), put("b", "c0-1.1")],
        ..TxnReq::default()
    });
    let answer = Response::Txn(TxnResp {
        revision: rev,
        succeeded: true,
        results: vec![
            TxnResult::Put(PutResp::default()),
            TxnResult::Put(PutResp::default()),
        ],
    });
    let ops = vec![
        op(1, 0, Some(10), txn, answer),
        op(2, 20, Some(30), get_req("b"), get_ok(rev, s.kv("b"))),
    ];
    assert_clean(&run(ops.clone(), &s));
    // The same read seeing nothing is flagged by both checks.
    let mut wrong = ops;
    wrong[1] = op(2, 20, Some(30), get_req("b"), get_ok(rev, None));
    let report = run(wrong, &s);
    assert_flags(
        &report,
        "no linearization",
        |a| matches!(a, Anomaly::NotLinearizable { key, .. } if key == "b"),
    );
}

#[test]
fn an_unknown_delete_explains_only_revisions_applied_after_its_call() {
    let mut s = Server::new();
    let r1 = s.put("a", "c0-1");
    // Applied (seen by the reference at 3 µs) by the first unknown delete, called at 0.
    s.delete("a");
    let r3 = s.put("a", "c0-2");
    let kv3 = s.kv("a");
    let delete = || {
        Request::Delete(DeleteReq {
            key: "a".into(),
            ..DeleteReq::default()
        })
    };
    let ops = vec![
        op(1, 0, Some(1), put_req("a", "c0-1"), put_ok(r1)),
        // Called after the delete was applied: it did not apply (the key is back).
        op(2, 10_000, None, delete(), unknown()),
        op(3, 0, None, delete(), unknown()),
        op(4, 5_000, Some(6_000), put_req("a", "c0-2"), put_ok(r3)),
        op(5, 20_000, Some(21_000), get_req("a"), get_ok(r3, kv3)),
    ];
    let report = run(ops, &s);
    assert_clean(&report);
    assert_eq!(report.unknown_applied, 1);
}

/// A fenced write: put `value` under "f" if the lock key `key` still has create revision
/// `token`; acknowledged at `revision`.
fn fenced(id: u64, at: u64, key: &str, token: i64, value: &str, revision: i64) -> Op {
    let txn = Request::Txn(TxnReq {
        compares: vec![Compare {
            key: key.into(),
            target: CompareTarget::Create(token),
            op: CompareOp::Equal,
        }],
        success: vec![TxnOp::Put(PutReq {
            key: "f".into(),
            value: value.into(),
            ..PutReq::default()
        })],
        failure: vec![],
    });
    let answer = Response::Txn(TxnResp {
        revision,
        succeeded: true,
        results: vec![TxnResult::Put(PutResp::default())],
    });
    op(id, at, Some(at + 1), txn, answer)
}

fn run_locked(ops: Vec<Op>, server: &Server) -> Report {
    let history = History {
        ops,
        foreign: vec!["lk/".into()],
        locks: vec!["lk".into()],
        ..History::default()
    };
    check(&history, server.records.clone())
}

#[test]
fn fenced_writes_are_made_by_the_lock_holder() {
    // A holds the lock (the lowest key), B queues behind it.
    let mut s = Server::new();
    let a = s.put("lk/a", "");
    let b = s.put("lk/b", "");
    let r4 = s.put("f", "c1-1");
    s.delete("lk/a");
    let r6 = s.put("f", "c2-1");
    let ops = vec![
        fenced(1, 4_000, "lk/a", a, "c1-1", r4),
        fenced(2, 6_000, "lk/b", b, "c2-1", r6),
    ];
    let report = run_locked(ops, &s);
    assert_clean(&report);
    assert_eq!(report.fenced, 2);

    // B writes while A still holds the lock: its lock() returned too early.
    let mut s = Server::new();
    s.put("lk/a", "");
    let b = s.put("lk/b", "");
    let r4 = s.put("f", "c2-1");
    let ops = vec![fenced(2, 4_000, "lk/b", b, "c2-1", r4)];
    assert_flags(&run_locked(ops, &s), "a write by a waiter", |x| {
        matches!(x, Anomaly::Lock { op: 2, .. })
    });
}
