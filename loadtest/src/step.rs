//! One step of a ramp: N cameras at F fps for a fixed time, then a drain, then the figures.
//!
//! Input: the plan (frames and passes) published by the simulated cameras. Transform: the real
//! pipeline. Output, measured three ways:
//! - message timestamps seen on the bus (faces, templates, alerts): exact per-message latencies;
//! - the services' own counters and histograms, scraped before and after: what each stage
//!   consumed (so what it lost) and the capture-to-verdict latency of every face;
//! - `/proc`: CPU and memory of each process while the cameras ran.

use crate::cameras::{self, Counts};
use crate::live::Live;
use crate::observe::Observer;
use crate::results::{Loss, Quantiles, StageLatency, StepResult};
use crate::scene::Scene;
use crate::schedule::{self, PassShape};
use crate::score;
use crate::scrape::{self, Scrape};
use crate::stats;
use crate::system::System;
use crate::usage::Sampler;
use lfr_common::bus::Bus;
use lfr_schemas::{streams, Timestamp};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub struct Bench<'a> {
    pub bus: &'a Bus,
    pub system: &'a System,
    pub scene: Arc<Scene>,
    pub observer: &'a Observer,
    pub sampler: Option<&'a Sampler>,
    pub shape: PassShape,
    /// Latency budget, seconds.
    pub budget: f64,
    /// Longest a message can wait in a transient stream: after this, whatever was not consumed
    /// has expired.
    pub ttl: Duration,
    pub live: &'a Live,
}

/// Counters read from each stage: messages it finished.
fn consumed(scrapes: &HashMap<String, Scrape>, stage: &str) -> f64 {
    scrapes
        .get(stage)
        .map(|s| {
            s.sum(
                "lfr_stage_messages_total",
                &[("stage", stage), ("outcome", "ok")],
            )
        })
        .unwrap_or(0.0)
}

async fn scrape_all(system: &System) -> HashMap<String, Scrape> {
    let mut out = HashMap::new();
    for e in system.endpoints() {
        match scrape::fetch(e.addr).await {
            Ok(s) => {
                out.insert(e.service.clone(), s);
            }
            Err(err) => tracing::warn!(service = %e.service, error = %err, "metrics not read"),
        }
    }
    out
}

