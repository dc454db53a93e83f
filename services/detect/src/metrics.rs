//! Detection metrics: frames by plan (searched in full, in regions, skipped), faces published,
//! faces held back (their track was not due), faces refused by the quality gate, faces blurred in
//! context crops (bystanders), context requests answered, and search time. No label carries face
//! data.

use crate::Searched;
use lfr_common::telemetry::LATENCY_BUCKETS;
use lfr_vision::redact::Bystanders;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use std::time::Duration;

#[derive(Clone)]
pub struct DetectMetrics {
    frames: IntCounterVec,
    faces: IntCounter,
    faces_held: IntCounter,
    frames_without_face: IntCounter,
    quality_rejects: IntCounterVec,
    context_blurred: IntCounterVec,
    context_unverified: IntCounter,
    context_requests: IntCounterVec,
    seconds: Histogram,
}

impl DetectMetrics {
    pub fn new(registry: &Registry) -> anyhow::Result<DetectMetrics> {
        let m = DetectMetrics {
            frames: IntCounterVec::new(
                Opts::new(
                    "detect_frames_total",
                    "Frames by what was done with them: searched in full, searched only around \
                     tracked faces (regions), or skipped (no track due, no full search due)",
                ),
                &["plan"],
            )?,
            faces: IntCounter::new("detect_faces_total", "Faces published to FACES")?,
            faces_held: IntCounter::new(
                "detect_faces_held_total",
                "Faces found whose track had published a face too recently: not published",
            )?,
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
            context_requests: IntCounterVec::new(
                Opts::new(
                    "detect_context_requests_total",
                    "Context crops asked for by the matcher, by outcome: made, gone (the frame \
                     is no longer held), malformed, no_reply_subject or failed",
                ),
                &["outcome"],
            )?,
            seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "detect_seconds",
                    "Decode, detection, alignment and crops per frame",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
        };
        registry.register(Box::new(m.frames.clone()))?;
        registry.register(Box::new(m.faces.clone()))?;
        registry.register(Box::new(m.faces_held.clone()))?;
        registry.register(Box::new(m.frames_without_face.clone()))?;
        registry.register(Box::new(m.quality_rejects.clone()))?;
        registry.register(Box::new(m.context_blurred.clone()))?;
        registry.register(Box::new(m.context_unverified.clone()))?;
        registry.register(Box::new(m.context_requests.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        for outcome in ["made", "gone", "malformed", "no_reply_subject", "failed"] {
            m.context_requests.with_label_values(&[outcome]);
        }
        for reason in ["too_small", "blurred", "turned"] {
            m.quality_rejects.with_label_values(&[reason]);
        }
        for found_by in ["frame", "recheck"] {
            m.context_blurred.with_label_values(&[found_by]);
        }
        for plan in ["full", "regions", "skipped"] {
            m.frames.with_label_values(&[plan]);
        }
        Ok(m)
    }

    /// A frame skipped by its plan: counted, not timed.
    pub fn skipped(&self) {
        self.frames.with_label_values(&["skipped"]).inc();
    }

    /// A frame searched as `plan` planned, what the search gave and how long it took.
    pub fn searched(&self, plan: &str, found: &Searched, took: Duration) {
        self.frames.with_label_values(&[plan]).inc();
        self.seconds.observe(took.as_secs_f64());
        self.faces.inc_by(found.faces.len() as u64);
        self.faces_held.inc_by(found.held as u64);
        if found.faces.is_empty() {
            self.frames_without_face.inc();
        }
        for reason in &found.rejected {
            self.quality_rejects.with_label_values(&[reason]).inc();
        }
        for face in &found.faces {
            if !face.probe.context_jpeg.is_empty() {
                self.context_made(&face.probe.bystanders);
            }
        }
    }

    /// A context crop made, with the faces blurred in it.
    pub fn context_made(&self, b: &Bystanders) {
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

    /// A context request answered (or not), by outcome.
    pub fn context_request(&self, outcome: &str) {
        self.context_requests.with_label_values(&[outcome]).inc();
    }
}
