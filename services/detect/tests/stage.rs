//! The detect stage over a real nats-server with the real detector: bad messages and bad images are
//! refused with a reason and a counter, and the stage keeps taking good frames.

use lfr_common::Shutdown;
use lfr_schemas::wire::with_version;
use lfr_schemas::{streams, subjects, Message};
use lfr_testkit::{eventually, frame, metric, sample_photo, scrape, Identity, NatsServer};
use opencv::core::{Mat, Scalar, Vector, CV_8UC3};
use opencv::prelude::*;
use opencv::{core, imgcodecs};
use std::time::Duration;

fn jpeg_of(image: &Mat) -> Vec<u8> {
    let mut out = Vector::<u8>::new();
    imgcodecs::imencode(".jpg", image, &mut out, &Vector::new()).unwrap();
    out.to_vec()
}

fn blank(w: i32, h: i32) -> Mat {
    Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(90.0)).unwrap()
}

/// The detect stage, with camera `cam-a` covered by a live deployment (gated capture).
async fn start_detect(nats: &NatsServer) -> (lfr_common::service::Running, Shutdown) {
    let mut cfg = lfr_detect::Config::default();
    cfg.common.nats = nats.nats_config(Identity::Detect);
    cfg.detect.http_addr = "127.0.0.1:0".parse().unwrap();
    let shutdown = Shutdown::new();
    let covered = nats.cover(&["cam-a"]).await;
    let running = lfr_detect::start(cfg, shutdown.clone()).await.unwrap();
    // The guard lives as long as the stage.
    let stop = shutdown.clone();
    tokio::spawn(async move {
        stop.requested().await;
        drop(covered);
    });
    (running, shutdown)
}

