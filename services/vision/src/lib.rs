//! # lfr-vision: faces from frames, templates from faces
//!
//! The same code serves the detect and embed services and `lfr eval`, so what is calibrated offline
//! is exactly what runs live.
//!
//! - [`config`]: the `[models]` section: which models, where, how many threads, what quality.
//! - [`manifest`]: the model manifest (`models/manifest.toml`): files, hashes, input and output specs.
//! - [`runtime`]: loading ONNX Runtime and models, refusing any file whose hash is not the manifest's.
//! - [`image`]: decoding untrusted images safely (JPEG and PNG sizes read from the header and
//!   checked before decoding, reduced decoding of huge frames).
//! - [`detector`]: RetinaFace-style detection: priors, box and landmark decoding, NMS.
//! - [`align`]: the similarity transform that puts 5 landmarks on the embedder's template.
//! - [`quality`]: sharpness, pose and size measures that decide whether a face is worth embedding.
//! - [`faces`]: detection + quality + alignment + context crop (other faces blurred): one frame in,
//!   probe faces out.
//! - [`embedder`]: batched embedding with L2 normalisation.
//! - [`redact`]: every face but one person's blurred beyond recognition (right of access, and
//!   bystanders in context crops).

pub mod align;
pub mod config;
pub mod detector;
pub mod embedder;
pub mod faces;
pub mod image;
pub mod manifest;
pub mod quality;
pub mod redact;
pub mod runtime;
