//! The review of a watch list in the console, against a real nats-server and a real dispatch
//! service: the supervisor sees the entries (reference, category, image) of what they sign off,
//! every image shown is one consultation on AUDIT, the auditor sees the deployment's governance
//! but no face, and a running deployment whose review lapsed (48 hours) is flagged paused, on the
//! page and in the metrics, until it is reviewed again there.

use lfr_common::audit::{query, AuditFilter, ObjectMatch};
use lfr_common::Shutdown;
use lfr_dispatch::auth::{Accounts, Role};
use lfr_schemas::{AuditAction, Timestamp};
use lfr_testkit::{eventually, metric, sample_photo, scrape, NatsServer};
use lfr_vault::MasterKey;
use lfr_watchlist::deployment::REVIEW_VALIDITY;
use lfr_watchlist::store::Store;

mod support;

use support::{Person, PASSWORD, WAIT};

async fn paused(addr: std::net::SocketAddr) -> Option<f64> {
    metric(
        &scrape(addr).await,
        "lfr_deployment_paused",
        &[("deployment", "match-day")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_sees_what_they_sign_off_and_a_lapsed_review_pauses_the_deployment() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let store = Store::open(&js).await.unwrap();
    let reference = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    support::deployment(&store, "match-day", &reference).await;
    let accounts = Accounts::open(&js).await.unwrap();
    for (id, role) in [("sup-1", Role::Supervisor), ("aud-1", Role::Auditor)] {
        accounts.create(id, role, PASSWORD, vec![]).await.unwrap();
    }
    accounts
        .create("op-1", Role::Operator, PASSWORD, vec!["match-day".into()])
        .await
        .unwrap();
    let shutdown = Shutdown::new();
    let config = support::config(&nats, MasterKey::generate());
    let dispatch = lfr_dispatch::start(config, shutdown.clone()).await.unwrap();
    let base = format!("http://{}", dispatch.console_addr);
    let supervisor = Person::log_in(&base, "sup-1").await;
    let auditor = Person::log_in(&base, "aud-1").await;
    let operator = Person::log_in(&base, "op-1").await;

    // The supervisor sees the list's entries, with their images, and the record.
    let (status, page) = supervisor.get("/deployments/match-day").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("CUST-0001") && page.contains("wanted"),
        "{page}"
    );
    assert!(
        page.contains("INT/TEST/1") && page.contains("ACC Gold"),
        "{page}"
    );
    assert!(
        page.contains("superintendent"),
        "the authorising rank: {page}"
    );
    assert!(!page.contains("PAUSED"), "{page}");
    let sha = lfr_watchlist::list::sha256_hex(&reference);
    let src = format!("/deployments/match-day/entries/{sha}");
    assert!(page.contains(&src), "{page}");
    let image = supervisor
        .http
        .get(format!("{base}{src}"))
        .header("cookie", &supervisor.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.bytes().await.unwrap().as_ref(), reference.as_slice());
    let consultations = query(
        &js,
        &AuditFilter {
            object: Some(ObjectMatch::Exact("watchlist/match-day".into())),
            action: Some(AuditAction::Consultation),
            actor: Some("sup-1".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .events;
    assert_eq!(
        consultations.len(),
        2,
        "the list shown, then its one image: {consultations:?}"
    );
    assert_eq!(consultations[1].event.digest.as_deref(), Some(sha.as_str()));
    // An image the list does not name is not served, whatever is stored.
    let (status, _) = supervisor
        .get(&format!(
            "/deployments/match-day/entries/{}",
            "0".repeat(64)
        ))
        .await;
    assert_eq!(status, 404);

    // The auditor sees the record, not the faces, and finds it from the audit page.
    let (_, audit_page) = auditor.get("/auditor").await;
    assert!(
        audit_page.contains(r#"href="/deployments/match-day""#)
            && audit_page.contains("supt-1 (superintendent)"),
        "{audit_page}"
    );
    let (status, page) = auditor.get("/deployments/match-day").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("INT/TEST/1"), "{page}");
    assert!(
        !page.contains("CUST-0001") && !page.contains("<img"),
        "{page}"
    );
    let (status, _) = auditor.get(&src).await;
    assert_eq!(status, 403, "auditors see records, not faces");

    // The clock travels: the review was signed off 48 hours and a second ago.
    assert_eq!(
        eventually(WAIT, || async {
            paused(dispatch.metrics_addr).await.filter(|p| *p == 0.0)
        })
        .await,
        Some(0.0)
    );
    let lapsed = Timestamp(Timestamp::now().0 - REVIEW_VALIDITY.as_nanos() as u64 - 1_000_000_000);
    let digest = store
        .update("match-day", |d| {
            d.review.as_mut().expect("reviewed").at = lapsed;
            Ok(())
        })
        .await
        .unwrap()
        .watchlist
        .unwrap()
        .digest;
    let flagged = eventually(WAIT, || async {
        paused(dispatch.metrics_addr).await.filter(|p| *p == 1.0)
    })
    .await;
    assert_eq!(flagged, Some(1.0), "lfr_deployment_paused never rose");
    let (_, page) = supervisor.get("/deployments/match-day").await;
    assert!(page.contains("Matching is PAUSED"), "{page}");
    let (_, page) = supervisor.get("/supervisor").await;
    assert!(page.contains("Matching is PAUSED"), "{page}");
    let (_, page) = operator.get("/operator").await;
    assert!(
        page.contains("Matching is PAUSED on match-day") && !page.contains("/deployments/"),
        "operators are told, without the record: {page}"
    );

    // Reviewed again from the page: the pause ends.
    let status = supervisor
        .post(
            "/deployments/match-day/review",
            &[("csrf", &supervisor.csrf), ("digest", &digest)],
        )
        .await;
    assert_eq!(status, 303);
    let resumed = eventually(WAIT, || async {
        paused(dispatch.metrics_addr).await.filter(|p| *p == 0.0)
    })
    .await;
    assert_eq!(resumed, Some(0.0));
    let (_, page) = supervisor.get("/deployments/match-day").await;
    assert!(!page.contains("PAUSED"), "{page}");
    assert!(page.contains("by sup-1"), "the new review: {page}");
    // Signing off another list than the one attached is refused.
    let status = supervisor
        .post(
            "/deployments/match-day/review",
            &[("csrf", &supervisor.csrf), ("digest", &"0".repeat(64))],
        )
        .await;
    assert_eq!(status, 409);

    shutdown.trigger();
    let _ = dispatch.done.await;
}
