//! Shared set-up for ingest's integration tests: synthetic recordings and image folders, an ingest
//! configuration pointed at a test server, and a consumer standing in for the detector.

#![allow(dead_code)]

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use lfr_ingest::config::{CameraConfig, Config};
use lfr_schemas::{streams, Frame, Message};
use opencv::core::{Mat, Rect, Scalar, Size, Vector, CV_8UC3};
use opencv::prelude::*;
use opencv::{core, imgcodecs, imgproc, videoio};
use std::path::Path;
use std::time::Duration;

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

pub fn camera(id: &str, source: &str, fps: f64) -> CameraConfig {
    CameraConfig {
        id: id.into(),
        source: source.into(),
        fps,
        resize: None,
        realtime: false,
        repeat: false,
    }
}

pub fn config(nats_url: &str, cameras: Vec<CameraConfig>) -> Config {
    let mut c = Config::default();
    c.common.nats.url = nats_url.into();
    c.ingest.http_addr = "127.0.0.1:0".parse().unwrap();
    c.ingest.cameras = cameras;
    c.ingest.initial_backoff = Duration::from_millis(200);
    c.ingest.max_backoff = Duration::from_secs(1);
    c
}

pub async fn jetstream(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.unwrap())
}

/// A consumer on FRAMES standing in for the detector.
pub async fn frames_consumer(
    js: &jetstream::Context,
) -> jetstream::consumer::Consumer<pull::Config> {
    js.get_stream(streams::FRAMES)
        .await
        .unwrap()
        .get_or_create_consumer(
            "test-detector",
            pull::Config {
                durable_name: Some("test-detector".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

/// Take up to `n` frames within `timeout`, acknowledging each.
pub async fn take_frames(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    n: usize,
    timeout: Duration,
) -> Vec<Frame> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < n && tokio::time::Instant::now() < deadline {
        let batch = consumer
            .fetch()
            .max_messages(n - out.len())
            .expires(Duration::from_millis(500))
            .messages()
            .await;
        let Ok(mut batch) = batch else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while let Some(Ok(m)) = batch.next().await {
            m.ack().await.unwrap();
            out.push(Frame::decode(&m.payload).expect("a valid frame"));
        }
    }
    out
}

/// Messages currently held by a stream.
pub async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    js.get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}
