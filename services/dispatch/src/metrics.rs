//! Dispatch metrics: the review queue (pending, escalated, time to review), operators' decisions
//! and officers' outcomes. Labels are kinds and outcomes only: never an alert, a person or a
//! deployment's watch-list entry.

use lfr_common::telemetry::LATENCY_BUCKETS;
use lfr_schemas::{Decision, Outcome};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct DispatchMetrics {
    pub pending: IntGauge,
    pub escalated: IntCounter,
    pub review_seconds: Histogram,
    decisions: IntCounterVec,
    outcomes: IntCounterVec,
    pub disclosures: IntCounter,
}

impl DispatchMetrics {
    pub fn new(registry: &Registry) -> anyhow::Result<DispatchMetrics> {
        let mut review_buckets = LATENCY_BUCKETS.to_vec();
        review_buckets.extend([30.0, 60.0, 120.0, 300.0, 600.0]);
        review_buckets.sort_by(f64::total_cmp);
        review_buckets.dedup();
        let m = DispatchMetrics {
            pending: IntGauge::new(
                "dispatch_alerts_pending",
                "Candidate alerts waiting for an operator's decision",
            )?,
            escalated: IntCounter::new(
                "dispatch_alerts_escalated_total",
                "Alerts not reviewed within the review deadline",
            )?,
            review_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "dispatch_review_seconds",
                    "Time from an alert being raised to an operator's decision",
                )
                .buckets(review_buckets),
            )?,
            decisions: IntCounterVec::new(
                Opts::new(
                    "dispatch_decisions_total",
                    "Operators' decisions, by decision (confirmed, rejected)",
                ),
                &["decision"],
            )?,
            outcomes: IntCounterVec::new(
                Opts::new(
                    "dispatch_outcomes_total",
                    "Outcomes recorded by officers, by outcome",
                ),
                &["outcome"],
            )?,
            disclosures: IntCounter::new(
                "dispatch_disclosures_total",
                "Confirmed alerts delivered to an officer's device",
            )?,
        };
        registry.register(Box::new(m.pending.clone()))?;
        registry.register(Box::new(m.escalated.clone()))?;
        registry.register(Box::new(m.review_seconds.clone()))?;
        registry.register(Box::new(m.decisions.clone()))?;
        registry.register(Box::new(m.outcomes.clone()))?;
        registry.register(Box::new(m.disclosures.clone()))?;
        Ok(m)
    }

    pub fn decision(&self, decision: Decision) {
        self.decisions.with_label_values(&[decision.as_str()]).inc();
    }

    pub fn outcome(&self, outcome: Outcome) {
        self.outcomes.with_label_values(&[outcome.as_str()]).inc();
    }
}
