//! Where deployments and watch lists live: JetStream, never a service's memory.
//!
//! - KV bucket `lfr-deployments`: one JSON record per deployment (readable by operators), updated
//!   with optimistic concurrency so two supervisors cannot overwrite each other's change.
//! - Stream `WATCHLISTS` (file storage): `lfr.watchlist.<deployment>.list` holds the list (templates)
//!   and `lfr.watchlist.<deployment>.image.<sha256>` each reference image.
//! - KV bucket `lfr-watchlist-loads`: every matcher replica's report of the list it loaded (digest,
//!   entry count), expiring after a minute so a dead replica drops out.
//!
//! Wiping a deployment deletes every message of its lists **with secure erasure** (JetStream
//! overwrites the stored bytes), so no image or template survives in the store's files.

use crate::deployment::{AttachedList, Deployment, GateError};
use crate::list::WatchList;
use async_nats::jetstream::{self, kv, stream};
use futures::StreamExt;
use lfr_schemas::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use lfr_schemas::streams::buckets::{DEPLOYMENTS, LOADS};
/// A replica that has not reported for this long no longer counts.
pub use lfr_schemas::streams::LOAD_REPORT_TTL;
pub use lfr_schemas::streams::WATCHLISTS;

fn list_subject(deployment: &str) -> String {
    format!("lfr.watchlist.{deployment}.list")
}

fn image_subject(deployment: &str, sha256: &str) -> String {
    format!("lfr.watchlist.{deployment}.image.{sha256}")
}

/// What one matcher replica loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub replica: String,
    pub digest: String,
    pub entries: usize,
    pub at: Timestamp,
    /// Faces this replica compared with the whole list (live window) since it loaded the
    /// deployment: summed over replicas, the denominator of the live false-alert rate. Absent
    /// from reports of older matchers (0).
    #[serde(default)]
    pub probes_compared: u64,
}

/// Whether what the matchers hold is what was authorised.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    Verified { replicas: usize },
    Unverified(String),
}

/// What a wipe removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WipeRecord {
    pub deployment: String,
    pub messages_erased: usize,
    pub bytes_erased: usize,
    /// Digest of the list that was attached, for the erasure record.
    pub list_digest: Option<String>,
    pub image_sha256s: Vec<String>,
}

#[derive(Clone)]
pub struct Store {
    js: jetstream::Context,
    deployments: kv::Store,
    loads: kv::Store,
    lists: stream::Stream,
}

impl Store {
    /// Open the buckets and stream (declared by the administrator: `lfr bus init`).
    pub async fn open(js: &jetstream::Context) -> anyhow::Result<Store> {
        let missing = |what: &str| {
            let what = what.to_string();
            move |e: &dyn std::fmt::Display| {
                anyhow::anyhow!("cannot open {what} ({e}): has `lfr bus init` run?")
            }
        };
        let deployments = js
            .get_key_value(DEPLOYMENTS)
            .await
            .map_err(|e| missing(DEPLOYMENTS)(&e))?;
        let loads = js
            .get_key_value(LOADS)
            .await
            .map_err(|e| missing(LOADS)(&e))?;
        let lists = js
            .get_stream(WATCHLISTS)
            .await
            .map_err(|e| missing(WATCHLISTS)(&e))?;
        Ok(Store {
            js: js.clone(),
            deployments,
            loads,
            lists,
        })
    }

    pub async fn create(&self, deployment: &Deployment) -> anyhow::Result<()> {
        self.deployments
            .create(&deployment.id, serde_json::to_vec(deployment)?.into())
            .await
            .map_err(|e| anyhow::anyhow!("cannot create deployment {}: {e}", deployment.id))?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Deployment>> {
        match self.deployments.get(id).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Apply `change` to the stored record; fails if someone else changed it in between.
    pub async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Deployment) -> Result<(), GateError>,
    ) -> anyhow::Result<Deployment> {
        let entry = self
            .deployments
            .entry(id)
            .await?
            .filter(|e| e.operation == kv::Operation::Put)
            .ok_or_else(|| anyhow::anyhow!("no deployment {id}"))?;
        let mut deployment: Deployment = serde_json::from_slice(&entry.value)?;
        change(&mut deployment)?;
        self.deployments
            .update(id, serde_json::to_vec(&deployment)?.into(), entry.revision)
            .await
            .map_err(|e| anyhow::anyhow!("deployment {id} changed concurrently, try again: {e}"))?;
        Ok(deployment)
    }

