//! The `[models]` section shared by detect, embed and `lfr eval`: which detector and embedder to run
//! and where their verified files are. Detect and embed must agree on the embedder (detect aligns
//! faces to its template), which is why this is one section, not two.

use crate::detector::Detector;
use crate::embedder::Embedder;
use crate::faces::{FaceFinder, QualityGate};
use crate::manifest::Role;
use crate::runtime::ModelStore;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelsConfig {
    /// Models directory (default `LFR_MODELS_DIR` or `~/.cache/lfr/models`).
    pub dir: Option<PathBuf>,
    /// Manifest (default `DIR/manifest.toml`).
    pub manifest: Option<PathBuf>,
    pub detector: String,
    pub embedder: String,
    /// Largest `[width, height]` the detector sees; frames are scaled down to fit.
    pub detector_input: [u32; 2],
    /// ONNX Runtime intra-op threads per model.
    pub threads: usize,
    pub quality: QualityGate,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: None,
            manifest: None,
            detector: "retinaface-mnet025".into(),
            embedder: "mobilefacenet".into(),
            detector_input: [640, 480],
            threads: 1,
            quality: QualityGate::default(),
        }
    }
}

impl ModelsConfig {
    pub fn store(&self) -> anyhow::Result<ModelStore> {
        let dir = self.dir.clone().unwrap_or_else(ModelStore::default_dir);
        ModelStore::open(&dir, self.manifest.as_deref())
    }

    /// Detector plus the embedder's alignment template and quality gate.
    /// The configured embedder's calibrated 1-in-1,000 threshold from the model manifest (read
    /// without loading any model); `None` when the manifest records no calibration for it.
    pub fn calibrated_threshold(&self) -> anyhow::Result<Option<f32>> {
        let dir = self.dir.clone().unwrap_or_else(ModelStore::default_dir);
        let path = self
            .manifest
            .clone()
            .unwrap_or_else(|| dir.join("manifest.toml"));
        let manifest = crate::manifest::Manifest::load(&path)?;
        let embedder = manifest.artefact(&self.embedder)?;
        Ok(embedder
            .embedder
            .as_ref()
            .and_then(|e| e.calibration.as_ref())
            .map(|c| c.fpir_1_in_1000))
    }

    pub fn face_finder(&self, store: &ModelStore) -> anyhow::Result<FaceFinder> {
        let detector = Detector::load(
            store,
            store.model(&self.detector, Role::Detector)?,
            self.detector_input,
            self.threads,
        )?;
        let embedder = store.model(&self.embedder, Role::Embedder)?;
        let spec = embedder
            .embedder
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("embedder {} has no [embedder] spec", embedder.name))?;
        Ok(FaceFinder {
            detector,
            template: spec.template,
            chip_size: spec.template_size,
            gate: self.quality.clone(),
        })
    }

    pub fn embedder(&self, store: &ModelStore) -> anyhow::Result<Embedder> {
        Embedder::load(
            store,
            store.model(&self.embedder, Role::Embedder)?,
            self.threads,
        )
    }
}
