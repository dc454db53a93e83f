//! Which cameras may be captured right now, and for what: the one answer that ingest (open the
//! camera or not), detect and embed (process a frame or face, or acknowledge it unread) and
//! dispatch (show officers an alert or not) all take from the same records.
//!
//! A camera is **covered** while some deployment that watches it is:
//! - active, with a watch list attached (a draft or an ended deployment covers nothing);
//! - inside its live window, or inside a declared set-up window before the start or after the
//!   end ([`Phase`]);
//! - **verified**: every matcher replica reports holding exactly the authorised list. Until a
//!   matcher has loaded and verified it, no face could be compared lawfully, so none is captured.
//!
//! [`Coverage`] is computed from the deployment records and the matchers' load reports (both
//! small KV buckets, no biometric data), and keeps each deployment's windows, so the answer for
//! "now" stays right between two reads: when a window closes, capture stops on the clock, even
//! if the bus is unreachable at that moment. [`watch`] keeps a [`Coverage`] up to date from the
//! buckets' change feeds (and a periodic re-read), and starts empty: until the records have been
//! read, nothing is covered.

use crate::deployment::{Deployment, Phase};
use crate::store::{verify, LoadReport, Verification, DEPLOYMENTS, LOADS};
use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use lfr_common::Shutdown;
use lfr_schemas::Timestamp;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;

/// How often the records are re-read when no change was announced (changes are seen at once).
pub const REFRESH: Duration = Duration::from_secs(10);

/// How often they are re-read while an active deployment awaits its matchers' load reports:
/// after NATS restarts those reports (a memory bucket) are gone, the buckets' change feeds may
/// stall, and every camera stays gated until the reports are back and read.
pub const AWAITING_REFRESH: Duration = Duration::from_secs(1);

/// Every deployment that may cover a camera now or later, as last read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    /// The active, verified deployments: their records say which cameras, and when.
    deployments: Vec<Deployment>,
    /// False until the records have been read once: nothing is covered, but a stage should wait
    /// for the first reading rather than refuse what arrives in its first milliseconds.
    read: bool,
    /// Some active deployment with a list is not verified (yet): its matchers' reports are
    /// awaited.
    awaiting: bool,
}

impl Coverage {
    /// From the deployment records and every load report, keyed `<deployment>.<replica>`.
    pub fn from_records(deployments: &[Deployment], reports: &[(String, LoadReport)]) -> Coverage {
        let active: Vec<&Deployment> = deployments
            .iter()
            .filter(|d| d.state == crate::deployment::State::Active && d.watchlist.is_some())
            .collect();
        let verified: Vec<Deployment> = active
            .iter()
            .filter(|d| {
                let prefix = format!("{}.", d.id);
                let own: Vec<LoadReport> = reports
                    .iter()
                    .filter(|(key, _)| key.starts_with(&prefix))
                    .map(|(_, r)| r.clone())
                    .collect();
                matches!(verify(d, &own), Verification::Verified { .. })
            })
            .map(|d| (*d).clone())
            .collect();
        Coverage {
            awaiting: verified.len() < active.len(),
            deployments: verified,
            read: true,
        }
    }

    /// What `camera` is for at `now`: live wins over set-up when two deployments overlap.
    pub fn phase(&self, camera: &str, now: Timestamp) -> Option<Phase> {
        self.deployments
            .iter()
            .filter(|d| d.cameras.iter().any(|c| c == camera))
            .filter_map(|d| d.phase(now))
            .max_by_key(|p| matches!(p, Phase::Live))
    }

    /// Whether `camera` may be captured (and its frames and faces processed) at `now`.
    pub fn covers(&self, camera: &str, now: Timestamp) -> bool {
        self.phase(camera, now).is_some()
    }

    /// The deployments in their live window at `now` (what officers may see alerts of).
    pub fn live_deployments(&self, now: Timestamp) -> BTreeSet<String> {
        self.deployments
            .iter()
            .filter(|d| d.phase(now) == Some(Phase::Live))
            .map(|d| d.id.clone())
            .collect()
    }

    /// Every camera covered at `now`.
    pub fn cameras(&self, now: Timestamp) -> BTreeSet<String> {
        self.deployments
            .iter()
            .filter(|d| d.phase(now).is_some())
            .flat_map(|d| d.cameras.iter().cloned())
            .collect()
    }
}

/// A live view of [`Coverage`], kept up to date by [`watch`]. Cheap to clone and to read, from
/// async code and from capture threads alike.
#[derive(Clone)]
pub struct CoverageView(watch::Receiver<Coverage>);

impl CoverageView {
    /// A view that never changes (for tests and tools).
    pub fn fixed(coverage: Coverage) -> CoverageView {
        let (tx, rx) = watch::channel(Coverage {
            read: true,
            ..coverage
        });
        // Keep the sender alive for as long as the process: the view must not read as closed.
        std::mem::forget(tx);
        CoverageView(rx)
    }

