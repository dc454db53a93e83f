//! # The deployment lifecycle, once, for every front end
//!
//! A deployment goes through the same steps whoever drives it, the supervisor at a terminal
//! (`lfr deployment ...`) or the web console (the JSON API in [`crate::api`]):
//!
//! ```text
//!   create ──> govern ──> enrol ──> authorise ──> review(digest) ──> activate ──> end (wipe)
//!     │          │          │           │              │                 │            │
//!     └──────── each step: check the gate, change the record, record an audit event ───┘
//! ```
//!
//! Duties are separated by account: whoever enrols a list may neither authorise nor review it,
//! only an account with a rank of [`AUTHORISING_RANK`] or above authorises, and the shared API
//! token ([`Credential::SharedToken`]) may prepare a deployment (create, govern, enrol, end) but
//! never authorise, review or activate one.
//!
//! [`Lifecycle`] is that sequence as one async method per step. Each method does three things, in
//! this order, and nothing else:
//!
//! 1. **Find the deployment** in the [`Store`] (an unknown id is [`Error::NotFound`], not a crash).
//! 2. **Apply the change** through the record's own methods in [`crate::deployment`], which hold the
//!    DPIA's gates. A refused gate comes back as [`Error::Gate`] with its reason ("not
//!    authorised", "has not been reviewed", ...), and nothing is stored.
//! 3. **Record an audit event** on the AUDIT stream naming the [`Actor`], the action, the object
//!    (`deployment/<id>` or `watchlist/<id>`), why, and the list digest where there is one. The
//!    event holds references and digests only, never an image or a template.
//!
//! The front ends only translate: the CLI turns arguments into calls and results into lines of
//! text; the API turns JSON into calls and [`Error`]s into status codes. Neither checks a gate or
//! writes an audit event itself, so the two cannot drift apart.
//!
//! ## Using it
//!
//! ```rust,no_run
//! # async fn example(js: async_nats::jetstream::Context) -> anyhow::Result<()> {
//! use lfr_watchlist::lifecycle::{Actor, Lifecycle};
//!
//! let lifecycle = Lifecycle::open(&js, Default::default()).await?;
//! use lfr_watchlist::deployment::Rank;
//! let supervisor = Actor::new("sgt-12", "supervisor");
//! // A folder of custody images with their manifest.toml; `enrol_archive` takes a tar instead.
//! let enrolled = lifecycle
//!     .enrol("match-day", std::path::Path::new("./custody"), &supervisor)
//!     .await?;
//! for refused in &enrolled.refused {
//!     println!("{} refused: {}", refused.image, refused.reason);
//! }
//! lifecycle
//!     .authorise(
//!         "match-day",
//!         &Actor::new("supt-17", "supervisor").with_rank(Some(Rank::Superintendent)),
//!     )
//!     .await?;
//! lifecycle
//!     .review("match-day", &Actor::new("insp-4", "supervisor"), &enrolled.attached.digest)
//!     .await?;
//! lifecycle.activate("match-day", &supervisor).await?;
//! # Ok(()) }
//! ```
//!
//! ## Enrolment is the slow step
//!
//! Enrolling runs the face detector and embedder over every reference image (seconds), so it runs
//! on a blocking thread ([`tokio::task::spawn_blocking`]) and never stalls the async runtime. The
//! models load on the first enrolment and stay loaded; a process that never enrols (most API calls
//! are reads) never loads them. Enrolments in one process take turns on the one set of models.
//!
//! An uploaded archive is unpacked by [`crate::archive`] into a private temporary folder that is
//! removed as soon as enrolment is done: only files and folders, nothing outside the folder.

use crate::archive::{self, Limits};
use crate::deployment::{
    AttachedList, Deployment, GateError, Governance, NewDeployment, Rank, State, AUTHORISING_RANK,
};
use crate::enrol::{Enroller, Enrolment, InvalidManifest};
use crate::list::{sha256_hex, WatchList};
use crate::store::{self, LoadReport, Store, WipeRecord};
use async_nats::jetstream;
use lfr_common::audit::Audit;
use lfr_schemas::{subjects, AuditAction, AuditObject, Timestamp};
use lfr_vision::config::ModelsConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Who acts: an account id and the role it acted in, as recorded on every audit event, with the
/// account's rank and how it proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub role: String,
    /// The account's rank, where one is recorded: authorising needs [`AUTHORISING_RANK`].
    #[serde(default)]
    pub rank: Option<Rank>,
    #[serde(default)]
    pub credential: Credential,
}

