//! The matching stage: one probe template in, at most one candidate alert out.
//!
//! For each list that applies to the probe's camera: refuse to compare against an unverified list
//! or a list of another model, or outside the deployment's windows; in a set-up window (the
//! blue-list walks before the start and after the end) compare with blue-list entries only; search the k most similar entries; keep the best one at or above
//! its category's threshold; hand the sighting to the deployment's tracker, which decides whether
//! the track is now corroborated. Only then is anything published: the candidate alert on ALERTS
//! (blue-list entries on their own subject, never seen by officers), and an audit record that a
//! probe face was retained. The alert's images (the probe chip, the context crop and a copy of the
//! watch-list image) are sealed first under the deployment's data key: ALERTS is kept on disk, and
//! what is on disk holds no face in clear. The probe is acknowledged after that, so an alert is
//! never lost: if the alert cannot be sealed or stored, the probe is redelivered and the alert
//! raised again (the alert id is derived from the probe, so the bus stores it once).
//!
//! A probe that matches nothing is dropped when this function returns: nothing of it is written
//! anywhere, and the work-queue acknowledgement removes it from EMBEDDINGS.

use crate::alerted::Ledger;
use crate::context;
use crate::corroborate::{Hit, Sighting, Tracker, Verdict};
use crate::index::WatchlistIndex;
use crate::metrics::{MatchMetrics, ProbeOutcome};
use crate::watchlists::{EntryMeta, Evidence, Loaded, Watchlists};
use lfr_common::audit::Audit;
use lfr_common::bus::Bus;
use lfr_common::stage::{HandleError, Handler};
use lfr_schemas::{
    streams, subjects, AuditAction, AuditObject, CandidateAlert, Embedding, Redacted, Sealed,
    Timestamp, WatchlistCategory,
};
use lfr_vault::{AlertImage, Vault};
use lfr_watchlist::deployment::Phase;
use lfr_watchlist::list::{hex, sha256_hex};
use lfr_watchlist::store::Store;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The match service as audit events name it.
const MATCHER: Audit<'static> = Audit {
    actor: "lfr-match",
    role: "service",
};

/// How many nearest entries a search returns: the best above its own category's threshold wins,
/// so a higher-threshold category cannot hide a lower-threshold one just behind it.
const SEARCH_K: usize = 5;

pub struct MatchStage {
    pub lists: Watchlists,
    /// Seals the alerts' images.
    pub vault: Vault,
    /// The watch-list store, once the loader has opened it: the reference image of an alert is
    /// read from it at alert time (alerts are rare; lists can be large).
    pub images: Arc<OnceLock<Store>>,
    pub bus: Bus,
    pub metrics: MatchMetrics,
    /// True once the loader has read the deployments for the first time.
    pub loaded: watch::Receiver<bool>,
    /// Who alerted recently, shared with the other replicas (opened once the bus has it).
    pub ledger: Arc<OnceLock<Ledger>>,
    /// How long one entry's alert covers its later sightings (`corroboration.realert_after`).
    pub realert_after: Duration,
    /// Context crops of matching faces, asked for before their alert is raised.
    pub prefetch: context::Prefetch,
}

impl Handler for MatchStage {
    type Input = Embedding;

    async fn handle(&self, probe: Embedding) -> Result<(), HandleError> {
        let mut loaded = self.loaded.clone();
        if loaded.wait_for(|l| *l).await.is_err() {
            return Err(HandleError::Retry(anyhow::anyhow!("shutting down")));
        }
        let lists = self.lists.for_camera(&probe.face.frame.camera);
        if lists.is_empty() {
            self.metrics.probe(ProbeOutcome::NoWatchlist);
        }
        for list in lists {
            self.against(&list, &probe).await?;
        }
        self.metrics.decision_seconds.observe(
            probe
                .face
                .frame
                .captured_at
                .until(Timestamp::now())
                .as_secs_f64(),
        );
        Ok(())
    }

    fn captured_at(input: &Embedding) -> Option<Timestamp> {
        Some(input.face.frame.captured_at)
    }
}

