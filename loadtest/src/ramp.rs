//! Ramp mode: more cameras each step until a step misses its budget, then halve the gap between
//! the last step within budget and the first over it, to find the largest camera count that holds.

use crate::results::{Ramp, StepResult};
use crate::step::Bench;
use std::time::Duration;
use tokio::time::Instant;

/// Camera counts tried in turn (up to the run's maximum).
pub const LADDER: [usize; 14] = [1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64];

/// What to try at one frame rate.
pub enum Counts {
    /// Climb [`LADDER`] up to this many cameras, then search between the last good and first bad.
    Search { max: usize },
    /// Exactly these counts, in order, whatever the results.
    Fixed(Vec<usize>),
}

/// Run the ramp at `fps`. Stops early, keeping what it has, when the next step would not finish
/// by `deadline`.
pub async fn run(
    bench: &Bench<'_>,
    fps: f64,
    counts: &Counts,
    seconds: f64,
    deadline: Instant,
) -> anyhow::Result<Ramp> {
    let step_cost = Duration::from_secs_f64(seconds) + bench.ttl + Duration::from_secs(5);
    let mut steps: Vec<StepResult> = Vec::new();
    let fits = || Instant::now() + step_cost <= deadline;
    match counts {
        Counts::Fixed(list) => {
            for &n in list {
                if !fits() {
                    tracing::warn!(cameras = n, fps, "time limit reached; ramp stopped");
                    break;
                }
                steps.push(announce(bench.step(n, fps, seconds).await?));
            }
        }
        Counts::Search { max } => {
            let mut good = 0usize;
            let mut bad = None;
            for &n in LADDER.iter().filter(|n| **n <= *max) {
                if !fits() {
                    tracing::warn!(cameras = n, fps, "time limit reached; ramp stopped");
                    break;
                }
                let step = announce(bench.step(n, fps, seconds).await?);
                let ok = step.within_budget;
                steps.push(step);
                if ok {
                    good = n;
                } else {
                    bad = Some(n);
                    break;
                }
            }
            // Halve the gap between the last count that held and the first that did not.
            while let Some(b) = bad {
                if b - good <= 1 || !fits() {
                    break;
                }
                let n = (good + b) / 2;
                let step = announce(bench.step(n, fps, seconds).await?);
                if step.within_budget {
                    good = n;
                } else {
                    bad = Some(n);
                }
                steps.push(step);
            }
        }
    }
    steps.sort_by_key(|s| s.cameras);
    let max_cameras = max_within_budget(&steps);
    Ok(Ramp {
        fps,
        steps,
        max_cameras,
    })
}

/// The largest camera count within budget such that every smaller count tried was too.
pub fn max_within_budget(steps: &[StepResult]) -> Option<u32> {
    let mut sorted: Vec<&StepResult> = steps.iter().collect();
    sorted.sort_by_key(|s| s.cameras);
    sorted
        .iter()
        .take_while(|s| s.within_budget)
        .map(|s| s.cameras)
        .last()
}

fn announce(step: StepResult) -> StepResult {
    let decision = step.since_capture("match").unwrap_or_default();
    tracing::info!(
        cameras = step.cameras,
        fps = step.fps,
        sustained_fps = format!("{:.1}", step.sustained_fps),
        decision_p99_ms = (decision.p99 * 1000.0).round(),
        alerts = format!("{}/{}", step.alerts.raised, step.alerts.expected),
        within_budget = step.within_budget,
        verdict = %step.verdict,
        "step done"
    );
    step
}
