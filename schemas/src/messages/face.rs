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
    /// Head and upper torso from the frame, bystanders blurred: what lets an officer stop the
    /// right person. Usually made only for a face that matches ([`Context::OnRequest`]).
    pub context: Context,
}

impl Message for DetectedFace {
    const KIND: Kind = Kind::DetectedFace;
    const VERSION: u8 = 2;
}

/// Where a face's context crop (head and upper torso, every other face blurred) comes from.
///
/// Only an alert shows the crop, and almost no face makes one: so detect makes it only when the
/// matcher asks ([`ContextRequest`]), from the frame it holds in memory for a few seconds. The
/// crops of the faces that match nothing are never made at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Context {
    /// The crop itself, made with the face (JPEG).
    Crop(Redacted),
    /// Made on request: ask `subject` (one detect replica's own, [`crate::subjects::context`]).
    OnRequest { subject: String },
}

/// The matcher asks the detect replica that found `face` for its context crop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRequest {
    pub face: FaceRef,
}

impl Message for ContextRequest {
    const KIND: Kind = Kind::ContextRequest;
    const VERSION: u8 = 1;
}

/// The answer to a [`ContextRequest`]: the crop as JPEG, bystanders blurred, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContextReply {
    Crop(Redacted),
    /// The frame is no longer held (older than the replica keeps frames, or the replica restarted).
    Gone,
    /// The crop could not be made (the reason is a fixed label).
    Failed(String),
}

impl Message for ContextReply {
    const KIND: Kind = Kind::ContextReply;
    const VERSION: u8 = 1;
}