    pub fn covers(&self, camera: &str, now: Timestamp) -> bool {
        self.0.borrow().covers(camera, now)
    }

    pub fn phase(&self, camera: &str, now: Timestamp) -> Option<Phase> {
        self.0.borrow().phase(camera, now)
    }

    pub fn live_deployments(&self, now: Timestamp) -> BTreeSet<String> {
        self.0.borrow().live_deployments(now)
    }

    pub fn cameras(&self, now: Timestamp) -> BTreeSet<String> {
        self.0.borrow().cameras(now)
    }

    /// Wait until the records have been read once (at most `limit`; then go on, covering
    /// nothing until they are).
    pub async fn ready(&self, limit: Duration) {
        let mut rx = self.0.clone();
        let _ = tokio::time::timeout(limit, rx.wait_for(|c| c.read)).await;
    }
}

/// Read the records now, then again on every change to either bucket and every `refresh`, until
/// shutdown. The view starts empty (nothing covered) and a failed read keeps the last good one,
/// whose windows still close on time.
pub fn watch(js: jetstream::Context, refresh: Duration, shutdown: Shutdown) -> CoverageView {
    let (tx, rx) = watch::channel(Coverage::default());
    tokio::spawn(async move {
        let mut buckets = None;
        let mut changes: Option<(kv::Watch, kv::Watch)> = None;
        loop {
            if buckets.is_none() {
                buckets = open(&js).await.ok();
            }
            if let Some((deployments, loads)) = &buckets {
                if changes.is_none() {
                    changes = match (deployments.watch_all().await, loads.watch_all().await) {
                        (Ok(d), Ok(l)) => Some((d, l)),
                        _ => None,
                    };
                }
                match read(deployments, loads).await {
                    Ok(coverage) => {
                        tx.send_if_modified(|held| {
                            let changed = *held != coverage;
                            *held = coverage;
                            changed
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read deployments for coverage; keeping the last reading")
                    }
                }
            }
            let wait = if buckets.is_none() || tx.borrow().awaiting {
                AWAITING_REFRESH.min(refresh)
            } else {
                refresh
            };
            tokio::select! {
                _ = shutdown.requested() => return,
                _ = tokio::time::sleep(wait) => {}
                alive = next_change(&mut changes) => {
                    if !alive {
                        changes = None; // a watch ended (NATS restarted): open it again
                    }
                }
            }
        }
    });
    CoverageView(rx)
}

async fn open(js: &jetstream::Context) -> anyhow::Result<(kv::Store, kv::Store)> {
    Ok((
        js.get_key_value(DEPLOYMENTS).await?,
        js.get_key_value(LOADS).await?,
    ))
}

async fn read(deployments: &kv::Store, loads: &kv::Store) -> anyhow::Result<Coverage> {
    let mut records = Vec::new();
    let mut keys = deployments.keys().await?;
    while let Some(key) = keys.next().await {
        if let Some(bytes) = deployments.get(&key?).await? {
            match serde_json::from_slice::<Deployment>(&bytes) {
                Ok(d) => records.push(d),
                Err(e) => tracing::warn!(error = %e, "unreadable deployment record ignored"),
            }
        }
    }
    let mut reports = Vec::new();
    let mut keys = loads.keys().await?;
    while let Some(key) = keys.next().await {
        let key = key?;
        if let Some(bytes) = loads.get(&key).await? {
            if let Ok(report) = serde_json::from_slice::<LoadReport>(&bytes) {
                reports.push((key, report));
            }
        }
    }
    Ok(Coverage::from_records(&records, &reports))
}

/// The next change on either bucket; `false` when a watch ended. Without watches, never.
async fn next_change(changes: &mut Option<(kv::Watch, kv::Watch)>) -> bool {
    match changes {
        Some((deployments, loads)) => tokio::select! {
            d = deployments.next() => matches!(d, Some(Ok(_))),
            l = loads.next() => matches!(l, Some(Ok(_))),
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::{AttachedList, NewDeployment};

    const SEC: u64 = 1_000_000_000;

    fn at(secs: u64) -> Timestamp {
        Timestamp(1_800_000_000 * SEC + secs * SEC)
    }

    /// Active over camera `gate-1` from 1000 s to 2000 s, with a 100 s set-up window.
    fn active(id: &str) -> Deployment {
        let mut d = Deployment::create(NewDeployment {
            id: id.into(),
            name: "Match day".into(),
            location: "North gate".into(),
            cameras: vec!["gate-1".into()],
            starts_at: at(1000),
            ends_at: at(2000),
            purpose: "Locate wanted offenders".into(),
            default_threshold: 0.6,
            thresholds: Default::default(),
            setup_window_secs: 100,
            governance: Some(crate::deployment::Governance {
                gold: "ACC Gold".into(),
                silver: "Supt Silver".into(),
                bronze: "Insp Bronze".into(),
                objectives: "Locate wanted offenders".into(),
                intelligence_case: "INT/TEST/1".into(),
                signage: "Signs at every entrance".into(),
            }),
            threshold_override: None,
        })
        .unwrap();
        d.attach(AttachedList {
            digest: "abc".into(),
            entries: 2,
            subjects: 2,
            model: "m".into(),
            attached_at: at(0),
            enrolled_by: "sgt-1".into(),
        })
        .unwrap();
        d.authorise("supt-1", crate::deployment::Rank::Superintendent, at(0))
            .unwrap();
        d.review("insp-1", "abc", at(1)).unwrap();
        d.activate(at(2)).unwrap();
        d
    }

    fn report(id: &str, digest: &str) -> (String, LoadReport) {
        (
            format!("{id}.replica-1"),
            LoadReport {
                replica: "replica-1".into(),
                digest: digest.into(),
                entries: 2,
                at: at(3),
                probes_compared: 0,
            },
        )
    }

    #[test]
    fn a_verified_deployment_covers_its_cameras_in_its_windows_only() {
        let c = Coverage::from_records(&[active("d1")], &[report("d1", "abc")]);
        assert_eq!(c.phase("gate-1", at(899)), None);
        assert_eq!(c.phase("gate-1", at(900)), Some(Phase::SetUp));
        assert_eq!(c.phase("gate-1", at(1000)), Some(Phase::Live));
        assert_eq!(c.phase("gate-1", at(1999)), Some(Phase::Live));
        assert_eq!(c.phase("gate-1", at(2000)), Some(Phase::SetUp));
        assert_eq!(c.phase("gate-1", at(2100)), None);
        assert!(!c.covers("gate-2", at(1500)), "not its camera");
        assert_eq!(c.live_deployments(at(1500)).len(), 1);
        assert!(c.live_deployments(at(950)).is_empty(), "set-up is not live");
    }

    #[test]
    fn nothing_is_covered_without_a_verified_list() {
        let none = Coverage::from_records(&[active("d1")], &[]);
        assert!(!none.covers("gate-1", at(1500)), "no matcher has loaded it");
        let tampered = Coverage::from_records(&[active("d1")], &[report("d1", "xyz")]);
        assert!(
            !tampered.covers("gate-1", at(1500)),
            "the loaded list differs"
        );
        let other = Coverage::from_records(&[active("d1")], &[report("d10", "abc")]);
        assert!(
            !other.covers("gate-1", at(1500)),
            "another deployment's report"
        );
    }

    #[test]
    fn an_active_deployment_without_its_matchers_reports_is_awaited() {
        // After NATS restarts the reports are gone: re-read soon, not at the next period.
        assert!(Coverage::from_records(&[active("d1")], &[]).awaiting);
        assert!(Coverage::from_records(&[active("d1")], &[report("d1", "xyz")]).awaiting);
        assert!(!Coverage::from_records(&[active("d1")], &[report("d1", "abc")]).awaiting);
        assert!(
            !Coverage::from_records(&[], &[]).awaiting,
            "nothing to await"
        );
    }

    #[test]
    fn drafts_and_ended_deployments_cover_nothing() {
        let mut ended = active("d1");
        ended.end(at(1500)).unwrap();
        let c = Coverage::from_records(&[ended], &[report("d1", "abc")]);
        assert!(!c.covers("gate-1", at(1600)));
        let mut draft = active("d2");
        draft.state = crate::deployment::State::Draft;
        let c = Coverage::from_records(&[draft], &[report("d2", "abc")]);
        assert!(!c.covers("gate-1", at(1500)));
    }

    #[test]
    fn no_camera_is_captured_once_the_review_has_lapsed() {
        // Reviewed at 1 s: the review stands until 48 h later, then capture stops.
        let mut long = active("d1");
        long.ends_at = at(200_000);
        let lapses = 1 + crate::deployment::REVIEW_VALIDITY.as_secs();
        let c = Coverage::from_records(&[long], &[report("d1", "abc")]);
        assert!(c.covers("gate-1", at(lapses - 1)));
        assert!(!c.covers("gate-1", at(lapses)), "paused: review lapsed");
        assert!(c.live_deployments(at(lapses)).is_empty());
    }

    #[test]
    fn an_empty_coverage_covers_nothing() {
        assert!(!Coverage::default().covers("gate-1", at(1500)));
        assert!(CoverageView::fixed(Coverage::default())
            .cameras(at(1500))
            .is_empty());
    }
}
