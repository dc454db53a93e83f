//! Synthetic camera material for tests: frames that are distinct (seeded noise) and carry their own
//! index (a brightness block), written as image folders or MJPEG recordings.

use opencv::core::{Mat, Rect, Scalar, Size, Vector, CV_8UC3};
use opencv::prelude::*;
use opencv::{core, imgcodecs, imgproc, videoio};
use std::path::Path;

pub const W: i32 = 640;
pub const H: i32 = 480;

/// A frame whose top-left block encodes `index` as brightness and whose body is seeded noise, so
/// every frame's JPEG is distinct and its position can be read back.
pub fn test_frame(index: u32, seed: u64) -> Mat {
    let mut m = Mat::new_rows_cols_with_default(H, W, CV_8UC3, Scalar::all(0.0)).unwrap();
    let mut rng = core::RNG::new(seed.wrapping_mul(1000) + index as u64).unwrap();
    rng.fill(
        &mut m,
        core::RNG_UNIFORM,
        &Scalar::all(0.0),
        &Scalar::all(255.0),
        false,
    )
    .unwrap();
    let level = 20.0 + 20.0 * index as f64;
    imgproc::rectangle(
        &mut m,
        Rect::new(0, 0, 96, 96),
        Scalar::all(level),
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )
    .unwrap();
    m
}

/// Read back the index drawn by [`test_frame`] from a decoded JPEG.
pub fn frame_index(jpeg: &[u8]) -> u32 {
    let img = imgcodecs::imdecode(&Vector::from_slice(jpeg), imgcodecs::IMREAD_GRAYSCALE).unwrap();
    let block = Mat::roi(&img, Rect::new(16, 16, 64, 64)).unwrap();
    let mean = core::mean(&block, &core::no_array()).unwrap()[0];
    ((mean - 20.0) / 20.0).round() as u32
}

/// Write an MJPEG recording of `frames` test frames at `fps`.
pub fn write_video(path: &Path, frames: u32, fps: f64, seed: u64) {
    let fourcc = videoio::VideoWriter::fourcc('M', 'J', 'P', 'G').unwrap();
    let mut writer = videoio::VideoWriter::new(path, fourcc, fps, Size::new(W, H), true).unwrap();
    assert!(
        writer.is_opened().unwrap(),
        "VideoWriter could not open {path:?}"
    );
    for i in 0..frames {
        writer.write(&test_frame(i, seed)).unwrap();
    }
    writer.release().unwrap();
}

/// Write `frames` test frames as JPEG files into `dir`.
pub fn write_images(dir: &Path, frames: u32, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..frames {
        let path = dir.join(format!("img-{i:04}.jpg"));
        imgcodecs::imwrite(&path, &test_frame(i, seed), &Vector::new()).unwrap();
    }
}
