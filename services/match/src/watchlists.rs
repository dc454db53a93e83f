//! The watch lists this replica holds in memory, and the loader that keeps them equal to what the
//! deployments store says.
//!
//! The deployment record in JetStream is the only source of truth. The loader reads it at start,
//! whenever it changes (a KV watch), and every `refresh` besides, and then:
//!
//! - **loads** the list of every deployment that is active and inside its authorised time window
//!   or one of its set-up windows, and whose cameras include at least one camera (a list is
//!   loaded once per digest);
//! - **reports** the digest and entry count of what it actually loaded to `lfr-watchlist-loads`,
//!   with the faces it compared with the whole list so far (the false-alert rate's denominator,
//!   kept across reloads of the same deployment), and reads back whether every replica's report equals the authorised list: only then is the
//!   list **verified**, and only a verified list is compared with probes;
//! - **drops** the list of a deployment that ended, was wiped, or left its time window: the faiss
//!   index and every template are freed and the load report withdrawn.
//!
//! A list in the store that differs from the authorised one (tampering, or a botched re-enrolment)
//! is still loaded, and its real digest reported: the deployment then shows as unverified to every
//! operator, with the reason, rather than silently matching against something nobody signed off.

use crate::corroborate::{Rule, Tracker};
use crate::index::{IndexKind, WatchlistIndex};
use crate::metrics::MatchMetrics;
use futures::StreamExt;
use lfr_common::Shutdown;
use lfr_schemas::{Context, FaceRef, Redacted, Timestamp, WatchlistCategory};
use lfr_watchlist::deployment::{Deployment, Phase};
use lfr_watchlist::store::{LoadReport, Store, Verification};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// What an alert shows of the frame that matched best: kept only for matching frames.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub probe: FaceRef,
    pub probe_jpeg: Redacted,
    /// The context crop, or where detect answers for it ([`crate::context`]).
    pub context: Context,
}

/// One entry as the matcher needs it: no template (that is in the index), no note.
#[derive(Debug, Clone)]
pub struct EntryMeta {
    pub reference: String,
    pub category: WatchlistCategory,
    pub image_sha256: String,
    /// The deployment's threshold for this entry's category.
    pub threshold: f32,
}

impl EntryMeta {
    /// What the matcher keeps of a list entry, with its category's threshold.
    pub fn new(entry: &lfr_watchlist::list::Entry, threshold: f32) -> EntryMeta {
        EntryMeta {
            reference: entry.reference.clone(),
            category: entry.category,
            image_sha256: entry.image_sha256.clone(),
            threshold,
        }
    }
}

/// A deployment's list, loaded and searchable.
pub struct Loaded {
    pub deployment: String,
    /// Digest of the list as loaded (not as authorised: the two are compared by verification).
    pub digest: String,
    /// Digest of the list attached to the deployment when this one was loaded: a new attachment
    /// means a new load.
    pub attached: String,
    pub model: String,
    pub entries: Vec<EntryMeta>,
    pub index: WatchlistIndex,
    pub tracker: Mutex<Tracker<Evidence>>,
    /// The deployment's record as loaded: its cameras and windows say which probes are compared,
    /// and for what.
    schedule: Deployment,
    verified: AtomicBool,
    /// Faces compared with the whole list (live window), shared with the next load of the same
    /// deployment so a reload does not restart the count.
    compared: Arc<AtomicU64>,
}

impl Loaded {
    pub fn verified(&self) -> bool {
        self.verified.load(Ordering::Acquire)
    }

