//! Golden tests on real photos (from registry packages, fetched by scripts/setup.sh) with the real
//! models: faces found where they are, landmarks where a face has them, and templates that put the
//! same person together and different people apart.

use lfr_vision::detector::{Detection, Detector};
use lfr_vision::embedder::{cosine, Embedder};
use lfr_vision::faces::{FaceFinder, QualityGate};
use lfr_vision::manifest::Role;
use lfr_vision::runtime::ModelStore;
use opencv::core::Mat;
use opencv::imgcodecs;
use opencv::prelude::*;
use std::path::PathBuf;

fn samples() -> PathBuf {
    let dir = PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/lfr/samples");
    assert!(
        dir.join("faces/obama.jpg").exists(),
        "sample photos missing: run scripts/setup.sh"
    );
    dir
}

fn store() -> ModelStore {
    ModelStore::open(&ModelStore::default_dir(), None).expect("models: run scripts/setup.sh")
}

fn photo(path: PathBuf) -> Mat {
    let m = imgcodecs::imread(&path, imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!m.empty(), "cannot read {path:?}");
    m
}

fn detector(store: &ModelStore) -> Detector {
    let artefact = store.model("retinaface-mnet025", Role::Detector).unwrap();
    Detector::load(store, artefact, [1280, 1280], 1).unwrap()
}

fn finder(store: &ModelStore, embedder: &str) -> (FaceFinder, Embedder) {
    let artefact = store.model(embedder, Role::Embedder).unwrap();
    let embedder = Embedder::load(store, artefact, 1).unwrap();
    let finder = FaceFinder {
        detector: detector(store),
        template: embedder.spec.template,
        chip_size: embedder.spec.template_size,
        gate: QualityGate::default(),
    };
    (finder, embedder)
}

/// A face's geometry is plausible: inside the image, landmarks inside the box, eyes above the nose
/// above the mouth, left features left of right ones.
fn assert_sane(d: &Detection, image: &Mat, what: &str) {
    let (w, h) = (image.cols() as f32, image.rows() as f32);
    let [x1, y1, x2, y2] = d.bbox;
    assert!(
        x2 - x1 >= 10.0 && y2 - y1 >= 10.0,
        "{what}: tiny box {:?}",
        d.bbox
    );
    assert!(
        x1 > -0.1 * w && y1 > -0.1 * h && x2 < 1.1 * w && y2 < 1.1 * h,
        "{what}: box off image {:?}",
        d.bbox
    );
    let [le, re, nose, lm, rm] = d.landmarks;
    for p in d.landmarks {
        let margin = 0.15 * (x2 - x1);
        assert!(
            p[0] > x1 - margin && p[0] < x2 + margin && p[1] > y1 - margin && p[1] < y2 + margin,
            "{what}: landmark outside box"
        );
    }
    assert!(le[0] < re[0] && lm[0] < rm[0], "{what}: left/right swapped");
    // Heads tilt: compare the eye line and the mouth line through their midpoints.
    let eyes_y = (le[1] + re[1]) / 2.0;
    let mouth_y = (lm[1] + rm[1]) / 2.0;
    assert!(
        eyes_y < nose[1] && nose[1] < mouth_y,
        "{what}: eyes-nose-mouth order {:?}",
        d.landmarks
    );
}

#[test]
fn every_portrait_has_its_one_face() {
    let store = store();
    let mut det = detector(&store);
    for name in ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"] {
        let image = photo(samples().join("faces").join(name));
        let found = det.detect(&image).unwrap();
        assert_eq!(found.len(), 1, "{name}: {} faces", found.len());
        assert!(found[0].score > 0.95, "{name}: score {}", found[0].score);
        assert_sane(&found[0], &image, name);
    }
}

#[test]
fn every_face_in_the_group_photos_is_found() {
    let store = store();
    let mut det = detector(&store);
    let mut total = 0;
    for i in 1..=6 {
        let name = format!("sample{i}.jpg");
        let image = photo(samples().join("group").join(&name));
        let found = det.detect(&image).unwrap();
        assert!(!found.is_empty(), "{name}: no face");
        for d in &found {
            assert_sane(d, &image, &name);
        }
        eprintln!("{name}: {} faces", found.len());
        total += found.len();
    }
    // The six demo photos hold 22 faces.
    assert!(
        (21..=23).contains(&total),
        "{total} faces in the group photos, expected 22"
    );
}

fn templates(embedder_name: &str) -> Vec<(String, Vec<f32>)> {
    let store = store();
    let (mut finder, mut embedder) = finder(&store, embedder_name);
    ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]
        .iter()
        .map(|name| {
            let found = finder
                .find(&photo(samples().join("faces").join(name)))
                .unwrap();
            assert_eq!(
                found.faces.len(),
                1,
                "{name}: rejected {:?}",
                found.rejected
            );
            let t = embedder.embed(&[found.faces[0].chip_rgb.clone()]).unwrap();
            (name.to_string(), t[0].clone())
        })
        .collect()
}

#[test]
fn mobilefacenet_puts_obama_together_and_biden_apart() {
    let t = templates("mobilefacenet");
    let threshold = store()
        .model("mobilefacenet", Role::Embedder)
        .unwrap()
        .embedder
        .clone()
        .unwrap()
        .threshold;
    for (name, v) in &t[1..3] {
        let s = cosine(&t[0].1, v);
        eprintln!("obama vs {name}: {s:.3}");
        assert!(s >= threshold, "obama vs {name}: {s} below {threshold}");
    }
    for (name, v) in &t[..3] {
        let s = cosine(v, &t[3].1);
        eprintln!("{name} vs biden: {s:.3}");
        assert!(
            s < threshold,
            "{name} vs biden: {s} at or above {threshold}"
        );
    }
}

#[test]
fn dlib_resnet_puts_obama_together_and_biden_apart() {
    let t = templates("dlib-resnet-v1");
    let same: Vec<f32> = t[1..3].iter().map(|(_, v)| cosine(&t[0].1, v)).collect();
    let different: Vec<f32> = t[..3].iter().map(|(_, v)| cosine(v, &t[3].1)).collect();
    eprintln!("dlib same {same:?} different {different:?}");
    let worst_same = same.iter().cloned().fold(f32::MAX, f32::min);
    let best_different = different.iter().cloned().fold(f32::MIN, f32::max);
    assert!(
        worst_same > best_different + 0.05,
        "same {same:?} vs different {different:?}"
    );
}

#[test]
fn templates_are_unit_vectors_of_the_declared_dimension() {
    for (name, dim) in [("mobilefacenet", 192), ("dlib-resnet-v1", 128)] {
        for (_, v) in templates(name) {
            assert_eq!(v.len(), dim);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{name}: norm {norm}");
        }
    }
}
