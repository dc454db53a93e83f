//! # lfr-detect: frames in, faces out
//!
//! Consumes FRAMES through the shared `detect` consumer. For each frame: plan what to search from
//! the camera's tracks ([`tracks`]: the whole frame every `full_every`, only around the tracked
//! faces that are due a face in between, nothing when none is), decode the JPEG (refusing corrupt,
//! tiny or absurdly large images), find faces, drop those that fail the quality gate, align each
//! survivor whose track is due to the embedder's template, publish them to `lfr.faces.<camera>`
//! with the transient TTL, and only then acknowledge the frame. So each person in view goes on to
//! embed and match at most `faces_per_second` times a second, and at least once. A frame with no face leaves nothing behind. Frames of different
//! cameras are searched at once, one per worker (`workers`, one per core by default); a camera's
//! own frames one after another, in order. A frame of a camera that no live deployment covers is
//! acknowledged unread ([`lfr_watchlist::gate`]): faces are searched for only inside an
//! authorised deployment.
//!
//! The context crop (head and upper torso) is what an alert keeps and shows, so it is made only for
//! a face that matched, when the matcher asks for it ([`context`]): detect holds the frame for a
//! few seconds to answer. Before it leaves detect, every other face of the frame that reaches into
//! it is blurred, down to a detector score of 0.05, and the crop is searched again at that score
//! until it holds no face but its own (`lfr_vision::redact::blur_bystanders`). The faces blurred
//! are counted in `lfr_detect_context_faces_blurred_total`.

pub mod context;
mod metrics;
pub mod tracks;

use context::{ContextMode, HeldFace, HeldFaces, Responder};
use lfr_common::bus::Bus;
use lfr_common::config::Common;
use lfr_common::service::Running;
use lfr_common::stage::{self, BatchHandler, HandleError, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::{
    streams, subjects, BoundingBox, Context, DetectedFace, FaceRef, Frame, Point, RgbImage,
    Timestamp,
};
use lfr_vision::config::ModelsConfig;
use lfr_vision::detector::{iou, Detection};
use lfr_vision::faces::{FaceFinder, Found, ProbeFace};
use lfr_vision::image::{decode_jpeg, ImageError};
use lfr_watchlist::coverage;
use lfr_watchlist::gate::Gated;
use metrics::DetectMetrics;
use opencv::core::{Mat, Rect};
use opencv::prelude::*;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracks::{region_around, Plan, TrackId, Tracker, Tracking};

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
    /// How often frames are searched in full and how many faces of a person go on ([`tracks`]).
    pub tracking: Tracking,
    /// Frames of different cameras searched at once, each with its own detector (0: one per
    /// core). A camera's own frames are always searched in order, as its tracks follow them.
    pub workers: usize,
    /// When a face's context crop is made: when the matcher asks (`on_request`) or with every
    /// face (`with_face`) ([`context`]).
    pub context: ContextMode,
    /// How long a published face's frame is held to make its crop on request.
    #[serde(with = "lfr_common::config::secs")]
    pub context_hold: Duration,
    /// Most JPEG bytes held for that, in MiB (the oldest go first).
    pub context_hold_mib: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            http_addr: "127.0.0.1:9102".parse().unwrap(),
            tracking: Tracking::default(),
            workers: 0,
            context: ContextMode::OnRequest,
            context_hold: Duration::from_secs(15),
            context_hold_mib: 64,
        }
    }
}

pub fn spec() -> StageSpec {
    StageSpec {
        name: "detect",
        stream: streams::FRAMES,
        durable: streams::consumers::DETECT,
        // What is waiting, up to this: frames of different cameras are searched at once.
        max_batch: 8,
        max_wait: Duration::ZERO,
        // Half the budget: a frame taken later would reach embed too old to be worth its face.
        shed_at: Some(0.5),
    }
}

