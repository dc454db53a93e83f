//! The detect stage over a real nats-server: malformed and mis-versioned messages are refused with
//! a reason and a counter, and the stage keeps taking good frames.

use lfr_common::Shutdown;
use lfr_schemas::wire::with_version;
use lfr_schemas::{streams, subjects, Frame, FrameRef, Message, Timestamp};
use lfr_testkit::{eventually, metric, scrape, NatsServer};
use std::time::Duration;

fn frame(seq: u64) -> Frame {
    Frame {
        source: FrameRef {
            camera: "cam-a".into(),
            epoch: Timestamp(7),
            seq,
            captured_at: Timestamp::now(),
        },
        width: 2,
        height: 2,
        jpeg: vec![0xFF, 0xD8, 0xFF, 0xD9].into(),
    }
}

#[tokio::test]
async fn bad_messages_are_refused_counted_and_the_stage_keeps_running() {
    let nats = NatsServer::start().await;
    let mut cfg = lfr_detect::Config::default();
    cfg.common.nats.url = nats.url();
    cfg.detect.http_addr = "127.0.0.1:0".parse().unwrap();
    let shutdown = Shutdown::new();
    let running = lfr_detect::start(cfg, shutdown.clone()).await.unwrap();

    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let subject = subjects::frames("cam-a");
    let publish = |bytes: Vec<u8>| {
        let js = js.clone();
        let subject = subject.clone();
        async move {
            js.publish(subject, bytes.into())
                .await
                .unwrap()
                .await
                .unwrap()
        }
    };
    publish(with_version(frame(0).encode(), 99)).await;
    publish(b"not even an lfr message".to_vec()).await;
    publish(frame(1).encode()[..10].to_vec()).await;
    publish(frame(2).encode()).await;

    let text = eventually(Duration::from_secs(10), || async {
        let text = scrape(running.metrics_addr).await;
        metric(&text, "lfr_stage_messages_total", &[("outcome", "ok")])
            .filter(|n| *n >= 1.0)
            .map(|_| text)
    })
    .await
    .expect("the good frame after the bad ones was handled");
    for reason in ["unsupported_version", "not_lfr", "malformed"] {
        assert_eq!(
            metric(&text, "lfr_stage_rejected_total", &[("reason", reason)]),
            Some(1.0),
            "{reason}"
        );
    }
    // Refused messages are terminated, not redelivered: the work queue is empty.
    let stream = js.get_stream(streams::FRAMES).await.unwrap();
    let emptied = eventually(Duration::from_secs(5), || {
        let mut stream = stream.clone();
        async move { (stream.info().await.unwrap().state.messages == 0).then_some(()) }
    })
    .await;
    assert!(emptied.is_some(), "refused messages left on FRAMES");
    let ready = reqwest::get(format!("http://{}/readyz", running.metrics_addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    shutdown.trigger();
    running.done.await.unwrap();
}
