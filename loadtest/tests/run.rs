//! The load test end to end on this box: real nats-server, the real detect, embed and match
//! binaries, real models on composited real photos. One short step, then the report is checked
//! for what the issue asks of it; and the safety limits are checked to refuse before anything
//! starts.

use lfr_loadtest::results::Report;
use std::process::Command;
use std::time::{Duration, Instant};

fn loadtest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lfr-loadtest"))
}

#[test]
fn one_camera_step_meets_the_budget_and_reports_every_figure() {
    let out = tempfile::tempdir().unwrap();
    let port = lfr_testkit::free_port();
    let mut child = loadtest()
        .args([
            "--fps",
            "5",
            "--cameras",
            "1",
            "--step-seconds",
            "8",
            "--max-minutes",
            "4",
            "--reference",
            "--reference-seconds",
            "5",
        ])
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--out")
        .arg(out.path())
        .spawn()
        .unwrap();

    // While it runs, its figures are served for Prometheus.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let mut live = String::new();
    while started.elapsed() < Duration::from_secs(120) && child.try_wait().unwrap().is_none() {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Ok(text) = rt.block_on(lfr_loadtest::scrape::get(addr, "/metrics")) {
            if text.contains("lfr_loadtest_frames_published_total") {
                live = text;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "lfr-loadtest failed: {status}");
    assert!(
        live.contains("lfr_loadtest_cameras"),
        "live metrics: {live}"
    );

    let json = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    let report: Report = serde_json::from_str(&json).unwrap();
    let ramp = &report.ramps[0];
    let step = &ramp.steps[0];
    assert_eq!((step.cameras, step.fps), (1, 5.0));
    assert_eq!(step.frames_published, 40);
    assert!(step.faces >= 40, "faces {}", step.faces);
    for loss in &step.losses {
        assert_eq!(loss.lost, 0, "{loss:?}");
    }
    // Every watch-listed pass raised exactly one alert, and no stranger did.
    let a = step.alerts;
    assert!(a.expected >= 2, "{a:?}");
    assert_eq!(
        (a.raised, a.missed, a.duplicate, a.unexpected),
        (a.expected, 0, 0, 0)
    );
    for stage in ["detect", "embed", "match", "alert"] {
        let q = step
            .since_capture(stage)
            .unwrap_or_else(|| panic!("no {stage} latency"));
        assert!(
            q.p50 > 0.0 && q.p50 <= q.p99 && q.p99 < 1.0,
            "{stage}: {q:?}"
        );
    }
    assert!(step.within_budget, "{}", step.verdict);
    assert_eq!(ramp.max_cameras, Some(1));
    for service in ["nats", "detect", "embed", "match"] {
        let u = step.usage.iter().find(|u| u.service == service).unwrap();
        assert!(u.cpu_cores > 0.0 && u.rss_peak_bytes > 1_000_000, "{u:?}");
    }
    let baseline = report.baseline.unwrap();
    assert_eq!(baseline.alerts.missed, 0, "{:?}", baseline.alerts);
    assert!(baseline.cpu_seconds_per_frame > 0.0);
    let overhead = report.overhead.unwrap();
    assert!(
        overhead.cpu_ratio > 0.5 && overhead.latency_ratio > 0.1,
        "{overhead:?}"
    );

    // The naive reference read camera 0's first 5 s (25 frames) of the same scene.
    let c = report.reference.expect("the reference ran");
    assert_eq!(c.reference.frames, 25, "{c:?}");
    assert!(
        c.reference.faces >= 25 && c.reference.frames_per_s > 0.0,
        "{c:?}"
    );
    assert_eq!(c.step, Some((1, 5.0)));
    assert!(c.fps_ratio > 0.0 && c.lfr_cpu_ms_per_frame > 0.0, "{c:?}");

    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("| 5 |") || md.contains("|   5 |"), "{md}");
    assert!(
        md.contains("## Against the naive reference pipeline"),
        "{md}"
    );
    for plot in ["latency.svg", "throughput.svg", "stages.svg", "usage.svg"] {
        let svg = std::fs::read_to_string(out.path().join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{plot}"
        );
        assert!(md.contains(plot), "report does not show {plot}");
    }
}

/// Replay: a video file (a group photo held for 20 frames) is played as two cameras, and the
/// reference reads the same file. Nobody on the list is in it, so no alert is expected or raised.
#[test]
fn a_video_replays_as_cameras_and_the_reference_reads_the_same_file() {
    use opencv::prelude::*;
    use opencv::{core::Size, imgcodecs, videoio};
    let out = tempfile::tempdir().unwrap();
    let video = out.path().join("crowd.avi");
    let photo = imgcodecs::imread(
        lfr_testkit::sample_photo("group/sample1.jpg"),
        imgcodecs::IMREAD_COLOR,
    )
    .unwrap();
    let mut frame = opencv::core::Mat::default();
    opencv::imgproc::resize_def(&photo, &mut frame, Size::new(640, 480)).unwrap();
    let fourcc = videoio::VideoWriter::fourcc('M', 'J', 'P', 'G').unwrap();
    let mut writer =
        videoio::VideoWriter::new_def(&video, fourcc, 5.0, Size::new(640, 480)).unwrap();
    for _ in 0..20 {
        writer.write(&frame).unwrap();
    }
    writer.release().unwrap();

    let status = loadtest()
        .args([
            "--fps",
            "5",
            "--cameras",
            "2",
            "--step-seconds",
            "4",
            "--max-minutes",
            "3",
            "--no-baseline",
            "--reference",
        ])
        .arg("--video")
        .arg(&video)
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{}", lfr_testkit::free_port()))
        .arg("--out")
        .arg(out.path().join("report"))
        .status()
        .unwrap();
    assert!(status.success(), "lfr-loadtest failed: {status}");
    let json = std::fs::read_to_string(out.path().join("report/results.json")).unwrap();
    let report: Report = serde_json::from_str(&json).unwrap();
    assert!(
        report.scene.contains("replay of a 20-frame video"),
        "{}",
        report.scene
    );
    let step = &report.ramps[0].steps[0];
    assert_eq!(step.frames_published, 40);
    assert!(step.faces > 0, "no face found in the replay");
    let a = step.alerts;
    assert_eq!((a.expected, a.raised, a.unexpected), (0, 0, 0), "{a:?}");
    let c = report.reference.expect("the reference ran");
    assert_eq!(c.reference.video, video.display().to_string());
    assert_eq!(c.reference.frames, 20);
    assert!(c.reference.faces >= 40, "{c:?}");
}

#[test]
fn limits_and_foreign_targets_are_refused_before_anything_starts() {
    for args in [
        vec!["--max-cameras", "65"],
        vec!["--cameras", "1,100"],
        vec!["--step-seconds", "3600"],
        vec!["--max-minutes", "600"],
        vec!["--fps", "0"],
        vec!["--reference-seconds", "1"],
        vec!["--video", "/nonexistent/walk.avi"],
        vec!["--faces-per-second", "-1"],
        vec!["--full-every", "-1"],
        vec!["--scrape", "detect=127.0.0.1:9102"],
        vec![
            "--nats-url",
            "nats://10.1.2.3:4222",
            "--scrape",
            "detect=192.0.2.7:9102",
            "--scrape",
            "embed=10.1.2.3:9103",
            "--scrape",
            "match=10.1.2.3:9104",
        ],
        vec![
            "--nats-url",
            "nats://10.1.2.3:4222",
            "--scrape",
            "detect=10.1.2.3:9102",
        ],
    ] {
        let started = Instant::now();
        let out = loadtest().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} did work first"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Error") || err.contains("error"),
            "{args:?}: {err}"
        );
    }
}