struct DetectStage {
    /// One per worker: a batch's cameras take them in turn.
    finders: Vec<Arc<Mutex<FaceFinder>>>,
    tracker: Arc<Mutex<Tracker>>,
    /// The detector's longer input side: frames are decoded at a reduced scale down to this.
    input_side: u32,
    bus: Bus,
    metrics: DetectMetrics,
    context: ContextMode,
    /// Makes the crops asked for: its own detector, so a request never waits for a frame.
    context_finder: Arc<Mutex<FaceFinder>>,
    /// The published faces whose crops can still be asked for (`on_request`).
    held: Arc<Mutex<HeldFaces>>,
    /// Where this replica answers for them: subscribed before the first face names it.
    context_subject: tokio::sync::OnceCell<String>,
    shutdown: Shutdown,
}

impl BatchHandler for DetectStage {
    type Input = Frame;

    /// Each camera's frames in order, one after another (its tracks follow them); different
    /// cameras at once, each with a detector of its own while there are enough.
    async fn handle_batch(&self, frames: Vec<Frame>) -> Vec<Result<(), HandleError>> {
        let count = frames.len();
        let mut cameras: Vec<Vec<(usize, Frame)>> = Vec::new();
        for (i, frame) in frames.into_iter().enumerate() {
            let camera = &frame.source.camera;
            match cameras.iter_mut().find(|c| c[0].1.source.camera == *camera) {
                Some(mine) => mine.push((i, frame)),
                None => cameras.push(vec![(i, frame)]),
            }
        }
        let each_camera = cameras.into_iter().enumerate().map(|(k, frames)| {
            let finder = self.finders[k % self.finders.len()].clone();
            async move {
                let mut done = Vec::with_capacity(frames.len());
                for (i, frame) in frames {
                    done.push((i, self.handle(frame, finder.clone()).await));
                }
                done
            }
        });
        let mut results: Vec<Option<Result<(), HandleError>>> = (0..count).map(|_| None).collect();
        for (i, result) in futures::future::join_all(each_camera)
            .await
            .into_iter()
            .flatten()
        {
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.expect("every frame of the batch was handled"))
            .collect()
    }

    fn captured_at(frame: &Frame) -> Option<Timestamp> {
        Some(frame.source.captured_at)
    }
}

impl DetectStage {
    async fn handle(
        &self,
        frame: Frame,
        finder: Arc<Mutex<FaceFinder>>,
    ) -> Result<(), HandleError> {
        let started = Instant::now();
        let camera = frame.source.camera.clone();
        let captured_at = frame.source.captured_at;
        let plan = lock(&self.tracker).plan(&camera, captured_at);
        if plan == Plan::Skip {
            self.metrics.skipped();
            return Ok(());
        }
        let tracker = self.tracker.clone();
        let input_side = self.input_side;
        let jpeg = Arc::new(frame.jpeg.0);
        let plan_name = plan.name();
        let with_context = self.context == ContextMode::WithFace;
        let (found, scale) = tokio::task::spawn_blocking({
            let jpeg = jpeg.clone();
            move || {
                let (image, scale) = decode(&jpeg, input_side)?;
                let found = search(
                    &finder,
                    &tracker,
                    &camera,
                    captured_at,
                    &image,
                    plan,
                    with_context,
                )?;
                Ok::<_, HandleError>((found, scale))
            }
        })
        .await
        .map_err(|e| HandleError::reject("internal", e))??;
        self.metrics.searched(plan_name, &found, started.elapsed());
        let on_request = match self.context {
            ContextMode::WithFace => None,
            ContextMode::OnRequest if found.faces.is_empty() => None,
            ContextMode::OnRequest => Some(self.context_subject().await?),
        };
        let detected_at = Timestamp::now();
        for (index, face) in found.faces.into_iter().enumerate() {
            let SearchedFace {
                track,
                probe,
                everyone,
            } = face;
            let detection = probe.detection.clone();
            let mut message = detected_face(&frame.source, index, probe, scale, detected_at)
                .map_err(|e| HandleError::reject("internal", e))?;
            if let Some(subject) = &on_request {
                message.context = Context::OnRequest {
                    subject: subject.clone(),
                };
                // Held before it is published: the matcher may ask as soon as it is.
                let held = HeldFace {
                    jpeg: jpeg.clone(),
                    detection,
                    everyone,
                };
                lock(&self.held).hold(message.face.clone(), held, Instant::now());
            }
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
            lock(&self.tracker).took_turn(&frame.source.camera, track, captured_at);
        }
        Ok(())
    }

