//! # Whether each active deployment's review still stands
//!
//! A review of the watch list stands for 48 hours, also while the deployment runs; once it lapses
//! the deployment is paused (no capture, no matching, no alerts: every stage reads the same
//! [`Deployment::phase`]) until the list is reviewed again. The stages simply stop; this task
//! makes the pause visible, every few seconds, to Prometheus:
//!
//! - `lfr_deployment_paused{deployment}`: 1 while an active deployment inside its windows is
//!   paused because its review lapsed (the alert `LfrDeploymentPaused` fires on it);
//! - `lfr_deployment_review_remaining_seconds{deployment}`: how long the standing review has
//!   left (negative once lapsed), so a rule can warn hours before.
//!
//! The console shows the same state as a banner ([`crate::console::review::banner`]).
//! Deployments that are not active carry no series.

use lfr_common::Shutdown;
use lfr_schemas::Timestamp;
use lfr_watchlist::deployment::{Deployment, State};
use lfr_watchlist::lifecycle::Lifecycle;
use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};
use std::collections::BTreeSet;
use std::time::Duration;

/// How often the deployment records are read again.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ReviewGauges {
    paused: IntGaugeVec,
    remaining: GaugeVec,
}

impl ReviewGauges {
    pub fn new(registry: &Registry) -> anyhow::Result<ReviewGauges> {
        let g = ReviewGauges {
            paused: IntGaugeVec::new(
                Opts::new(
                    "deployment_paused",
                    "1 while an active deployment processes no faces because the review of its \
                     watch list lapsed (48 hours): review it again",
                ),
                &["deployment"],
            )?,
            remaining: GaugeVec::new(
                Opts::new(
                    "deployment_review_remaining_seconds",
                    "Seconds until the standing review of an active deployment's watch list \
                     lapses (negative: lapsed)",
                ),
                &["deployment"],
            )?,
        };
        registry.register(Box::new(g.paused.clone()))?;
        registry.register(Box::new(g.remaining.clone()))?;
        Ok(g)
    }

    /// Set the gauges from `deployments` at `now`; drop the series of any no longer active.
    pub fn observe(
        &self,
        deployments: &[Deployment],
        now: Timestamp,
        shown: &mut BTreeSet<String>,
    ) {
        let mut active = BTreeSet::new();
        for d in deployments.iter().filter(|d| d.state == State::Active) {
            active.insert(d.id.clone());
            self.paused
                .with_label_values(&[&d.id])
                .set(i64::from(d.paused(now).is_some()));
            let remaining = match d.review_lapses_at() {
                Some(lapses) if lapses >= now => now.until(lapses).as_secs_f64(),
                Some(lapses) => -lapses.until(now).as_secs_f64(),
                None => 0.0,
            };
            self.remaining.with_label_values(&[&d.id]).set(remaining);
        }
        for gone in shown.difference(&active) {
            let _ = self.paused.remove_label_values(&[gone]);
            let _ = self.remaining.remove_label_values(&[gone]);
        }
        *shown = active;
    }
}

/// Every [`CHECK_EVERY`], read the deployment records and update the gauges, until shutdown.
pub async fn watch(lifecycle: Lifecycle, gauges: ReviewGauges, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    let mut shown = BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tick.tick() => {}
        }
        match lifecycle.list().await {
            Ok(all) => gauges.observe(&all, Timestamp::now(), &mut shown),
            Err(e) => {
                tracing::warn!(error = %e, "deployment records unreadable; review gauges not updated")
            }
        }
    }
}
