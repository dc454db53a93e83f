//! Outcomes and holds at the console, over HTTP against a real nats-server and dispatch service.
//!
//! An officer's "arrested" corrected to "no further action" lifts the arrest hold; the correction
//! is on ALERTS (every outcome kept) and on AUDIT; the card shows the history; another officer
//! cannot overwrite the outcome; a double tap records nothing new. Supervisors and auditors see
//! every standing hold (reason, case, age), the old ones flagged for review; officers do not.

use async_nats::jetstream;
use lfr_common::Shutdown;
use lfr_dispatch::auth::{Accounts, Role};
use lfr_schemas::{
    streams, subjects, AlertOutcome, AuditAction, AuditEvent, HoldPlaced, HoldReason, Message,
    Timestamp,
};
use lfr_testkit::{eventually, records, sample_photo, NatsServer};
use lfr_vault::MasterKey;
use lfr_watchlist::store::Store;
use std::time::Duration;

mod support;

use support::{deployment, Person, PASSWORD, WAIT};
const DAY_NANOS: u64 = 86_400_000_000_000;

impl Person {
    async fn outcome(&self, alert: &str, outcome: &str) -> u16 {
        let path = format!("/alerts/{alert}/outcome");
        self.post(&path, &[("csrf", &self.csrf), ("outcome", outcome)])
            .await
    }

    /// Wait until the feed shows `text` (the book has folded what was recorded).
    async fn feed_shows(&self, text: &str) -> String {
        eventually(WAIT, || async {
            let (_, feed) = self.get("/handheld/feed").await;
            feed.contains(text).then_some(feed)
        })
        .await
        .unwrap_or_else(|| panic!("the feed shows {text}"))
    }
}

