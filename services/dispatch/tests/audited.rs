//! Nothing is shown or decided that is not on the audit record, against a real nats-server and a
//! real dispatch service: every fetch of a face image is one event naming the account, and when
//! AUDIT refuses writes (for real: the stream is full and discards new messages) the console
//! serves no image, renders no alert and stores no decision, until AUDIT takes writes again.

use async_nats::jetstream::{self, stream::DiscardPolicy};
use lfr_common::audit::{query, Audit, AuditFilter, ObjectMatch};
use lfr_common::Shutdown;
use lfr_dispatch::auth::{Accounts, Role};
use lfr_schemas::{
    streams, subjects, AuditAction, AuditEvent, AuditObject, CandidateAlert, Message, Timestamp,
};
use lfr_testkit::{candidate_alert, eventually, metric, sample_photo, scrape, NatsServer};
use lfr_vault::{AlertImage, MasterKey, Vault};

mod support;

use support::{Person, PASSWORD, WAIT};

const JPEG: [u8; 2] = [0xff, 0xd8];

/// Alert `id` of `match-day` as the matcher raises it, with real JPEGs sealed by `vault`.
async fn raise(nats: &NatsServer, vault: &Vault, id: &str) -> Vec<u8> {
    let face = std::fs::read(sample_photo("faces/obama2.jpg")).unwrap();
    let context = std::fs::read(sample_photo("faces/obama3.jpg")).unwrap();
    let seal = |image: AlertImage, bytes: Vec<u8>| async move {
        vault
            .seal("match-day", &image.aad("match-day", id), &bytes)
            .await
            .unwrap()
    };
    let alert = CandidateAlert {
        probe_jpeg: seal(AlertImage::Probe, face.clone()).await,
        context_jpeg: seal(AlertImage::Context, context.clone()).await,
        reference_jpeg: seal(AlertImage::Reference, face.clone()).await,
        ..candidate_alert(id, "match-day", Timestamp::now())
    };
    let matcher = nats.jetstream(lfr_testkit::Identity::Match).await;
    matcher
        .publish(
            subjects::alert_candidates("match-day"),
            alert.encode().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    context
}

impl Person {
    async fn image(&self, alert: &str, image: &str) -> (u16, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}/alerts/{alert}/{image}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }
}

/// Events on AUDIT about `alert/<id>`.
async fn trail(js: &jetstream::Context, id: &str) -> Vec<AuditEvent> {
    let filter = AuditFilter {
        object: Some(ObjectMatch::Exact(format!("alert/{id}"))),
        ..Default::default()
    };
    let found = query(js, &filter).await.unwrap().events;
    found.into_iter().map(|e| e.event).collect()
}

/// A dispatch service, operator `op-1` (assigned `match-day`) and supervisor `sup-1`, logged in.
async fn console(nats: &NatsServer, master: MasterKey) -> (lfr_dispatch::Running, Shutdown) {
    let js = nats.admin().await;
    let accounts = Accounts::open(&js).await.unwrap();
    accounts
        .create("op-1", Role::Operator, PASSWORD, vec!["match-day".into()])
        .await
        .unwrap();
    accounts
        .create("sup-1", Role::Supervisor, PASSWORD, vec![])
        .await
        .unwrap();
    let shutdown = Shutdown::new();
    let config = support::config(nats, master);
    let dispatch = lfr_dispatch::start(config, shutdown.clone()).await.unwrap();
    (dispatch, shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_image_fetch_is_one_event_naming_the_account() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let master = MasterKey::generate();
    let vault = Vault::open(&js, master.clone()).await.unwrap();
    let (dispatch, shutdown) = console(&nats, master).await;
    let base = format!("http://{}", dispatch.console_addr);
    let op = Person::log_in(&base, "op-1").await;
    let sup = Person::log_in(&base, "sup-1").await;
    let context = raise(&nats, &vault, "a1").await;

    // The queue shows it once: one consultation, however often it is rendered.
    let listed = eventually(WAIT, || async {
        op.get("/operator/queue")
            .await
            .1
            .contains(r#"id="alert-a1""#)
            .then_some(())
    })
    .await;
    assert!(listed.is_some(), "the alert never reached the queue");
    assert!(op.get("/operator/queue").await.1.contains("alert-a1"));
    let before = trail(&js, "a1").await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].justification, "alert shown for review");

    // Each fetch of a face image is one more, by the account that fetched it.
    for _ in 0..3 {
        assert_eq!(op.image("a1", "context.jpg").await, (200, context.clone()));
    }
    assert_eq!(sup.image("a1", "probe.jpg").await.0, 200);
    let events = trail(&js, "a1").await;
    let fetches: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.justification.contains(".jpg"))
        .collect();
    assert_eq!(fetches.len(), 4, "{events:?}");
    for e in &fetches[..3] {
        assert_eq!(e.action, AuditAction::Consultation);
        assert_eq!((e.actor.as_str(), e.role.as_str()), ("op-1", "operator"));
        assert_eq!(e.object, "alert/a1");
        assert_eq!(e.deployment.as_deref(), Some("match-day"));
        assert_eq!(e.justification, "context.jpg of the alert shown for review");
    }
    assert_eq!(
        (fetches[3].actor.as_str(), fetches[3].role.as_str()),
        ("sup-1", "supervisor")
    );
    assert_eq!(
        fetches[3].justification,
        "probe.jpg of the alert opened for oversight"
    );
    // A fetch that shows nothing records nothing.
    assert_eq!(op.image("a1", "other.jpg").await.0, 404);
    assert_eq!(op.image("no-such", "probe.jpg").await.0, 404);
    assert_eq!(trail(&js, "a1").await.len(), events.len());

    shutdown.trigger();
    dispatch.done.await.unwrap();
}