/// How an actor proved who it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Credential {
    /// A person's own account (a console or CLI login): accountable for what it signs.
    #[default]
    Account,
    /// The API's shared bearer token: no one person. It may prepare a deployment (create,
    /// record governance, enrol) but never authorise, review or activate one.
    SharedToken,
}

impl Actor {
    /// A person acting through their own account.
    pub fn new(id: impl Into<String>, role: impl Into<String>) -> Actor {
        Actor {
            id: id.into(),
            role: role.into(),
            rank: None,
            credential: Credential::Account,
        }
    }

    /// The same actor with their rank.
    pub fn with_rank(mut self, rank: Option<Rank>) -> Actor {
        self.rank = rank;
        self
    }

    /// The shared API token, acting under `id`.
    pub fn shared_token(id: impl Into<String>, role: impl Into<String>) -> Actor {
        Actor {
            credential: Credential::SharedToken,
            ..Actor::new(id, role)
        }
    }

    /// Refuse `step` unless a person's own account is taking it.
    fn accountable(&self, step: &str) -> Result<(), Error> {
        match self.credential {
            Credential::Account => Ok(()),
            Credential::SharedToken => Err(Error::Gate(GateError::Forbidden(format!(
                "the shared API token may not {step} a deployment: log in with your own account"
            )))),
        }
    }

    fn audit(&self) -> Audit<'_> {
        Audit {
            actor: &self.id,
            role: &self.role,
        }
    }
}

/// Why a lifecycle step did not happen. Front ends map these to their own answers (the API to
/// status codes); the `Display` text is meant for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no deployment {0}")]
    NotFound(String),
    #[error("deployment {0} already exists")]
    Exists(String),
    /// A gate of the DPIA refused the step (not authorised, not reviewed, already ended...).
    #[error(transparent)]
    Gate(#[from] GateError),
    /// What was supplied is wrong: a malformed deployment, manifest or archive.
    #[error("{0}")]
    Invalid(String),
    /// Every entry of the list was refused; nothing was attached.
    #[error("no image could be enrolled: nothing attached")]
    NothingEnrolled { refused: Vec<RefusedEntry> },
    /// The system failed (NATS, models, disk): not the caller's fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A manifest entry that was not enrolled, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedEntry {
    pub reference: String,
    /// The image's path as the manifest names it.
    pub image: String,
    pub reason: String,
}

/// The outcome of an enrolment: the list now attached, and every entry left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolled {
    pub attached: AttachedList,
    pub refused: Vec<RefusedEntry>,
}

/// Whether what the matchers loaded is what was authorised (see [`Store::verification`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Verification {
    Verified { replicas: usize },
    Unverified { reason: String },
}

impl From<store::Verification> for Verification {
    fn from(v: store::Verification) -> Self {
        match v {
            store::Verification::Verified { replicas } => Verification::Verified { replicas },
            store::Verification::Unverified(reason) => Verification::Unverified { reason },
        }
    }
}

/// A deployment as `show` presents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentView {
    pub deployment: Deployment,
    pub verification: Verification,
    pub load_reports: Vec<LoadReport>,
}

/// The lifecycle of deployments over one store.
#[derive(Clone)]
pub struct Lifecycle {
    store: Store,
    js: jetstream::Context,
    models: ModelsConfig,
    /// Loaded on the first enrolment; `None` until then.
    enroller: Arc<Mutex<Option<Enroller>>>,
    limits: Limits,
}

impl Lifecycle {
    pub fn new(store: Store, js: jetstream::Context, models: ModelsConfig) -> Lifecycle {
        Lifecycle {
            store,
            js,
            models,
            enroller: Arc::new(Mutex::new(None)),
            limits: Limits::default(),
        }
    }

    /// Open the store (declaring its buckets and stream if needed) on `js`.
    pub async fn open(js: &jetstream::Context, models: ModelsConfig) -> anyhow::Result<Lifecycle> {
        Ok(Lifecycle::new(Store::open(js).await?, js.clone(), models))
    }

