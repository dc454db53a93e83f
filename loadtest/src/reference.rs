//! The reference comparator: the naive pipeline a user would write with the same models, run on
//! the same frames in the same invocation, so that lfr's throughput and CPU per frame are given as
//! ratios to it on this box.
//!
//! The reference is `loadtest/reference/naive.py` (OpenCV `VideoCapture` + onnxruntime, one
//! process per core, every face of every frame detected and embedded). It reads a video file: in
//! a replay (`--video`) the file given; otherwise the scene exactly as camera 0 shows it, written
//! once to an MJPG file. It runs before the pipeline starts, while nothing else runs, as fast as
//! it can; lfr's figure is the most frames per second a step sustained within the latency budget
//! with no pass missed.

use crate::cameras::frame_jpeg;
use crate::results::{Comparison, Reference, Report, ServiceUsage};
use crate::scene::Scene;
use crate::schedule::Plan;
use opencv::core::{Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, videoio};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to run the reference script.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `loadtest/reference/naive.py`.
    pub script: PathBuf,
    /// A Python with OpenCV, numpy and onnxruntime (`scripts/setup.sh` makes
    /// `~/.cache/lfr/reference-venv`).
    pub python: PathBuf,
    pub models_dir: PathBuf,
    /// Worker processes: one per core.
    pub processes: usize,
    /// `NAME=PHOTO` enrolments, so the reference compares every face as the matcher does.
    pub enrol: Vec<String>,
    pub detector_input: [u32; 2],
}

impl Settings {
    /// The defaults beside the repository and under `~/.cache/lfr`.
    pub fn default_for(detector_input: [u32; 2], enrol: Vec<String>) -> Settings {
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()));
        let lfr_home = std::env::var_os("LFR_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cache/lfr"));
        Settings {
            // Beside the load test's own sources: it runs from a checkout of the repository.
            script: Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/naive.py"),
            python: lfr_home.join("reference-venv/bin/python"),
            models_dir: lfr_home.join("models"),
            processes: std::thread::available_parallelism().map_or(1, |n| n.get()),
            enrol,
            detector_input,
        }
    }
}

/// Write camera 0's frames of `plan` to an MJPG video at the plan's frame rate.
pub fn write_video(scene: &Scene, plan: &Plan, path: &Path) -> anyhow::Result<()> {
    let fourcc = videoio::VideoWriter::fourcc('M', 'J', 'P', 'G')?;
    let size = Size::new(scene.width as i32, scene.height as i32);
    let mut writer = videoio::VideoWriter::new_def(path, fourcc, plan.fps, size)?;
    anyhow::ensure!(writer.is_opened()?, "cannot write video {}", path.display());
    for frame in 0..plan.frames {
        let jpeg = Vector::<u8>::from_slice(frame_jpeg(scene, plan, 0, frame));
        let image = imgcodecs::imdecode(&jpeg, imgcodecs::IMREAD_COLOR)?;
        writer.write(&image)?;
    }
    writer.release()?;
    Ok(())
}

/// Run the reference on `video` and read its report.
pub fn run(settings: &Settings, video: &Path, json: &Path) -> anyhow::Result<Reference> {
    anyhow::ensure!(
        settings.python.exists(),
        "{} not found: run scripts/setup.sh (it installs the reference pipeline's Python)",
        settings.python.display()
    );
    let [w, h] = settings.detector_input;
    let mut command = Command::new(&settings.python);
    command
        .arg(&settings.script)
        .arg(video)
        .arg("--processes")
        .arg(settings.processes.to_string())
        .arg("--models")
        .arg(&settings.models_dir)
        .arg("--input")
        .arg(format!("{w}x{h}"))
        .arg("--json")
        .arg(json);
    for e in &settings.enrol {
        command.arg("--enrol").arg(e);
    }
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "the reference pipeline failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(serde_json::from_slice(&std::fs::read(json)?)?)
}

/// lfr against the reference: the step within budget that sustained the most frames a second.
pub fn compare(report: &Report, reference: Reference) -> Comparison {
    // Each ramp's summary step (the most cameras with every smaller count within budget too: a
    // step that passed after one that failed is luck, not capacity), the one that carried most.
    let best = report
        .ramps
        .iter()
        .filter_map(|r| {
            r.steps
                .iter()
                .find(|s| s.within_budget && Some(s.cameras) == r.max_cameras)
        })
        .max_by(|a, b| a.sustained_fps.total_cmp(&b.sustained_fps));
    let per_frame = |usage: &[ServiceUsage], fps: f64| -> Vec<(String, f64)> {
        if fps <= 0.0 {
            return Vec::new();
        }
        // The load generator is not lfr: it stands in for the cameras.
        usage
            .iter()
            .filter(|u| u.service != "cameras")
            .map(|u| (u.service.clone(), 1000.0 * u.cpu_cores / fps))
            .collect()
    };
    let (fps, cpu_ms, stages, step) = match best {
        Some(s) => {
            let stages = per_frame(&s.usage, s.sustained_fps);
            let cpu: f64 = stages.iter().map(|(_, ms)| ms).sum();
            (s.sustained_fps, cpu, stages, Some((s.cameras, s.fps)))
        }
        None => (0.0, 0.0, Vec::new(), None),
    };
    Comparison {
        fps_ratio: ratio(fps, reference.frames_per_s),
        cpu_ratio: ratio(reference.cpu_ms_per_frame, cpu_ms),
        lfr_fps: fps,
        lfr_cpu_ms_per_frame: cpu_ms,
        lfr_stage_cpu_ms_per_frame: stages,
        step,
        reference,
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}
