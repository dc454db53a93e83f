//! The messages of the pipeline, in the order a face travels:
//! [`Frame`] -> [`DetectedFace`] -> [`Embedding`] -> [`CandidateAlert`] -> [`AlertDecision`] /
//! [`AlertOutcome`], with [`AuditEvent`] recording who did what along the way.
//!
//! Images travel as JPEG (frames, context crops, probes for display) or as raw RGB (the aligned chip
//! the embedder needs, where JPEG artefacts would cost accuracy). None of these types is ever
//! written to a log: they implement `Debug` only through [`Redacted`] fields for image bytes.
//! What is retained on disk (the images of a [`CandidateAlert`]) travels [`Sealed`]: encrypted
//! under the deployment's data key by `lfr-vault` (docs/encryption.md).

mod alert;
mod audit;
mod embedding;
mod face;
mod frame;
mod time;
mod walk;

pub use alert::{
    AlertDecision, AlertOutcome, AlertsErased, CandidateAlert, Decision, HoldLifted, HoldPlaced,
    HoldReason, HoldReleased, Outcome, WatchlistCategory,
};
pub use audit::{hex, AuditAction, AuditEvent, AuditObject};
pub use embedding::Embedding;
pub use face::{
    BoundingBox, Context, ContextReply, ContextRequest, DetectedFace, FaceQuality, FaceRef, Point,
    RgbImage,
};
pub use frame::{Frame, FrameRef};
pub use time::Timestamp;
pub use walk::{BlueWalk, Walker};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Image bytes that must never be printed: `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Redacted(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.0.len())
    }
}

impl From<Vec<u8>> for Redacted {
    fn from(v: Vec<u8>) -> Self {
        Redacted(v)
    }
}

impl std::ops::Deref for Redacted {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Bytes encrypted at rest by `lfr-vault` with XChaCha20-Poly1305 under a deployment's data key.
///
/// Only a holder of the master key can open it, only with the same associated data it was sealed
/// with (which binds it to one alert and one purpose), and nobody at all once the data key was
/// destroyed (crypto-shredding). `Debug` shows the key id and the length only.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sealed {
    /// Which data key sealed it: the deployment id.
    pub key: String,
    /// The random 24-byte nonce of this encryption.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Ciphertext followed by the 16-byte Poly1305 tag.
    pub ciphertext: Redacted,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key", &self.key)
            .field("ciphertext", &self.ciphertext)
            .finish_non_exhaustive()
    }
}
