//! When and where watch-listed people walk past: the ground truth a step is scored against.
//!
//! Passes are spread over the step at a fixed interval, round-robin over cameras and people. The
//! interval leaves every person out of sight for longer than the matcher's re-alert window
//! (`realert_after`), because the matcher rightly raises one alert per person per window across
//! all cameras: two passes of one person inside it would be one alert, and the test would count
//! a miss that is not one. It also leaves each camera empty of watch-listed people for longer
//! than the tracker's `track_gap`, so one person's track has ended before the next walks the same
//! path (the tracker joins faces by position only, and would otherwise count the second person as
//! the first one's track continuing).

use std::time::Duration;

/// One watch-listed person walking past one camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub camera: usize,
    pub identity: usize,
    /// Which of the identity's pre-drawn passes (photo x size).
    pub variant: usize,
    /// First frame of the camera's timeline showing the person.
    pub first_frame: u64,
    pub frames: u64,
}

impl Pass {
    pub fn covers(&self, frame: u64) -> bool {
        frame >= self.first_frame && frame < self.first_frame + self.frames
    }
}

/// What a step shows.
#[derive(Debug, Clone)]
pub struct Plan {
    pub cameras: usize,
    pub fps: f64,
    /// Frames each camera captures in the step.
    pub frames: u64,
    pub passes: Vec<Pass>,
}

/// Shape of the passes.
#[derive(Debug, Clone, Copy)]
pub struct PassShape {
    pub frames: u64,
    /// Variants available per identity.
    pub variants: [usize; 2],
    pub realert_after: Duration,
    /// The tracker's `track_gap`: how long a track outlives its last face.
    pub track_gap: Duration,
}

/// Seconds before the first pass and after the last, so no pass is cut by the step's edges.
const MARGIN_S: f64 = 1.0;
/// A camera changes its crowd this long before a pass, so the strangers' tracks are settled
/// when the person arrives.
pub const CROWD_LEAD_S: f64 = 1.0;
/// A camera without passes changes its crowd this often.
pub const CROWD_HOLD_S: f64 = 3.0;

pub fn plan(cameras: usize, fps: f64, seconds: f64, shape: PassShape) -> Plan {
    let frames = (seconds * fps).round() as u64;
    let pass_s = shape.frames as f64 / fps;
    let identities = shape.variants.len();
    // The same person comes back only after the re-alert window (plus the pass and a second's
    // slack); people take turns in between.
    let per_person = shape.realert_after.as_secs_f64() + pass_s + 1.0;
    // Passes that share a camera: the previous person's track must have ended before the crowd
    // changes, and the crowd changes a lead before the next person arrives.
    let per_camera = pass_s + shape.track_gap.as_secs_f64() + 0.5 + CROWD_LEAD_S;
    let interval = (per_person / identities as f64)
        .max(pass_s + 1.0)
        .max(per_camera / cameras.max(1) as f64);
    let mut passes = Vec::new();
    let mut k = 0usize;
    loop {
        let start = MARGIN_S + k as f64 * interval;
        if start + pass_s + MARGIN_S > seconds {
            break;
        }
        let identity = k % identities;
        passes.push(Pass {
            camera: k % cameras.max(1),
            identity,
            variant: (k / identities) % shape.variants[identity].max(1),
            first_frame: (start * fps).ceil() as u64,
            frames: shape.frames,
        });
        k += 1;
    }
    Plan {
        cameras,
        fps,
        frames,
        passes,
    }
}

/// [`plan`] for a step showing `scene`: nobody on the list walks past in a replay (`--video`),
/// so there any alert is unexpected.
pub fn plan_for(
    scene: &crate::scene::Scene,
    cameras: usize,
    fps: f64,
    seconds: f64,
    shape: PassShape,
) -> Plan {
    let mut plan = plan(cameras, fps, seconds, shape);
    if scene.replay {
        plan.passes.clear();
    }
    plan
}

impl Plan {
    /// The pass camera `camera` shows at `frame`, if any.
    pub fn pass_at(&self, camera: usize, frame: u64) -> Option<&Pass> {
        self.passes
            .iter()
            .find(|p| p.camera == camera && p.covers(frame))
    }

    /// The pass whose crowd camera `camera` holds at `frame`: the latest to start by a lead
    /// after `frame`, else the camera's first (None: the camera has no pass).
    pub fn crowd_of(&self, camera: usize, frame: u64) -> Option<&Pass> {
        let lead = (CROWD_LEAD_S * self.fps).round() as u64;
        let mine = || self.passes.iter().filter(move |p| p.camera == camera);
        mine()
            .rfind(|p| p.first_frame <= frame + lead)
            .or_else(|| mine().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(realert: u64) -> PassShape {
        PassShape {
            frames: 6,
            variants: [6, 3],
            realert_after: Duration::from_secs(realert),
            track_gap: Duration::from_secs(2),
        }
    }

    #[test]
    fn passes_fit_in_the_step_and_rotate_cameras_and_people() {
        let plan = plan(4, 5.0, 30.0, shape(3));
        assert_eq!(plan.frames, 150);
        assert!(plan.passes.len() >= 10, "{}", plan.passes.len());
        for (k, p) in plan.passes.iter().enumerate() {
            assert_eq!(p.camera, k % 4);
            assert_eq!(p.identity, k % 2);
            assert!(p.first_frame + p.frames <= plan.frames);
            assert!(p.variant < [6, 3][p.identity]);
        }
    }

    #[test]
    fn one_person_never_returns_within_the_realert_window() {
        let fps = 10.0;
        let plan = plan(2, fps, 60.0, shape(5));
        for a in &plan.passes {
            for b in &plan.passes {
                if a.identity == b.identity && b.first_frame > a.first_frame {
                    let gap = (b.first_frame - (a.first_frame + a.frames)) as f64 / fps;
                    assert!(gap > 5.0, "gap {gap}");
                }
            }
        }
    }

    #[test]
    fn a_camera_is_empty_for_longer_than_the_track_gap_between_passes() {
        let fps = 5.0;
        for cameras in [1, 2, 3] {
            let plan = plan(cameras, fps, 60.0, shape(3));
            for a in &plan.passes {
                for b in &plan.passes {
                    if a.camera == b.camera && b.first_frame > a.first_frame {
                        let gap = (b.first_frame - (a.first_frame + a.frames)) as f64 / fps;
                        // The crowd changes a lead before the next pass: by then the track is over.
                        assert!(gap - CROWD_LEAD_S > 2.0, "{cameras} cameras: gap {gap}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_camera_holds_the_crowd_of_its_pass_around_it() {
        let plan = plan(1, 5.0, 30.0, shape(3));
        let (a, b) = (plan.passes[0], plan.passes[1]);
        assert_eq!(plan.crowd_of(0, 0), Some(&a));
        assert_eq!(plan.crowd_of(0, a.first_frame + a.frames + 5), Some(&a));
        assert_eq!(plan.crowd_of(0, b.first_frame - 5), Some(&b));
        assert_eq!(plan.crowd_of(1, 3), None);
    }

    #[test]
    fn a_step_too_short_for_a_pass_has_none() {
        assert!(plan(1, 5.0, 2.0, shape(3)).passes.is_empty());
    }

    #[test]
    fn frames_map_to_their_pass() {
        let plan = plan(3, 5.0, 20.0, shape(3));
        let p = plan.passes[1];
        assert_eq!(plan.pass_at(p.camera, p.first_frame), Some(&p));
        assert_eq!(plan.pass_at(p.camera, p.first_frame + p.frames), None);
        assert_eq!(plan.pass_at((p.camera + 1) % 3, p.first_frame), None);
    }
}
