//! One frame in, probe faces out: detect, measure quality, align to the embedder's template, and
//! crop the upper-torso context an operator and an officer need to recognise the person on the
//! ground. Faces that fail the quality gate are counted by reason and go no further.
//!
//! The context crop is kept with an alert for 30 days or more and shown to operators and officers,
//! so it must show one person's face only: the detector runs once per frame down to
//! [`BYSTANDER_SCORE`] (0.05); the faces at or above its own threshold (0.9) are the candidates for
//! the quality gate, and **every** detection (any score from 0.05, passing the gate or not) other
//! than the probe's own that reaches into its context crop is blurred there
//! ([`blur_bystanders`], the right-of-access redaction). The crop is then searched again at 0.05
//! as it will be published, and whatever other face is still found is blurred too.

use crate::align::align;
use crate::detector::{Detection, Detector};
use crate::quality::{eye_distance, sharpness, yaw_degrees};
use crate::redact::{blur_bystanders, Bystanders, ContextCrop, BYSTANDER_SCORE};
use lfr_schemas::FaceQuality;
use opencv::core::{Mat, Rect};
use opencv::imgproc;
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

/// Minimum quality for a face to be embedded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityGate {
    /// Inter-ocular distance in frame pixels; below it the template is unreliable.
    pub min_eye_distance_px: f32,
    /// Variance of the Laplacian of the aligned chip.
    pub min_sharpness: f32,
    /// Largest estimated head turn, degrees.
    pub max_yaw_deg: f32,
}

impl Default for QualityGate {
    fn default() -> Self {
        QualityGate {
            min_eye_distance_px: 12.0,
            min_sharpness: 15.0,
            max_yaw_deg: 50.0,
        }
    }
}

/// A face worth embedding.
pub struct ProbeFace {
    pub detection: Detection,
    pub quality: FaceQuality,
    /// Aligned chip, RGB, the embedder's template size.
    pub chip_rgb: Mat,
    /// Head and upper torso ([`upper_torso_rect`]) as JPEG, every other face in it blurred.
    pub context_jpeg: Vec<u8>,
    /// What was blurred in `context_jpeg` (counts only).
    pub bystanders: Bystanders,
}

pub struct FaceFinder {
    pub detector: Detector,
    pub template: [[f32; 2]; 5],
    pub chip_size: [u32; 2],
    pub gate: QualityGate,
}

/// What a frame yielded.
#[derive(Default)]
pub struct Found {
    pub faces: Vec<ProbeFace>,
    /// One entry per face refused by the quality gate: `too_small`, `blurred` or `turned`.
    pub rejected: Vec<&'static str>,
}

/// JPEG quality of context crops.
pub const CONTEXT_QUALITY: i32 = 85;

impl FaceFinder {
    /// The probe faces of a BGR frame (best first), each with its chip and its context crop
    /// (bystanders blurred), and the reasons the others were refused.
    pub fn find(&mut self, bgr: &Mat) -> anyhow::Result<Found> {
        self.find_faces(bgr, true)
    }

    /// [`FaceFinder::find`] without the context crops (left empty), for callers that keep only
    /// the chips (`lfr eval`): no crop is made, so no bystander needs blurring.
    pub fn find_chips(&mut self, bgr: &Mat) -> anyhow::Result<Found> {
        self.find_faces(bgr, false)
    }

    fn find_faces(&mut self, bgr: &Mat, with_context: bool) -> anyhow::Result<Found> {
        let mut found = Found::default();
        let everyone = self.detect_everyone(bgr)?;
        for detection in self.candidates(&everyone) {
            match self.probe(bgr, detection, &everyone, with_context)? {
                Ok(face) => found.faces.push(face),
                Err(reason) => found.rejected.push(reason),
            }
        }
        Ok(found)
    }

    /// Every face the detector finds in a BGR frame down to [`BYSTANDER_SCORE`], best first: the
    /// candidates for probes ([`FaceFinder::candidates`]) and the bystanders to blur, in one run
    /// (non-maximum suppression makes the detections at or above the live threshold the same as a
    /// run at that threshold would give).
    pub fn detect_everyone(&mut self, bgr: &Mat) -> anyhow::Result<Vec<Detection>> {
        let threshold = self.detector.score_threshold();
        self.detector
            .detect_from(bgr, BYSTANDER_SCORE.min(threshold))
    }

