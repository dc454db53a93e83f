//! The audit chain against a real nats-server: concurrent writers make one unbroken chain, and
//! every kind of after-the-fact change (altered bytes on disk, removed messages, forged or foreign
//! events) is reported at the first broken link.

use async_nats::jetstream::{self, stream};
use lfr_common::audit::{
    self, append_event, verify, verify_against, verify_from, Anchor, Audit, AuditFilter, Break,
    ChainReport, ObjectMatch,
};
use lfr_schemas::streams::{self, TopologyLimits};
use lfr_schemas::{subjects, AuditAction, AuditEvent, AuditObject, Message, Timestamp};
use lfr_testkit::{NatsServer, Options};
use std::time::{Duration, Instant};

/// These tests alter the store's files to show what the chain detects, and declare AUDIT
/// themselves: a server without store encryption (an attacker holding the store key, or a store
/// kept without it), nothing declared.
const PLAIN_STORE: Options = Options {
    encrypt_store: false,
    declare: false,
};

async fn connect(nats: &NatsServer) -> jetstream::Context {
    let client = nats.client(lfr_testkit::Identity::Admin).await;
    jetstream::new(client)
}

/// AUDIT as the contract declares it (deny delete, deny purge).
async fn declare_audit(js: &jetstream::Context) {
    let spec = streams::topology(&TopologyLimits::default())
        .into_iter()
        .find(|s| s.name == streams::AUDIT)
        .unwrap();
    js.create_or_update_stream(lfr_common::topology::stream_config(&spec))
        .await
        .unwrap();
}

/// AUDIT with deletes allowed: the only way to simulate someone with the server's own rights
/// removing messages.
async fn declare_deletable_audit(js: &jetstream::Context) {
    let spec = streams::topology(&TopologyLimits::default())
        .into_iter()
        .find(|s| s.name == streams::AUDIT)
        .unwrap();
    js.create_or_update_stream(stream::Config {
        deny_delete: false,
        deny_purge: false,
        ..lfr_common::topology::stream_config(&spec)
    })
    .await
    .unwrap();
}

async fn record(js: &jetstream::Context, actor: &str, object: String, why: &str) -> u64 {
    let object = AuditObject::parse(&object).expect("an audit object");
    Audit {
        actor,
        role: "operator",
    }
    .event(AuditAction::Consultation, object)
    .deployment("match-day")
    .why(why)
    .record(js)
    .await
    .unwrap()
    .seq
}

fn intact(report: &ChainReport, n: u64) {
    match report {
        ChainReport::Intact { events, last_hash } => {
            assert_eq!(*events, n, "{report}");
            assert_eq!(last_hash.len(), 64);
        }
        other => panic!("expected an intact chain of {n}, got {other}"),
    }
}

#[tokio::test]
async fn an_empty_log_is_an_intact_chain_of_nothing() {
    let nats = NatsServer::start_with(PLAIN_STORE).await;
    let js = connect(&nats).await;
    declare_audit(&js).await;
    assert_eq!(
        verify(&js).await.unwrap(),
        ChainReport::Intact {
            events: 0,
            last_hash: AuditEvent::GENESIS_HASH.into()
        }
    );
    assert!(audit::query(&js, &AuditFilter::default())
        .await
        .unwrap()
        .events
        .is_empty());
    // The first event links onto the genesis hash and is sequence 1.
    let first = Audit {
        actor: "cli",
        role: "supervisor",
    }
    .event(
        AuditAction::ConfigurationChange,
        AuditObject::Deployment("x".into()),
    )
    .why("created")
    .record(&js)
    .await
    .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.event.prev_hash, AuditEvent::GENESIS_HASH);
    assert_eq!(first.event.hash, first.event.compute_hash());
    intact(&verify(&js).await.unwrap(), 1);
}

