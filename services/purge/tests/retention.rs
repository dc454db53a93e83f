//! Retention with time travel: the purge service runs against a real nats-server with a manual
//! clock. An alert is kept on day 29 and erased on day 31, its bytes gone from the store's files;
//! an alert under legal hold survives until a supervisor releases it; the audit record shows each
//! erasure and its verification; an ended deployment's watch list is wiped by the backstop; once
//! none of its alerts remains, its data key is destroyed and a kept copy of an alert can no longer
//! be decrypted (crypto-shredding); the audit chain verifies intact throughout. A complaint hold
//! placed on day 25 keeps an alert past day 30 until it is released; an arrest corrected to "no
//! further action" no longer holds its alert; a hold standing 91 days unreviewed is listed for
//! review and counted.

use async_nats::jetstream;
use lfr_common::Shutdown;
use lfr_purge::clock::Clock;
use lfr_purge::{PassSummary, RUN_SUBJECT};
use lfr_schemas::{
    streams, subjects, AlertDecision, AlertOutcome, AuditAction, AuditEvent, CandidateAlert,
    Decision, HoldLifted, HoldPlaced, HoldReason, HoldReleased, Message, Outcome, Timestamp,
    WatchlistCategory,
};
use lfr_testkit::{eventually, files_containing, metric, records, scrape, NatsServer};
use lfr_vault::{AlertImage, MasterKey, Vault};
use lfr_watchlist::deployment::{Deployment, NewDeployment, State};
use lfr_watchlist::list::{Entry, WatchList};
use lfr_watchlist::store::Store;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

async fn alert(vault: &Vault, id: &str, raised_at: Timestamp) -> CandidateAlert {
    let seal = |image: AlertImage| async move {
        let text = format!("{} of {id} ", image.as_str()).repeat(40);
        vault
            .seal("match-day", &image.aad("match-day", id), text.as_bytes())
            .await
            .unwrap()
    };
    CandidateAlert {
        probe_jpeg: seal(AlertImage::Probe).await,
        context_jpeg: seal(AlertImage::Context).await,
        reference_jpeg: seal(AlertImage::Reference).await,
        ..lfr_testkit::candidate_alert(id, "match-day", raised_at)
    }
}