/// Make AUDIT refuse every new event: full at its current count, discarding new messages.
async fn refuse_audit_writes(js: &jetstream::Context) -> jetstream::stream::Config {
    let mut audit = js.get_stream(streams::AUDIT).await.unwrap();
    let info = audit.info().await.unwrap().clone();
    let original = info.config.clone();
    js.update_stream(jetstream::stream::Config {
        max_messages: info.state.messages as i64,
        discard: DiscardPolicy::New,
        ..original.clone()
    })
    .await
    .unwrap();
    original
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_audit_refuses_writes_nothing_is_shown_or_decided() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let master = MasterKey::generate();
    let vault = Vault::open(&js, master.clone()).await.unwrap();
    let (dispatch, shutdown) = console(&nats, master).await;
    let base = format!("http://{}", dispatch.console_addr);
    let op = Person::log_in(&base, "op-1").await;
    let sup = Person::log_in(&base, "sup-1").await;
    let context = raise(&nats, &vault, "a1").await;
    let in_book = eventually(WAIT, || async {
        (sup.image("a1", "context.jpg").await.0 == 200).then_some(())
    })
    .await;
    assert!(in_book.is_some(), "the console never had the alert");

    let original = refuse_audit_writes(&js).await;
    // It really refuses: an event written directly is not stored.
    let direct = Audit {
        actor: "test",
        role: "service",
    }
    .event(AuditAction::Consultation, AuditObject::Alert("a1".into()))
    .why("probe")
    .record(&js)
    .await;
    assert!(direct.is_err(), "AUDIT still took a write: {direct:?}");
    let audited = trail(&js, "a1").await.len();

    // No image, to anyone: no JPEG bytes leave.
    for (person, image) in [
        (&op, "context.jpg"),
        (&op, "probe.jpg"),
        (&sup, "context.jpg"),
    ] {
        let (status, body) = person.image("a1", image).await;
        assert_eq!(status, 503, "{image}");
        assert!(!body.starts_with(&JPEG), "image bytes sent for {image}");
        assert!(!body.windows(context.len()).any(|w| w == context));
    }
    // No alert in the queue: only how many cannot be shown.
    let (status, queue) = op.get("/operator/queue").await;
    assert_eq!(status, 200);
    assert!(queue.contains("1 alerts cannot be shown now"), "{queue}");
    for content in ["alert-a1", "CUST-0001", "gate-1", "wanted", ".jpg"] {
        assert!(!queue.contains(content), "{content} shown: {queue}");
    }
    // No decision: refused, and nothing on ALERTS.
    let decided = op
        .post(
            "/alerts/a1/decision",
            &[("csrf", &op.csrf), ("decision", "confirm")],
        )
        .await;
    assert_eq!(decided, 503);
    let alerts = js.get_stream(streams::ALERTS).await.unwrap();
    let stored = alerts
        .get_last_raw_message_by_subject(&subjects::alert_decisions("match-day"))
        .await;
    assert!(stored.is_err(), "a decision reached ALERTS unaudited");
    assert_eq!(trail(&js, "a1").await.len(), audited);
    let metrics = scrape(dispatch.metrics_addr).await;
    let refused = |action| {
        metric(
            &metrics,
            "lfr_dispatch_audit_refusals_total",
            &[("action", action)],
        )
    };
    assert_eq!(refused("image"), Some(3.0));
    assert_eq!(refused("view"), Some(1.0));
    assert_eq!(refused("decision"), Some(1.0));

    // AUDIT takes writes again: the image is served and the decision stored, each on the record.
    js.update_stream(original).await.unwrap();
    assert_eq!(op.image("a1", "context.jpg").await, (200, context));
    let decided = op
        .post(
            "/alerts/a1/decision",
            &[("csrf", &op.csrf), ("decision", "confirm")],
        )
        .await;
    assert_eq!(decided, 303);
    let stored = alerts
        .get_last_raw_message_by_subject(&subjects::alert_decisions("match-day"))
        .await;
    assert!(stored.is_ok(), "the decision was not stored");
    let events = trail(&js, "a1").await;
    let after: Vec<(AuditAction, &str)> = events[audited..]
        .iter()
        .map(|e| (e.action, e.justification.as_str()))
        .collect();
    assert_eq!(
        after,
        [
            (
                AuditAction::Consultation,
                "context.jpg of the alert shown for review"
            ),
            (
                AuditAction::Alteration,
                "operator confirmed the alert: released to officers"
            ),
        ]
    );
    assert!(events[audited..].iter().all(|e| e.actor == "op-1"));

    shutdown.trigger();
    dispatch.done.await.unwrap();
}