async fn outcomes(js: &jetstream::Context) -> Vec<AlertOutcome> {
    records::<AlertOutcome>(js, streams::ALERTS, "lfr.alerts.*.outcome")
        .await
        .into_iter()
        .map(|(_, o)| o)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arrest_corrected_to_no_further_action_lifts_the_hold_and_holds_are_shown_to_oversight()
{
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let matcher = nats.jetstream(lfr_testkit::Identity::Match).await;
    let shutdown = Shutdown::new();
    let config = support::config(&nats, MasterKey::generate());
    let dispatch = lfr_dispatch::start(config, shutdown.clone()).await.unwrap();
    let base = format!("http://{}", dispatch.console_addr);
    let store = Store::open(&js).await.unwrap();
    let reference = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    deployment(&store, "match-day", &reference).await;
    let accounts = Accounts::open(&js).await.unwrap();
    for (id, role) in [
        ("op-1", Role::Operator),
        ("pc-1", Role::Officer),
        ("pc-2", Role::Officer),
        ("sup-1", Role::Supervisor),
        ("aud-1", Role::Auditor),
    ] {
        let deployments = match role {
            Role::Operator | Role::Officer => vec!["match-day".to_string()],
            _ => vec![],
        };
        accounts
            .create(id, role, PASSWORD, deployments)
            .await
            .unwrap();
    }
    for id in ["a1", "a2"] {
        let alert = lfr_testkit::candidate_alert(id, "match-day", Timestamp::now());
        matcher
            .publish(
                subjects::alert_candidates("match-day"),
                alert.encode().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let op = Person::log_in(&base, "op-1").await;
    let pc1 = Person::log_in(&base, "pc-1").await;
    let pc2 = Person::log_in(&base, "pc-2").await;
    for id in ["a1", "a2"] {
        let confirmed = eventually(WAIT, || async {
            let path = format!("/alerts/{id}/decision");
            let s = op
                .post(&path, &[("csrf", &op.csrf), ("decision", "confirm")])
                .await;
            (s == 303).then_some(())
        })
        .await;
        assert!(confirmed.is_some(), "{id} confirmed");
    }

    // pc-1 taps "arrested" on a1 by mistake (twice: one record).
    pc1.feed_shows("alert-a1").await;
    assert_eq!(pc1.outcome("a1", "arrested").await, 303);
    pc1.feed_shows("Engaged: arrested").await;
    assert_eq!(pc1.outcome("a1", "arrested").await, 303);
    let held = lfr_alerts::feed::snapshot(&js).await.unwrap();
    assert!(held.get("a1").unwrap().on_legal_hold());
    // Another officer cannot overwrite it, and is offered no buttons for it.
    assert_eq!(pc2.outcome("a1", "not-located").await, 409);
    let feed2 = pc2.feed_shows("Engaged: arrested").await;
    let card = &feed2[feed2.find("alert-a1").unwrap()..];
    let card = &card[..card.find("</article>").unwrap()];
    assert!(!card.contains(r#"name="outcome""#), "{card}");

    // pc-1 corrects it: the latest outcome counts, the arrest hold is lifted.
    let feed1 = pc1.get("/handheld/feed").await.1;
    assert!(feed1.contains("Correct the outcome"), "{feed1}");
    assert_eq!(pc1.outcome("a1", "no-further-action").await, 303);
    let feed1 = pc1.feed_shows("Engaged: no further action").await;
    assert!(
        feed1.contains("outcome-history") && feed1.contains("Engaged: arrested (pc-1"),
        "the history shows the corrected outcome: {feed1}"
    );
    let recorded = outcomes(&js).await;
    let a1: Vec<&str> = recorded
        .iter()
        .filter(|o| o.alert_id == "a1")
        .map(|o| o.outcome.as_str())
        .collect();
    assert_eq!(a1, ["arrested", "no-further-action"], "every outcome kept");
    let book = lfr_alerts::feed::snapshot(&js).await.unwrap();
    let entry = book.get("a1").unwrap();
    assert!(!entry.on_legal_hold() && !entry.is_held());
    assert!(entry
        .erase_after(Duration::from_secs(30 * 86_400))
        .is_some());
    let audit: Vec<AuditEvent> = records::<AuditEvent>(&js, streams::AUDIT, "lfr.audit.match-day")
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let has = |why: &str| {
        audit.iter().any(|e| {
            e.actor == "pc-1"
                && e.action == AuditAction::Alteration
                && e.object == "alert/a1"
                && e.justification == why
        })
    };
    assert!(has("outcome recorded: arrested"));
    assert!(has(
        "outcome corrected: arrested -> no-further-action (the arrest hold is lifted)"
    ));

    // a2: a real arrest; match-day held for an investigation since 91 days.
    pc1.feed_shows("alert-a2").await;
    assert_eq!(pc1.outcome("a2", "arrested").await, 303);
    let old = HoldPlaced {
        deployment: "match-day".into(),
        alert_id: None,
        reason: HoldReason::Investigation,
        case_reference: "INV-2026-9".into(),
        actor: "sup-1".into(),
        placed_at: Timestamp(Timestamp::now().0 - 91 * DAY_NANOS),
    };
    js.publish(subjects::holds_placed("match-day"), old.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let sup = Person::log_in(&base, "sup-1").await;
    let page = eventually(WAIT, || async {
        let (status, page) = sup.get("/supervisor").await;
        assert_eq!(status, 200);
        (page.contains("INV-2026-9") && page.contains("alert a2")).then_some(page)
    })
    .await
    .expect("the supervisor sees the holds");
    let holds = &page[page.find(r#"id="holds""#).unwrap()..];
    let holds = &holds[..holds.find("</table>").unwrap()];
    assert!(holds.contains("investigation") && holds.contains("whole deployment (2 alerts)"));
    assert!(holds.contains("arrest") && holds.contains("pc-1"));
    assert_eq!(holds.matches("REVIEW DUE").count(), 1, "{holds}");
    assert!(holds.contains("<td>91</td>"), "its age in days: {holds}");
    assert!(page.contains("2 standing, 1 due for review"), "{page}");
    let aud = Person::log_in(&base, "aud-1").await;
    let (status, page) = aud.get("/auditor").await;
    assert_eq!(status, 200);
    assert!(page.contains("INV-2026-9") && page.contains("REVIEW DUE"));
    assert_eq!(pc1.get("/supervisor").await.0, 403);
    assert_eq!(pc1.get("/auditor").await.0, 403);

    shutdown.trigger();
    dispatch.done.await.unwrap();
}