#[tokio::test]
async fn four_concurrent_writers_make_one_unbroken_chain() {
    let nats = NatsServer::start_with(PLAIN_STORE).await;
    declare_audit(&connect(&nats).await).await;
    let mut writers = Vec::new();
    for w in 0..4 {
        // Separate connections, as separate services would have.
        let js = connect(&nats).await;
        writers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..25 {
                let r = Audit {
                    actor: &format!("writer-{w}"),
                    role: "service",
                }
                .event(
                    AuditAction::Consultation,
                    AuditObject::Alert(format!("{w}-{i}")),
                )
                .deployment("match-day")
                .why("concurrent")
                .record(&js)
                .await
                .unwrap();
                out.push((r.seq, r.attempts));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    let mut seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    let retries: u32 = all.iter().map(|(_, a)| a - 1).sum();
    let worst = all.iter().map(|(_, a)| *a).max().unwrap();
    println!("100 concurrent appends: {retries} retries in all, at most {worst} attempts for one");
    let js = connect(&nats).await;
    intact(&verify(&js).await.unwrap(), 100);
    // Every writer's events are all there, in its own order.
    let mine = audit::query(
        &js,
        &AuditFilter {
            actor: Some("writer-2".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let objects: Vec<String> = mine.events.iter().map(|e| e.event.object.clone()).collect();
    assert_eq!(
        objects,
        (0..25).map(|i| format!("alert/2-{i}")).collect::<Vec<_>>()
    );
}

/// Rewrite `from` to `to` (same length) in the one message block that holds it.
fn tamper_on_disk(nats: &NatsServer, from: &[u8], to: &[u8]) -> std::path::PathBuf {
    assert_eq!(from.len(), to.len());
    let files = lfr_testkit::files_containing(nats.store_dir(), from);
    assert_eq!(files.len(), 1, "one block holds the event: {files:?}");
    let path = files[0].clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + from.len()].copy_from_slice(to);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Ten events, one (`target`) with a distinctive justification; the chain verified and anchored; the
/// server stopped (cleanly, or killed as in a crash) and that justification rewritten in place in
/// its message block (same length: who the event says it was disclosed to); the server restarted.
async fn tamper_with_event(target: u64, crash: bool) -> (NatsServer, jetstream::Context, Anchor) {
    let mut nats = NatsServer::start_with(PLAIN_STORE).await;
    let js = connect(&nats).await;
    declare_audit(&js).await;
    for i in 1..=10 {
        let why = if i == target {
            "disclosed to officer QX7-ZEBRA-WITNESS"
        } else {
            "routine consultation"
        };
        assert_eq!(record(&js, "op-1", format!("alert/{i}"), why).await, i);
    }
    let report = verify(&js).await.unwrap();
    intact(&report, 10);
    let anchor = report.anchor().unwrap();
    assert_eq!(anchor.seq, 10);
    if crash {
        nats.kill().await;
    } else {
        nats.server.stop().await;
    }
    let block = tamper_on_disk(&nats, b"QX7-ZEBRA-WITNESS", b"QX7-ZEBRA-NOBODY!");
    assert!(
        block.to_string_lossy().contains("AUDIT"),
        "{}",
        block.display()
    );
    nats.restart().await;
    let js = connect(&nats).await;
    (nats, js, anchor)
}

async fn audit_state(js: &jetstream::Context) -> (u64, u64) {
    let state = js
        .get_stream(streams::AUDIT)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state;
    (state.messages, state.last_sequence)
}

#[tokio::test]
async fn an_event_altered_on_disk_breaks_the_chain_at_that_event() {
    let (_nats, js, anchor) = tamper_with_event(6, false).await;
    // Observed with nats-server 2.15 after a clean stop: the server still counts ten messages,
    // but its per-message checksum no longer matches the altered record, so it never delivers
    // sequence 6 (7 to 10 are delivered). The altered event is reported as missing, at its own
    // sequence; were it delivered, it would fail its hash instead (see the forged-event test).
    assert_eq!(audit_state(&js).await, (10, 10));
    let expected = ChainReport::Broken {
        seq: 6,
        reason: Break::Missing { from: 6, to: 6 },
        verified: 5,
    };
    assert_eq!(verify(&js).await.unwrap(), expected);
    assert_eq!(verify_against(&js, Some(&anchor)).await.unwrap(), expected);
    // Writers carry on past the break, which stays reported where it is.
    assert_eq!(record(&js, "op-1", "alert/11".into(), "after").await, 11);
    assert_eq!(verify(&js).await.unwrap(), expected);
}

#[tokio::test]
async fn an_event_altered_on_disk_before_a_crash_is_found_through_an_anchor() {
    let (_nats, js, anchor) = tamper_with_event(6, true).await;
    // Observed with nats-server 2.15 after a kill: the server rebuilds the block from its records
    // at start-up, stops at the first bad checksum and cuts the stream there: events 6 to 10 are
    // gone and the stream now ends at sequence 5. The remaining chain is consistent, so the
    // stream alone cannot show the loss; the anchor written down before (10:<hash>) does, and
    // names the first lost sequence.
    assert_eq!(audit_state(&js).await, (5, 5));
    intact(&verify(&js).await.unwrap(), 5);
    assert_eq!(
        verify_against(&js, Some(&anchor)).await.unwrap(),
        ChainReport::Broken {
            seq: 6,
            reason: Break::Truncated { anchored: 10 },
            verified: 5,
        }
    );
    // New events reuse sequences 6.. on a different chain: the anchor catches that too.
    for i in 6..=10 {
        assert_eq!(record(&js, "op-1", format!("alert/{i}"), "after").await, i);
    }
    intact(&verify(&js).await.unwrap(), 10);
    let report = verify_against(&js, Some(&anchor)).await.unwrap();
    assert!(
        matches!(
            report,
            ChainReport::Broken {
                seq: 10,
                reason: Break::AnchorMismatch { .. },
                verified: 9
            }
        ),
        "{report}"
    );
}

#[tokio::test]
async fn writers_carry_on_when_the_last_event_was_altered_on_disk() {
    let (_nats, js, anchor) = tamper_with_event(10, false).await;
    assert_eq!(audit_state(&js).await, (10, 10));
    let expected = ChainReport::Broken {
        seq: 10,
        reason: Break::Missing { from: 10, to: 10 },
        verified: 9,
    };
    assert_eq!(verify_against(&js, Some(&anchor)).await.unwrap(), expected);
    // The server's last sequence is 10 but 9 is the last message it serves: the writer's first
    // try is refused, and it links past the unreadable event.
    let r = Audit {
        actor: "op-1",
        role: "operator",
    }
    .event(AuditAction::Login, AuditObject::Account("op-1".into()))
    .why("after")
    .record(&js)
    .await
    .unwrap();
    assert_eq!((r.seq, r.attempts), (11, 2));
    assert_eq!(verify(&js).await.unwrap(), expected);
}

#[test]
fn anchors_read_back_as_printed() {
    let a = Anchor {
        seq: 42,
        hash: "ab".repeat(32),
    };
    assert_eq!(a.to_string().parse::<Anchor>().unwrap(), a);
    for bad in [
        "42".to_string(),
        format!("0:{}", "a".repeat(64)),
        "x:y".into(),
        format!("1:{}", "g".repeat(64)),
        format!("1:{}", "a".repeat(63)),
    ] {
        assert!(bad.parse::<Anchor>().is_err(), "{bad}");
    }
}

#[tokio::test]
async fn removed_messages_are_reported_as_gaps_and_writers_link_past_them() {
    // No lfr identity may remove an audit message (the server refuses it: see lfr-identity's
    // permission tests), so the removal is simulated on an open server, as someone with the
    // server's own rights would make it.
    let nats = NatsServer::start_open().await;
    let js = connect(&nats).await;
    declare_deletable_audit(&js).await;
    for i in 1..=5 {
        record(&js, "op-1", format!("alert/{i}"), "routine").await;
    }
    intact(&verify(&js).await.unwrap(), 5);
    let stream = js.get_stream(streams::AUDIT).await.unwrap();

    // The last message removed: the end of the chain is missing ...
    assert!(stream.delete_message(5).await.unwrap());
    assert_eq!(
        verify(&js).await.unwrap(),
        ChainReport::Broken {
            seq: 5,
            reason: Break::Missing { from: 5, to: 5 },
            verified: 4
        }
    );
    // ... and a writer still appends (after the stream's last sequence, linked to event 4).
    let seq = record(&js, "op-1", "alert/6".into(), "after removal").await;
    assert_eq!(seq, 6);
    let report = verify(&js).await.unwrap();
    assert_eq!(
        report,
        ChainReport::Broken {
            seq: 5,
            reason: Break::Missing { from: 5, to: 5 },
            verified: 4
        }
    );

    // A message removed from the middle: the earliest gap is the one reported.
    assert!(stream.delete_message(2).await.unwrap());
    assert_eq!(
        verify(&js).await.unwrap(),
        ChainReport::Broken {
            seq: 2,
            reason: Break::Missing { from: 2, to: 2 },
            verified: 1
        }
    );
    // Removing the first messages is a gap too.
    assert!(stream.delete_message(1).await.unwrap());
    assert_eq!(
        verify(&js).await.unwrap(),
        ChainReport::Broken {
            seq: 1,
            reason: Break::Missing { from: 1, to: 2 },
            verified: 0
        }
    );
}

#[tokio::test]
async fn forged_and_foreign_messages_break_the_chain_where_they_were_inserted() {
    let nats = NatsServer::start_with(PLAIN_STORE).await;
    let js = connect(&nats).await;
    declare_audit(&js).await;
    for i in 1..=3 {
        record(&js, "op-1", format!("alert/{i}"), "routine").await;
    }
    // A well-formed event published around the chain, with a self-consistent hash but linked to
    // nothing: refused at its own sequence.
    let mut forged = AuditEvent {
        event_id: "forged".into(),
        at: Timestamp::now(),
        action: AuditAction::Erasure,
        actor: "intruder".into(),
        role: "supervisor".into(),
        deployment: Some("match-day".into()),
        object: "watchlist/match-day".into(),
        justification: "nothing to see".into(),
        recipients: vec![],
        digest: None,
        prev_hash: String::new(),
        hash: String::new(),
    };
    forged.seal(AuditEvent::GENESIS_HASH);
    js.publish(subjects::audit(Some("match-day")), forged.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let report = verify(&js).await.unwrap();
    assert!(
        matches!(
            report,
            ChainReport::Broken {
                seq: 4,
                reason: Break::PrevHashMismatch { .. },
                verified: 3
            }
        ),
        "{report}"
    );
    // Garbage later on does not hide the earlier break; a writer still links past it.
    js.publish(subjects::audit(None), "not an event".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let seq = record(&js, "op-1", "alert/6".into(), "after garbage").await;
    assert_eq!(seq, 6);
    assert_eq!(verify(&js).await.unwrap().verified_events(), 3);
    // Once a break is investigated, what follows it can be checked on its own.
    assert!(matches!(
        verify_from(&js, 5, None).await.unwrap(),
        ChainReport::Broken {
            seq: 5,
            reason: Break::Undecodable(_),
            verified: 0
        }
    ));
    let rest = verify_from(&js, 6, None).await.unwrap();
    intact(&rest, 6);
    assert_eq!(rest.anchor().unwrap().seq, 6);
    assert!(verify_from(&js, 7, None).await.is_err(), "past the end");
    let q = audit::query(&js, &AuditFilter::default()).await.unwrap();
    assert_eq!(q.undecodable, vec![5]);
    assert_eq!(q.events.len(), 5);

    // An event on another deployment's subject is refused too.
    let other = NatsServer::start_with(PLAIN_STORE).await;
    let js2 = connect(&other).await;
    declare_audit(&js2).await;
    let mut moved = forged.clone();
    moved.seal(AuditEvent::GENESIS_HASH);
    js2.publish(subjects::audit(Some("elsewhere")), moved.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(matches!(
        verify(&js2).await.unwrap(),
        ChainReport::Broken {
            seq: 1,
            reason: Break::WrongSubject { .. },
            ..
        }
    ));
}

#[tokio::test]
async fn queries_filter_by_deployment_actor_object_action_and_time() {
    let nats = NatsServer::start_with(PLAIN_STORE).await;
    let js = connect(&nats).await;
    declare_audit(&js).await;
    let at = |s: u64| Timestamp(1_795_867_200_000_000_000 + s * 1_000_000_000);
    let event = |t: u64, action, actor: &str, deployment: Option<&str>, object: &str| AuditEvent {
        event_id: format!("e{t}"),
        at: at(t),
        action,
        actor: actor.into(),
        role: "operator".into(),
        deployment: deployment.map(Into::into),
        object: object.into(),
        justification: "test".into(),
        recipients: vec![],
        digest: None,
        prev_hash: String::new(),
        hash: String::new(),
    };
    use AuditAction::*;
    for e in [
        event(0, Login, "op-1", None, "account/op-1"),
        event(10, Consultation, "op-1", Some("day-a"), "alert/1"),
        event(20, Disclosure, "op-1", Some("day-a"), "alert/1"),
        event(30, Consultation, "op-2", Some("day-b"), "alert/2"),
        event(40, Erasure, "purge", Some("day-a"), "alerts/day-a"),
    ] {
        append_event(&js, e).await.unwrap();
    }
    let ids = |f: AuditFilter| {
        let js = js.clone();
        async move {
            audit::query(&js, &f)
                .await
                .unwrap()
                .events
                .into_iter()
                .map(|e| e.event.event_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(AuditFilter::default()).await.len(), 5);
    assert_eq!(
        ids(AuditFilter {
            deployment: Some("day-a".into()),
            ..Default::default()
        })
        .await,
        ["e10", "e20", "e40"]
    );
    assert_eq!(
        ids(AuditFilter {
            deployment: Some("system".into()),
            ..Default::default()
        })
        .await,
        ["e0"]
    );
    assert_eq!(
        ids(AuditFilter {
            deployment: Some("nowhere".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(AuditFilter {
            actor: Some("op-1".into()),
            action: Some(Consultation),
            ..Default::default()
        })
        .await,
        ["e10"]
    );
    assert_eq!(
        ids(AuditFilter {
            object: Some(ObjectMatch::parse("alert/*")),
            ..Default::default()
        })
        .await,
        ["e10", "e20", "e30"]
    );
    assert_eq!(
        ids(AuditFilter {
            object: Some(ObjectMatch::parse("alert/1")),
            ..Default::default()
        })
        .await,
        ["e10", "e20"]
    );
    assert_eq!(
        ids(AuditFilter {
            since: Some(at(10)),
            until: Some(at(30)),
            ..Default::default()
        })
        .await,
        ["e10", "e20"]
    );
    intact(&verify(&js).await.unwrap(), 5);
}

/// The cost of one append on loopback, uncontended (printed; run with `--nocapture`).
#[tokio::test]
async fn one_append_costs_one_get_and_one_publish() {
    let nats = NatsServer::start_with(PLAIN_STORE).await;
    let js = connect(&nats).await;
    declare_audit(&js).await;
    let mut times = Vec::new();
    for i in 0..200 {
        let start = Instant::now();
        let r = Audit {
            actor: "bench",
            role: "service",
        }
        .event(AuditAction::Consultation, AuditObject::Alert(i.to_string()))
        .deployment("match-day")
        .why("timing")
        .record(&js)
        .await
        .unwrap();
        times.push(start.elapsed());
        assert_eq!(r.attempts, 1, "nobody else writes");
    }
    times.sort();
    let median = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    println!("append: median {median:?}, p95 {p95:?} over 200 on loopback");
    assert!(median < Duration::from_millis(100), "median {median:?}");
    let start = Instant::now();
    intact(&verify(&js).await.unwrap(), 200);
    println!("verify of 200 events: {:?}", start.elapsed());
}
