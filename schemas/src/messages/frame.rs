//! A frame: one sampled, JPEG-encoded image from one camera.

use super::{Redacted, Timestamp};
use crate::wire::{Kind, Message};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Where and when this frame was taken; `seq` gaps mean frames dropped at ingest.
    pub source: FrameRef,
    pub width: u32,
    pub height: u32,
    pub jpeg: Redacted,
}

/// Identifies a frame without carrying its pixels: what faces, embeddings and alerts point back to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameRef {
    pub camera: String,
    /// Start time of the ingest run that numbered this frame: `seq` restarts at 0 when ingest
    /// restarts, so (`epoch`, `seq`) is unique per camera.
    pub epoch: Timestamp,
    /// Per-camera sequence number, increasing by one for every sampled frame.
    pub seq: u64,
    pub captured_at: Timestamp,
}

impl Message for Frame {
    const KIND: Kind = Kind::Frame;
    const VERSION: u8 = 1;
}
