//! `lfr retention` as a supervisor uses it against a real nats-server: the report shows what is
//! held, why and until when; releasing a legal hold needs a case reference, is recorded on ALERTS
//! and AUDIT, and turns the alert back to ordinary retention. Holds for a complaint or an
//! investigation, on an alert or a whole deployment, are placed, listed (with those due for
//! review), renewed by a review, and released naming their case, each recorded on ALERTS and
//! AUDIT. Placing and releasing act as the supervisor logged in: without a session nothing is
//! held or released and nothing is recorded, and the records name the account, never a name typed.

use lfr_schemas::streams::{self, TopologyLimits};
use lfr_schemas::{
    subjects, AlertDecision, AlertOutcome, AuditAction, AuditEvent, CandidateAlert, Decision,
    HoldLifted, HoldPlaced, HoldReason, HoldReleased, Message, Outcome, Timestamp,
};
use lfr_testkit::{records, NatsServer};
use std::process::Output;
use support::Person;

mod support;

/// `lfr retention <args>` with nobody logged in (reads need no login).
fn lfr(nats: &NatsServer, args: &[&str]) -> Output {
    let mut all = vec!["retention"];
    all.extend(args);
    support::nobody(nats, &all)
}

/// `lfr retention <args>` as `person`.
fn retention(person: &Person, args: &[&str]) -> Output {
    let mut all = vec!["retention"];
    all.extend(args);
    person.lfr(&all)
}

fn alert(id: &str, raised_at: Timestamp) -> CandidateAlert {
    lfr_testkit::candidate_alert(id, "match-day", raised_at)
}