    /// Count one face compared with the list in `phase`: only the live window's count, where
    /// the whole list is compared, measures false alerts (set-up windows compare the blue list).
    pub fn compared(&self, phase: Phase) {
        if phase == Phase::Live {
            self.compared.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Faces compared with the whole list since this replica first loaded the deployment.
    pub fn probes_compared(&self) -> u64 {
        self.compared.load(Ordering::Relaxed)
    }

    /// Live (the whole list), set-up (the blue list only) or neither (no comparison) at `now`.
    pub fn phase(&self, now: Timestamp) -> Option<Phase> {
        self.schedule.phase(now)
    }
}

/// The lists held, shared by the loader (writer) and the matching stage (readers).
#[derive(Clone, Default)]
pub struct Watchlists {
    held: Arc<RwLock<HashMap<String, Arc<Loaded>>>>,
}

impl Watchlists {
    /// The lists that apply to a camera (usually one).
    pub fn for_camera(&self, camera: &str) -> Vec<Arc<Loaded>> {
        self.read()
            .values()
            .filter(|l| l.schedule.cameras.iter().any(|c| c == camera))
            .cloned()
            .collect()
    }

    pub fn get(&self, deployment: &str) -> Option<Arc<Loaded>> {
        self.read().get(deployment).cloned()
    }

    pub fn deployments(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.held.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.held.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps [`Watchlists`] in step with the deployments store.
pub struct Loader {
    pub store: Store,
    pub lists: Watchlists,
    /// This replica's name in load reports.
    pub replica: String,
    pub index: IndexKind,
    pub rule: Rule,
    pub refresh: Duration,
    pub metrics: MatchMetrics,
}

/// How soon a failed refresh is tried again.
const RETRY: Duration = Duration::from_secs(1);

impl Loader {
    /// Refresh now, then on every deployment change and every `refresh`, until shutdown. `loaded`
    /// turns true after the first complete refresh, so no probe is discarded for want of a list
    /// that simply was not read yet.
    pub async fn run(self, loaded: watch::Sender<bool>, shutdown: Shutdown) {
        let mut changes = None;
        loop {
            if changes.is_none() {
                changes = self.store.watch_deployments().await.ok();
            }
            // A failed refresh is tried again soon, not at the next period: after NATS restarts,
            // the load reports are gone and every camera stays gated until this matcher's is back.
            let wait = match self.refresh().await {
                Ok(()) => {
                    let _ = loaded.send(true);
                    self.refresh
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watch-list refresh failed; will retry");
                    RETRY.min(self.refresh)
                }
            };
            tokio::select! {
                _ = shutdown.requested() => break,
                _ = tokio::time::sleep(wait) => {}
                change = next_change(&mut changes) => {
                    if !change {
                        changes = None; // the watch ended (NATS restarted): open it again
                    }
                }
            }
        }
        for deployment in self.lists.deployments() {
            self.release(&deployment).await;
        }
    }

    /// One pass: load what should be held, drop what should not, report and verify the rest.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let now = Timestamp::now();
        let deployments = self.store.all().await?;
        let live: Vec<&Deployment> = deployments.iter().filter(|d| is_live(d, now)).collect();
        for held in self.lists.deployments() {
            if !live.iter().any(|d| d.id == held) {
                self.release(&held).await;
            }
        }
        for deployment in live {
            let Some(attached) = &deployment.watchlist else {
                continue;
            };
            let current = self.lists.get(&deployment.id);
            // A new attachment, or a changed schedule (its windows), means a new load.
            let stale = current
                .as_ref()
                .is_none_or(|l| l.attached != attached.digest || l.schedule != *deployment);
            let loaded = if stale {
                match self.load(deployment).await {
                    Ok(loaded) => loaded,
                    Err(e) => {
                        self.metrics.load("failed");
                        tracing::error!(deployment = %deployment.id, error = %e, "cannot load the watch list");
                        continue;
                    }
                }
            } else {
                current.expect("not stale")
            };
            self.store
                .report_load(
                    &deployment.id,
                    &LoadReport {
                        replica: self.replica.clone(),
                        digest: loaded.digest.clone(),
                        entries: loaded.entries.len(),
                        at: now,
                        probes_compared: loaded.probes_compared(),
                    },
                )
                .await?;
            let verified = match self.store.verification(deployment).await? {
                Verification::Verified { .. } => true,
                Verification::Unverified(why) => {
                    if loaded.verified() {
                        tracing::error!(deployment = %deployment.id, %why, "watch list no longer verified: alerts stop");
                    } else {
                        tracing::warn!(deployment = %deployment.id, %why, "watch list not verified: no alerts");
                    }
                    false
                }
            };
            if verified && !loaded.verified() {
                tracing::info!(deployment = %deployment.id, entries = loaded.entries.len(), "watch list verified");
            }
            loaded.verified.store(verified, Ordering::Release);
            self.metrics
                .holding(&deployment.id, loaded.entries.len(), verified);
        }
        Ok(())
    }

    /// Read the list from the store and build its index.
    async fn load(&self, deployment: &Deployment) -> anyhow::Result<Arc<Loaded>> {
        let list = self
            .store
            .watchlist(&deployment.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no watch list stored"))?;
        let digest = list.digest();
        let templates: Vec<Vec<f32>> = list.entries.iter().map(|e| e.template.clone()).collect();
        let dim = templates.first().map_or(0, Vec::len);
        let kind = self.index.clone();
        // Building a large approximate index takes a while: keep it off the async threads.
        let index =
            tokio::task::spawn_blocking(move || WatchlistIndex::build(dim, &templates, kind))
                .await??;
        let entries = list
            .entries
            .iter()
            .map(|e| EntryMeta::new(e, deployment.threshold(e.category)))
            .collect();
        let loaded = Arc::new(Loaded {
            deployment: deployment.id.clone(),
            digest,
            attached: deployment
                .watchlist
                .as_ref()
                .map(|a| a.digest.clone())
                .unwrap_or_default(),
            model: list.model.clone(),
            entries,
            index,
            tracker: Mutex::new(Tracker::new(self.rule.clone())),
            schedule: deployment.clone(),
            verified: AtomicBool::new(false),
            compared: self
                .lists
                .get(&deployment.id)
                .map(|l| l.compared.clone())
                .unwrap_or_default(),
        });
        self.lists
            .write()
            .insert(deployment.id.clone(), loaded.clone());
        self.metrics.load("loaded");
        tracing::info!(deployment = %deployment.id, entries = loaded.entries.len(), digest = %loaded.digest, "watch list loaded");
        Ok(loaded)
    }

    /// Drop a deployment's list from memory and withdraw this replica's report.
    async fn release(&self, deployment: &str) {
        if self.lists.write().remove(deployment).is_some() {
            self.metrics.load("dropped");
            tracing::info!(%deployment, "watch list dropped from memory");
        }
        self.metrics.released(deployment);
        if let Err(e) = self.store.withdraw_load(deployment, &self.replica).await {
            tracing::warn!(%deployment, error = %e, "load report not withdrawn; it expires by itself");
        }
    }
}

/// Active, with a list attached, inside its live window or a set-up window.
fn is_live(d: &Deployment, now: Timestamp) -> bool {
    d.phase(now).is_some()
}

/// Wait for the next deployment change; `false` when the watch has ended. Without a watch, wait
/// forever (the tick still refreshes).
async fn next_change(changes: &mut Option<async_nats::jetstream::kv::Watch>) -> bool {
    match changes {
        Some(watch) => matches!(watch.next().await, Some(Ok(_))),
        None => std::future::pending().await,
    }
}
