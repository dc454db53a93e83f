//! Ingest against a real nats-server: order, expiry, nothing on disk, bad sources, NATS restarts.

mod support;

use lfr_common::Shutdown;
use lfr_schemas::streams;
use lfr_testkit::{eventually, files_containing, free_port, metric, scrape, NatsServer};
use std::time::Duration;
use std::time::Instant;
use support::*;

#[tokio::test]
async fn frames_from_a_video_file_arrive_in_order_with_their_metadata() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("gate.avi");
    write_video(&video, 10, 10.0, 1);

    let shutdown = Shutdown::new();
    let cfg = config(
        &nats,
        vec![camera("gate-1", &video.to_string_lossy(), 10.0)],
    );
    // Gated capture: a live deployment covers the camera(s).
    let _covered = nats.cover(&["gate-1"]).await;
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let js = jetstream(&nats).await;
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
    let cfg = config(&nats, vec![camera("c25", &video.to_string_lossy(), 5.0)]);
    // Gated capture: a live deployment covers the camera(s).
    let _covered = nats.cover(&["c25"]).await;
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let js = jetstream(&nats).await;
    let frames = take_frames(&frames_consumer(&js).await, 2, Duration::from_secs(20)).await;
    let indices: Vec<u32> = frames.iter().map(|f| frame_index(&f.jpeg)).collect();
    assert_eq!(indices, vec![0, 5]);
    shutdown.trigger();
    running.done.await.unwrap();
}

#[tokio::test]
async fn unconsumed_frames_expire_and_acknowledged_frames_go_at_once() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_images(&dir.path().join("imgs"), 3, 3);
    let mut cfg = config(
        &nats,
        vec![camera(
            "door",
            &dir.path().join("imgs").to_string_lossy(),
            10.0,
        )],
    );
    cfg.common.bus.transient_ttl = Duration::from_secs(2);
    nats.declare_with(&cfg.common.bus).await;
    // No replay of the folder within the test: only the three frames are ever published.
    cfg.ingest.initial_backoff = Duration::from_secs(60);
    let shutdown = Shutdown::new();
    // Gated capture: a live deployment covers the camera(s).
    let _covered = nats.cover(&["door"]).await;
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let js = jetstream(&nats).await;

    let published = eventually(Duration::from_secs(10), || async {
        (stream_messages(&js, streams::FRAMES).await == 3).then(Instant::now)
    })
    .await
    .expect("three frames on FRAMES");
    let taken = take_frames(&frames_consumer(&js).await, 1, Duration::from_secs(1)).await;
    assert_eq!(taken.len(), 1);
    let removed = eventually(Duration::from_millis(500), || async {
        (stream_messages(&js, streams::FRAMES).await == 2).then_some(())
    })
    .await;
    assert!(
        removed.is_some(),
        "an acknowledged frame must leave the work queue at once"
    );
    let gone = eventually(Duration::from_secs(8), || async {
        (stream_messages(&js, streams::FRAMES).await == 0).then(Instant::now)
    })
    .await
    .expect("unconsumed frames must expire");
    assert!(
        gone - published >= Duration::from_millis(1000),
        "frames vanished before their TTL: {:?}",
        gone - published
    );
    shutdown.trigger();
    running.done.await.unwrap();
}

