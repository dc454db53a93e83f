//! The matcher obeys the DPIA's gates: it compares nothing with a list that is not verified (a
//! replica holding another list, or a stored list that differs from the authorised one), refuses
//! probes of another model, survives malformed messages, and forgets a list the moment its
//! deployment ends. In a set-up window before the start, only the blue watch list is matched.
//!
//! Probes here are the enrolled templates themselves (made by the real model from real photos),
//! published straight to EMBEDDINGS, so each case is decided by the gates and not by the camera.

mod support;

use async_nats::jetstream;
use lfr_common::Shutdown;
use lfr_schemas::{
    subjects, BoundingBox, Embedding, FaceQuality, FaceRef, FrameRef, Message, Timestamp,
};
use lfr_testkit::{eventually, metric, scrape, stream_messages, NatsServer};
use lfr_watchlist::store::{LoadReport, Store, Verification};
use std::net::SocketAddr;
use std::time::Duration;

fn probe(camera: &str, seq: u64, model: &str, vector: &[f32]) -> Embedding {
    let at = Timestamp(Timestamp::now().0 + seq * 200_000_000);
    Embedding {
        face: FaceRef {
            frame: FrameRef {
                camera: camera.into(),
                epoch: Timestamp(1),
                seq,
                captured_at: at,
            },
            index: 0,
        },
        embedded_at: at,
        model: model.into(),
        vector: vector.to_vec(),
        bbox: BoundingBox {
            x: 300.0,
            y: 100.0,
            width: 120.0,
            height: 150.0,
        },
        quality: FaceQuality {
            score: 0.99,
            sharpness: 300.0,
            yaw_deg: 0.0,
            eye_distance_px: 50.0,
        },
        probe_jpeg: vec![0xff, 0xd8, 1, 2, 3].into(),
        context: lfr_schemas::Context::Crop(vec![0xff, 0xd8, 4, 5, 6, 7].into()),
    }
}

