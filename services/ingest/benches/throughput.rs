//! Ingest throughput: the whole service (decode a 640x480 recording, sample, JPEG-encode, publish,
//! await acknowledgements) running flat out against a real local nats-server, with a consumer
//! draining FRAMES. Reports frames/s and frames per CPU-second of this process (frames/s per core).
//!
//! Run: `cargo bench -p lfr-ingest --bench throughput` (LFR_BENCH_FRAMES sets the recording length).

use futures::StreamExt;
use lfr_common::Shutdown;
use lfr_ingest::config::{CameraConfig, Config};
use lfr_schemas::streams;
use lfr_testkit::Identity;
use std::time::{Duration, Instant};

fn cpu_seconds() -> f64 {
    // utime + stime of this process from /proc (Linux), in clock ticks of 1/100 s.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks what benchmarks exist
    }
    let frames: u32 = std::env::var("LFR_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let tmp = tempfile::tempdir().unwrap();
    let video = tmp.path().join("bench.avi");
    lfr_testkit::media::write_video(&video, frames, 25.0, 9);
    let nats = lfr_testkit::NatsServer::start().await;

    let mut config = Config::default();
    config.common.nats = nats.nats_config(Identity::Ingest);
    config.ingest.http_addr = "127.0.0.1:0".parse().unwrap();
    config.ingest.queue_capacity = 64;
    config.ingest.cameras = vec![CameraConfig {
        id: "bench".into(),
        source: video.to_string_lossy().into(),
        fps: 25.0,
        resize: None,
        realtime: false,
        repeat: false,
    }];
    config.ingest.initial_backoff = Duration::from_secs(600);

    // Frames are read as detect reads them: through its consumer, as its identity.
    let js = nats.jetstream(Identity::Detect).await;
    let shutdown = Shutdown::new();
    let _covered = nats.cover(&["bench"]).await;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let running = lfr_ingest::start(config, shutdown.clone()).await.unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream_no_info(streams::FRAMES)
        .await
        .unwrap()
        .get_consumer(streams::consumers::DETECT)
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut received = 0u32;
    while received < frames {
        match tokio::time::timeout(Duration::from_secs(10), messages.next()).await {
            Ok(Some(Ok(m))) => {
                m.ack().await.unwrap();
                received += 1;
            }
            _ => break,
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    shutdown.trigger();
    let _ = running.done.await;
    println!(
        "ingest throughput, 640x480 recording -> JPEG q85 -> FRAMES: {received}/{frames} frames in {wall:.2} s \
         = {:.1} frames/s; {cpu:.2} CPU-s (ingest + test consumer) = {:.1} frames per CPU-second",
        received as f64 / wall,
        received as f64 / cpu
    );
}
