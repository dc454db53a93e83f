//! Live accuracy: each deployment's false-alert rate and blue-list miss rate, as the supervisor
//! page shows them and as Prometheus scrapes them.
//!
//! - **False alerts.** Operators reject false alerts in the console; the [`Book`] counts them per
//!   deployment ([`lfr_alerts::accuracy`]). The faces compared come from the matchers' load
//!   reports (`probes_compared`, cumulative per replica): [`Compared`] sums them over replicas,
//!   and keeps what a replica had counted when it restarts (its count starts again) or stops (its
//!   report expires), so the total never falls while this dispatch runs. A dispatch that starts
//!   later knows only the replicas reporting then: its count may be lower, its rate errs high.
//! - **Blue-list walks.** The technical team records walks in the console ([`lfr_schemas::BlueWalk`]);
//!   [`lfr_alerts::walks`] scores each against the deployment's blue-list alerts within the walk
//!   window. Each walk is shown with its [`WalkPhase`]: before, during or after the live window.
//!
//! [`run`] refreshes the gauges every few seconds; labels are deployment ids only.

use crate::metrics::AccuracyGauges;
use lfr_alerts::accuracy::FalseAlerts;
use lfr_alerts::walks::{self, MissTally, WalkResult, WalkRule};
use lfr_alerts::Book;
use lfr_common::Shutdown;
use lfr_schemas::{BlueWalk, Timestamp};
use lfr_watchlist::deployment::Deployment;
use lfr_watchlist::lifecycle::Lifecycle;
use lfr_watchlist::store::LoadReport;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often [`run`] refreshes the gauges.
const REFRESH: Duration = Duration::from_secs(5);

/// Faces compared per deployment, summed over matcher replicas, never falling.
#[derive(Clone, Default)]
pub struct Compared {
    /// (deployment, replica) -> count.
    seen: Arc<Mutex<HashMap<(String, String), Count>>>,
}

/// One replica's count: what it reports now, plus what it had counted before it started again.
#[derive(Clone, Copy, Default)]
struct Count {
    last: u64,
    carried: u64,
}

impl Compared {
    /// Take in `deployment`'s current load reports; returns its total faces compared.
    pub fn observe(&self, deployment: &str, reports: &[LoadReport]) -> u64 {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for r in reports {
            let count = seen
                .entry((deployment.to_string(), r.replica.clone()))
                .or_default();
            if r.probes_compared < count.last {
                // The replica's count started again (a reload after it dropped the list).
                count.carried += count.last;
            }
            count.last = r.probes_compared;
        }
        seen.iter()
            .filter(|((d, _), _)| d == deployment)
            .map(|(_, c)| c.carried + c.last)
            .sum()
    }
}

/// Where a walk falls in its deployment's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkPhase {
    /// Before the live window (a set-up walk-past, testing the cameras).
    Before,
    /// Inside the authorised live window.
    During,
    /// After the live window ended.
    After,
}

impl WalkPhase {
    pub fn of(deployment: &Deployment, at: Timestamp) -> WalkPhase {
        if at < deployment.starts_at {
            WalkPhase::Before
        } else if at < deployment.ends_at {
            WalkPhase::During
        } else {
            WalkPhase::After
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WalkPhase::Before => "before",
            WalkPhase::During => "during",
            WalkPhase::After => "after",
        }
    }
}

/// One walk, scored.
#[derive(Debug, Clone)]
pub struct ScoredWalk {
    pub walk: BlueWalk,
    pub result: WalkResult,
    pub phase: WalkPhase,
}

/// A deployment's live rates.
#[derive(Debug, Clone)]
pub struct Rates {
    pub compared: u64,
    pub false_alerts: FalseAlerts,
    /// Oldest first.
    pub walks: Vec<ScoredWalk>,
    pub misses: MissTally,
}

/// What the rates are computed with and published to, shared by the page and [`run`].
#[derive(Clone)]
pub struct Accuracy {
    pub compared: Compared,
    pub rule: WalkRule,
    pub gauges: AccuracyGauges,
}

impl Accuracy {
    pub fn new(rule: WalkRule, gauges: AccuracyGauges) -> Accuracy {
        Accuracy {
            compared: Compared::default(),
            rule,
            gauges,
        }
    }

    /// `deployment`'s rates at `now`, from the book and its load reports.
    pub fn rates(
        &self,
        book: &Book,
        deployment: &Deployment,
        reports: &[LoadReport],
        now: Timestamp,
    ) -> Rates {
        let compared = self.compared.observe(&deployment.id, reports);
        let recorded = book.walks(&deployment.id);
        let results = walks::score(
            &recorded,
            &book.blue_sightings(&deployment.id),
            self.rule,
            now,
        );
        let misses = MissTally::of(&results);
        let walks = recorded
            .into_iter()
            .zip(results)
            .map(|(walk, result)| ScoredWalk {
                phase: WalkPhase::of(deployment, walk.started_at),
                walk,
                result,
            })
            .collect();
        Rates {
            compared,
            false_alerts: book.false_alerts(&deployment.id),
            walks,
            misses,
        }
    }
}

/// Refresh every deployment's accuracy gauges every [`REFRESH`] until shutdown.
pub async fn run(accuracy: Accuracy, book: Book, lifecycle: Lifecycle, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tick.tick() => {}
        }
        let deployments = match lifecycle.list().await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read deployments; accuracy gauges not refreshed");
                continue;
            }
        };
        let now = Timestamp::now();
        for d in deployments {
            let reports = lifecycle
                .store()
                .load_reports(&d.id)
                .await
                .unwrap_or_default();
            let rates = accuracy.rates(&book, &d, &reports, now);
            accuracy.gauges.set(&d.id, &rates);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(replica: &str, compared: u64) -> LoadReport {
        LoadReport {
            replica: replica.into(),
            digest: "d".into(),
            entries: 1,
            at: Timestamp(1),
            probes_compared: compared,
        }
    }

    #[test]
    fn faces_compared_sum_over_replicas_and_never_fall() {
        let c = Compared::default();
        assert_eq!(c.observe("d1", &[report("m1", 100), report("m2", 50)]), 150);
        // m2 stopped (its report expired): what it counted stays.
        assert_eq!(c.observe("d1", &[report("m1", 120)]), 170);
        // m1 started its count again.
        assert_eq!(c.observe("d1", &[report("m1", 5)]), 175);
        assert_eq!(c.observe("d2", &[report("m1", 7)]), 7, "per deployment");
    }
}