/// Published as the component that writes such messages (match, dispatch, the administrator).
async fn publish<M: Message>(nats: &NatsServer, subject: String, m: &M) {
    nats.author(&subject)
        .await
        .publish(subject, m.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

fn report(nats: &NatsServer) -> serde_json::Value {
    json(nats, &["report", "--json"])
}

fn json(nats: &NatsServer, args: &[&str]) -> serde_json::Value {
    let out = lfr(nats, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Two confirmed alerts of match-day, raised `now`.
async fn two_alerts(nats: &NatsServer, js: &async_nats::jetstream::Context, now: Timestamp) {
    for spec in streams::topology(&TopologyLimits::default()) {
        js.create_or_update_stream(lfr_common::topology::stream_config(&spec))
            .await
            .unwrap();
    }
    for id in ["a1", "a2"] {
        publish(
            nats,
            subjects::alert_candidates("match-day"),
            &alert(id, now),
        )
        .await;
        let decision = AlertDecision {
            alert_id: id.into(),
            deployment: "match-day".into(),
            decision: Decision::Confirmed,
            actor: "op-1".into(),
            reason: None,
            decided_at: now,
        };
        publish(nats, subjects::alert_decisions("match-day"), &decision).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_holds_and_a_release_needs_a_case() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let now = Timestamp::now();
    two_alerts(&nats, &js, now).await;
    let arrest = AlertOutcome {
        alert_id: "a1".into(),
        deployment: "match-day".into(),
        outcome: Outcome::EngagedArrested,
        actor: "pc-1".into(),
        note: None,
        recorded_at: now,
    };
    publish(&nats, subjects::alert_outcomes("match-day"), &arrest).await;

    let before = report(&nats);
    let d = &before["deployments"][0];
    assert_eq!(d["deployment"], "match-day");
    assert_eq!(
        (d["alerts"].as_u64(), d["legal_holds"].as_u64()),
        (Some(2), Some(1))
    );
    let a1 = &d["items"][0];
    assert_eq!(a1["held_for"], "legal hold (arrest)");
    assert!(a1["erase_after"].is_null());
    let a2 = &d["items"][1];
    let thirty_days = 30 * 86_400 * 1_000_000_000u64;
    assert_eq!(a2["erase_after"].as_u64(), Some(now.0 + thirty_days));
    assert_eq!(d["next_erasure"].as_u64(), Some(now.0 + thirty_days));
    let text = lfr(&nats, &["report"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 under hold"));

    // Only an alert under hold can be released, and only naming a case.
    let sup = Person::bootstrap(&nats, "sup-1", None);
    let not_held = retention(&sup, &["release", "--alert", "a2", "--case", "C-1"]);
    assert!(!not_held.status.success());
    let no_case = retention(&sup, &["release", "--alert", "a1", "--case", " "]);
    assert!(!no_case.status.success());
    let release = ["release", "--alert", "a1", "--case", "CASE-2026-0042"];
    // Nobody logged in: refused, the arrest's hold stands, nothing on ALERTS or AUDIT.
    let audited = lfr_testkit::stream_messages(&js, streams::AUDIT).await;
    support::refused(lfr(&nats, &release), support::NOT_LOGGED_IN);
    assert_eq!(
        lfr_testkit::stream_messages(&js, streams::AUDIT).await,
        audited
    );
    assert!(
        records::<HoldReleased>(&js, streams::ALERTS, "lfr.alerts.*.release")
            .await
            .is_empty()
    );
    assert_eq!(
        report(&nats)["deployments"][0]["legal_holds"].as_u64(),
        Some(1)
    );
    let released = retention(&sup, &release);
    assert!(
        released.status.success(),
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );

    let releases = records::<HoldReleased>(&js, streams::ALERTS, "lfr.alerts.*.release").await;
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0].1.case_reference, "CASE-2026-0042");
    assert_eq!(releases[0].1.actor, "sup-1");
    let audit = records::<AuditEvent>(&js, streams::AUDIT, "lfr.audit.match-day").await;
    assert!(audit
        .iter()
        .any(|(_, e)| e.action == AuditAction::Alteration
            && e.object == "alert/a1"
            && e.justification.contains("CASE-2026-0042")));
    let after = report(&nats);
    assert_eq!(after["deployments"][0]["legal_holds"].as_u64(), Some(0));
    assert!(after["deployments"][0]["items"][0]["erase_after"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_on_an_alert_or_a_deployment_are_placed_reviewed_and_released_naming_the_case() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let now = Timestamp::now();
    two_alerts(&nats, &js, now).await;
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sup1 = Person::bootstrap(&nats, "sup-1", None);
    let sup2 = sup1.create("sup-2", "supervisor", None);
    let hold =
        |target: &'static str, id: &'static str, reason: &'static str, case: &'static str| {
            retention(
                &sup1,
                &["hold", target, id, "--reason", reason, "--case", case],
            )
        };

    // Refused: an unknown alert or deployment, an unknown reason (an arrest holds through its
    // outcome), no case, no target.
    assert!(!hold("--alert", "nope", "complaint", "COMP-1")
        .status
        .success());
    assert!(!hold("--deployment", "nowhere", "complaint", "COMP-1")
        .status
        .success());
    assert!(!hold("--alert", "a1", "arrest", "COMP-1").status.success());
    assert!(!hold("--alert", "a1", "complaint", " ").status.success());
    let no_target = retention(&sup1, &["hold", "--reason", "complaint", "--case", "C"]);
    assert!(!no_target.status.success());
    // Nobody logged in, a session whose account was since disabled, an operator: refused,
    // nothing held, nothing recorded.
    let disabled = sup1.create("sup-9", "supervisor", None);
    support::ok(sup1.lfr(&["account", "disable", "--id", "sup-9"]));
    let operator = sup1.create("op-1", "operator", None);
    let placing = [
        "hold",
        "--alert",
        "a1",
        "--reason",
        "complaint",
        "--case",
        "COMP-2026-0101",
    ];
    let audited = lfr_testkit::stream_messages(&js, streams::AUDIT).await;
    support::refused(lfr(&nats, &placing), support::NOT_LOGGED_IN);
    support::refused(retention(&disabled, &placing), "your session has ended");
    support::refused(retention(&operator, &placing), "is a supervisor's step");
    assert_eq!(
        lfr_testkit::stream_messages(&js, streams::AUDIT).await,
        audited
    );
    assert!(
        records::<HoldPlaced>(&js, streams::ALERTS, "lfr.alerts.*.hold")
            .await
            .is_empty()
    );

    let placed = ok(hold("--alert", "a1", "complaint", "COMP-2026-0101"));
    assert!(
        placed.contains("held (complaint, case COMP-2026-0101)"),
        "{placed}"
    );
    ok(hold("--deployment", "match-day", "investigation", "INV-7"));
    let held = records::<HoldPlaced>(&js, streams::ALERTS, "lfr.alerts.*.hold").await;
    assert_eq!(held.len(), 2);
    assert_eq!(
        (
            held[0].1.alert_id.as_deref(),
            held[0].1.reason,
            held[0].1.actor.as_str()
        ),
        (Some("a1"), HoldReason::Complaint, "sup-1")
    );
    assert_eq!(held[1].1.alert_id, None);

    // Shown: in the report, with reason, case and age, and as the list of holds.
    let r = report(&nats);
    let d = &r["deployments"][0];
    assert_eq!(d["legal_holds"].as_u64(), Some(2));
    assert!(d["next_erasure"].is_null(), "both alerts held");
    assert_eq!(
        d["items"][0]["held_for"],
        "complaint COMP-2026-0101; investigation INV-7 (deployment)"
    );
    assert_eq!(r["holds"].as_array().unwrap().len(), 2);
    assert_eq!(r["holds_due_review"].as_u64(), Some(0));
    let complaint = &r["holds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["reason"] == "complaint")
        .unwrap()
        .clone();
    assert_eq!(complaint["case_reference"], "COMP-2026-0101");
    assert_eq!(complaint["placed_by"], "sup-1");
    assert!(complaint["age_days"].as_f64().unwrap() < 1.0);
    let text = ok(lfr(&nats, &["report"]));
    assert!(
        text.contains("holds: 2 standing, 0 due for review"),
        "{text}"
    );
    assert!(
        text.contains("(whole deployment)") && text.contains("INV-7"),
        "{text}"
    );
    assert_eq!(
        json(&nats, &["holds", "--json"]).as_array().unwrap().len(),
        2
    );
    assert!(json(&nats, &["holds", "--due-review", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
    // With a review period under a second, both are due a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let due = json(
        &nats,
        &[
            "holds",
            "--due-review",
            "--review-days",
            "0.00001",
            "--json",
        ],
    );
    assert_eq!(due.as_array().unwrap().len(), 2, "{due}");
    let listed = ok(lfr(
        &nats,
        &["holds", "--due-review", "--review-days", "0.00001"],
    ));
    assert!(listed.contains("REVIEW DUE"), "{listed}");

    // A review that keeps the complaint hold: placing it again renews it.
    let renewed = ok(hold("--alert", "a1", "complaint", "COMP-2026-0101"));
    assert!(renewed.contains("reviewed and kept"), "{renewed}");
    let r = report(&nats);
    let complaint = r["holds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["reason"] == "complaint")
        .unwrap()
        .clone();
    assert!(complaint["reviewed_at"].as_u64() > complaint["placed_at"].as_u64());
    assert_eq!(r["holds"].as_array().unwrap().len(), 2);

    // Released only naming the case; then ordinary retention applies.
    let release = |target: &'static str, id: &'static str, case: &'static str| {
        retention(&sup2, &["release", target, id, "--case", case])
    };
    assert!(!release("--alert", "a1", "COMP-WRONG").status.success());
    assert!(!release("--deployment", "match-day", "COMP-2026-0101")
        .status
        .success());
    let out = ok(release("--alert", "a1", "COMP-2026-0101"));
    assert!(
        out.contains("released (complaint, case COMP-2026-0101)"),
        "{out}"
    );
    assert_eq!(
        report(&nats)["deployments"][0]["legal_holds"].as_u64(),
        Some(2)
    );
    ok(release("--deployment", "match-day", "INV-7"));
    let after = report(&nats);
    assert_eq!(after["deployments"][0]["legal_holds"].as_u64(), Some(0));
    assert!(after["deployments"][0]["items"][0]["erase_after"].is_u64());
    assert!(after["holds"].as_array().unwrap().is_empty());
    let lifted = records::<HoldLifted>(&js, streams::ALERTS, "lfr.alerts.*.lift").await;
    assert_eq!(lifted.len(), 2);
    assert_eq!(lifted[0].1.actor, "sup-2");

    // Every hold, review and release is on the audit record, with reason and case.
    let audit: Vec<AuditEvent> = records::<AuditEvent>(&js, streams::AUDIT, "lfr.audit.match-day")
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let has = |object: &str, actor: &str, why: &str| {
        audit.iter().any(|e| {
            e.action == AuditAction::Alteration
                && e.object == object
                && e.actor == actor
                && e.justification.contains(why)
        })
    };
    assert!(has(
        "alert/a1",
        "sup-1",
        "hold placed (complaint, case COMP-2026-0101)"
    ));
    assert!(has(
        "deployment/match-day",
        "sup-1",
        "hold placed (investigation, case INV-7)"
    ));
    assert!(has(
        "alert/a1",
        "sup-1",
        "hold reviewed and kept (complaint, case COMP-2026-0101)"
    ));
    assert!(has(
        "alert/a1",
        "sup-2",
        "hold released (complaint, case COMP-2026-0101)"
    ));
    assert!(has(
        "deployment/match-day",
        "sup-2",
        "hold released (investigation, case INV-7)"
    ));
}
