//! Embedding metrics: templates produced, inference time per batch and per face.

use lfr_common::telemetry::LATENCY_BUCKETS;
use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};
use std::time::Duration;

#[derive(Clone)]
pub struct EmbedMetrics {
    pub templates: IntCounter,
    batch_seconds: Histogram,
    face_seconds: Histogram,
}

impl EmbedMetrics {
    pub fn new(registry: &Registry) -> anyhow::Result<EmbedMetrics> {
        let m = EmbedMetrics {
            templates: IntCounter::new(
                "embed_templates_total",
                "Templates published to EMBEDDINGS",
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new("embed_batch_seconds", "Embedding time per batch")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            face_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "embed_face_seconds",
                    "Embedding time per face (batch time / size)",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
        };
        registry.register(Box::new(m.templates.clone()))?;
        registry.register(Box::new(m.batch_seconds.clone()))?;
        registry.register(Box::new(m.face_seconds.clone()))?;
        Ok(m)
    }

    pub fn observe(&self, batch: usize, took: Duration) {
        self.batch_seconds.observe(took.as_secs_f64());
        self.face_seconds
            .observe(took.as_secs_f64() / batch.max(1) as f64);
    }
}
