//! Redaction: every face in an image blurred beyond recognition, except one person's.
//!
//! An image disclosed to a data subject (their right of access), or shown where only one person's
//! face is needed, must not show anyone else's. [`redact`] blurs the given face boxes
//! irreversibly: each box, grown by [`GROW`] on every side to take in hair, ears and the outline
//! of the head, is **pixelated** to a grid of [`CELLS`] x [`CELLS`] blocks (which throws away
//! everything finer than the blocks: what is gone cannot be recovered from what remains) and then
//! smoothed with a strong Gaussian blur (which hides the block edges and the grid; for a box of
//! more than 64 pixels a side it is done at 64 and scaled up, which looks the same and keeps the
//! cost of a large face that of a small one).
//!
//! [`keep_subject`] decides what to blur: it finds every face it can (a detector that is more
//! sensitive than the live one, see [`sensitive_finder`], run at the image's own scale and at
//! twice it), keeps at most **one** face, the one that passes the quality gate and matches the
//! subject's template best at or above the threshold, and blurs all the others, whether or not
//! they would pass the quality gate. It then looks again at the redacted image and blurs whatever
//! face is still found there, so that a face only visible once its neighbour is blurred goes too.
//! Whatever is not confidently the subject is blurred; a face the detector cannot see at all
//! (turned away, mostly hidden or out of the picture) is not, which is why a person reviews what
//! is disclosed.
//!
//! [`blur_bystanders`] does the same at source, for the upper-torso context crop that detect
//! publishes with every face (and that is kept with each alert and shown to operators and
//! officers): every other face of the frame that the detector scores at [`BYSTANDER_SCORE`] or
//! more and that is even partly inside the crop is blurred with [`redact`]; the crop, as it will
//! be published (encoded as JPEG and decoded again), is then searched by the same detector at the
//! same score and whatever face is found there apart from the crop's own is blurred too (up to
//! [`CONTEXT_RECHECKS`] times). The crop's own face box is spared throughout (a neighbour's grown box
//! does not reach into it) unless a face is still found after the last search. What leaves detect
//! holds one face the detector can find, at a score of 0.05, the one the crop was made for; the
//! live threshold (0.9) is far above that.

