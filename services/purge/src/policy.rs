//! Retention policy: what becomes of one alert's data at a given moment.
//!
//! - Alert data is kept for the **retention period** (default 30 days) from the moment the alert
//!   was raised, then erased.
//! - A **hold** keeps an alert, whatever its age, while any applies: an arrest as its latest
//!   outcome (legal hold, until a supervisor releases it naming the case; a corrected outcome
//!   lifts it), or a hold for a complaint, an access request or an investigation placed on the
//!   alert or on its whole deployment, until released. Then the retention period applies as usual
//!   (an alert already older than it is erased at the next pass).
//! - A standing hold not reviewed (placed, or renewed by placing it again) for the **review
//!   period** (default 90 days) is **due for review** (DPA 2018 s.39(2)): listed by
//!   `lfr retention holds --due-review` and counted in `lfr_purge_holds_due_review`. An arrest
//!   hold's age runs from the arrest.
//! - An alert still present more than a grace period (two purge intervals) after its erasure date
//!   is **overdue**: a failure the operations team must see (`lfr_purge_overdue` must stay 0).

use lfr_alerts::Entry;
use lfr_schemas::Timestamp;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Kept until the given time.
    Keep { until: Timestamp },
    /// Kept under a hold (an arrest's, or one placed for a case) until released.
    Hold,
    /// Erase now.
    Erase,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retention: Duration,
    /// How late an erasure may be before it counts as overdue.
    pub grace: Duration,
    /// How long a hold may stand without review before it is listed for one.
    pub review: Duration,
}

/// The review period of holds unless configured: 90 days.
pub const DEFAULT_REVIEW: Duration = lfr_alerts::holds::DEFAULT_REVIEW;

impl Policy {
    pub fn fate(&self, entry: &Entry, now: Timestamp) -> Fate {
        match entry.erase_after(self.retention) {
            None => Fate::Hold,
            Some(due) if now >= due => Fate::Erase,
            Some(due) => Fate::Keep { until: due },
        }
    }

    /// Whether a hold that stands since `since` (placed, renewed, or the arrest) is due for
    /// review at `now`.
    pub fn is_due_for_review(&self, since: Timestamp, now: Timestamp) -> bool {
        since.until(now) >= self.review
    }