    /// [`FaceFinder::detect_everyone`] in one region of the frame only (clipped to it), in frame
    /// coordinates: a tracked face is found again at a fraction of a whole frame's cost.
    pub fn detect_everyone_in(
        &mut self,
        bgr: &Mat,
        region: Rect,
    ) -> anyhow::Result<Vec<Detection>> {
        let region = region & Rect::new(0, 0, bgr.cols(), bgr.rows());
        if region.width < 8 || region.height < 8 {
            return Ok(Vec::new());
        }
        let crop = Mat::roi(bgr, region)?.try_clone()?;
        let (dx, dy) = (region.x as f32, region.y as f32);
        Ok(self
            .detect_everyone(&crop)?
            .into_iter()
            .map(|d| Detection {
                score: d.score,
                bbox: [
                    d.bbox[0] + dx,
                    d.bbox[1] + dy,
                    d.bbox[2] + dx,
                    d.bbox[3] + dy,
                ],
                landmarks: d.landmarks.map(|[x, y]| [x + dx, y + dy]),
            })
            .collect())
    }

    /// The detections of `everyone` confident enough to be probes (the detector's own threshold).
    pub fn candidates<'a>(
        &self,
        everyone: &'a [Detection],
    ) -> impl Iterator<Item = &'a Detection> + use<'a> {
        let threshold = self.detector.score_threshold();
        everyone.iter().filter(move |d| d.score >= threshold)
    }

    /// One candidate made a probe: the quality gate (`Err` with the reason it refused the face:
    /// `too_small`, `turned` or `blurred`), the aligned chip and, `with_context`, the context crop
    /// with every other face of `everyone` and of the crop itself blurred.
    pub fn probe(
        &mut self,
        bgr: &Mat,
        detection: &Detection,
        everyone: &[Detection],
        with_context: bool,
    ) -> anyhow::Result<Result<ProbeFace, &'static str>> {
        let eyes = eye_distance(&detection.landmarks);
        if eyes < self.gate.min_eye_distance_px {
            return Ok(Err("too_small"));
        }
        let yaw = yaw_degrees(&detection.landmarks);
        if yaw.abs() > self.gate.max_yaw_deg {
            return Ok(Err("turned"));
        }
        let chip_bgr = align(bgr, &detection.landmarks, &self.template, self.chip_size)?;
        let mut chip_rgb = Mat::default();
        imgproc::cvt_color_def(&chip_bgr, &mut chip_rgb, imgproc::COLOR_BGR2RGB)?;
        let sharp = sharpness(&chip_rgb)?;
        if sharp < self.gate.min_sharpness {
            return Ok(Err("blurred"));
        }
        let context = if with_context {
            self.context(bgr, detection, everyone)?
        } else {
            Default::default()
        };
        Ok(Ok(ProbeFace {
            quality: FaceQuality {
                score: detection.score,
                sharpness: sharp,
                yaw_deg: yaw,
                eye_distance_px: eyes,
            },
            detection: detection.clone(),
            chip_rgb,
            context_jpeg: context.jpeg,
            bystanders: context.bystanders,
        }))
    }

    /// The context crop of a face of `bgr` (its head and upper torso, [`upper_torso_rect`]) as
    /// JPEG, with every other face of `everyone` and of the crop itself blurred
    /// ([`blur_bystanders`]). [`FaceFinder::probe`] makes it with the face; detect makes it later,
    /// from the same frame and detections, when an alert asks for it.
    pub fn context(
        &mut self,
        bgr: &Mat,
        detection: &Detection,
        everyone: &[Detection],
    ) -> anyhow::Result<ContextCrop> {
        blur_bystanders(
            &mut self.detector,
            bgr,
            upper_torso_rect(bgr.cols(), bgr.rows(), &detection.bbox),
            &detection.bbox,
            everyone,
            CONTEXT_QUALITY,
        )
    }
}

/// Head and upper torso around a face box (unblurred): see [`upper_torso_rect`].
pub fn upper_torso(frame: &Mat, bbox: &[f32; 4]) -> opencv::Result<Mat> {
    Mat::roi(frame, upper_torso_rect(frame.cols(), frame.rows(), bbox))?.try_clone()
}

/// Where the context crop of a face box is in a `width` x `height` frame: three face-widths wide,
/// from half a face above the head to two and a half faces below the chin, clipped to the frame.
pub fn upper_torso_rect(width: i32, height: i32, bbox: &[f32; 4]) -> Rect {
    let (w, h) = (bbox[2] - bbox[0], bbox[3] - bbox[1]);
    let cx = (bbox[0] + bbox[2]) / 2.0;
    let x1 = (cx - 1.5 * w).max(0.0) as i32;
    let y1 = (bbox[1] - 0.5 * h).max(0.0) as i32;
    let x2 = ((cx + 1.5 * w) as i32).min(width);
    let y2 = ((bbox[3] + 2.5 * h) as i32).min(height);
    let rect = Rect::new(x1, y1, (x2 - x1).max(1), (y2 - y1).max(1));
    rect & Rect::new(0, 0, width, height)
}