impl MatchStage {
    /// Compare one probe with one deployment's list, and raise the alert it corroborates.
    async fn against(&self, list: &Loaded, probe: &Embedding) -> Result<(), HandleError> {
        if !list.verified() {
            self.metrics.probe(ProbeOutcome::Unverified);
            return Ok(());
        }
        if probe.model != list.model || probe.vector.len() != list.index.dim() {
            self.metrics.probe(ProbeOutcome::ModelMismatch);
            tracing::warn!(deployment = %list.deployment, probe_model = %probe.model, list_model = %list.model, "probe and watch list come from different models");
            return Ok(());
        }
        let Some(phase) = list.phase(Timestamp::now()) else {
            self.metrics.probe(ProbeOutcome::NoWatchlist);
            return Ok(());
        };
        let judged = compare(&list.index, &list.entries, &list.tracker, probe, phase)?;
        list.compared(phase);
        if judged.matched {
            // Its crop is made while the track waits for the face that corroborates it.
            self.prefetch.start(&self.bus, &probe.face, &probe.context);
        }
        self.metrics.search_seconds.observe(judged.search_seconds);
        if let Some(best) = judged.best {
            self.metrics.best_score.observe(best as f64);
        }
        self.metrics.probe(if judged.matched {
            ProbeOutcome::Matched
        } else {
            ProbeOutcome::NoMatch
        });
        let verdict = judged.verdict;
        let Verdict::Alert {
            entry,
            score,
            evidence,
            matched_frames,
            track_frames,
        } = verdict
        else {
            return Ok(());
        };
        let meta = &list.entries[entry];
        let captured_at = evidence.probe.frame.captured_at;
        if self
            .alerted_elsewhere(&list.deployment, &meta.reference, captured_at)
            .await
        {
            // Another replica (the one this one took over from) raised this person's alert.
            self.metrics.duplicates_suppressed.inc();
            return Ok(());
        }
        let alert_id = alert_id(&list.deployment, &evidence, &meta.reference);
        let probe_sha256 = sha256_hex(&evidence.probe_jpeg);
        let context = self.context_of(&evidence).await;
        let raised = async {
            let [probe_jpeg, context_jpeg, reference_jpeg] = self
                .seal_images(
                    &list.deployment,
                    &alert_id,
                    &evidence,
                    &context,
                    &meta.image_sha256,
                )
                .await
                .inspect_err(|_| self.metrics.seal_failures.inc())?;
            let alert = CandidateAlert {
                alert_id,
                deployment: list.deployment.clone(),
                raised_at: Timestamp::now(),
                probe: evidence.probe,
                category: meta.category,
                entry_ref: meta.reference.clone(),
                reference_image_sha256: meta.image_sha256.clone(),
                watchlist_digest: list.digest.clone(),
                score,
                corroborating_frames: matched_frames,
                track_frames,
                probe_jpeg,
                context_jpeg,
                reference_jpeg,
            };
            self.raise(&alert, probe_sha256)
                .await
                .inspect_err(|_| self.metrics.alert_failures.inc())
        };
        if let Err(e) = raised.await {
            list.tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retract(&probe.face.frame.camera, entry);
            return Err(HandleError::Retry(e));
        }
        if let Some(ledger) = self.ledger.get() {
            if let Err(e) = ledger
                .record(&list.deployment, &meta.reference, captured_at)
                .await
            {
                self.metrics.ledger_failures.inc();
                tracing::warn!(deployment = %list.deployment, error = %e, "alert raised but not shared with the standby replicas");
            }
        }
        Ok(())
    }

    /// Whether the shared ledger says this entry alerted within `realert_after`. Unanswerable is
    /// "no": a duplicate is dismissed by the operator, a missed alert is not seen at all.
    async fn alerted_elsewhere(&self, deployment: &str, reference: &str, at: Timestamp) -> bool {
        let Some(ledger) = self.ledger.get() else {
            return false;
        };
        match ledger
            .alerted_within(deployment, reference, at, self.realert_after)
            .await
        {
            Ok(found) => found.is_some(),
            Err(e) => {
                self.metrics.ledger_failures.inc();
                tracing::warn!(%deployment, error = %e, "alert ledger unavailable; raising");
                false
            }
        }
    }

    /// The context crop of the alert's probe: with the face, or from detect on request; empty
    /// (and counted) when detect no longer has it.
    async fn context_of(&self, evidence: &Evidence) -> Redacted {
        let (jpeg, fetched) = self
            .prefetch
            .take(&self.bus, &evidence.probe, &evidence.context)
            .await;
        self.metrics.context(fetched);
        if jpeg.is_empty() {
            tracing::warn!(
                outcome = fetched.label(),
                "alert raised without its context crop"
            );
        }
        jpeg
    }

    /// The probe chip, the context crop and the watch-list image, each sealed under the
    /// deployment's data key with associated data naming the alert and the image. A reference
    /// image missing from the store (it should not be, while the list is live) is sealed empty.
    async fn seal_images(
        &self,
        deployment: &str,
        alert_id: &str,
        evidence: &Evidence,
        context: &[u8],
        reference_sha256: &str,
    ) -> anyhow::Result<[Sealed; 3]> {
        let store = self
            .images
            .get()
            .ok_or_else(|| anyhow::anyhow!("the watch-list store is not open yet"))?;
        let reference = match store.image(deployment, reference_sha256).await? {
            Some(bytes) => bytes,
            None => {
                tracing::error!(%deployment, alert = %alert_id, "the matched entry's image is not in the watch-list store; the alert carries none");
                Vec::new()
            }
        };
        let mut sealed = Vec::with_capacity(3);
        for (image, bytes) in [
            (AlertImage::Probe, &evidence.probe_jpeg[..]),
            (AlertImage::Context, context),
            (AlertImage::Reference, &reference[..]),
        ] {
            let aad = image.aad(deployment, alert_id);
            sealed.push(self.vault.seal(deployment, &aad, bytes).await.map_err(|e| {
                tracing::error!(%deployment, alert = %alert_id, error = %e, "cannot seal the alert's images; not raised");
                anyhow::Error::new(e)
            })?);
        }
        Ok(sealed.try_into().expect("three images"))
    }

