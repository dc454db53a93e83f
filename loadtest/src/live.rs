//! The run's figures as Prometheus metrics while it runs (`--metrics-addr`), so a load test can
//! be watched on the same Grafana as the services: the step in progress, frames published, and
//! each finished step's latency, losses and alerts.

use crate::cameras::Counts;
use crate::results::StepResult;
use prometheus::{Gauge, GaugeVec, IntCounter, IntGaugeVec, Opts, Registry};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Live {
    pub registry: Registry,
    cameras: Gauge,
    offered_fps: Gauge,
    published: IntCounter,
    skipped: IntCounter,
    latency: GaugeVec,
    lost: IntGaugeVec,
    alerts: IntGaugeVec,
    within_budget: Gauge,
    sustained_fps: Gauge,
    cpu: GaugeVec,
    memory: GaugeVec,
}

impl Live {
    pub fn new() -> anyhow::Result<Live> {
        let registry = lfr_common::telemetry::registry("loadtest");
        let l = Live {
            cameras: Gauge::new("loadtest_cameras", "Cameras of the step in progress")?,
            offered_fps: Gauge::new(
                "loadtest_offered_fps",
                "Frames per second offered by the step in progress",
            )?,
            published: IntCounter::new(
                "loadtest_frames_published_total",
                "Frames the simulated cameras published",
            )?,
            skipped: IntCounter::new(
                "loadtest_frames_skipped_total",
                "Frames the simulated cameras could not publish in time",
            )?,
            latency: GaugeVec::new(
                Opts::new(
                    "loadtest_latency_seconds",
                    "Latency from capture to the end of a stage, last finished step",
                ),
                &["stage", "quantile"],
            )?,
            lost: IntGaugeVec::new(
                Opts::new(
                    "loadtest_lost_messages",
                    "Messages that reached a stage and were never handled, last finished step",
                ),
                &["stage"],
            )?,
            alerts: IntGaugeVec::new(
                Opts::new(
                    "loadtest_alerts",
                    "Watch-listed passes and their alerts, last finished step",
                ),
                &["result"],
            )?,
            within_budget: Gauge::new(
                "loadtest_step_within_budget",
                "1 when the last finished step met every budget",
            )?,
            sustained_fps: Gauge::new(
                "loadtest_sustained_fps",
                "Frames per second the detect stage finished, last step",
            )?,
            cpu: GaugeVec::new(
                Opts::new(
                    "loadtest_cpu_cores",
                    "CPU cores used per process, last finished step",
                ),
                &["process"],
            )?,
            memory: GaugeVec::new(
                Opts::new(
                    "loadtest_memory_peak_bytes",
                    "Peak resident memory per process, last finished step",
                ),
                &["process"],
            )?,
            registry,
        };
        for c in [
            &l.cameras,
            &l.offered_fps,
            &l.within_budget,
            &l.sustained_fps,
        ] {
            l.registry.register(Box::new(c.clone()))?;
        }
        l.registry.register(Box::new(l.published.clone()))?;
        l.registry.register(Box::new(l.skipped.clone()))?;
        l.registry.register(Box::new(l.latency.clone()))?;
        l.registry.register(Box::new(l.lost.clone()))?;
        l.registry.register(Box::new(l.alerts.clone()))?;
        l.registry.register(Box::new(l.cpu.clone()))?;
        l.registry.register(Box::new(l.memory.clone()))?;
        Ok(l)
    }

    pub fn begin(&self, cameras: usize, fps: f64) {
        self.cameras.set(cameras as f64);
        self.offered_fps.set(cameras as f64 * fps);
    }

    /// Mirror the cameras' counters once a second while they run.
    pub fn follow(&self, counts: Arc<Counts>) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            let (mut published, mut skipped) = (0, 0);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let p = counts.published.load(Ordering::Relaxed);
                let s =
                    counts.skipped.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed);
                live.published.inc_by(p - published);
                live.skipped.inc_by(s - skipped);
                (published, skipped) = (p, s);
            }
        })
    }

    pub fn finish(&self, step: &StepResult) {
        for l in &step.latency {
            let q = l.since_capture;
            for (name, v) in [("0.5", q.p50), ("0.95", q.p95), ("0.99", q.p99)] {
                self.latency.with_label_values(&[&l.stage, name]).set(v);
            }
        }
        for loss in &step.losses {
            self.lost
                .with_label_values(&[&loss.stage])
                .set(loss.lost as i64);
        }
        let a = step.alerts;
        for (name, v) in [
            ("expected", a.expected),
            ("raised", a.raised),
            ("missed", a.missed),
            ("duplicate", a.duplicate),
            ("unexpected", a.unexpected),
        ] {
            self.alerts.with_label_values(&[name]).set(v as i64);
        }
        self.within_budget.set(step.within_budget as u8 as f64);
        self.sustained_fps.set(step.sustained_fps);
        for u in &step.usage {
            self.cpu.with_label_values(&[&u.service]).set(u.cpu_cores);
            self.memory
                .with_label_values(&[&u.service])
                .set(u.rss_peak_bytes as f64);
        }
    }
}
