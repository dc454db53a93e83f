//! Bystanders blurred at source: group photos through the detect stage's own path (in process,
//! and over a real nats-server, the crops asked for as the matcher asks), with the real detector.
//! For every published face, the context crop holds exactly one face the detector finds even at a
//! score of 0.05, and it is that face; every other face that was in the crop's part of the frame
//! is changed beyond JPEG noise, and the published face is not. Only the matcher may ask for a
//! crop, and a face no longer held has none.
//!
//! `LFR_TEST_CONTEXT_DIR=/some/dir` writes each crop there, before and as published, to look at.
//! `cost_of_blurring_bystanders` (ignored) prints what the blur costs a frame.

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use lfr_common::Shutdown;
use lfr_schemas::{streams, subjects, Context, ContextReply, DetectedFace, Message, Timestamp};
use lfr_testkit::{frame, metric, sample_photo, scrape, Identity, NatsServer};
use lfr_vision::config::ModelsConfig;
use lfr_vision::detector::Detector;
use lfr_vision::faces::upper_torso_rect;
use lfr_vision::image::decode_jpeg;
use lfr_vision::manifest::Role;
use opencv::core::{Mat, Rect, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The score the issue sets: the blurred regions must defeat the detector even this low.
const CHECK_SCORE: f32 = 0.05;

/// The configured detector with its threshold lowered to [`CHECK_SCORE`], built here from the
/// manifest rather than through the code under test.
fn checking_detector(config: &ModelsConfig) -> Detector {
    let store = config.store().unwrap();
    let mut artefact = store
        .model(&config.detector, Role::Detector)
        .unwrap()
        .clone();
    artefact.detector.as_mut().unwrap().score_threshold = CHECK_SCORE;
    Detector::load(&store, &artefact, config.detector_input, 1).unwrap()
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    iw * ih / (area(a) + area(b) - iw * ih)
}

/// Whether two boxes are one face: `a`'s centre inside `b`, `b`'s inside `a`, or a large overlap.
fn same_face(a: &[f32; 4], b: &[f32; 4]) -> bool {
    let centre_in = |p: &[f32; 4], q: &[f32; 4]| {
        let (cx, cy) = ((p[0] + p[2]) / 2.0, (p[1] + p[3]) / 2.0);
        q[0] <= cx && cx <= q[2] && q[1] <= cy && cy <= q[3]
    };
    centre_in(a, b) || centre_in(b, a) || iou(a, b) > 0.4
}

/// Mean absolute difference per channel value between `a` and `b` (same size) inside `bbox`,
/// clipped to the images.
fn difference(a: &Mat, b: &Mat, bbox: &[f32; 4]) -> f64 {
    let (x, y) = (bbox[0].max(0.0) as i32, bbox[1].max(0.0) as i32);
    let r = Rect::new(
        x,
        y,
        (bbox[2] as i32 - x).max(1),
        (bbox[3] as i32 - y).max(1),
    ) & Rect::new(0, 0, a.cols(), a.rows());
    let (ra, rb) = (Mat::roi(a, r).unwrap(), Mat::roi(b, r).unwrap());
    let mut diff = Mat::default();
    opencv::core::absdiff(&ra, &rb, &mut diff).unwrap();
    let mean = opencv::core::mean(&diff, &opencv::core::no_array()).unwrap();
    (mean[0] + mean[1] + mean[2]) / 3.0
}

/// What the checks saw over a set of published faces.
#[derive(Debug, Default)]
struct Seen {
    faces: usize,
    /// Other people's faces (score [`REAL_FACE`] or more) that were in the unblurred crops.
    others: usize,
}

/// From this score a detection is surely a face (the live threshold is 0.9), and its region must
/// have changed; below it, a detection may be a pattern in clothes or a wall, which the blur may
/// change little, and it is enough that the detector no longer finds it.
const REAL_FACE: f32 = 0.5;

/// Check every published face of one frame (`jpeg`, decoded as the stage decodes it), each with
/// its context crop.
fn check(
    detector: &mut Detector,
    jpeg: &[u8],
    faces: &[(DetectedFace, Vec<u8>)],
    name: &str,
) -> Seen {
    let input_side = {
        let c = ModelsConfig::default();
        c.detector_input[0].max(c.detector_input[1])
    };
    let (frame, scale) = decode_jpeg(jpeg, input_side).unwrap();
    let in_frame = detector.detect(&frame).unwrap();
    let mut seen = Seen::default();
    for (face, crop) in faces {
        let b = &face.bbox;
        let bbox = [b.x, b.y, b.x + b.width, b.y + b.height].map(|v| v / scale);
        let rect = upper_torso_rect(frame.cols(), frame.rows(), &bbox);
        let (ox, oy) = (rect.x as f32, rect.y as f32);
        let to_crop = |b: &[f32; 4]| [b[0] - ox, b[1] - oy, b[2] - ox, b[3] - oy];
        let own = to_crop(&bbox);
        let original = Mat::roi(&frame, rect).unwrap().try_clone().unwrap();
        let published =
            imgcodecs::imdecode(&Vector::from_slice(crop), imgcodecs::IMREAD_COLOR).unwrap();
        let label = format!("{name} face {} (crop {rect:?})", face.face.index);
        assert_eq!(
            published.size().unwrap(),
            original.size().unwrap(),
            "{label}: the crop is not where it should be"
        );
        if let Ok(dir) = std::env::var("LFR_TEST_CONTEXT_DIR") {
            // To look at: the crop before and as published.
            let stem = format!("{dir}/{}-{}", name.replace('/', "_"), face.face.index);
            imgcodecs::imwrite(format!("{stem}-frame.png"), &original, &Vector::new()).unwrap();
            imgcodecs::imwrite(format!("{stem}-published.png"), &published, &Vector::new())
                .unwrap();
        }

        // Exactly one face the detector finds at 0.05, and it is this face.
        let found: Vec<([f32; 4], f32)> = detector
            .detect(&published)
            .unwrap()
            .into_iter()
            .map(|d| (d.bbox, d.score))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{label}: faces found in the crop: {found:?}"
        );
        assert!(
            iou(&found[0].0, &own) > 0.4,
            "{label}: the face left {:?} is not the published one {own:?}",
            found[0].0
        );
        // The published face is as it was, but for JPEG noise.
        let kept = difference(&original, &published, &own);
        assert!(kept < 5.0, "{label}: the published face changed by {kept}");

        // Every other face of the crop's part of the frame, seen in the frame or in the crop
        // itself, is changed far beyond that.
        let in_crop = detector.detect(&original).unwrap();
        let others = in_frame
            .iter()
            .map(|d| (to_crop(&d.bbox), d.score))
            .chain(in_crop.iter().map(|d| (d.bbox, d.score)))
            .filter(|(b, score)| {
                *score >= REAL_FACE && !same_face(b, &own) && inside(b, &original) >= 0.25
            });
        for (other, score) in others {
            seen.others += 1;
            let changed = difference(&original, &published, &other);
            assert!(
                changed > 4.0 * kept.max(2.0),
                "{label}: the face at {other:?} (score {score}) changed by {changed}, the \
                 published one by {kept}"
            );
        }
        seen.faces += 1;
    }
    seen
}