    /// Other limits for uploaded archives (the defaults are [`Limits::default`]).
    pub fn with_archive_limits(mut self, limits: Limits) -> Lifecycle {
        self.limits = limits;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The embedder's calibrated 1-in-1,000 threshold ([`ModelsConfig::calibrated_threshold`]):
    /// what a deployment matches at unless it says otherwise.
    pub fn calibrated_threshold(&self) -> Result<f32, Error> {
        match self.models.calibrated_threshold() {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(Error::Invalid(format!(
                "the model manifest records no calibrated threshold for {}: run `lfr eval \
                 --write-calibration`, or give the deployment a threshold",
                self.models.embedder
            ))),
            Err(e) => Err(Error::Internal(e)),
        }
    }

    /// Create a draft deployment. A threshold looser than the calibrated point needs an override
    /// with its reason ([`NewDeployment::threshold_override`]); it is recorded as given by `actor`.
    pub async fn create(&self, mut new: NewDeployment, actor: &Actor) -> Result<Deployment, Error> {
        let lowest = new
            .thresholds
            .values()
            .copied()
            .fold(new.default_threshold, f32::min);
        match new.threshold_override.as_mut() {
            Some(o) => {
                if o.reason.trim().is_empty() {
                    return Err(Error::Invalid(
                        "a threshold override needs its reason".into(),
                    ));
                }
                o.calibrated = self.calibrated_threshold()?;
                o.by = actor.id.clone();
                if lowest >= o.calibrated {
                    // Nothing is overridden: keep no record that says otherwise.
                    new.threshold_override = None;
                }
            }
            None => {
                let calibrated = self.calibrated_threshold()?;
                if lowest < calibrated {
                    return Err(Error::Invalid(format!(
                        "threshold {lowest} is looser than the embedder's calibrated 1-in-1,000 \
                         point {calibrated}: give an override with its reason to use it"
                    )));
                }
            }
        }
        let overridden = new.threshold_override.clone();
        let deployment = Deployment::create(new).map_err(|e| match e {
            GateError::Invalid(_) => Error::Invalid(e.to_string()),
            other => Error::Gate(other),
        })?;
        let id = deployment.id.clone();
        if let Err(e) = self.store.create(&deployment).await {
            return Err(match self.store.get(&id).await {
                Ok(Some(_)) => Error::Exists(id),
                _ => Error::Internal(e),
            });
        }
        actor
            .audit()
            .event(
                AuditAction::ConfigurationChange,
                AuditObject::Deployment(id.to_string()),
            )
            .deployment(&id)
            .why(match &overridden {
                None => "deployment created".to_string(),
                Some(o) => format!(
                    "deployment created; threshold {} below the calibrated {} by override: {}",
                    deployment.lowest_threshold(),
                    o.calibrated,
                    o.reason
                ),
            })
            .record(&self.js)
            .await?;
        Ok(deployment)
    }

    /// Record (or replace) the deployment's governance: command structure, objectives,
    /// intelligence case, signage. Replacing it voids an authorisation given under the old one.
    pub async fn govern(
        &self,
        id: &str,
        governance: Governance,
        actor: &Actor,
    ) -> Result<Deployment, Error> {
        let summary = format!(
            "governance recorded: gold {}; silver {}; bronze {}; objectives: {}; intelligence \
             case {}; signage: {}",
            governance.gold,
            governance.silver,
            governance.bronze,
            governance.objectives,
            governance.intelligence_case,
            governance.signage
        );
        let digest =
            sha256_hex(&serde_json::to_vec(&governance).map_err(|e| Error::Internal(e.into()))?);
        let deployment = self.update(id, |d| d.govern(governance)).await?;
        actor
            .audit()
            .event(
                AuditAction::Alteration,
                AuditObject::Deployment(id.to_string()),
            )
            .deployment(id)
            .why(summary)
            .digest(digest)
            .record(&self.js)
            .await?;
        Ok(deployment)
    }

    /// Enrol the images of `folder` (with its `manifest.toml`) and attach them as the deployment's
    /// watch list. Attaching voids any earlier review.
    pub async fn enrol(&self, id: &str, folder: &Path, actor: &Actor) -> Result<Enrolled, Error> {
        let deployment = self.get(id).await?;
        if deployment.state != State::Draft {
            return Err(GateError::NotDraft(deployment.id, deployment.state).into());
        }
        let enroller = self.enroller.clone();
        let models = self.models.clone();
        let (folder, deployment) = (folder.to_path_buf(), id.to_string());
        let (enrolment, images) = tokio::task::spawn_blocking(move || {
            let enrolment = enrol_blocking(&enroller, &models, &folder, &deployment)?;
            let images = referenced_images(&folder, &enrolment.list)?;
            Ok::<_, Error>((enrolment, images))
        })
        .await
        .map_err(|e| anyhow::anyhow!("enrolment task failed: {e}"))??;

        let refused: Vec<RefusedEntry> = enrolment
            .refused
            .into_iter()
            .map(|r| RefusedEntry {
                reference: r.reference,
                image: r.image.display().to_string(),
                reason: r.reason,
            })
            .collect();
        if enrolment.list.entries.is_empty() {
            return Err(Error::NothingEnrolled { refused });
        }
        let mut attached = self.store.put_watchlist(&enrolment.list, &images).await?;
        attached.enrolled_by = actor.id.clone();
        self.update(id, |d| d.attach(attached.clone())).await?;
        actor
            .audit()
            .event(
                AuditAction::Collection,
                AuditObject::Watchlist(id.to_string()),
            )
            .deployment(id)
            .why("watch list enrolled for the deployment")
            .digest(attached.digest.clone())
            .record(&self.js)
            .await?;
        Ok(Enrolled { attached, refused })
    }

    /// [`Lifecycle::enrol`] from a tar archive (plain or gzip) of the images and `manifest.toml`,
    /// at the top of the archive or inside its single top-level folder.
    pub async fn enrol_archive(
        &self,
        id: &str,
        archive: bytes::Bytes,
        actor: &Actor,
    ) -> Result<Enrolled, Error> {
        // Refuse early, before unpacking anything, when the deployment cannot take a list.
        let deployment = self.get(id).await?;
        if deployment.state != State::Draft {
            return Err(GateError::NotDraft(deployment.id, deployment.state).into());
        }
        let limits = self.limits;
        let (dir, folder) = tokio::task::spawn_blocking(move || {
            let dir = tempfile::Builder::new()
                .prefix("lfr-enrol-")
                .tempdir()
                .map_err(|e| anyhow::anyhow!("cannot make a folder to unpack into: {e}"))?;
            archive::unpack(&archive, dir.path(), &limits).map_err(|e| match e {
                archive::ArchiveError::Io(e) => Error::Internal(e.into()),
                refused => Error::Invalid(format!("invalid watch-list archive: {refused}")),
            })?;
            let folder = manifest_folder(dir.path()).ok_or_else(|| {
                Error::Invalid(
                    "the archive holds no manifest.toml (at its top or in its one folder)".into(),
                )
            })?;
            Ok::<_, Error>((dir, folder))
        })
        .await
        .map_err(|e| anyhow::anyhow!("unpacking task failed: {e}"))??;
        let enrolled = self.enrol(id, &folder, actor).await;
        // The reference images leave the disk now, off the async threads.
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
        enrolled
    }

    /// Record the authorising officer's authorisation of the attached list (by its digest), under
    /// the governance record as it stands. The officer's account must carry a rank of
    /// [`AUTHORISING_RANK`] or above, and may not be whoever enrolled the list.
    pub async fn authorise(&self, id: &str, officer: &Actor) -> Result<Deployment, Error> {
        officer.accountable("authorise")?;
        let rank = officer.rank.ok_or_else(|| {
            Error::Gate(GateError::Forbidden(format!(
                "account {} has no rank on record; a deployment is authorised by a \
                 {AUTHORISING_RANK} or above",
                officer.id
            )))
        })?;
        let deployment = self
            .update(id, |d| d.authorise(&officer.id, rank, Timestamp::now()))
            .await?;
        let digest = deployment
            .authorisation
            .as_ref()
            .map(|a| a.digest.clone())
            .unwrap_or_default();
        officer
            .audit()
            .event(
                AuditAction::Alteration,
                AuditObject::Deployment(id.to_string()),
            )
            .deployment(id)
            .why(format!("deployment authorised by a {rank}"))
            .digest(digest)
            .record(&self.js)
            .await?;
        Ok(deployment)
    }

    /// Record that `reviewer` examined the attached list with `digest`.
    pub async fn review(
        &self,
        id: &str,
        reviewer: &Actor,
        digest: &str,
    ) -> Result<Deployment, Error> {
        reviewer.accountable("review")?;
        let deployment = self
            .update(id, |d| d.review(&reviewer.id, digest, Timestamp::now()))
            .await?;
        reviewer
            .audit()
            .event(
                AuditAction::Consultation,
                AuditObject::Watchlist(id.to_string()),
            )
            .deployment(id)
            .why(if deployment.state == State::Active {
                "watch list reviewed again while deployed"
            } else {
                "watch list reviewed before deployment"
            })
            .digest(digest.to_string())
            .record(&self.js)
            .await?;
        Ok(deployment)
    }

    /// Go live, if every gate is met.
    pub async fn activate(&self, id: &str, actor: &Actor) -> Result<Deployment, Error> {
        actor.accountable("activate")?;
        let deployment = self.update(id, |d| d.activate(Timestamp::now())).await?;
        actor
            .audit()
            .event(
                AuditAction::Alteration,
                AuditObject::Deployment(id.to_string()),
            )
            .deployment(id)
            .why("deployment activated")
            .record(&self.js)
            .await?;
        Ok(deployment)
    }

    /// End the deployment and securely erase its watch list and reference images.
    pub async fn end(&self, id: &str, actor: &Actor) -> Result<WipeRecord, Error> {
        self.update(id, |d| d.end(Timestamp::now())).await?;
        let wiped = self.store.wipe(id).await?;
        let mut event = actor
            .audit()
            .event(AuditAction::Erasure, AuditObject::Watchlist(id.to_string()))
            .deployment(id)
            .why(format!(
                "deployment ended: {} messages ({} bytes) securely erased, images {}",
                wiped.messages_erased,
                wiped.bytes_erased,
                wiped.image_sha256s.join(",")
            ));
        if let Some(digest) = &wiped.list_digest {
            event = event.digest(digest.clone());
        }
        event.record(&self.js).await?;
        Ok(wiped)
    }

    /// One deployment with its verification state and the matchers' load reports.
    pub async fn show(&self, id: &str) -> Result<DeploymentView, Error> {
        let deployment = self.get(id).await?;
        self.view(deployment).await
    }

    /// [`Lifecycle::show`] for a deployment already at hand.
    pub async fn view(&self, deployment: Deployment) -> Result<DeploymentView, Error> {
        let verification = self.store.verification(&deployment).await?.into();
        let load_reports = self.store.load_reports(&deployment.id).await?;
        Ok(DeploymentView {
            deployment,
            verification,
            load_reports,
        })
    }

    /// Every deployment, in id order.
    pub async fn list(&self) -> Result<Vec<Deployment>, Error> {
        let mut all = self.store.all().await?;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// The deployment, or [`Error::NotFound`]. An id that could never name a deployment (it would
    /// not be a valid subject token) is not found either, and never reaches the store.
    async fn get(&self, id: &str) -> Result<Deployment, Error> {
        if subjects::validate_token("deployment", id).is_err() {
            return Err(Error::NotFound(id.into()));
        }
        self.store
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.into()))
    }