#[tokio::test]
async fn no_frame_byte_touches_disk() {
    // The store unencrypted: what is shown is that frames never reach it (memory streams), apart
    // from its encryption.
    let mut nats = NatsServer::start_with(lfr_testkit::Options {
        encrypt_store: false,
        ..Default::default()
    })
    .await;
    let root = tempfile::tempdir().unwrap();
    let images = root.path().join("camera-source");
    write_images(&images, 6, 4);
    // JPEG encoding is deterministic: the bytes ingest will publish are the bytes computed here.
    let markers: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let img = opencv::imgcodecs::imread(
                images.join(format!("img-{i:04}.jpg")),
                opencv::imgcodecs::IMREAD_COLOR,
            )
            .unwrap();
            let jpeg = lfr_ingest::encode::encode(&img, None, 85).unwrap().jpeg;
            jpeg[jpeg.len() / 2..jpeg.len() / 2 + 48].to_vec()
        })
        .collect();

    let mut cfg = config(&nats, vec![camera("hall", &images.to_string_lossy(), 10.0)]);
    cfg.common.bus.transient_ttl = Duration::from_secs(1);
    // The shedding budget may not exceed the TTL (config validation refuses it).
    cfg.common.bus.latency_budget = Duration::from_secs(1);
    nats.declare_with(&cfg.common.bus).await;
    let shutdown = Shutdown::new();
    // Gated capture: a live deployment covers the camera(s).
    let _covered = nats.cover(&["hall"]).await;
    let ingest = lfr_ingest::start(cfg.clone(), shutdown.clone())
        .await
        .unwrap();
    let js = jetstream(&nats).await;
    // The markers really are in what travels on the bus (else this test could not fail).
    let frames = take_frames(&frames_consumer(&js).await, 2, Duration::from_secs(10)).await;
    assert!(frames[0]
        .jpeg
        .windows(48)
        .any(|w| w == markers[0].as_slice()));

    // The rest expire unconsumed; a second pass of the camera is taken by the detect stage.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut detect_cfg = lfr_detect::Config {
        common: cfg.common.clone(),
        ..Default::default()
    };
    detect_cfg.common.nats = nats.nats_config(lfr_testkit::Identity::Detect);
    detect_cfg.detect.http_addr = "127.0.0.1:0".parse().unwrap();
    let detect = lfr_detect::start(detect_cfg, shutdown.clone())
        .await
        .unwrap();
    let consumed = eventually(Duration::from_secs(15), || async {
        let text = scrape(detect.metrics_addr).await;
        metric(&text, "lfr_stage_messages_total", &[("outcome", "ok")]).filter(|n| *n >= 3.0)
    })
    .await;
    assert!(consumed.is_some(), "detect consumed no frames");

    shutdown.trigger();
    ingest.done.await.unwrap();
    detect.done.await.unwrap();
    nats.server.stop().await;

    let store_files = lfr_testkit::files_under(nats.store_dir());
    assert!(
        !store_files.is_empty(),
        "the store holds the ALERTS/AUDIT metadata at least"
    );
    for marker in &markers {
        assert!(
            files_containing(nats.store_dir(), marker).is_empty(),
            "frame bytes in the NATS store"
        );
        let leaked: Vec<_> = files_containing(root.path(), marker)
            .into_iter()
            .filter(|p| !p.starts_with(&images))
            .collect();
        assert!(leaked.is_empty(), "frame bytes written to {leaked:?}");
    }
}

#[tokio::test]
async fn bad_sources_are_reported_and_never_stop_the_good_camera() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    write_images(&good, 3, 5);
    std::fs::write(
        good.join("img-0001b.jpg"),
        b"\xFF\xD8\xFF\xE0 this is not a JPEG",
    )
    .unwrap();
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, vec![0x42u8; 4096]).unwrap();
    let refused = format!("rtsp://127.0.0.1:{}/live", free_port());

    let cfg = config(
        &nats,
        vec![
            camera("good", &good.to_string_lossy(), 10.0),
            camera("missing", "/nonexistent/recording.mp4", 5.0),
            camera("garbage", &garbage.to_string_lossy(), 5.0),
            camera("refused", &refused, 5.0),
        ],
    );
    let shutdown = Shutdown::new();
    // Gated capture: a live deployment covers the camera(s).
    let _covered = nats.cover(&["good", "missing", "garbage", "refused"]).await;
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();
    let js = jetstream(&nats).await;
    let frames = take_frames(&frames_consumer(&js).await, 3, Duration::from_secs(15)).await;
    assert_eq!(frames.len(), 3, "the good camera keeps publishing");
    assert!(frames.iter().all(|f| f.source.camera == "good"));

    // Each broken camera fails, is counted, and is retried with back-off.
    let text = eventually(Duration::from_secs(15), || async {
        let text = scrape(running.metrics_addr).await;
        let retried = ["missing", "garbage", "refused"].iter().all(|cam| {
            metric(
                &text,
                "lfr_ingest_camera_failures_total",
                &[("camera", cam), ("reason", "open_failed")],
            )
            .is_some_and(|n| n >= 2.0)
        });
        retried.then_some(text)
    })
    .await
    .expect("every broken camera counted and retried");
    // The folder is replayed after it ends, so the corrupt image is met (and counted) each pass.
    let bad = metric(
        &text,
        "lfr_ingest_bad_frames_total",
        &[("camera", "good"), ("reason", "undecodable")],
    );
    assert!(
        bad.is_some_and(|n| n >= 1.0),
        "corrupt image not counted: {bad:?}"
    );
    assert_eq!(
        metric(&text, "lfr_ingest_camera_up", &[("camera", "refused")]),
        Some(0.0)
    );
    let ready = reqwest::get(format!("http://{}/readyz", running.metrics_addr))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a broken camera does not make ingest unready"
    );
    shutdown.trigger();
    running.done.await.unwrap();
}