use crate::align::align;
use crate::config::ModelsConfig;
use crate::detector::{iou, non_maximum_suppression, Detection, Detector};
use crate::embedder::{cosine, Embedder};
use crate::faces::FaceFinder;
use crate::image::encode_jpeg;
use crate::manifest::Role;
use crate::quality::{eye_distance, sharpness, yaw_degrees};
use crate::runtime::ModelStore;
use opencv::core::{Mat, Rect, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

/// How much a face box is grown on every side before it is blurred, as a fraction of its width
/// (left and right) and height (top and bottom).
pub const GROW: f32 = 0.3;
/// Blocks across each side of a grown face box when it is pixelated.
pub const CELLS: i32 = 8;
/// Most pixels a block is smoothed at (larger boxes are smoothed small and scaled up: the result
/// is as smooth, and the cost no longer grows with the box).
const WORK_PX: i32 = 8;
/// Detector score from which a detection is blurred. The live detector keeps faces from its
/// manifest's threshold (0.9 for RetinaFace); redaction blurs doubtful ones too.
pub const SENSITIVE_SCORE: f32 = 0.5;
/// Largest `[width, height]` the redaction detector sees (images are scaled down to fit).
pub const SENSITIVE_INPUT: [u32; 2] = [1280, 1280];
/// How many times [`keep_subject`] looks again at the redacted image for faces left.
const RECHECKS: usize = 3;
/// Detector score from which another face in a context crop is blurred, and at which the crop is
/// searched again before it is published: far below the live threshold (0.9), so that what is
/// kept holds no face the detector can find at all but the one the crop was made for.
pub const BYSTANDER_SCORE: f32 = 0.05;
/// How many times [`blur_bystanders`] searches a context crop again for faces left.
pub const CONTEXT_RECHECKS: usize = 3;
/// Overlap (intersection over union) above which a detection is the kept subject's face.
const SAME_FACE_IOU: f32 = 0.4;

/// `image` with every box of `boxes` (`[x1, y1, x2, y2]`, in the image's pixels) grown by
/// [`GROW`], pixelated to [`CELLS`] blocks a side and blurred. Boxes are clipped to the image;
/// boxes outside it change nothing. The input is not modified.
pub fn redact(image: &Mat, boxes: &[[f32; 4]]) -> opencv::Result<Mat> {
    let mut out = image.try_clone()?;
    for bbox in boxes {
        let Some(rect) = grown(bbox, out.cols(), out.rows()) else {
            continue;
        };
        let region = Mat::roi(&out, rect)?.try_clone()?;
        let cells = Size::new(CELLS.min(rect.width), CELLS.min(rect.height));
        let mut blocks = Mat::default();
        imgproc::resize(&region, &mut blocks, cells, 0.0, 0.0, imgproc::INTER_AREA)?;
        // The blocks hold all that is left; they are smoothed at no more than WORK_PX pixels a
        // block (a large box costs what a small one does) and scaled up to the box.
        let work = Size::new(
            rect.width.min(cells.width * WORK_PX),
            rect.height.min(cells.height * WORK_PX),
        );
        let mut pixelated = Mat::default();
        imgproc::resize(
            &blocks,
            &mut pixelated,
            work,
            0.0,
            0.0,
            imgproc::INTER_NEAREST,
        )?;
        // A kernel half the box wide: each pixel becomes a mix of about four blocks.
        let kernel = |side: i32| (side / 2) | 1;
        let mut blurred = Mat::default();
        imgproc::gaussian_blur(
            &pixelated,
            &mut blurred,
            Size::new(kernel(work.width), kernel(work.height)),
            0.0,
            0.0,
            opencv::core::BORDER_REPLICATE,
        )?;
        let mut target = Mat::roi_mut(&mut out, rect)?;
        if work == rect.size() {
            blurred.copy_to(&mut target)?;
        } else {
            let mut scaled = Mat::default();
            imgproc::resize(
                &blurred,
                &mut scaled,
                rect.size(),
                0.0,
                0.0,
                imgproc::INTER_LINEAR,
            )?;
            scaled.copy_to(&mut target)?;
        }
    }
    Ok(out)
}

/// The box grown by [`GROW`] on every side, clipped to a `width` x `height` image; `None` when
/// nothing of it is inside.
pub fn grown(bbox: &[f32; 4], width: i32, height: i32) -> Option<Rect> {
    let (w, h) = (bbox[2] - bbox[0], bbox[3] - bbox[1]);
    if !(w.is_finite() && h.is_finite()) || w <= 0.0 || h <= 0.0 {
        return None;
    }
    let x1 = (bbox[0] - GROW * w).floor().max(0.0) as i32;
    let y1 = (bbox[1] - GROW * h).floor().max(0.0) as i32;
    let x2 = ((bbox[2] + GROW * w).ceil() as i32).min(width);
    let y2 = ((bbox[3] + GROW * h).ceil() as i32).min(height);
    (x2 > x1 && y2 > y1).then(|| Rect::new(x1, y1, x2 - x1, y2 - y1))
}

/// The face kept unblurred by [`keep_subject`].
#[derive(Debug, Clone)]
pub struct Kept {
    pub detection: Detection,
    /// Cosine similarity of its template to the subject's.
    pub similarity: f32,
}

/// What [`keep_subject`] made of an image.
pub struct Redaction {
    /// The image with every face but the subject's blurred.
    pub image: Mat,
    /// The subject's face, if one was found confidently.
    pub subject: Option<Kept>,
    /// The boxes that were blurred (before growing).
    pub blurred: Vec<[f32; 4]>,
}

/// A face finder for redaction: the configured detector with its score threshold lowered to
/// [`SENSITIVE_SCORE`], seeing up to [`SENSITIVE_INPUT`], with the embedder's alignment template
/// and the configured quality gate.
pub fn sensitive_finder(models: &ModelsConfig, store: &ModelStore) -> anyhow::Result<FaceFinder> {
    let mut artefact = store.model(&models.detector, Role::Detector)?.clone();
    if let Some(spec) = artefact.detector.as_mut() {
        spec.score_threshold = spec.score_threshold.min(SENSITIVE_SCORE);
    }
    let embedder = store.model(&models.embedder, Role::Embedder)?;
    let spec = embedder
        .embedder
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("embedder {} has no [embedder] spec", embedder.name))?;
    Ok(FaceFinder {
        detector: Detector::load(store, &artefact, SENSITIVE_INPUT, models.threads)?,
        template: spec.template,
        chip_size: spec.template_size,
        gate: models.quality.clone(),
    })
}

