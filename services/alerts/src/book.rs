//! The alert book: every alert's state, rebuilt from the ALERTS stream.
//!
//! ALERTS is the record: the matcher appends candidate alerts (`.candidate`, and `.blue` for the
//! blue watch list), the console appends operators' decisions (`.decision`) and officers' outcomes
//! (`.outcome`). Each dispatch replica reads the whole stream in order (an ordered consumer from
//! the first message) and folds it into this book, so every replica shows the same thing and none
//! holds state that the stream does not.
//!
//! Folding rules, which make the console's actions idempotent and replicas agree:
//! - the **first** decision on an alert wins; later ones (a double click, a second operator, a
//!   second replica) change nothing;
//! - an outcome counts only on a confirmed alert; the latest outcome is the current one;
//! - a decision or outcome for an alert the book does not hold (erased by retention) is ignored;
//! - an arrest puts the alert under **legal hold** until a supervisor's release names the case;
//! - an erasure removes the alerts it names from the book.
//!
//! Each entry keeps the stream sequences of all its messages, so the purge service can erase
//! exactly those.
//!
//! Every change is announced on a broadcast channel ([`Change`]) that the live pages listen to.
//! Changes carry ids and deployments only, never images.

use lfr_schemas::{
    AlertDecision, AlertOutcome, AlertsErased, CandidateAlert, Decision, HoldReleased, Message,
    Outcome, Timestamp, WatchlistCategory,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// One alert and what people have done with it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub alert: Arc<CandidateAlert>,
    /// Position in the stream: the order alerts arrived in.
    pub seq: u64,
    pub decision: Option<AlertDecision>,
    pub outcomes: Vec<AlertOutcome>,
    /// A supervisor's release of the legal hold.
    pub release: Option<HoldReleased>,
    /// Waited longer than the review deadline without a decision.
    pub escalated: bool,
    /// Stream sequences of every message about this alert (raised, decided, outcomes, release).
    pub seqs: Vec<u64>,
}

impl Entry {
    pub fn is_blue(&self) -> bool {
        self.alert.category == WatchlistCategory::Blue
    }

    /// Waiting for an operator.
    pub fn is_pending(&self) -> bool {
        !self.is_blue() && self.decision.is_none()
    }

    pub fn is_confirmed(&self) -> bool {
        matches!(&self.decision, Some(d) if d.decision == Decision::Confirmed)
    }

    pub fn outcome(&self) -> Option<&AlertOutcome> {
        self.outcomes.last()
    }

    /// An arrest keeps the alert's data under the force's criminal-justice policy until a
    /// supervisor releases it.
    pub fn on_legal_hold(&self) -> bool {
        self.release.is_none()
            && self
                .outcomes
                .iter()
                .any(|o| o.outcome == Outcome::EngagedArrested)
    }

    /// When the alert's data must be erased after `retention`; `None` while on legal hold.
    pub fn erase_after(&self, retention: Duration) -> Option<Timestamp> {
        (!self.on_legal_hold())
            .then(|| Timestamp(self.alert.raised_at.0 + retention.as_nanos() as u64))
    }
}

/// What changed, for the live pages.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Raised {
        alert: String,
        deployment: String,
    },
    Decided {
        alert: String,
        deployment: String,
        decision: Decision,
    },
    Outcome {
        alert: String,
        deployment: String,
    },
    Escalated {
        alert: String,
        deployment: String,
    },
    Released {
        alert: String,
        deployment: String,
    },
    Erased {
        alerts: Vec<String>,
        deployment: String,
    },
}

impl Change {
    pub fn deployment(&self) -> &str {
        match self {
            Change::Raised { deployment, .. }
            | Change::Decided { deployment, .. }
            | Change::Outcome { deployment, .. }
            | Change::Escalated { deployment, .. }
            | Change::Released { deployment, .. }
            | Change::Erased { deployment, .. } => deployment,
        }
    }

    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Raised { .. } => "raised",
            Change::Decided { .. } => "decided",
            Change::Outcome { .. } => "outcome",
            Change::Escalated { .. } => "escalated",
            Change::Released { .. } => "released",
            Change::Erased { .. } => "erased",
        }
    }
}

/// Why a message on ALERTS could not be folded in.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error("unknown subject {0}")]
    Subject(String),
    #[error(transparent)]
    Wire(#[from] lfr_schemas::WireError),
}

#[derive(Clone)]
pub struct Book {
    entries: Arc<RwLock<HashMap<String, Entry>>>,
    changes: broadcast::Sender<Change>,
}

impl Default for Book {
    fn default() -> Self {
        Book {
            entries: Arc::default(),
            changes: broadcast::channel(1024).0,
        }
    }
}

