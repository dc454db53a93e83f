//! Shared set-up for the matcher's tests: a deployment enrolled from real photos with the real
//! models, taken through its gates to active, and a match service pointed at a test server.

#![allow(dead_code)]

use lfr_schemas::Timestamp;
use lfr_testkit::sample_photo;
use lfr_vault::MasterKey;
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::deployment::{Deployment, NewDeployment};
use lfr_watchlist::enrol::Enroller;
use lfr_watchlist::list::{sha256_hex, WatchList};
use lfr_watchlist::store::Store;
use std::time::Duration;

/// Enrol `entries` (`(sample photo, reference, category)`) for `id`, then create, authorise,
/// review and activate a deployment watching `cameras`, live from a minute ago for an hour.
pub async fn active_deployment(
    store: &Store,
    id: &str,
    cameras: &[&str],
    entries: &[(&str, &str, &str)],
) -> WatchList {
    active_deployment_with(store, id, cameras, entries, &[]).await
}

/// [`active_deployment`] with per-category thresholds (`("wanted", 0.95)`) besides the default 0.6.
pub async fn active_deployment_with(
    store: &Store,
    id: &str,
    cameras: &[&str],
    entries: &[(&str, &str, &str)],
    thresholds: &[(&str, f32)],
) -> WatchList {
    let now = Timestamp::now();
    let schedule = Schedule {
        starts_at: Timestamp(now.0 - 60_000_000_000),
        ends_at: Timestamp(now.0 + 3_600_000_000_000),
        setup_window_secs: 0,
    };
    scheduled_deployment(store, id, cameras, entries, thresholds, schedule).await
}

/// When a test deployment is live, and its set-up windows.
pub struct Schedule {
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub setup_window_secs: u64,
}

/// [`active_deployment_with`] on a chosen schedule.
pub async fn scheduled_deployment(
    store: &Store,
    id: &str,
    cameras: &[&str],
    entries: &[(&str, &str, &str)],
    thresholds: &[(&str, f32)],
    schedule: Schedule,
) -> WatchList {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = String::new();
    let mut images = Vec::new();
    for (i, (photo, reference, category)) in entries.iter().enumerate() {
        let name = format!("{i}.jpg");
        let bytes = std::fs::read(sample_photo(photo)).unwrap();
        std::fs::write(dir.path().join(&name), &bytes).unwrap();
        images.push((sha256_hex(&bytes), bytes));
        manifest.push_str(&format!(
            "[[entry]]\nreference = \"{reference}\"\ncategory = \"{category}\"\nimage = \"{name}\"\n"
        ));
    }
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    let enrolment = Enroller::load(&ModelsConfig::default())
        .unwrap()
        .enrol(dir.path(), id)
        .unwrap();
    assert_eq!(
        enrolment.list.entries.len(),
        entries.len(),
        "{:?}",
        enrolment.refused
    );
    let now = Timestamp::now();
    let deployment = Deployment::create(NewDeployment {
        id: id.into(),
        name: "Test".into(),
        location: "North gate".into(),
        cameras: cameras.iter().map(|c| c.to_string()).collect(),
        starts_at: schedule.starts_at,
        ends_at: schedule.ends_at,
        purpose: "Locate wanted offenders".into(),
        default_threshold: 0.6,
        thresholds: lfr_watchlist::deployment::category_thresholds(
            thresholds.iter().map(|(c, t)| (c.to_string(), *t)),
        )
        .unwrap(),
        setup_window_secs: schedule.setup_window_secs,
        governance: Some(lfr_testkit::deployments::governance()),
        threshold_override: None,
    })
    .unwrap();
    store.create(&deployment).await.unwrap();
    let attached = store.put_watchlist(&enrolment.list, &images).await.unwrap();
    let digest = attached.digest.clone();
    store
        .update(id, |d| {
            d.attach(attached)?;
            d.authorise(
                "supt-17",
                lfr_watchlist::deployment::Rank::Superintendent,
                now,
            )?;
            d.review("insp-4", &digest, now)?;
            d.activate(now)
        })
        .await
        .unwrap();
    enrolment.list
}

/// The master key the tests' matchers seal with (and the tests open alerts with): fixed random
/// bytes (a repeated byte would be refused as weak).
pub fn master_key() -> MasterKey {
    MasterKey::from_base64("zUJpfMxESfpZRU/eQs/wpxfmqFIdm4BVCMmRo/RAkoE=").unwrap()
}

/// A match service on `nats_url`, reading the store every 200 ms, with a corroboration rule fitted
/// to short test recordings, sealing under [`master_key`].
pub fn config(nats: &lfr_testkit::NatsServer) -> lfr_match::Config {
    let mut c = lfr_match::Config {
        master_key: Some(master_key()),
        ..Default::default()
    };
    c.common.nats = nats.nats_config(lfr_testkit::Identity::Match);
    c.matcher.http_addr = "127.0.0.1:0".parse().unwrap();
    c.matcher.replica = Some("test-replica".into());
    c.matcher.refresh = Duration::from_millis(200);
    c.matcher.corroboration.track_gap = Duration::from_millis(500);
    c.matcher.corroboration.realert_after = Duration::from_secs(1);
    c
}