impl Bench<'_> {
    pub async fn step(&self, cameras: usize, fps: f64, seconds: f64) -> anyhow::Result<StepResult> {
        let plan = Arc::new(schedule::plan_for(
            &self.scene,
            cameras,
            fps,
            seconds,
            self.shape,
        ));
        // The matcher remembers the last step's alerts and tracks: let them lapse, so this step's
        // first pass is not taken for the last one's person still in view.
        tokio::time::sleep(self.shape.realert_after.max(self.shape.track_gap)).await;
        self.live.begin(cameras, fps);
        let before = scrape_all(self.system).await;
        let _ = self.observer.take();
        let mark = self.sampler.map(Sampler::mark);
        let counts = Arc::new(Counts::default());
        let lead = Duration::from_millis(200);
        let start = tokio::time::Instant::now() + lead;
        let start_wall = Timestamp(Timestamp::now().0 + lead.as_nanos() as u64);
        let ticker = self.live.follow(counts.clone());
        cameras::run(
            self.bus,
            self.scene.clone(),
            plan.clone(),
            start,
            start_wall,
            counts.clone(),
        )
        .await;
        ticker.abort();
        let usage = match (&self.sampler, &mark) {
            (Some(s), Some(m)) => s.usage(m),
            _ => Vec::new(),
        };
        let published = counts.published.load(Ordering::Relaxed);
        let after = self.drain().await;

        let seen = self.observer.take();
        let delta =
            |stage: &str| (consumed(&after, stage) - consumed(&before, stage)).max(0.0) as u64;
        let (detected, embedded, matched) = (delta("detect"), delta("embed"), delta("match"));
        let faces = seen.detect.len() as u64;
        let templates = seen.embed.len() as u64;
        let offered = plan.frames * cameras as u64;
        let losses = vec![
            Loss {
                stage: "camera".into(),
                offered,
                lost: offered.saturating_sub(published),
            },
            Loss {
                stage: "detect".into(),
                offered: published,
                lost: published.saturating_sub(detected),
            },
            Loss {
                stage: "embed".into(),
                offered: faces,
                lost: faces.saturating_sub(embedded),
            },
            Loss {
                stage: "match".into(),
                offered: templates,
                lost: templates.saturating_sub(matched),
            },
        ];
        let decision = match (after.get("match"), before.get("match")) {
            (Some(a), Some(b)) => stats::histogram_quantiles(&stats::delta(
                &a.buckets("lfr_match_decision_seconds"),
                &b.buckets("lfr_match_decision_seconds"),
            )),
            _ => Quantiles::default(),
        };
        let alert = stats::quantiles(&score::alert_latencies(&seen.alerts));
        // Capture to faces published is detect's own time: the frame was on the bus at capture.
        let detect = stats::quantiles(&seen.detect);
        let latency = vec![
            StageLatency {
                stage: "detect".into(),
                since_capture: detect,
                own: Some(detect),
                source: "exact".into(),
            },
            StageLatency {
                stage: "embed".into(),
                since_capture: stats::quantiles(&seen.embed),
                own: Some(stats::quantiles(&seen.embed_own)),
                source: "exact".into(),
            },
            StageLatency {
                stage: "match".into(),
                since_capture: decision,
                own: None,
                source: "histogram".into(),
            },
            StageLatency {
                stage: "alert".into(),
                since_capture: alert,
                own: None,
                source: "exact".into(),
            },
        ];
        let alerts = score::tally(&plan, &seen.alerts, start_wall);
        let mut why = Vec::new();
        if decision.count == 0 {
            why.push("no face reached a verdict".to_string());
        } else if decision.p99 > self.budget {
            why.push(format!(
                "p99 capture-to-decision {:.0} ms over budget",
                decision.p99 * 1000.0
            ));
        }
        if alert.count > 0 && alert.p99 > self.budget {
            why.push(format!(
                "p99 capture-to-alert {:.0} ms over budget",
                alert.p99 * 1000.0
            ));
        }
        if alerts.missed > 0 {
            why.push(format!(
                "{} of {} watch-listed passes lost",
                alerts.missed, alerts.expected
            ));
        }
        if seen.undecodable > 0 {
            why.push(format!("{} messages undecodable", seen.undecodable));
        }
        let result = StepResult {
            cameras: cameras as u32,
            fps,
            seconds,
            offered_fps: cameras as f64 * fps,
            frames_published: published,
            sustained_fps: detected as f64 / seconds,
            faces,
            losses,
            latency,
            alerts,
            usage,
            within_budget: why.is_empty(),
            verdict: why.join("; "),
        };
        self.live.finish(&result);
        Ok(result)
    }

    /// Wait until the transient streams are empty (every message handled or expired), so the
    /// next step starts on an idle pipeline; the final scrape. A backlog can cascade through the
    /// three streams, each with its own TTL, hence the limit of three TTLs.
    async fn drain(&self) -> HashMap<String, Scrape> {
        let limit = tokio::time::Instant::now() + self.ttl * 3 + Duration::from_secs(3);
        loop {
            let mut backlog = 0u64;
            for stream in [streams::FRAMES, streams::FACES, streams::EMBEDDINGS] {
                match self.bus.jetstream.get_stream(stream).await {
                    Ok(mut s) => match s.info().await {
                        Ok(info) => backlog += info.state.messages,
                        Err(e) => tracing::warn!(stream, error = %e, "stream state not read"),
                    },
                    Err(e) => tracing::warn!(stream, error = %e, "stream not found"),
                }
            }
            if backlog == 0 || tokio::time::Instant::now() >= limit {
                if backlog > 0 {
                    tracing::warn!(backlog, "transient streams not empty after the drain limit");
                }
                // The last template's verdict and the last alert's copy.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return scrape_all(self.system).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
