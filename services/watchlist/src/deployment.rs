//! A deployment and its lifecycle, with the DPIA's gates.
//!
//! ```text
//!  create ──> Draft ──activate──> Active ──end──> Ended (watch list wiped)
//!              │  ▲                                 ▲
//!              │  └ authorise, attach list, review  │
//!              └──────────────────end───────────────┘
//! ```
//!
//! `activate` refuses unless the deployment's governance record is complete, a watch list is
//! attached, an officer of [`AUTHORISING_RANK`] or above authorised that exact list (same digest),
//! and that exact list was reviewed no more than 48 hours before the moment of activation. Duties
//! are separated: whoever enrolled the list can neither authorise nor review it. Attaching another
//! list, or changing the governance record, voids the authorisation and the review.
//!
//! A review lasts 48 hours ([`REVIEW_VALIDITY`]), also while the deployment runs: once it has
//! lapsed the deployment is [`Deployment::paused`] (no capture, no matching, no alerts) until the
//! same list is reviewed again. The gates take the time as an argument, so they can be tested
//! at any moment of a deployment's life.
//!
//! An active deployment's day has up to three phases ([`Phase`]): an optional **set-up window**
//! before the start, the **live** window from `starts_at` to `ends_at`, and the same set-up
//! window after the end. The DPIA's blue-list walks ("before, during and after") happen in the
//! set-up windows, where only the blue watch list is matched and nothing reaches an officer.
//! Outside every phase no camera of the deployment is captured at all.

use lfr_schemas::{subjects, Timestamp, WatchlistCategory};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a review of the list stands: the DPIA's "no more than 2 days before use", at
/// activation and for as long as the deployment runs.
pub const REVIEW_VALIDITY: Duration = Duration::from_secs(48 * 3600);
/// The lowest rank that may authorise a deployment (the authorising officer, by force policy).
pub const AUTHORISING_RANK: Rank = Rank::Superintendent;
/// The longest set-up window an operator may declare on either side of the live window.
pub const MAX_SETUP_WINDOW: Duration = Duration::from_secs(2 * 3600);

/// What an active deployment's cameras are for at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Before the start or after the end, inside the declared set-up window: only the blue
    /// watch list is matched (staff volunteers walking past), and nothing reaches officers.
    SetUp,
    /// Inside the authorised window: the whole list is matched.
    Live,
}

/// Why an active deployment inside its windows is not processing faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pause {
    /// The last review is more than [`REVIEW_VALIDITY`] old (since `since`): review the list again.
    ReviewLapsed { since: Timestamp },
}

/// Police ranks, lowest first, as accounts carry them (`superintendent`, `chief-inspector`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rank {
    Constable,
    Sergeant,
    Inspector,
    ChiefInspector,
    Superintendent,
    ChiefSuperintendent,
    Commander,
    AssistantChiefConstable,
    DeputyChiefConstable,
    ChiefConstable,
}

impl Rank {
    pub const ALL: [Rank; 10] = [
        Rank::Constable,
        Rank::Sergeant,
        Rank::Inspector,
        Rank::ChiefInspector,
        Rank::Superintendent,
        Rank::ChiefSuperintendent,
        Rank::Commander,
        Rank::AssistantChiefConstable,
        Rank::DeputyChiefConstable,
        Rank::ChiefConstable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rank::Constable => "constable",
            Rank::Sergeant => "sergeant",
            Rank::Inspector => "inspector",
            Rank::ChiefInspector => "chief-inspector",
            Rank::Superintendent => "superintendent",
            Rank::ChiefSuperintendent => "chief-superintendent",
            Rank::Commander => "commander",
            Rank::AssistantChiefConstable => "assistant-chief-constable",
            Rank::DeputyChiefConstable => "deputy-chief-constable",
            Rank::ChiefConstable => "chief-constable",
        }
    }
}

impl std::fmt::Display for Rank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Rank {
    type Err = String;

