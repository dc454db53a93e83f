//! The in-process baseline: the same frames through the same code, one process, no bus.
//!
//! Each frame is decoded and searched by the detect stage's own functions, every face embedded by
//! the embed stage's, and compared and tracked by the matcher's, one frame after another on one
//! thread (the models with the same thread settings as the services). What the pipeline costs
//! beyond this (serialisation, the bus, separate processes, queueing) is the price of the
//! microservice architecture; the report shows it as a ratio.

use crate::cameras;
use crate::deployment::{camera, enrolment_folder};
use crate::observe::SeenAlert;
use crate::results::Baseline;
use crate::scene::{Samples, Scene};
use crate::schedule::{self, PassShape};
use crate::score;
use crate::stats;
use crate::usage::{cpu_seconds, peak_rss_bytes};
use lfr_match::corroborate::{Rule, Tracker, Verdict};
use lfr_match::index::{IndexKind, WatchlistIndex};
use lfr_match::matcher::compare;
use lfr_match::watchlists::EntryMeta;
use lfr_schemas::{Frame, FrameRef, Timestamp};
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::deployment::Phase;
use lfr_watchlist::enrol::Enroller;
use std::sync::Mutex;
use std::time::Instant;

/// Run `seconds` of one camera's timeline at `fps` as fast as one thread can.
pub fn run(
    scene: &Scene,
    samples: &Samples,
    shape: PassShape,
    fps: f64,
    seconds: f64,
    rule: Rule,
    detector_input: [u32; 2],
) -> anyhow::Result<Baseline> {
    let models = ModelsConfig {
        detector_input,
        ..ModelsConfig::default()
    };
    let store = models.store()?;
    let finder = Mutex::new(models.face_finder(&store)?);
    let embedder = Mutex::new(models.embedder(&store)?);
    let input_side = models.detector_input[0].max(models.detector_input[1]);

    let folder = enrolment_folder(samples)?;
    let list = Enroller::load(&models)?
        .enrol(folder.path(), "baseline")?
        .list;
    anyhow::ensure!(
        !list.entries.is_empty(),
        "nothing enrolled for the baseline"
    );
    let templates: Vec<Vec<f32>> = list.entries.iter().map(|e| e.template.clone()).collect();
    let index = WatchlistIndex::build(templates[0].len(), &templates, IndexKind::Flat)?;
    let entries: Vec<EntryMeta> = list
        .entries
        .iter()
        .map(|e| EntryMeta::new(e, crate::deployment::THRESHOLD))
        .collect();
    let tracker = Mutex::new(Tracker::new(rule));

    let plan = schedule::plan_for(scene, 1, fps, seconds, shape);
    let start_wall = Timestamp::now();
    let pid = std::process::id();
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(plan.frames as usize);
    let mut alerts = Vec::new();
    let mut faces = 0u64;
    for f in 0..plan.frames {
        let jpeg = cameras::frame_jpeg(scene, &plan, 0, f);
        let source = FrameRef {
            camera: camera(0),
            epoch: start_wall,
            seq: f,
            // Capture time on the camera's clock, so the tracker sees the same timeline.
            captured_at: Timestamp(start_wall.0 + cameras::offset(&plan, 0, f).as_nanos() as u64),
        };
        let frame_started = Instant::now();
        let frame = Frame {
            source,
            width: scene.width,
            height: scene.height,
            jpeg: jpeg.to_vec().into(),
        };
        let (found, scale) = lfr_detect::find(&finder, &frame.jpeg.0, input_side)
            .map_err(|e| anyhow::anyhow!("baseline detect: {e}"))?;
        let now = Timestamp::now();
        let detected = found
            .faces
            .into_iter()
            .enumerate()
            .map(|(i, face)| lfr_detect::detected_face(&frame.source, i, face, scale, now))
            .collect::<anyhow::Result<Vec<_>>>()?;
        faces += detected.len() as u64;
        for template in lfr_embed::embed_all(&embedder, detected) {
            let template = template.map_err(|e| anyhow::anyhow!("baseline embed: {e}"))?;
            let judged = compare(&index, &entries, &tracker, &template, Phase::Live)
                .map_err(|e| anyhow::anyhow!("baseline match: {e}"))?;
            if let Verdict::Alert {
                entry, evidence, ..
            } = judged.verdict
            {
                alerts.push(SeenAlert {
                    camera: evidence.probe.frame.camera.clone(),
                    captured_at: evidence.probe.frame.captured_at,
                    stored_at: evidence.probe.frame.captured_at,
                    entry_ref: entries[entry].reference.clone(),
                });
            }
        }
        latencies.push(frame_started.elapsed().as_secs_f64());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let frames = plan.frames;
    Ok(Baseline {
        frames,
        faces,
        seconds: elapsed,
        fps: frames as f64 / elapsed,
        frame_latency: stats::quantiles(&latencies),
        cpu_seconds_per_frame: (cpu_seconds(pid) - cpu_before) / frames.max(1) as f64,
        rss_peak_bytes: peak_rss_bytes(pid).unwrap_or(0),
        alerts: score::tally(&plan, &alerts, start_wall),
    })
}
