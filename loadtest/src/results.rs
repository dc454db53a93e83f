//! What a load-test run measured: the figures the report, the JSON file and the live metrics are
//! made from. Latencies are seconds; rates are per second; memory is bytes.

use serde::{Deserialize, Serialize};

/// A latency distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Samples the figures are made from (0: nothing was measured, the figures mean nothing).
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Latency from capture of the frame to a point of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLatency {
    /// `detect` (faces published), `embed` (templates published), `match` (verdict on the face),
    /// `alert` (candidate alert stored).
    pub stage: String,
    /// Cumulative: capture to the end of this stage.
    pub since_capture: Quantiles,
    /// This stage alone: end of the previous stage to the end of this one (None where the two
    /// ends cannot be joined message by message).
    pub own: Option<Quantiles>,
    /// How the figures were taken (`exact` from message timestamps, or `histogram` from the
    /// service's Prometheus buckets).
    pub source: String,
}

/// Messages that entered a stage's input stream and were never handled (expired in the bus,
/// dropped, refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// `camera` (frames the simulated cameras could not publish in time), `detect`, `embed`, `match`.
    pub stage: String,
    pub offered: u64,
    pub lost: u64,
}

/// CPU and memory of one process over a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceUsage {
    /// `nats`, `detect`, `embed`, `match`, `cameras` (the load generator itself).
    pub service: String,
    /// Average CPU cores used over the step (1.0 = one core fully busy).
    pub cpu_cores: f64,
    pub rss_mean_bytes: u64,
    pub rss_peak_bytes: u64,
}

/// Watch-listed faces walked past the cameras, and what came of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertTally {
    /// Passes of a watch-listed person in front of a camera (each should raise one alert).
    pub expected: u64,
    /// Passes that raised exactly one alert.
    pub raised: u64,
    /// Passes that raised none: a watch-listed face lost.
    pub missed: u64,
    /// Extra alerts for a pass that had already raised one.
    pub duplicate: u64,
    /// Alerts that belong to no pass (a stranger matched): false alerts.
    pub unexpected: u64,
}

/// One step: N cameras at F frames per second for a fixed time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub cameras: u32,
    pub fps: f64,
    /// Length of the measured part of the step.
    pub seconds: f64,
    /// cameras x fps.
    pub offered_fps: f64,
    pub frames_published: u64,
    /// Frames the detect stage finished per second of the step.
    pub sustained_fps: f64,
    pub faces: u64,
    pub losses: Vec<Loss>,
    /// Per stage, in pipeline order.
    pub latency: Vec<StageLatency>,
    pub alerts: AlertTally,
    pub usage: Vec<ServiceUsage>,
    /// Every budget met: p99 capture-to-decision and capture-to-alert under the budget, and no
    /// watch-listed face lost.
    pub within_budget: bool,
    /// Why not, in words (empty when within budget).
    pub verdict: String,
}

impl StepResult {
    /// The latency of `stage` since capture, if measured.
    pub fn since_capture(&self, stage: &str) -> Option<Quantiles> {
        self.latency
            .iter()
            .find(|l| l.stage == stage)
            .map(|l| l.since_capture)
            .filter(|q| q.count > 0)
    }
}

/// The ramp at one frame rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ramp {
    pub fps: f64,
    pub steps: Vec<StepResult>,
    /// The largest camera count whose step was within budget (None: not even the first).
    pub max_cameras: Option<u32>,
}

/// The same frames through the same code in one process, without the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub frames: u64,
    pub faces: u64,
    pub seconds: f64,
    /// Frames per second, one frame after another.
    pub fps: f64,
    /// Per frame: decode, detect, embed every face, compare.
    pub frame_latency: Quantiles,
    /// CPU seconds per frame (the process's user + system time).
    pub cpu_seconds_per_frame: f64,
    pub rss_peak_bytes: u64,
    /// Passes that raised an alert in process, out of those shown: what the pipeline can at best
    /// achieve on these frames.
    pub alerts: AlertTally,
}

/// The cost of the bus and the separate services, against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// CPU seconds per frame, all services and NATS together, at the reference step, divided by
    /// the baseline's.
    pub cpu_ratio: f64,
    /// p50 capture-to-decision at the reference step divided by the baseline's p50 frame latency.
    pub latency_ratio: f64,
    /// The step the ratios were taken at (cameras, fps): the lightest load, so queueing does not
    /// count as overhead.
    pub cameras: u32,
    pub fps: f64,
}

/// Everything one run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// UTC, RFC 3339.
    pub started_at: String,
    /// The machine, in words (CPU model, cores, memory).
    pub machine: String,
    /// `local` (NATS and the services started by the load test) or `external`.
    pub system: String,
    pub budget_seconds: f64,
    pub step_seconds: f64,
    /// The scene: frame size, faces per frame, watch-listed identities, pass length.
    pub scene: String,
    pub ramps: Vec<Ramp>,
    pub baseline: Option<Baseline>,
    pub overhead: Option<Overhead>,
    /// lfr against the naive reference pipeline on the same frames (`--reference`).
    #[serde(default)]
    pub reference: Option<Comparison>,
}

/// What the naive reference pipeline (`loadtest/reference/naive.py`) reported for one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    #[serde(default)]
    pub video: String,
    pub frames: u64,
    pub faces: u64,
    pub processes: u32,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub frames_per_s: f64,
    pub cpu_ms_per_frame: f64,
}

/// lfr's best step within budget against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub reference: Reference,
    /// Frames a second sustained by the step within budget that sustained the most (0: none was
    /// within budget).
    pub lfr_fps: f64,
    /// CPU milliseconds per frame of nats-server and the services together at that step.
    pub lfr_cpu_ms_per_frame: f64,
    /// The same, per process.
    pub lfr_stage_cpu_ms_per_frame: Vec<(String, f64)>,
    /// That step's cameras and frame rate.
    pub step: Option<(u32, f64)>,
    /// `lfr_fps / reference.frames_per_s`: above 1, lfr carries more.
    pub fps_ratio: f64,
    /// `reference.cpu_ms_per_frame / lfr_cpu_ms_per_frame`: above 1, lfr spends less per frame.
    pub cpu_ratio: f64,
}
