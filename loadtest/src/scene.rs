//! The synthetic scene the simulated cameras show: real face photos composited on backgrounds.
//!
//! Two kinds of frame, all encoded to JPEG once, before any camera starts (so the load generator
//! spends its time publishing, not drawing):
//!
//! - **crowd** frames: one of the registry's group photos (strangers, 3-6 faces each) scaled to a
//!   varied size on a textured background. Nobody in them is on the watch list.
//! - **pass** frames: a watch-listed person walking past: a portrait photo at one of three sizes,
//!   moving across a crowd frame a few pixels each frame, so the matcher's tracker sees one track.
//!
//! A camera holds one crowd frame for seconds at a time (people standing about), the same one
//! before, during and after a pass: strangers who jumped about from frame to frame would be joined
//! by position to the passing person's track (the tracker keeps no appearance, by design) and
//! carry it on to the person's next pass, which would then raise no alert.
//!
//! The people on the load test's watch list are enrolled from one photo and shown from another
//! where the samples have one (Obama: enrolled `obama.jpg`, shown `obama2.jpg` and `obama3.jpg`),
//! so matching is as hard as in the pipeline test, not a copy matched against itself.

use lfr_vision::image::encode_jpeg;
use opencv::core::{Mat, Rect, Scalar, Size, CV_8UC3};
use opencv::prelude::*;
use opencv::{core, imgcodecs, imgproc, videoio};
use std::path::{Path, PathBuf};

/// A watch-listed person of the load test.
pub struct Identity {
    /// The watch-list reference (never a name).
    pub reference: &'static str,
    /// Sample photo enrolled on the list.
    pub enrolled: &'static str,
    /// Sample photos shown to the cameras.
    pub shown: &'static [&'static str],
}

pub const IDENTITIES: [Identity; 2] = [
    Identity {
        reference: "LOAD-0001",
        enrolled: "obama.jpg",
        shown: &["obama2.jpg", "obama3.jpg"],
    },
    Identity {
        reference: "LOAD-0002",
        enrolled: "biden.jpg",
        shown: &["biden.jpg"],
    },
];

/// Heights of a passing portrait, as fractions of the frame height: near, middle, far.
const PASS_SIZES: [f64; 3] = [0.9, 0.75, 0.6];
/// Heights of a crowd photo, as fractions of the frame height.
const CROWD_SIZES: [f64; 4] = [1.0, 0.85, 0.7, 0.55];
/// How far a passing person moves between frames, pixels.
const STEP_PX: i32 = 12;
const JPEG_QUALITY: i32 = 85;
/// Most frames a replayed video may have (held in memory as JPEG: about 50 KiB each at 640x480).
pub const MAX_REPLAY_FRAMES: usize = 36_000;

/// Where the sample photos are (`scripts/setup.sh` puts them under `~/.cache/lfr/samples`).
#[derive(Debug, Clone)]
pub struct Samples {
    /// Portraits: `obama*.jpg`, `biden.jpg`.
    pub faces: PathBuf,
    /// Group photos of strangers: `sample1.jpg`..`sample6.jpg`.
    pub group: PathBuf,
}

impl Samples {
    pub fn under(root: &Path) -> Samples {
        Samples {
            faces: root.join("faces"),
            group: root.join("group"),
        }
    }

    pub fn default_root() -> PathBuf {
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        PathBuf::from(home).join(".cache/lfr/samples")
    }

