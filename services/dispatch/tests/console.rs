//! The review console end to end: real nats-server, real dispatch service, real headless Chromium.
//!
//! An operator logs in, sees a candidate alert appear live and confirms it; an officer's handheld
//! page receives it live and records an outcome; an alert the operator rejects never reaches the
//! officer. Then, over plain HTTP, what each role may and may not do. Screenshots of the operator
//! and handheld pages are kept as artefacts (`target/artefacts/`).

use async_nats::jetstream;
use lfr_common::Shutdown;
use lfr_dispatch::auth::{Accounts, Role};
use lfr_schemas::{
    streams, subjects, AuditAction, AuditEvent, CandidateAlert, FaceRef, FrameRef, Message,
    Timestamp, WatchlistCategory,
};
use lfr_testkit::browser::Browser;
use lfr_testkit::{eventually, metric, records, sample_photo, scrape, NatsServer};
use lfr_vault::{AlertImage, MasterKey, Vault};
use lfr_watchlist::list::sha256_hex;
use lfr_watchlist::store::Store;
use std::time::Duration;

mod support;

use support::{deployment, Person, PASSWORD, WAIT};

/// A candidate alert as the matcher raises it, with real JPEGs sealed by `vault`.
async fn alert(
    vault: &Vault,
    id: &str,
    deployment: &str,
    category: WatchlistCategory,
    raised_at: Timestamp,
) -> CandidateAlert {
    let face = std::fs::read(sample_photo("faces/obama2.jpg")).unwrap();
    let context = std::fs::read(sample_photo("faces/obama3.jpg")).unwrap();
    let reference = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    let seal = |image: AlertImage, bytes: Vec<u8>| async move {
        vault
            .seal(deployment, &image.aad(deployment, id), &bytes)
            .await
            .unwrap()
    };
    CandidateAlert {
        alert_id: id.into(),
        deployment: deployment.into(),
        raised_at,
        probe: FaceRef {
            frame: FrameRef {
                camera: "gate-1".into(),
                epoch: Timestamp(1),
                seq: 7,
                captured_at: raised_at,
            },
            index: 0,
        },
        category,
        entry_ref: "CUST-0001".into(),
        reference_image_sha256: sha256_hex(&reference),
        watchlist_digest: "0".repeat(64),
        score: 0.81,
        corroborating_frames: 2,
        track_frames: 3,
        probe_jpeg: seal(AlertImage::Probe, face).await,
        context_jpeg: seal(AlertImage::Context, context).await,
        reference_jpeg: seal(AlertImage::Reference, reference).await,
    }
}