/// The fraction of a box's area inside the image.
fn inside(b: &[f32; 4], image: &Mat) -> f32 {
    let (w, h) = (image.cols() as f32, image.rows() as f32);
    let iw = (b[2].min(w) - b[0].max(0.0)).max(0.0);
    let ih = (b[3].min(h) - b[1].max(0.0)).max(0.0);
    iw * ih / ((b[2] - b[0]) * (b[3] - b[1]))
}

fn group_photos() -> Vec<(String, Vec<u8>)> {
    (1..=6)
        .map(|i| {
            let name = format!("group/sample{i}.jpg");
            let bytes = std::fs::read(sample_photo(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

/// The stage's own functions, as the load test's baseline calls them.
#[test]
fn context_crops_of_group_photos_show_one_face_each_in_process() {
    let config = ModelsConfig::default();
    let store = config.store().unwrap();
    let finder = Mutex::new(config.face_finder(&store).unwrap());
    let input_side = config.detector_input[0].max(config.detector_input[1]);
    let mut detector = checking_detector(&config);
    let mut total = Seen::default();
    let (mut from_frame, mut on_recheck) = (0, 0);
    for (seq, (name, jpeg)) in group_photos().into_iter().enumerate() {
        let source = frame("cam-a", seq as u64, jpeg.clone(), 0, 0).source;
        let (found, scale) = lfr_detect::find(&finder, &jpeg, input_side).unwrap();
        for face in &found.faces {
            assert!(face.bystanders.verified, "{name}: {:?}", face.bystanders);
            from_frame += face.bystanders.from_frame;
            on_recheck += face.bystanders.on_recheck;
        }
        let faces: Vec<(DetectedFace, Vec<u8>)> = found
            .faces
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let face = lfr_detect::detected_face(&source, i, f, scale, Timestamp::now())?;
                let Context::Crop(crop) = &face.context else {
                    panic!("{name}: find makes the crop with the face");
                };
                let crop = crop.0.clone();
                Ok((face, crop))
            })
            .collect::<anyhow::Result<_>>()
            .unwrap();
        let seen = check(&mut detector, &jpeg, &faces, &name);
        eprintln!("{name}: {seen:?}");
        total.faces += seen.faces;
        total.others += seen.others;
    }
    eprintln!("{total:?}; blurred: {from_frame} seen in the frame, {on_recheck} on recheck");
    // The photos are crowded enough for the checks to mean something.
    assert!(total.faces >= 10, "{total:?}");
    assert!(total.others >= 10, "{total:?}");
    assert!(from_frame + on_recheck >= total.others, "{total:?}");
}

/// Ask detect for a face's context crop as the matcher does, as whoever `client` is.
async fn ask(
    client: &async_nats::Client,
    face: &DetectedFace,
) -> Result<ContextReply, async_nats::RequestError> {
    lfr_testkit::ask_context(client, &face.face, &face.context).await
}

/// The stage itself: a group photo on FRAMES, its faces read off FACES through embed's consumer,
/// their crops asked for by the matcher.
#[tokio::test]
async fn faces_published_for_a_group_photo_have_context_crops_with_one_face_each() {
    let nats = NatsServer::start().await;
    let mut cfg = lfr_detect::Config::default();
    cfg.common.nats = nats.nats_config(Identity::Detect);
    cfg.detect.http_addr = "127.0.0.1:0".parse().unwrap();
    let shutdown = Shutdown::new();
    // Gated capture: a live deployment covers the camera.
    let _covered = nats.cover(&["cam-a"]).await;
    let running = lfr_detect::start(cfg, shutdown.clone()).await.unwrap();
    let consumer: PullConsumer = nats
        .jetstream(Identity::Embed)
        .await
        .get_stream_no_info(streams::FACES)
        .await
        .unwrap()
        .get_consumer(streams::consumers::EMBED)
        .await
        .unwrap();
    let js = nats.jetstream(Identity::Ingest).await;
    let name = "group/sample5.jpg";
    let jpeg = std::fs::read(sample_photo(name)).unwrap();
    js.publish(
        subjects::frames("cam-a"),
        frame("cam-a", 0, jpeg.clone(), 0, 0).encode().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    // FACES holds a face for 5 s: take them as they come, until the stage has handled the frame
    // and every face it counted is here.
    let mut faces = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let mut batch = consumer
            .fetch()
            .max_messages(32)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            faces.push(DetectedFace::decode(&m.payload).unwrap());
            m.ack().await.unwrap();
        }
        let text = scrape(running.metrics_addr).await;
        let handled = metric(&text, "lfr_stage_messages_total", &[("outcome", "ok")]);
        let counted = metric(&text, "lfr_detect_faces_total", &[]);
        if handled == Some(1.0) && counted == Some(faces.len() as f64) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the frame was not handled, or not all its faces arrived ({} of {counted:?})",
            faces.len()
        );
    };
    assert!(faces.len() >= 3, "{} faces published:\n{text}", faces.len());
    // No crop was made for them yet: none of them has matched anything.
    assert_eq!(
        metric(
            &text,
            "lfr_detect_context_requests_total",
            &[("outcome", "made")]
        ),
        Some(0.0)
    );

    // The embedder may not ask (nor may anyone else but the matcher): the bus refuses.
    let embed = nats.client(Identity::Embed).await;
    let refused = tokio::time::timeout(Duration::from_secs(5), ask(&embed, &faces[0])).await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "the embedder got a context crop"
    );
    let matcher = nats.client(Identity::Match).await;
    let mut cropped = Vec::new();
    for face in faces {
        match ask(&matcher, &face).await.unwrap() {
            ContextReply::Crop(crop) => cropped.push((face, crop.0)),
            other => panic!("face {}: {other:?}", face.face.index),
        }
    }
    // A face detect never published (or no longer holds) has no crop.
    let mut unknown = cropped[0].0.clone();
    unknown.face.frame.seq += 1000;
    assert_eq!(ask(&matcher, &unknown).await.unwrap(), ContextReply::Gone);
    let text = scrape(running.metrics_addr).await;
    let requests = |outcome| {
        metric(
            &text,
            "lfr_detect_context_requests_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(requests("made"), Some(cropped.len() as f64));
    assert_eq!(requests("gone"), Some(1.0));

    let mut detector = checking_detector(&ModelsConfig::default());
    let seen = check(&mut detector, &jpeg, &cropped, name);
    assert!(seen.others >= 3, "{seen:?}");
    let blurred = |found_by| {
        metric(
            &text,
            "lfr_detect_context_faces_blurred_total",
            &[("found_by", found_by)],
        )
        .unwrap()
    };
    assert!(
        blurred("frame") + blurred("recheck") >= seen.others as f64,
        "{seen:?}: {} + {}",
        blurred("frame"),
        blurred("recheck")
    );
    assert_eq!(
        metric(&text, "lfr_detect_context_unverified_total", &[]),
        Some(0.0)
    );
    shutdown.trigger();
    running.done.await.unwrap();
}

/// What the blur costs per frame: the stage's `find` against the same steps without it (detection
/// at the live threshold, gate, alignment, crop encoded as it is). Timings only, nothing checked:
/// run it with optimised code (`--config 'profile.dev.package.lfr-vision.opt-level=3'`)
/// and `--run-ignored only --no-capture`.
#[test]
#[ignore]
fn cost_of_blurring_bystanders() {
    use lfr_vision::align::align;
    use lfr_vision::faces::{upper_torso, CONTEXT_QUALITY};
    use lfr_vision::image::encode_jpeg;
    use lfr_vision::quality::{eye_distance, sharpness, yaw_degrees};
    use opencv::imgproc;

    let config = ModelsConfig::default();
    let store = config.store().unwrap();
    let mut finder = config.face_finder(&store).unwrap();
    let input_side = config.detector_input[0].max(config.detector_input[1]);
    let mut frames: Vec<(String, Mat)> = group_photos()
        .into_iter()
        .map(|(name, jpeg)| (name, decode_jpeg(&jpeg, input_side).unwrap().0))
        .collect();
    let portrait =
        imgcodecs::imread(sample_photo("faces/obama.jpg"), imgcodecs::IMREAD_COLOR).unwrap();
    let mut one_face = Mat::default();
    imgproc::resize(
        &portrait,
        &mut one_face,
        opencv::core::Size::new(640, 480),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .unwrap();
    frames.push(("faces/obama.jpg at 640x480".into(), one_face));
    frames.push((
        "noise, no face".into(),
        lfr_testkit::media::test_frame(0, 1),
    ));
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    const RUNS: usize = 15;
    for (name, bgr) in &frames {
        let mut without = Vec::new();
        let mut with = Vec::new();
        let mut faces = 0;
        for _ in 0..RUNS {
            // Without: what `find` did before bystanders were blurred.
            let started = Instant::now();
            let gate = finder.gate.clone();
            for d in finder.detector.detect(bgr).unwrap() {
                if eye_distance(&d.landmarks) < gate.min_eye_distance_px
                    || yaw_degrees(&d.landmarks).abs() > gate.max_yaw_deg
                {
                    continue;
                }
                let chip = align(bgr, &d.landmarks, &finder.template, finder.chip_size).unwrap();
                let mut rgb = Mat::default();
                imgproc::cvt_color_def(&chip, &mut rgb, imgproc::COLOR_BGR2RGB).unwrap();
                if sharpness(&rgb).unwrap() < gate.min_sharpness {
                    continue;
                }
                encode_jpeg(&upper_torso(bgr, &d.bbox).unwrap(), CONTEXT_QUALITY).unwrap();
            }
            without.push(started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            faces = finder.find(bgr).unwrap().faces.len();
            with.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let (a, b) = (median(without), median(with));
        eprintln!(
            "{name} ({}x{}, {faces} faces): {a:.1} ms without, {b:.1} ms with: {:+.1} ms \
             ({:+.1} ms a face)",
            bgr.cols(),
            bgr.rows(),
            b - a,
            (b - a) / faces.max(1) as f64
        );
    }
}
