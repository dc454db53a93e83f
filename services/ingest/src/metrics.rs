//! Ingest metrics, labelled by camera id (an operator-chosen name such as `gate-3`, never a person).

use lfr_common::telemetry::LATENCY_BUCKETS;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct IngestMetrics {
    /// Frames published and acknowledged by the bus.
    pub frames: IntCounterVec,
    /// Frames lost before reaching the bus, by reason: `backpressure` (queue full, oldest
    /// dropped), `publish_failed` (no acknowledgement), `shutdown`.
    pub dropped: IntCounterVec,
    /// Images a source delivered that could not be decoded.
    pub bad_frames: IntCounterVec,
    /// Source failures, by reason: `open_failed` (refused, unreachable, or no video within the
    /// open timeout), `read_failed` (the stream ended or its connection closed), `read_timeout`
    /// (no frame within the read timeout, the connection still open), `ended` (a file or folder).
    pub camera_failures: IntCounterVec,
    pub camera_up: IntGaugeVec,
    /// 1 while a live, verified deployment covers the camera and it is open (gated capture).
    pub camera_capturing: IntGaugeVec,
    pub encode_seconds: Histogram,
}

impl IngestMetrics {
    pub fn new(registry: &Registry) -> anyhow::Result<IngestMetrics> {
        let m = IngestMetrics {
            frames: IntCounterVec::new(
                Opts::new(
                    "ingest_frames_total",
                    "Frames published to FRAMES and acknowledged",
                ),
                &["camera"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "ingest_frames_dropped_total",
                    "Frames lost before the bus, by reason",
                ),
                &["camera", "reason"],
            )?,
            bad_frames: IntCounterVec::new(
                Opts::new(
                    "ingest_bad_frames_total",
                    "Undecodable images from a source",
                ),
                &["camera", "reason"],
            )?,
            camera_failures: IntCounterVec::new(
                Opts::new(
                    "ingest_camera_failures_total",
                    "Camera source failures, by reason",
                ),
                &["camera", "reason"],
            )?,
            camera_up: IntGaugeVec::new(
                Opts::new("ingest_camera_up", "1 while a camera delivers frames"),
                &["camera"],
            )?,
            camera_capturing: IntGaugeVec::new(
                Opts::new(
                    "ingest_camera_capturing",
                    "1 while a live deployment covers the camera and it is captured; 0: closed",
                ),
                &["camera"],
            )?,
            encode_seconds: Histogram::with_opts(
                HistogramOpts::new("ingest_encode_seconds", "Resize and JPEG encode per frame")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
        };
        registry.register(Box::new(m.frames.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.bad_frames.clone()))?;
        registry.register(Box::new(m.camera_failures.clone()))?;
        registry.register(Box::new(m.camera_up.clone()))?;
        registry.register(Box::new(m.camera_capturing.clone()))?;
        registry.register(Box::new(m.encode_seconds.clone()))?;
        Ok(m)
    }

    /// Create every labelled series of a camera at zero, so dashboards and alert rules see the
    /// camera before anything goes wrong with it.
    pub fn register_camera(&self, camera: &str) {
        self.frames.with_label_values(&[camera]);
        for reason in ["backpressure", "publish_failed", "shutdown"] {
            self.dropped.with_label_values(&[camera, reason]);
        }
        self.bad_frames.with_label_values(&[camera, "undecodable"]);
        for reason in ["open_failed", "read_failed", "read_timeout", "ended"] {
            self.camera_failures.with_label_values(&[camera, reason]);
        }
        self.camera_up.with_label_values(&[camera]).set(0);
        self.camera_capturing.with_label_values(&[camera]).set(0);
    }
}
