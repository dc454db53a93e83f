//! A deployment and its lifecycle, with the DPIA's gates.
//!
//! ```text
//!  create ──> Draft ──activate──> Active ──end──> Ended (watch list wiped)
//!              │  ▲                                 ▲
//!              │  └ authorise, attach list, review  │
//!              └──────────────────end───────────────┘
//! ```
//!
//! `activate` refuses unless the deployment is authorised, a watch list is attached, and that exact
//! list (same digest) was reviewed no more than 48 hours before the deployment starts. Attaching
//! another list voids the review. The gates take the time as an argument, so they can be tested
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

/// How long before the start a review may be: the DPIA's "no more than 2 days before use".
pub const REVIEW_VALIDITY: Duration = Duration::from_secs(48 * 3600);
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Draft,
    Active,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authorisation {
    /// Account id of the authorising officer (superintendent or above, by force policy).
    pub officer: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachedList {
    pub digest: String,
    pub entries: usize,
    pub subjects: usize,
    pub model: String,
    pub attached_at: Timestamp,
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
    #[error("the watch list of deployment {deployment} was reviewed {hours_before:.1} hours before the start; the limit is 48")]
    ReviewTooOld {
        deployment: String,
        hours_before: f64,
    },
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
        })
    }

    fn draft(&self) -> Result<(), GateError> {
        match self.state {
            State::Draft => Ok(()),
            other => Err(GateError::NotDraft(self.id.clone(), other)),
        }
    }

    pub fn authorise(&mut self, officer: &str, now: Timestamp) -> Result<(), GateError> {
        self.draft()?;
        self.authorisation = Some(Authorisation {
            officer: officer.into(),
            at: now,
        });
        Ok(())
    }

    /// Attach a (new) list; any earlier review no longer counts.
    pub fn attach(&mut self, list: AttachedList) -> Result<(), GateError> {
        self.draft()?;
        self.watchlist = Some(list);
        self.review = None;
        Ok(())
    }

    /// Record that `reviewer` examined the list with `digest`.
    pub fn review(
        &mut self,
        reviewer: &str,
        digest: &str,
        now: Timestamp,
    ) -> Result<(), GateError> {
        self.draft()?;
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
        if self.authorisation.is_none() {
            return Err(GateError::NotAuthorised(self.id.clone()));
        }
        let list = self
            .watchlist
            .as_ref()
            .ok_or_else(|| GateError::NoWatchList(self.id.clone()))?;
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
        // Faces are first processed when the set-up window opens: the review must precede that.
        let before_start = review.at.until(self.opens_at());
        if before_start > REVIEW_VALIDITY {
            return Err(GateError::ReviewTooOld {
                deployment: self.id.clone(),
                hours_before: before_start.as_secs_f64() / 3600.0,
            });
        }
        Ok(())
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
    /// a list attached and `now` is inside its live window or a set-up window. Whether the list
    /// the matchers hold is the authorised one is a further gate ([`crate::coverage`]).
    pub fn phase(&self, now: Timestamp) -> Option<Phase> {
        if self.state != State::Active || self.watchlist.is_none() {
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
        })
        .unwrap()
    }

    fn list(digest: &str) -> AttachedList {
        AttachedList {
            digest: digest.into(),
            entries: 3,
            subjects: 2,
            model: "mobilefacenet".into(),
            attached_at: at(50),
        }
    }

    fn ready(review_hour: u64) -> Deployment {
        let mut d = draft();
        d.authorise("supt-17", at(40)).unwrap();
        d.attach(list("abc")).unwrap();
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
        d.review("insp-4", "abc", at(60)).unwrap();
        assert!(matches!(
            d.activate(at(99)),
            Err(GateError::NotAuthorised(_))
        ));
    }

    #[test]
    fn a_review_more_than_48_hours_before_the_start_is_refused() {
        assert!(matches!(
            ready(51).activate(at(99)),
            Err(GateError::ReviewTooOld { .. })
        ));
        ready(52).activate(at(99)).unwrap();
    }

    #[test]
    fn attaching_another_list_voids_the_review() {
        let mut d = ready(60);
        d.attach(list("def")).unwrap();
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
