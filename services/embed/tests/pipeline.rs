//! Detect and embed end to end over a real nats-server with the real models: a frame in, a
//! template out, and nothing left behind on FRAMES or FACES.

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use lfr_common::service::Running;
use lfr_common::Shutdown;
use lfr_schemas::{streams, subjects, Embedding, Message};
use lfr_testkit::{
    eventually, frame, metric, sample_photo, scrape, stream_messages, Identity, NatsServer,
};
use std::time::Duration;

/// Detect and embed on `nats`, as their own identities (embed taking batches of `max_batch`).
async fn start_stages(
    nats: &NatsServer,
    max_batch: usize,
    shutdown: &Shutdown,
) -> (Running, Running) {
    let mut detect = lfr_detect::Config::default();
    detect.common.nats = nats.nats_config(Identity::Detect);
    detect.detect.http_addr = "127.0.0.1:0".parse().unwrap();
    let mut embed = lfr_embed::Config::default();
    embed.common.nats = nats.nats_config(Identity::Embed);
    embed.embed.http_addr = "127.0.0.1:0".parse().unwrap();
    embed.embed.max_batch = max_batch;
    (
        lfr_detect::start(detect, shutdown.clone()).await.unwrap(),
        lfr_embed::start(embed, shutdown.clone()).await.unwrap(),
    )
}

#[tokio::test]
async fn a_frame_becomes_a_template_and_leaves_nothing_behind() {
    let nats = NatsServer::start().await;
    let shutdown = Shutdown::new();
    let _covered = nats.cover(&["gate-2", "gate-3"]).await;
    // Batches of 8 exercise batching across frames and cameras.
    let (detect, embed) = start_stages(&nats, 8, &shutdown).await;

    // The test is the camera (as ingest) and the matcher (through match's consumer).
    let js = nats.jetstream(Identity::Ingest).await;
    let photo = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    let sent = frame("gate-2", 41, photo, 0, 0);
    js.publish(subjects::frames("gate-2"), sent.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let consumer: PullConsumer = nats
        .jetstream(Identity::Match)
        .await
        .get_stream_no_info(streams::EMBEDDINGS)
        .await
        .unwrap()
        .get_consumer(streams::consumers::MATCH)
        .await
        .unwrap();
    // The match consumer is active/standby: it is pulled as a pinned client of its group.
    let mut pulled = consumer
        .stream()
        .group(streams::STANDBY_GROUP)
        .max_messages_per_batch(1)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(20), pulled.next())
        .await
        .expect("a template within 20 s")
        .expect("a template")
        .unwrap();
    assert_eq!(delivered.subject.as_str(), subjects::embeddings("gate-2"));
    let template = Embedding::decode(&delivered.payload).unwrap();
    delivered.ack().await.unwrap();

    assert_eq!(template.face.frame, sent.source);
    assert_eq!(template.model, "mobilefacenet");
    assert_eq!(template.vector.len(), 192);
    let norm: f32 = template.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    assert!(template.bbox.width > 50.0 && template.quality.score > 0.9);
    let probe = opencv::imgcodecs::imdecode(
        &opencv::core::Vector::from_slice(&template.probe_jpeg),
        opencv::imgcodecs::IMREAD_COLOR,
    )
    .unwrap();
    use opencv::prelude::MatTraitConst;
    assert_eq!((probe.cols(), probe.rows()), (112, 112));
    // The context crop is made only when the matcher asks the replica that found the face.
    let matcher = nats.client(Identity::Match).await;
    let reply = lfr_testkit::ask_context(&matcher, &template.face, &template.context).await;
    match reply.unwrap() {
        lfr_schemas::ContextReply::Crop(crop) => assert!(crop.len() > 1000),
        other => panic!("no crop: {other:?}"),
    }

    // A group photo on another camera: every face detect publishes becomes a template too.
    let group = std::fs::read(sample_photo("group/sample5.jpg")).unwrap();
    js.publish(
        subjects::frames("gate-3"),
        frame("gate-3", 0, group, 0, 0).encode().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let faces = eventually(Duration::from_secs(20), || async {
        let d = scrape(detect.metrics_addr).await;
        let e = scrape(embed.metrics_addr).await;
        let faces = metric(&d, "lfr_detect_faces_total", &[])?;
        let templates = metric(&e, "lfr_embed_templates_total", &[])?;
        (faces >= 3.0 && templates == faces).then_some(faces)
    })
    .await
    .expect("every face of the group photo embedded");
    // The same pull stream: it holds the pin (a new one would stand by until the pin expires).
    let mut cameras = 0;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(2), pulled.next()).await {
        assert_eq!(
            Embedding::decode(&m.payload).unwrap().face.frame.camera,
            "gate-3"
        );
        m.ack().await.unwrap();
        cameras += 1;
    }
    assert_eq!(cameras as f64, faces - 1.0);

    let js = nats.admin().await;
    let emptied = eventually(Duration::from_secs(5), || async {
        let left = stream_messages(&js, streams::FRAMES).await
            + stream_messages(&js, streams::FACES).await
            + stream_messages(&js, streams::EMBEDDINGS).await;
        (left == 0).then_some(())
    })
    .await;
    assert!(emptied.is_some(), "frame, face or template left on the bus");
    shutdown.trigger();
    detect.done.await.unwrap();
    embed.done.await.unwrap();
}