async fn publish<M: Message>(js: &jetstream::Context, subject: String, m: &M) -> u64 {
    js.publish(subject, m.encode().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

async fn confirm(js: &jetstream::Context, id: &str, outcome: Option<Outcome>) {
    let decision = AlertDecision {
        alert_id: id.into(),
        deployment: "match-day".into(),
        decision: Decision::Confirmed,
        actor: "op-1".into(),
        reason: None,
        decided_at: Timestamp::now(),
    };
    publish(js, subjects::alert_decisions("match-day"), &decision).await;
    if let Some(outcome) = outcome {
        let o = AlertOutcome {
            alert_id: id.into(),
            deployment: "match-day".into(),
            outcome,
            actor: "pc-1".into(),
            note: None,
            recorded_at: Timestamp::now(),
        };
        publish(js, subjects::alert_outcomes("match-day"), &o).await;
    }
}

async fn run_pass(client: &async_nats::Client) -> PassSummary {
    let reply = client
        .request(RUN_SUBJECT, "".into())
        .await
        .expect("the purge service answers");
    serde_json::from_slice(&reply.payload).unwrap()
}

async fn audit(js: &jetstream::Context) -> Vec<AuditEvent> {
    let events = records(js, streams::AUDIT, subjects::AUDIT_ALL).await;
    events.into_iter().map(|(_, e)| e).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_erased_after_thirty_days_unless_held_and_the_erasure_is_proven() {
    // The store unencrypted, so that the alert's bytes can be found in its files before the
    // erasure: what is shown is secure erasure, apart from the store's encryption.
    let nats = NatsServer::start_with(lfr_testkit::Options {
        encrypt_store: false,
        ..Default::default()
    })
    .await;
    let client = nats.client(lfr_testkit::Identity::Admin).await;
    let js = jetstream::new(client.clone());
    // Alerts are raised as match raises them, decisions made as dispatch makes them.
    let matcher = nats.jetstream(lfr_testkit::Identity::Match).await;
    let dispatch = nats.jetstream(lfr_testkit::Identity::Dispatch).await;
    let start = Timestamp::now();
    let clock = Clock::manual(start);
    let mut config = lfr_purge::Config::default();
    config.common.nats = nats.nats_config(lfr_testkit::Identity::Purge);
    config.purge.http_addr = "127.0.0.1:0".parse().unwrap();
    let shutdown = Shutdown::new();
    let purge = lfr_purge::start_with_clock(config, clock.clone(), shutdown.clone())
        .await
        .unwrap();
    let metrics_at = purge.running.metrics_addr;

    // A deployment with a watch list, ending in an hour.
    let store = Store::open(&js).await.unwrap();
    let deployment = Deployment::create(NewDeployment {
        id: "match-day".into(),
        name: "Match day".into(),
        location: "North gate".into(),
        cameras: vec!["gate-1".into()],
        starts_at: start,
        ends_at: Timestamp(start.0 + 3_600_000_000_000),
        purpose: "Locate wanted offenders".into(),
        default_threshold: 0.6,
        thresholds: Default::default(),
        setup_window_secs: 0,
        governance: Some(lfr_testkit::deployments::governance()),
        threshold_override: None,
    })
    .unwrap();
    store.create(&deployment).await.unwrap();
    let list = WatchList::new(
        "match-day",
        "mobilefacenet",
        vec![Entry {
            reference: "CUST-0001".into(),
            category: WatchlistCategory::Wanted,
            note: String::new(),
            image_sha256: "ab".repeat(32),
            template: vec![0.6, 0.8],
        }],
    );
    let image = b"reference image bytes of CUST-0001".repeat(20);
    store
        .put_watchlist(&list, &[("ab".repeat(32), image.clone())])
        .await
        .unwrap();

    // a1: confirmed, not located. a2: an arrest. a3: never reviewed.
    let vault = Vault::open(&js, MasterKey::generate()).await.unwrap();
    let candidates = subjects::alert_candidates("match-day");
    let a1 = alert(&vault, "a1", start).await;
    let a1_seq = publish(&matcher, candidates.clone(), &a1).await;
    confirm(&dispatch, "a1", Some(Outcome::NotLocated)).await;
    let a2 = alert(&vault, "a2", start).await;
    publish(&matcher, candidates.clone(), &a2).await;
    confirm(&dispatch, "a2", Some(Outcome::EngagedArrested)).await;
    let a3 = alert(&vault, "a3", start).await;
    publish(&matcher, candidates, &a3).await;
    let alerts = js.get_stream(streams::ALERTS).await.unwrap();
    let stored = alerts.get_raw_message(a1_seq).await.unwrap().payload;
    let a1_bytes = &stored[stored.len() - 200..];
    assert!(
        !files_containing(nats.store_dir(), a1_bytes).is_empty(),
        "the alert is in the store's files before its erasure"
    );
    let held = |s: &PassSummary| (s.held, s.legal_holds, s.alerts_erased);
    eventually(Duration::from_secs(10), || async {
        (held(&run_pass(&client).await) == (2, 1, 0)).then_some(())
    })
    .await
    .expect("three alerts held, one of them under legal hold");

    // Day 29: everything is kept.
    clock.advance(29 * DAY);
    let day29 = run_pass(&client).await;
    assert_eq!(held(&day29), (2, 1, 0));
    assert_eq!(
        day29.watchlists_wiped, 1,
        "the deployment's time is over: its list is wiped"
    );

    // Day 31: the two alerts not on hold are erased, and verifiably gone.
    clock.advance(2 * DAY);
    let day31 = run_pass(&client).await;
    assert_eq!(day31.alerts_erased, 2);
    assert_eq!(day31.erasures_unverified, 0);
    assert_eq!(day31.legal_holds, 1);
    assert_eq!(day31.overdue, 0);
    assert_eq!(
        day31.keys_destroyed, 0,
        "an alert of the deployment remains (on hold)"
    );
    assert!(
        day31.audit_chain_intact && day31.audit_chain_length == 6,
        "{day31:?}"
    );
    assert!(
        files_containing(nats.store_dir(), a1_bytes).is_empty(),
        "erased alert bytes remain in the store's files"
    );
    assert!(alerts.get_raw_message(a1_seq).await.is_err());
    let erasures: Vec<AuditEvent> = audit(&js)
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::Erasure && e.object == "alert/a1")
        .collect();
    assert_eq!(erasures.len(), 2, "the erasure and its verification");
    assert!(erasures[0]
        .justification
        .contains("retention period of 30 days ended"));
    assert!(erasures[0].digest.is_some());
    assert!(erasures[1].justification.starts_with("erasure verified"));

    // The arrest's data stays until a supervisor releases the hold.
    clock.advance(100 * DAY);
    assert_eq!(run_pass(&client).await.legal_holds, 1);
    let release = HoldReleased {
        alert_id: "a2".into(),
        deployment: "match-day".into(),
        actor: "sup-1".into(),
        case_reference: "CASE-2026-0042".into(),
        released_at: clock.now(),
    };
    publish(&js, subjects::hold_releases("match-day"), &release).await;
    let after = eventually(Duration::from_secs(10), || async {
        let s = run_pass(&client).await;
        (s.alerts_erased == 1).then_some(s)
    })
    .await
    .expect("the released alert is erased");
    assert_eq!((after.held, after.legal_holds, after.overdue), (0, 0, 0));
    // Nothing of the ended deployment remains: its key is destroyed, and a copy of an alert kept
    // elsewhere (a replica, a backup) can no longer be decrypted.
    assert_eq!(after.keys_destroyed, 1);
    let kept = Vault::open(&js, MasterKey::generate()).await.unwrap();
    let aad = AlertImage::Probe.aad("match-day", "a2");
    let gone = vault.unseal(&a2.probe_jpeg, &aad).await.unwrap_err();
    assert!(gone.is_gone(), "{gone}");
    assert!(kept.unseal(&a2.probe_jpeg, &aad).await.is_err());
    assert!(after.audit_chain_intact);

    // The watch list went with the deployment, recorded.
    let ended = store.get("match-day").await.unwrap().unwrap();
    assert_eq!(ended.state, State::Ended);
    assert!(store.watchlist("match-day").await.unwrap().is_none());
    assert!(files_containing(nats.store_dir(), &image).is_empty());
    let events = audit(&js).await;
    assert!(events
        .iter()
        .any(|e| e.action == AuditAction::Erasure && e.object == "watchlist/match-day"));
    assert!(events
        .iter()
        .any(|e| e.action == AuditAction::Erasure && e.object == "key/match-day"));

    let m = scrape(metrics_at).await;
    assert_eq!(metric(&m, "lfr_purge_alerts_erased_total", &[]), Some(3.0));
    assert_eq!(metric(&m, "lfr_purge_overdue", &[]), Some(0.0));
    assert_eq!(
        metric(&m, "lfr_purge_erasures_unverified_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric(&m, "lfr_purge_watchlists_wiped_total", &[]),
        Some(1.0)
    );

    shutdown.trigger();
    purge.running.done.await.unwrap();
}

/// An outcome recorded as dispatch records it.
async fn record_outcome(js: &jetstream::Context, deployment: &str, id: &str, outcome: Outcome) {
    let o = AlertOutcome {
        alert_id: id.into(),
        deployment: deployment.into(),
        outcome,
        actor: "pc-1".into(),
        note: None,
        recorded_at: Timestamp::now(),
    };
    publish(js, subjects::alert_outcomes(deployment), &o).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_keep_alerts_past_thirty_days_until_released_and_old_holds_are_due_for_review() {
    let nats = NatsServer::start().await;
    let client = nats.client(lfr_testkit::Identity::Admin).await;
    let admin = jetstream::new(client.clone());
    let matcher = nats.jetstream(lfr_testkit::Identity::Match).await;
    let dispatch = nats.jetstream(lfr_testkit::Identity::Dispatch).await;
    let start = Timestamp::now();
    let clock = Clock::manual(start);
    let mut config = lfr_purge::Config::default();
    config.common.nats = nats.nats_config(lfr_testkit::Identity::Purge);
    config.purge.http_addr = "127.0.0.1:0".parse().unwrap();
    let shutdown = Shutdown::new();
    let purge = lfr_purge::start_with_clock(config, clock.clone(), shutdown.clone())
        .await
        .unwrap();

    // c1 (complaint on day 25) and c2 (an arrest, corrected) of match-day; o1 of other-day, whose
    // whole deployment is held for an investigation from day 0.
    for (deployment, id) in [
        ("match-day", "c1"),
        ("match-day", "c2"),
        ("other-day", "o1"),
    ] {
        let a = lfr_testkit::candidate_alert(id, deployment, start);
        publish(&matcher, subjects::alert_candidates(deployment), &a).await;
        let decision = AlertDecision {
            alert_id: id.into(),
            deployment: deployment.into(),
            decision: Decision::Confirmed,
            actor: "op-1".into(),
            reason: None,
            decided_at: start,
        };
        publish(&dispatch, subjects::alert_decisions(deployment), &decision).await;
    }
    record_outcome(&dispatch, "match-day", "c1", Outcome::NotLocated).await;
    record_outcome(&dispatch, "match-day", "c2", Outcome::EngagedArrested).await;
    let investigation = HoldPlaced {
        deployment: "other-day".into(),
        alert_id: None,
        reason: HoldReason::Investigation,
        case_reference: "INV-2026-7".into(),
        actor: "sup-1".into(),
        placed_at: clock.now(),
    };
    publish(&admin, subjects::holds_placed("other-day"), &investigation).await;
    let counts = |s: &PassSummary| (s.held, s.legal_holds, s.alerts_erased);
    eventually(Duration::from_secs(10), || async {
        (counts(&run_pass(&client).await) == (1, 2, 0)).then_some(())
    })
    .await
    .expect("c1 kept for retention; c2 (arrest) and o1 (deployment hold) held");

    // Day 25: a complaint about c1; c2's arrest was a mistake, corrected.
    clock.advance(25 * DAY);
    let complaint = HoldPlaced {
        deployment: "match-day".into(),
        alert_id: Some("c1".into()),
        reason: HoldReason::Complaint,
        case_reference: "COMP-2026-0101".into(),
        actor: "sup-1".into(),
        placed_at: clock.now(),
    };
    publish(&admin, subjects::holds_placed("match-day"), &complaint).await;
    record_outcome(
        &dispatch,
        "match-day",
        "c2",
        Outcome::EngagedNoFurtherAction,
    )
    .await;
    eventually(Duration::from_secs(10), || async {
        (counts(&run_pass(&client).await) == (1, 2, 0)).then_some(())
    })
    .await
    .expect("c1 now held by the complaint, c2 kept for its retention only");

    // Day 31: c2 is erased (no hold since the correction); c1 and o1 are kept.
    clock.advance(6 * DAY);
    let day31 = run_pass(&client).await;
    assert_eq!(counts(&day31), (0, 2, 1), "{day31:?}");
    assert_eq!(day31.overdue, 0);
    assert_eq!(day31.holds_due_review, 0);
    let book = &purge.purger.book;
    let erased = eventually(Duration::from_secs(10), || async {
        book.get("c2").is_none().then_some(())
    })
    .await;
    assert!(erased.is_some(), "the corrected arrest's alert is erased");
    assert!(book.get("c1").unwrap().is_held());

    // The complaint is settled: its release names the case; the next pass erases c1.
    let lifted = HoldLifted {
        deployment: "match-day".into(),
        alert_id: Some("c1".into()),
        case_reference: "COMP-2026-0101".into(),
        actor: "sup-2".into(),
        lifted_at: clock.now(),
    };
    publish(&admin, subjects::holds_lifted("match-day"), &lifted).await;
    let after = eventually(Duration::from_secs(10), || async {
        let s = run_pass(&client).await;
        (s.alerts_erased == 1).then_some(s)
    })
    .await
    .expect("the released alert is erased at the next pass");
    assert_eq!((after.held, after.legal_holds, after.overdue), (0, 1, 0));
    let erasures: Vec<String> = audit(&admin)
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::Erasure && e.object.starts_with("alert/"))
        .map(|e| e.object)
        .collect();
    assert!(erasures.contains(&"alert/c1".into()) && erasures.contains(&"alert/c2".into()));

    // Day 91: the investigation hold has stood 91 days unreviewed: it is listed and counted.
    clock.advance(60 * DAY);
    let day91 = run_pass(&client).await;
    assert_eq!((day91.holds, day91.holds_due_review), (1, 1), "{day91:?}");
    let report = lfr_purge::report::build(book, &purge.purger.policy, clock.now());
    let due: Vec<_> = report.holds.iter().filter(|h| h.due_review).collect();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].deployment.as_str(),
            due[0].reason,
            due[0].case_reference.as_deref(),
            due[0].age_days.round(),
            due[0].alerts
        ),
        ("other-day", "investigation", Some("INV-2026-7"), 91.0, 1)
    );
    let m = scrape(purge.running.metrics_addr).await;
    assert_eq!(metric(&m, "lfr_purge_holds_due_review", &[]), Some(1.0));
    assert_eq!(
        metric(&m, "lfr_purge_holds", &[("reason", "investigation")]),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "lfr_purge_holds", &[("reason", "complaint")]),
        Some(0.0)
    );
    // Reviewed and kept (placed again): no longer due.
    let renewed = HoldPlaced {
        placed_at: clock.now(),
        ..investigation
    };
    publish(&admin, subjects::holds_placed("other-day"), &renewed).await;
    eventually(Duration::from_secs(10), || async {
        (run_pass(&client).await.holds_due_review == 0).then_some(())
    })
    .await
    .expect("a renewed hold is not due for review");
    assert!(book.get("o1").unwrap().is_held());

    shutdown.trigger();
    purge.running.done.await.unwrap();
}
