//! Alerts: what the matcher raises, what an operator decides, and what happened on the ground.

use super::{FaceRef, Sealed, Timestamp};
use crate::wire::{Kind, Message};
use serde::{Deserialize, Serialize};

/// Why a person is on a watch list. `Blue` entries are staff volunteers whose alerts measure the
/// system's miss rate and are never sent to officers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WatchlistCategory {
    Wanted,
    MissingVulnerable,
    Risk,
    Blue,
}

impl WatchlistCategory {
    pub const ALL: [WatchlistCategory; 4] = [
        WatchlistCategory::Wanted,
        WatchlistCategory::MissingVulnerable,
        WatchlistCategory::Risk,
        WatchlistCategory::Blue,
    ];

    /// The name operators write in manifests and on the command line (and metrics use as a label).
    pub fn as_str(self) -> &'static str {
        match self {
            WatchlistCategory::Wanted => "wanted",
            WatchlistCategory::MissingVulnerable => "missing-vulnerable",
            WatchlistCategory::Risk => "risk",
            WatchlistCategory::Blue => "blue",
        }
    }

    pub fn parse(name: &str) -> Option<WatchlistCategory> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// A match that passed the deployment's threshold and corroboration rule, awaiting review.
///
/// Published on `lfr.alerts.<deployment>.candidate` for operators, or on
/// `lfr.alerts.<deployment>.blue` when the entry is a staff volunteer of the blue watch list: those
/// measure the system and go to the technical team only, never to officers.
///
/// The three images are [`Sealed`] under the deployment's data key (`lfr-vault`), each with the
/// associated data `lfr-alert-v1|<deployment>|<alert id>|<probe|context|reference>`: ALERTS is kept
/// on disk, and what is on disk holds no face in clear. Destroying the deployment's key makes all
/// three unreadable for good (docs/encryption.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateAlert {
    pub alert_id: String,
    pub deployment: String,
    pub raised_at: Timestamp,
    /// The probe face that matched (best-scoring frame of the track).
    pub probe: FaceRef,
    pub category: WatchlistCategory,
    /// Opaque watch-list entry reference; the subject's identity stays in the watch-list store.
    pub entry_ref: String,
    /// sha256 of the watch-list image that matched (a sealed copy is `reference_jpeg`).
    pub reference_image_sha256: String,
    /// Digest of the verified watch list the match was made against.
    pub watchlist_digest: String,
    pub score: f32,
    /// Frames of the track that matched the entry when the alert was raised...
    pub corroborating_frames: u16,
    /// ...out of the frames of the track seen so far.
    pub track_frames: u16,
    /// The probe chip (JPEG), sealed.
    pub probe_jpeg: Sealed,
    /// The upper-torso context crop (JPEG), sealed.
    pub context_jpeg: Sealed,
    /// A copy of the watch-list image the match was against (JPEG), sealed: the alert keeps it
    /// after the deployment's list is erased. Empty once opened if the store had no image.
    pub reference_jpeg: Sealed,
}

impl Message for CandidateAlert {
    const KIND: Kind = Kind::CandidateAlert;
    /// 2: images sealed, reference image carried.
    const VERSION: u8 = 2;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// The operator agrees: the alert goes to officers' handheld devices.
    Confirmed,
    /// The operator judged it a false alert: it never reaches an officer.
    RejectedFalseAlert,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Confirmed => "confirmed",
            Decision::RejectedFalseAlert => "rejected",
        }
    }
}

/// An operator's review of a candidate alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDecision {
    pub alert_id: String,
    pub deployment: String,
    pub decision: Decision,
    /// Account id of the operator, never a name.
    pub actor: String,
    pub reason: Option<String>,
    pub decided_at: Timestamp,
}

impl Message for AlertDecision {
    const KIND: Kind = Kind::AlertDecision;
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    EngagedArrested,
    EngagedNoFurtherAction,
    NotThePersonFalseAlert,
    NotLocated,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::EngagedArrested,
        Outcome::EngagedNoFurtherAction,
        Outcome::NotThePersonFalseAlert,
        Outcome::NotLocated,
    ];

    /// The name forms submit and metrics use as a label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::EngagedArrested => "arrested",
            Outcome::EngagedNoFurtherAction => "no-further-action",
            Outcome::NotThePersonFalseAlert => "false-alert",
            Outcome::NotLocated => "not-located",
        }
    }

    pub fn parse(name: &str) -> Option<Outcome> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// What an officer reads on the button.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::EngagedArrested => "Engaged: arrested",
            Outcome::EngagedNoFurtherAction => "Engaged: no further action",
            Outcome::NotThePersonFalseAlert => "Not the person (false alert)",
            Outcome::NotLocated => "Not located",
        }
    }
}

/// What officers recorded after a confirmed alert. An arrest places the alert under legal hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertOutcome {
    pub alert_id: String,
    pub deployment: String,
    pub outcome: Outcome,
    pub actor: String,
    pub note: Option<String>,
    pub recorded_at: Timestamp,
}

impl Message for AlertOutcome {
    const KIND: Kind = Kind::AlertOutcome;
    const VERSION: u8 = 1;
}

/// A supervisor released the legal hold an arrest placed on an alert, naming the case it was
/// kept for. From then on the alert's retention runs as for any other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldReleased {
    pub alert_id: String,
    pub deployment: String,
    /// Account id of the supervisor.
    pub actor: String,
    /// The force's case reference the data was held for.
    pub case_reference: String,
    pub released_at: Timestamp,
}

impl Message for HoldReleased {
    const KIND: Kind = Kind::HoldReleased;
    const VERSION: u8 = 1;
}

/// The purge service erased these alerts (every candidate, decision, outcome and release message
/// of each): readers of ALERTS forget them. Ids only: nothing of the erased data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsErased {
    pub deployment: String,
    pub alert_ids: Vec<String>,
    pub erased_at: Timestamp,
    /// Why, e.g. "retention period of 30 days ended".
    pub reason: String,
}

impl Message for AlertsErased {
    const KIND: Kind = Kind::AlertsErased;
    const VERSION: u8 = 1;
}