/// Every face `detector` finds in `bgr` at the image's own scale and at twice it (small faces),
/// best first, overlapping detections merged.
pub fn detect_thoroughly(detector: &mut Detector, bgr: &Mat) -> anyhow::Result<Vec<Detection>> {
    let mut all = detector.detect(bgr)?;
    let mut doubled = Mat::default();
    imgproc::resize(
        bgr,
        &mut doubled,
        Size::new(bgr.cols() * 2, bgr.rows() * 2),
        0.0,
        0.0,
        imgproc::INTER_LINEAR,
    )?;
    for d in detector.detect(&doubled)? {
        all.push(Detection {
            score: d.score,
            bbox: d.bbox.map(|v| v / 2.0),
            landmarks: d.landmarks.map(|[x, y]| [x / 2.0, y / 2.0]),
        });
    }
    Ok(non_maximum_suppression(all, SAME_FACE_IOU))
}

/// The aligned RGB chip of a detection that passes `finder`'s quality gate, or `None`.
fn gated_chip(finder: &FaceFinder, bgr: &Mat, d: &Detection) -> anyhow::Result<Option<Mat>> {
    let gate = &finder.gate;
    if eye_distance(&d.landmarks) < gate.min_eye_distance_px
        || yaw_degrees(&d.landmarks).abs() > gate.max_yaw_deg
    {
        return Ok(None);
    }
    let chip_bgr = align(bgr, &d.landmarks, &finder.template, finder.chip_size)?;
    let mut chip = Mat::default();
    imgproc::cvt_color_def(&chip_bgr, &mut chip, imgproc::COLOR_BGR2RGB)?;
    Ok((sharpness(&chip)? >= gate.min_sharpness).then_some(chip))
}

/// Blur every face in `bgr` except the subject's: the one face that passes the quality gate and
/// whose template is the most similar to `subject`, at or above `threshold`. Every other face the
/// finder's detector sees is blurred, then the redacted image is searched again (up to three
/// times) and whatever face is still found apart from the subject's is blurred too.
pub fn keep_subject(
    finder: &mut FaceFinder,
    embedder: &mut Embedder,
    bgr: &Mat,
    subject: &[f32],
    threshold: f32,
) -> anyhow::Result<Redaction> {
    let detections = detect_thoroughly(&mut finder.detector, bgr)?;
    let mut chips = Vec::new();
    let mut chip_of = Vec::new();
    for (i, d) in detections.iter().enumerate() {
        if let Some(chip) = gated_chip(finder, bgr, d)? {
            chips.push(chip);
            chip_of.push(i);
        }
    }
    let templates = embedder.embed(&chips)?;
    let best = chip_of
        .iter()
        .zip(&templates)
        .map(|(&i, t)| (i, cosine(t, subject)))
        .filter(|(_, s)| *s >= threshold)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let subject = best.map(|(i, similarity)| Kept {
        detection: detections[i].clone(),
        similarity,
    });
    let is_subject = |d: &Detection| {
        subject
            .as_ref()
            .is_some_and(|k| iou(&k.detection.bbox, &d.bbox) > SAME_FACE_IOU)
    };
    let mut blurred: Vec<[f32; 4]> = detections
        .iter()
        .filter(|d| !is_subject(d))
        .map(|d| d.bbox)
        .collect();
    let mut image = redact(bgr, &blurred)?;
    for _ in 0..RECHECKS {
        let left: Vec<[f32; 4]> = detect_thoroughly(&mut finder.detector, &image)?
            .into_iter()
            .filter(|d| !is_subject(d))
            .map(|d| d.bbox)
            .collect();
        if left.is_empty() {
            break;
        }
        image = redact(&image, &left)?;
        blurred.extend(left);
    }
    Ok(Redaction {
        image,
        subject,
        blurred,
    })
}

