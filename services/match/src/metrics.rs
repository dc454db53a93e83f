//! Match metrics: what happened to each probe, the alerts raised, the similarity scores seen, and
//! the state of each watch list this replica holds.
//!
//! Labels are outcomes, categories and deployment ids: never an entry reference, a name or a score
//! of a named person.

use crate::context::Fetched;
use lfr_common::telemetry::LATENCY_BUCKETS;
use lfr_schemas::WatchlistCategory;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Finer than the shared latency buckets around the one-second budget, so a p99 read from them
/// (Grafana, the load test) is good to about 50 ms there.
pub const DECISION_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25,
    1.5, 2.0, 3.0, 5.0, 10.0,
];

/// What became of one probe against one deployment's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Scored at or above the entry's threshold (an alert needs corroboration on top).
    Matched,
    /// Below every threshold: discarded.
    NoMatch,
    /// No active deployment watches this camera: discarded without comparison.
    NoWatchlist,
    /// The deployment's list is not verified: discarded without comparison.
    Unverified,
    /// Made by another model than the list's templates: they cannot be compared.
    ModelMismatch,
}

impl ProbeOutcome {
    fn label(self) -> &'static str {
        match self {
            ProbeOutcome::Matched => "matched",
            ProbeOutcome::NoMatch => "no_match",
            ProbeOutcome::NoWatchlist => "no_watchlist",
            ProbeOutcome::Unverified => "unverified",
            ProbeOutcome::ModelMismatch => "model_mismatch",
        }
    }
}

#[derive(Clone)]
pub struct MatchMetrics {
    probes: IntCounterVec,
    alerts: IntCounterVec,
    pub alert_failures: IntCounter,
    pub seal_failures: IntCounter,
    pub audit_failures: IntCounter,
    pub duplicates_suppressed: IntCounter,
    pub ledger_failures: IntCounter,
    contexts: IntCounterVec,
    pub best_score: Histogram,
    pub search_seconds: Histogram,
    /// Capture of the frame to the verdict on its face: the pipeline's end-to-end latency for
    /// every face, matched or not (a discarded face leaves no other trace to time it by).
    pub decision_seconds: Histogram,
    entries: IntGaugeVec,
    verified: IntGaugeVec,
    loads: IntCounterVec,
}

impl MatchMetrics {
    pub fn new(registry: &Registry) -> anyhow::Result<MatchMetrics> {
        let m = MatchMetrics {
            probes: IntCounterVec::new(
                Opts::new(
                    "match_probes_total",
                    "Probe templates compared (or not) with a watch list, by outcome",
                ),
                &["outcome"],
            )?,
            alerts: IntCounterVec::new(
                Opts::new(
                    "match_alerts_total",
                    "Corroborated candidate alerts raised, by watch-list category",
                ),
                &["category"],
            )?,
            alert_failures: IntCounter::new(
                "match_alert_publish_failures_total",
                "Candidate alerts the bus did not acknowledge (the probe is retried)",
            )?,
            seal_failures: IntCounter::new(
                "match_seal_failures_total",
                "Candidate alerts whose images could not be sealed (key store unreachable, wrong master key): not raised, the probe is retried",
            )?,
            audit_failures: IntCounter::new(
                "match_audit_failures_total",
                "Audit events for raised alerts that could not be recorded",
            )?,
            duplicates_suppressed: IntCounter::new(
                "match_duplicates_suppressed_total",
                "Corroborated matches not raised: another replica already alerted for the entry (a takeover mid-pass)",
            )?,
            ledger_failures: IntCounter::new(
                "match_ledger_failures_total",
                "Reads or writes of the replicas' shared alert ledger that failed (alerts still raised)",
            )?,
            contexts: IntCounterVec::new(
                Opts::new(
                    "match_context_total",
                    "Context crops of raised alerts, by how they were had: with_face, made (by \
                     detect, on request); or why the alert went without one: gone, failed, \
                     unanswered, bad_subject",
                ),
                &["outcome"],
            )?,
            best_score: Histogram::with_opts(
                HistogramOpts::new(
                    "match_best_score",
                    "Best similarity of each compared probe against its watch list",
                )
                .buckets((0..=19).map(|i| i as f64 * 0.05).collect()),
            )?,
            search_seconds: Histogram::with_opts(
                HistogramOpts::new("match_search_seconds", "Watch-list search time per probe")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            decision_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "match_decision_seconds",
                    "Time from capture of the frame to the verdict on its face (discarded or alert raised)",
                )
                .buckets(DECISION_BUCKETS.to_vec()),
            )?,
            entries: IntGaugeVec::new(
                Opts::new(
                    "match_watchlist_entries",
                    "Entries of each watch list this replica holds",
                ),
                &["deployment"],
            )?,
            verified: IntGaugeVec::new(
                Opts::new(
                    "match_watchlist_verified",
                    "1 when every matcher replica reports the authorised digest for the deployment",
                ),
                &["deployment"],
            )?,
            loads: IntCounterVec::new(
                Opts::new(
                    "match_watchlist_loads_total",
                    "Watch lists loaded into memory, failed to load, or dropped from memory",
                ),
                &["outcome"],
            )?,
        };
        registry.register(Box::new(m.probes.clone()))?;
        registry.register(Box::new(m.alerts.clone()))?;
        registry.register(Box::new(m.alert_failures.clone()))?;
        registry.register(Box::new(m.seal_failures.clone()))?;
        registry.register(Box::new(m.audit_failures.clone()))?;
        registry.register(Box::new(m.duplicates_suppressed.clone()))?;
        registry.register(Box::new(m.ledger_failures.clone()))?;
        registry.register(Box::new(m.contexts.clone()))?;
        for fetched in Fetched::ALL {
            m.contexts.with_label_values(&[fetched.label()]);
        }
        registry.register(Box::new(m.best_score.clone()))?;
        registry.register(Box::new(m.search_seconds.clone()))?;
        registry.register(Box::new(m.decision_seconds.clone()))?;
        registry.register(Box::new(m.entries.clone()))?;
        registry.register(Box::new(m.verified.clone()))?;
        registry.register(Box::new(m.loads.clone()))?;
        Ok(m)
    }

    pub fn probe(&self, outcome: ProbeOutcome) {
        self.probes.with_label_values(&[outcome.label()]).inc();
    }

    pub fn alert(&self, category: WatchlistCategory) {
        self.alerts.with_label_values(&[category.as_str()]).inc();
    }

    /// How an alert's context crop was had.
    pub fn context(&self, fetched: Fetched) {
        self.contexts.with_label_values(&[fetched.label()]).inc();
    }

    /// `outcome`: `loaded`, `failed` or `dropped`.
    pub fn load(&self, outcome: &'static str) {
        self.loads.with_label_values(&[outcome]).inc();
    }

    pub fn holding(&self, deployment: &str, entries: usize, verified: bool) {
        self.entries
            .with_label_values(&[deployment])
            .set(entries as i64);
        self.verified
            .with_label_values(&[deployment])
            .set(verified as i64);
    }

    pub fn released(&self, deployment: &str) {
        let _ = self.entries.remove_label_values(&[deployment]);
        let _ = self.verified.remove_label_values(&[deployment]);
    }
}
