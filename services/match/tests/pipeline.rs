//! The whole pipeline on real photos: ingest -> detect -> embed -> match over a real nats-server.
//!
//! Obama is enrolled from one photo (wanted) and Biden as a blue-list volunteer. A camera then
//! sees Obama walk past (another photo of him, moving across five frames), three group photos of
//! other people, Biden walk past, three more group photos, and Obama again (a third photo). The
//! matcher must raise exactly one alert per pass of Obama, one blue-list alert for Biden on its own
//! subject, and nothing for anyone else; afterwards no frame, face or template is left on the bus.
//! The alerts' images are sealed: they open with the vault into the real JPEGs, and the bytes of
//! ALERTS in the server's store hold none of them in clear.

mod support;

use lfr_common::Shutdown;
use lfr_schemas::{streams, AuditAction, AuditEvent, CandidateAlert, WatchlistCategory};
use lfr_testkit::{
    eventually, files_containing, metric, records, sample_photo, scrape, stream_messages,
    NatsServer,
};
use lfr_vault::{AlertImage, Vault};
use lfr_watchlist::list::sha256_hex;
use lfr_watchlist::store::Store;
use opencv::core::{Mat, Rect, Scalar, Size, Vector, CV_8UC3};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CANVAS: (i32, i32) = (960, 540);

/// `photo` scaled to fit `height`, pasted on a grey frame at `x`.
fn frame_with(photo: &str, height: i32, x: i32) -> Mat {
    let src = imgcodecs::imread(
        sample_photo(photo).to_str().unwrap(),
        imgcodecs::IMREAD_COLOR,
    )
    .unwrap();
    let scale = (height as f64 / src.rows() as f64).min(CANVAS.0 as f64 / src.cols() as f64);
    let mut scaled = Mat::default();
    let size = Size::new(
        (src.cols() as f64 * scale) as i32,
        (src.rows() as f64 * scale) as i32,
    );
    imgproc::resize(&src, &mut scaled, size, 0.0, 0.0, imgproc::INTER_AREA).unwrap();
    let mut canvas =
        Mat::new_rows_cols_with_default(CANVAS.1, CANVAS.0, CV_8UC3, Scalar::all(110.0)).unwrap();
    let x = x.min(CANVAS.0 - size.width);
    let mut roi = canvas
        .roi_mut(Rect::new(
            x,
            (CANVAS.1 - size.height) / 2,
            size.width,
            size.height,
        ))
        .unwrap();
    scaled.copy_to(&mut roi).unwrap();
    canvas
}

/// A person walking past: five frames, 25 px apart.
fn pass(photo: &str) -> Vec<Mat> {
    (0..5)
        .map(|i| frame_with(photo, 420, 80 + 25 * i))
        .collect()
}

fn crowd(photos: &[&str]) -> Vec<Mat> {
    photos.iter().map(|p| frame_with(p, 540, 0)).collect()
}

fn write_recording(dir: &Path, frames: &[Mat]) {
    for (i, f) in frames.iter().enumerate() {
        let path = dir.join(format!("{i:03}.jpg"));
        imgcodecs::imwrite(path.to_str().unwrap(), f, &Vector::new()).unwrap();
    }
}

