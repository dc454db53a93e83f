//! Deployments and watch lists in a real nats-server: gates, load verification across replicas, a
//! wipe that leaves no image or template bytes anywhere in the store's files, and a store whose
//! files never hold a custody image in clear.

use lfr_schemas::Timestamp;
use lfr_testkit::{files_containing, sample_photo, NatsServer, Options};
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::deployment::{Deployment, GateError, NewDeployment, State};
use lfr_watchlist::enrol::Enroller;
use lfr_watchlist::store::{LoadReport, Store, Verification};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn later(d: Duration) -> Timestamp {
    Timestamp(Timestamp::now().0 + d.as_nanos() as u64)
}

fn enrolled(dir: &std::path::Path) -> lfr_watchlist::enrol::Enrolment {
    std::fs::copy(sample_photo("faces/obama.jpg"), dir.join("a.jpg")).unwrap();
    std::fs::copy(sample_photo("faces/biden.jpg"), dir.join("b.jpg")).unwrap();
    std::fs::write(
        dir.join("manifest.toml"),
        "[[entry]]\nreference = \"CUST-A\"\ncategory = \"wanted\"\nimage = \"a.jpg\"\n\
         [[entry]]\nreference = \"CUST-B\"\ncategory = \"blue\"\nimage = \"b.jpg\"\n",
    )
    .unwrap();
    Enroller::load(&ModelsConfig::default())
        .unwrap()
        .enrol(dir, "match-day")
        .unwrap()
}

/// A deployment starting in an hour, for six hours, over one camera.
fn match_day() -> Deployment {
    Deployment::create(NewDeployment {
        id: "match-day".into(),
        name: "Match day".into(),
        location: "North gate".into(),
        cameras: vec!["gate-1".into()],
        starts_at: later(HOUR),
        ends_at: later(HOUR * 6),
        purpose: "Locate wanted offenders".into(),
        default_threshold: 0.6,
        thresholds: Default::default(),
        setup_window_secs: 0,
        governance: Some(lfr_testkit::deployments::governance()),
        threshold_override: None,
    })
    .unwrap()
}

