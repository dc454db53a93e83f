//! One camera's capture loop, on its own OS thread because OpenCV capture blocks.
//!
//! **Gated capture**: the camera is opened only while a live, verified deployment covers it
//! ([`lfr_watchlist::coverage`]), and closed as soon as none does: the check runs before every
//! frame, and while closed the coverage is looked at every [`GATE_POLL`]. Outside a deployment no
//! frame is read from the source at all.
//!
//! open -> read -> sample -> encode -> hand over, while covered: a source that fails to open, stops
//! delivering, stalls past its read timeout, or ends is reported down (log, `camera_up` 0 and the
//! failure counted by reason) and opened again after a back-off that doubles up to a ceiling and
//! starts over once frames flow again. Open and read timeouts ([`source::Timeouts`]) bound how
//! long a dead or silent camera holds its thread, and so how long shutdown waits for it. Nothing here can take another camera down: each camera has its own thread,
//! queue and publisher.

use crate::config::CameraConfig;
use crate::encode::encode;
use crate::metrics::IngestMetrics;
use crate::queue::DropOldest;
use crate::sampler::Sampler;
use crate::source::{self, Source, SourceError, Timeouts};
use lfr_common::Shutdown;
use lfr_schemas::{Frame, FrameRef, Timestamp};
use lfr_watchlist::coverage::CoverageView;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a closed camera looks whether a deployment now covers it.
pub const GATE_POLL: Duration = Duration::from_millis(100);

pub struct Camera {
    pub config: CameraConfig,
    /// Which cameras a live deployment covers now.
    pub coverage: CoverageView,
    pub jpeg_quality: u8,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub timeouts: Timeouts,
    pub epoch: Timestamp,
    pub queue: Arc<DropOldest<Frame>>,
    pub metrics: IngestMetrics,
    pub shutdown: Shutdown,
}

/// How one session with the source ended.
enum Ended {
    /// A file or folder reached its end.
    Finished,
    Failed,
    /// No live deployment covers the camera any more: closed on purpose.
    Uncovered,
    Shutdown,
}

impl Camera {
    pub fn run(self) {
        let source = Source::parse(&self.config.source);
        let id = self.config.id.clone();
        let mut seq = 0u64;
        let mut backoff = self.initial_backoff;
        tracing::info!(camera = %id, source = %source.describe(), fps = self.config.fps, "camera starting");
        while !self.shutdown.is_triggered() {
            if !self.wait_until_covered() {
                break;
            }
            self.metrics
                .camera_capturing
                .with_label_values(&[&id])
                .set(1);
            let ended = match source::open(&source, self.timeouts) {
                Ok(frames) => {
                    tracing::info!(camera = %id, "camera opened: a live deployment covers it");
                    self.capture(frames, &source, &mut seq, &mut backoff)
                }
                Err(e) => {
                    self.failure(&e);
                    Ended::Failed
                }
            };
            self.metrics.camera_up.with_label_values(&[&id]).set(0);
            // A failed or finished source of a covered camera is still meant to be capturing (it
            // is retried, and `camera_up` says it delivers nothing); otherwise it is closed.
            let meant_to_capture =
                matches!(ended, Ended::Failed | Ended::Finished) && self.covered();
            self.metrics
                .camera_capturing
                .with_label_values(&[&id])
                .set(i64::from(meant_to_capture));
            match ended {
                Ended::Shutdown => break,
                Ended::Uncovered => {
                    tracing::info!(camera = %id, "camera closed: no live deployment covers it");
                    backoff = self.initial_backoff;
                    continue;
                }
                Ended::Finished if self.config.repeat => continue,
                Ended::Finished => {
                    self.metrics
                        .camera_failures
                        .with_label_values(&[&id, "ended"])
                        .inc();
                    tracing::warn!(camera = %id, retry_in = ?backoff, "camera source ended");
                }
                Ended::Failed => tracing::warn!(camera = %id, retry_in = ?backoff, "camera down"),
            }
            if !self.sleep(backoff) {
                break;
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
        tracing::info!(camera = %id, "camera stopped");
    }

    fn capture(
        &self,
        mut frames: Box<dyn source::FrameSource>,
        source: &Source,
        seq: &mut u64,
        backoff: &mut Duration,
    ) -> Ended {
        let id = &self.config.id;
        let mut sampler = Sampler::new(self.config.fps);
        let interval = Duration::from_secs_f64(1.0 / self.config.fps);
        let pace = self.config.realtime && !source.is_live();
        let started = Instant::now();
        let mut next_emit = started;
        loop {
            if self.shutdown.is_triggered() {
                return Ended::Shutdown;
            }
            if !self.covered() {
                return Ended::Uncovered;
            }
            let captured = match frames.next() {
                Ok(Some(c)) => c,
                Ok(None) => return Ended::Finished,
                Err(e @ SourceError::BadImage { .. }) => {
                    tracing::warn!(camera = %id, error = %e, "skipping image");
                    self.metrics
                        .bad_frames
                        .with_label_values(&[id, e.reason()])
                        .inc();
                    continue;
                }
                Err(e) => {
                    self.failure(&e);
                    return Ended::Failed;
                }
            };
            // Recordings are sampled on their own timeline, live sources on the wall clock;
            // image folders give every image, paced below.
            let keep = match captured.media_time {
                Some(t) => sampler.keep(t),
                None if source.is_live() => sampler.keep(started.elapsed().as_secs_f64()),
                None => true,
            };
            if !keep {
                continue;
            }
            if pace {
                let now = Instant::now();
                if next_emit > now && !self.sleep(next_emit - now) {
                    return Ended::Shutdown;
                }
                next_emit = next_emit.max(now) + interval;
            }
            if !self.covered() {
                return Ended::Uncovered;
            }
            let captured_at = Timestamp::now();
            let timer = self.metrics.encode_seconds.start_timer();
            let encoded = match encode(&captured.image, self.config.resize, self.jpeg_quality) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(camera = %id, error = %e, "cannot encode frame");
                    self.metrics
                        .bad_frames
                        .with_label_values(&[id, "unencodable"])
                        .inc();
                    continue;
                }
            };
            timer.observe_duration();
            self.metrics.camera_up.with_label_values(&[id]).set(1);
            *backoff = self.initial_backoff;
            let frame = Frame {
                source: FrameRef {
                    camera: id.clone(),
                    epoch: self.epoch,
                    seq: *seq,
                    captured_at,
                },
                width: encoded.width,
                height: encoded.height,
                jpeg: encoded.jpeg.into(),
            };
            *seq += 1;
            if self.queue.push(frame).is_some() {
                self.metrics
                    .dropped
                    .with_label_values(&[id, "backpressure"])
                    .inc();
            }
        }
    }

    fn failure(&self, e: &SourceError) {
        // A source's error may quote its URL: never with the credentials.
        let error = lfr_common::redact::url(&e.to_string());
        tracing::warn!(camera = %self.config.id, %error, "camera source failed");
        self.metrics
            .camera_failures
            .with_label_values(&[&self.config.id, e.reason()])
            .inc();
    }

    fn covered(&self) -> bool {
        self.coverage.covers(&self.config.id, Timestamp::now())
    }

    /// Block until a live deployment covers this camera; false if shutdown came first.
    fn wait_until_covered(&self) -> bool {
        while !self.covered() {
            if !self.sleep(GATE_POLL) {
                return false;
            }
        }
        true
    }

    /// Sleep in short steps so shutdown is noticed; false if shutdown came first.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.shutdown.is_triggered() {
                return false;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        !self.shutdown.is_triggered()
    }
}
