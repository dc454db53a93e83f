//! An embedding: the template of one probe face, with what an alert would need to show it.

use super::{BoundingBox, Context, FaceQuality, FaceRef, Redacted, Timestamp};
use crate::wire::{Kind, Message};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub face: FaceRef,
    pub embedded_at: Timestamp,
    /// Manifest name of the model that produced `vector`; templates of different models never mix.
    pub model: String,
    /// L2-normalised template.
    pub vector: Vec<f32>,
    pub bbox: BoundingBox,
    pub quality: FaceQuality,
    /// The aligned probe chip as JPEG, shown to the operator beside the watch-list image.
    pub probe_jpeg: Redacted,
    /// The face's context crop, or where to ask for it (passed on from detect as it came).
    pub context: Context,
}

impl Message for Embedding {
    const KIND: Kind = Kind::Embedding;
    const VERSION: u8 = 2;
}
