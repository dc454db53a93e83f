//! # The load-test report: one run, three audiences
//!
//! A run of the load test ends with a directory of files, each written for a different reader:
//!
//! - `report.md` ([`markdown`]) is for people: the police operations lead who asks "how many
//!   cameras can this machine watch?" and the platform engineer who asks "which service runs out
//!   first?". It opens with the answer (the largest camera count within budget, per frame rate)
//!   and goes on to the evidence: every step of every ramp, the latency of each stage, the CPU and
//!   memory of each service, and the in-process baseline the bus overhead is measured against.
//! - `latency.svg`, `throughput.svg`, `stages.svg`, `usage.svg` ([`svg`]) are the same figures as
//!   plots, embedded in `report.md`. They are written by hand, with no fonts or scripts, so they
//!   render the same on GitHub, in a browser or in a ticket.
//! - `results.json` is for machines: the [`Report`] exactly as measured (seconds, bytes), to
//!   compare runs, draw other plots or fail a CI job. Nothing in it is rounded.
//!
//! Every figure in the report comes from [`Report`]; the writer measures nothing and never fails
//! on odd figures (a ramp with no steps, a stage never measured, NaN): it prints "—" or leaves a
//! point out instead.

pub mod markdown;
pub mod svg;

use crate::results::{Ramp, Report, StepResult};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The Markdown report's file name; the image links in it are relative to its directory.
const REPORT_MD: &str = "report.md";

/// Write report.md, results.json, latency.svg, throughput.svg, stages.svg, usage.svg into `dir`
/// (created if missing). Returns the path of report.md.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).context("cannot serialise the results")?;
    let files = [
        ("results.json", json + "\n"),
        ("latency.svg", svg::latency(report)),
        ("throughput.svg", svg::throughput(report)),
        ("stages.svg", svg::stages(report)),
        ("usage.svg", svg::usage(report)),
        // Last, so that a report.md on disk means its images are there too.
        (REPORT_MD, markdown::render(report)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir.join(REPORT_MD))
}

/// The step of `ramp` at its largest camera count within budget, if any was.
fn max_step(ramp: &Ramp) -> Option<&StepResult> {
    let cameras = ramp.max_cameras?;
    ramp.steps.iter().rev().find(|s| s.cameras == cameras)
}

/// The step the per-stage, per-service and plotted figures of `ramp` are taken at: the largest
/// within budget, since that is the load the machine is sized for; failing that the first step,
/// the lightest load, to show where the time goes even when nothing met the budget.
fn reference_step(ramp: &Ramp) -> Option<&StepResult> {
    max_step(ramp).or_else(|| ramp.steps.first())
}