/// A context crop with every face but its own blurred, as published (empty by default: no crop).
#[derive(Default)]
pub struct ContextCrop {
    pub jpeg: Vec<u8>,
    pub bystanders: Bystanders,
}

/// What [`blur_bystanders`] blurred in one context crop. Counts only: no face data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bystanders {
    /// Faces of the frame's own detection (at [`BYSTANDER_SCORE`]) blurred in the crop.
    pub from_frame: usize,
    /// Faces found by searching the crop itself after that, and blurred.
    pub on_recheck: usize,
    /// False when a face other than the crop's own was still found at the last search (the first
    /// and [`CONTEXT_RECHECKS`] more): it was blurred, but that blur was not searched again.
    pub verified: bool,
}

impl Bystanders {
    /// Faces blurred in the crop, however they were found.
    pub fn blurred(&self) -> usize {
        self.from_frame + self.on_recheck
    }
}

/// The context crop `rect` of `frame`, for the face `subject` (`[x1, y1, x2, y2]` in the frame),
/// encoded as JPEG at `quality`, with every other face blurred:
///
/// 1. every detection of `detections` (the frame's, in frame coordinates; pass them all, from
///    [`BYSTANDER_SCORE`], quality gate or not) whose box is even partly inside `rect` and that is
///    not the subject's is blurred with [`redact`];
/// 2. the result, encoded and decoded as it will be published, is searched by `detector` at
///    [`BYSTANDER_SCORE`]; every face found there that is not the subject's is blurred too, and
///    the search is repeated, up to [`CONTEXT_RECHECKS`] times.
///
/// The subject's face box stays sharp: a blurred neighbour's grown box does not reach into it
/// (where two faces overlap, the part inside the subject's box is the subject's). A detection is
/// the subject's when it overlaps the subject's box by more than 0.4 (intersection over union, as
/// in [`keep_subject`]) or lies mostly inside it (a second box on part of the subject's face).
/// Only when faces are still found at the last search is the subject's box no longer spared: what
/// is found then is blurred whole, and the crop is marked unverified.
pub fn blur_bystanders(
    detector: &mut Detector,
    frame: &Mat,
    rect: Rect,
    subject: &[f32; 4],
    detections: &[Detection],
    quality: i32,
) -> anyhow::Result<ContextCrop> {
    let rect = rect & Rect::new(0, 0, frame.cols(), frame.rows());
    anyhow::ensure!(!rect.empty(), "context crop {rect:?} is outside the frame");
    let crop = Mat::roi(frame, rect)?.try_clone()?;
    let (ox, oy) = (rect.x as f32, rect.y as f32);
    let to_crop = |b: &[f32; 4]| [b[0] - ox, b[1] - oy, b[2] - ox, b[3] - oy];
    let own = to_crop(subject);
    let (w, h) = (rect.width as f32, rect.height as f32);
    let inside = |b: &[f32; 4]| b[0] < w && b[1] < h && b[2] > 0.0 && b[3] > 0.0;
    let keep = box_rect(&own, rect.width, rect.height);
    let from_frame: Vec<[f32; 4]> = detections
        .iter()
        .map(|d| to_crop(&d.bbox))
        .filter(|b| inside(b) && !is_subject(b, &own))
        .collect();
    let mut bystanders = Bystanders {
        from_frame: from_frame.len(),
        ..Default::default()
    };
    let mut image = redact_sparing(&crop, &from_frame, keep)?;
    for round in 0..=CONTEXT_RECHECKS {
        let jpeg = encode_jpeg(&image, quality)?;
        // Too small for the detector to take (it refuses under 8 pixels a side): nothing to find.
        if image.cols() < 8 || image.rows() < 8 {
            bystanders.verified = true;
            return Ok(ContextCrop { jpeg, bystanders });
        }
        let published = imgcodecs::imdecode(&Vector::from_slice(&jpeg), imgcodecs::IMREAD_COLOR)?;
        let left: Vec<[f32; 4]> = detector
            .detect_from(&published, BYSTANDER_SCORE)?
            .into_iter()
            .map(|d| d.bbox)
            .filter(|b| !is_subject(b, &own))
            .collect();
        if left.is_empty() {
            bystanders.verified = true;
            return Ok(ContextCrop { jpeg, bystanders });
        }
        bystanders.on_recheck += left.len();
        // Blurred on the crop before encoding, so the image is compressed once. The last time,
        // whatever is still found is blurred whole, the subject's face box included.
        let last = round == CONTEXT_RECHECKS;
        image = redact_sparing(&image, &left, keep.filter(|_| !last))?;
    }
    Ok(ContextCrop {
        jpeg: encode_jpeg(&image, quality)?,
        bystanders,
    })
}

