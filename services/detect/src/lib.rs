//! # lfr-detect: frames in, faces out
//!
//! Consumes FRAMES through the shared `detect` consumer. For each frame: decode the JPEG (refusing
//! corrupt, tiny or absurdly large images), find faces, drop those that fail the quality gate,
//! align each survivor to the embedder's template and crop its upper-torso context, publish them to
//! `lfr.faces.<camera>` with the transient TTL, and only then acknowledge the frame. A frame with no
//! face leaves nothing behind. A frame of a camera that no live deployment covers is acknowledged
//! unread ([`lfr_watchlist::gate`]): faces are searched for only inside an authorised deployment.
//!
//! The context crop is what an alert keeps and shows: before it leaves detect, every other face of
//! the frame that reaches into it is blurred, down to a detector score of 0.05, and the crop is
//! searched again at that score until it holds no face but its own
//! (`lfr_vision::faces::FaceFinder::find`, `lfr_vision::redact::blur_bystanders`). The faces
//! blurred are counted in `lfr_detect_context_faces_blurred_total`.

mod metrics;

use lfr_common::bus::Bus;
use lfr_common::config::Common;
use lfr_common::service::Running;
use lfr_common::stage::{self, HandleError, Handler, OneByOne, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::{
    streams, subjects, BoundingBox, DetectedFace, FaceRef, Frame, Point, RgbImage, Timestamp,
};
use lfr_vision::config::ModelsConfig;
use lfr_vision::faces::{FaceFinder, Found};
use lfr_vision::image::{decode_jpeg, ImageError};
use lfr_watchlist::coverage;
use lfr_watchlist::gate::Gated;
use metrics::DetectMetrics;
use opencv::prelude::*;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub models: ModelsConfig,
    pub detect: DetectConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            http_addr: "127.0.0.1:9102".parse().unwrap(),
        }
    }
}

pub fn spec() -> StageSpec {
    StageSpec {
        name: "detect",
        stream: streams::FRAMES,
        durable: streams::consumers::DETECT,
        max_batch: 1,
        max_wait: Duration::ZERO,
        // Half the budget: a frame taken later would reach embed too old to be worth its face.
        shed_at: Some(0.5),
    }
}

struct DetectStage {
    finder: Arc<Mutex<FaceFinder>>,
    /// The detector's longer input side: frames are decoded at a reduced scale down to this.
    input_side: u32,
    bus: Bus,
    metrics: DetectMetrics,
}

impl Handler for DetectStage {
    type Input = Frame;

    async fn handle(&self, frame: Frame) -> Result<(), HandleError> {
        let started = Instant::now();
        let finder = self.finder.clone();
        let input_side = self.input_side;
        let jpeg = frame.jpeg.0;
        let found = tokio::task::spawn_blocking(move || find(&finder, &jpeg, input_side))
            .await
            .map_err(|e| HandleError::reject("internal", e))??;
        let (found, scale) = found;
        self.metrics.observe(&found, started.elapsed());
        let detected_at = Timestamp::now();
        for (index, face) in found.faces.into_iter().enumerate() {
            let message = detected_face(&frame.source, index, face, scale, detected_at)
                .map_err(|e| HandleError::reject("internal", e))?;
            let published = self
                .bus
                .publish_transient(
                    streams::FACES,
                    subjects::faces(&frame.source.camera),
                    &message,
                )
                .await
                .map_err(|e| HandleError::Retry(e.into()))?;
            published
                .acknowledged()
                .await
                .map_err(|e| HandleError::Retry(e.into()))?;
        }
        Ok(())
    }

    fn captured_at(frame: &Frame) -> Option<Timestamp> {
        Some(frame.source.captured_at)
    }
}

/// Decode and search one frame (blocking: runs on the blocking pool). Public, with
/// [`detected_face`], so the load test's in-process baseline runs the stage's own code.
pub fn find(
    finder: &Mutex<FaceFinder>,
    jpeg: &[u8],
    input_side: u32,
) -> Result<(Found, f32), HandleError> {
    let (image, scale) = decode_jpeg(jpeg, input_side)
        .map_err(|e: ImageError| HandleError::reject(e.reason(), e))?;
    let mut finder = finder.lock().unwrap_or_else(|p| p.into_inner());
    let found = finder
        .find(&image)
        .map_err(|e| HandleError::reject("detector_failed", e))?;
    Ok((found, scale))
}

/// The bus message for one face; coordinates scaled back to the original frame's pixels.
pub fn detected_face(
    frame: &lfr_schemas::FrameRef,
    index: usize,
    face: lfr_vision::faces::ProbeFace,
    scale: f32,
    detected_at: Timestamp,
) -> anyhow::Result<DetectedFace> {
    let [x1, y1, x2, y2] = face.detection.bbox.map(|v| v * scale);
    let mut quality = face.quality;
    quality.eye_distance_px *= scale;
    let chip = &face.chip_rgb;
    Ok(DetectedFace {
        face: FaceRef {
            frame: frame.clone(),
            index: index as u16,
        },
        detected_at,
        bbox: BoundingBox {
            x: x1,
            y: y1,
            width: x2 - x1,
            height: y2 - y1,
        },
        landmarks: face.detection.landmarks.map(|[x, y]| Point {
            x: x * scale,
            y: y * scale,
        }),
        quality,
        chip: RgbImage {
            width: chip.cols() as u32,
            height: chip.rows() as u32,
            pixels: chip.data_bytes()?.to_vec().into(),
        },
        context_jpeg: face.context_jpeg.into(),
    })
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let store = config.models.store()?;
    let finder = config.models.face_finder(&store)?;
    let input_side = config.models.detector_input[0].max(config.models.detector_input[1]);
    stage::start_batched_service(
        "detect",
        &config.common,
        config.detect.http_addr,
        spec(),
        |ctx| {
            let stage = DetectStage {
                finder: Arc::new(Mutex::new(finder)),
                input_side,
                bus: ctx.bus.clone(),
                metrics: DetectMetrics::new(&ctx.registry)?,
            };
            // Second line of gated capture: frames of an uncovered camera are never searched.
            let coverage = coverage::watch(
                ctx.bus.jetstream.clone(),
                coverage::REFRESH,
                ctx.shutdown.clone(),
            );
            Gated::new("detect", OneByOne(stage), coverage, &ctx.registry)
        },
        shutdown,
    )
    .await
}
