//! Detection metrics: faces found, faces refused by the quality gate, and detection time.

use lfr_common::telemetry::LATENCY_BUCKETS;
use lfr_vision::faces::Found;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use std::time::Duration;

#[derive(Clone)]
pub struct DetectMetrics {
    faces: IntCounter,
    frames_without_face: IntCounter,
    quality_rejects: IntCounterVec,
    seconds: Histogram,
}

impl DetectMetrics {
    pub fn new(registry: &Registry) -> anyhow::Result<DetectMetrics> {
        let m = DetectMetrics {
            faces: IntCounter::new("detect_faces_total", "Faces published to FACES")?,
            frames_without_face: IntCounter::new(
                "detect_frames_without_face_total",
                "Frames in which no face passed the quality gate",
            )?,
            quality_rejects: IntCounterVec::new(
                Opts::new(
                    "detect_quality_rejects_total",
                    "Faces refused by the quality gate",
                ),
                &["reason"],
            )?,
            seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "detect_seconds",
                    "Decode, detection, alignment and crops per frame",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
        };
        registry.register(Box::new(m.faces.clone()))?;
        registry.register(Box::new(m.frames_without_face.clone()))?;
        registry.register(Box::new(m.quality_rejects.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        for reason in ["too_small", "blurred", "turned"] {
            m.quality_rejects.with_label_values(&[reason]);
        }
        Ok(m)
    }

    pub fn observe(&self, found: &Found, took: Duration) {
        self.seconds.observe(took.as_secs_f64());
        self.faces.inc_by(found.faces.len() as u64);
        if found.faces.is_empty() {
            self.frames_without_face.inc();
        }
        for reason in &found.rejected {
            self.quality_rejects.with_label_values(&[reason]).inc();
        }
    }
}
