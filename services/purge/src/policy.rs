//! Retention policy: what becomes of one alert's data at a given moment.
//!
//! - Alert data is kept for the **retention period** (default 30 days) from the moment the alert
//!   was raised, then erased.
//! - An arrest puts the alert under **legal hold**: it is kept, whatever its age, until a
//!   supervisor releases the hold naming the case; then the retention period applies as usual (an
//!   alert already older than it is erased at the next pass).
//! - An alert still present more than a grace period (two purge intervals) after its erasure date
//!   is **overdue**: a failure the operations team must see (`lfr_purge_overdue` must stay 0).

use lfr_alerts::Entry;
use lfr_schemas::Timestamp;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Kept until the given time.
    Keep { until: Timestamp },
    /// Kept under legal hold until released.
    Hold,
    /// Erase now.
    Erase,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retention: Duration,
    /// How late an erasure may be before it counts as overdue.
    pub grace: Duration,
}

impl Policy {
    pub fn fate(&self, entry: &Entry, now: Timestamp) -> Fate {
        match entry.erase_after(self.retention) {
            None => Fate::Hold,
            Some(due) if now >= due => Fate::Erase,
            Some(due) => Fate::Keep { until: due },
        }
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
    use lfr_schemas::{AlertDecision, AlertOutcome, Decision, Message, Outcome};

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
        }
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
