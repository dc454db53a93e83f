//! Ingest against real RTSP cameras: GStreamer's RTSP server streaming H.264 640x480 at 10 fps
//! ([`lfr_testkit::rtsp`]), opened by OpenCV through FFmpeg as a deployed camera is, and a real
//! nats-server. Frames arrive; a camera killed mid-stream is reported down and reopened with
//! back-off once it is back; a stream that freezes with its connection open is caught by the read
//! timeout, one that never sends a frame by the open timeout, and neither holds the service up.
//!
//! Skipped (with the reason printed) where GStreamer's RTSP server is not installed, unless `CI`
//! is set: then a missing package fails the test.

#[allow(unused_imports)] // the shared support module serves several test binaries
mod support;

use lfr_common::Shutdown;
use lfr_schemas::{Frame, Timestamp};
use lfr_testkit::rtsp::{self, Mode, RtspServer};
use lfr_testkit::{eventually, metric, scrape, NatsServer};
use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;

fn failures(text: &str, camera: &str, reason: &str) -> f64 {
    metric(
        text,
        "lfr_ingest_camera_failures_total",
        &[("camera", camera), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

fn up(text: &str, camera: &str) -> Option<f64> {
    metric(text, "lfr_ingest_camera_up", &[("camera", camera)])
}

/// The frame's JPEG decoded: (width, height) of what a detector would see.
fn decoded_size(frame: &Frame) -> (i32, i32) {
    let jpeg = Vector::<u8>::from_slice(&frame.jpeg);
    let image: Mat = imgcodecs::imdecode(&jpeg, imgcodecs::IMREAD_COLOR).expect("a JPEG");
    (image.cols(), image.rows())
}

async fn healthz(addr: SocketAddr) -> u16 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    match client.get(format!("http://{addr}/healthz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn frames_from_a_real_rtsp_camera_arrive_decoded_at_its_size() {
    if !rtsp::usable() {
        return;
    }
    let nats = NatsServer::start().await;
    let camera_server = RtspServer::start().await;
    let shutdown = Shutdown::new();
    let cfg = config(&nats, vec![camera("rtsp-1", &camera_server.url(), 5.0)]);
    let _covered = nats.cover(&["rtsp-1"]).await;
    let started = Instant::now();
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let js = jetstream(&nats).await;
    let frames = take_frames(&frames_consumer(&js).await, 5, Duration::from_secs(30)).await;
    eprintln!(
        "first 5 RTSP frames after {:?} (open included)",
        started.elapsed()
    );

    assert_eq!(frames.len(), 5, "frames from the RTSP camera");
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.source.camera, "rtsp-1");
        assert_eq!(f.source.seq, i as u64);
        assert_eq!((f.width, f.height), (640, 480));
        assert_eq!(decoded_size(f), (640, 480), "frame {i} decodes at its size");
    }
    // A live picture (videotestsrc's moving ball), not one frame repeated.
    assert_ne!(frames[0].jpeg, frames[4].jpeg);
    // Sampled at 5 fps from the camera's 10 on the wall clock: 5 frames span about 0.8 s.
    let span = frames[0]
        .source
        .captured_at
        .until(frames[4].source.captured_at);
    assert!(
        span >= Duration::from_millis(600),
        "5 frames sampled at 5 fps within {span:?}"
    );
    let text = scrape(running.metrics_addr).await;
    assert_eq!(up(&text, "rtsp-1"), Some(1.0));
    shutdown.trigger();
    running.done.await.unwrap();
}

#[tokio::test]
async fn a_camera_killed_mid_stream_is_reported_down_and_reopened_with_back_off() {
    if !rtsp::usable() {
        return;
    }
    let nats = NatsServer::start().await;
    let mut camera_server = RtspServer::start().await;
    let shutdown = Shutdown::new();
    let mut cfg = config(&nats, vec![camera("rtsp-2", &camera_server.url(), 5.0)]);
    cfg.ingest.initial_backoff = Duration::from_millis(200);
    cfg.ingest.max_backoff = Duration::from_millis(1600);
    let _covered = nats.cover(&["rtsp-2"]).await;
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let js = jetstream(&nats).await;
    let consumer = frames_consumer(&js).await;
    let before = take_frames(&consumer, 3, Duration::from_secs(30)).await;
    assert_eq!(before.len(), 3, "frames before the camera dies");

    camera_server.stop();
    let stopped = Instant::now();
    // A closed connection ends the read at once: down well within the read timeout.
    let down = eventually(Duration::from_secs(5), || async {
        let text = scrape(running.metrics_addr).await;
        (up(&text, "rtsp-2") == Some(0.0)).then_some(text)
    })
    .await
    .expect("the camera reported down");
    let detected = stopped.elapsed();
    assert!(
        failures(&down, "rtsp-2", "read_failed") + failures(&down, "rtsp-2", "read_timeout") >= 1.0,
        "the failure is counted"
    );

    // While it is down every reopen is refused and counted: note when each attempt happens.
    let mut attempts = Vec::new();
    let mut seen = failures(&down, "rtsp-2", "open_failed");
    while stopped.elapsed() < Duration::from_millis(5500) {
        let n = failures(&scrape(running.metrics_addr).await, "rtsp-2", "open_failed");
        if n > seen {
            attempts.push(stopped.elapsed());
            seen = n;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("down after {detected:?}; reopen attempts at {attempts:?}, gaps {gaps:?}");
    // 0.2 s doubling to 1.6 s: attempts about 0.2, 0.6, 1.4, 3.0, 4.6 s after the failure,
    // where retrying every 0.2 s would make 27.
    assert!(
        (4..=6).contains(&attempts.len()),
        "{} reopen attempts in 5.5 s",
        attempts.len()
    );
    assert!(
        gaps[1] >= gaps[0] * 3 / 2 && gaps[2] >= gaps[1] * 3 / 2,
        "the waits between attempts grow: {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_millis(2100)),
        "no wait beyond the 1.6 s ceiling: {gaps:?}"
    );

    camera_server.start_again().await;
    let back = Instant::now();
    let after = take_frames(&consumer, 3, Duration::from_secs(20)).await;
    eprintln!(
        "frames again {:?} after the camera came back",
        back.elapsed()
    );
    assert_eq!(after.len(), 3, "frames again once the camera is back");
    assert!(after[0].source.seq > before[2].source.seq);
    assert_eq!(decoded_size(&after[0]), (640, 480));
    let text = scrape(running.metrics_addr).await;
    assert_eq!(up(&text, "rtsp-2"), Some(1.0));
    shutdown.trigger();
    running.done.await.unwrap();
}

#[tokio::test]
async fn a_silent_stream_is_caught_by_its_timeouts_and_never_holds_ingest_up() {
    if !rtsp::usable() {
        return;
    }
    let nats = NatsServer::start().await;
    // "frozen" streams for 6 s, then sends nothing more on its open connection; "mute" answers
    // every RTSP request and never sends a frame.
    let frozen = RtspServer::start_with(Mode::Stall {
        // OpenCV's open reads the first seconds of media to learn the stream (about 3 s here):
        // frames must be left over for the reads after it.
        after: Duration::from_secs(6),
    })
    .await;
    let mute = RtspServer::start_with(Mode::Stall {
        after: Duration::ZERO,
    })
    .await;
    let read_timeout = Duration::from_millis(1500);
    let open_timeout = Duration::from_secs(3);
    let shutdown = Shutdown::new();
    let mut cfg = config(
        &nats,
        vec![
            camera("frozen", &frozen.url(), 10.0),
            camera("mute", &mute.url(), 10.0),
        ],
    );
    cfg.ingest.read_timeout = read_timeout;
    cfg.ingest.open_timeout = open_timeout;
    cfg.ingest.initial_backoff = Duration::from_millis(200);
    cfg.ingest.max_backoff = Duration::from_millis(200);
    let _covered = nats.cover(&["frozen", "mute"]).await;
    let started = Instant::now();
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let addr = running.metrics_addr;
    let js = jetstream(&nats).await;
    let consumer = frames_consumer(&js).await;

    // The frozen camera streams, then stalls: frames stop, and the read timeout notices.
    let mut frames = take_frames(&consumer, 5, Duration::from_secs(30)).await;
    assert_eq!(frames.len(), 5, "frames before the stall");
    let stalled = eventually(Duration::from_secs(15), || async {
        let text = scrape(addr).await;
        (failures(&text, "frozen", "read_timeout") >= 1.0).then(Timestamp::now)
    })
    .await;
    let Some(stalled) = stalled else {
        let text = scrape(addr).await;
        let frozen: Vec<&str> = text.lines().filter(|l| l.contains("\"frozen\"")).collect();
        panic!(
            "the stall is not counted as a read timeout:\n{}",
            frozen.join("\n")
        );
    };
    // Every frame it sent before stalling, so the last one is known.
    frames.extend(take_frames(&consumer, 100, Duration::from_millis(1500)).await);
    assert!(frames.iter().all(|f| f.source.camera == "frozen"));
    let last = frames.iter().map(|f| f.source.captured_at).max().unwrap();
    let caught = last.until(stalled);
    eprintln!("stall caught {caught:?} after the last frame (read timeout {read_timeout:?})");
    assert!(
        caught >= read_timeout - Duration::from_millis(200),
        "a stall caught before the read timeout ({caught:?}) would drop healthy cameras"
    );
    assert!(
        caught <= read_timeout + Duration::from_millis(1500),
        "stall caught {caught:?} after the last frame, read timeout {read_timeout:?}"
    );

    // The mute camera: every open waits the whole open timeout, fails, and is counted.
    let text = eventually(Duration::from_secs(15), || async {
        let text = scrape(addr).await;
        (failures(&text, "mute", "open_failed") >= 2.0).then_some(text)
    })
    .await;
    let Some(text) = text else {
        let text = scrape(addr).await;
        let mute: Vec<&str> = text.lines().filter(|l| l.contains("\"mute\"")).collect();
        panic!("the mute camera's opens do not fail:\n{}", mute.join("\n"));
    };
    let opens = failures(&text, "mute", "open_failed");
    let elapsed = started.elapsed();
    eprintln!("mute camera: {opens} failed opens in {elapsed:?} (open timeout {open_timeout:?})");
    // Each attempt is one open timeout plus a 0.2 s back-off: no more attempts than that allows.
    let most = elapsed.as_secs_f64() / open_timeout.as_secs_f64();
    assert!(
        opens <= most.ceil(),
        "{opens} opens in {elapsed:?}: faster than the open timeout"
    );
    assert_eq!(up(&text, "mute"), Some(0.0));
    assert_eq!(
        failures(&text, "mute", "read_timeout"),
        0.0,
        "never opened, so never read"
    );

    // Both reported down at some point, and ingest answers throughout; then it reopens the
    // frozen camera, which streams again before stalling again.
    assert_eq!(healthz(addr).await, 200, "ingest answers /healthz");
    let again = take_frames(&consumer, 3, Duration::from_secs(15)).await;
    assert_eq!(again.len(), 3, "the frozen camera reopened after its stall");
    assert!(again[0].source.seq > frames.iter().map(|f| f.source.seq).max().unwrap());
    assert_eq!(healthz(addr).await, 200);

    // Shutdown while the mute camera's thread is blocked in an open: no longer than the open
    // timeout (the blocking call returns), plus the rest of the stop.
    let stopping = Instant::now();
    shutdown.trigger();
    running.done.await.unwrap();
    let stop = stopping.elapsed();
    eprintln!("ingest stopped in {stop:?}");
    assert!(
        stop <= open_timeout + Duration::from_secs(1),
        "ingest took {stop:?} to stop"
    );
}
