//! Micro-benchmarks of ingest's two costs per frame:
//! - `encode/640x480`: JPEG encoding of one 640x480 frame (a real photo when the setup's samples are
//!   present, else a synthetic scene), the CPU work ingest does per frame;
//! - `bus/publish_ack`: publishing one ~50 KB frame to FRAMES on a real local nats-server and
//!   waiting for JetStream's acknowledgement (bus publish latency).
//!
//! Run: `cargo bench -p lfr-ingest --bench ingest`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lfr_common::bus::Bus;
use lfr_common::config::Common;
use lfr_ingest::encode::encode;
use lfr_schemas::{streams, subjects, Frame, FrameRef, Timestamp};
use opencv::core::{Mat, Size};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

fn scene() -> Mat {
    let photo = std::env::var("HOME")
        .map(|h| format!("{h}/.cache/lfr/samples/faces/obama.jpg"))
        .ok()
        .and_then(|p| imgcodecs::imread(&p, imgcodecs::IMREAD_COLOR).ok())
        .filter(|m| !m.empty());
    let source = photo.unwrap_or_else(|| lfr_testkit::media::test_frame(0, 1));
    let mut out = Mat::default();
    imgproc::resize(
        &source,
        &mut out,
        Size::new(640, 480),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .unwrap();
    out
}

fn bench_encode(c: &mut Criterion) {
    let image = scene();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("640x480", |b| b.iter(|| encode(&image, None, 85).unwrap()));
    group.finish();
}

fn bench_publish(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (nats, bus) = rt.block_on(async {
        let nats = lfr_testkit::NatsServer::start().await;
        let common = Common {
            nats: nats.nats_config(lfr_testkit::Identity::Ingest),
            ..Default::default()
        };
        let bus = Bus::connect(&common, "ingest", &prometheus::Registry::new())
            .await
            .unwrap();
        (nats, bus)
    });
    let jpeg = encode(&scene(), None, 85).unwrap().jpeg;
    let frame = Frame {
        source: FrameRef {
            camera: "bench".into(),
            epoch: Timestamp::now(),
            seq: 0,
            captured_at: Timestamp::now(),
        },
        width: 640,
        height: 480,
        jpeg: jpeg.into(),
    };
    let mut group = c.benchmark_group("bus");
    group.bench_function("publish_ack", |b| {
        b.to_async(&rt).iter(|| async {
            bus.publish_transient(streams::FRAMES, subjects::frames("bench"), &frame)
                .await
                .unwrap()
                .acknowledged()
                .await
                .unwrap()
        })
    });
    group.finish();
    drop(nats);
}

criterion_group!(benches, bench_encode, bench_publish);
criterion_main!(benches);
