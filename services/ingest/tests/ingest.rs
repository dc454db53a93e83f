//! Ingest against a real nats-server: order, expiry, nothing on disk, bad sources, NATS restarts.

mod support;

use lfr_common::Shutdown;
use lfr_schemas::streams;
use lfr_testkit::{eventually, metric, scrape, NatsServer};
use std::time::Duration;
use support::*;

#[tokio::test]
async fn frames_from_a_video_file_arrive_in_order_with_their_metadata() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("gate.avi");
    write_video(&video, 10, 10.0, 1);

    let shutdown = Shutdown::new();
    let cfg = config(
        &nats.url(),
        vec![camera("gate-1", &video.to_string_lossy(), 10.0)],
    );
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let js = jetstream(&nats.url()).await;
    let frames = take_frames(&frames_consumer(&js).await, 10, Duration::from_secs(20)).await;

    assert_eq!(frames.len(), 10);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.source.camera, "gate-1");
        assert_eq!(f.source.seq, i as u64);
        assert_eq!((f.width, f.height), (W as u32, H as u32));
        assert_eq!(frame_index(&f.jpeg), i as u32, "frame {i} out of order");
        if i > 0 {
            assert!(f.source.captured_at >= frames[i - 1].source.captured_at);
            assert_eq!(f.source.epoch, frames[0].source.epoch);
        }
    }
    let text = scrape(running.metrics_addr).await;
    assert!(metric(&text, "lfr_ingest_frames_total", &[("camera", "gate-1")]).unwrap() >= 10.0);
    shutdown.trigger();
    running.done.await.unwrap();
}

#[tokio::test]
async fn a_recording_is_sampled_down_to_the_configured_rate() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("25fps.avi");
    write_video(&video, 10, 25.0, 2);

    let shutdown = Shutdown::new();
    let cfg = config(
        &nats.url(),
        vec![camera("c25", &video.to_string_lossy(), 5.0)],
    );
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let js = jetstream(&nats.url()).await;
    let frames = take_frames(&frames_consumer(&js).await, 2, Duration::from_secs(20)).await;
    let indices: Vec<u32> = frames.iter().map(|f| frame_index(&f.jpeg)).collect();
    assert_eq!(indices, vec![0, 5]);
    shutdown.trigger();
    running.done.await.unwrap();
}