    /// This replica's context subject, answered from the first time a face names it.
    async fn context_subject(&self) -> Result<String, HandleError> {
        self.context_subject
            .get_or_try_init(|| async {
                // The inbox's last token is a fresh random id (NUID): this replica's own.
                let inbox = self.bus.client.new_inbox();
                let replica = inbox.rsplit('.').next().unwrap_or_default().to_string();
                let subject = subjects::context(&replica);
                let responder = Arc::new(Responder {
                    held: self.held.clone(),
                    finder: self.context_finder.clone(),
                    input_side: self.input_side,
                    metrics: self.metrics.clone(),
                });
                responder
                    .serve(&self.bus, subject.clone(), self.shutdown.clone())
                    .await?;
                tracing::info!("answering context requests");
                Ok::<_, anyhow::Error>(subject)
            })
            .await
            .cloned()
            .map_err(HandleError::Retry)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The faces one frame gives, each with its track, and the reasons the others were refused.
#[derive(Default)]
pub struct Searched {
    pub faces: Vec<SearchedFace>,
    pub rejected: Vec<&'static str>,
    /// Faces found whose track was not due: neither cropped nor published.
    pub held: usize,
}

/// A face to publish: its track, the probe and every detection of the search that found it (the
/// bystanders its context crop blurs).
pub struct SearchedFace {
    pub track: TrackId,
    pub probe: ProbeFace,
    pub everyone: Vec<Detection>,
}

/// Decode a frame's JPEG at a reduced scale down to `input_side` (blocking).
fn decode(jpeg: &[u8], input_side: u32) -> Result<(Mat, f32), HandleError> {
    decode_jpeg(jpeg, input_side).map_err(|e: ImageError| HandleError::reject(e.reason(), e))
}

/// Carry out a frame's plan (blocking: runs on the blocking pool): a full search joins every face
/// to a track, a region search looks for each due track near its predicted box; only faces of due
/// tracks are made probes (chip, and `with_context` the context crop), the others are counted as
/// held.
fn search(
    finder: &Mutex<FaceFinder>,
    tracker: &Mutex<Tracker>,
    camera: &str,
    at: Timestamp,
    image: &Mat,
    plan: Plan,
    with_context: bool,
) -> Result<Searched, HandleError> {
    let mut search = FrameSearch {
        finder: &mut lock(finder),
        tracker,
        camera,
        at,
        image,
        with_context,
        out: Searched::default(),
    };
    match plan {
        Plan::Skip => {}
        Plan::Full => search.whole_frame()?,
        Plan::Regions(due) => search.regions(due)?,
    }
    Ok(search.out)
}

/// One frame being searched.
struct FrameSearch<'a> {
    finder: &'a mut FaceFinder,
    tracker: &'a Mutex<Tracker>,
    camera: &'a str,
    at: Timestamp,
    image: &'a Mat,
    with_context: bool,
    out: Searched,
}

fn detector_failed(e: anyhow::Error) -> HandleError {
    HandleError::reject("detector_failed", e)
}

impl FrameSearch<'_> {
    fn whole_frame(&mut self) -> Result<(), HandleError> {
        let everyone = self
            .finder
            .detect_everyone(self.image)
            .map_err(detector_failed)?;
        let candidates: Vec<Detection> = self.finder.candidates(&everyone).cloned().collect();
        let boxes: Vec<[f32; 4]> = candidates.iter().map(|d| d.bbox).collect();
        let tracks = lock(self.tracker).searched(self.camera, self.at, &boxes);
        for (detection, (track, due)) in candidates.iter().zip(tracks) {
            if due {
                self.probe(track, detection, &everyone)?;
            } else {
                self.out.held += 1;
            }
        }
        Ok(())
    }

