//! Gated capture against a real nats-server: a camera is opened only inside a live deployment's
//! window, and closed within seconds of its end, on the clock or on `lfr deployment end`.

mod support;

use lfr_common::Shutdown;
use lfr_schemas::{streams, Timestamp};
use lfr_testkit::coverage::Window;
use lfr_testkit::{files_containing, metric, scrape, NatsServer};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const SEC: u64 = 1_000_000_000;

fn secs(from: Timestamp, to: Timestamp) -> f64 {
    (to.0 as f64 - from.0 as f64) / 1e9
}

/// Take frames as the detector would, for as long as the test runs, noting their capture times.
fn collect(
    consumer: async_nats::jetstream::consumer::Consumer<
        async_nats::jetstream::consumer::pull::Config,
    >,
) -> Arc<Mutex<Vec<Timestamp>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            for f in take_frames(&consumer, 50, Duration::from_millis(300)).await {
                out.lock().unwrap().push(f.source.captured_at);
            }
        }
    });
    seen
}

#[tokio::test]
async fn a_camera_is_captured_only_inside_its_deployment_window() {
    // Unencrypted store: what is shown is that no frame reaches it at all.
    let mut nats = NatsServer::start_with(lfr_testkit::Options {
        encrypt_store: false,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_images(&dir.path().join("imgs"), 5, 7);
    let mut cam = camera("gate-1", &dir.path().join("imgs").to_string_lossy(), 10.0);
    cam.realtime = true;
    cam.repeat = true;
    let shutdown = Shutdown::new();
    let running = lfr_ingest::start(config(&nats, vec![cam]), shutdown.clone())
        .await
        .unwrap();
    let js = jetstream(&nats).await;
    let seen = collect(frames_consumer(&js).await);
    let capturing =
        |text: &str| metric(text, "lfr_ingest_camera_capturing", &[("camera", "gate-1")]);

    // No deployment: the camera is never opened.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "frames without a deployment"
    );
    assert_eq!(
        stream_messages(&nats.admin().await, streams::FRAMES).await,
        0
    );
    let text = scrape(running.metrics_addr).await;
    assert_eq!(capturing(&text), Some(0.0));
    assert_eq!(
        metric(&text, "lfr_ingest_frames_total", &[("camera", "gate-1")]),
        Some(0.0)
    );

    // A deployment whose window opens in 2 s and closes 4 s later.
    let now = Timestamp::now();
    let window = Window {
        deployment: "d1".into(),
        cameras: vec!["gate-1".into()],
        starts_at: Timestamp(now.0 + 2 * SEC),
        ends_at: Timestamp(now.0 + 6 * SEC),
        setup_window_secs: 0,
    };
    let covered = nats.cover_window(window.clone()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let text = scrape(running.metrics_addr).await;
    assert_eq!(capturing(&text), Some(1.0), "capturing inside the window");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let frames = seen.lock().unwrap().clone();
    let first = *frames.first().expect("frames inside the window");
    let last = *frames.last().unwrap();
    let start_latency = secs(window.starts_at, first);
    let stop_latency = secs(window.ends_at, last);
    println!("clock window: capture started {start_latency:.3} s after the start, last frame {stop_latency:.3} s after the end ({} frames)", frames.len());
    assert!(
        frames.iter().all(|t| *t >= window.starts_at),
        "a frame captured before the start"
    );
    assert!(
        (0.0..2.0).contains(&start_latency),
        "capture started {start_latency} s late"
    );
    assert!(
        stop_latency < 2.0,
        "capture went on {stop_latency} s after the end"
    );
    let text = scrape(running.metrics_addr).await;
    assert_eq!(capturing(&text), Some(0.0), "closed after the end");
    drop(covered);

    // A deployment ended early by its supervisor: capture stops within 2 s of the end.
    let now = Timestamp::now();
    let early = Window {
        deployment: "d2".into(),
        cameras: vec!["gate-1".into()],
        starts_at: Timestamp(now.0 - SEC),
        ends_at: Timestamp(now.0 + 3600 * SEC),
        setup_window_secs: 0,
    };
    let before = seen.lock().unwrap().len();
    let _covered = nats.cover_window(early.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let opened = seen.lock().unwrap()[before..]
        .first()
        .copied()
        .expect("frames once live");
    let ended = Timestamp::now();
    nats.end_cover(&early).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let last = *seen.lock().unwrap().last().unwrap();
    let stop_latency = secs(ended, last);
    println!("ended early: capture started {:.3} s after activation, last frame {stop_latency:.3} s after the end", secs(now, opened));
    assert!(secs(now, opened) < 2.0, "capture started late");
    assert!(
        stop_latency < 2.0,
        "capture went on {stop_latency} s after the end"
    );
    let published = stream_messages(&nats.admin().await, streams::FRAMES).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        seen.lock().unwrap().last().copied(),
        Some(last),
        "no frame after the end"
    );
    assert_eq!(
        stream_messages(&nats.admin().await, streams::FRAMES).await,
        published
    );

    shutdown.trigger();
    running.done.await.unwrap();
    nats.server.stop().await;
    // JPEG's JFIF header: no frame, from inside or outside the window, is in the store's files.
    let jfif = b"\xff\xd8\xff\xe0\x00\x10JFIF";
    assert!(
        files_containing(nats.store_dir(), jfif).is_empty(),
        "frame bytes in the NATS store"
    );
}