    fn from_str(s: &str) -> Result<Rank, String> {
        let wanted = s.trim().to_ascii_lowercase().replace([' ', '_'], "-");
        Rank::ALL
            .into_iter()
            .find(|r| r.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<_> = Rank::ALL.iter().map(|r| r.as_str()).collect();
                format!("no rank {s:?}: {}", names.join(", "))
            })
    }
}

/// How the deployment is governed, as the DPIA and the authority's policy require it to be
/// written down before an authorising officer signs: who commands, what for, on what
/// intelligence, and how the public is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Governance {
    /// Strategic commander (gold): name or collar number and rank.
    pub gold: String,
    /// Tactical commander (silver).
    pub silver: String,
    /// Operational commander(s) (bronze) on the ground.
    pub bronze: String,
    /// The operational objectives, as the authorisation states them.
    pub objectives: String,
    /// The intelligence case reference the watch list is drawn from.
    pub intelligence_case: String,
    /// Signage and notices given to the public (where signs stand, press notice, web page).
    pub signage: String,
}

impl Governance {
    /// The fields left blank, by name.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("gold", &self.gold),
            ("silver", &self.silver),
            ("bronze", &self.bronze),
            ("objectives", &self.objectives),
            ("intelligence case", &self.intelligence_case),
            ("signage", &self.signage),
        ]
        .into_iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(name, _)| name)
        .collect()
    }
}

/// A threshold looser than the embedder's calibrated point, and who allowed it and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOverride {
    /// The calibrated 1-in-1,000 point the deployment's thresholds go below.
    pub calibrated: f32,
    pub reason: String,
    pub by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Draft,
    Active,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authorisation {
    /// Account id of the authorising officer ([`AUTHORISING_RANK`] or above).
    pub officer: String,
    /// The officer's rank when they authorised (records before ranks were kept have none).
    #[serde(default)]
    pub rank: Option<Rank>,
    /// The digest of the list authorised: void once another list is attached.
    #[serde(default)]
    pub digest: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachedList {
    pub digest: String,
    pub entries: usize,
    pub subjects: usize,
    pub model: String,
    pub attached_at: Timestamp,
    /// Account id of whoever enrolled it: they may neither authorise nor review it.
    #[serde(default)]
    pub enrolled_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub reviewer: String,
    pub at: Timestamp,
    /// The digest the reviewer signed off: must equal the attached list's.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub name: String,
    pub location: String,
    pub cameras: Vec<String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// The stated purpose, as authorised.
    pub purpose: String,
    pub state: State,
    pub authorisation: Option<Authorisation>,
    pub watchlist: Option<AttachedList>,
    pub review: Option<Review>,
    /// Similarity at or above which a probe matches, per category (absent: `default_threshold`).
    pub thresholds: BTreeMap<WatchlistCategory, f32>,
    pub default_threshold: f32,
    /// Seconds of set-up window before the start and after the end (blue-list walks); 0: none.
    #[serde(default)]
    pub setup_window_secs: u64,
    pub ended_at: Option<Timestamp>,
    /// Command structure, objectives, intelligence case, signage: required before authorisation.
    #[serde(default)]
    pub governance: Option<Governance>,
    /// Present when a threshold is looser than the embedder's calibrated point.
    #[serde(default)]
    pub threshold_override: Option<ThresholdOverride>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    #[error("deployment {0} is {1:?}; only a draft can be changed or activated")]
    NotDraft(String, State),
    #[error("deployment {0} is not authorised")]
    NotAuthorised(String),
    #[error("deployment {0} has no watch list attached")]
    NoWatchList(String),
    #[error("the watch list of deployment {0} has not been reviewed")]
    NotReviewed(String),
    #[error("the review of deployment {deployment} signed off list {reviewed}, but list {attached} is attached")]
    ReviewedAnotherList {
        deployment: String,
        reviewed: String,
        attached: String,
    },
    #[error("the watch list of deployment {deployment} was reviewed {hours_ago:.1} hours ago; a review stands for 48 hours: review it again")]
    ReviewTooOld { deployment: String, hours_ago: f64 },
    #[error("deployment {deployment} authorised list {authorised}, but list {attached} is attached: authorise it again")]
    AuthorisedAnotherList {
        deployment: String,
        authorised: String,
        attached: String,
    },
    #[error("deployment {0} has no complete governance record (missing: {1}); record it before authorisation")]
    NoGovernance(String, String),
    /// The acting account may not take this step (separated duties, rank, a shared token).
    #[error("{0}")]
    Forbidden(String),
    #[error("deployment {0} has already ended its scheduled time")]
    Over(String),
    #[error("deployment {0} has ended")]
    Ended(String),
    #[error("invalid deployment: {0}")]
    Invalid(String),
}

/// What an operator supplies to create a deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewDeployment {
    pub id: String,
    pub name: String,
    pub location: String,
    pub cameras: Vec<String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub purpose: String,
    pub default_threshold: f32,
    /// Thresholds for some categories, where they differ from the default (e.g. a higher one for
    /// `risk`, where a false alert weighs more).
    #[serde(default)]
    pub thresholds: BTreeMap<WatchlistCategory, f32>,
    /// Seconds of set-up window before the start and after the end, for blue-list walks.
    #[serde(default)]
    pub setup_window_secs: u64,
    /// May be supplied at creation, or later with [`Deployment::govern`].
    #[serde(default)]
    pub governance: Option<Governance>,
    #[serde(default)]
    pub threshold_override: Option<ThresholdOverride>,
}