    fn regions(&mut self, due: Vec<(TrackId, [f32; 4])>) -> Result<(), HandleError> {
        for (track, predicted) in due {
            let [x1, y1, x2, y2] = region_around(&predicted);
            let region = Rect::new(x1 as i32, y1 as i32, (x2 - x1) as i32, (y2 - y1) as i32);
            let everyone = self
                .finder
                .detect_everyone_in(self.image, region)
                .map_err(detector_failed)?;
            let again = self
                .finder
                .candidates(&everyone)
                .map(|d| (iou(&d.bbox, &predicted), d))
                .filter(|(overlap, _)| *overlap > 0.0)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, d)| d.clone());
            lock(self.tracker).refound(self.camera, track, self.at, again.as_ref().map(|d| d.bbox));
            if let Some(detection) = again {
                self.probe(track, &detection, &everyone)?;
            }
        }
        Ok(())
    }

    /// Make a due track's face a probe (its chip, and its context crop if made with the face). A
    /// face the quality gate refuses takes the track's turn at once; a probe takes it once it is
    /// published.
    fn probe(
        &mut self,
        track: TrackId,
        detection: &Detection,
        everyone: &[Detection],
    ) -> Result<(), HandleError> {
        match self
            .finder
            .probe(self.image, detection, everyone, self.with_context)
            .map_err(detector_failed)?
        {
            Ok(probe) => self.out.faces.push(SearchedFace {
                track,
                probe,
                everyone: if self.with_context {
                    Vec::new()
                } else {
                    everyone.to_vec()
                },
            }),
            Err(reason) => {
                self.out.rejected.push(reason);
                lock(self.tracker).took_turn(self.camera, track, self.at);
            }
        }
        Ok(())
    }
}

/// Decode and search one whole frame, every face a probe (blocking). Public, with
/// [`detected_face`], so the load test's in-process baseline runs the stage's own code.
pub fn find(
    finder: &Mutex<FaceFinder>,
    jpeg: &[u8],
    input_side: u32,
) -> Result<(Found, f32), HandleError> {
    let (image, scale) = decode(jpeg, input_side)?;
    let found = lock(finder).find(&image).map_err(detector_failed)?;
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
        context: Context::Crop(face.context_jpeg.into()),
    })
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let store = config.models.store()?;
    let finders = (0..lfr_common::config::workers(config.detect.workers))
        .map(|_| Ok(Arc::new(Mutex::new(config.models.face_finder(&store)?))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let input_side = config.models.detector_input[0].max(config.models.detector_input[1]);
    config.detect.tracking.validate()?;
    let tracking = config.detect.tracking.clone();
    let context_mode = config.detect.context;
    let context_finder = Arc::new(Mutex::new(config.models.face_finder(&store)?));
    let held = HeldFaces::new(
        config.detect.context_hold,
        config.detect.context_hold_mib.saturating_mul(1 << 20),
    );
    stage::start_batched_service(
        "detect",
        &config.common,
        config.detect.http_addr,
        spec(),
        |ctx| {
            let stage = DetectStage {
                finders,
                tracker: Arc::new(Mutex::new(Tracker::new(tracking))),
                input_side,
                bus: ctx.bus.clone(),
                metrics: DetectMetrics::new(&ctx.registry)?,
                context: context_mode,
                context_finder,
                held: Arc::new(Mutex::new(held)),
                context_subject: tokio::sync::OnceCell::new(),
                shutdown: ctx.shutdown.clone(),
            };
            // Second line of gated capture: frames of an uncovered camera are never searched.
            let coverage = coverage::watch(
                ctx.bus.jetstream.clone(),
                coverage::REFRESH,
                ctx.shutdown.clone(),
            );
            Gated::new("detect", stage, coverage, &ctx.registry)
        },
        shutdown,
    )
    .await
}
