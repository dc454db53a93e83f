//! Enrolment: custody images plus a manifest become watch-list entries, each image checked first.
//!
//! A reference image must be a JPEG or PNG of at most [`MAX_REFERENCE_PIXELS`] pixels, which is
//! checked from its header before anything decodes it (an upload of a few bytes can claim
//! 30000x30000 pixels, 2.7 GB decoded), and show exactly one face, large, sharp and frontal: a
//! poor reference either misses its subject or, worse, "matches everyone a little" and floods
//! operators with false alerts. After the single-image checks come the **consistency** checks across the list: an image
//! far from its own subject's other images, or close to another subject's, is refused too.
//! Nothing is dropped silently: every refused entry is returned with its reason.
//!
//! The manifest (`manifest.toml` beside the images):
//!
//! ```toml
//! [[entry]]
//! reference = "CUST-2026-001234"   # the force's reference, never a name
//! category = "wanted"              # wanted | missing-vulnerable | risk | blue
//! image = "001234-a.jpg"
//! note = "Warrant 17/2026"
//! ```

use crate::list::{sha256_hex, Entry, WatchList};
use lfr_schemas::WatchlistCategory;
use lfr_vision::align::align;
use lfr_vision::detector::Detector;
use lfr_vision::embedder::{cosine, Embedder};
use lfr_vision::image::{self, ImageError};
use lfr_vision::quality::{eye_distance, sharpness, yaw_degrees};
use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default, rename = "entry")]
    entries: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    reference: String,
    category: Category,
    image: PathBuf,
    #[serde(default)]
    note: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Category {
    Wanted,
    MissingVulnerable,
    Risk,
    Blue,
}

impl From<Category> for WatchlistCategory {
    fn from(c: Category) -> Self {
        match c {
            Category::Wanted => WatchlistCategory::Wanted,
            Category::MissingVulnerable => WatchlistCategory::MissingVulnerable,
            Category::Risk => WatchlistCategory::Risk,
            Category::Blue => WatchlistCategory::Blue,
        }
    }
}

/// The largest reference image enrolment decodes: 50 megapixels (150 MB decoded), beyond any
/// custody camera. Together with the archive's limits it bounds the memory an enrolment needs
/// (`docs/deployments.md`, *Limits*).
pub const MAX_REFERENCE_PIXELS: u64 = 50_000_000;

/// What a reference image must meet. Custody images are taken under control: stricter than live.
#[derive(Debug, Clone)]
pub struct Checks {
    /// Larger images (width x height, read from the header) are refused without being decoded.
    pub max_pixels: u64,
    pub min_eye_distance_px: f32,
    pub min_sharpness: f32,
    pub max_yaw_deg: f32,
    /// An image whose mean similarity to its subject's other images is below this is inconsistent.
    pub same_subject_min: f32,
    /// An image at or above this similarity to another subject's image is too close to it.
    pub other_subject_max: f32,
}

impl Checks {
    /// Defaults for an embedder whose same-person threshold is `threshold` (cosine).
    pub fn for_threshold(threshold: f32) -> Checks {
        Checks {
            max_pixels: MAX_REFERENCE_PIXELS,
            min_eye_distance_px: 30.0,
            min_sharpness: 15.0,
            max_yaw_deg: 25.0,
            same_subject_min: threshold,
            other_subject_max: threshold,
        }
    }
}

/// An entry that was not enrolled, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub reference: String,
    pub image: PathBuf,
    pub reason: String,
}

/// The manifest is missing, unreadable or malformed: the operator's input is wrong, not the system.
/// Enrolment returns it inside its `anyhow::Error`; callers that answer differently for bad input
/// (the HTTP API) find it with `downcast_ref`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidManifest(pub String);

pub struct Enrolment {
    pub list: WatchList,
    pub refused: Vec<Refused>,
}

/// The detector, embedder and checks enrolment runs with.
pub struct Enroller {
    pub detector: Detector,
    pub embedder: Embedder,
    pub checks: Checks,
}

impl Enroller {
    /// The configured models; custody images are searched at up to 1280x1280, and the checks'
    /// similarity limits follow the embedder's published threshold.
    pub fn load(models: &lfr_vision::config::ModelsConfig) -> anyhow::Result<Enroller> {
        let store = models.store()?;
        let detector = Detector::load(
            &store,
            store.model(&models.detector, lfr_vision::manifest::Role::Detector)?,
            [1280, 1280],
            models.threads,
        )?;
        let embedder = models.embedder(&store)?;
        let checks = Checks::for_threshold(embedder.spec.threshold);
        Ok(Enroller {
            detector,
            embedder,
            checks,
        })
    }

    pub fn enrol(&mut self, dir: &Path, deployment: &str) -> anyhow::Result<Enrolment> {
        enrol(
            dir,
            deployment,
            &mut self.detector,
            &mut self.embedder,
            &self.checks,
        )
    }
}

/// Candidate entry: checked image, template computed.
struct Candidate {
    entry: Entry,
    image: PathBuf,
}