/// A unit vector at a chosen angle from `t`: `t` plus `weight` times a unit vector orthogonal to it.
fn near(t: &[f32], weight: f32) -> Vec<f32> {
    let mut other: Vec<f32> = (0..t.len())
        .map(|i| ((i * 7919) % 13) as f32 - 6.0)
        .collect();
    let along: f32 = other.iter().zip(t).map(|(a, b)| a * b).sum();
    other.iter_mut().zip(t).for_each(|(o, x)| *o -= along * x);
    let norm = other.iter().map(|v| v * v).sum::<f32>().sqrt();
    let v: Vec<f32> = t
        .iter()
        .zip(&other)
        .map(|(x, o)| x + weight * o / norm)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// A person standing in front of `camera` for three frames.
async fn walk_past(js: &jetstream::Context, camera: &str, first: u64, model: &str, v: &[f32]) {
    for seq in first..first + 3 {
        js.publish(
            subjects::embeddings(camera),
            probe(camera, seq, model, v).encode().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

async fn counter(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&scrape(addr).await, name, labels).unwrap_or(0.0)
}

async fn until(addr: SocketAddr, name: &str, labels: &[(&str, &str)], value: f64) {
    let reached = eventually(Duration::from_secs(15), || async {
        (counter(addr, name, labels).await == value).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "{name}{labels:?} never reached {value}: {}",
        counter(addr, name, labels).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_alert_from_an_unverified_list_and_none_after_the_end() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    // Probes arrive as the embed stage publishes them, under its identity.
    let embed = nats.jetstream(lfr_testkit::Identity::Embed).await;
    let store = Store::open(&js).await.unwrap();
    let obama = [("faces/obama.jpg", "CUST-0001", "wanted")];
    let list = support::active_deployment(&store, "gate-day", &["gate-1"], &obama).await;
    let template = list.entries[0].template.clone();
    let tampered_list = support::active_deployment(&store, "tamper-day", &["gate-2"], &obama).await;
    support::active_deployment_with(
        &store,
        "strict-day",
        &["gate-3"],
        &obama,
        &[("wanted", 0.95)],
    )
    .await;

    // Another replica says it holds a different list.
    store
        .report_load(
            "gate-day",
            &LoadReport {
                replica: "other-replica".into(),
                digest: "0".repeat(64),
                entries: 1,
                at: Timestamp::now(),
                probes_compared: 0,
            },
        )
        .await
        .unwrap();
    // After review, someone alters a template in the stored list of the second deployment.
    let mut altered = tampered_list.clone();
    altered.entries[0].template[0] = f32::from_bits(altered.entries[0].template[0].to_bits() ^ 1);
    store.put_watchlist(&altered, &[]).await.unwrap();

    let shutdown = Shutdown::new();
    let matcher = lfr_match::start(support::config(&nats), shutdown.clone())
        .await
        .unwrap();
    let at = matcher.metrics_addr;
    until(
        at,
        "lfr_match_watchlist_entries",
        &[("deployment", "tamper-day")],
        1.0,
    )
    .await;
    until(
        at,
        "lfr_match_watchlist_entries",
        &[("deployment", "gate-day")],
        1.0,
    )
    .await;

    walk_past(&embed, "gate-1", 0, &list.model, &template).await;
    walk_past(&embed, "gate-2", 0, &list.model, &template).await;
    until(
        at,
        "lfr_match_probes_total",
        &[("outcome", "unverified")],
        6.0,
    )
    .await;
    assert_eq!(
        counter(at, "lfr_match_alerts_total", &[("category", "wanted")]).await,
        0.0
    );
    assert_eq!(
        counter(
            at,
            "lfr_match_watchlist_verified",
            &[("deployment", "gate-day")]
        )
        .await,
        0.0
    );
    let tamper = store.get("tamper-day").await.unwrap().unwrap();
    match store.verification(&tamper).await.unwrap() {
        Verification::Unverified(why) => assert!(why.contains("test-replica"), "{why}"),
        other => panic!("a replica holding an altered list verified: {other:?}"),
    }

    // The other replica now holds the authorised list (it withdrew): the list verifies.
    store
        .withdraw_load("gate-day", "other-replica")
        .await
        .unwrap();
    until(
        at,
        "lfr_match_watchlist_verified",
        &[("deployment", "gate-day")],
        1.0,
    )
    .await;
    walk_past(&embed, "gate-1", 10, &list.model, &template).await;
    until(at, "lfr_match_alerts_total", &[("category", "wanted")], 1.0).await;
    // The three probes compared with the verified list (not the unverified ones before) are in
    // this replica's load report: the denominator of the live false-alert rate.
    let counted = eventually(Duration::from_secs(15), || async {
        let reports = store.load_reports("gate-day").await.ok()?;
        reports
            .iter()
            .any(|r| r.replica == "test-replica" && r.probes_compared == 3)
            .then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "{:?}",
        store.load_reports("gate-day").await
    );
    assert_eq!(
        counter(
            at,
            "lfr_match_watchlist_verified",
            &[("deployment", "tamper-day")]
        )
        .await,
        0.0
    );

    // A category's own threshold: a probe at similarity 0.89 alerts at the default 0.6 (a second
    // pass on gate-1, after `realert_after`) but does not match where `wanted` needs 0.95.
    let near = near(&template, 0.5);
    let similarity: f32 = near.iter().zip(&template).map(|(a, b)| a * b).sum();
    assert!((0.85..0.93).contains(&similarity), "{similarity}");
    until(
        at,
        "lfr_match_watchlist_verified",
        &[("deployment", "strict-day")],
        1.0,
    )
    .await;
    let matched = counter(at, "lfr_match_probes_total", &[("outcome", "matched")]).await;
    walk_past(&embed, "gate-1", 40, &list.model, &near).await;
    until(
        at,
        "lfr_match_probes_total",
        &[("outcome", "matched")],
        matched + 3.0,
    )
    .await;
    until(at, "lfr_match_alerts_total", &[("category", "wanted")], 2.0).await;
    walk_past(&embed, "gate-3", 0, &list.model, &near).await;
    until(
        at,
        "lfr_match_probes_total",
        &[("outcome", "no_match")],
        3.0,
    )
    .await;
    assert_eq!(
        counter(at, "lfr_match_alerts_total", &[("category", "wanted")]).await,
        2.0
    );

    // Templates of another model, and bytes that are not a template at all.
    walk_past(&embed, "gate-1", 20, "dlib-resnet", &template).await;
    until(
        at,
        "lfr_match_probes_total",
        &[("outcome", "model_mismatch")],
        3.0,
    )
    .await;
    embed
        .publish(subjects::embeddings("gate-1"), "not a template".into())
        .await
        .unwrap()
        .await
        .unwrap();
    until(
        at,
        "lfr_stage_rejected_total",
        &[("reason", "not_lfr")],
        1.0,
    )
    .await;

    // Ending the deployment wipes the list from the store and from the matcher's memory.
    store
        .update("gate-day", |d| d.end(Timestamp::now()))
        .await
        .unwrap();
    store.wipe("gate-day").await.unwrap();
    until(
        at,
        "lfr_match_watchlist_loads_total",
        &[("outcome", "dropped")],
        1.0,
    )
    .await;
    let gone = metric(
        &scrape(at).await,
        "lfr_match_watchlist_entries",
        &[("deployment", "gate-day")],
    );
    assert_eq!(gone, None, "no gauge for a wiped list");
    assert!(store.load_reports("gate-day").await.unwrap().is_empty());
    walk_past(&embed, "gate-1", 30, &list.model, &template).await;
    until(
        at,
        "lfr_match_probes_total",
        &[("outcome", "no_watchlist")],
        3.0,
    )
    .await;
    assert_eq!(
        counter(at, "lfr_match_alerts_total", &[("category", "wanted")]).await,
        2.0
    );
    assert_eq!(
        stream_messages(&js, lfr_schemas::streams::EMBEDDINGS).await,
        0
    );

    shutdown.trigger();
    matcher.done.await.unwrap();
}

/// The set-up window before the start: staff volunteers of the blue list are matched (their
/// alerts go to the technical team only), the rest of the list is not compared at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_set_up_window_only_the_blue_list_is_matched() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let embed = nats.jetstream(lfr_testkit::Identity::Embed).await;
    let store = Store::open(&js).await.unwrap();
    let now = Timestamp::now();
    const MINUTE: u64 = 60_000_000_000;
    let list = support::scheduled_deployment(
        &store,
        "walk-day",
        &["gate-1"],
        &[
            ("faces/obama.jpg", "CUST-0001", "wanted"),
            ("faces/biden.jpg", "STAFF-07", "blue"),
        ],
        &[],
        support::Schedule {
            starts_at: Timestamp(now.0 + 10 * MINUTE),
            ends_at: Timestamp(now.0 + 70 * MINUTE),
            setup_window_secs: 20 * 60,
        },
    )
    .await;
    let template = |reference: &str| {
        list.entries
            .iter()
            .find(|e| e.reference == reference)
            .unwrap()
            .template
            .clone()
    };
    let shutdown = Shutdown::new();
    let matcher = lfr_match::start(support::config(&nats), shutdown.clone())
        .await
        .unwrap();
    let at = matcher.metrics_addr;
    until(
        at,
        "lfr_match_watchlist_verified",
        &[("deployment", "walk-day")],
        1.0,
    )
    .await;

    walk_past(&embed, "gate-1", 0, &list.model, &template("CUST-0001")).await;
    walk_past(&embed, "gate-1", 10, &list.model, &template("STAFF-07")).await;
    until(at, "lfr_match_alerts_total", &[("category", "blue")], 1.0).await;
    until(
        at,
        "lfr_match_probes_total",
        &[("outcome", "no_match")],
        3.0,
    )
    .await;
    assert_eq!(
        counter(at, "lfr_match_alerts_total", &[("category", "wanted")]).await,
        0.0,
        "a wanted person matched before the start"
    );
    let candidates = lfr_testkit::records::<lfr_schemas::CandidateAlert>(
        &js,
        lfr_schemas::streams::ALERTS,
        "lfr.alerts.walk-day.candidate",
    )
    .await;
    assert!(
        candidates.is_empty(),
        "an alert for operators and officers in set-up"
    );

    shutdown.trigger();
    matcher.done.await.unwrap();
}

/// A review stands for 48 hours, also while the deployment runs: a running deployment whose
/// review is moved 48 hours into the past (the record's clock travelled, as an administrator can
/// write it) stops matching at once, and matches again once the same list is reviewed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_deployment_stops_matching_48_hours_after_its_review() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let embed = nats.jetstream(lfr_testkit::Identity::Embed).await;
    let store = Store::open(&js).await.unwrap();
    let obama = [("faces/obama.jpg", "CUST-0001", "wanted")];
    let list = support::active_deployment(&store, "long-day", &["gate-1"], &obama).await;
    let template = list.entries[0].template.clone();
    let shutdown = Shutdown::new();
    let matcher = lfr_match::start(support::config(&nats), shutdown.clone())
        .await
        .unwrap();
    let at = matcher.metrics_addr;
    let verified = [("deployment", "long-day")];
    let wanted = [("category", "wanted")];
    let not_compared = [("outcome", "no_watchlist")];
    until(at, "lfr_match_watchlist_verified", &verified, 1.0).await;
    walk_past(&embed, "gate-1", 0, &list.model, &template).await;
    until(at, "lfr_match_alerts_total", &wanted, 1.0).await;

    // The clock travels: the review was signed off 48 hours and a second ago.
    let validity = lfr_watchlist::deployment::REVIEW_VALIDITY.as_nanos() as u64;
    let lapsed = Timestamp(Timestamp::now().0 - validity - 1_000_000_000);
    let record = store
        .update("long-day", |d| {
            d.review.as_mut().expect("reviewed").at = lapsed;
            Ok(())
        })
        .await
        .unwrap();
    assert!(record.paused(Timestamp::now()).is_some());
    // The matcher sees the changed record and lets the paused deployment's list go.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = counter(at, "lfr_match_probes_total", &not_compared).await;
    walk_past(&embed, "gate-1", 10, &list.model, &template).await;
    until(at, "lfr_match_probes_total", &not_compared, before + 3.0).await;
    assert_eq!(
        counter(at, "lfr_match_alerts_total", &wanted).await,
        1.0,
        "a deployment whose review lapsed raised an alert"
    );

    // Reviewed again (the same list): matching resumes.
    let digest = list.digest();
    store
        .update("long-day", |d| {
            d.review("insp-9", &digest, Timestamp::now())
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    until(at, "lfr_match_watchlist_verified", &verified, 1.0).await;
    walk_past(&embed, "gate-1", 20, &list.model, &template).await;
    until(at, "lfr_match_alerts_total", &wanted, 2.0).await;

    shutdown.trigger();
    matcher.done.await.unwrap();
}