/// [`redact`], then the pixels of `spare` (if any) put back as they were.
fn redact_sparing(image: &Mat, boxes: &[[f32; 4]], spare: Option<Rect>) -> opencv::Result<Mat> {
    let mut out = redact(image, boxes)?;
    if let Some(rect) = spare.filter(|_| !boxes.is_empty()) {
        let original = Mat::roi(image, rect)?;
        let mut target = Mat::roi_mut(&mut out, rect)?;
        original.copy_to(&mut target)?;
    }
    Ok(out)
}

/// A box (not grown) as whole pixels, clipped to a `width` x `height` image.
fn box_rect(bbox: &[f32; 4], width: i32, height: i32) -> Option<Rect> {
    if !bbox.iter().all(|v| v.is_finite()) {
        return None;
    }
    let x1 = bbox[0].round().max(0.0) as i32;
    let y1 = bbox[1].round().max(0.0) as i32;
    let x2 = (bbox[2].round() as i32).min(width);
    let y2 = (bbox[3].round() as i32).min(height);
    (x2 > x1 && y2 > y1).then(|| Rect::new(x1, y1, x2 - x1, y2 - y1))
}

/// Whether a detection `d` is the subject's face `own`: they overlap by more than
/// [`SAME_FACE_IOU`], or `d` lies mostly (more than half its area) inside `own`.
fn is_subject(d: &[f32; 4], own: &[f32; 4]) -> bool {
    let iw = (d[2].min(own[2]) - d[0].max(own[0])).max(0.0);
    let ih = (d[3].min(own[3]) - d[1].max(own[1])).max(0.0);
    let area = (d[2] - d[0]).max(0.0) * (d[3] - d[1]).max(0.0);
    iou(d, own) > SAME_FACE_IOU || iw * ih > 0.5 * area
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, Vec3b, CV_8UC3};

    /// A 200x160 image of the finest, strongest detail: every pixel unlike its neighbours.
    fn detailed() -> Mat {
        pattern(0)
    }

    /// [`detailed`], its stripes shifted by `phase` pixels.
    fn pattern(phase: i32) -> Mat {
        let mut m = Mat::new_rows_cols_with_default(160, 200, CV_8UC3, Scalar::all(0.0)).unwrap();
        for y in 0..160 {
            for x in 0..200 {
                let v = if (x + phase + y / 3) % 2 == 0 {
                    220
                } else {
                    30
                };
                *m.at_2d_mut::<Vec3b>(y, x).unwrap() = Vec3b::from([v, 255 - v, v / 2]);
            }
        }
        m
    }

    fn px(m: &Mat, x: i32, y: i32) -> [u8; 3] {
        m.at_2d::<Vec3b>(y, x).unwrap().0
    }

    /// Mean absolute difference between horizontally adjacent pixels inside `r`: how much detail
    /// is left.
    fn detail(m: &Mat, r: Rect) -> f64 {
        let mut sum = 0.0;
        let mut n = 0.0;
        for y in r.y..r.y + r.height {
            for x in r.x..r.x + r.width - 1 {
                let (a, b) = (px(m, x, y), px(m, x + 1, y));
                sum += (0..3)
                    .map(|c| (a[c] as f64 - b[c] as f64).abs())
                    .sum::<f64>();
                n += 3.0;
            }
        }
        sum / n
    }

    #[test]
    fn boxes_are_blurred_beyond_their_detail_and_nothing_else_changes() {
        let image = detailed();
        let face = [60.0, 40.0, 120.0, 110.0];
        let out = redact(&image, &[face]).unwrap();
        // The input is untouched.
        assert_eq!(px(&image, 90, 75), px(&detailed(), 90, 75));
        let region = grown(&face, 200, 160).unwrap();
        // Grown by 30% of the box on every side: 18 px left and right, 21 px top and bottom.
        assert_eq!(region, Rect::new(42, 19, 96, 112));
        let before = detail(&image, region);
        let after = detail(&out, region);
        assert!(before > 40.0, "the test image has detail: {before}");
        assert!(
            after < before / 20.0,
            "detail left in the box: {after} of {before}"
        );
        // Outside the grown box, every pixel is as it was.
        for (x, y) in [(0, 0), (41, 60), (138, 60), (90, 18), (90, 131), (199, 159)] {
            assert_eq!(px(&out, x, y), px(&image, x, y), "pixel {x},{y} changed");
        }
        // The same input always gives the same output.
        let again = redact(&image, &[face]).unwrap();
        assert_eq!(again.data_bytes().unwrap(), out.data_bytes().unwrap());
        // Two boxes unlike in every pixel (the pattern's negative) come out alike: what was finer
        // than the blocks is gone, not hidden.
        let negative = redact(&pattern(1), &[face]).unwrap();
        for y in region.y..region.y + region.height {
            for x in region.x..region.x + region.width {
                let (a, b) = (px(&out, x, y), px(&negative, x, y));
                assert!(
                    (0..3).all(|c| a[c].abs_diff(b[c]) <= 8),
                    "pixel {x},{y}: {a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn the_subject_s_box_is_spared_exactly_and_a_box_on_it_is_the_subject_s() {
        let image = detailed();
        // A neighbour whose grown box reaches into the subject's box.
        let neighbour = [20.0, 40.0, 80.0, 110.0];
        let subject = Rect::new(90, 40, 60, 70);
        let out = redact_sparing(&image, &[neighbour], Some(subject)).unwrap();
        let blurred = Rect::new(20, 40, 60, 70);
        assert!(detail(&out, blurred) < detail(&image, blurred) / 20.0);
        for y in subject.y..subject.y + subject.height {
            for x in subject.x..subject.x + subject.width {
                assert_eq!(px(&out, x, y), px(&image, x, y), "pixel {x},{y} changed");
            }
        }
        // The grown margin outside the subject's box is blurred: 80 + 0.3 * 60 = 98, the subject's
        // box starts at 90.
        assert!(detail(&out, Rect::new(81, 50, 9, 50)) < detail(&image, blurred) / 10.0);
        // Nothing to blur: nothing changes.
        let none = redact_sparing(&image, &[], Some(subject)).unwrap();
        assert_eq!(none.data_bytes().unwrap(), image.data_bytes().unwrap());

        let own = [100.0, 100.0, 200.0, 220.0];
        assert!(is_subject(&own, &own));
        assert!(
            is_subject(&[110.0, 95.0, 205.0, 230.0], &own),
            "the same face"
        );
        assert!(
            is_subject(&[120.0, 150.0, 180.0, 215.0], &own),
            "a box on its lower half"
        );
        assert!(
            !is_subject(&[190.0, 100.0, 290.0, 220.0], &own),
            "a neighbour"
        );
        assert!(
            !is_subject(&[40.0, 60.0, 160.0, 260.0], &own),
            "a larger box half on it"
        );
        assert_eq!(
            box_rect(&[-5.2, 3.6, 50.4, 500.0], 200, 160),
            Some(Rect::new(0, 4, 50, 156))
        );
        assert_eq!(box_rect(&[f32::NAN, 0.0, 1.0, 1.0], 200, 160), None);
    }

    #[test]
    fn a_large_box_is_blurred_as_strongly_as_a_small_one() {
        // Smoothed at 8 pixels a block and scaled up: the detail left does not grow with the box.
        let mut big = Mat::default();
        imgproc::resize(
            &pattern(0),
            &mut big,
            Size::new(800, 640),
            0.0,
            0.0,
            imgproc::INTER_NEAREST,
        )
        .unwrap();
        let face = [240.0, 160.0, 560.0, 480.0];
        let out = redact(&big, &[face]).unwrap();
        let region = grown(&face, 800, 640).unwrap();
        assert!(region.width > 64 * 4);
        let (before, after) = (detail(&big, region), detail(&out, region));
        assert!(after < before / 20.0, "detail left: {after} of {before}");
        // Each pixel is a smooth mix of blocks: no step between neighbours beyond a few levels.
        let mut steepest = 0u8;
        for y in region.y..region.y + region.height {
            for x in region.x..region.x + region.width - 1 {
                let (a, b) = (px(&out, x, y), px(&out, x + 1, y));
                steepest = steepest.max((0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap());
            }
        }
        assert!(steepest <= 6, "a step of {steepest} between neighbours");
        assert_eq!(px(&out, 10, 10), px(&big, 10, 10));
    }

    #[test]
    fn boxes_at_or_beyond_the_edges_are_clipped_and_no_box_changes_nothing() {
        let image = detailed();
        let out = redact(&image, &[]).unwrap();
        assert_eq!(out.data_bytes().unwrap(), image.data_bytes().unwrap());
        // Half outside, wholly outside, degenerate and not a number: no panic, no error.
        let boxes = [
            [-30.0, -20.0, 30.0, 40.0],
            [500.0, 500.0, 600.0, 600.0],
            [10.0, 10.0, 10.0, 50.0],
            [f32::NAN, 0.0, 10.0, 10.0],
        ];
        let out = redact(&image, &boxes).unwrap();
        assert_eq!(grown(&boxes[1], 200, 160), None);
        assert_eq!(grown(&boxes[2], 200, 160), None);
        assert_eq!(grown(&boxes[3], 200, 160), None);
        let corner = grown(&boxes[0], 200, 160).unwrap();
        assert_eq!(corner, Rect::new(0, 0, 48, 58));
        assert!(detail(&out, corner) < detail(&image, corner) / 20.0);
        assert_eq!(px(&out, 150, 120), px(&image, 150, 120));
        // A box smaller than the grid is still blurred (fewer blocks), not an error.
        let tiny = redact(&image, &[[100.0, 100.0, 103.0, 102.0]]).unwrap();
        assert_eq!(tiny.size().unwrap(), image.size().unwrap());
    }
}
