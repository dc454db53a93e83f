//! The load test's own deployment: its cameras, and a watch list of the scene's identities.
//!
//! It passes every gate a real deployment does (create, enrol, authorise, review, activate), each
//! audited under the actor `lfr-loadtest`, and is ended, and its list erased, when the run ends.
//! The people are enrolled on the **blue** watch list (staff volunteers): on a shared system their
//! alerts never reach an operator's queue or an officer's device. The fault harness, which runs
//! on a bus of its own, puts the second person on the `wanted` list instead ([`Lists::Reviewed`]),
//! so that its alerts go through an operator's decision and an officer's outcome.

use crate::scene::{Samples, IDENTITIES};
use lfr_schemas::Timestamp;
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::deployment::NewDeployment;
use lfr_watchlist::lifecycle::{Actor, Lifecycle};

/// The deployment's similarity threshold, every category (the baseline uses the same).
pub const THRESHOLD: f32 = 0.6;

fn actor() -> Actor {
    Actor::new("lfr-loadtest", "supervisor")
}

/// Who authorises and reviews it: not the enroller (duties are separated even here), a system
/// account of authorising rank, named so no one mistakes it for a person.
fn authoriser() -> Actor {
    Actor::new("lfr-loadtest-authoriser", "supervisor")
        .with_rank(Some(lfr_watchlist::deployment::Rank::Superintendent))
}

/// The governance record of a deployment that watches no real place.
fn governance() -> lfr_watchlist::deployment::Governance {
    let none = || {
        "none: load test on synthetic frames, no real camera: the identities are enrolled from sample photos".to_string()
    };
    lfr_watchlist::deployment::Governance {
        gold: none(),
        silver: none(),
        bronze: none(),
        objectives: "load test on synthetic frames, no real camera: the identities are enrolled from sample photos".into(),
        intelligence_case: none(),
        signage: none(),
    }
}

/// Camera id `i` of the load test (the ids its identity may publish frames for).
pub fn camera(i: usize) -> String {
    lfr_schemas::permissions::loadtest_camera(i)
}

pub struct LoadDeployment {
    lifecycle: Lifecycle,
    pub id: String,
}

/// Which watch lists the scene's people are enrolled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    /// Everyone on the blue list: nothing reaches an operator (the load test).
    Blue,
    /// The first person on the blue list, the second on `wanted`: their alerts are reviewed.
    Reviewed,
}

impl Lists {
    /// The watch-list category of [`IDENTITIES`]`[i]`.
    fn category(self, i: usize) -> &'static str {
        match (self, i) {
            (Lists::Reviewed, 1) => "wanted",
            _ => "blue",
        }
    }
}

/// Create and activate the deployment over cameras `0..cameras`, everyone on the blue list.
pub async fn start(
    js: &async_nats::jetstream::Context,
    samples: &Samples,
    cameras: usize,
    hours: u64,
) -> anyhow::Result<LoadDeployment> {
    start_with(js, samples, cameras, hours, Lists::Blue).await
}

/// Create and activate the deployment over cameras `0..cameras`, its people on `lists`.
pub async fn start_with(
    js: &async_nats::jetstream::Context,
    samples: &Samples,
    cameras: usize,
    hours: u64,
    lists: Lists,
) -> anyhow::Result<LoadDeployment> {
    let lifecycle = Lifecycle::open(js, ModelsConfig::default()).await?;
    let now = Timestamp::now();
    let id = format!("loadtest-{}", now.0 / 1_000_000_000);
    lifecycle
        .create(
            NewDeployment {
                id: id.clone(),
                name: "Load test".into(),
                location: "simulated cameras".into(),
                cameras: (0..cameras).map(camera).collect(),
                starts_at: now,
                ends_at: Timestamp(now.0 + hours * 3_600_000_000_000),
                purpose: "Measure throughput and latency on synthetic frames; no real camera"
                    .into(),
                default_threshold: THRESHOLD,
                thresholds: Default::default(),
                setup_window_secs: 0,
                governance: Some(governance()),
                threshold_override: Some(lfr_watchlist::deployment::ThresholdOverride {
                    calibrated: 0.0,
                    reason: "load test on synthetic frames, no real camera: the identities are enrolled from sample photos".into(),
                    by: String::new(),
                }),
            },
            &actor(),
        )
        .await?;
    let folder = enrolment_folder_on(samples, lists)?;
    let deployment = LoadDeployment { lifecycle, id };
    let activated = async {
        let enrolled = deployment
            .lifecycle
            .enrol(&deployment.id, folder.path(), &actor())
            .await?;
        anyhow::ensure!(
            enrolled.attached.entries == IDENTITIES.len(),
            "only {} of {} load-test identities enrolled",
            enrolled.attached.entries,
            IDENTITIES.len()
        );
        deployment
            .lifecycle
            .authorise(&deployment.id, &authoriser())
            .await?;
        deployment
            .lifecycle
            .review(&deployment.id, &authoriser(), &enrolled.attached.digest)
            .await?;
        deployment
            .lifecycle
            .activate(&deployment.id, &actor())
            .await?;
        anyhow::Ok(())
    };
    if let Err(e) = activated.await {
        deployment.end().await;
        return Err(e);
    }
    Ok(deployment)
}

/// A folder in the form `lfr deployment enrol` takes: the identities' enrolment photos and a
/// manifest putting them on the blue watch list.
pub fn enrolment_folder(samples: &Samples) -> anyhow::Result<tempfile::TempDir> {
    enrolment_folder_on(samples, Lists::Blue)
}

fn enrolment_folder_on(samples: &Samples, lists: Lists) -> anyhow::Result<tempfile::TempDir> {
    let folder = tempfile::tempdir()?;
    let mut manifest = String::new();
    for (i, identity) in IDENTITIES.iter().enumerate() {
        std::fs::copy(
            samples.faces.join(identity.enrolled),
            folder.path().join(identity.enrolled),
        )
        .map_err(|e| anyhow::anyhow!("sample photo {}: {e}", identity.enrolled))?;
        manifest.push_str(&format!(
            "[[entry]]\nreference = \"{}\"\ncategory = \"{}\"\nimage = \"{}\"\n",
            identity.reference,
            lists.category(i),
            identity.enrolled
        ));
    }
    std::fs::write(folder.path().join("manifest.toml"), manifest)?;
    Ok(folder)
}

impl LoadDeployment {
    /// End the deployment and erase its list.
    pub async fn end(self) {
        if let Err(e) = self.lifecycle.end(&self.id, &actor()).await {
            tracing::warn!(deployment = %self.id, error = %e, "load-test deployment not ended");
        }
    }
}