/// A number for people: whole numbers without decimals (`5`), others with up to two (`7.5`);
/// "—" for NaN or infinity, which mean nothing was measured.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "—".to_string();
    }
    if x == 0.0 {
        // Not "-0".
        return "0".to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let text = format!("{x:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// "5 fps": how a ramp is named in tables, headings and legends.
fn ramp_name(ramp: &Ramp) -> String {
    format!("{} fps", num(ramp.fps))
}

/// "1 camera", "4 cameras".
fn cameras(n: u32) -> String {
    if n == 1 {
        "1 camera".to_string()
    } else {
        format!("{n} cameras")
    }
}

#[cfg(test)]
mod tests {
    //! The sample reports the tests of every file of the writer share.

    use super::*;
    use crate::results::{
        AlertTally, Baseline, Loss, Overhead, Quantiles, ServiceUsage, StageLatency,
    };

    /// A distribution of `count` samples with the given p99 (seconds); p50 and p95 below it.
    pub(super) fn q(p99: f64) -> Quantiles {
        Quantiles {
            count: 100,
            p50: p99 / 2.0,
            p95: p99 * 0.8,
            p99,
            max: p99 * 1.2,
        }
    }

    fn stage(name: &str, since: Quantiles, own: Option<Quantiles>) -> StageLatency {
        StageLatency {
            stage: name.to_string(),
            since_capture: since,
            own,
            source: "exact".to_string(),
        }
    }

    fn usage(service: &str, cpu_cores: f64) -> ServiceUsage {
        ServiceUsage {
            service: service.to_string(),
            cpu_cores,
            rss_mean_bytes: 100 << 20,
            rss_peak_bytes: 150 << 20,
        }
    }

    /// One step whose capture-to-decision p99 is `decision` seconds and capture-to-alert
    /// `decision + 0.07`; `match` has no `own` figures, so plots fall back to differences.
    pub(super) fn step(cameras: u32, fps: f64, decision: f64, within: bool) -> StepResult {
        let offered = f64::from(cameras) * fps;
        StepResult {
            cameras,
            fps,
            seconds: 60.0,
            offered_fps: offered,
            frames_published: (offered * 60.0) as u64,
            sustained_fps: if within { offered } else { offered * 0.8 },
            faces: u64::from(cameras) * 120,
            losses: vec![
                Loss {
                    stage: "camera".to_string(),
                    offered: 400,
                    lost: 0,
                },
                Loss {
                    stage: "detect".to_string(),
                    offered: 400,
                    lost: if within { 0 } else { 3 },
                },
            ],
            latency: vec![
                stage("detect", q(decision * 0.5), Some(q(decision * 0.5))),
                stage("embed", q(decision * 0.8), Some(q(decision * 0.3))),
                stage("match", q(decision), None),
                stage("alert", q(decision + 0.07), None),
            ],
            alerts: AlertTally {
                expected: 4,
                raised: if within { 4 } else { 3 },
                missed: if within { 0 } else { 1 },
                duplicate: 0,
                unexpected: 0,
            },
            usage: vec![
                usage("nats", 0.2),
                usage("detect", 1.5 * f64::from(cameras)),
                usage("embed", 0.8),
                usage("match", 0.1),
                usage("cameras", 0.3),
            ],
            within_budget: within,
            verdict: if within {
                String::new()
            } else {
                "p99 capture-to-decision over budget | 1 face lost".to_string()
            },
        }
    }

    /// Two ramps: 5 fps at 1, 2, 4 cameras (within budget up to 2), 10 fps at 1, 2 cameras
    /// (never within budget); a baseline and the overhead against it.
    pub(super) fn sample() -> Report {
        Report {
            started_at: "2025-01-02T03:04:05Z".to_string(),
            machine: "AMD EPYC 7763, 16 cores, 64 GiB".to_string(),
            system: "local".to_string(),
            budget_seconds: 0.5,
            step_seconds: 60.0,
            scene: "1280x720, 3 faces per frame, 20 watch-listed".to_string(),
            ramps: vec![
                Ramp {
                    fps: 5.0,
                    steps: vec![
                        step(1, 5.0, 0.2, true),
                        step(2, 5.0, 0.24, true),
                        step(4, 5.0, 0.9, false),
                    ],
                    max_cameras: Some(2),
                },
                Ramp {
                    fps: 10.0,
                    steps: vec![step(1, 10.0, 0.6, false), step(2, 10.0, 1.5, false)],
                    max_cameras: None,
                },
            ],
            baseline: Some(Baseline {
                frames: 600,
                faces: 1800,
                seconds: 42.0,
                fps: 14.3,
                frame_latency: Quantiles {
                    count: 600,
                    p50: 0.07,
                    p95: 0.08,
                    p99: 0.095,
                    max: 0.1,
                },
                cpu_seconds_per_frame: 0.071,
                rss_peak_bytes: 300 << 20,
                alerts: AlertTally {
                    expected: 4,
                    raised: 4,
                    ..AlertTally::default()
                },
            }),
            overhead: Some(Overhead {
                cpu_ratio: 3.24,
                latency_ratio: 1.8,
                cameras: 1,
                fps: 5.0,
            }),
            reference: None,
        }
    }

    /// A run that measured nothing at all.
    pub(super) fn empty() -> Report {
        Report {
            started_at: String::new(),
            machine: String::new(),
            system: String::new(),
            budget_seconds: 0.0,
            step_seconds: 0.0,
            scene: String::new(),
            ramps: Vec::new(),
            baseline: None,
            overhead: None,
            reference: None,
        }
    }

    #[test]
    fn the_reference_is_compared_with_the_summary_step_that_carried_most() {
        let mut report = sample();
        let reference = crate::results::Reference {
            video: "camera0.avi".to_string(),
            frames: 600,
            faces: 960,
            processes: 2,
            wall_s: 10.0,
            cpu_s: 20.0,
            frames_per_s: 5.0,
            cpu_ms_per_frame: 33.3,
        };
        let c = crate::reference::compare(&report, reference);
        // Within budget: 5 fps x 1 and x 2 cameras (10 fps sustained); 10 fps never.
        assert_eq!(c.step, Some((2, 5.0)));
        assert_eq!(c.lfr_fps, 10.0);
        assert!((c.fps_ratio - 2.0).abs() < 1e-9);
        // nats 0.2 + detect 3.0 + embed 0.8 + match 0.1 cores over 10 frames a second; the
        // load generator (cameras) is not lfr's.
        assert!((c.lfr_cpu_ms_per_frame - 410.0).abs() < 1e-6, "{c:?}");
        assert!((c.cpu_ratio - 33.3 / 410.0).abs() < 1e-9);
        report.reference = Some(c);
        let md = markdown::render(&report);
        assert!(md.contains("## Against the naive reference pipeline"));
        assert!(md.contains("**2.00x**"), "{md}");
        assert!(md.contains("the step of 2 cameras at 5 fps"));
        let none = markdown::render(&empty());
        assert!(none.contains("The reference pipeline was not run"));

        // A step within budget after one that was not is not the summary's: it is not compared.
        let mut lucky = sample();
        let ramp = &mut lucky.ramps[0];
        let mut third = ramp.steps.last().unwrap().clone();
        third.cameras += 1;
        third.sustained_fps *= 2.0;
        third.within_budget = true;
        ramp.steps.last_mut().unwrap().within_budget = false;
        ramp.steps.push(third);
        ramp.max_cameras = crate::ramp::max_within_budget(&ramp.steps);
        let summary = ramp.max_cameras;
        let reference = report.reference.as_ref().unwrap().reference.clone();
        let c = crate::reference::compare(&lucky, reference);
        assert_eq!(c.step.map(|(n, _)| n), summary, "{c:?}");
    }

    #[test]
    fn reference_step_is_the_largest_within_budget_or_the_first() {
        let report = sample();
        assert_eq!(reference_step(&report.ramps[0]).map(|s| s.cameras), Some(2));
        assert_eq!(reference_step(&report.ramps[1]).map(|s| s.cameras), Some(1));
        let none = Ramp {
            fps: 5.0,
            steps: Vec::new(),
            max_cameras: Some(3),
        };
        assert!(reference_step(&none).is_none());
    }

    #[test]
    fn numbers_drop_needless_decimals() {
        assert_eq!(num(5.0), "5");
        assert_eq!(num(7.5), "7.5");
        assert_eq!(num(0.333), "0.33");
        assert_eq!(num(f64::NAN), "—");
        assert_eq!(num(f64::INFINITY), "—");
    }

    #[test]
    fn write_creates_every_file() {
        let dir = std::env::temp_dir().join(format!("lfr-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = write(&sample(), &dir.join("nested")).expect("report written");
        assert_eq!(path, dir.join("nested").join("report.md"));
        for name in [
            "report.md",
            "results.json",
            "latency.svg",
            "throughput.svg",
            "stages.svg",
            "usage.svg",
        ] {
            let file = dir.join("nested").join(name);
            let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            assert!(len > 0, "{} missing or empty", file.display());
        }
        let json = std::fs::read_to_string(dir.join("nested").join("results.json")).unwrap();
        let back: Report = serde_json::from_str(&json).expect("results.json reads back");
        assert_eq!(back.ramps.len(), 2);
        assert_eq!(back.ramps[0].max_cameras, Some(2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_handles_an_empty_report() {
        let dir = std::env::temp_dir().join(format!("lfr-report-empty-{}", std::process::id()));
        let path = write(&empty(), &dir).expect("report written");
        assert!(path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
