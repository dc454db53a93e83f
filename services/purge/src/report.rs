//! The retention report: per deployment, what alert data is held, why, and the day it will be
//! erased; every standing hold (reason, case reference, age) and those due for review. Built
//! from a [`Book`] by the purge service (each pass) and by `lfr retention report` and
//! `lfr retention holds`.

use crate::policy::{Fate, Policy};
use lfr_alerts::{Book, Entry};
use lfr_schemas::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

const DAY_NANOS: f64 = 86_400e9;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_at: Timestamp,
    pub retention_days: f64,
    /// Holds standing this long without review are due for one.
    pub review_days: f64,
    pub deployments: Vec<DeploymentReport>,
    /// Every standing hold, the arrests' included, oldest first.
    pub holds: Vec<HoldItem>,
    /// How many of `holds` are due for review.
    pub holds_due_review: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentReport {
    pub deployment: String,
    pub alerts: usize,
    /// Alerts kept by a hold (an arrest's, or one placed for a case).
    pub legal_holds: usize,
    pub overdue: usize,
    /// The earliest erasure date among its alerts not on hold.
    pub next_erasure: Option<Timestamp>,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub alert_id: String,
    pub category: &'static str,
    pub raised_at: Timestamp,
    /// pending, confirmed, rejected, or blue.
    pub state: &'static str,
    /// The current (latest) outcome.
    pub outcome: Option<&'static str>,
    /// Earlier outcomes a later one corrected, oldest first.
    pub corrected_outcomes: Vec<&'static str>,
    /// Why it is kept: "retention period", or the holds that apply, e.g.
    /// "legal hold (arrest); complaint COMP-7 (deployment)".
    pub held_for: String,
    pub erase_after: Option<Timestamp>,
    pub overdue: bool,
}

/// One standing hold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HoldItem {
    pub deployment: String,
    /// The alert held; none for a hold on the whole deployment.
    pub alert_id: Option<String>,
    /// complaint, access-request, investigation, or arrest.
    pub reason: &'static str,
    /// None for an arrest's hold (its release names the case).
    pub case_reference: Option<String>,
    /// Account that placed it (for an arrest: the officer who recorded it).
    pub placed_by: String,
    pub placed_at: Timestamp,
    /// Its last review (renewal); the placement if never reviewed.
    pub reviewed_at: Timestamp,
    /// Days since it was placed.
    pub age_days: f64,
    /// Days since its last review.
    pub days_since_review: f64,
    /// Standing longer than the review period without review.
    pub due_review: bool,
    /// Alerts it keeps now.
    pub alerts: usize,
}

pub fn build(book: &Book, policy: &Policy, now: Timestamp) -> Report {
    let mut by_deployment: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for entry in book.all() {
        by_deployment
            .entry(entry.alert.deployment.clone())
            .or_default()
            .push(entry);
    }
    let deployments = by_deployment
        .iter_mut()
        .map(|(deployment, entries)| {
            entries.sort_by_key(|e| e.seq);
            let items: Vec<Item> = entries.iter().map(|e| item(e, policy, now)).collect();
            DeploymentReport {
                deployment: deployment.clone(),
                alerts: items.len(),
                legal_holds: items.iter().filter(|i| i.erase_after.is_none()).count(),
                overdue: items.iter().filter(|i| i.overdue).count(),
                next_erasure: items.iter().filter_map(|i| i.erase_after).min(),
                items,
            }
        })
        .collect();
    let holds = holds(book, &by_deployment, policy, now);
    Report {
        generated_at: now,
        retention_days: policy.retention.as_secs_f64() / 86_400.0,
        review_days: policy.review.as_secs_f64() / 86_400.0,
        deployments,
        holds_due_review: holds.iter().filter(|h| h.due_review).count(),
        holds,
    }
}

/// Every standing hold: placed ones (of alerts still held, and of deployments) and arrests'.
fn holds(
    book: &Book,
    entries: &BTreeMap<String, Vec<Entry>>,
    policy: &Policy,
    now: Timestamp,
) -> Vec<HoldItem> {
    let days = |from: Timestamp| from.until(now).as_nanos() as f64 / DAY_NANOS;
    let mut out: Vec<HoldItem> = book
        .holds()
        .into_iter()
        .filter(|h| h.is_active())
        .map(|h| HoldItem {
            deployment: h.deployment().into(),
            alert_id: h.alert_id().map(String::from),
            reason: h.reason().as_str(),
            case_reference: Some(h.case_reference().into()),
            placed_by: h.placed.actor.clone(),
            placed_at: h.placed.placed_at,
            reviewed_at: h.reviewed_at,
            age_days: days(h.placed.placed_at),
            days_since_review: days(h.reviewed_at),
            due_review: policy.is_due_for_review(h.reviewed_at, now),
            alerts: match h.alert_id() {
                Some(_) => 1,
                None => entries.get(h.deployment()).map_or(0, Vec::len),
            },
        })
        .collect();
    for e in entries.values().flatten() {
        let Some(since) = e.legal_hold_since() else {
            continue;
        };
        out.push(HoldItem {
            deployment: e.alert.deployment.clone(),
            alert_id: Some(e.alert.alert_id.clone()),
            reason: "arrest",
            case_reference: None,
            placed_by: e.outcome().map(|o| o.actor.clone()).unwrap_or_default(),
            placed_at: since,
            reviewed_at: since,
            age_days: days(since),
            days_since_review: days(since),
            due_review: policy.is_due_for_review(since, now),
            alerts: 1,
        });
    }
    out.sort_by(|a, b| {
        (a.placed_at, &a.deployment, &a.alert_id).cmp(&(b.placed_at, &b.deployment, &b.alert_id))
    });
    out
}

