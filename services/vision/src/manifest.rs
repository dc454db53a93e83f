//! The model manifest: what `models/fetch.py` installs and how each model is fed and decoded.
//!
//! A deployment can use another ONNX detector or embedder (a licensed commercial model, a GPU build)
//! by adding an `[[artefact]]` with the same fields; nothing in the services names a model.

use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    #[serde(rename = "artefact")]
    pub artefacts: Vec<Artefact>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Detector,
    Embedder,
    Runtime,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Artefact {
    pub name: String,
    pub role: Role,
    pub file: String,
    /// Hex sha256 of the installed file: nothing else is loaded.
    pub sha256: String,
    pub input: Option<InputSpec>,
    #[serde(default, rename = "output")]
    pub outputs: Vec<OutputSpec>,
    pub detector: Option<DetectorSpec>,
    pub embedder: Option<EmbedderSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Colour {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

/// How pixels become the input tensor: `(pixel - mean[c]) / std[c]`, channels in `colour` order.
#[derive(Debug, Clone, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub layout: Layout,
    pub colour: Colour,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutputSpec {
    pub name: String,
}

/// RetinaFace-style decoding. Outputs, in manifest order: box regression, scores, landmarks.
#[derive(Debug, Clone, Deserialize)]
pub struct DetectorSpec {
    pub steps: Vec<u32>,
    pub min_sizes: Vec<Vec<f32>>,
    pub variance: [f32; 2],
    #[serde(default = "one")]
    pub score_column: usize,
    pub score_threshold: f32,
    pub nms_iou: f32,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbedderSpec {
    pub dim: usize,
    /// Chip `[width, height]`.
    pub template_size: [u32; 2],
    /// Where the 5 landmarks go on the chip.
    pub template: [[f32; 2]; 5],
    /// `cosine` (similarity, higher is closer) or `euclidean` (distance of raw outputs).
    pub metric: String,
    /// The model's published same-person rule; deployments calibrate their own with `lfr eval`.
    pub threshold: f32,
    /// The operating point measured by `lfr eval` on this pipeline: the default threshold of a
    /// deployment (absent: none measured yet, a deployment must name its threshold).
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

/// `[artefact.embedder.calibration]`, written by `lfr eval --write-calibration`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Calibration {
    /// The similarity at which 1 in 1,000 searches of a non-enrolled face raises a false alert
    /// (FPIR 1e-3), the DPIA's ceiling.
    pub fpir_1_in_1000: f32,
    /// What it was measured on, and when.
    #[serde(default)]
    pub measured_on: String,
}

impl Manifest {
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read model manifest {}: {e}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid model manifest {}: {e}", path.display()))?;
        anyhow::ensure!(
            manifest.schema == 1,
            "unsupported manifest schema {}",
            manifest.schema
        );
        Ok(manifest)
    }

    pub fn artefact(&self, name: &str) -> anyhow::Result<&Artefact> {
        self.artefacts
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| anyhow::anyhow!("model {name:?} is not in the manifest"))
    }

    pub fn runtime(&self) -> anyhow::Result<&Artefact> {
        self.artefacts
            .iter()
            .find(|a| a.role == Role::Runtime)
            .ok_or_else(|| anyhow::anyhow!("the manifest names no ONNX Runtime library"))
    }
}