/// Enrol the images listed in `dir/manifest.toml` for `deployment`.
pub fn enrol(
    dir: &Path,
    deployment: &str,
    detector: &mut Detector,
    embedder: &mut Embedder,
    checks: &Checks,
) -> anyhow::Result<Enrolment> {
    let manifest_path = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| InvalidManifest(format!("cannot read {}: {e}", manifest_path.display())))?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| {
        InvalidManifest(format!(
            "invalid watch-list manifest {}: {e}",
            manifest_path.display()
        ))
    })?;
    if manifest.entries.is_empty() {
        return Err(InvalidManifest(
            "the manifest lists no entries: a watch list cannot be empty".into(),
        )
        .into());
    }

    let mut refused = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for m in manifest.entries {
        let refuse = |reason: String| Refused {
            reference: m.reference.clone(),
            image: m.image.clone(),
            reason,
        };
        if m.reference.trim().is_empty() {
            refused.push(refuse("no subject reference".into()));
            continue;
        }
        if !inside(&m.image) {
            refused.push(refuse(
                "the image must be a relative path inside the watch-list folder".into(),
            ));
            continue;
        }
        let bytes = match std::fs::read(dir.join(&m.image)) {
            Ok(b) => b,
            Err(e) => {
                refused.push(refuse(format!("unreadable: {e}")));
                continue;
            }
        };
        let image_sha256 = sha256_hex(&bytes);
        if let Some(twin) = candidates
            .iter()
            .find(|c| c.entry.image_sha256 == image_sha256)
        {
            refused.push(refuse(format!(
                "duplicate of the image already enrolled for {}",
                twin.entry.reference
            )));
            continue;
        }
        match template(&bytes, detector, embedder, checks) {
            Ok(template) => candidates.push(Candidate {
                entry: Entry {
                    reference: m.reference.clone(),
                    category: m.category.into(),
                    note: m.note.clone(),
                    image_sha256,
                    template,
                },
                image: m.image.clone(),
            }),
            Err(reason) => refused.push(refuse(reason)),
        }
    }

    let flags = consistency(&candidates, checks);
    let mut accepted = Vec::new();
    for (candidate, flag) in candidates.into_iter().zip(flags) {
        match flag {
            None => accepted.push(candidate.entry),
            Some(reason) => refused.push(Refused {
                reference: candidate.entry.reference,
                image: candidate.image,
                reason,
            }),
        }
    }
    Ok(Enrolment {
        list: WatchList::new(deployment, &embedder.name, accepted),
        refused,
    })
}

/// Whether a manifest's image path stays inside the folder: relative, and never through `..`.
fn inside(image: &Path) -> bool {
    !image.as_os_str().is_empty()
        && image
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The template of an image that passes every single-image check, or why it does not.
fn template(
    bytes: &[u8],
    detector: &mut Detector,
    embedder: &mut Embedder,
    checks: &Checks,
) -> Result<Vec<f32>, String> {
    // The header first: nothing reaches a decoder that is not a JPEG or PNG of a sane size.
    match image::check_size(bytes, checks.max_pixels) {
        Ok(_) => {}
        Err(ImageError::TooLarge {
            width,
            height,
            max_pixels,
        }) => {
            return Err(format!(
                "image too large: {width}x{height} pixels, at most {max_pixels} allowed \
                 (refused without decoding it)"
            ))
        }
        Err(e) => return Err(format!("not a decodable image: {e}")),
    }
    let image = imgcodecs::imdecode(&Vector::from_slice(bytes), imgcodecs::IMREAD_COLOR)
        .ok()
        .filter(|m| !m.empty())
        .ok_or("not a decodable image")?;
    let faces = detector
        .detect(&image)
        .map_err(|e| format!("detector failed: {e}"))?;
    let face = match faces.as_slice() {
        [] => return Err("no face found".into()),
        [one] => one,
        many => {
            return Err(format!(
                "{} faces: a reference image must show one person",
                many.len()
            ))
        }
    };
    let eyes = eye_distance(&face.landmarks);
    if eyes < checks.min_eye_distance_px {
        return Err(format!(
            "face too small: eyes {eyes:.0} px apart, at least {:.0} needed",
            checks.min_eye_distance_px
        ));
    }
    let yaw = yaw_degrees(&face.landmarks);
    if yaw.abs() > checks.max_yaw_deg {
        return Err(format!("not frontal: head turned about {yaw:.0} degrees"));
    }
    let [w, h] = embedder.spec.template_size;
    let chip_bgr = align(&image, &face.landmarks, &embedder.spec.template, [w, h])
        .map_err(|e| e.to_string())?;
    let mut chip = Mat::default();
    imgproc::cvt_color_def(&chip_bgr, &mut chip, imgproc::COLOR_BGR2RGB)
        .map_err(|e| e.to_string())?;
    let sharp = sharpness(&chip).map_err(|e| e.to_string())?;
    if sharp < checks.min_sharpness {
        return Err(format!(
            "blurred (sharpness {sharp:.0}, at least {:.0} needed)",
            checks.min_sharpness
        ));
    }
    let mut templates = embedder
        .embed(&[chip])
        .map_err(|e| format!("embedder failed: {e}"))?;
    templates
        .pop()
        .ok_or_else(|| "embedder returned nothing".into())
}

/// For each candidate, why it is inconsistent with the rest of the list, if it is.
fn consistency(candidates: &[Candidate], checks: &Checks) -> Vec<Option<String>> {
    candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut own = Vec::new();
            let mut closest_other: Option<(f32, &str)> = None;
            for (j, other) in candidates.iter().enumerate() {
                if i == j {
                    continue;
                }
                let s = cosine(&c.entry.template, &other.entry.template);
                if other.entry.reference == c.entry.reference {
                    own.push(s);
                } else if closest_other.is_none_or(|(best, _)| s > best) {
                    closest_other = Some((s, &other.entry.reference));
                }
            }
            if let Some((s, other)) = closest_other.filter(|(s, _)| *s >= checks.other_subject_max) {
                return Some(format!(
                    "too close to an image of {other} (similarity {s:.2}): a reference that matches \
                     another subject causes false alerts"
                ));
            }
            if !own.is_empty() {
                let mean = own.iter().sum::<f32>() / own.len() as f32;
                if mean < checks.same_subject_min {
                    return Some(format!(
                        "inconsistent with the subject's other images (mean similarity {mean:.2}): \
                         check it shows the same person"
                    ));
                }
            }
            None
        })
        .collect()
}