/// Per-category thresholds as operators name them (`risk` = 0.7), refusing unknown categories.
pub fn category_thresholds(
    named: impl IntoIterator<Item = (String, f32)>,
) -> Result<BTreeMap<WatchlistCategory, f32>, GateError> {
    named
        .into_iter()
        .map(|(name, threshold)| {
            let category = WatchlistCategory::parse(&name).ok_or_else(|| {
                GateError::Invalid(format!(
                    "unknown watch-list category {name:?} (wanted, missing-vulnerable, risk, blue)"
                ))
            })?;
            Ok((category, threshold))
        })
        .collect()
}

impl Deployment {
    pub fn create(new: NewDeployment) -> Result<Deployment, GateError> {
        subjects::validate_token("deployment", &new.id)
            .map_err(|e| GateError::Invalid(e.to_string()))?;
        for cam in &new.cameras {
            subjects::validate_token("camera", cam)
                .map_err(|e| GateError::Invalid(e.to_string()))?;
        }
        if new.ends_at <= new.starts_at {
            return Err(GateError::Invalid(
                "the deployment must end after it starts".into(),
            ));
        }
        if new.purpose.trim().is_empty() {
            return Err(GateError::Invalid("a stated purpose is required".into()));
        }
        for threshold in std::iter::once(&new.default_threshold).chain(new.thresholds.values()) {
            if !(0.0..=1.0).contains(threshold) {
                return Err(GateError::Invalid(
                    "a threshold must be a similarity in 0..1".into(),
                ));
            }
        }
        if Duration::from_secs(new.setup_window_secs) > MAX_SETUP_WINDOW {
            return Err(GateError::Invalid(format!(
                "a set-up window is at most {} minutes",
                MAX_SETUP_WINDOW.as_secs() / 60
            )));
        }
        Ok(Deployment {
            id: new.id,
            name: new.name,
            location: new.location,
            cameras: new.cameras,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            purpose: new.purpose,
            state: State::Draft,
            authorisation: None,
            watchlist: None,
            review: None,
            thresholds: new.thresholds,
            default_threshold: new.default_threshold,
            setup_window_secs: new.setup_window_secs,
            ended_at: None,
            governance: new.governance,
            threshold_override: new.threshold_override,
        })
    }

