//! Face detection with a RetinaFace-style model: the image is scaled to fit the configured input
//! size, the network scores a fixed grid of prior boxes, and the priors above the score threshold
//! are decoded into boxes and 5 landmarks, then de-duplicated with non-maximum suppression.

use crate::manifest::{Artefact, Colour, DetectorSpec, InputSpec, Layout};
use crate::runtime::{ModelError, ModelStore};
use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::Tensor;

/// One detected face in the coordinates of the image given to [`Detector::detect`].
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub score: f32,
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Left eye, right eye, nose, left and right mouth corner (image left/right).
    pub landmarks: [[f32; 2]; 5],
}

pub struct Detector {
    session: Session,
    input: InputSpec,
    spec: DetectorSpec,
    outputs: [String; 3],
    /// Largest `[width, height]` fed to the network; larger images are scaled down to fit.
    max_input: [u32; 2],
    /// Priors for the last input size: frames of one camera share a size.
    priors: Option<PriorCache>,
}

struct PriorCache {
    size: (u32, u32),
    priors: Vec<[f32; 4]>,
}

impl Detector {
    pub fn load(
        store: &ModelStore,
        artefact: &Artefact,
        max_input: [u32; 2],
        threads: usize,
    ) -> anyhow::Result<Detector> {
        let input = artefact
            .input
            .clone()
            .ok_or_else(|| anyhow::anyhow!("detector {} has no input spec", artefact.name))?;
        let spec = artefact
            .detector
            .clone()
            .ok_or_else(|| anyhow::anyhow!("detector {} has no [detector] spec", artefact.name))?;
        anyhow::ensure!(
            artefact.outputs.len() == 3,
            "detector {} must declare 3 outputs (boxes, scores, landmarks)",
            artefact.name
        );
        anyhow::ensure!(
            spec.steps.len() == spec.min_sizes.len(),
            "detector {}: steps and min_sizes differ in length",
            artefact.name
        );
        let outputs = [0, 1, 2].map(|i| artefact.outputs[i].name.clone());
        let session = store
            .session(artefact, threads)
            .map_err(|e: ModelError| anyhow::anyhow!(e))?;
        Ok(Detector {
            session,
            input,
            spec,
            outputs,
            max_input,
            priors: None,
        })
    }

    /// The manifest's score threshold: [`Detector::detect`] keeps faces scoring at least this.
    pub fn score_threshold(&self) -> f32 {
        self.spec.score_threshold
    }

    /// Faces in a BGR image scoring at least the manifest's threshold, best first.
    pub fn detect(&mut self, bgr: &Mat) -> anyhow::Result<Vec<Detection>> {
        self.detect_from(bgr, self.spec.score_threshold)
    }

    /// Faces in a BGR image scoring at least `min_score`, best first. Non-maximum suppression
    /// keeps the best box of each overlapping group, so the detections at or above a higher
    /// threshold are exactly those [`Detector::detect_from`] gives at that threshold: one run at a
    /// low score serves both the live threshold and a more sensitive one.
    pub fn detect_from(&mut self, bgr: &Mat, min_score: f32) -> anyhow::Result<Vec<Detection>> {
        let (w, h) = (bgr.cols() as u32, bgr.rows() as u32);
        anyhow::ensure!(w >= 8 && h >= 8, "image {w}x{h} too small for detection");
        let scale = (self.max_input[0] as f32 / w as f32)
            .min(self.max_input[1] as f32 / h as f32)
            .min(1.0);
        let (iw, ih) = (
            ((w as f32 * scale).round() as u32).max(8),
            ((h as f32 * scale).round() as u32).max(8),
        );
        let resized;
        let image = if (iw, ih) == (w, h) {
            bgr
        } else {
            let mut out = Mat::default();
            imgproc::resize(
                bgr,
                &mut out,
                Size::new(iw as i32, ih as i32),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )?;
            resized = out;
            &resized
        };
        if self.priors.as_ref().map(|c| c.size) != Some((iw, ih)) {
            self.priors = Some(PriorCache {
                size: (iw, ih),
                priors: priors(&self.spec, iw, ih),
            });
        }
        let tensor = to_tensor(image, &self.input)?;
        let input = Tensor::from_array((tensor_shape(&self.input, 1, ih, iw), tensor))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.name.as_str() => input])?;
        let (_, loc) = outputs[self.outputs[0].as_str()].try_extract_tensor::<f32>()?;
        let (_, conf) = outputs[self.outputs[1].as_str()].try_extract_tensor::<f32>()?;
        let (_, lms) = outputs[self.outputs[2].as_str()].try_extract_tensor::<f32>()?;
        let priors = &self.priors.as_ref().expect("computed above").priors;
        let anchors = priors.len();
        anyhow::ensure!(
            loc.len() == anchors * 4 && lms.len() == anchors * 10 && conf.len() % anchors == 0,
            "detector output sizes do not match its {anchors} priors"
        );
        let classes = conf.len() / anchors;
        let [v0, v1] = self.spec.variance;
        let back = 1.0 / scale;
        let (fw, fh) = (iw as f32, ih as f32);
        let mut found = Vec::new();
        for (a, p) in priors.iter().enumerate() {
            let score = conf[a * classes + self.spec.score_column];
            if score < min_score {
                continue;
            }
            let r = &loc[a * 4..a * 4 + 4];
            let cx = p[0] + r[0] * v0 * p[2];
            let cy = p[1] + r[1] * v0 * p[3];
            let bw = p[2] * (r[2] * v1).exp();
            let bh = p[3] * (r[3] * v1).exp();
            let bbox = [
                (cx - bw / 2.0) * fw * back,
                (cy - bh / 2.0) * fh * back,
                (cx + bw / 2.0) * fw * back,
                (cy + bh / 2.0) * fh * back,
            ];
            let l = &lms[a * 10..a * 10 + 10];
            let landmarks = [0, 1, 2, 3, 4].map(|i| {
                [
                    (p[0] + l[2 * i] * v0 * p[2]) * fw * back,
                    (p[1] + l[2 * i + 1] * v0 * p[3]) * fh * back,
                ]
            });
            found.push(Detection {
                score,
                bbox,
                landmarks,
            });
        }
        Ok(non_maximum_suppression(found, self.spec.nms_iou))
    }
}

