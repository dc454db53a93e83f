//! The demonstration deployment of `lfr up`: when the sample camera runs, a deployment over it with
//! a two-entry watch list from the same sample photos (one "wanted", one blue-list volunteer), so
//! a fresh install shows the whole path from camera to candidate alert.
//!
//! It goes through every gate like any other deployment (create, enrol, authorise, review,
//! activate), each step audited under the actor `lfr-up-demo`, and it is ended, and its list
//! securely erased, when `lfr up` stops. A demo left live by a crash is ended at the next start.
//! It never runs against a real camera: `lfr up` makes it only for the sample camera.

use lfr_schemas::Timestamp;
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::deployment::{NewDeployment, State};
use lfr_watchlist::lifecycle::{Actor, Lifecycle};
use std::path::Path;

/// Ids of demonstration deployments start with this.
const PREFIX: &str = "demo-";

/// Photos of the sample folder put on the demo watch list: (file, reference, category).
const ENTRIES: [(&str, &str, &str); 2] = [
    ("obama.jpg", "DEMO-0001", "wanted"),
    ("biden.jpg", "DEMO-STAFF-01", "blue"),
];

fn actor() -> Actor {
    Actor::new("lfr-up-demo", "supervisor")
}

/// Who authorises and reviews it: not the enroller (duties are separated even here), a system
/// account of authorising rank, named so no one mistakes it for a person.
fn authoriser() -> Actor {
    Actor::new("lfr-up-demo-authoriser", "supervisor")
        .with_rank(Some(lfr_watchlist::deployment::Rank::Superintendent))
}

/// The governance record of a deployment that watches no real place.
fn governance() -> lfr_watchlist::deployment::Governance {
    let none = || "none: demonstration on the sample photos, no real camera".to_string();
    lfr_watchlist::deployment::Governance {
        gold: none(),
        silver: none(),
        bronze: none(),
        objectives: "demonstration on the sample photos, no real camera".into(),
        intelligence_case: none(),
        signage: none(),
    }
}

pub struct Demo {
    lifecycle: Lifecycle,
    pub id: String,
}

/// Create and activate the demo deployment over camera `camera`, watching for the people of
/// `sample` (the face-recognition sample photos).
pub async fn start(
    admin: &crate::connect::NatsArgs,
    sample: &Path,
    camera: &str,
) -> anyhow::Result<Demo> {
    for (file, _, _) in ENTRIES {
        anyhow::ensure!(
            sample.join(file).is_file(),
            "{} has no {file}",
            sample.display()
        );
    }
    let bus = admin.bus().await?;
    let lifecycle = Lifecycle::open(&bus.jetstream, ModelsConfig::default()).await?;
    end_leftovers(&lifecycle).await;

    let now = Timestamp::now();
    let id = format!("{PREFIX}{}", now.0 / 1_000_000_000);
    lifecycle
        .create(
            NewDeployment {
                id: id.clone(),
                name: "Demonstration".into(),
                location: "sample camera".into(),
                cameras: vec![camera.into()],
                starts_at: now,
                ends_at: Timestamp(now.0 + 24 * 3_600_000_000_000),
                purpose: "Demonstrate lfr on its sample photos; no real camera".into(),
                default_threshold: 0.6,
                thresholds: Default::default(),
                setup_window_secs: 0,
                governance: Some(governance()),
                threshold_override: Some(lfr_watchlist::deployment::ThresholdOverride {
                    calibrated: 0.0,
                    reason: "demonstration on the sample photos, no real camera".into(),
                    by: String::new(),
                }),
            },
            &actor(),
        )
        .await?;
    let folder = tempfile::tempdir()?;
    let mut manifest = String::new();
    for (file, reference, category) in ENTRIES {
        std::fs::copy(sample.join(file), folder.path().join(file))?;
        manifest.push_str(&format!(
            "[[entry]]\nreference = \"{reference}\"\ncategory = \"{category}\"\nimage = \"{file}\"\n"
        ));
    }
    std::fs::write(folder.path().join("manifest.toml"), manifest)?;
    let enrolled = lifecycle.enrol(&id, folder.path(), &actor()).await?;
    lifecycle.authorise(&id, &authoriser()).await?;
    lifecycle
        .review(&id, &authoriser(), &enrolled.attached.digest)
        .await?;
    lifecycle.activate(&id, &actor()).await?;
    tracing::info!(deployment = %id, entries = enrolled.attached.entries, "demonstration deployment active on the sample camera");
    Ok(Demo { lifecycle, id })
}

impl Demo {
    /// End the deployment and erase its list.
    pub async fn end(self) {
        match self.lifecycle.end(&self.id, &actor()).await {
            Ok(wiped) => {
                tracing::info!(deployment = %self.id, erased = wiped.messages_erased, "demonstration deployment ended")
            }
            Err(e) => {
                tracing::warn!(deployment = %self.id, error = %e, "demonstration deployment not ended")
            }
        }
    }
}

/// End demonstration deployments an earlier run could not (killed, crashed).
async fn end_leftovers(lifecycle: &Lifecycle) {
    let Ok(all) = lifecycle.list().await else {
        return;
    };
    for d in all {
        if d.id.starts_with(PREFIX) && d.state != State::Ended {
            if let Err(e) = lifecycle.end(&d.id, &actor()).await {
                tracing::warn!(deployment = %d.id, error = %e, "left-over demonstration deployment not ended");
            }
        }
    }
}