    /// The lowest threshold the deployment matches at (any category).
    pub fn lowest_threshold(&self) -> f32 {
        self.thresholds
            .values()
            .copied()
            .fold(self.default_threshold, f32::min)
    }

    fn draft(&self) -> Result<(), GateError> {
        match self.state {
            State::Draft => Ok(()),
            other => Err(GateError::NotDraft(self.id.clone(), other)),
        }
    }

    /// Record the governance of the deployment; any earlier authorisation no longer counts (the
    /// officer authorised what the record said then).
    pub fn govern(&mut self, governance: Governance) -> Result<(), GateError> {
        self.draft()?;
        self.governance = Some(governance);
        self.authorisation = None;
        Ok(())
    }

    /// `officer` of `rank` authorises the attached list (by its digest), under the governance
    /// record as it stands. The officer may not be whoever enrolled the list.
    pub fn authorise(
        &mut self,
        officer: &str,
        rank: Rank,
        now: Timestamp,
    ) -> Result<(), GateError> {
        self.draft()?;
        if rank < AUTHORISING_RANK {
            return Err(GateError::Forbidden(format!(
                "a deployment is authorised by a {AUTHORISING_RANK} or above; {officer} is a {rank}"
            )));
        }
        let missing = self
            .governance
            .as_ref()
            .map_or_else(|| vec!["the whole record"], |g| g.missing());
        if !missing.is_empty() {
            return Err(GateError::NoGovernance(self.id.clone(), missing.join(", ")));
        }
        let list = self
            .watchlist
            .as_ref()
            .ok_or_else(|| GateError::NoWatchList(self.id.clone()))?;
        if list.enrolled_by == officer {
            return Err(GateError::Forbidden(format!(
                "{officer} enrolled the watch list of {} and may not authorise it",
                self.id
            )));
        }
        self.authorisation = Some(Authorisation {
            officer: officer.into(),
            rank: Some(rank),
            digest: list.digest.clone(),
            at: now,
        });
        Ok(())
    }

    /// Attach a (new) list; any earlier authorisation and review no longer count.
    pub fn attach(&mut self, list: AttachedList) -> Result<(), GateError> {
        self.draft()?;
        self.watchlist = Some(list);
        self.authorisation = None;
        self.review = None;
        Ok(())
    }

    /// Record that `reviewer` examined the list with `digest`: before activation, or again while
    /// the deployment runs (a review stands for [`REVIEW_VALIDITY`]). The reviewer may not be
    /// whoever enrolled the list.
    pub fn review(
        &mut self,
        reviewer: &str,
        digest: &str,
        now: Timestamp,
    ) -> Result<(), GateError> {
        if self.state == State::Ended {
            return Err(GateError::Ended(self.id.clone()));
        }
        let attached = self
            .watchlist
            .as_ref()
            .ok_or_else(|| GateError::NoWatchList(self.id.clone()))?;
        if attached.digest != digest {
            return Err(GateError::ReviewedAnotherList {
                deployment: self.id.clone(),
                reviewed: digest.into(),
                attached: attached.digest.clone(),
            });
        }
        if attached.enrolled_by == reviewer {
            return Err(GateError::Forbidden(format!(
                "{reviewer} enrolled the watch list of {} and may not review it",
                self.id
            )));
        }
        self.review = Some(Review {
            reviewer: reviewer.into(),
            at: now,
            digest: digest.into(),
        });
        Ok(())
    }