    /// Record the combination, store the alert, count it, and record that a probe face was
    /// retained (with the sha256 of the probe chip as it was before sealing).
    ///
    /// Raising an alert **combines** a probe face with the watch list's data; that is recorded
    /// first, and an alert whose combination cannot be recorded is not raised (the probe is
    /// retried). The retention (collection) is recorded after the alert is stored.
    async fn raise(&self, alert: &CandidateAlert, probe_sha256: String) -> anyhow::Result<()> {
        let object = || AuditObject::Alert(alert.alert_id.clone());
        let combined = MATCHER
            .event(AuditAction::Combination, object())
            .deployment(&alert.deployment)
            .why(format!(
                "probe face compared with the deployment's verified watch list: a {} entry \
                 matched (similarity {:.3}, {} of {} frames)",
                alert.category.as_str(),
                alert.score,
                alert.corroborating_frames,
                alert.track_frames
            ))
            .digest(&probe_sha256)
            .record(&self.bus.jetstream)
            .await;
        if let Err(e) = combined {
            self.metrics.audit_failures.inc();
            tracing::error!(alert = %alert.alert_id, error = %e, "alert not raised: its combination cannot be recorded on AUDIT");
            return Err(e);
        }
        let subject = if alert.category == WatchlistCategory::Blue {
            subjects::blue_alerts(&alert.deployment)
        } else {
            subjects::alert_candidates(&alert.deployment)
        };
        self.bus
            .publish_record(streams::ALERTS, subject, &alert.alert_id, alert)
            .await?
            .acknowledged()
            .await?;
        self.metrics.alert(alert.category);
        tracing::info!(alert = %alert.alert_id, deployment = %alert.deployment, camera = %alert.probe.frame.camera, "candidate alert raised");
        let recorded = MATCHER
            .event(AuditAction::Collection, object())
            .deployment(&alert.deployment)
            .why("probe face matched the deployment's verified watch list; retained for operator review")
            .digest(probe_sha256)
            .record(&self.bus.jetstream)
            .await;
        if let Err(e) = recorded {
            self.metrics.audit_failures.inc();
            tracing::error!(alert = %alert.alert_id, error = %e, "audit event for a raised alert not recorded");
        }
        Ok(())
    }
}

/// What one comparison found, before anything is published.
pub struct Judgement {
    /// The best similarity in the list, if the list is not empty.
    pub best: Option<f32>,
    /// Some entry scored at or above its category's threshold.
    pub matched: bool,
    pub search_seconds: f64,
    pub verdict: Verdict<Evidence>,
}

/// Search the list for one probe, keep the best entry at or above its category's threshold (in a
/// set-up window: the best blue-list entry only), and let the tracker decide. The whole of
/// matching without the bus: the load test's in-process baseline runs exactly this.
pub fn compare(
    index: &WatchlistIndex,
    entries: &[EntryMeta],
    tracker: &Mutex<Tracker<Evidence>>,
    probe: &Embedding,
    phase: Phase,
) -> Result<Judgement, HandleError> {
    let started = Instant::now();
    let hits = index
        .search(&probe.vector, SEARCH_K)
        .map_err(|e| HandleError::reject("bad_template", e))?;
    let search_seconds = started.elapsed().as_secs_f64();
    let best = hits.first().map(|(_, score)| *score);
    let hit = hits
        .into_iter()
        .filter(|(entry, _)| {
            phase == Phase::Live || entries[*entry].category == WatchlistCategory::Blue
        })
        .find(|(entry, score)| *score >= entries[*entry].threshold)
        .map(|(entry, score)| Hit {
            entry,
            score,
            evidence: Evidence {
                probe: probe.face.clone(),
                probe_jpeg: probe.probe_jpeg.clone(),
                context: probe.context.clone(),
            },
        });
    let matched = hit.is_some();
    let verdict = tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .observe(Sighting {
            camera: probe.face.frame.camera.clone(),
            captured_at: probe.face.frame.captured_at,
            bbox: probe.bbox,
            hit,
        });
    Ok(Judgement {
        best,
        matched,
        search_seconds,
        verdict,
    })
}

/// Derived from the probe and the entry, so a redelivered probe raises the same alert id and the
/// bus's de-duplication stores it once. Opaque: it reveals neither camera nor entry.
fn alert_id(deployment: &str, evidence: &Evidence, reference: &str) -> String {
    let f = &evidence.probe.frame;
    let mut h = Sha256::new();
    for part in [
        deployment,
        &f.camera,
        &f.epoch.0.to_string(),
        &f.seq.to_string(),
        &evidence.probe.index.to_string(),
        reference,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize()[..12])
}