/// The fault harness's short profile (`lfr-faults`): a three-node NATS cluster, the pipeline
/// under camera load, and each fault once. Every watch-listed pass made while the pipeline was
/// up is alerted exactly once, nothing doubles, every reviewable alert ends with one decision and
/// one outcome, every erasure a killed purge left is finished and recorded, and the audit chain
/// is intact.
#[test]
fn the_pipeline_survives_each_fault_of_the_short_profile() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_lfr-faults"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(out.path().join("faults.md")).unwrap_or_default();
    assert!(
        run.status.success(),
        "{report}\n{}",
        // Its log is on standard output, the final error on standard error.
        [&run.stdout, &run.stderr]
            .iter()
            .flat_map(|out| String::from_utf8_lossy(out)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>())
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.starts_with("Error"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let outcome: lfr_loadtest::faults::Outcome =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("faults.json")).unwrap())
            .unwrap();
    assert_eq!(
        outcome.results.len(),
        lfr_loadtest::faults::Fault::ALL.len()
    );
    for r in &outcome.results {
        // Each segment must have judged something, or it proves nothing (the longest outages,
        // the whole bus or a full disk, leave the fewest passes outside them).
        assert!(r.passes_up >= 2, "{r:?}");
        assert_eq!(
            (r.alerted_up, r.duplicates, r.unexpected),
            (r.passes_up, 0, 0)
        );
    }
    // The console's records and the erasures were checked, not just counted.
    let dispatch = outcome
        .results
        .iter()
        .find(|r| r.fault == lfr_loadtest::faults::Fault::Dispatch)
        .unwrap();
    assert!(dispatch.records.reviewable > 0, "{dispatch:?}");
    let purge = outcome
        .results
        .iter()
        .find(|r| r.fault == lfr_loadtest::faults::Fault::Purge)
        .unwrap();
    let erasures = purge.erasures.as_ref().expect("the purge fault's erasures");
    assert!(erasures.due > erasures.before_kill, "{erasures:?}");
    assert_eq!((erasures.left, erasures.unrecorded), (0, 0), "{erasures:?}");
    // As root (CI) the disk-full fault runs; elsewhere it may be skipped, and says so.
    let disk = outcome
        .results
        .iter()
        .find(|r| r.fault == lfr_loadtest::faults::Fault::DiskFull)
        .unwrap();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        assert!(
            disk.note
                .as_ref()
                .is_some_and(|n| !n.starts_with("SKIPPED")),
            "{disk:?}"
        );
    }
    assert!(outcome.audit_intact && outcome.audit_events > 0);
    println!("{report}");
}