#[tokio::test]
async fn a_deployment_goes_live_only_through_its_gates_and_its_wipe_leaves_nothing() {
    // The store unencrypted, so that the search for the image's bytes can find them before the
    // wipe: what is shown is the wipe's secure erasure, apart from the store's encryption.
    let mut nats = NatsServer::start_with(Options {
        encrypt_store: false,
        ..Options::default()
    })
    .await;
    let js = nats.admin().await;
    let store = Store::open(&js).await.unwrap();
    let photos = tempfile::tempdir().unwrap();
    let enrolment = enrolled(photos.path());
    assert_eq!(enrolment.list.entries.len(), 2, "{:?}", enrolment.refused);

    let deployment = match_day();
    store.create(&deployment).await.unwrap();
    assert!(store.create(&deployment).await.is_err(), "ids are unique");

    let images: Vec<(String, Vec<u8>)> = ["a.jpg", "b.jpg"]
        .iter()
        .map(|f| {
            let bytes = std::fs::read(photos.path().join(f)).unwrap();
            (lfr_watchlist::list::sha256_hex(&bytes), bytes)
        })
        .collect();
    let attached = store.put_watchlist(&enrolment.list, &images).await.unwrap();
    store
        .update("match-day", |d| d.attach(attached.clone()))
        .await
        .unwrap();

    // Not authorised, not reviewed: refused, with the reason.
    let err = store
        .update("match-day", |d| d.activate(Timestamp::now()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not authorised"), "{err}");
    store
        .update("match-day", |d| {
            d.authorise(
                "supt-17",
                lfr_watchlist::deployment::Rank::Superintendent,
                Timestamp::now(),
            )
        })
        .await
        .unwrap();
    let err = store
        .update("match-day", |d| d.activate(Timestamp::now()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not been reviewed"), "{err}");
    let wrong = store
        .update("match-day", |d| {
            d.review("insp-4", "0000", Timestamp::now())
        })
        .await;
    assert!(
        wrong.is_err(),
        "a review must name the attached list's digest"
    );
    store
        .update("match-day", |d| {
            d.review("insp-4", &attached.digest, Timestamp::now())
        })
        .await
        .unwrap();
    let live = store
        .update("match-day", |d| d.activate(Timestamp::now()))
        .await
        .unwrap();
    assert_eq!(live.state, State::Active);

    // What the matchers load must be what was authorised.
    let loaded = store.watchlist("match-day").await.unwrap().unwrap();
    assert_eq!(loaded.digest(), attached.digest);
    assert!(matches!(
        store.verification(&live).await.unwrap(),
        Verification::Unverified(_)
    ));
    let report = |replica: &str, digest: &str| LoadReport {
        replica: replica.into(),
        digest: digest.into(),
        entries: 2,
        at: Timestamp::now(),
        probes_compared: 0,
    };
    store
        .report_load("match-day", &report("m-1", &attached.digest))
        .await
        .unwrap();
    store
        .report_load("match-day", &report("m-2", &attached.digest))
        .await
        .unwrap();
    assert_eq!(
        store.verification(&live).await.unwrap(),
        Verification::Verified { replicas: 2 }
    );
    store
        .report_load("match-day", &report("m-3", "tampered"))
        .await
        .unwrap();
    match store.verification(&live).await.unwrap() {
        Verification::Unverified(why) => assert!(why.contains("m-3"), "{why}"),
        v => panic!("a tampered replica must unverify the deployment: {v:?}"),
    }

    // The bytes really are in the store before the wipe (so the search below can fail).
    let image_marker = images[0].1[images[0].1.len() / 2..][..64].to_vec();
    let template_marker: Vec<u8> = loaded.entries[0].template[..16]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    nats.server.stop().await;
    assert!(!files_containing(nats.store_dir(), &image_marker).is_empty());
    assert!(!files_containing(nats.store_dir(), &template_marker).is_empty());
    nats.restart().await;
    // The load reports' bucket lives in memory: the topology keeper declares it again.
    nats.declare().await;

    let js = nats.admin().await;
    let store = Store::open(&js).await.unwrap();
    let ended = store
        .update("match-day", |d| d.end(Timestamp::now()))
        .await
        .unwrap();
    assert_eq!(ended.state, State::Ended);
    let wiped = store.wipe("match-day").await.unwrap();
    assert_eq!(wiped.messages_erased, 3, "two images and the list");
    assert_eq!(wiped.list_digest.as_deref(), Some(attached.digest.as_str()));
    assert_eq!(wiped.image_sha256s.len(), 2);
    assert!(store.watchlist("match-day").await.unwrap().is_none());
    assert!(store
        .image("match-day", &images[0].0)
        .await
        .unwrap()
        .is_none());
    let err = store
        .update("match-day", |d| d.activate(Timestamp::now()))
        .await
        .unwrap_err();
    assert!(
        err.downcast_ref::<GateError>().is_some() || err.to_string().contains("Ended"),
        "{err}"
    );

    nats.server.stop().await;
    assert!(
        files_containing(nats.store_dir(), &image_marker).is_empty(),
        "image bytes survived the wipe"
    );
    assert!(
        files_containing(nats.store_dir(), &template_marker).is_empty(),
        "template bytes survived the wipe"
    );
}

/// Custody images and templates at rest: with the store encrypted (as lfr up, the compose stack
/// and the chart run it), a known byte sequence of an enrolled photo and of its template is in no
/// file of the store, while the list reads back whole.
#[tokio::test]
async fn with_the_store_encrypted_no_custody_image_is_in_its_files() {
    let mut nats = NatsServer::start().await;
    let js = nats.admin().await;
    let store = Store::open(&js).await.unwrap();
    let photos = tempfile::tempdir().unwrap();
    let enrolment = enrolled(photos.path());
    let deployment = match_day();
    store.create(&deployment).await.unwrap();
    let image = std::fs::read(photos.path().join("a.jpg")).unwrap();
    let images = vec![(lfr_watchlist::list::sha256_hex(&image), image.clone())];
    let attached = store.put_watchlist(&enrolment.list, &images).await.unwrap();
    store
        .update("match-day", |d| d.attach(attached.clone()))
        .await
        .unwrap();
    let loaded = store.watchlist("match-day").await.unwrap().unwrap();
    assert_eq!(
        loaded.digest(),
        attached.digest,
        "the list reads back whole"
    );

    let image_marker = image[image.len() / 2..][..64].to_vec();
    let template_marker: Vec<u8> = loaded.entries[0].template[..16]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let reference = b"CUST-A".to_vec();
    // Stopped cleanly, so everything the server holds has been written to its files.
    nats.server.stop().await;
    let stored: u64 = lfr_testkit::files_under(nats.store_dir())
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(
        stored > image.len() as u64,
        "the store holds the list ({stored} bytes)"
    );
    for (what, marker) in [
        ("custody image", &image_marker),
        ("template", &template_marker),
        ("watch-list reference", &reference),
    ] {
        assert!(
            files_containing(nats.store_dir(), marker).is_empty(),
            "{what} bytes in clear in the store's files"
        );
    }
}