/// Prior boxes `(cx, cy, w, h)`, normalised, in the network's output order.
pub fn priors(spec: &DetectorSpec, w: u32, h: u32) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for (step, sizes) in spec.steps.iter().zip(&spec.min_sizes) {
        let (ny, nx) = (h.div_ceil(*step), w.div_ceil(*step));
        for y in 0..ny {
            for x in 0..nx {
                for size in sizes {
                    out.push([
                        (x as f32 + 0.5) * *step as f32 / w as f32,
                        (y as f32 + 0.5) * *step as f32 / h as f32,
                        size / w as f32,
                        size / h as f32,
                    ]);
                }
            }
        }
    }
    out
}

/// Keep the best-scoring box of every overlapping group.
pub fn non_maximum_suppression(mut found: Vec<Detection>, iou_limit: f32) -> Vec<Detection> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in found {
        if kept.iter().all(|k| iou(&k.bbox, &d.bbox) <= iou_limit) {
            kept.push(d);
        }
    }
    kept
}

/// Overlap of two `[x1, y1, x2, y2]` boxes: intersection over union, 0 for disjoint boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    inter / (area(a) + area(b) - inter).max(1e-9)
}

/// Shape of the input tensor for `n` images of `h` x `w`.
pub fn tensor_shape(input: &InputSpec, n: usize, h: u32, w: u32) -> Vec<i64> {
    match input.layout {
        Layout::Nchw => vec![n as i64, 3, h as i64, w as i64],
        Layout::Nhwc => vec![n as i64, h as i64, w as i64, 3],
    }
}

/// Pixels of an 8-bit 3-channel image in `source` order as the model's input values, appended to
/// a batch buffer.
pub fn push_pixels(
    image: &Mat,
    source: Colour,
    input: &InputSpec,
    out: &mut Vec<f32>,
) -> opencv::Result<()> {
    let (w, h) = (image.cols() as usize, image.rows() as usize);
    let continuous;
    let image = if image.is_continuous() {
        image
    } else {
        continuous = image.try_clone()?;
        &continuous
    };
    let data = image.data_bytes()?;
    // Index of the source channel that feeds each input channel.
    let order: [usize; 3] = if source == input.colour {
        [0, 1, 2]
    } else {
        [2, 1, 0]
    };
    let start = out.len();
    out.resize(start + w * h * 3, 0.0);
    let dst = &mut out[start..];
    for (i, px) in data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let v = (px[order[c]] as f32 - input.mean[c]) / input.std[c];
            match input.layout {
                Layout::Nchw => dst[c * w * h + i] = v,
                Layout::Nhwc => dst[i * 3 + c] = v,
            }
        }
    }
    Ok(())
}

fn to_tensor(bgr: &Mat, input: &InputSpec) -> opencv::Result<Vec<f32>> {
    let mut out = Vec::with_capacity(bgr.total() * 3);
    push_pixels(bgr, Colour::Bgr, input, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(score: f32, x: f32) -> Detection {
        Detection {
            score,
            bbox: [x, 0.0, x + 10.0, 10.0],
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_all_separate_ones() {
        let kept =
            non_maximum_suppression(vec![det(0.9, 0.0), det(0.95, 1.0), det(0.8, 50.0)], 0.4);
        assert_eq!(
            kept.iter().map(|d| d.score).collect::<Vec<_>>(),
            vec![0.95, 0.8]
        );
    }

    #[test]
    fn prior_count_matches_the_retinaface_grid() {
        let spec = DetectorSpec {
            steps: vec![8, 16, 32],
            min_sizes: vec![vec![16.0, 32.0], vec![64.0, 128.0], vec![256.0, 512.0]],
            variance: [0.1, 0.2],
            score_column: 1,
            score_threshold: 0.9,
            nms_iou: 0.4,
        };
        // 640x480: (80*60 + 40*30 + 20*15) * 2
        assert_eq!(priors(&spec, 640, 480).len(), 12600);
    }
}
