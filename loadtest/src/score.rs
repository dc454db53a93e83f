//! Scoring alerts against the passes that were shown: raised, missed, duplicated, unexpected.

use crate::deployment::camera;
use crate::observe::SeenAlert;
use crate::results::AlertTally;
use crate::scene::IDENTITIES;
use crate::schedule::Plan;
use lfr_schemas::Timestamp;
use std::time::Duration;

/// Which pass each alert belongs to (same camera, same person, captured during the pass), and
/// the tally. `start_wall` is the wall time of frame 0; `slack` widens each pass's window for the
/// track's last frames.
pub fn tally(plan: &Plan, alerts: &[SeenAlert], start_wall: Timestamp) -> AlertTally {
    let (per_pass, unexpected) = per_pass(plan, alerts, start_wall);
    for (p, _) in plan.passes.iter().zip(&per_pass).filter(|(_, n)| **n == 0) {
        tracing::warn!(
            camera = p.camera,
            identity = p.identity,
            variant = p.variant,
            first_frame = p.first_frame,
            "a watch-listed pass raised no alert"
        );
    }
    AlertTally {
        expected: plan.passes.len() as u64,
        raised: per_pass.iter().filter(|n| **n >= 1).count() as u64,
        missed: per_pass.iter().filter(|n| **n == 0).count() as u64,
        duplicate: per_pass.iter().map(|n| n.saturating_sub(1)).sum(),
        unexpected,
    }
}

/// How many alerts each pass of the plan raised, and how many alerts belong to no pass.
pub fn per_pass(plan: &Plan, alerts: &[SeenAlert], start_wall: Timestamp) -> (Vec<u64>, u64) {
    let frame_time = |frame: u64, c: usize| {
        Timestamp(start_wall.0 + crate::cameras::offset(plan, c, frame).as_nanos() as u64)
    };
    let mut per_pass = vec![0u64; plan.passes.len()];
    let mut unexpected = 0;
    for alert in alerts {
        let found = plan.passes.iter().position(|p| {
            let from = frame_time(p.first_frame, p.camera);
            let to = frame_time(p.first_frame + p.frames, p.camera);
            alert.camera == camera(p.camera)
                && alert.entry_ref == IDENTITIES[p.identity].reference
                && alert.captured_at.0 >= from.0
                && alert.captured_at.0 < to.0 + Duration::from_millis(1).as_nanos() as u64
        });
        match found {
            Some(i) => per_pass[i] += 1,
            None => unexpected += 1,
        }
    }
    (per_pass, unexpected)
}

/// Capture of the alert's frame to the alert on the bus, seconds, for alerts of some pass.
pub fn alert_latencies(alerts: &[SeenAlert]) -> Vec<f64> {
    alerts
        .iter()
        .map(|a| a.captured_at.until(a.stored_at).as_secs_f64())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{plan, PassShape};

    fn alert(plan: &Plan, pass: usize, frame_in_pass: u64, start: Timestamp) -> SeenAlert {
        let p = plan.passes[pass];
        let at = crate::cameras::offset(plan, p.camera, p.first_frame + frame_in_pass);
        SeenAlert {
            camera: camera(p.camera),
            captured_at: Timestamp(start.0 + at.as_nanos() as u64),
            stored_at: Timestamp(start.0 + at.as_nanos() as u64 + 300_000_000),
            entry_ref: IDENTITIES[p.identity].reference.into(),
        }
    }

    #[test]
    fn each_pass_is_raised_missed_or_duplicated_and_strays_are_unexpected() {
        let shape = PassShape {
            frames: 6,
            variants: [6, 3],
            realert_after: Duration::from_secs(3),
            track_gap: Duration::from_secs(2),
        };
        let plan = plan(3, 5.0, 30.0, shape);
        assert!(plan.passes.len() >= 4);
        let start = Timestamp(1_000_000_000_000);
        let mut alerts = vec![
            alert(&plan, 0, 1, start),
            alert(&plan, 1, 0, start),
            alert(&plan, 1, 5, start),
        ];
        // Right person, wrong camera: belongs to no pass.
        let mut stray = alert(&plan, 2, 2, start);
        stray.camera = camera((plan.passes[2].camera + 1) % 3);
        alerts.push(stray);
        let t = tally(&plan, &alerts, start);
        assert_eq!(t.expected, plan.passes.len() as u64);
        assert_eq!(t.raised, 2);
        assert_eq!(t.missed, plan.passes.len() as u64 - 2);
        assert_eq!(t.duplicate, 1);
        assert_eq!(t.unexpected, 1);
        let l = alert_latencies(&alerts);
        assert!((l[0] - 0.3).abs() < 1e-6);
    }
}