/// The files of a stream in the server's store directory.
fn stream_dir(store: &Path, stream: &str) -> PathBuf {
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == stream)
                    && p.parent().is_some_and(|s| s.ends_with("streams"))
                {
                    return p;
                }
                dirs.push(p);
            }
        }
    }
    panic!("no {stream} under {}", store.display());
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() > 4 && bytes.starts_with(&[0xff, 0xd8]) && bytes.ends_with(&[0xff, 0xd9])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obama_alerts_once_per_pass_and_nobody_else_does() {
    // The store unencrypted, so that the alert records can be found in ALERTS's files: what is
    // shown is that no image is ever in them in clear (sealed), and that no probe is anywhere in
    // the store, apart from the store's own encryption.
    let nats = NatsServer::start_with(lfr_testkit::Options {
        encrypt_store: false,
        ..Default::default()
    })
    .await;
    let js = nats.admin().await;
    let store = Store::open(&js).await.unwrap();
    support::active_deployment(
        &store,
        "match-day",
        &["gate-1"],
        &[
            ("faces/obama.jpg", "CUST-0001", "wanted"),
            ("faces/biden.jpg", "STAFF-07", "blue"),
        ],
    )
    .await;

    let recording = tempfile::tempdir().unwrap();
    let mut frames = pass("faces/obama2.jpg");
    frames.extend(crowd(&[
        "group/sample1.jpg",
        "group/sample2.jpg",
        "group/sample3.jpg",
    ]));
    frames.extend(pass("faces/biden.jpg"));
    frames.extend(crowd(&[
        "group/sample4.jpg",
        "group/sample5.jpg",
        "group/sample6.jpg",
    ]));
    frames.extend(pass("faces/obama3.jpg"));
    write_recording(recording.path(), &frames);

    let shutdown = Shutdown::new();
    let matcher = lfr_match::start(support::config(&nats), shutdown.clone())
        .await
        .unwrap();
    let mut detect = lfr_detect::Config::default();
    detect.common.nats = nats.nats_config(lfr_testkit::Identity::Detect);
    detect.detect.http_addr = "127.0.0.1:0".parse().unwrap();
    let mut embed = lfr_embed::Config::default();
    embed.common.nats = nats.nats_config(lfr_testkit::Identity::Embed);
    embed.embed.http_addr = "127.0.0.1:0".parse().unwrap();
    // Every frame must go through, even on a CI box busy with other tests: nothing is shed for
    // age before it expires (shedding has tests of its own, common/tests/stage.rs).
    for bus in [&mut detect.common.bus, &mut embed.common.bus] {
        bus.latency_budget = bus.transient_ttl;
    }
    let detect = lfr_detect::start(detect, shutdown.clone()).await.unwrap();
    let embed = lfr_embed::start(embed, shutdown.clone()).await.unwrap();
    eventually(Duration::from_secs(10), || async {
        let m = scrape(matcher.metrics_addr).await;
        (metric(
            &m,
            "lfr_match_watchlist_verified",
            &[("deployment", "match-day")],
        ) == Some(1.0))
        .then_some(())
    })
    .await
    .expect("the watch list is loaded and verified");

    let mut ingest = lfr_ingest::config::Config::default();
    ingest.common.nats = nats.nats_config(lfr_testkit::Identity::Ingest);
    ingest.ingest.http_addr = "127.0.0.1:0".parse().unwrap();
    // Played once: the camera is not reopened within the test.
    ingest.ingest.initial_backoff = Duration::from_secs(600);
    ingest.ingest.cameras = vec![lfr_ingest::config::CameraConfig {
        id: "gate-1".into(),
        source: format!("dir:{}", recording.path().display()),
        fps: 5.0,
        resize: None,
        realtime: true,
        repeat: false,
    }];
    let ingest = lfr_ingest::start(ingest, shutdown.clone()).await.unwrap();

    // Every frame through every stage: ingest published them all, detect handled them all, every
    // face it found was embedded, and every template compared (a frame that expired on the bus
    // would never count as handled, and the test would fail here).
    let compared = eventually(Duration::from_secs(90), || async {
        let i = scrape(ingest.metrics_addr).await;
        let d = scrape(detect.metrics_addr).await;
        let e = scrape(embed.metrics_addr).await;
        let m = scrape(matcher.metrics_addr).await;
        let n = frames.len() as f64;
        let published = metric(&i, "lfr_ingest_frames_total", &[("camera", "gate-1")])?;
        let detected = metric(&d, "lfr_stage_messages_total", &[("outcome", "ok")])?;
        let faces = metric(&d, "lfr_detect_faces_total", &[])?;
        let templates = metric(&e, "lfr_embed_templates_total", &[])?;
        let matched = metric(&m, "lfr_stage_messages_total", &[("outcome", "ok")])?;
        (published == n && detected == n && templates == faces && matched == templates)
            .then_some(matched)
    })
    .await
    .expect("every frame detected, embedded and compared");

    let alerts: Vec<(String, CandidateAlert)> =
        records(&js, streams::ALERTS, "lfr.alerts.match-day.>").await;
    let subjects: Vec<&str> = alerts.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "lfr.alerts.match-day.candidate",
            "lfr.alerts.match-day.blue",
            "lfr.alerts.match-day.candidate"
        ],
        "one alert per pass of Obama, one blue-list alert for Biden, nothing else ({compared} probes)"
    );
    let obama = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    let biden = std::fs::read(sample_photo("faces/biden.jpg")).unwrap();
    let vault = Vault::open(&js, support::master_key()).await.unwrap();
    // Each alert's three images, opened: (probe, context, reference).
    let mut opened = Vec::new();
    for (_, alert) in &alerts {
        let mut images = Vec::new();
        for (image, sealed) in [
            (AlertImage::Probe, &alert.probe_jpeg),
            (AlertImage::Context, &alert.context_jpeg),
            (AlertImage::Reference, &alert.reference_jpeg),
        ] {
            assert_eq!(sealed.key, "match-day");
            let aad = image.aad(&alert.deployment, &alert.alert_id);
            let bytes = vault.unseal(sealed, &aad).await.unwrap();
            assert!(
                is_jpeg(&bytes),
                "{image:?} of {} is not a JPEG",
                alert.alert_id
            );
            images.push(bytes);
        }
        // Bound to its own alert: another alert's associated data does not open it.
        let other = AlertImage::Probe.aad(&alert.deployment, "another-alert");
        assert!(vault.unseal(&alert.probe_jpeg, &other).await.is_err());
        opened.push(images);
    }
    for (i, (_, alert)) in [(0, &alerts[0]), (2, &alerts[2])] {
        assert_eq!(alert.entry_ref, "CUST-0001");
        assert_eq!(alert.category, WatchlistCategory::Wanted);
        assert_eq!(alert.reference_image_sha256, sha256_hex(&obama));
        assert!(alert.score >= 0.6, "{}", alert.score);
        assert!(alert.corroborating_frames >= 2, "{alert:?}");
        let [probe, context, reference] = &opened[i][..] else {
            unreachable!()
        };
        assert!(probe.len() > 1000 && context.len() > probe.len());
        assert_eq!(
            reference, &obama,
            "the watch-list image travels with the alert"
        );
    }
    assert_ne!(alerts[0].1.probe.frame.seq, alerts[2].1.probe.frame.seq);
    assert_eq!(alerts[1].1.entry_ref, "STAFF-07");
    assert_eq!(alerts[1].1.category, WatchlistCategory::Blue);
    assert_eq!(opened[1][2], biden);

    // What is on disk: ALERTS holds the alerts, but none of their images in clear; and no probe
    // or context image is anywhere in the store (the transient streams are memory only).
    let alerts_dir = stream_dir(nats.store_dir(), streams::ALERTS);
    let written = eventually(Duration::from_secs(10), || async {
        let id = alerts[2].1.alert_id.as_bytes();
        (!files_containing(&alerts_dir, id).is_empty()).then_some(())
    })
    .await;
    assert!(written.is_some(), "the alerts never reached ALERTS's files");
    for images in &opened {
        for image in images {
            assert!(
                files_containing(&alerts_dir, image).is_empty(),
                "an alert image is in clear in ALERTS"
            );
        }
        for image in &images[..2] {
            assert!(files_containing(nats.store_dir(), image).is_empty());
        }
    }

    let m = scrape(matcher.metrics_addr).await;
    for (subject, a) in &alerts {
        eprintln!(
            "{subject}: score {:.3}, {} of {} frames, raised {:?} after its best frame's capture",
            a.score,
            a.corroborating_frames,
            a.track_frames,
            a.probe.frame.captured_at.until(a.raised_at)
        );
    }
    assert_eq!(
        metric(&m, "lfr_match_alerts_total", &[("category", "wanted")]),
        Some(2.0)
    );
    assert_eq!(
        metric(&m, "lfr_match_alerts_total", &[("category", "blue")]),
        Some(1.0)
    );
    let no_match = metric(&m, "lfr_match_probes_total", &[("outcome", "no_match")]).unwrap();
    // Six crowd frames of 2-5 faces at 5 fps: detect searches in full every 0.3 s (every other
    // frame here) and publishes each face it tracks, so at least a few of them reach the matcher.
    assert!(
        no_match >= 5.0,
        "the crowd's faces were compared: {no_match}"
    );
    assert_eq!(
        metric(
            &m,
            "lfr_match_watchlist_entries",
            &[("deployment", "match-day")]
        ),
        Some(2.0)
    );
    assert!(metric(&m, "lfr_match_search_seconds_count", &[]).unwrap() >= compared);

    // Each alert's combination (probe with watch list) and retention are on the audit record;
    // nothing else about the probes is.
    let audit: Vec<(String, AuditEvent)> =
        records(&js, streams::AUDIT, "lfr.audit.match-day").await;
    let by_matcher: Vec<&AuditEvent> = audit
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.actor == "lfr-match")
        .collect();
    assert_eq!(by_matcher.len(), 6, "{by_matcher:?}");
    for (i, retained) in by_matcher.iter().enumerate() {
        if retained.action != AuditAction::Collection {
            continue;
        }
        assert!(retained.object.starts_with("alert/"));
        assert!(
            by_matcher[..i]
                .iter()
                .any(|e| e.action == AuditAction::Combination && e.object == retained.object),
            "the combination is recorded before the alert is stored"
        );
    }
    let combined = by_matcher
        .iter()
        .filter(|e| e.action == AuditAction::Combination);
    assert_eq!(combined.count(), 3);

    let emptied = eventually(Duration::from_secs(10), || async {
        let left = stream_messages(&js, streams::FRAMES).await
            + stream_messages(&js, streams::FACES).await
            + stream_messages(&js, streams::EMBEDDINGS).await;
        (left == 0).then_some(())
    })
    .await;
    assert!(
        emptied.is_some(),
        "a frame, face or template was left on the bus"
    );
    assert_eq!(
        stream_messages(&js, streams::ALERTS).await,
        3,
        "only the alerts were kept"
    );

    shutdown.trigger();
    for done in [ingest.done, detect.done, embed.done, matcher.done] {
        done.await.unwrap();
    }
}