async fn raise(js: &jetstream::Context, alert: &CandidateAlert) {
    let subject = if alert.category == WatchlistCategory::Blue {
        subjects::blue_alerts(&alert.deployment)
    } else {
        subjects::alert_candidates(&alert.deployment)
    };
    js.publish(subject, alert.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn log_in(browser: &Browser, base: &str, account: &str) {
    browser.goto(&format!("{base}/login")).await;
    browser.fill("input[name=account]", account).await;
    browser.fill("input[name=password]", PASSWORD).await;
    browser.click("button[type=submit]").await;
}

impl Person {
    async fn decide(&self, alert: &str, decision: &str) -> u16 {
        let path = format!("/alerts/{alert}/decision");
        self.post(&path, &[("csrf", &self.csrf), ("decision", decision)])
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_confirm_officers_receive_and_a_rejected_alert_never_reaches_them() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    // Alerts are raised as the matcher raises them, under its identity.
    let matcher = nats.jetstream(lfr_testkit::Identity::Match).await;
    let shutdown = Shutdown::new();
    let master = MasterKey::generate();
    let mut config = support::config(&nats, master.clone());
    config.dispatch.review_deadline = Duration::from_secs(30);
    let vault = Vault::open(&js, master).await.unwrap();
    let dispatch = lfr_dispatch::start(config, shutdown.clone()).await.unwrap();
    let base = format!("http://{}", dispatch.console_addr);

    let store = Store::open(&js).await.unwrap();
    let reference = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    for d in ["match-day", "other-day", "past-day"] {
        deployment(&store, d, &reference).await;
    }
    store
        .update("past-day", |d| d.end(Timestamp::now()))
        .await
        .unwrap();
    let accounts = Accounts::open(&js).await.unwrap();
    for (id, role, deployments) in [
        ("op-1", Role::Operator, vec!["match-day", "past-day"]),
        ("pc-1", Role::Officer, vec!["match-day"]),
        ("op-2", Role::Operator, vec!["other-day"]),
        ("sup-1", Role::Supervisor, vec![]),
    ] {
        let deployments = deployments.into_iter().map(String::from).collect();
        accounts
            .create(id, role, PASSWORD, deployments)
            .await
            .unwrap();
    }

    // The operator's queue is empty, then an alert appears without a reload.
    let operator = Browser::start().await;
    log_in(&operator, &base, "op-1").await;
    operator
        .wait_for_text("#queue", "No alerts waiting", WAIT)
        .await;
    let now = Timestamp::now();
    raise(
        &matcher,
        &alert(&vault, "a1", "match-day", WatchlistCategory::Wanted, now).await,
    )
    .await;
    operator.wait_for("#alert-a1 button.confirm", WAIT).await;
    let facts = operator.text("#alert-a1 .facts").await;
    assert!(
        facts.contains("CUST-0001") && facts.contains("wanted") && facts.contains("gate-1"),
        "{facts}"
    );
    for image in ["probe", "context", "reference"] {
        // Images load after the page: poll until each has decoded.
        let script = format!(
            "const i = document.querySelector('#alert-a1 .{image} img'); return i.complete && i.naturalWidth > 0;"
        );
        let loaded = eventually(WAIT, || async {
            let shown = operator.client().execute(&script, vec![]).await.ok()?;
            shown.as_bool().filter(|s| *s)
        })
        .await;
        assert!(loaded.is_some(), "the {image} image shows");
    }
    operator.screenshot("console-operator-queue").await;

    // The officer's handheld feed, open before the confirmation, receives it live.
    let officer = Browser::with_window(390, 844).await;
    log_in(&officer, &base, "pc-1").await;
    officer
        .wait_for_text("#feed", "No confirmed alerts", WAIT)
        .await;
    operator.click("#alert-a1 button.confirm").await;
    operator
        .wait_for_text("#queue", "No alerts waiting", WAIT)
        .await;
    officer.wait_for("#alert-a1 .outcomes", WAIT).await;
    officer.screenshot("console-handheld-feed").await;
    officer.click("#alert-a1 button[value=arrested]").await;
    officer
        .wait_for_text("#alert-a1 .outcome", "Engaged: arrested", WAIT)
        .await;
    officer.screenshot("console-handheld-outcome").await;

    // A rejected alert never reaches the officer.
    raise(
        &matcher,
        &alert(
            &vault,
            "a2",
            "match-day",
            WatchlistCategory::Wanted,
            Timestamp::now(),
        )
        .await,
    )
    .await;
    operator.wait_for("#alert-a2 button.reject", WAIT).await;
    operator
        .fill("#alert-a2 input[name=reason]", "different person")
        .await;
    operator.click("#alert-a2 button.reject").await;
    operator
        .wait_for_text("#queue", "No alerts waiting", WAIT)
        .await;
    // Give a wrongly delivered alert every chance to show up.
    raise(
        &matcher,
        &alert(
            &vault,
            "a3",
            "match-day",
            WatchlistCategory::Wanted,
            Timestamp::now(),
        )
        .await,
    )
    .await;
    operator.wait_for("#alert-a3 button.confirm", WAIT).await;
    operator.click("#alert-a3 button.confirm").await;
    officer.wait_for("#alert-a3", WAIT).await;
    assert!(
        !officer.exists("#alert-a2").await,
        "a rejected alert reached the officer"
    );

    // An alert nobody reviews in time is escalated, visibly.
    let stale = Timestamp(Timestamp::now().0 - 120_000_000_000);
    raise(
        &matcher,
        &alert(&vault, "a4", "match-day", WatchlistCategory::Wanted, stale).await,
    )
    .await;
    operator.wait_for_text("#alert-a4", "ESCALATED", WAIT).await;
    operator.screenshot("console-operator-escalated").await;
    operator.close().await;
    officer.close().await;

    // What each role may do, over plain HTTP.
    raise(
        &matcher,
        &alert(
            &vault,
            "b1",
            "match-day",
            WatchlistCategory::Blue,
            Timestamp::now(),
        )
        .await,
    )
    .await;
    raise(
        &matcher,
        &alert(
            &vault,
            "p1",
            "past-day",
            WatchlistCategory::Wanted,
            Timestamp::now(),
        )
        .await,
    )
    .await;
    let op = Person::log_in(&base, "op-1").await;
    let pc = Person::log_in(&base, "pc-1").await;
    let op2 = Person::log_in(&base, "op-2").await;
    let sup = Person::log_in(&base, "sup-1").await;
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // No session: pages send to the login, actions are refused.
    let r = anonymous
        .get(format!("{base}/operator"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
    let r = anonymous
        .post(format!("{base}/alerts/a4/decision"))
        .form(&[("decision", "confirm")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A bad CSRF token.
    assert_eq!(
        op.post(
            "/alerts/a4/decision",
            &[("csrf", &"0".repeat(64)), ("decision", "confirm")]
        )
        .await,
        403
    );
    // An officer cannot confirm, nor see the operator's queue.
    assert_eq!(pc.decide("a4", "confirm").await, 403);
    assert_eq!(pc.get("/operator").await.0, 403);
    // Another deployment's operator sees none of this one's alerts.
    assert_eq!(op2.get("/alerts/a1/probe.jpg").await.0, 404);
    assert_eq!(op2.decide("a4", "confirm").await, 404);
    assert!(!op2.get("/operator/queue").await.1.contains("a4"));
    // Unknown alert, malformed form.
    assert_eq!(op.decide("no-such-alert", "confirm").await, 404);
    assert_eq!(
        op.post("/alerts/a4/decision", &[("csrf", &op.csrf)]).await,
        400
    );
    assert_eq!(op.decide("a4", "maybe").await, 400);
    // Double confirmation is one decision; the opposite decision afterwards is refused.
    assert_eq!(op.decide("a4", "confirm").await, 303);
    assert_eq!(op.decide("a4", "confirm").await, 303);
    assert_eq!(op.decide("a4", "reject").await, 409);
    // An alert of an ended deployment cannot be sent to officers.
    assert_eq!(op.decide("p1", "confirm").await, 409);
    // Blue-list alerts: not for operators or officers; the supervisor sees them.
    assert_eq!(op.decide("b1", "confirm").await, 409);
    assert!(!op.get("/operator/queue").await.1.contains("b1"));
    assert_eq!(pc.get("/alerts/b1/probe.jpg").await.0, 404);
    let (status, blue) = sup.get("/supervisor/blue").await;
    assert_eq!(status, 200);
    assert!(blue.contains("data-alert=\"b1\""), "{blue}");
    // Officers see only confirmed alerts; the rejected one's images are not theirs to fetch.
    assert_eq!(pc.get("/alerts/a2/probe.jpg").await.0, 404);
    assert_eq!(pc.get("/alerts/a1/context.jpg").await.0, 200);
    let feed = pc.get("/handheld/feed").await.1;
    assert!(feed.contains("alert-a1") && feed.contains("alert-a4") && !feed.contains("alert-a2"));
    // An outcome only for a confirmed alert, and only a known outcome.
    let outcome = |alert: &'static str, value: &'static str| {
        let pc = &pc;
        async move {
            pc.post(
                &format!("/alerts/{alert}/outcome"),
                &[("csrf", &pc.csrf), ("outcome", value)],
            )
            .await
        }
    };
    assert_eq!(outcome("a2", "arrested").await, 404);
    assert_eq!(outcome("a4", "vanished").await, 400);
    assert_eq!(outcome("a4", "not-located").await, 303);

    // What is on the record.
    let decisions: Vec<lfr_schemas::AlertDecision> =
        records(&js, streams::ALERTS, "lfr.alerts.*.decision")
            .await
            .into_iter()
            .map(|(_, d)| d)
            .collect();
    let ids: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| (d.alert_id.as_str(), d.decision.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("a1", "confirmed"),
            ("a2", "rejected"),
            ("a3", "confirmed"),
            ("a4", "confirmed")
        ]
    );
    assert_eq!(decisions[1].reason.as_deref(), Some("different person"));
    let audit: Vec<AuditEvent> = records(&js, streams::AUDIT, "lfr.audit.match-day")
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let has = |actor: &str, action: AuditAction, object: &str| {
        audit
            .iter()
            .any(|e| e.actor == actor && e.action == action && e.object == object)
    };
    assert!(
        has("op-1", AuditAction::Consultation, "alert/a1"),
        "viewing an alert is a consultation"
    );
    assert!(
        has("op-1", AuditAction::Alteration, "alert/a1"),
        "the decision is recorded"
    );
    assert!(
        has("pc-1", AuditAction::Disclosure, "alert/a1"),
        "delivery to the officer is a disclosure"
    );
    assert!(
        has("pc-1", AuditAction::Alteration, "alert/a1"),
        "the outcome is recorded"
    );
    assert!(!has("pc-1", AuditAction::Disclosure, "alert/a2"));
    let disclosure = audit
        .iter()
        .find(|e| e.action == AuditAction::Disclosure)
        .unwrap();
    assert_eq!(disclosure.recipients, ["pc-1"]);

    let metrics = eventually(WAIT, || async {
        let m = scrape(dispatch.metrics_addr).await;
        (metric(
            &m,
            "lfr_dispatch_decisions_total",
            &[("decision", "confirmed")],
        ) == Some(3.0))
        .then_some(m)
    })
    .await
    .expect("three confirmations counted");
    assert_eq!(
        metric(
            &metrics,
            "lfr_dispatch_decisions_total",
            &[("decision", "rejected")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "lfr_dispatch_outcomes_total",
            &[("outcome", "arrested")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "lfr_dispatch_review_seconds_count", &[]),
        Some(4.0)
    );
    assert!(metric(&metrics, "lfr_dispatch_alerts_escalated_total", &[]).unwrap() >= 1.0);
    // The pending gauge follows the book within a second: only p1, of the ended deployment, waits.
    let pending = eventually(WAIT, || async {
        let m = scrape(dispatch.metrics_addr).await;
        (metric(&m, "lfr_dispatch_alerts_pending", &[]) == Some(1.0)).then_some(())
    })
    .await;
    assert!(pending.is_some(), "p1, of the ended deployment, is pending");
    assert_eq!(
        metric(&metrics, "lfr_alerts_folded_total", &[("kind", "blue")]),
        Some(1.0)
    );

    // The deployment ends: the officer's feed is empty and the images closed to them, over HTTP
    // and in the browser; the supervisor keeps access, and each view of theirs is audited.
    store
        .update("match-day", |d| d.end(Timestamp::now()))
        .await
        .unwrap();
    let feed = pc.get("/handheld/feed").await.1;
    assert!(
        feed.contains("No confirmed alerts") && !feed.contains("alert-a1"),
        "{feed}"
    );
    assert_eq!(pc.get("/alerts/a1/context.jpg").await.0, 404);
    let officer = Browser::with_window(390, 844).await;
    log_in(&officer, &base, "pc-1").await;
    officer
        .wait_for_text("#feed", "No confirmed alerts", WAIT)
        .await;
    assert!(
        !officer.exists("#alert-a1").await,
        "an ended deployment's alert on the handheld"
    );
    officer.close().await;
    assert_eq!(sup.get("/alerts/a1/context.jpg").await.0, 200);
    let consulted = eventually(WAIT, || async {
        records::<AuditEvent>(&js, streams::AUDIT, "lfr.audit.match-day")
            .await
            .into_iter()
            .any(|(_, e)| {
                e.actor == "sup-1"
                    && e.action == AuditAction::Consultation
                    && e.object == "alert/a1"
            })
            .then_some(())
    })
    .await;
    assert!(consulted.is_some(), "the supervisor's view is audited");

    shutdown.trigger();
    dispatch.done.await.unwrap();
}