    fn group_photos(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut photos: Vec<PathBuf> = std::fs::read_dir(&self.group)
            .map_err(|e| anyhow::anyhow!("no group photos in {}: {e}", self.group.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
            .collect();
        photos.sort();
        anyhow::ensure!(
            !photos.is_empty(),
            "no group photos in {}",
            self.group.display()
        );
        Ok(photos)
    }
}

/// Every frame a camera can show, as JPEG.
pub struct Scene {
    pub width: u32,
    pub height: u32,
    /// Frames of strangers only.
    pub crowd: Vec<Vec<u8>>,
    /// `passes[identity][variant][frame]`: a person of [`IDENTITIES`] walking past.
    pub passes: Vec<Vec<Vec<Vec<u8>>>>,
    /// `pass_background[identity][variant]`: the crowd frame the pass is drawn over, which the
    /// camera holds before and after it.
    pub pass_background: Vec<Vec<usize>>,
    /// Frames in one pass.
    pub pass_frames: usize,
    /// A replay (`--video`): `crowd` is a video's frames, played in order, and nobody passes.
    pub replay: bool,
}

impl Scene {
    /// Draw the scene at `width` x `height` with passes `pass_frames` frames long.
    pub fn build(
        samples: &Samples,
        width: u32,
        height: u32,
        pass_frames: usize,
    ) -> anyhow::Result<Scene> {
        let (w, h) = (width as i32, height as i32);
        let mut crowd_mats = Vec::new();
        for (i, photo) in samples.group_photos()?.iter().enumerate() {
            let img = read(photo)?;
            for (j, size) in CROWD_SIZES.iter().enumerate() {
                let seed = (i * CROWD_SIZES.len() + j) as u64;
                let mut canvas = background(w, h, seed)?;
                let scaled = fit(&img, (h as f64 * size) as i32, w)?;
                // Alternate left, centre and right so the faces are not always in one place.
                let room = w - scaled.cols();
                let x = [0, room / 2, room][(i + j) % 3];
                paste(&mut canvas, &scaled, x, h - scaled.rows())?;
                crowd_mats.push(canvas);
            }
        }
        let mut passes = Vec::new();
        let mut pass_background = Vec::new();
        for (i, identity) in IDENTITIES.iter().enumerate() {
            let mut variants = Vec::new();
            let mut backgrounds = Vec::new();
            for (k, shown) in identity.shown.iter().enumerate() {
                let portrait = read(&samples.faces.join(shown))?;
                for (s, size) in PASS_SIZES.iter().enumerate() {
                    let scaled = fit(&portrait, (h as f64 * size) as i32, w / 2)?;
                    let background = (i * 7 + k * 3 + s) % crowd_mats.len();
                    backgrounds.push(background);
                    let behind = &crowd_mats[background];
                    let mut frames = Vec::with_capacity(pass_frames);
                    for f in 0..pass_frames {
                        let mut canvas = behind.try_clone()?;
                        let x = (w - scaled.cols() - 8 - STEP_PX * f as i32).max(0);
                        paste(&mut canvas, &scaled, x, (h - scaled.rows()) / 2)?;
                        frames.push(encode_jpeg(&canvas, JPEG_QUALITY)?);
                    }
                    variants.push(frames);
                }
            }
            passes.push(variants);
            pass_background.push(backgrounds);
        }
        let crowd = crowd_mats
            .iter()
            .map(|m| encode_jpeg(m, JPEG_QUALITY))
            .collect::<Result<_, _>>()?;
        Ok(Scene {
            width,
            height,
            crowd,
            passes,
            pass_background,
            pass_frames,
            replay: false,
        })
    }

    /// A replay of a video file: its frames, scaled to fit `width` x `height` where larger, each
    /// encoded once as the cameras will send it. Nobody on the load test's list walks past, so
    /// every alert of a replay counts as unexpected.
    pub fn from_video(path: &Path, width: u32, height: u32) -> anyhow::Result<Scene> {
        let mut capture = videoio::VideoCapture::from_file_def(path)?;
        anyhow::ensure!(capture.is_opened()?, "cannot open video {}", path.display());
        let mut crowd = Vec::new();
        let (mut w, mut h) = (0, 0);
        let mut frame = Mat::default();
        while capture.read(&mut frame)? && !frame.empty() {
            let fitted = if frame.cols() as u32 > width || frame.rows() as u32 > height {
                fit(&frame, height as i32, width as i32)?
            } else {
                frame.try_clone()?
            };
            (w, h) = (fitted.cols() as u32, fitted.rows() as u32);
            crowd.push(encode_jpeg(&fitted, JPEG_QUALITY)?);
            anyhow::ensure!(
                crowd.len() <= MAX_REPLAY_FRAMES,
                "{} has over {MAX_REPLAY_FRAMES} frames: cut it shorter",
                path.display()
            );
        }
        anyhow::ensure!(!crowd.is_empty(), "{} holds no frame", path.display());
        Ok(Scene {
            width: w,
            height: h,
            crowd,
            passes: vec![Vec::new(); IDENTITIES.len()],
            pass_background: vec![Vec::new(); IDENTITIES.len()],
            pass_frames: 2,
            replay: true,
        })
    }

    /// Variants (photo x size) of identity `i`'s pass.
    pub fn variants(&self, identity: usize) -> usize {
        self.passes[identity].len()
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let bytes: usize = self.crowd.iter().map(Vec::len).sum();
        if self.replay {
            return format!(
                "replay of a {}-frame video, {}x{} JPEG (mean {} KiB), played in order and looped \
                 by every camera, each from its own starting frame",
                self.crowd.len(),
                self.width,
                self.height,
                bytes / self.crowd.len().max(1) / 1024,
            );
        }
        format!(
            "{}x{} JPEG (mean {} KiB), {} crowd frames from the group photos (strangers only), {} watch-listed people \
             walking past in {}-frame passes ({} variants: photo x size); watch list enrolled from other photos",
            self.width,
            self.height,
            bytes / self.crowd.len().max(1) / 1024,
            self.crowd.len(),
            self.passes.len(),
            self.pass_frames,
            self.passes.iter().map(Vec::len).sum::<usize>(),
        )
    }
}

fn read(path: &Path) -> anyhow::Result<Mat> {
    let img = imgcodecs::imread(path, imgcodecs::IMREAD_COLOR)?;
    anyhow::ensure!(!img.empty(), "cannot read {}", path.display());
    Ok(img)
}

/// Grey gradient plus seeded noise: a plausible, face-free backdrop that differs per frame.
fn background(w: i32, h: i32, seed: u64) -> anyhow::Result<Mat> {
    let mut canvas = Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(0.0))?;
    for y in 0..h {
        let level = 70.0 + 90.0 * y as f64 / h as f64;
        imgproc::line(
            &mut canvas,
            core::Point::new(0, y),
            core::Point::new(w - 1, y),
            Scalar::new(level, level * 0.95, level * 0.9, 0.0),
            1,
            imgproc::LINE_8,
            0,
        )?;
    }
    let mut noise = Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(0.0))?;
    core::RNG::new(seed + 1)?.fill(
        &mut noise,
        core::RNG_UNIFORM,
        &Scalar::all(0.0),
        &Scalar::all(24.0),
        false,
    )?;
    let mut out = Mat::default();
    core::add(&canvas, &noise, &mut out, &core::no_array(), -1)?;
    Ok(out)
}

/// `img` scaled to `height` (or narrower, to fit `max_width`), aspect kept.
fn fit(img: &Mat, height: i32, max_width: i32) -> anyhow::Result<Mat> {
    let scale = (height as f64 / img.rows() as f64).min(max_width as f64 / img.cols() as f64);
    let size = Size::new(
        ((img.cols() as f64 * scale) as i32).max(1),
        ((img.rows() as f64 * scale) as i32).max(1),
    );
    let mut out = Mat::default();
    imgproc::resize(img, &mut out, size, 0.0, 0.0, imgproc::INTER_AREA)?;
    Ok(out)
}

fn paste(canvas: &mut Mat, img: &Mat, x: i32, y: i32) -> anyhow::Result<()> {
    let mut roi = canvas.roi_mut(Rect::new(x, y, img.cols(), img.rows()))?;
    img.copy_to(&mut roi)?;
    Ok(())
}
