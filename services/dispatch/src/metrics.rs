//! Dispatch metrics: the review queue (pending, escalated, time to review), operators' decisions
//! and officers' outcomes, and each deployment's live accuracy ([`AccuracyGauges`]: false-alert
//! rate, blue-list miss rate). Labels are kinds, outcomes and deployment ids only: never an
//! alert, a person or a deployment's watch-list entry.

use crate::accuracy::{Accuracy, Rates};
use lfr_alerts::walks::WalkRule;
use lfr_common::telemetry::LATENCY_BUCKETS;
use lfr_schemas::{Decision, Outcome};
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::time::Duration;

#[derive(Clone)]
pub struct DispatchMetrics {
    pub pending: IntGauge,
    pub escalated: IntCounter,
    pub review_seconds: Histogram,
    decisions: IntCounterVec,
    outcomes: IntCounterVec,
    pub disclosures: IntCounter,
    audit_refusals: IntCounterVec,
    /// Live false-alert and miss rates, and what they are computed with.
    pub accuracy: Accuracy,
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
            audit_refusals: IntCounterVec::new(
                Opts::new(
                    "dispatch_audit_refusals_total",
                    "Actions refused because their audit event could not be stored, by action \
                     (image, view, decision, outcome)",
                ),
                &["action"],
            )?,
            accuracy: Accuracy::new(WalkRule::default(), AccuracyGauges::new(registry)?),
        };
        registry.register(Box::new(m.pending.clone()))?;
        registry.register(Box::new(m.escalated.clone()))?;
        registry.register(Box::new(m.review_seconds.clone()))?;
        registry.register(Box::new(m.decisions.clone()))?;
        registry.register(Box::new(m.outcomes.clone()))?;
        registry.register(Box::new(m.disclosures.clone()))?;
        registry.register(Box::new(m.audit_refusals.clone()))?;
        Ok(m)
    }

    /// Score blue-list walks with alerts seen up to `window` after the walk started.
    pub fn with_walk_window(mut self, window: Duration) -> DispatchMetrics {
        self.accuracy.rule = WalkRule { window };
        self
    }

    pub fn decision(&self, decision: Decision) {
        self.decisions.with_label_values(&[decision.as_str()]).inc();
    }

    pub fn outcome(&self, outcome: Outcome) {
        self.outcomes.with_label_values(&[outcome.as_str()]).inc();
    }

    /// An `action` refused because it could not be put on the audit record.
    pub fn audit_refused(&self, action: &'static str) {
        self.audit_refusals.with_label_values(&[action]).inc();
    }
}

/// Each deployment's live accuracy, by `deployment` label (`lfr_false_alert_rate`,
/// `lfr_false_alerts_per_alert`, `lfr_blue_walk_miss_rate`, and the counts behind them). Set from the record (ALERTS and the
/// matchers' load reports) by [`crate::accuracy::run`], so every replica exports the same values.
#[derive(Clone)]
pub struct AccuracyGauges {
    false_alert_rate: GaugeVec,
    false_alerts_per_alert: GaugeVec,
    faces_compared: IntGaugeVec,
    alerts: IntGaugeVec,
    rejected: IntGaugeVec,
    walks: IntGaugeVec,
    walk_misses: IntGaugeVec,
    miss_rate: GaugeVec,
}

impl AccuracyGauges {
    pub fn new(registry: &Registry) -> anyhow::Result<AccuracyGauges> {
        let rate = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &["deployment"]);
        let count =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["deployment"]);
        let g = AccuracyGauges {
            false_alert_rate: rate(
                "false_alert_rate",
                "Alerts rejected by operators as false, per face compared with the whole watch list (DPIA: under 1 in 1,000)",
            )?,
            false_alerts_per_alert: rate(
                "false_alerts_per_alert",
                "Alerts rejected by operators as false, per alert raised (blue list excluded)",
            )?,
            faces_compared: count(
                "faces_compared",
                "Faces compared with the whole watch list in the live window, summed over matcher replicas",
            )?,
            alerts: count(
                "alerts_raised",
                "Alerts raised on the watch list (blue list excluded), erased ones included",
            )?,
            rejected: count(
                "alerts_rejected",
                "Alerts rejected by operators as false alerts, erased ones included",
            )?,
            walks: count(
                "blue_walks",
                "Blue-list walk tests recorded by the technical team",
            )?,
            walk_misses: count(
                "blue_walk_misses",
                "Blue-list walks with no blue alert within the walk window",
            )?,
            miss_rate: rate(
                "blue_walk_miss_rate",
                "Blue-list walks missed, per walk decided (alerted or missed)",
            )?,
        };
        registry.register(Box::new(g.false_alert_rate.clone()))?;
        registry.register(Box::new(g.false_alerts_per_alert.clone()))?;
        registry.register(Box::new(g.faces_compared.clone()))?;
        registry.register(Box::new(g.alerts.clone()))?;
        registry.register(Box::new(g.rejected.clone()))?;
        registry.register(Box::new(g.walks.clone()))?;
        registry.register(Box::new(g.walk_misses.clone()))?;
        registry.register(Box::new(g.miss_rate.clone()))?;
        Ok(g)
    }

    /// Publish `deployment`'s rates. A rate with nothing to divide by is not exported (no
    /// series), rather than exported as a reassuring 0.
    pub fn set(&self, deployment: &str, rates: &Rates) {
        let label = &[deployment];
        let rate = |g: &GaugeVec, r: Option<f64>| match r {
            Some(r) => g.with_label_values(label).set(r),
            None => {
                let _ = g.remove_label_values(label);
            }
        };
        let fa = &rates.false_alerts;
        rate(&self.false_alert_rate, fa.per_compared(rates.compared));
        rate(&self.false_alerts_per_alert, fa.per_alert());
        rate(&self.miss_rate, rates.misses.miss_rate());
        let count = |g: &IntGaugeVec, n: u64| g.with_label_values(label).set(n as i64);
        count(&self.faces_compared, rates.compared);
        count(&self.alerts, fa.alerts);
        count(&self.rejected, fa.rejected);
        count(&self.walks, rates.misses.walks as u64);
        count(&self.walk_misses, rates.misses.missed as u64);
    }
}
