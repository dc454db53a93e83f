//! Placing and releasing holds: the one way any front end (`lfr retention hold`, `lfr access`, a
//! future console form) keeps alert data past its retention period for a named case.
//!
//! - [`place`] holds an alert, or every alert of a deployment (present and future), for a reason
//!   ([`HoldReason`]: complaint, access request, investigation) and a case reference. Placing a
//!   hold that already stands **renews** it: that is how a review that keeps it is recorded (its
//!   review date moves on, see `lfr retention holds --due-review`).
//! - [`release`] releases the hold that names the same alert or deployment and case; for an
//!   alert with no such hold, it releases the **arrest** hold (the legal hold an "arrested"
//!   outcome placed), naming the case it was kept for.
//!
//! Each is appended to ALERTS under the administrator's identity (`lfr.alerts.<deployment>.hold`,
//! `.lift`, `.release`: no other identity may publish them) and recorded on AUDIT as an
//! alteration by the person who acted, with the reason and the case. The [`Book`] given must be
//! current (e.g. [`crate::feed::snapshot`]): it is what the request is checked against.

use crate::book::{Book, Hold};
use lfr_common::audit::Audit;
use lfr_common::bus::Bus;
use lfr_schemas::{
    streams, subjects, AuditAction, AuditObject, HoldLifted, HoldPlaced, HoldReason, HoldReleased,
    Timestamp,
};

/// How long a hold may stand without review before it is listed for one, unless configured
/// (the purge service's `hold_review`): 90 days.
pub const DEFAULT_REVIEW: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

/// What a hold is placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One alert (by id).
    Alert(String),
    /// Every alert of a deployment, present and future (by deployment id).
    Deployment(String),
}

impl Target {
    /// The audit record's object: `alert/<id>` or `deployment/<id>`.
    pub fn object(&self) -> AuditObject {
        match self {
            Target::Alert(id) => AuditObject::Alert(id.clone()),
            Target::Deployment(id) => AuditObject::Deployment(id.clone()),
        }
    }

    fn alert(&self) -> Option<&str> {
        match self {
            Target::Alert(id) => Some(id),
            Target::Deployment(_) => None,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Alert(id) => write!(f, "alert {id}"),
            Target::Deployment(id) => write!(f, "deployment {id}"),
        }
    }
}

/// A request to place a hold.
pub struct HoldRequest<'a> {
    pub target: Target,
    pub reason: HoldReason,
    /// The force's case reference: required.
    pub case_reference: &'a str,
    /// Who places it (account id and role), as the audit record shows them.
    pub by: Audit<'a>,
    /// When (normally `Timestamp::now()`).
    pub at: Timestamp,
}

/// What [`place`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub hold: HoldPlaced,
    /// The hold already stood: this placement renewed it (a review that kept it).
    pub renewed: bool,
}

/// What [`release`] released.
#[derive(Debug, Clone, PartialEq)]
pub enum Released {
    /// A hold placed with [`place`].
    Hold { hold: Box<Hold>, lifted: HoldLifted },
    /// The legal hold of an arrest.
    Arrest(HoldReleased),
}

/// Why a hold could not be placed or released (the request is wrong, nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("a case reference is required (1-128 printable characters)")]
    CaseReference,
    #[error(transparent)]
    Deployment(#[from] subjects::InvalidToken),
    #[error("no alert {0} is held")]
    NoAlert(String),
    #[error(
        "{target} has no standing hold for case {case} (and is not under an arrest's legal hold)"
    )]
    NoHold { target: Target, case: String },
}

fn check_case(case_reference: &str) -> Result<&str, Refused> {
    let case = case_reference.trim();
    let ok = (1..=128).contains(&case.len()) && !case.chars().any(char::is_control);
    ok.then_some(case).ok_or(Refused::CaseReference)
}

/// The deployment `target` belongs to, checked against `book`.
fn deployment_of(book: &Book, target: &Target) -> Result<String, Refused> {
    match target {
        Target::Alert(id) => book
            .get(id)
            .map(|e| e.alert.deployment.clone())
            .ok_or_else(|| Refused::NoAlert(id.clone())),
        Target::Deployment(id) => {
            subjects::validate_token("deployment", id)?;
            Ok(id.clone())
        }
    }
}

/// The standing hold named by `target` and `case` in `book`.
fn standing(book: &Book, deployment: &str, target: &Target, case: &str) -> Option<Hold> {
    let holds = match target {
        Target::Alert(id) => book.get(id).map(|e| e.holds).unwrap_or_default(),
        Target::Deployment(id) => book.deployment_holds(id),
    };
    holds
        .into_iter()
        .find(|h| h.is_active() && h.is_named(deployment, target.alert(), case))
}

