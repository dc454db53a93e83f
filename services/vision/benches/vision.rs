//! Vision benchmarks on this machine's CPU, one ONNX Runtime thread per model:
//! - `detect/640x480`, `detect/320x240`: RetinaFace on a real group photo scaled to that input;
//! - `embed/mobilefacenet/batch1`, `.../batch8`: templates per call (divide batch 8 by 8 for ms/face);
//! - `embed/dlib-resnet-v1/batch1`: the second embedder;
//! - `detect+embed/one-face-640x480`: the whole per-frame path of the detect and embed services for a
//!   frame with one face (decode excluded): the target is under 40 ms.
//!
//! Run: `cargo bench -p lfr-vision --bench vision` (needs `scripts/setup.sh`'s models and photos).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lfr_vision::config::ModelsConfig;
use lfr_vision::runtime::ModelStore;
use opencv::core::{Mat, Size};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

fn photo(name: &str, size: Option<(i32, i32)>) -> Mat {
    let path = format!(
        "{}/.cache/lfr/samples/{name}",
        std::env::var("HOME").unwrap()
    );
    let image = imgcodecs::imread(&path, imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!image.empty(), "{path} missing: run scripts/setup.sh");
    match size {
        None => image,
        Some((w, h)) => {
            let mut out = Mat::default();
            imgproc::resize(
                &image,
                &mut out,
                Size::new(w, h),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )
            .unwrap();
            out
        }
    }
}

fn models(embedder: &str, input: [u32; 2]) -> (ModelsConfig, ModelStore) {
    let config = ModelsConfig {
        embedder: embedder.into(),
        detector_input: input,
        threads: 1,
        ..Default::default()
    };
    let store = config.store().unwrap();
    (config, store)
}

fn bench_detect(c: &mut Criterion) {
    let mut group = c.benchmark_group("detect");
    for (w, h) in [(640, 480), (320, 240)] {
        let (config, store) = models("mobilefacenet", [w, h]);
        let mut finder = config.face_finder(&store).unwrap();
        let frame = photo("group/sample1.jpg", Some((w as i32, h as i32)));
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{w}x{h}"), |b| {
            b.iter(|| finder.detector.detect(&frame).unwrap())
        });
    }
    group.finish();
}

fn bench_embed(c: &mut Criterion) {
    let mut group = c.benchmark_group("embed");
    for (name, batches) in [("mobilefacenet", vec![1, 8]), ("dlib-resnet-v1", vec![1])] {
        let (config, store) = models(name, [640, 480]);
        let mut finder = config.face_finder(&store).unwrap();
        let mut embedder = config.embedder(&store).unwrap();
        let chip = finder
            .find(&photo("faces/obama.jpg", None))
            .unwrap()
            .faces
            .remove(0)
            .chip_rgb;
        for batch in batches {
            let chips = vec![chip.clone(); batch];
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(format!("{name}/batch{batch}"), |b| {
                b.iter(|| embedder.embed(&chips).unwrap())
            });
        }
    }
    group.finish();
}

fn bench_pipeline(c: &mut Criterion) {
    let (config, store) = models("mobilefacenet", [640, 480]);
    let mut finder = config.face_finder(&store).unwrap();
    let mut embedder = config.embedder(&store).unwrap();
    // One face in a 640x480 frame: a portrait scaled into the frame size.
    let frame = photo("faces/obama.jpg", Some((640, 480)));
    assert_eq!(finder.find(&frame).unwrap().faces.len(), 1);
    let mut group = c.benchmark_group("detect+embed");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one-face-640x480", |b| {
        b.iter(|| {
            let found = finder.find(&frame).unwrap();
            let chips: Vec<Mat> = found.faces.into_iter().map(|f| f.chip_rgb).collect();
            embedder.embed(&chips).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_detect, bench_embed, bench_pipeline);
criterion_main!(benches);
