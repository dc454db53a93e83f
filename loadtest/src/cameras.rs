//! Simulated cameras: each publishes its timeline of scene frames to `lfr.frames.<camera>` at its
//! frame rate, as the ingest service would, with the capture time the frame was due.
//!
//! A camera that falls behind its clock by more than one frame interval skips frames (a real
//! camera does not wait either), and at most a few publishes per camera are in flight; both
//! losses are counted as the `camera` stage's. Frames are stamped with the time they were due, so
//! any delay in the load generator itself shows up in the latency, never hides it.

use crate::deployment::camera;
use crate::scene::Scene;
use crate::schedule::Plan;
use lfr_common::bus::Bus;
use lfr_schemas::{streams, subjects, Frame, FrameRef, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Publishes per camera awaiting the server's acknowledgement.
const IN_FLIGHT: usize = 4;

/// What the cameras did in a step.
#[derive(Debug, Default)]
pub struct Counts {
    pub published: AtomicU64,
    /// Skipped because the camera was behind, or too many publishes were in flight.
    pub skipped: AtomicU64,
    /// The bus refused or did not acknowledge.
    pub failed: AtomicU64,
}

/// The frame camera `c` shows at `frame` of `plan`: the pass in progress, else the crowd held
/// around the nearest pass, else a crowd that changes every few seconds. A replay plays its
/// video in order instead.
pub fn frame_jpeg<'a>(scene: &'a Scene, plan: &Plan, c: usize, frame: u64) -> &'a [u8] {
    if scene.replay {
        // Each camera from its own starting point, so that they do not all show one moment.
        let start = c * scene.crowd.len() / plan.cameras.max(1);
        return &scene.crowd[(start + frame as usize) % scene.crowd.len()];
    }
    if let Some(p) = plan.pass_at(c, frame) {
        return &scene.passes[p.identity][p.variant][(frame - p.first_frame) as usize];
    }
    let crowd = match plan.crowd_of(c, frame) {
        Some(p) => scene.pass_background[p.identity][p.variant],
        None => {
            let hold = (crate::schedule::CROWD_HOLD_S * plan.fps).max(1.0) as u64;
            (frame / hold) as usize + c * 7
        }
    };
    &scene.crowd[crowd % scene.crowd.len()]
}

/// Capture time of `frame` of camera `c`: cameras are spread evenly within a frame interval, so
/// they do not all publish at the same instant.
pub fn offset(plan: &Plan, c: usize, frame: u64) -> Duration {
    let interval = 1.0 / plan.fps;
    let phase = interval * c as f64 / plan.cameras.max(1) as f64;
    Duration::from_secs_f64(frame as f64 * interval + phase)
}

/// Run every camera of `plan` from `start` (wall time `start_wall`) to its last frame.
pub async fn run(
    bus: &Bus,
    scene: Arc<Scene>,
    plan: Arc<Plan>,
    start: Instant,
    start_wall: Timestamp,
    counts: Arc<Counts>,
) {
    let mut cameras = Vec::new();
    for c in 0..plan.cameras {
        let (bus, scene, plan, counts) = (bus.clone(), scene.clone(), plan.clone(), counts.clone());
        cameras.push(tokio::spawn(async move {
            one_camera(&bus, &scene, &plan, c, start, start_wall, &counts).await
        }));
    }
    for c in cameras {
        let _ = c.await;
    }
}

async fn one_camera(
    bus: &Bus,
    scene: &Scene,
    plan: &Plan,
    c: usize,
    start: Instant,
    start_wall: Timestamp,
    counts: &Arc<Counts>,
) {
    let id = camera(c);
    let subject = subjects::frames(&id);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let late = Duration::from_secs_f64(1.0 / plan.fps);
    let mut pending = Vec::new();
    for frame in 0..plan.frames {
        let due = offset(plan, c, frame);
        tokio::time::sleep_until(start + due).await;
        if start.elapsed() > due + late {
            counts.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            counts.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let message = Frame {
            source: FrameRef {
                camera: id.clone(),
                epoch: start_wall,
                seq: frame,
                captured_at: Timestamp(start_wall.0 + due.as_nanos() as u64),
            },
            width: scene.width,
            height: scene.height,
            jpeg: frame_jpeg(scene, plan, c, frame).to_vec().into(),
        };
        match bus
            .publish_transient(streams::FRAMES, subject.clone(), &message)
            .await
        {
            Ok(ack) => {
                let counts = counts.clone();
                pending.push(tokio::spawn(async move {
                    match ack.acknowledged().await {
                        Ok(()) => counts.published.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counts.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    drop(permit);
                }));
            }
            Err(e) => {
                tracing::warn!(camera = %id, error = %e, "frame not published");
                counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    for p in pending {
        let _ = p.await;
    }
}