/// Place (or renew) a hold: appended to ALERTS, then recorded on AUDIT.
pub async fn place(bus: &Bus, book: &Book, request: HoldRequest<'_>) -> anyhow::Result<Placed> {
    let case = check_case(request.case_reference)?;
    let deployment = deployment_of(book, &request.target)?;
    let renewed = standing(book, &deployment, &request.target, case).is_some();
    let hold = HoldPlaced {
        deployment: deployment.clone(),
        alert_id: request.target.alert().map(String::from),
        reason: request.reason,
        case_reference: case.into(),
        actor: request.by.actor.into(),
        placed_at: request.at,
    };
    bus.publish_record(
        streams::ALERTS,
        subjects::holds_placed(&deployment),
        &format!("hold.{}.{}.{}", request.target.object(), case, request.at.0),
        &hold,
    )
    .await?
    .acknowledged()
    .await?;
    let why = if renewed {
        format!(
            "hold reviewed and kept ({}, case {case}): renewed",
            request.reason.as_str()
        )
    } else {
        format!(
            "hold placed ({}, case {case}): kept past the retention period until released",
            request.reason.as_str()
        )
    };
    request
        .by
        .event(AuditAction::Alteration, request.target.object())
        .deployment(&deployment)
        .why(why)
        .record(&bus.jetstream)
        .await?;
    Ok(Placed { hold, renewed })
}

/// Release the hold naming `target` and `case_reference`; for an alert without one, its
/// arrest's legal hold. Appended to ALERTS, then recorded on AUDIT.
pub async fn release(
    bus: &Bus,
    book: &Book,
    target: &Target,
    case_reference: &str,
    by: Audit<'_>,
    at: Timestamp,
) -> anyhow::Result<Released> {
    let case = check_case(case_reference)?;
    let deployment = deployment_of(book, target)?;
    let refused = || Refused::NoHold {
        target: target.clone(),
        case: case.into(),
    };
    let (released, why) = if let Some(hold) = standing(book, &deployment, target, case) {
        let lifted = HoldLifted {
            deployment: deployment.clone(),
            alert_id: target.alert().map(String::from),
            case_reference: case.into(),
            actor: by.actor.into(),
            lifted_at: at,
        };
        bus.publish_record(
            streams::ALERTS,
            subjects::holds_lifted(&deployment),
            &format!("lift.{}.{}.{}", target.object(), case, at.0),
            &lifted,
        )
        .await?
        .acknowledged()
        .await?;
        let why = format!(
            "hold released ({}, case {case}): ordinary retention applies unless another hold does",
            hold.reason().as_str()
        );
        (
            Released::Hold {
                hold: Box::new(hold),
                lifted,
            },
            why,
        )
    } else {
        let Target::Alert(alert) = target else {
            return Err(refused().into());
        };
        let entry = book.get(alert).ok_or_else(refused)?;
        if !entry.on_legal_hold() {
            return Err(refused().into());
        }
        let release = HoldReleased {
            alert_id: alert.clone(),
            deployment: deployment.clone(),
            actor: by.actor.into(),
            case_reference: case.into(),
            released_at: at,
        };
        bus.publish_record(
            streams::ALERTS,
            subjects::hold_releases(&deployment),
            // One release per arrest: a later arrest (after a correction) can be released too.
            &format!("{alert}.release.{}", entry.outcomes.len()),
            &release,
        )
        .await?
        .acknowledged()
        .await?;
        let why =
            format!("legal hold released (case {case}): ordinary retention applies unless another hold does");
        (Released::Arrest(release), why)
    };
    by.event(AuditAction::Alteration, target.object())
        .deployment(&deployment)
        .why(why)
        .record(&bus.jetstream)
        .await?;
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_references_are_required_and_printable() {
        assert_eq!(check_case("  CASE-1 ").unwrap(), "CASE-1");
        assert!(check_case(" ").is_err());
        assert!(check_case("A\nB").is_err());
        assert!(check_case(&"x".repeat(129)).is_err());
    }

    #[test]
    fn targets_name_their_audit_object() {
        assert_eq!(Target::Alert("a1".into()).object().to_string(), "alert/a1");
        assert_eq!(
            Target::Deployment("d1".into()).object().to_string(),
            "deployment/d1"
        );
    }
}
