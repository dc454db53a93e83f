//! `lfr eval` on real photos: the registry packages' portraits always, and the labelled LFW half in
//! ../shared/faces when it is present (skipped with a message when it is not).

use std::path::{Path, PathBuf};
use std::process::Command;

fn eval(photos: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("eval")
        .arg("--photos")
        .arg(photos)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "lfr eval failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Rank-1 identification rate"), "{md}");
    let svg = std::fs::read_to_string(out.join("det.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("False positive identification rate"));
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn eval_on_registry_photos_reports_figures_and_a_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("people");
    for (person, files) in [
        ("obama", vec!["obama.jpg", "obama2.jpg", "obama3.jpg"]),
        ("biden", vec!["biden.jpg"]),
    ] {
        std::fs::create_dir_all(photos.join(person)).unwrap();
        for f in files {
            std::fs::copy(
                lfr_testkit::sample_photo(&format!("faces/{f}")),
                photos.join(person).join(f),
            )
            .unwrap();
        }
    }
    let report = eval(&photos, &tmp.path().join("out"), &[]);
    assert_eq!(report["gallery_size"], 1);
    assert_eq!(report["mated_searches"], 2);
    assert_eq!(report["nonmated_searches"], 1);
    assert_eq!(report["rank1_rate"], 1.0);
    // Obama's photos match each other far above anything Biden scores against them.
    let point = &report["identification"][0];
    assert_eq!(point["tpir"], 1.0, "{report}");
}

fn shared_faces() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/faces/lfw-dev");
    dir.is_dir().then_some(dir)
}

#[test]
fn eval_on_the_labelled_lfw_half_when_present() {
    let Some(photos) = shared_faces() else {
        eprintln!("skipped: ../shared/faces/lfw-dev is not present on this machine");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let report = eval(
        &photos,
        tmp.path(),
        &["--max-enrolled", "150", "--max-nonmated", "400"],
    );
    eprintln!("{report:#}");
    assert_eq!(
        report["gallery_size"].as_u64().map(|n| n >= 145),
        Some(true)
    );
    assert!(report["rank1_rate"].as_f64().unwrap() > 0.95);
    let at_1e2 = &report["identification"][0];
    assert!((at_1e2["target_fpir"].as_f64().unwrap() - 0.01).abs() < 1e-9);
    let tpir = at_1e2["tpir"].as_f64().unwrap();
    assert!(tpir > 0.85, "{at_1e2}");
    // With its bootstrap interval, which holds it.
    let [lo, hi] = [0, 1].map(|i| at_1e2["tpir_ci95"][i].as_f64().unwrap());
    assert!(lo <= tpir && tpir <= hi && hi - lo < 0.2, "{at_1e2}");
}