    /// Every gate that stands between this deployment and going live at `now`.
    pub fn check_activation(&self, now: Timestamp) -> Result<(), GateError> {
        self.draft()?;
        if now >= self.ends_at {
            return Err(GateError::Over(self.id.clone()));
        }
        let list = self
            .watchlist
            .as_ref()
            .ok_or_else(|| GateError::NoWatchList(self.id.clone()))?;
        let authorisation = self
            .authorisation
            .as_ref()
            .ok_or_else(|| GateError::NotAuthorised(self.id.clone()))?;
        if authorisation.digest != list.digest {
            return Err(GateError::AuthorisedAnotherList {
                deployment: self.id.clone(),
                authorised: authorisation.digest.clone(),
                attached: list.digest.clone(),
            });
        }
        let review = self
            .review
            .as_ref()
            .ok_or_else(|| GateError::NotReviewed(self.id.clone()))?;
        if review.digest != list.digest {
            return Err(GateError::ReviewedAnotherList {
                deployment: self.id.clone(),
                reviewed: review.digest.clone(),
                attached: list.digest.clone(),
            });
        }
        let age = review.at.until(now);
        if age > REVIEW_VALIDITY {
            return Err(GateError::ReviewTooOld {
                deployment: self.id.clone(),
                hours_ago: age.as_secs_f64() / 3600.0,
            });
        }
        Ok(())
    }

    /// When the standing review lapses (none: never reviewed).
    pub fn review_lapses_at(&self) -> Option<Timestamp> {
        self.review
            .as_ref()
            .map(|r| Timestamp(r.at.0.saturating_add(REVIEW_VALIDITY.as_nanos() as u64)))
    }

    /// Why an active deployment inside one of its windows processes no faces at `now`, if it
    /// does not: its review has lapsed.
    pub fn paused(&self, now: Timestamp) -> Option<Pause> {
        if self.state != State::Active || now < self.opens_at() || now >= self.closes_at() {
            return None;
        }
        match self.review_lapses_at() {
            Some(lapsed) if now < lapsed => None,
            Some(since) => Some(Pause::ReviewLapsed { since }),
            None => Some(Pause::ReviewLapsed { since: now }),
        }
    }

    pub fn activate(&mut self, now: Timestamp) -> Result<(), GateError> {
        self.check_activation(now)?;
        self.state = State::Active;
        Ok(())
    }

    pub fn end(&mut self, now: Timestamp) -> Result<(), GateError> {
        if self.state == State::Ended {
            return Err(GateError::Ended(self.id.clone()));
        }
        self.state = State::Ended;
        self.ended_at = Some(now);
        Ok(())
    }

    /// When the first set-up window opens (the start, without one).
    pub fn opens_at(&self) -> Timestamp {
        Timestamp(
            self.starts_at
                .0
                .saturating_sub(self.setup_window().as_nanos() as u64),
        )
    }

    /// When the last set-up window closes (the end, without one): the deployment is over.
    pub fn closes_at(&self) -> Timestamp {
        Timestamp(
            self.ends_at
                .0
                .saturating_add(self.setup_window().as_nanos() as u64),
        )
    }

    pub fn setup_window(&self) -> Duration {
        Duration::from_secs(self.setup_window_secs)
    }

    /// What the deployment's cameras are for at `now`: nothing (`None`) unless it is active with
    /// a list attached, not [`Deployment::paused`], and `now` is inside its live window or a
    /// set-up window. Whether the list
    /// the matchers hold is the authorised one is a further gate ([`crate::coverage`]).
    pub fn phase(&self, now: Timestamp) -> Option<Phase> {
        if self.state != State::Active || self.watchlist.is_none() || self.paused(now).is_some() {
            return None;
        }
        if self.starts_at <= now && now < self.ends_at {
            Some(Phase::Live)
        } else if self.opens_at() <= now && now < self.closes_at() {
            Some(Phase::SetUp)
        } else {
            None
        }
    }

