//! The alert book: every alert's state, rebuilt from the ALERTS stream.
//!
//! ALERTS is the record: the matcher appends candidate alerts (`.candidate`, and `.blue` for the
//! blue watch list), the console appends operators' decisions (`.decision`) and officers' outcomes
//! (`.outcome`), the administrator appends holds (`.hold`), their releases (`.lift`) and releases
//! of arrest holds (`.release`). Each dispatch replica reads the whole stream in order (an ordered
//! consumer from the first message) and folds it into this book, so every replica shows the same
//! thing and none holds state that the stream does not.
//!
//! Folding rules, which make the console's actions idempotent and replicas agree:
//! - the **first** decision on an alert wins; later ones (a double click, a second operator, a
//!   second replica) change nothing;
//! - an outcome counts only on a confirmed alert; the **latest** outcome is the current one (a
//!   later outcome corrects an earlier one; every one is kept, in order, as the alert's history);
//! - a decision, outcome or hold for an alert the book does not hold (erased by retention) is
//!   ignored;
//! - an arrest as the latest outcome puts the alert under **legal hold** until a supervisor's
//!   release names the case; a correction to another outcome lifts it, and an arrest recorded
//!   after a release holds the alert again;
//! - a **hold** ([`Hold`]) names an alert or a whole deployment, a reason (complaint, access
//!   request, investigation) and a case reference; it stands until a release names the same
//!   alert or deployment and case. A deployment's holds cover every alert of it, present and
//!   future. Placing a standing hold again renews it: its review date moves on;
//! - an erasure removes the alerts it names (and the holds placed on them) from the book; what
//!   the live rates need of them stays: the deployment's count of alerts and false alerts, and a
//!   blue alert's [`Sighting`] (camera, time, entry digest);
//! - a **blue-list walk** ([`BlueWalk`], `.walk`) is kept per deployment, the first record of a
//!   walk id winning; [`Book::walks`] and [`Book::blue_sightings`] are what [`crate::walks`]
//!   scores.
//!
//! An alert is kept past its retention period while **any** hold applies to it ([`Entry::is_held`]):
//! the arrest hold, one of its own holds, or one of its deployment's.
//!
//! Each entry keeps the stream sequences of all its messages (its own holds included), so the
//! purge service can erase exactly those. A deployment's holds are about the deployment, not a
//! person's alert: their messages stay on ALERTS as the record of the hold.
//!
//! Every change is announced on a broadcast channel ([`Change`]) that the live pages listen to.
//! Changes carry ids and deployments only, never images.

use crate::accuracy::FalseAlerts;
use crate::walks::Sighting;
use lfr_schemas::{
    AlertDecision, AlertOutcome, AlertsErased, BlueWalk, CandidateAlert, Decision, HoldLifted,
    HoldPlaced, HoldReason, HoldReleased, Message, Outcome, Timestamp, WatchlistCategory,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// A hold for a named case on an alert or a whole deployment, as folded from ALERTS.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// The first placement: on what, why, for which case, by whom and when.
    pub placed: HoldPlaced,
    /// When it was last placed again while standing (a review that kept it); the placement's
    /// time if never renewed.
    pub reviewed_at: Timestamp,
    /// Who placed it, or last renewed it.
    pub reviewed_by: String,
    /// Its release, once released.
    pub lifted: Option<HoldLifted>,
    /// Stream sequences of its placement, renewals and release.
    pub seqs: Vec<u64>,
}

impl Hold {
    fn new(placed: HoldPlaced, seq: u64) -> Hold {
        Hold {
            reviewed_at: placed.placed_at,
            reviewed_by: placed.actor.clone(),
            placed,
            lifted: None,
            seqs: vec![seq],
        }
    }

    /// Not released.
    pub fn is_active(&self) -> bool {
        self.lifted.is_none()
    }

    pub fn reason(&self) -> HoldReason {
        self.placed.reason
    }

    pub fn case_reference(&self) -> &str {
        &self.placed.case_reference
    }