async fn publish(js: &async_nats::jetstream::Context, bytes: Vec<u8>) {
    js.publish(subjects::frames("cam-a"), bytes.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_messages_and_bad_images_are_refused_counted_and_the_stage_keeps_running() {
    let nats = NatsServer::start().await;
    let (running, shutdown) = start_detect(&nats).await;
    let js = nats.jetstream(Identity::Ingest).await;
    let photo = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();

    publish(
        &js,
        with_version(frame("cam-a", 0, photo.clone(), 0, 0).encode(), 99),
    )
    .await;
    publish(&js, b"not even an lfr message".to_vec()).await;
    publish(
        &js,
        frame("cam-a", 1, photo.clone(), 0, 0).encode()[..10].to_vec(),
    )
    .await;
    publish(
        &js,
        frame("cam-a", 2, b"\xFF\xD8garbage".to_vec(), 0, 0).encode(),
    )
    .await;
    publish(&js, frame("cam-a", 3, jpeg_of(&blank(1, 1)), 1, 1).encode()).await;
    publish(&js, frame("cam-a", 4, photo.clone(), 0, 0).encode()).await;

    let text = eventually(Duration::from_secs(20), || async {
        let text = scrape(running.metrics_addr).await;
        metric(&text, "lfr_stage_messages_total", &[("outcome", "ok")])
            .filter(|n| *n >= 1.0)
            .map(|_| text)
    })
    .await
    .expect("the good frame after the bad ones was handled");
    for reason in [
        "unsupported_version",
        "not_lfr",
        "malformed",
        "undecodable",
        "too_small",
    ] {
        assert_eq!(
            metric(&text, "lfr_stage_rejected_total", &[("reason", reason)]),
            Some(1.0),
            "{reason}"
        );
    }
    assert_eq!(metric(&text, "lfr_detect_faces_total", &[]), Some(1.0));
    // Refused messages are terminated, not redelivered: the work queue is empty.
    let mut stream = js.get_stream(streams::FRAMES).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    let ready = reqwest::get(format!("http://{}/readyz", running.metrics_addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    shutdown.trigger();
    running.done.await.unwrap();
}

#[tokio::test]
async fn huge_frames_and_faces_at_the_border_are_handled() {
    let nats = NatsServer::start().await;
    let (running, shutdown) = start_detect(&nats).await;
    let js = nats.jetstream(Identity::Ingest).await;

    // 10000x10000: decoded at 1/8 scale, never in full.
    let mut huge = blank(10000, 10000);
    let mut rng = core::RNG::new(5).unwrap();
    let mut patch = Mat::roi_mut(&mut huge, core::Rect::new(0, 0, 200, 200)).unwrap();
    rng.fill(
        &mut patch,
        core::RNG_UNIFORM,
        &Scalar::all(0.0),
        &Scalar::all(255.0),
        false,
    )
    .unwrap();
    publish(
        &js,
        frame("cam-a", 0, jpeg_of(&huge), 10000, 10000).encode(),
    )
    .await;
    drop(huge);

    // A face cut by the left edge of the frame.
    let photo =
        imgcodecs::imread(sample_photo("faces/obama.jpg"), imgcodecs::IMREAD_COLOR).unwrap();
    let cols = photo.cols();
    let shifted = Mat::roi(
        &photo,
        core::Rect::new(cols * 2 / 5, 0, cols * 3 / 5, photo.rows()),
    )
    .unwrap()
    .try_clone()
    .unwrap();
    publish(&js, frame("cam-a", 1, jpeg_of(&shifted), 0, 0).encode()).await;

    let text = eventually(Duration::from_secs(30), || async {
        let text = scrape(running.metrics_addr).await;
        metric(&text, "lfr_stage_messages_total", &[("outcome", "ok")])
            .filter(|n| *n >= 2.0)
            .map(|_| text)
    })
    .await
    .expect("both frames handled");
    assert_eq!(
        metric(
            &text,
            "lfr_stage_messages_total",
            &[("outcome", "rejected")]
        ),
        None
    );
    shutdown.trigger();
    running.done.await.unwrap();
}

#[tokio::test]
async fn replicas_share_the_work_of_one_durable_consumer() {
    let nats = NatsServer::start().await;
    let (first, shutdown_first) = start_detect(&nats).await;
    let (second, shutdown_second) = start_detect(&nats).await;
    let js = nats.jetstream(Identity::Ingest).await;
    let photo = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    for seq in 0..12 {
        publish(&js, frame("cam-a", seq, photo.clone(), 0, 0).encode()).await;
    }
    let handled =
        |text: &str| metric(text, "lfr_stage_messages_total", &[("outcome", "ok")]).unwrap_or(0.0);
    let split = eventually(Duration::from_secs(30), || async {
        let a = handled(&scrape(first.metrics_addr).await);
        let b = handled(&scrape(second.metrics_addr).await);
        (a + b == 12.0).then_some((a, b))
    })
    .await
    .expect("all frames handled exactly once between the replicas");
    assert!(
        split.0 >= 1.0 && split.1 >= 1.0,
        "one replica did all the work: {split:?}"
    );
    shutdown_first.trigger();
    shutdown_second.trigger();
    first.done.await.unwrap();
    second.done.await.unwrap();
}

#[tokio::test]
async fn a_stage_told_to_stop_while_nats_is_down_stops_within_seconds() {
    let mut nats = NatsServer::start().await;
    let (running, shutdown) = start_detect(&nats).await;
    let ready = lfr_testkit::eventually(std::time::Duration::from_secs(20), || async {
        let r = reqwest::get(format!("http://{}/readyz", running.metrics_addr))
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    assert!(ready.is_some(), "detect became ready");
    nats.kill().await;
    // Let the stage notice and start re-connecting and re-declaring.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    shutdown.trigger();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), running.done).await;
    assert!(
        stopped.is_ok(),
        "a Kubernetes pod has 30 s to stop: the stage must not wait for NATS"
    );
}

/// NATS restarted without its memory streams: the stage's consumer is gone with FRAMES. The stage
/// must notice on its own (its pulls go unanswered) and say so on `/readyz`; it has no right to
/// declare anything. Once the topology keeper (`lfr bus init --watch`) has declared FRAMES and the
/// consumer again, the stage binds to them and takes frames.
#[tokio::test]
async fn after_nats_loses_its_memory_streams_the_stage_waits_for_the_topology_and_takes_frames() {
    let mut nats = NatsServer::start().await;
    let (running, shutdown) = start_detect(&nats).await;
    let photo = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    let handled = |at_least: f64| {
        let addr = running.metrics_addr;
        async move {
            eventually(Duration::from_secs(40), || async {
                let text = scrape(addr).await;
                metric(&text, "lfr_stage_messages_total", &[("outcome", "ok")])
                    .filter(|n| *n >= at_least)
            })
            .await
        }
    };
    let js = nats.jetstream(Identity::Ingest).await;
    publish(&js, frame("cam-a", 0, photo.clone(), 0, 0).encode()).await;
    assert!(handled(1.0).await.is_some(), "first frame handled");

    nats.restart().await;
    let readyz = || async {
        let r = reqwest::get(format!("http://{}/readyz", running.metrics_addr))
            .await
            .ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    };
    let waiting = eventually(Duration::from_secs(40), || async {
        let (status, why) = readyz().await?;
        (status == 503 && why.contains("FRAMES")).then_some(why)
    })
    .await
    .expect("the stage reports that its stream is gone");
    assert!(waiting.contains("lfr bus init"), "{waiting}");
    // Nothing declared FRAMES meanwhile: the stage cannot.
    let js = nats.jetstream(Identity::Ingest).await;
    assert!(js.get_stream(streams::FRAMES).await.is_err());

    // The keeper declares the topology again.
    nats.declare().await;
    // A camera keeps sending: frames sent while the stage is still binding are shed as too old
    // by the time it takes them (half the latency budget), a fresh one is handled.
    let addr = running.metrics_addr;
    let mut seq = 0;
    let handled_after = eventually(Duration::from_secs(40), || {
        seq += 1;
        let (js, frame) = (
            js.clone(),
            frame("cam-a", seq, photo.clone(), 0, 0).encode(),
        );
        async move {
            if let Ok(ack) = js.publish(subjects::frames("cam-a"), frame.into()).await {
                let _ = ack.await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let text = scrape(addr).await;
            metric(&text, "lfr_stage_messages_total", &[("outcome", "ok")]).filter(|n| *n >= 2.0)
        }
    })
    .await;
    assert!(
        handled_after.is_some(),
        "a frame sent after the restart was handled"
    );
    assert_eq!(readyz().await.map(|r| r.0), Some(200));
    shutdown.trigger();
    running.done.await.unwrap();
}
