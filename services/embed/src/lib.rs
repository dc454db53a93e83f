//! # lfr-embed: faces in, templates out
//!
//! Consumes FACES through the shared `embed` consumer, in batches across cameras (what is waiting,
//! up to `workers` x `max_batch` faces, waiting at most `max_wait` for more), runs the embedder
//! once per `max_batch` faces, on `workers` embedders at once (one per core by default),
//! L2-normalises, and publishes each template to `lfr.embeddings.<camera>`, in the order the faces
//! came, with the probe chip (as JPEG, for the operator) and the face's context crop or where to
//! ask for it. A face is acknowledged only once its template is on the bus. A face of a camera no
//! live deployment covers is acknowledged without being embedded ([`lfr_watchlist::gate`]).

mod metrics;

use lfr_common::bus::Bus;
use lfr_common::config::{secs, Common};
use lfr_common::service::Running;
use lfr_common::stage::{self, BatchHandler, HandleError, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::{streams, subjects, DetectedFace, Embedding, Timestamp};
use lfr_vision::config::ModelsConfig;
use lfr_vision::embedder::Embedder;
use lfr_vision::image::encode_jpeg;
use lfr_watchlist::coverage;
use lfr_watchlist::gate::Gated;
use metrics::EmbedMetrics;
use opencv::core::{Mat, CV_8UC3};
use opencv::imgproc;
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
    pub embed: EmbedConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbedConfig {
    pub http_addr: SocketAddr,
    /// Most faces embedded in one inference call. On CPU batching does not pay (measured here:
    /// MobileFaceNet 7.2 ms/face at batch 1, 8.4 ms/face at batch 8), so the default is 1; raise it
    /// for a GPU build of ONNX Runtime.
    pub max_batch: usize,
    /// Inference calls made at once, each with its own embedder (0: one per core). One call at a
    /// time leaves a core idle while faces queue, however busy the box is.
    pub workers: usize,
    /// Longest wait for a batch to fill once a face has arrived (0: take what is waiting).
    #[serde(with = "secs")]
    pub max_wait: Duration,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            http_addr: "127.0.0.1:9103".parse().unwrap(),
            max_batch: 1,
            workers: 0,
            max_wait: Duration::ZERO,
        }
    }
}

impl EmbedConfig {
    /// `workers`, with 0 resolved to the cores this process may use.
    pub fn workers(&self) -> usize {
        lfr_common::config::workers(self.workers)
    }

    /// `max_batch`, within what the stage takes.
    fn per_call(&self) -> usize {
        self.max_batch.clamp(1, 64)
    }
}

pub fn spec(config: &EmbedConfig) -> StageSpec {
    StageSpec {
        name: "embed",
        stream: streams::FACES,
        durable: streams::consumers::EMBED,
        // Enough for every worker's call.
        max_batch: (config.per_call() * config.workers()).clamp(1, 64),
        max_wait: config.max_wait,
        shed_at: Some(1.0),
    }
}

struct EmbedStage {
    /// One per worker: a batch's calls take them in turn.
    embedders: Vec<Arc<Mutex<Embedder>>>,
    per_call: usize,
    bus: Bus,
    metrics: EmbedMetrics,
}

impl BatchHandler for EmbedStage {
    type Input = DetectedFace;

    /// The batch cut into calls of `max_batch` faces, run at once on the workers' embedders; the
    /// templates published in the order the faces came.
    async fn handle_batch(&self, faces: Vec<DetectedFace>) -> Vec<Result<(), HandleError>> {
        let mut calls = Vec::new();
        let mut faces = faces.into_iter().peekable();
        while faces.peek().is_some() {
            calls.push(faces.by_ref().take(self.per_call).collect::<Vec<_>>());
        }
        let calls = calls.into_iter().enumerate().map(|(k, faces)| {
            let embedder = self.embedders[k % self.embedders.len()].clone();
            async move {
                let started = Instant::now();
                let batch = faces.len();
                let computed =
                    tokio::task::spawn_blocking(move || embed_all(&embedder, faces)).await;
                match computed {
                    Ok(computed) => {
                        self.metrics.observe(batch, started.elapsed());
                        computed
                    }
                    Err(e) => (0..batch)
                        .map(|_| {
                            Err(HandleError::Retry(anyhow::anyhow!(
                                "embedding task failed: {e}"
                            )))
                        })
                        .collect(),
                }
            }
        });
        let computed = futures::future::join_all(calls).await;
        let mut results = Vec::new();
        for item in computed.into_iter().flatten() {
            results.push(match item {
                Ok(embedding) => self.publish(embedding).await,
                Err(e) => Err(e),
            });
        }
        results
    }