    /// Past its erasure date by more than the grace period, and still here.
    pub fn is_overdue(&self, entry: &Entry, now: Timestamp) -> bool {
        entry
            .erase_after(self.retention)
            .is_some_and(|due| due.until(now) > self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfr_alerts::Book;
    use lfr_schemas::{
        AlertDecision, AlertOutcome, Decision, HoldLifted, HoldPlaced, HoldReason, Message, Outcome,
    };

    const DAY: Duration = Duration::from_secs(86_400);

    fn day(n: u64) -> Timestamp {
        Timestamp(n * DAY.as_nanos() as u64)
    }

    /// An alert raised on day 0, confirmed, with `outcome` recorded.
    fn entry(outcome: Option<Outcome>) -> Entry {
        let book = Book::default();
        let alert = lfr_testkit::candidate_alert("a1", "d1", day(0));
        book.fold("lfr.alerts.d1.candidate", 1, &alert.encode())
            .unwrap();
        let decision = AlertDecision {
            alert_id: "a1".into(),
            deployment: "d1".into(),
            decision: Decision::Confirmed,
            actor: "op".into(),
            reason: None,
            decided_at: day(0),
        };
        book.fold("lfr.alerts.d1.decision", 2, &decision.encode())
            .unwrap();
        if let Some(outcome) = outcome {
            let o = AlertOutcome {
                alert_id: "a1".into(),
                deployment: "d1".into(),
                outcome,
                actor: "pc".into(),
                note: None,
                recorded_at: day(0),
            };
            book.fold("lfr.alerts.d1.outcome", 3, &o.encode()).unwrap();
        }
        book.get("a1").unwrap()
    }

    fn policy() -> Policy {
        Policy {
            retention: 30 * DAY,
            grace: 2 * 3600 * Duration::from_secs(1),
            review: DEFAULT_REVIEW,
        }
    }

    fn fold<M: Message>(book: &Book, subject: &str, seq: u64, m: &M) {
        book.fold(subject, seq, &m.encode()).unwrap();
    }

    /// An alert raised on day 0, confirmed, not located, in a book.
    fn book() -> Book {
        let book = Book::default();
        let alert = lfr_testkit::candidate_alert("a1", "d1", day(0));
        fold(&book, "lfr.alerts.d1.candidate", 1, &alert);
        let e = entry(Some(Outcome::NotLocated));
        fold(
            &book,
            "lfr.alerts.d1.decision",
            2,
            e.decision.as_ref().unwrap(),
        );
        book
    }

    fn hold(alert: Option<&str>, at: Timestamp) -> HoldPlaced {
        HoldPlaced {
            deployment: "d1".into(),
            alert_id: alert.map(String::from),
            reason: HoldReason::Complaint,
            case_reference: "COMP-25".into(),
            actor: "sup-1".into(),
            placed_at: at,
        }
    }

    fn lift(alert: Option<&str>) -> HoldLifted {
        HoldLifted {
            deployment: "d1".into(),
            alert_id: alert.map(String::from),
            case_reference: "COMP-25".into(),
            actor: "sup-1".into(),
            lifted_at: day(40),
        }
    }

    #[test]
    fn a_complaint_hold_on_day_25_keeps_the_alert_past_day_30_until_released() {
        for target in [Some("a1"), None] {
            let book = book();
            fold(&book, "lfr.alerts.d1.hold", 3, &hold(target, day(25)));
            let e = book.get("a1").unwrap();
            assert_eq!(policy().fate(&e, day(31)), Fate::Hold, "{target:?}");
            assert_eq!(policy().fate(&e, day(400)), Fate::Hold);
            assert!(!policy().is_overdue(&e, day(400)));
            fold(&book, "lfr.alerts.d1.lift", 4, &lift(target));
            let e = book.get("a1").unwrap();
            assert_eq!(policy().fate(&e, day(40)), Fate::Erase, "{target:?}");
        }
    }

    #[test]
    fn arrested_corrected_to_no_further_action_lifts_the_arrest_hold() {
        let book = book();
        for (seq, outcome) in [
            (3, Outcome::EngagedArrested),
            (4, Outcome::EngagedNoFurtherAction),
        ] {
            let o = AlertOutcome {
                alert_id: "a1".into(),
                deployment: "d1".into(),
                outcome,
                actor: "pc".into(),
                note: None,
                recorded_at: day(1),
            };
            fold(&book, "lfr.alerts.d1.outcome", seq, &o);
            let fate = policy().fate(&book.get("a1").unwrap(), day(31));
            match outcome {
                Outcome::EngagedArrested => assert_eq!(fate, Fate::Hold),
                _ => assert_eq!(fate, Fate::Erase),
            }
        }
    }

    #[test]
    fn holds_are_due_for_review_after_ninety_days() {
        let p = policy();
        assert!(!p.is_due_for_review(day(1), day(90)));
        assert!(p.is_due_for_review(day(1), day(91)));
    }

    #[test]
    fn kept_for_thirty_days_then_erased() {
        let e = entry(Some(Outcome::NotLocated));
        assert_eq!(policy().fate(&e, day(29)), Fate::Keep { until: day(30) });
        assert_eq!(policy().fate(&e, day(30)), Fate::Erase);
        assert!(!policy().is_overdue(&e, day(30)));
        assert!(policy().is_overdue(&e, day(31)));
    }

    #[test]
    fn an_arrest_holds_whatever_the_age() {
        let e = entry(Some(Outcome::EngagedArrested));
        assert_eq!(policy().fate(&e, day(400)), Fate::Hold);
        assert!(!policy().is_overdue(&e, day(400)));
    }
}
