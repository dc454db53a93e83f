//! Shared set-up for ingest's integration tests: synthetic recordings and image folders, an ingest
//! configuration pointed at a test server, and a consumer standing in for the detector.

#![allow(dead_code)]

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use lfr_ingest::config::{CameraConfig, Config};
use lfr_schemas::{streams, Frame, Message};
pub use lfr_testkit::media::*;
pub use lfr_testkit::stream_messages;
use lfr_testkit::{Identity, NatsServer};
use std::time::Duration;

pub fn camera(id: &str, source: &str, fps: f64) -> CameraConfig {
    CameraConfig {
        id: id.into(),
        source: source.into(),
        fps,
        resize: None,
        realtime: false,
        repeat: false,
    }
}

pub fn config(nats: &NatsServer, cameras: Vec<CameraConfig>) -> Config {
    let mut c = Config::default();
    c.common.nats = nats.nats_config(Identity::Ingest);
    c.ingest.http_addr = "127.0.0.1:0".parse().unwrap();
    c.ingest.cameras = cameras;
    c.ingest.initial_backoff = Duration::from_millis(200);
    c.ingest.max_backoff = Duration::from_secs(1);
    c
}

/// A connection as the detector, the only identity that may read frames.
pub async fn jetstream(nats: &NatsServer) -> jetstream::Context {
    nats.jetstream(Identity::Detect).await
}

/// The detector's consumer on FRAMES, the test standing in for the detector.
pub async fn frames_consumer(
    js: &jetstream::Context,
) -> jetstream::consumer::Consumer<pull::Config> {
    js.get_stream_no_info(streams::FRAMES)
        .await
        .unwrap()
        .get_consumer(streams::consumers::DETECT)
        .await
        .unwrap()
}

/// Take up to `n` frames within `timeout`, acknowledging each.
pub async fn take_frames(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    n: usize,
    timeout: Duration,
) -> Vec<Frame> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < n && tokio::time::Instant::now() < deadline {
        let batch = consumer
            .fetch()
            .max_messages(n - out.len())
            .expires(Duration::from_millis(500))
            .messages()
            .await;
        let Ok(mut batch) = batch else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while let Some(Ok(m)) = batch.next().await {
            // Confirmed acknowledgement: the server has removed it from the work queue on return.
            m.double_ack().await.unwrap();
            out.push(Frame::decode(&m.payload).expect("a valid frame"));
        }
    }
    out
}
