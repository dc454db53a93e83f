//! A detected face: the aligned chip for the embedder plus what an operator needs to see it.

use super::{FrameRef, Redacted, Timestamp};
use crate::wire::{Kind, Message};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// Axis-aligned box in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// Why a face was good enough to embed; kept so thresholds can be audited later.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceQuality {
    /// Detector confidence, 0..1.
    pub score: f32,
    /// Variance of the Laplacian on the chip: low means blurred.
    pub sharpness: f32,
    /// Yaw estimated from the landmarks, degrees; 0 is frontal.
    pub yaw_deg: f32,
    /// Inter-ocular distance in frame pixels.
    pub eye_distance_px: f32,
}

/// Raw interleaved RGB pixels, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Redacted,
}

/// Identifies one face of one frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FaceRef {
    pub frame: FrameRef,
    pub index: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedFace {
    pub face: FaceRef,
    pub detected_at: Timestamp,
    pub bbox: BoundingBox,
    /// Left eye, right eye, nose, left and right mouth corner, in frame pixels.
    pub landmarks: [Point; 5],
    pub quality: FaceQuality,
    /// The face aligned to the embedder's template (e.g. 112x112).
    pub chip: RgbImage,
    /// Head and upper torso cropped from the frame: what lets an officer stop the right person.
    pub context_jpeg: Redacted,
}

impl Message for DetectedFace {
    const KIND: Kind = Kind::DetectedFace;
    const VERSION: u8 = 1;
}
