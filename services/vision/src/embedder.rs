//! Embedding: aligned chips in, L2-normalised templates out, several faces per inference call.
//! Batching across cameras amortises the per-call overhead; templates are unit vectors so a cosine
//! similarity is a dot product (what faiss's inner-product index computes).

use crate::detector::{push_pixels, tensor_shape};
use crate::manifest::{Artefact, Colour, EmbedderSpec, InputSpec};
use crate::runtime::ModelStore;
use opencv::core::Mat;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::Tensor;

pub struct Embedder {
    pub name: String,
    session: Session,
    input: InputSpec,
    output: String,
    pub spec: EmbedderSpec,
}

impl Embedder {
    pub fn load(
        store: &ModelStore,
        artefact: &Artefact,
        threads: usize,
    ) -> anyhow::Result<Embedder> {
        let input = artefact
            .input
            .clone()
            .ok_or_else(|| anyhow::anyhow!("embedder {} has no input spec", artefact.name))?;
        let spec = artefact
            .embedder
            .clone()
            .ok_or_else(|| anyhow::anyhow!("embedder {} has no [embedder] spec", artefact.name))?;
        let output = artefact
            .outputs
            .first()
            .map(|o| o.name.clone())
            .ok_or_else(|| anyhow::anyhow!("embedder {} declares no output", artefact.name))?;
        let session = store.session(artefact, threads)?;
        Ok(Embedder {
            name: artefact.name.clone(),
            session,
            input,
            output,
            spec,
        })
    }

    /// Templates for RGB chips of the template size, in order.
    pub fn embed(&mut self, rgb_chips: &[Mat]) -> anyhow::Result<Vec<Vec<f32>>> {
        if rgb_chips.is_empty() {
            return Ok(Vec::new());
        }
        let [w, h] = self.spec.template_size;
        let mut batch = Vec::with_capacity(rgb_chips.len() * (w * h * 3) as usize);
        for chip in rgb_chips {
            anyhow::ensure!(
                chip.cols() as u32 == w && chip.rows() as u32 == h && chip.channels() == 3,
                "chip is {}x{}x{}, the embedder needs {w}x{h}x3",
                chip.cols(),
                chip.rows(),
                chip.channels()
            );
            push_pixels(chip, Colour::Rgb, &self.input, &mut batch)?;
        }
        let shape = tensor_shape(&self.input, rgb_chips.len(), h, w);
        let input = Tensor::from_array((shape, batch))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.name.as_str() => input])?;
        let (_, values) = outputs[self.output.as_str()].try_extract_tensor::<f32>()?;
        let dim = self.spec.dim;
        anyhow::ensure!(
            values.len() == dim * rgb_chips.len(),
            "embedder returned {} values for {} chips of dimension {dim}",
            values.len(),
            rgb_chips.len()
        );
        Ok(values.chunks_exact(dim).map(l2_normalised).collect())
    }
}

pub fn l2_normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