    pub async fn all(&self) -> anyhow::Result<Vec<Deployment>> {
        let mut keys = self.deployments.keys().await?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            if let Some(d) = self.get(&key?).await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Store a list and its images; returns what to attach to the deployment.
    pub async fn put_watchlist(
        &self,
        list: &WatchList,
        images: &[(String, Vec<u8>)],
    ) -> anyhow::Result<AttachedList> {
        anyhow::ensure!(!list.entries.is_empty(), "a watch list cannot be empty");
        let js = &self.js;
        for (sha, bytes) in images {
            js.publish(image_subject(&list.deployment, sha), bytes.clone().into())
                .await?
                .await?;
        }
        let encoded = bincode::serde::encode_to_vec(list, bincode::config::standard())?;
        js.publish(list_subject(&list.deployment), encoded.into())
            .await?
            .await?;
        Ok(AttachedList {
            digest: list.digest(),
            entries: list.entries.len(),
            subjects: list.subjects(),
            model: list.model.clone(),
            attached_at: Timestamp::now(),
            // The lifecycle names who enrolled it.
            enrolled_by: String::new(),
        })
    }

    /// The latest list stored for a deployment.
    pub async fn watchlist(&self, deployment: &str) -> anyhow::Result<Option<WatchList>> {
        match self
            .lists
            .get_last_raw_message_by_subject(&list_subject(deployment))
            .await
        {
            Ok(m) => {
                let (list, _) =
                    bincode::serde::decode_from_slice(&m.payload, bincode::config::standard())?;
                Ok(Some(list))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A reference image, for display beside an alert.
    pub async fn image(&self, deployment: &str, sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self
            .lists
            .get_last_raw_message_by_subject(&image_subject(deployment, sha256))
            .await
        {
            Ok(m) => Ok(Some(m.payload.to_vec())),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn report_load(&self, deployment: &str, report: &LoadReport) -> anyhow::Result<()> {
        self.loads
            .put(
                format!("{deployment}.{}", report.replica),
                serde_json::to_vec(report)?.into(),
            )
            .await?;
        Ok(())
    }

    /// A replica no longer holds the deployment's list (it ended, or the replica stops).
    pub async fn withdraw_load(&self, deployment: &str, replica: &str) -> anyhow::Result<()> {
        self.loads
            .purge(format!("{deployment}.{replica}"))
            .await
            .map_err(|e| anyhow::anyhow!("cannot withdraw load report: {e}"))
    }

    /// Every change to any deployment record, as it happens (for matchers to react at once).
    pub async fn watch_deployments(&self) -> anyhow::Result<kv::Watch> {
        Ok(self.deployments.watch_all().await?)
    }

    pub async fn load_reports(&self, deployment: &str) -> anyhow::Result<Vec<LoadReport>> {
        let mut keys = self.loads.keys().await?;
        let prefix = format!("{deployment}.");
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key?;
            if key.starts_with(&prefix) {
                if let Some(bytes) = self.loads.get(&key).await? {
                    out.push(serde_json::from_slice(&bytes)?);
                }
            }
        }
        Ok(out)
    }

    /// Whether what the matchers hold is the deployment's authorised list ([`verify`]).
    pub async fn verification(&self, deployment: &Deployment) -> anyhow::Result<Verification> {
        let reports = self.load_reports(&deployment.id).await?;
        Ok(verify(deployment, &reports))
    }

    /// Securely erase every stored list and image of a deployment.
    pub async fn wipe(&self, deployment: &str) -> anyhow::Result<WipeRecord> {
        let list_digest = self.watchlist(deployment).await?.map(|l| l.digest());
        let filter = format!("lfr.watchlist.{deployment}.>");
        let consumer = self
            .lists
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: filter.clone(),
                ..Default::default()
            })
            .await?;
        let pending = consumer.cached_info().num_pending as usize;
        let mut messages = consumer.messages().await?;
        let mut erased = Vec::new();
        let mut images = Vec::new();
        while erased.len() < pending {
            let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await
            else {
                anyhow::bail!(
                    "wipe of {deployment} stalled after {} of {pending} messages",
                    erased.len()
                );
            };
            let m = m?;
            let seq = m
                .info()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .stream_sequence;
            if let Some(sha) = m
                .subject
                .rsplit('.')
                .next()
                .filter(|_| m.subject.contains(".image."))
            {
                images.push(sha.to_string());
            }
            erased.push((seq, m.payload.len()));
        }
        drop(messages);
        for (seq, _) in &erased {
            // The server's default for a message delete is a secure erase: the bytes are overwritten.
            self.lists.delete_message(*seq).await?;
        }
        self.lists.purge().filter(filter).await?;
        let _ = self.loads.purge(deployment).await;
        Ok(WipeRecord {
            deployment: deployment.into(),
            messages_erased: erased.len(),
            bytes_erased: erased.iter().map(|(_, n)| n).sum(),
            list_digest,
            image_sha256s: images,
        })
    }
}

/// Verified when at least one replica reported and every live replica reports the attached
/// list's digest and entry count.
pub fn verify(deployment: &Deployment, reports: &[LoadReport]) -> Verification {
    let Some(list) = &deployment.watchlist else {
        return Verification::Unverified("no watch list attached".into());
    };
    if reports.is_empty() {
        return Verification::Unverified("no matcher has reported loading the list".into());
    }
    if let Some(bad) = reports
        .iter()
        .find(|r| r.digest != list.digest || r.entries != list.entries)
    {
        return Verification::Unverified(format!(
            "replica {} loaded list {} ({} entries), but {} ({} entries) was authorised",
            bad.replica, bad.digest, bad.entries, list.digest, list.entries
        ));
    }
    Verification::Verified {
        replicas: reports.len(),
    }
}