    pub fn deployment(&self) -> &str {
        &self.placed.deployment
    }

    /// The alert it holds; `None` for a hold on the whole deployment.
    pub fn alert_id(&self) -> Option<&str> {
        self.placed.alert_id.as_deref()
    }

    /// Whether it names this alert or deployment and this case.
    pub fn is_named(&self, deployment: &str, alert: Option<&str>, case_reference: &str) -> bool {
        self.placed.deployment == deployment
            && self.placed.alert_id.as_deref() == alert
            && self.placed.case_reference == case_reference
    }

    /// A standing hold not reviewed (placed or renewed) for `period` at `now`.
    pub fn is_due_for_review(&self, now: Timestamp, period: Duration) -> bool {
        self.is_active() && self.reviewed_at.until(now) >= period
    }
}

/// One alert and what people have done with it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub alert: Arc<CandidateAlert>,
    /// Position in the stream: the order alerts arrived in.
    pub seq: u64,
    pub decision: Option<AlertDecision>,
    /// Every outcome recorded, in order: the last is the current one, earlier ones were
    /// corrected.
    pub outcomes: Vec<AlertOutcome>,
    /// A supervisor's release of the legal hold an arrest placed.
    pub release: Option<HoldReleased>,
    /// How many of `outcomes` the release covered: an arrest recorded after it holds again.
    pub released_outcomes: usize,
    /// Holds placed on this alert (standing and released).
    pub holds: Vec<Hold>,
    /// Holds placed on the alert's deployment (standing and released), as the book knew them
    /// when this copy was taken.
    pub deployment_holds: Vec<Hold>,
    /// Waited longer than the review deadline without a decision.
    pub escalated: bool,
    /// Stream sequences of every message about this alert (raised, decided, outcomes, release,
    /// its own holds).
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

    /// The current outcome: the latest recorded.
    pub fn outcome(&self) -> Option<&AlertOutcome> {
        self.outcomes.last()
    }

    /// Outcomes that a later one corrected, oldest first.
    pub fn corrected_outcomes(&self) -> &[AlertOutcome] {
        &self.outcomes[..self.outcomes.len().saturating_sub(1)]
    }

    /// An arrest (as the latest outcome) keeps the alert's data under the force's
    /// criminal-justice policy until a supervisor releases it. A correction to another outcome
    /// lifts it.
    pub fn on_legal_hold(&self) -> bool {
        self.outcome()
            .is_some_and(|o| o.outcome == Outcome::EngagedArrested)
            && (self.release.is_none() || self.outcomes.len() > self.released_outcomes)
    }

    /// Since when the arrest hold stands: the first arrest of the latest run of arrests.
    pub fn legal_hold_since(&self) -> Option<Timestamp> {
        if !self.on_legal_hold() {
            return None;
        }
        self.outcomes
            .iter()
            .rev()
            .take_while(|o| o.outcome == Outcome::EngagedArrested)
            .last()
            .map(|o| o.recorded_at)
    }

    /// Standing holds that apply to this alert: its own, then its deployment's.
    pub fn active_holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds
            .iter()
            .chain(&self.deployment_holds)
            .filter(|h| h.is_active())
    }

    /// Kept whatever its age: under the arrest hold, or under any standing hold.
    pub fn is_held(&self) -> bool {
        self.on_legal_hold() || self.active_holds().next().is_some()
    }

    /// When the alert's data must be erased after `retention`; `None` while any hold applies.
    pub fn erase_after(&self, retention: Duration) -> Option<Timestamp> {
        (!self.is_held()).then(|| Timestamp(self.alert.raised_at.0 + retention.as_nanos() as u64))
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
    /// A hold was placed, renewed or released on an alert (`Some`) or the whole deployment.
    Holds {
        alert: Option<String>,
        deployment: String,
    },
    Erased {
        alerts: Vec<String>,
        deployment: String,
    },
    /// A blue-list walk test was recorded.
    Walked {
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
            | Change::Holds { deployment, .. }
            | Change::Erased { deployment, .. }
            | Change::Walked { deployment } => deployment,
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
            Change::Holds { .. } => "holds",
            Change::Erased { .. } => "erased",
            Change::Walked { .. } => "walked",
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

/// What the book holds: alerts, and the holds placed on whole deployments.
#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    deployment_holds: HashMap<String, Vec<Hold>>,
    /// Blue-list walk tests, by walk id.
    walks: HashMap<String, BlueWalk>,
    /// What the live rates keep of erased alerts, by deployment.
    erased: HashMap<String, Erased>,
}

/// What an erased alert leaves for the live rates: counts, and blue alerts' sightings.
#[derive(Default)]
struct Erased {
    false_alerts: FalseAlerts,
    blue: Vec<Sighting>,
}

impl State {
    /// The holds a hold message about (`deployment`, `alert`) acts on: the alert's own (the
    /// message's sequence kept with the alert, so that erasing the alert erases it), or the
    /// deployment's. `None` for an alert the book does not hold, or of another deployment.
    fn holds_for(
        &mut self,
        deployment: &str,
        alert: Option<&str>,
        seq: u64,
    ) -> Option<&mut Vec<Hold>> {
        match alert {
            Some(alert) => {
                let entry = self.entries.get_mut(alert)?;
                if entry.alert.deployment != deployment {
                    return None;
                }
                entry.seqs.push(seq);
                Some(&mut entry.holds)
            }
            None => Some(self.deployment_holds.entry(deployment.into()).or_default()),
        }
    }
}

impl State {
    /// A copy of `entry` carrying its deployment's holds.
    fn copy(&self, entry: &Entry) -> Entry {
        let mut out = entry.clone();
        out.deployment_holds = self
            .deployment_holds
            .get(&entry.alert.deployment)
            .cloned()
            .unwrap_or_default();
        out
    }
}

#[derive(Clone)]
pub struct Book {
    state: Arc<RwLock<State>>,
    changes: broadcast::Sender<Change>,
}

impl Default for Book {
    fn default() -> Self {
        Book {
            state: Arc::default(),
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
        let state = self.read();
        state.entries.get(alert).map(|e| state.copy(e))
    }

    /// Entries that pass `keep`, newest first.
    pub fn select(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        let state = self.read();
        let mut out: Vec<Entry> = state
            .entries
            .values()
            .map(|e| state.copy(e))
            .filter(|e| keep(e))
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.seq));
        out
    }

    /// Every hold the book knows, standing and released: each deployment's, then each alert's
    /// (of alerts not erased), in no particular order.
    pub fn holds(&self) -> Vec<Hold> {
        let state = self.read();
        state
            .deployment_holds
            .values()
            .flatten()
            .chain(state.entries.values().flat_map(|e| &e.holds))
            .cloned()
            .collect()
    }

    /// The holds placed on `deployment` as a whole (standing and released).
    pub fn deployment_holds(&self, deployment: &str) -> Vec<Hold> {
        self.read()
            .deployment_holds
            .get(deployment)
            .cloned()
            .unwrap_or_default()
    }

    /// Fold one message of ALERTS (its subject says what it is) in.
    pub fn fold(&self, subject: &str, seq: u64, payload: &[u8]) -> Result<(), FoldError> {
        let kind = subject.rsplit('.').next().unwrap_or_default();
        let change = match kind {
            "candidate" | "blue" => self.raise(CandidateAlert::decode(payload)?, seq),
            "decision" => self.decide(AlertDecision::decode(payload)?, seq),
            "outcome" => self.record(AlertOutcome::decode(payload)?, seq),
            "release" => self.release(HoldReleased::decode(payload)?, seq),
            "hold" => self.place(HoldPlaced::decode(payload)?, seq),
            "lift" => self.lift(HoldLifted::decode(payload)?, seq),
            "erased" => self.forget(AlertsErased::decode(payload)?),
            "walk" => self.walked(BlueWalk::decode(payload)?),
            _ => return Err(FoldError::Subject(subject.into())),
        };
        if let Some(change) = change {
            let _ = self.changes.send(change);
        }
        Ok(())
    }

    fn raise(&self, alert: CandidateAlert, seq: u64) -> Option<Change> {
        let mut state = self.write();
        let entries = &mut state.entries;
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
                released_outcomes: 0,
                holds: Vec::new(),
                deployment_holds: Vec::new(),
                escalated: false,
                seqs: vec![seq],
            },
        );
        Some(change)
    }

    fn decide(&self, decision: AlertDecision, seq: u64) -> Option<Change> {
        let mut state = self.write();
        let entries = &mut state.entries;
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
        let mut state = self.write();
        let entries = &mut state.entries;
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
        let mut state = self.write();
        let entries = &mut state.entries;
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
        entry.released_outcomes = entry.outcomes.len();
        Some(change)
    }

    fn place(&self, hold: HoldPlaced, seq: u64) -> Option<Change> {
        let mut state = self.write();
        let holds = state.holds_for(&hold.deployment, hold.alert_id.as_deref(), seq)?;
        let change = Change::Holds {
            alert: hold.alert_id.clone(),
            deployment: hold.deployment.clone(),
        };
        let standing = holds.iter_mut().find(|h| {
            h.is_active()
                && h.is_named(
                    &hold.deployment,
                    hold.alert_id.as_deref(),
                    &hold.case_reference,
                )
        });
        match standing {
            // Placed again while it stands: renewed (reviewed and kept).
            Some(h) => {
                h.seqs.push(seq);
                if hold.placed_at > h.reviewed_at {
                    h.reviewed_at = hold.placed_at;
                    h.reviewed_by = hold.actor;
                }
            }
            None => holds.push(Hold::new(hold, seq)),
        }
        Some(change)
    }

    fn lift(&self, lifted: HoldLifted, seq: u64) -> Option<Change> {
        let mut state = self.write();
        let holds = state.holds_for(&lifted.deployment, lifted.alert_id.as_deref(), seq)?;
        let hold = holds.iter_mut().find(|h| {
            h.is_active()
                && h.is_named(
                    &lifted.deployment,
                    lifted.alert_id.as_deref(),
                    &lifted.case_reference,
                )
        })?;
        hold.seqs.push(seq);
        let change = Change::Holds {
            alert: lifted.alert_id.clone(),
            deployment: lifted.deployment.clone(),
        };
        hold.lifted = Some(lifted);
        Some(change)
    }

    fn forget(&self, erased: AlertsErased) -> Option<Change> {
        let mut state = self.write();
        let state = &mut *state;
        let gone: Vec<String> = erased
            .alert_ids
            .into_iter()
            .filter(|id| match state.entries.remove(id) {
                Some(entry) => {
                    let left = state
                        .erased
                        .entry(entry.alert.deployment.clone())
                        .or_default();
                    if entry.is_blue() {
                        left.blue.push(Sighting::of(&entry.alert));
                    } else {
                        left.false_alerts.alerts += 1;
                        left.false_alerts.rejected += is_rejected(&entry) as u64;
                    }
                    true
                }
                None => false,
            })
            .collect();
        (!gone.is_empty()).then_some(Change::Erased {
            alerts: gone,
            deployment: erased.deployment,
        })
    }

    fn walked(&self, walk: BlueWalk) -> Option<Change> {
        let mut state = self.write();
        if state.walks.contains_key(&walk.walk_id) {
            return None;
        }
        let change = Change::Walked {
            deployment: walk.deployment.clone(),
        };
        state.walks.insert(walk.walk_id.clone(), walk);
        Some(change)
    }

    /// The blue-list walks recorded for `deployment`, oldest first.
    pub fn walks(&self, deployment: &str) -> Vec<BlueWalk> {
        let mut out: Vec<BlueWalk> = self
            .read()
            .walks
            .values()
            .filter(|w| w.deployment == deployment)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.started_at, &a.walk_id).cmp(&(b.started_at, &b.walk_id)));
        out
    }

    /// Where and when `deployment`'s blue-list alerts saw a volunteer, erased ones included.
    pub fn blue_sightings(&self, deployment: &str) -> Vec<Sighting> {
        let state = self.read();
        let live = state
            .entries
            .values()
            .filter(|e| e.is_blue() && e.alert.deployment == deployment)
            .map(|e| Sighting::of(&e.alert));
        let erased = state
            .erased
            .get(deployment)
            .into_iter()
            .flat_map(|e| e.blue.iter().cloned());
        live.chain(erased).collect()
    }

    /// `deployment`'s alerts (blue list excluded) and how many operators rejected as false,
    /// erased ones included.
    pub fn false_alerts(&self, deployment: &str) -> FalseAlerts {
        let state = self.read();
        let mut tally = state
            .erased
            .get(deployment)
            .map(|e| e.false_alerts)
            .unwrap_or_default();
        for e in state.entries.values() {
            if e.alert.deployment == deployment && !e.is_blue() {
                tally.alerts += 1;
                tally.rejected += is_rejected(e) as u64;
            }
        }
        tally
    }

    /// Every entry (in no particular order).
    pub fn all(&self) -> Vec<Entry> {
        let state = self.read();
        state.entries.values().map(|e| state.copy(e)).collect()
    }

    /// Mark alerts pending for longer than `deadline` (since they were raised) as escalated;
    /// returns how many were newly escalated.
    pub fn escalate(&self, now: Timestamp, deadline: Duration) -> usize {
        let mut escalated = Vec::new();
        for entry in self.write().entries.values_mut() {
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
        self.read()
            .entries
            .values()
            .filter(|e| e.is_pending())
            .count()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Rejected by an operator as a false alert.
fn is_rejected(entry: &Entry) -> bool {
    matches!(&entry.decision, Some(d) if d.decision == Decision::RejectedFalseAlert)
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

    fn confirmed(book: &Book, id: &str, seq: u64) {
        let raised = alert(id, WatchlistCategory::Wanted, Timestamp(0)).encode();
        book.fold("lfr.alerts.d1.candidate", seq, &raised).unwrap();
        let confirm = decision(id, Decision::Confirmed, "op-1").encode();
        book.fold("lfr.alerts.d1.decision", seq + 1, &confirm)
            .unwrap();
    }

    fn hold(alert: Option<&str>, case: &str, at: u64) -> HoldPlaced {
        HoldPlaced {
            deployment: "d1".into(),
            alert_id: alert.map(String::from),
            reason: HoldReason::Complaint,
            case_reference: case.into(),
            actor: "sup-1".into(),
            placed_at: Timestamp(at),
        }
    }

    fn lift(alert: Option<&str>, case: &str) -> HoldLifted {
        HoldLifted {
            deployment: "d1".into(),
            alert_id: alert.map(String::from),
            case_reference: case.into(),
            actor: "sup-2".into(),
            lifted_at: Timestamp(99),
        }
    }

    #[test]
    fn a_correction_lifts_the_arrest_hold_and_the_history_is_kept() {
        let book = Book::default();
        confirmed(&book, "a1", 1);
        let month = Duration::from_secs(30 * 86_400);
        let arrested = outcome("a1", Outcome::EngagedArrested).encode();
        book.fold("lfr.alerts.d1.outcome", 3, &arrested).unwrap();
        assert!(book.get("a1").unwrap().is_held());
        assert_eq!(
            book.get("a1").unwrap().legal_hold_since(),
            Some(Timestamp(6))
        );
        let nfa = outcome("a1", Outcome::EngagedNoFurtherAction).encode();
        book.fold("lfr.alerts.d1.outcome", 4, &nfa).unwrap();
        let e = book.get("a1").unwrap();
        assert_eq!(
            e.outcome().unwrap().outcome,
            Outcome::EngagedNoFurtherAction
        );
        assert_eq!(e.corrected_outcomes().len(), 1);
        assert_eq!(e.corrected_outcomes()[0].outcome, Outcome::EngagedArrested);
        assert!(!e.on_legal_hold() && !e.is_held());
        assert_eq!(
            e.erase_after(month),
            Some(Timestamp(month.as_nanos() as u64))
        );
        // Corrected back to an arrest: held again; released; a later arrest holds once more.
        book.fold("lfr.alerts.d1.outcome", 5, &arrested).unwrap();
        assert!(book.get("a1").unwrap().on_legal_hold());
        let release = HoldReleased {
            alert_id: "a1".into(),
            deployment: "d1".into(),
            actor: "sup-1".into(),
            case_reference: "CASE-42".into(),
            released_at: Timestamp(9),
        };
        book.fold("lfr.alerts.d1.release", 6, &release.encode())
            .unwrap();
        assert!(!book.get("a1").unwrap().is_held());
        book.fold("lfr.alerts.d1.outcome", 7, &nfa).unwrap();
        book.fold("lfr.alerts.d1.outcome", 8, &arrested).unwrap();
        assert!(book.get("a1").unwrap().on_legal_hold());
        assert_eq!(book.get("a1").unwrap().seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_hold_on_an_alert_keeps_it_until_the_release_names_its_case() {
        let book = Book::default();
        let mut changes = book.subscribe();
        confirmed(&book, "a1", 1);
        confirmed(&book, "a2", 3);
        book.fold(
            "lfr.alerts.d1.hold",
            5,
            &hold(Some("a1"), "COMP-1", 10).encode(),
        )
        .unwrap();
        // A hold for an alert the book does not hold (erased) changes nothing.
        book.fold(
            "lfr.alerts.d1.hold",
            6,
            &hold(Some("gone"), "COMP-1", 10).encode(),
        )
        .unwrap();
        let a1 = book.get("a1").unwrap();
        assert!(a1.is_held());
        assert_eq!(a1.erase_after(Duration::from_secs(1)), None);
        assert!(!book.get("a2").unwrap().is_held());
        assert_eq!(a1.seqs, [1, 2, 5], "erased with the alert");
        // Placed again while it stands: renewed, not doubled.
        book.fold(
            "lfr.alerts.d1.hold",
            7,
            &hold(Some("a1"), "COMP-1", 50).encode(),
        )
        .unwrap();
        let holds = book.get("a1").unwrap().holds;
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].reviewed_at, Timestamp(50));
        assert_eq!(holds[0].placed.placed_at, Timestamp(10));
        assert!(holds[0].is_due_for_review(Timestamp(60), Duration::from_nanos(10)));
        assert!(!holds[0].is_due_for_review(Timestamp(59), Duration::from_nanos(10)));
        // A release naming another case, or the deployment, releases nothing.
        book.fold(
            "lfr.alerts.d1.lift",
            8,
            &lift(Some("a1"), "COMP-2").encode(),
        )
        .unwrap();
        book.fold("lfr.alerts.d1.lift", 9, &lift(None, "COMP-1").encode())
            .unwrap();
        assert!(book.get("a1").unwrap().is_held());
        book.fold(
            "lfr.alerts.d1.lift",
            10,
            &lift(Some("a1"), "COMP-1").encode(),
        )
        .unwrap();
        let a1 = book.get("a1").unwrap();
        assert!(!a1.is_held());
        assert_eq!(a1.holds[0].lifted.as_ref().unwrap().actor, "sup-2");
        assert!(!a1.holds[0].is_due_for_review(Timestamp(1000), Duration::from_nanos(10)));
        let kinds: Vec<&str> = std::iter::from_fn(|| changes.try_recv().ok())
            .map(|c| c.kind())
            .filter(|k| *k == "holds")
            .collect();
        assert_eq!(kinds.len(), 3, "placed, renewed, released");
    }

    #[test]
    fn a_deployment_hold_covers_every_alert_of_it_present_and_future() {
        let book = Book::default();
        confirmed(&book, "a1", 1);
        book.fold("lfr.alerts.d1.hold", 3, &hold(None, "INV-9", 10).encode())
            .unwrap();
        confirmed(&book, "a2", 4);
        let other = CandidateAlert {
            deployment: "d2".into(),
            ..alert("b1", WatchlistCategory::Wanted, Timestamp(0))
        };
        book.fold("lfr.alerts.d2.candidate", 6, &other.encode())
            .unwrap();
        assert!(book.get("a1").unwrap().is_held());
        assert!(book.get("a2").unwrap().is_held());
        assert!(!book.get("b1").unwrap().is_held());
        assert_eq!(book.select(|e| e.is_held()).len(), 2);
        assert_eq!(book.get("a1").unwrap().seqs, [1, 2], "not the alert's own");
        assert_eq!(book.holds().len(), 1);
        book.fold("lfr.alerts.d1.lift", 7, &lift(None, "INV-9").encode())
            .unwrap();
        assert!(!book.get("a2").unwrap().is_held());
        assert_eq!(book.deployment_holds("d1")[0].seqs, [3, 7]);
        // Erasing the alerts leaves the deployment's record of its hold.
        let erased = AlertsErased {
            deployment: "d1".into(),
            alert_ids: vec!["a1".into(), "a2".into()],
            erased_at: Timestamp(10),
            reason: "retention".into(),
        };
        book.fold("lfr.alerts.d1.erased", 8, &erased.encode())
            .unwrap();
        assert_eq!(book.holds().len(), 1);
    }

    #[test]
    fn walks_are_kept_once_and_erasure_keeps_what_the_rates_need() {
        let book = Book::default();
        let walk = lfr_schemas::BlueWalk {
            walk_id: "w1".into(),
            deployment: "d1".into(),
            camera: "gate-1".into(),
            walker: lfr_schemas::Walker::Label("volunteer 1".into()),
            started_at: Timestamp(1),
            recorded_by: "tech-1".into(),
            recorded_at: Timestamp(1),
        };
        book.fold("lfr.alerts.d1.walk", 1, &walk.encode()).unwrap();
        let again = lfr_schemas::BlueWalk {
            camera: "gate-9".into(),
            ..walk.clone()
        };
        book.fold("lfr.alerts.d1.walk", 2, &again.encode()).unwrap();
        assert_eq!(book.walks("d1"), [walk]);
        assert!(book.walks("d2").is_empty());
        confirmed(&book, "a1", 3);
        let raised = alert("a2", WatchlistCategory::Wanted, Timestamp(0)).encode();
        book.fold("lfr.alerts.d1.candidate", 5, &raised).unwrap();
        let reject = decision("a2", Decision::RejectedFalseAlert, "op-1").encode();
        book.fold("lfr.alerts.d1.decision", 6, &reject).unwrap();
        let blue = alert("b1", WatchlistCategory::Blue, Timestamp(1)).encode();
        book.fold("lfr.alerts.d1.blue", 7, &blue).unwrap();
        let before = FalseAlerts {
            alerts: 2,
            rejected: 1,
        };
        assert_eq!(
            book.false_alerts("d1"),
            before,
            "blue alerts are not counted"
        );
        let sightings = book.blue_sightings("d1");
        let erased = AlertsErased {
            deployment: "d1".into(),
            alert_ids: vec!["a1".into(), "a2".into(), "b1".into()],
            erased_at: Timestamp(10),
            reason: "retention".into(),
        };
        book.fold("lfr.alerts.d1.erased", 8, &erased.encode())
            .unwrap();
        assert!(book.all().is_empty());
        assert_eq!(book.false_alerts("d1"), before);
        assert_eq!(book.blue_sightings("d1"), sightings);
        assert_eq!(sightings.len(), 1);
        assert_ne!(
            sightings[0].entry, "CUST-0001",
            "a digest, not the reference"
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        let book = Book::default();
        assert!(book.fold("lfr.alerts.d1.candidate", 1, b"junk").is_err());
        assert!(book.fold("lfr.alerts.d1.weird", 1, b"junk").is_err());
    }
}
