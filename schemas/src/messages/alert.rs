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

/// What officers recorded after a confirmed alert. The **latest** outcome counts: a later one
/// corrects an earlier one (the console lets the officer who recorded an outcome correct it), and
/// every one stays on the record. An arrest as the latest outcome places the alert under legal
/// hold.
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

/// Why a hold keeps alert data past its retention period (besides an arrest, which holds an
/// alert through its outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HoldReason {
    /// A complaint about the deployment or an alert.
    Complaint,
    /// A subject access request (right of access): the data must outlive the request.
    AccessRequest,
    /// An investigation (professional standards, the regulator, a court).
    Investigation,
}

impl HoldReason {
    pub const ALL: [HoldReason; 3] = [
        HoldReason::Complaint,
        HoldReason::AccessRequest,
        HoldReason::Investigation,
    ];

    /// The name written on the command line, in reports and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Complaint => "complaint",
            HoldReason::AccessRequest => "access-request",
            HoldReason::Investigation => "investigation",
        }
    }

    pub fn parse(name: &str) -> Option<HoldReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A hold placed on one alert, or on every alert of a deployment (present and future), for a
/// named case: while it stands, retention erases none of the data it covers.
///
/// Published by the administrator (`lfr retention hold`) on `lfr.alerts.<deployment>.hold`. A
/// hold is named by its deployment, its alert (or none, for the whole deployment) and its case
/// reference; placing the same hold again while it stands renews it (its review is recorded),
/// and [`HoldLifted`] naming the same three releases it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldPlaced {
    pub deployment: String,
    /// The alert held; `None` holds every alert of the deployment.
    pub alert_id: Option<String>,
    pub reason: HoldReason,
    /// The force's case reference (complaint, request or investigation number).
    pub case_reference: String,
    /// Account id of the person placing it, never a name.
    pub actor: String,
    pub placed_at: Timestamp,
}

impl Message for HoldPlaced {
    const KIND: Kind = Kind::HoldPlaced;
    const VERSION: u8 = 1;
}

/// A hold placed by [`HoldPlaced`] was released (`lfr retention release`), naming the same
/// deployment, alert (or none) and case reference. Retention then runs as usual for what it held,
/// unless another hold still applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldLifted {
    pub deployment: String,
    pub alert_id: Option<String>,
    pub case_reference: String,
    /// Account id of the person releasing it.
    pub actor: String,
    pub lifted_at: Timestamp,
}

impl Message for HoldLifted {
    const KIND: Kind = Kind::HoldLifted;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_round_trip_and_reasons_parse_by_name() {
        for r in HoldReason::ALL {
            assert_eq!(HoldReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(HoldReason::parse("arrest"), None);
        let placed = HoldPlaced {
            deployment: "d1".into(),
            alert_id: None,
            reason: HoldReason::Complaint,
            case_reference: "COMP-7".into(),
            actor: "sup-1".into(),
            placed_at: Timestamp(5),
        };
        assert_eq!(HoldPlaced::decode(&placed.encode()).unwrap(), placed);
        let lifted = HoldLifted {
            deployment: "d1".into(),
            alert_id: Some("a1".into()),
            case_reference: "COMP-7".into(),
            actor: "sup-1".into(),
            lifted_at: Timestamp(6),
        };
        assert_eq!(HoldLifted::decode(&lifted.encode()).unwrap(), lifted);
        assert!(
            HoldLifted::decode(&placed.encode()).is_err(),
            "kinds differ"
        );
    }
}