#[tokio::test]
async fn ingest_survives_a_nats_restart_and_counts_what_it_lost() {
    let mut nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_images(&dir.path().join("loop"), 5, 6);
    let mut cam = camera("platform", &dir.path().join("loop").to_string_lossy(), 10.0);
    cam.realtime = true;
    cam.repeat = true;
    let mut cfg = config(&nats, vec![cam]);
    cfg.common.nats.ack_timeout = Duration::from_secs(1);
    let shutdown = Shutdown::new();
    // Gated capture: a live deployment covers the camera(s).
    let _covered = nats.cover(&["platform"]).await;
    let running = lfr_ingest::start(cfg, shutdown.clone()).await.unwrap();

    let js = jetstream(&nats).await;
    let mut seqs: Vec<u64> = take_frames(&frames_consumer(&js).await, 10, Duration::from_secs(10))
        .await
        .iter()
        .map(|f| f.source.seq)
        .collect();
    assert_eq!(seqs.len(), 10);

    nats.kill().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.restart().await;
    let last_before = *seqs.last().unwrap();

    // The memory streams and the detector's consumer are gone, and ingest cannot declare them:
    // its frames are refused (and counted) until the topology keeper declares them again. Then
    // read until frames well past the outage arrive.
    let refused = eventually(Duration::from_secs(20), || async {
        let text = scrape(running.metrics_addr).await;
        metric(
            &text,
            "lfr_ingest_frames_dropped_total",
            &[("camera", "platform"), ("reason", "publish_failed")],
        )
        .filter(|n| *n >= 1.0)
    })
    .await;
    assert!(
        refused.is_some(),
        "frames published to the lost stream are counted"
    );
    nats.declare().await;
    let resumed = eventually(Duration::from_secs(20), || async {
        let consumer = match js.get_stream_no_info(streams::FRAMES).await {
            Ok(s) => s.get_consumer(streams::consumers::DETECT).await.ok()?,
            Err(_) => return None,
        };
        let frames = take_frames(&consumer, 10, Duration::from_secs(2)).await;
        (frames.len() == 10).then_some(frames)
    })
    .await
    .expect("frames flow again after NATS restarts");
    // Frames missing between the last one before the outage and the last one read after it (a
    // frame queued in the client while disconnected may arrive first, so count, not compare).
    let last_after = resumed.last().unwrap().source.seq;
    let missing = (last_after - last_before) as usize - resumed.len();
    seqs.extend(resumed.iter().map(|f| f.source.seq));

    let text = scrape(running.metrics_addr).await;
    let lost_counted: f64 = ["backpressure", "publish_failed"]
        .iter()
        .filter_map(|r| {
            metric(
                &text,
                "lfr_ingest_frames_dropped_total",
                &[("camera", "platform"), ("reason", r)],
            )
        })
        .sum();
    let gap = missing as f64;
    eprintln!("NATS outage: {gap} frames missing, {lost_counted} counted as lost");
    assert!(lost_counted >= 1.0, "losses were not counted");
    // Every frame missing across the outage is accounted for, give or take the few that were
    // already acknowledged into the server's memory when it died.
    assert!(
        gap <= lost_counted + 4.0,
        "gap {gap} but only {lost_counted} counted"
    );
    // The loss is bounded by the outage, not the whole run.
    assert!(gap < 60.0, "gap {gap} frames for a 1.5 s outage at 10 fps");
    assert!(metric(&text, "lfr_bus_disconnects_total", &[]).unwrap() >= 1.0);
    shutdown.trigger();
    running.done.await.unwrap();
}
