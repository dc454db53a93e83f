//! One camera's publisher: takes frames from the camera's queue and publishes them to
//! `lfr.frames.<camera>` with the transient TTL.
//!
//! At most `max_in_flight` publishes await acknowledgement. When the bus is slow or gone, that limit
//! is reached, the publisher stops taking frames, the camera's queue fills, and the queue drops the
//! oldest frames: loss is bounded by design and every lost frame is counted.

use crate::metrics::IngestMetrics;
use crate::queue::DropOldest;
use futures::stream::{FuturesUnordered, StreamExt};
use lfr_common::bus::Bus;
use lfr_common::Shutdown;
use lfr_schemas::{streams, subjects, Frame};
use std::sync::Arc;
use std::time::Duration;

pub struct Publisher {
    pub camera: String,
    pub bus: Bus,
    pub queue: Arc<DropOldest<Frame>>,
    pub max_in_flight: usize,
    pub metrics: IngestMetrics,
    pub shutdown: Shutdown,
}

impl Publisher {
    pub async fn run(self) {
        let subject = subjects::frames(&self.camera);
        let mut in_flight = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.requested() => break,
                Some(acked) = in_flight.next(), if !in_flight.is_empty() => self.record(acked),
                frame = self.queue.pop(), if in_flight.len() < self.max_in_flight => {
                    match self.bus.publish_transient(streams::FRAMES, subject.clone(), &frame).await {
                        Ok(published) => in_flight.push(published.acknowledged()),
                        Err(e) => {
                            tracing::warn!(camera = %self.camera, error = %e, "frame not published");
                            self.count_drop("publish_failed", 1);
                        }
                    }
                }
            }
        }
        // Frames already sent get a short grace period for their acknowledgements.
        let drain = async {
            while let Some(acked) = in_flight.next().await {
                self.record(acked);
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), drain)
            .await
            .is_err()
        {
            tracing::warn!(camera = %self.camera, "unacknowledged frames at shutdown");
        }
        self.count_drop("shutdown", self.queue.len() as u64);
    }

    fn record(&self, acked: Result<(), async_nats::jetstream::context::PublishError>) {
        match acked {
            Ok(()) => self.metrics.frames.with_label_values(&[&self.camera]).inc(),
            Err(e) => {
                tracing::warn!(camera = %self.camera, error = %e, "frame not acknowledged by the bus");
                self.count_drop("publish_failed", 1);
            }
        }
    }

    fn count_drop(&self, reason: &str, n: u64) {
        self.metrics
            .dropped
            .with_label_values(&[&self.camera, reason])
            .inc_by(n);
    }
}
