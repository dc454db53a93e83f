//! Detection metrics: faces found, faces refused by the quality gate, faces blurred in context
//! crops (bystanders), and detection time. No label carries face data.

use lfr_common::telemetry::LATENCY_BUCKETS;
use lfr_vision::faces::Found;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use std::time::Duration;

#[derive(Clone)]
pub struct DetectMetrics {
    faces: IntCounter,
    frames_without_face: IntCounter,
    quality_rejects: IntCounterVec,
    context_blurred: IntCounterVec,
    context_unverified: IntCounter,
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
            context_blurred: IntCounterVec::new(
                Opts::new(
                    "detect_context_faces_blurred_total",
                    "Faces blurred in published context crops (a bystander in two crops counts \
                     twice), by how they were found: the frame's detection (frame) or the search \
                     of the crop itself before it is published (recheck)",
                ),
                &["found_by"],
            )?,
            context_unverified: IntCounter::new(
                "detect_context_unverified_total",
                "Context crops published with a face still found in them after the last search \
                 (it was blurred again, but not searched again)",
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
        registry.register(Box::new(m.context_blurred.clone()))?;
        registry.register(Box::new(m.context_unverified.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        for reason in ["too_small", "blurred", "turned"] {
            m.quality_rejects.with_label_values(&[reason]);
        }
        for found_by in ["frame", "recheck"] {
            m.context_blurred.with_label_values(&[found_by]);
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
        for face in &found.faces {
            let b = &face.bystanders;
            self.context_blurred
                .with_label_values(&["frame"])
                .inc_by(b.from_frame as u64);
            self.context_blurred
                .with_label_values(&["recheck"])
                .inc_by(b.on_recheck as u64);
            if !b.verified {
                self.context_unverified.inc();
            }
        }
    }
}
