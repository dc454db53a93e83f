//! The second line of gated capture, for the stages behind ingest.
//!
//! Ingest opens a camera only while a verified deployment covers it ([`crate::coverage`]). Should
//! a frame arrive anyway (an ingest misconfigured or compromised, a camera's window that just
//! closed, a replay), detect and embed must not turn it into faces or templates: [`Gated`] wraps a
//! stage's handler and **acknowledges without processing** every message of a camera no
//! deployment covers at that moment, counting it under `lfr_unauthorised_refused_total{stage}`.
//! Acknowledging (rather than refusing and redelivering) removes it from the work queue at once.

use crate::coverage::CoverageView;
use lfr_common::stage::{BatchHandler, HandleError};
use lfr_schemas::{DetectedFace, Embedding, Frame, Timestamp};
use prometheus::{IntCounterVec, Opts, Registry};
use std::time::Duration;

/// Longest wait for the first reading of the records before judging messages by an empty view.
const FIRST_READING: Duration = Duration::from_secs(5);

/// A message that belongs to one camera.
pub trait OfCamera {
    fn camera(&self) -> &str;
}

impl OfCamera for Frame {
    fn camera(&self) -> &str {
        &self.source.camera
    }
}

impl OfCamera for DetectedFace {
    fn camera(&self) -> &str {
        &self.face.frame.camera
    }
}

impl OfCamera for Embedding {
    fn camera(&self) -> &str {
        &self.face.frame.camera
    }
}

/// `inner`, for the messages of covered cameras only.
pub struct Gated<H> {
    pub inner: H,
    pub coverage: CoverageView,
    refused: prometheus::IntCounter,
}

impl<H> Gated<H> {
    pub fn new(
        stage: &'static str,
        inner: H,
        coverage: CoverageView,
        registry: &Registry,
    ) -> anyhow::Result<Gated<H>> {
        let counter = IntCounterVec::new(
            Opts::new(
                "unauthorised_refused_total",
                "Frames or faces of a camera no live deployment covers, acknowledged without processing",
            ),
            &["stage"],
        )?;
        registry.register(Box::new(counter.clone()))?;
        Ok(Gated {
            inner,
            coverage,
            refused: counter.with_label_values(&[stage]),
        })
    }
}

impl<H> BatchHandler for Gated<H>
where
    H: BatchHandler,
    H::Input: OfCamera,
{
    type Input = H::Input;

    async fn handle_batch(&self, inputs: Vec<H::Input>) -> Vec<Result<(), HandleError>> {
        // Just started: judge by the records, not by the empty view before their first reading.
        self.coverage.ready(FIRST_READING).await;
        let now = Timestamp::now();
        let covered: Vec<bool> = inputs
            .iter()
            .map(|i| self.coverage.covers(i.camera(), now))
            .collect();
        let admitted: Vec<H::Input> = inputs
            .into_iter()
            .zip(&covered)
            .filter_map(|(input, &ok)| ok.then_some(input))
            .collect();
        let refused = covered.iter().filter(|ok| !**ok).count();
        if refused > 0 {
            self.refused.inc_by(refused as u64);
            tracing::debug!(refused, "messages of uncovered cameras acknowledged unread");
        }
        let mut results = if admitted.is_empty() {
            Vec::new()
        } else {
            self.inner.handle_batch(admitted).await
        }
        .into_iter();
        covered
            .into_iter()
            .map(|ok| {
                if ok {
                    results.next().unwrap_or(Ok(()))
                } else {
                    Ok(())
                }
            })
            .collect()
    }

    fn captured_at(input: &H::Input) -> Option<Timestamp> {
        H::captured_at(input)
    }
}
