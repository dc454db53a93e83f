//! A live, verified deployment for tests of the stages behind gated capture.
//!
//! Ingest captures, and detect and embed process, only the cameras a live deployment covers
//! with a verified watch list. Tests of those stages that do not run a matcher use
//! [`NatsServer::cover`]: it writes what production would hold at that moment, an active
//! deployment record (as the administrator) and a matcher's load report of exactly the attached
//! list (as the match identity), renewing the report (it expires) until the [`Covered`] guard is
//! dropped. The record is the lifecycle's own JSON shape; lfr-watchlist's tests check that it
//! reads as covering.

use crate::{Identity, NatsServer};
use lfr_schemas::streams::buckets;
use lfr_schemas::Timestamp;
use std::time::Duration;

/// The digest the test deployment's list is attached (and reported loaded) with.
const DIGEST: &str = "testkit-list";
const ENTRIES: usize = 1;

/// Keeps the test deployment's load report fresh while alive.
pub struct Covered {
    pub deployment: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Drop for Covered {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

/// One deployment's schedule, for [`NatsServer::cover_window`].
#[derive(Debug, Clone)]
pub struct Window {
    pub deployment: String,
    pub cameras: Vec<String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub setup_window_secs: u64,
}

impl NatsServer {
    /// `cameras` covered from now for an hour, by deployment `testkit-live`.
    pub async fn cover(&self, cameras: &[&str]) -> Covered {
        let now = Timestamp::now();
        self.cover_window(Window {
            deployment: "testkit-live".into(),
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
            starts_at: Timestamp(now.0.saturating_sub(60_000_000_000)),
            ends_at: Timestamp(now.0 + 3_600_000_000_000),
            setup_window_secs: 0,
        })
        .await
    }

    /// An active deployment over `window`, its list verified by a stand-in matcher.
    pub async fn cover_window(&self, window: Window) -> Covered {
        let record = record(&window, "Active", None);
        let admin = self.admin().await;
        let deployments = admin.get_key_value(buckets::DEPLOYMENTS).await.unwrap();
        deployments
            .put(&window.deployment, record.to_string().into())
            .await
            .unwrap();
        let loads = self
            .jetstream(Identity::Match)
            .await
            .get_key_value(buckets::LOADS)
            .await
            .unwrap();
        let key = format!("{}.testkit-matcher", window.deployment);
        let report = serde_json::json!({
            "replica": "testkit-matcher", "digest": DIGEST, "entries": ENTRIES,
            "at": Timestamp::now().0,
        })
        .to_string();
        loads.put(&key, report.clone().into()).await.unwrap();
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = loads.put(&key, report.clone().into()).await;
            }
        });
        Covered {
            deployment: window.deployment,
            renew,
        }
    }

    /// End a deployment made by [`NatsServer::cover_window`] now, as `lfr deployment end` does.
    pub async fn end_cover(&self, window: &Window) {
        let record = record(window, "Ended", Some(Timestamp::now()));
        self.admin()
            .await
            .get_key_value(buckets::DEPLOYMENTS)
            .await
            .unwrap()
            .put(&window.deployment, record.to_string().into())
            .await
            .unwrap();
    }
}

fn record(w: &Window, state: &str, ended_at: Option<Timestamp>) -> serde_json::Value {
    // Signed off a moment ago: a review stands for 48 hours, so the window is not paused.
    let at = Timestamp::now().0.saturating_sub(1_000_000_000);
    serde_json::json!({
        "id": w.deployment, "name": "Test deployment", "location": "test",
        "cameras": w.cameras, "starts_at": w.starts_at.0, "ends_at": w.ends_at.0,
        "purpose": "integration test", "state": state,
        "authorisation": {"officer": "supt-test", "rank": "superintendent", "digest": DIGEST,
                          "at": at},
        "watchlist": {"digest": DIGEST, "entries": ENTRIES, "subjects": 1, "model": "test",
                      "attached_at": at},
        "review": {"reviewer": "insp-test", "at": at, "digest": DIGEST},
        "thresholds": {}, "default_threshold": 0.6,
        "setup_window_secs": w.setup_window_secs, "ended_at": ended_at.map(|t| t.0),
    })
}