/// Gated capture's second line: a frame or a face of a camera that no live deployment covers is
/// acknowledged without being searched or embedded, and counted.
#[tokio::test]
async fn frames_and_faces_of_an_uncovered_camera_are_acknowledged_unread() {
    let nats = NatsServer::start().await;
    let shutdown = Shutdown::new();
    let _covered = nats.cover(&["gate-1"]).await;
    let models = lfr_vision::config::ModelsConfig::default();
    let (detect, embed) = start_stages(&nats, 1, &shutdown).await;
    let photo = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();

    // A frame of camera gate-9, which no deployment covers, as a misconfigured ingest would send.
    let ingest = nats.jetstream(Identity::Ingest).await;
    let stray = frame("gate-9", 0, photo.clone(), 0, 0);
    ingest
        .publish(subjects::frames("gate-9"), stray.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A face of gate-9 put on FACES directly, as a compromised detector could.
    let store = models.store().unwrap();
    let finder = std::sync::Mutex::new(models.face_finder(&store).unwrap());
    let (found, scale) = lfr_detect::find(&finder, &photo, 640).unwrap();
    let face = found.faces.into_iter().next().expect("a face in the photo");
    let face =
        lfr_detect::detected_face(&stray.source, 0, face, scale, stray.source.captured_at).unwrap();
    nats.jetstream(Identity::Detect)
        .await
        .publish(subjects::faces("gate-9"), face.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let refused = |text: &str, stage: &str| {
        metric(text, "lfr_unauthorised_refused_total", &[("stage", stage)]).unwrap_or(0.0)
    };
    let counted = eventually(Duration::from_secs(20), || async {
        let d = scrape(detect.metrics_addr).await;
        let e = scrape(embed.metrics_addr).await;
        (refused(&d, "detect") == 1.0 && refused(&e, "embed") == 1.0).then_some((d, e))
    })
    .await;
    let (d, e) = counted.expect("detect and embed each refused one message of gate-9");
    assert_eq!(
        metric(&d, "lfr_detect_faces_total", &[]),
        Some(0.0),
        "no face searched"
    );
    assert_eq!(
        metric(&e, "lfr_embed_templates_total", &[]),
        Some(0.0),
        "no template made"
    );
    let admin = nats.admin().await;
    for stream in [streams::FRAMES, streams::FACES, streams::EMBEDDINGS] {
        assert_eq!(
            stream_messages(&admin, stream).await,
            0,
            "{stream} holds something"
        );
    }
    shutdown.trigger();
    detect.done.await.unwrap();
    embed.done.await.unwrap();
}