    fn captured_at(face: &DetectedFace) -> Option<Timestamp> {
        Some(face.face.frame.captured_at)
    }
}

impl EmbedStage {
    async fn publish(&self, embedding: Embedding) -> Result<(), HandleError> {
        let subject = subjects::embeddings(&embedding.face.frame.camera);
        self.bus
            .publish_transient(streams::EMBEDDINGS, subject, &embedding)
            .await
            .map_err(|e| HandleError::Retry(e.into()))?
            .acknowledged()
            .await
            .map_err(|e| HandleError::Retry(e.into()))?;
        self.metrics.templates.inc();
        Ok(())
    }
}

/// Validate chips, embed the valid ones in one call, and build the messages (blocking). Public so
/// the load test's in-process baseline runs the stage's own code.
pub fn embed_all(
    embedder: &Mutex<Embedder>,
    faces: Vec<DetectedFace>,
) -> Vec<Result<Embedding, HandleError>> {
    let mut embedder = embedder.lock().unwrap_or_else(|p| p.into_inner());
    let [w, h] = embedder.spec.template_size;
    let chips: Vec<Result<Mat, HandleError>> = faces.iter().map(|f| chip_mat(f, w, h)).collect();
    let valid: Vec<Mat> = chips
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let mut vectors = match embedder.embed(&valid) {
        Ok(v) => v.into_iter(),
        Err(e) => {
            let msg = e.to_string();
            return faces
                .iter()
                .map(|_| {
                    Err(HandleError::reject(
                        "embedder_failed",
                        anyhow::anyhow!("{msg}"),
                    ))
                })
                .collect();
        }
    };
    let model = embedder.name.clone();
    faces
        .into_iter()
        .zip(chips)
        .map(|(face, chip)| {
            let chip = chip?;
            let vector = vectors.next().expect("one template per valid chip");
            let probe_jpeg = probe_jpeg(&chip).map_err(|e| HandleError::reject("internal", e))?;
            Ok(Embedding {
                face: face.face,
                embedded_at: Timestamp::now(),
                model: model.clone(),
                vector,
                bbox: face.bbox,
                quality: face.quality,
                probe_jpeg: probe_jpeg.into(),
                context: face.context,
            })
        })
        .collect()
}

/// The chip as an OpenCV image, refusing one that is not the embedder's size.
fn chip_mat(face: &DetectedFace, w: u32, h: u32) -> Result<Mat, HandleError> {
    let chip = &face.chip;
    if chip.width != w || chip.height != h || chip.pixels.len() != (w * h * 3) as usize {
        return Err(HandleError::reject(
            "bad_chip",
            anyhow::anyhow!(
                "chip {}x{} ({} bytes) does not fit the embedder's {w}x{h}",
                chip.width,
                chip.height,
                chip.pixels.len()
            ),
        ));
    }
    let flat = Mat::from_slice(&chip.pixels).map_err(|e| HandleError::reject("bad_chip", e))?;
    let shaped = flat
        .reshape(3, h as i32)
        .and_then(|m| m.try_clone())
        .map_err(|e| HandleError::reject("bad_chip", e))?;
    debug_assert_eq!(shaped.typ(), CV_8UC3);
    Ok(shaped)
}

fn probe_jpeg(rgb_chip: &Mat) -> opencv::Result<Vec<u8>> {
    let mut bgr = Mat::default();
    imgproc::cvt_color_def(rgb_chip, &mut bgr, imgproc::COLOR_RGB2BGR)?;
    encode_jpeg(&bgr, 90)
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let store = config.models.store()?;
    let embedders = (0..config.embed.workers())
        .map(|_| Ok(Arc::new(Mutex::new(config.models.embedder(&store)?))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let per_call = config.embed.per_call();
    stage::start_batched_service(
        "embed",
        &config.common,
        config.embed.http_addr,
        spec(&config.embed),
        |ctx| {
            let stage = EmbedStage {
                embedders,
                per_call,
                bus: ctx.bus.clone(),
                metrics: EmbedMetrics::new(&ctx.registry)?,
            };
            // Second line of gated capture: no template of a face from an uncovered camera.
            let coverage = coverage::watch(
                ctx.bus.jetstream.clone(),
                coverage::REFRESH,
                ctx.shutdown.clone(),
            );
            Gated::new("embed", stage, coverage, &ctx.registry)
        },
        shutdown,
    )
    .await
}