fn item(e: &Entry, policy: &Policy, now: Timestamp) -> Item {
    let state = if e.is_blue() {
        "blue"
    } else {
        match &e.decision {
            None => "pending",
            Some(d) => d.decision.as_str(),
        }
    };
    let held_for = if policy.fate(e, now) == Fate::Hold {
        let mut why: Vec<String> = Vec::new();
        if e.on_legal_hold() {
            why.push("legal hold (arrest)".into());
        }
        for h in e.active_holds() {
            let scope = if h.alert_id().is_none() {
                " (deployment)"
            } else {
                ""
            };
            why.push(format!(
                "{} {}{scope}",
                h.reason().as_str(),
                h.case_reference()
            ));
        }
        why.join("; ")
    } else {
        "retention period".into()
    };
    Item {
        alert_id: e.alert.alert_id.clone(),
        category: e.alert.category.as_str(),
        raised_at: e.alert.raised_at,
        state,
        outcome: e.outcome().map(|o| o.outcome.as_str()),
        corrected_outcomes: e
            .corrected_outcomes()
            .iter()
            .map(|o| o.outcome.as_str())
            .collect(),
        held_for,
        erase_after: e.erase_after(policy.retention),
        overdue: policy.is_overdue(e, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_REVIEW;
    use lfr_schemas::{
        AlertDecision, AlertOutcome, Decision, HoldPlaced, HoldReason, Message, Outcome,
    };
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    fn day(n: u64) -> Timestamp {
        Timestamp(n * DAY.as_nanos() as u64)
    }

    #[test]
    fn standing_holds_show_their_reason_case_and_age_and_old_ones_are_due_for_review() {
        let book = Book::default();
        for (i, id) in ["a1", "a2"].into_iter().enumerate() {
            let seq = 10 * i as u64;
            let alert = lfr_testkit::candidate_alert(id, "d1", day(0));
            book.fold("lfr.alerts.d1.candidate", seq + 1, &alert.encode())
                .unwrap();
            let decision = AlertDecision {
                alert_id: id.into(),
                deployment: "d1".into(),
                decision: Decision::Confirmed,
                actor: "op".into(),
                reason: None,
                decided_at: day(0),
            };
            book.fold("lfr.alerts.d1.decision", seq + 2, &decision.encode())
                .unwrap();
        }
        let arrest = AlertOutcome {
            alert_id: "a2".into(),
            deployment: "d1".into(),
            outcome: Outcome::EngagedArrested,
            actor: "pc-1".into(),
            note: None,
            recorded_at: day(3),
        };
        book.fold("lfr.alerts.d1.outcome", 30, &arrest.encode())
            .unwrap();
        let hold = HoldPlaced {
            deployment: "d1".into(),
            alert_id: None,
            reason: HoldReason::Investigation,
            case_reference: "INV-3".into(),
            actor: "sup-1".into(),
            placed_at: day(1),
        };
        book.fold("lfr.alerts.d1.hold", 31, &hold.encode()).unwrap();
        let policy = Policy {
            retention: 30 * DAY,
            grace: Duration::from_secs(7200),
            review: DEFAULT_REVIEW,
        };
        let r = build(&book, &policy, day(92));
        assert_eq!(r.holds.len(), 2);
        let (inv, arrest) = (&r.holds[0], &r.holds[1]);
        assert_eq!(
            (inv.reason, inv.case_reference.as_deref(), inv.alerts),
            ("investigation", Some("INV-3"), 2)
        );
        assert_eq!(inv.age_days, 91.0);
        assert!(inv.due_review);
        assert_eq!(
            (arrest.reason, arrest.placed_by.as_str()),
            ("arrest", "pc-1")
        );
        assert!(!arrest.due_review, "90 days exactly: not yet");
        assert_eq!(r.holds_due_review, 1);
        let d = &r.deployments[0];
        assert_eq!(d.legal_holds, 2);
        assert_eq!(d.items[0].held_for, "investigation INV-3 (deployment)");
        assert_eq!(
            d.items[1].held_for,
            "legal hold (arrest); investigation INV-3 (deployment)"
        );
    }
}