    /// [`Store::update`], with its refusals sorted into not-found, gate and internal errors.
    async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Deployment) -> Result<(), GateError>,
    ) -> Result<Deployment, Error> {
        if subjects::validate_token("deployment", id).is_err() {
            return Err(Error::NotFound(id.into()));
        }
        match self.store.update(id, change).await {
            Ok(d) => Ok(d),
            Err(e) => match e.downcast::<GateError>() {
                Ok(gate) => Err(Error::Gate(gate)),
                Err(e) => match self.store.get(id).await {
                    Ok(None) => Err(Error::NotFound(id.into())),
                    _ => Err(Error::Internal(e)),
                },
            },
        }
    }
}

/// Run enrolment with the process's enroller, loading the models the first time.
fn enrol_blocking(
    enroller: &Mutex<Option<Enroller>>,
    models: &ModelsConfig,
    folder: &Path,
    deployment: &str,
) -> Result<Enrolment, Error> {
    if !folder.join("manifest.toml").is_file() {
        return Err(Error::Invalid(format!(
            "no manifest.toml in {}",
            folder.display()
        )));
    }
    // A panic in an earlier enrolment poisons the lock: start again from freshly loaded models.
    let mut slot = enroller.lock().unwrap_or_else(|poisoned| {
        let mut slot = poisoned.into_inner();
        *slot = None;
        slot
    });
    if slot.is_none() {
        *slot = Some(Enroller::load(models)?);
    }
    let enroller = slot.as_mut().expect("loaded above");
    enroller
        .enrol(folder, deployment)
        .map_err(|e| match e.downcast::<InvalidManifest>() {
            Ok(invalid) => Error::Invalid(invalid.0),
            Err(e) => Error::Internal(e),
        })
}

/// The image files under `folder` (symbolic links not followed) that the list enrolled, as
/// `(sha256, bytes)`, one per distinct image.
fn referenced_images(folder: &Path, list: &WatchList) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let wanted: BTreeSet<&str> = list
        .entries
        .iter()
        .map(|e| e.image_sha256.as_str())
        .collect();
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut pending: Vec<PathBuf> = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let bytes = std::fs::read(entry.path())?;
                let sha = sha256_hex(&bytes);
                if wanted.contains(sha.as_str()) && seen.insert(sha.clone()) {
                    found.push((sha, bytes));
                }
            }
        }
    }
    Ok(found)
}

/// The folder holding `manifest.toml`: `dir` itself, or its only subfolder.
fn manifest_folder(dir: &Path) -> Option<PathBuf> {
    if dir.join("manifest.toml").is_file() {
        return Some(dir.to_path_buf());
    }
    let entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    match entries.as_slice() {
        [only]
            if only.file_type().ok()?.is_dir() && only.path().join("manifest.toml").is_file() =>
        {
            Some(only.path())
        }
        _ => None,
    }
}