    /// The threshold for an entry of `category`.
    pub fn threshold(&self, category: WatchlistCategory) -> f32 {
        self.thresholds
            .get(&category)
            .copied()
            .unwrap_or(self.default_threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000_000_000;

    fn at(hours: u64) -> Timestamp {
        Timestamp(1_800_000_000_000_000_000 + hours * HOUR)
    }

    /// Starts at hour 100, ends at hour 110.
    fn draft() -> Deployment {
        Deployment::create(NewDeployment {
            id: "match-day-1".into(),
            name: "Match day".into(),
            location: "North gate".into(),
            cameras: vec!["gate-1".into()],
            starts_at: at(100),
            ends_at: at(110),
            purpose: "Locate wanted offenders attending the match".into(),
            default_threshold: 0.6,
            thresholds: category_thresholds([("risk".to_string(), 0.7)]).unwrap(),
            setup_window_secs: 0,
            governance: Some(governance()),
            threshold_override: None,
        })
        .unwrap()
    }

    fn governance() -> Governance {
        Governance {
            gold: "ACC Smith".into(),
            silver: "Supt Jones".into(),
            bronze: "Insp Patel".into(),
            objectives: "Locate wanted offenders".into(),
            intelligence_case: "INT/2026/0042".into(),
            signage: "Signs at every gate; press notice".into(),
        }
    }

    fn list(digest: &str) -> AttachedList {
        AttachedList {
            digest: digest.into(),
            entries: 3,
            subjects: 2,
            model: "mobilefacenet".into(),
            attached_at: at(50),
            enrolled_by: "sgt-12".into(),
        }
    }

    fn ready(review_hour: u64) -> Deployment {
        let mut d = draft();
        d.attach(list("abc")).unwrap();
        d.authorise("supt-17", Rank::Superintendent, at(51))
            .unwrap();
        d.review("insp-4", "abc", at(review_hour)).unwrap();
        d
    }

    #[test]
    fn a_reviewed_authorised_deployment_activates() {
        let mut d = ready(60);
        d.activate(at(99)).unwrap();
        assert_eq!(d.state, State::Active);
    }

    #[test]
    fn activation_needs_authorisation() {
        let mut d = draft();
        d.attach(list("abc")).unwrap();
        d.review("insp-4", "abc", at(98)).unwrap();
        assert!(matches!(
            d.activate(at(99)),
            Err(GateError::NotAuthorised(_))
        ));
    }

    #[test]
    fn a_review_more_than_48_hours_before_activation_is_refused() {
        // Reviewed at hour 50; activated 49 hours later: refused, 48 hours later: accepted.
        assert!(matches!(
            ready(50).activate(at(99)),
            Err(GateError::ReviewTooOld { .. })
        ));
        ready(51).activate(at(99)).unwrap();
    }

    #[test]
    fn a_running_deployment_pauses_48_hours_after_its_review_until_reviewed_again() {
        let mut d = ready(90);
        d.ends_at = at(200);
        d.activate(at(99)).unwrap();
        assert_eq!(d.phase(at(100)), Some(Phase::Live));
        assert_eq!(
            d.phase(at(137)),
            Some(Phase::Live),
            "47 hours after the review"
        );
        let lapsed = at(90 + 48);
        assert_eq!(
            d.paused(lapsed),
            Some(Pause::ReviewLapsed { since: lapsed })
        );
        assert_eq!(d.phase(lapsed), None, "no capture, no matching");
        d.review("insp-4", "abc", at(139)).unwrap();
        assert_eq!(d.phase(at(139)), Some(Phase::Live));
        assert_eq!(d.paused(at(139)), None);
        // Outside its windows a deployment is not "paused", just closed.
        assert_eq!(d.paused(at(200)), None);
    }

    #[test]
    fn duties_are_separated_and_an_authorisation_names_the_list() {
        let mut d = draft();
        d.attach(list("abc")).unwrap();
        let own = d.authorise("sgt-12", Rank::ChiefConstable, at(51));
        assert!(matches!(own, Err(GateError::Forbidden(_))), "{own:?}");
        let own = d.review("sgt-12", "abc", at(51));
        assert!(matches!(own, Err(GateError::Forbidden(_))), "{own:?}");
        let junior = d.authorise("insp-4", Rank::ChiefInspector, at(51));
        assert!(matches!(junior, Err(GateError::Forbidden(_))), "{junior:?}");
        d.authorise("supt-17", Rank::Superintendent, at(51))
            .unwrap();
        let a = d.authorisation.as_ref().unwrap();
        assert_eq!(
            (a.digest.as_str(), a.rank),
            ("abc", Some(Rank::Superintendent))
        );
    }

    #[test]
    fn authorisation_needs_a_complete_governance_record_and_a_list() {
        let mut d = draft();
        assert!(matches!(
            d.authorise("supt-17", Rank::Superintendent, at(51)),
            Err(GateError::NoWatchList(_))
        ));
        d.attach(list("abc")).unwrap();
        let mut partial = governance();
        partial.signage = " ".into();
        d.govern(partial).unwrap();
        let err = d
            .authorise("supt-17", Rank::Superintendent, at(51))
            .unwrap_err();
        assert!(
            matches!(&err, GateError::NoGovernance(_, m) if m == "signage"),
            "{err}"
        );
        d.govern(governance()).unwrap();
        d.authorise("supt-17", Rank::Superintendent, at(51))
            .unwrap();
        // Changing the record voids the authorisation given under the old one.
        d.govern(governance()).unwrap();
        assert!(d.authorisation.is_none());
    }

    #[test]
    fn re_enrolment_voids_the_authorisation_and_the_review() {
        let mut d = ready(60);
        d.attach(list("def")).unwrap();
        assert!(matches!(
            d.activate(at(99)),
            Err(GateError::NotAuthorised(_))
        ));
        d.authorise("supt-17", Rank::Superintendent, at(61))
            .unwrap();
        assert!(matches!(d.activate(at(99)), Err(GateError::NotReviewed(_))));
        let err = d.review("insp-4", "abc", at(61)).unwrap_err();
        assert!(
            matches!(err, GateError::ReviewedAnotherList { .. }),
            "{err}"
        );
    }

    #[test]
    fn an_ended_or_expired_deployment_never_activates() {
        assert!(matches!(
            ready(60).activate(at(110)),
            Err(GateError::Over(_))
        ));
        let mut d = ready(60);
        d.end(at(70)).unwrap();
        assert!(matches!(
            d.activate(at(99)),
            Err(GateError::NotDraft(_, State::Ended))
        ));
        assert!(matches!(d.end(at(71)), Err(GateError::Ended(_))));
    }

    #[test]
    fn a_category_may_have_its_own_threshold() {
        let d = draft();
        assert_eq!(d.threshold(WatchlistCategory::Risk), 0.7);
        assert_eq!(d.threshold(WatchlistCategory::Wanted), 0.6);
        assert!(category_thresholds([("suspects".to_string(), 0.5)]).is_err());
        let mut too_high = NewDeployment {
            id: "x".into(),
            name: String::new(),
            location: String::new(),
            cameras: vec![],
            starts_at: at(1),
            ends_at: at(2),
            purpose: "p".into(),
            default_threshold: 0.6,
            thresholds: BTreeMap::new(),
            setup_window_secs: 0,
            governance: None,
            threshold_override: None,
        };
        too_high.thresholds.insert(WatchlistCategory::Blue, 1.5);
        assert!(Deployment::create(too_high).is_err());
    }

    #[test]
    fn nonsense_deployments_are_refused() {
        let mut bad = NewDeployment {
            id: "bad id".into(),
            name: String::new(),
            location: String::new(),
            cameras: vec![],
            starts_at: at(2),
            ends_at: at(1),
            purpose: String::new(),
            default_threshold: 0.6,
            thresholds: BTreeMap::new(),
            setup_window_secs: 0,
            governance: None,
            threshold_override: None,
        };
        assert!(Deployment::create(bad.clone()).is_err());
        bad.id = "ok".into();
        assert!(
            Deployment::create(bad.clone()).is_err(),
            "ends before it starts"
        );
        bad.ends_at = at(3);
        assert!(Deployment::create(bad).is_err(), "no purpose");
    }
}