impl Book {
    /// Listen to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn get(&self, alert: &str) -> Option<Entry> {
        self.read().get(alert).cloned()
    }

    /// Entries that pass `keep`, newest first.
    pub fn select(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        let mut out: Vec<Entry> = self.read().values().filter(|e| keep(e)).cloned().collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.seq));
        out
    }

    /// Fold one message of ALERTS (its subject says what it is) in.
    pub fn fold(&self, subject: &str, seq: u64, payload: &[u8]) -> Result<(), FoldError> {
        let kind = subject.rsplit('.').next().unwrap_or_default();
        let change = match kind {
            "candidate" | "blue" => self.raise(CandidateAlert::decode(payload)?, seq),
            "decision" => self.decide(AlertDecision::decode(payload)?, seq),
            "outcome" => self.record(AlertOutcome::decode(payload)?, seq),
            "release" => self.release(HoldReleased::decode(payload)?, seq),
            "erased" => self.forget(AlertsErased::decode(payload)?),
            _ => return Err(FoldError::Subject(subject.into())),
        };
        if let Some(change) = change {
            let _ = self.changes.send(change);
        }
        Ok(())
    }

    fn raise(&self, alert: CandidateAlert, seq: u64) -> Option<Change> {
        let mut entries = self.write();
        if entries.contains_key(&alert.alert_id) {
            return None;
        }
        let change = Change::Raised {
            alert: alert.alert_id.clone(),
            deployment: alert.deployment.clone(),
        };
        entries.insert(
            alert.alert_id.clone(),
            Entry {
                alert: Arc::new(alert),
                seq,
                decision: None,
                outcomes: Vec::new(),
                release: None,
                escalated: false,
                seqs: vec![seq],
            },
        );
        Some(change)
    }

    fn decide(&self, decision: AlertDecision, seq: u64) -> Option<Change> {
        let mut entries = self.write();
        let entry = entries.get_mut(&decision.alert_id)?;
        entry.seqs.push(seq);
        if entry.decision.is_some() || entry.is_blue() {
            return None;
        }
        let change = Change::Decided {
            alert: decision.alert_id.clone(),
            deployment: entry.alert.deployment.clone(),
            decision: decision.decision,
        };
        entry.decision = Some(decision);
        Some(change)
    }

    fn record(&self, outcome: AlertOutcome, seq: u64) -> Option<Change> {
        let mut entries = self.write();
        let entry = entries.get_mut(&outcome.alert_id)?;
        entry.seqs.push(seq);
        if !entry.is_confirmed() {
            return None;
        }
        let change = Change::Outcome {
            alert: outcome.alert_id.clone(),
            deployment: entry.alert.deployment.clone(),
        };
        entry.outcomes.push(outcome);
        Some(change)
    }

    fn release(&self, release: HoldReleased, seq: u64) -> Option<Change> {
        let mut entries = self.write();
        let entry = entries.get_mut(&release.alert_id)?;
        entry.seqs.push(seq);
        if !entry.on_legal_hold() {
            return None;
        }
        let change = Change::Released {
            alert: release.alert_id.clone(),
            deployment: entry.alert.deployment.clone(),
        };
        entry.release = Some(release);
        Some(change)
    }

    fn forget(&self, erased: AlertsErased) -> Option<Change> {
        let mut entries = self.write();
        let gone: Vec<String> = erased
            .alert_ids
            .into_iter()
            .filter(|id| entries.remove(id).is_some())
            .collect();
        (!gone.is_empty()).then_some(Change::Erased {
            alerts: gone,
            deployment: erased.deployment,
        })
    }

    /// Every entry (in no particular order).
    pub fn all(&self) -> Vec<Entry> {
        self.read().values().cloned().collect()
    }

    /// Mark alerts pending for longer than `deadline` (since they were raised) as escalated;
    /// returns how many were newly escalated.
    pub fn escalate(&self, now: Timestamp, deadline: Duration) -> usize {
        let mut escalated = Vec::new();
        for entry in self.write().values_mut() {
            if entry.is_pending()
                && !entry.escalated
                && entry.alert.raised_at.until(now) >= deadline
            {
                entry.escalated = true;
                escalated.push(Change::Escalated {
                    alert: entry.alert.alert_id.clone(),
                    deployment: entry.alert.deployment.clone(),
                });
            }
        }
        let n = escalated.len();
        for change in escalated {
            let _ = self.changes.send(change);
        }
        n
    }

    /// Alerts waiting for an operator.
    pub fn pending(&self) -> usize {
        self.read().values().filter(|e| e.is_pending()).count()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfr_schemas::Outcome;

    fn alert(id: &str, category: WatchlistCategory, raised_at: Timestamp) -> CandidateAlert {
        CandidateAlert {
            category,
            ..lfr_testkit::candidate_alert(id, "d1", raised_at)
        }
    }

    fn decision(id: &str, decision: Decision, actor: &str) -> AlertDecision {
        AlertDecision {
            alert_id: id.into(),
            deployment: "d1".into(),
            decision,
            actor: actor.into(),
            reason: None,
            decided_at: Timestamp(5),
        }
    }

    fn outcome(id: &str, outcome: Outcome) -> AlertOutcome {
        AlertOutcome {
            alert_id: id.into(),
            deployment: "d1".into(),
            outcome,
            actor: "pc-1".into(),
            note: None,
            recorded_at: Timestamp(6),
        }
    }

    #[test]
    fn the_first_decision_wins_and_outcomes_need_a_confirmation() {
        let book = Book::default();
        let mut changes = book.subscribe();
        let raised = alert("a1", WatchlistCategory::Wanted, Timestamp(1)).encode();
        book.fold("lfr.alerts.d1.candidate", 1, &raised).unwrap();
        book.fold("lfr.alerts.d1.candidate", 2, &raised).unwrap();
        assert_eq!(book.pending(), 1);
        // An outcome before the confirmation is ignored.
        let arrested = outcome("a1", Outcome::EngagedArrested).encode();
        book.fold("lfr.alerts.d1.outcome", 3, &arrested).unwrap();
        assert!(book.get("a1").unwrap().outcome().is_none());
        let confirm = decision("a1", Decision::Confirmed, "op-1").encode();
        let reject = decision("a1", Decision::RejectedFalseAlert, "op-2").encode();
        book.fold("lfr.alerts.d1.decision", 4, &confirm).unwrap();
        book.fold("lfr.alerts.d1.decision", 5, &reject).unwrap();
        let entry = book.get("a1").unwrap();
        assert!(entry.is_confirmed());
        assert_eq!(entry.decision.unwrap().actor, "op-1");
        book.fold("lfr.alerts.d1.outcome", 6, &arrested).unwrap();
        assert_eq!(
            book.get("a1").unwrap().outcome().unwrap().outcome,
            Outcome::EngagedArrested
        );
        let kinds: Vec<&str> = std::iter::from_fn(|| changes.try_recv().ok())
            .map(|c| c.kind())
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        assert_eq!(kinds, ["raised", "decided", "outcome"]);
    }

    #[test]
    fn blue_alerts_are_never_pending_nor_decided() {
        let book = Book::default();
        let blue = alert("b1", WatchlistCategory::Blue, Timestamp(1)).encode();
        book.fold("lfr.alerts.d1.blue", 1, &blue).unwrap();
        assert_eq!(book.pending(), 0);
        let confirm = decision("b1", Decision::Confirmed, "op-1").encode();
        book.fold("lfr.alerts.d1.decision", 2, &confirm).unwrap();
        assert!(!book.get("b1").unwrap().is_confirmed());
    }

    #[test]
    fn alerts_waiting_past_the_deadline_escalate_once() {
        let book = Book::default();
        let a = alert("a1", WatchlistCategory::Wanted, Timestamp(0)).encode();
        book.fold("lfr.alerts.d1.candidate", 1, &a).unwrap();
        let minute = Duration::from_secs(60);
        assert_eq!(book.escalate(Timestamp(59_000_000_000), minute), 0);
        assert_eq!(book.escalate(Timestamp(60_000_000_000), minute), 1);
        assert_eq!(book.escalate(Timestamp(61_000_000_000), minute), 0);
        assert!(book.get("a1").unwrap().escalated);
    }

    #[test]
    fn an_arrest_holds_the_alert_until_released_and_erasure_forgets_it() {
        let book = Book::default();
        let raised = alert("a1", WatchlistCategory::Wanted, Timestamp(0)).encode();
        book.fold("lfr.alerts.d1.candidate", 1, &raised).unwrap();
        let confirm = decision("a1", Decision::Confirmed, "op-1").encode();
        book.fold("lfr.alerts.d1.decision", 2, &confirm).unwrap();
        let month = Duration::from_secs(30 * 86_400);
        assert_eq!(
            book.get("a1").unwrap().erase_after(month),
            Some(Timestamp(month.as_nanos() as u64))
        );
        let arrested = outcome("a1", Outcome::EngagedArrested).encode();
        book.fold("lfr.alerts.d1.outcome", 3, &arrested).unwrap();
        assert!(book.get("a1").unwrap().on_legal_hold());
        assert_eq!(book.get("a1").unwrap().erase_after(month), None);
        let release = HoldReleased {
            alert_id: "a1".into(),
            deployment: "d1".into(),
            actor: "sup-1".into(),
            case_reference: "CASE-42".into(),
            released_at: Timestamp(9),
        };
        book.fold("lfr.alerts.d1.release", 4, &release.encode())
            .unwrap();
        let entry = book.get("a1").unwrap();
        assert!(!entry.on_legal_hold());
        assert_eq!(entry.seqs, [1, 2, 3, 4]);
        let erased = AlertsErased {
            deployment: "d1".into(),
            alert_ids: vec!["a1".into(), "unknown".into()],
            erased_at: Timestamp(10),
            reason: "retention".into(),
        };
        book.fold("lfr.alerts.d1.erased", 5, &erased.encode())
            .unwrap();
        assert!(book.get("a1").is_none());
    }

    #[test]
    fn malformed_messages_are_refused() {
        let book = Book::default();
        assert!(book.fold("lfr.alerts.d1.candidate", 1, b"junk").is_err());
        assert!(book.fold("lfr.alerts.d1.weird", 1, b"junk").is_err());
    }
}
