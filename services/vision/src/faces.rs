//! One frame in, probe faces out: detect, measure quality, align to the embedder's template, and
//! crop the upper-torso context an operator and an officer need to recognise the person on the
//! ground. Faces that fail the quality gate are counted by reason and go no further.

use crate::align::align;
use crate::detector::{Detection, Detector};
use crate::image::encode_jpeg;
use crate::quality::{eye_distance, sharpness, yaw_degrees};
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
    pub context_jpeg: Vec<u8>,
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

impl FaceFinder {
    pub fn find(&mut self, bgr: &Mat) -> anyhow::Result<Found> {
        let mut found = Found::default();
        for detection in self.detector.detect(bgr)? {
            let eyes = eye_distance(&detection.landmarks);
            if eyes < self.gate.min_eye_distance_px {
                found.rejected.push("too_small");
                continue;
            }
            let yaw = yaw_degrees(&detection.landmarks);
            if yaw.abs() > self.gate.max_yaw_deg {
                found.rejected.push("turned");
                continue;
            }
            let chip_bgr = align(bgr, &detection.landmarks, &self.template, self.chip_size)?;
            let mut chip_rgb = Mat::default();
            imgproc::cvt_color_def(&chip_bgr, &mut chip_rgb, imgproc::COLOR_BGR2RGB)?;
            let sharp = sharpness(&chip_rgb)?;
            if sharp < self.gate.min_sharpness {
                found.rejected.push("blurred");
                continue;
            }
            let context_jpeg = encode_jpeg(&upper_torso(bgr, &detection.bbox)?, 85)?;
            found.faces.push(ProbeFace {
                quality: FaceQuality {
                    score: detection.score,
                    sharpness: sharp,
                    yaw_deg: yaw,
                    eye_distance_px: eyes,
                },
                detection,
                chip_rgb,
                context_jpeg,
            });
        }
        Ok(found)
    }
}

/// Head and upper torso around a face box: three face-widths wide, from half a face above the
/// head to two and a half faces below the chin, clipped to the frame.
pub fn upper_torso(frame: &Mat, bbox: &[f32; 4]) -> opencv::Result<Mat> {
    let (w, h) = (bbox[2] - bbox[0], bbox[3] - bbox[1]);
    let cx = (bbox[0] + bbox[2]) / 2.0;
    let x1 = (cx - 1.5 * w).max(0.0) as i32;
    let y1 = (bbox[1] - 0.5 * h).max(0.0) as i32;
    let x2 = ((cx + 1.5 * w) as i32).min(frame.cols());
    let y2 = ((bbox[3] + 2.5 * h) as i32).min(frame.rows());
    let rect = Rect::new(x1, y1, (x2 - x1).max(1), (y2 - y1).max(1));
    let rect = rect & Rect::new(0, 0, frame.cols(), frame.rows());
    Mat::roi(frame, rect)?.try_clone()
}
