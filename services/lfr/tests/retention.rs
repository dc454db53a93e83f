//! `lfr retention` as a supervisor uses it against a real nats-server: the report shows what is
//! held, why and until when; releasing a legal hold needs a case reference, is recorded on ALERTS
//! and AUDIT, and turns the alert back to ordinary retention.

use lfr_schemas::streams::{self, TopologyLimits};
use lfr_schemas::{
    subjects, AlertDecision, AlertOutcome, AuditAction, AuditEvent, CandidateAlert, Decision,
    HoldReleased, Message, Outcome, Timestamp,
};
use lfr_testkit::{records, NatsServer};
use std::process::{Command, Output};

fn lfr(nats: &NatsServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("retention")
        .envs(nats.admin_env())
        .args(args)
        .output()
        .unwrap()
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
    let out = lfr(nats, &["report", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_holds_and_a_release_needs_a_case() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    for spec in streams::topology(&TopologyLimits::default()) {
        js.create_or_update_stream(lfr_common::topology::stream_config(&spec))
            .await
            .unwrap();
    }
    let now = Timestamp::now();
    for id in ["a1", "a2"] {
        publish(
            &nats,
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
        publish(&nats, subjects::alert_decisions("match-day"), &decision).await;
    }
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
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 under legal hold"));

    // Only an alert under hold can be released, and only naming a case.
    let not_held = lfr(
        &nats,
        &["release", "--alert", "a2", "--case", "C-1", "--by", "sup-1"],
    );
    assert!(!not_held.status.success());
    let no_case = lfr(
        &nats,
        &["release", "--alert", "a1", "--case", " ", "--by", "sup-1"],
    );
    assert!(!no_case.status.success());
    let released = lfr(
        &nats,
        &[
            "release",
            "--alert",
            "a1",
            "--case",
            "CASE-2026-0042",
            "--by",
            "sup-1",
        ],
    );
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
