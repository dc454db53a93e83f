//! The command line, and a run from start to report.

use crate::live::Live;
use crate::observe::Observer;
use crate::ramp::{self, Counts};
use crate::results::{Overhead, Reference, Report, StepResult};
use crate::scene::{Samples, Scene, IDENTITIES};
use crate::schedule::PassShape;
use crate::step::Bench;
use crate::system::{self, Endpoint, LocalSettings, LocalSystem, System};
use crate::usage::{self, Sampler};
use crate::{baseline, deployment, reference, report, schedule, scrape};
use lfr_common::bus::Bus;
use lfr_common::config::{Common, NatsConfig};
use lfr_detect::tracks::Tracking;
use lfr_match::corroborate::Rule;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Hard limits, whatever the arguments: a load test is never open-ended.
const MAX_CAMERAS: usize = lfr_schemas::permissions::LOADTEST_CAMERAS;
const MAX_STEP_SECONDS: f64 = 300.0;
const MAX_MINUTES: u64 = 120;

#[derive(clap::Parser, Debug)]
#[command(
    name = "lfr-loadtest",
    about = "Multi-camera load test of the lfr pipeline"
)]
pub struct Args {
    /// Frame rates to ramp at, per camera.
    #[arg(long, value_delimiter = ',', default_values_t = [5.0, 10.0])]
    pub fps: Vec<f64>,
    /// Run exactly these camera counts instead of searching for the largest within budget.
    #[arg(long, value_delimiter = ',')]
    pub cameras: Vec<usize>,
    /// Most cameras a ramp tries (at most 64).
    #[arg(long, default_value_t = 32)]
    pub max_cameras: usize,
    /// Latency budget, seconds: p99 capture-to-decision and capture-to-alert.
    #[arg(long, default_value_t = 1.0)]
    pub budget: f64,
    /// Length of each step, seconds (at most 300).
    #[arg(long, default_value_t = 20.0)]
    pub step_seconds: f64,
    /// The whole run stops by itself after this many minutes (at most 120).
    #[arg(long, default_value_t = 30)]
    pub max_minutes: u64,
    /// Where the report goes (default: loadtest/results/<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sample photos (folders faces/ and group/; scripts/setup.sh fetches them).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Frame size of the simulated cameras.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// How long a watch-listed person is in view, seconds.
    #[arg(long, default_value_t = 1.2)]
    pub pass_seconds: f64,
    /// Skip the in-process baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Serve the run's figures as Prometheus metrics here while it runs.
    #[arg(long, default_value = "127.0.0.1:9190")]
    pub metrics_addr: SocketAddr,
    /// Drive an already running system at this NATS URL instead of starting one on loopback.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// With --nats-url: the load test's own NATS credentials (the `loadtest` identity's seed from
    /// `lfr bus credentials`, or a `.creds` file).
    #[arg(long)]
    pub nats_credentials: Option<std::path::PathBuf>,
    /// With --nats-url: the CA certificate (PEM) of the NATS server.
    #[arg(long)]
    pub nats_ca: Option<std::path::PathBuf>,
    /// With --nats-url: a service's metrics endpoint, `detect=HOST:PORT` (detect, embed and
    /// match are needed; only loopback or the NATS host are accepted).
    #[arg(long)]
    pub scrape: Vec<String>,
    /// With --nats-url: the matcher's `realert_after`, seconds (passes of one person are spaced
    /// by it). Locally the load test sets it to 3 s itself.
    #[arg(long, default_value_t = 3.0)]
    pub realert_after: f64,
    /// Locally: the detector's input size, `WIDTHxHEIGHT` (the services' `models.detector_input`;
    /// the baseline uses the same).
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    pub detector_input: [u32; 2],
    /// How long messages live in the transient streams (`bus.transient_ttl`), seconds.
    #[arg(long, default_value_t = 5.0)]
    pub transient_ttl: f64,
    /// Locally: detect searches a camera's frame in full every this many seconds
    /// (`detect.tracking.full_every`; 0 searches every frame).
    #[arg(long, default_value_t = Tracking::default().full_every.as_secs_f64())]
    pub full_every: f64,
    /// Locally: most faces of one person detect publishes per second
    /// (`detect.tracking.faces_per_second`; 0 publishes every face of every frame).
    #[arg(long, default_value_t = Tracking::default().faces_per_second)]
    pub faces_per_second: f32,
    /// Locally: ONNX Runtime intra-op threads per model in detect and embed (`models.threads`).
    #[arg(long, default_value_t = 1)]
    pub model_threads: usize,
    /// Locally: when detect makes a face's context crop (`detect.context`): when the matcher
    /// asks, for the faces that alert only, or with every face it publishes.
    #[arg(long, value_enum, default_value_t = ContextArg::OnRequest)]
    pub context: ContextArg,
    /// Locally: inference calls embed makes at once (`embed.workers`; 0: one per core).
    #[arg(long, default_value_t = 0)]
    pub embed_workers: usize,
    /// Replay: the cameras play this video file (in order, looped, each from its own starting
    /// frame) instead of the synthetic scene; nobody on the list walks past, so any alert counts
    /// as unexpected.
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Run the naive reference pipeline (`loadtest/reference/naive.py`) on the same frames first
    /// and report lfr's frames a second and CPU per frame as ratios to it.
    #[arg(long)]
    pub reference: bool,
    /// With --reference and no --video: seconds of camera 0's frames the reference reads.
    #[arg(long, default_value_t = 60.0)]
    pub reference_seconds: f64,
}

fn parse_size(text: &str) -> Result<[u32; 2], String> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| format!("{text}: expected WIDTHxHEIGHT"))?;
    let parse = |v: &str| v.parse::<u32>().map_err(|e| format!("{text}: {e}"));
    let size = [parse(w)?, parse(h)?];
    if size.iter().any(|v| !(64..=4096).contains(v)) {
        return Err(format!("{text}: each side must be 64 to 4096"));
    }
    Ok(size)
}

impl Args {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.fps.is_empty(), "give at least one --fps");
        anyhow::ensure!(
            self.fps.iter().all(|f| *f > 0.0 && *f <= 30.0),
            "--fps must be in (0, 30]"
        );
        anyhow::ensure!(
            (1..=MAX_CAMERAS).contains(&self.max_cameras)
                && self.cameras.iter().all(|c| (1..=MAX_CAMERAS).contains(c)),
            "camera counts must be 1 to {MAX_CAMERAS}"
        );
        anyhow::ensure!(
            self.step_seconds >= 3.0 && self.step_seconds <= MAX_STEP_SECONDS,
            "--step-seconds must be 3 to {MAX_STEP_SECONDS}"
        );
        anyhow::ensure!(
            (1..=MAX_MINUTES).contains(&self.max_minutes),
            "--max-minutes must be 1 to {MAX_MINUTES}"
        );
        anyhow::ensure!(self.budget > 0.0, "--budget must be positive");
        anyhow::ensure!(
            (1..=64).contains(&self.model_threads) && self.embed_workers <= 64,
            "--model-threads must be 1 to 64"
        );
        anyhow::ensure!(
            (5.0..=600.0).contains(&self.reference_seconds),
            "--reference-seconds must be 5 to 600"
        );
        if let Some(video) = &self.video {
            anyhow::ensure!(video.is_file(), "--video {}: no such file", video.display());
        }
        self.tracking()?;
        external_endpoints(self)?;
        Ok(())
    }

    /// Detect's tracking rule from `--full-every` and `--faces-per-second`, checked.
    fn tracking(&self) -> anyhow::Result<Tracking> {
        let full_every = Duration::try_from_secs_f64(self.full_every)
            .map_err(|e| anyhow::anyhow!("--full-every: {e}"))?;
        let rule = Tracking {
            full_every,
            faces_per_second: self.faces_per_second,
            track_gap: Tracking::default().track_gap.max(2 * full_every),
            ..Tracking::default()
        };
        rule.validate()?;
        Ok(rule)
    }

    fn most_cameras(&self) -> usize {
        self.cameras
            .iter()
            .copied()
            .max()
            .unwrap_or(self.max_cameras)
            .max(1)
    }
}

/// The corroboration rule the local matcher runs with (the default, with the short re-alert
/// window): the baseline uses the same.
fn rule(realert_after: Duration) -> Rule {
    Rule {
        realert_after,
        ..Rule::default()
    }
}

/// Run the whole load test; the path of the report.
pub async fn run(args: Args) -> anyhow::Result<PathBuf> {
    args.validate()?;
    let limit = Duration::from_secs(args.max_minutes * 60);
    let deadline = tokio::time::Instant::now() + limit;
    // The hard stop: whatever happens inside, the run ends within its limit plus a minute to
    // clean up.
    match tokio::time::timeout(
        limit + Duration::from_secs(60),
        run_bounded(&args, deadline),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => anyhow::bail!(
            "the load test overran its {} minutes and was stopped",
            args.max_minutes
        ),
    }
}

async fn run_bounded(args: &Args, deadline: tokio::time::Instant) -> anyhow::Result<PathBuf> {
    let started_at = lfr_watchlist::time::format_utc(lfr_schemas::Timestamp::now());
    let samples = Samples::under(&args.samples.clone().unwrap_or_else(Samples::default_root));
    let realert_after = Duration::from_secs_f64(args.realert_after.max(0.0));
    let shape_for = |scene: &Scene| PassShape {
        frames: scene.pass_frames as u64,
        variants: [scene.variants(0), scene.variants(1)],
        realert_after,
        track_gap: Rule::default().track_gap,
    };
    let pass_frames = |fps: f64| ((args.pass_seconds * fps).round() as usize).max(2);
    let build_scene = |fps: f64| -> anyhow::Result<Arc<Scene>> {
        if let Some(video) = &args.video {
            return Ok(Arc::new(Scene::from_video(video, args.width, args.height)?));
        }
        Ok(Arc::new(Scene::build(
            &samples,
            args.width,
            args.height,
            pass_frames(fps),
        )?))
    };

    // The baseline first, while nothing else runs on the box.
    let first_fps = args.fps[0];
    let first_scene = build_scene(first_fps)?;
    let baseline = if args.no_baseline {
        None
    } else {
        let (scene, samples, shape) = (
            first_scene.clone(),
            samples.clone(),
            shape_for(&first_scene),
        );
        let seconds = args.step_seconds;
        let rule = rule(realert_after);
        let detector_input = args.detector_input;
        let b = tokio::task::spawn_blocking(move || {
            baseline::run(
                &scene,
                &samples,
                shape,
                first_fps,
                seconds,
                rule,
                detector_input,
            )
        })
        .await??;
        tracing::info!(
            fps = format!("{:.1}", b.fps),
            frame_p50_ms = (b.frame_latency.p50 * 1000.0).round(),
            alerts = format!("{}/{}", b.alerts.raised, b.alerts.expected),
            "in-process baseline done"
        );
        Some(b)
    };

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("loadtest/results").join(started_at.replace(':', "-")));
    let reference = if args.reference {
        let shape = shape_for(&first_scene);
        Some(run_reference(args, first_scene.clone(), shape, first_fps, &samples, &out).await?)
    } else {
        None
    };
    let system = start_system(args, realert_after, &out.join("logs")).await?;
    // The first frame rate's scene is the baseline's: drawn once.
    let scene_for = |fps: f64| {
        if fps == first_fps {
            Ok(first_scene.clone())
        } else {
            build_scene(fps)
        }
    };
    let outcome = drive(args, &system, &samples, deadline, &scene_for, &shape_for).await;
    system.stop().await;
    let ramps = outcome?;

    let overhead = baseline
        .as_ref()
        .and_then(|b| overhead(b, ramps.first()?.steps.first()?));
    let mut report = Report {
        started_at: started_at.clone(),
        machine: usage::machine(),
        system: system_name(args),
        budget_seconds: args.budget,
        step_seconds: args.step_seconds,
        scene: first_scene.describe(),
        ramps,
        baseline,
        overhead,
        reference: None,
    };
    report.reference = reference.map(|r| reference::compare(&report, r));
    report::write(&report, &out)
}

/// The naive reference pipeline on the same frames, before the pipeline starts (so nothing else
/// runs): the given video in a replay, else camera 0's frames of the scene written to a video.
async fn run_reference(
    args: &Args,
    scene: Arc<Scene>,
    shape: PassShape,
    fps: f64,
    samples: &Samples,
    out: &std::path::Path,
) -> anyhow::Result<Reference> {
    std::fs::create_dir_all(out)?;
    let enrol = IDENTITIES
        .iter()
        .map(|i| {
            format!(
                "{}={}",
                i.reference,
                samples.faces.join(i.enrolled).display()
            )
        })
        .collect();
    let settings = reference::Settings::default_for(args.detector_input, enrol);
    let json = out.join("reference.json");
    let (given, seconds) = (args.video.clone(), args.reference_seconds);
    let reference = tokio::task::spawn_blocking(move || {
        // The written video is large (MJPG): it goes to a temporary folder, not the report.
        let dir = tempfile::tempdir()?;
        let (video, label) = match given {
            Some(video) => {
                let label = video.display().to_string();
                (video, label)
            }
            None => {
                let path = dir.path().join("camera-0.avi");
                let plan = schedule::plan_for(&scene, 1, fps, seconds, shape);
                reference::write_video(&scene, &plan, &path)?;
                (
                    path,
                    format!("camera 0 of the scene, {seconds} s at {fps} fps"),
                )
            }
        };
        let mut reference = reference::run(&settings, &video, &json)?;
        reference.video = label;
        Ok::<_, anyhow::Error>(reference)
    })
    .await??;
    tracing::info!(
        fps = format!("{:.1}", reference.frames_per_s),
        cpu_ms_per_frame = format!("{:.1}", reference.cpu_ms_per_frame),
        "naive reference pipeline done"
    );
    Ok(reference)
}

fn system_name(args: &Args) -> String {
    if args.nats_url.is_some() {
        "external".into()
    } else {
        let [w, h] = args.detector_input;
        format!(
            "local (nats-server and lfr-detect, lfr-embed, lfr-match started by the load test; \
             detector input {w}x{h}; full search every {} s, {} faces per person per second; \
             context crops {}; embed workers {})",
            args.full_every,
            args.faces_per_second,
            args.context.describe(),
            match args.embed_workers {
                0 => "one per core".to_string(),
                n => n.to_string(),
            }
        )
    }
}

async fn start_system(
    args: &Args,
    realert_after: Duration,
    log_dir: &std::path::Path,
) -> anyhow::Result<System> {
    match (&args.nats_url, external_endpoints(args)?) {
        (Some(url), Some(endpoints)) => Ok(System::External {
            nats: NatsConfig {
                url: url.clone(),
                credentials: args.nats_credentials.clone(),
                ca: args.nats_ca.clone(),
                ..Default::default()
            },
            endpoints,
        }),
        _ => Ok(System::Local(Box::new(
            LocalSystem::start(&LocalSettings {
                bin_dir: system::own_bin_dir(),
                realert_after,
                detector_input: args.detector_input,
                tracking: args.tracking()?,
                model_threads: args.model_threads,
                context: args.context.toml(),
                embed_workers: args.embed_workers,
                log_dir: log_dir.to_path_buf(),
            })
            .await?,
        ))),
    }
}

/// With `--nats-url`, the services' metrics endpoints from `--scrape`, checked: all three stages
/// named, each on loopback or the NATS host.
fn external_endpoints(args: &Args) -> anyhow::Result<Option<Vec<Endpoint>>> {
    let Some(url) = &args.nats_url else {
        anyhow::ensure!(args.scrape.is_empty(), "--scrape needs --nats-url");
        return Ok(None);
    };
    let mut endpoints = Vec::new();
    for s in &args.scrape {
        let (service, addr) = s
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--scrape {s}: expected SERVICE=HOST:PORT"))?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| anyhow::anyhow!("--scrape {s}: {e}"))?;
        system::check_scrape_target(&addr, url)?;
        endpoints.push(Endpoint {
            service: service.into(),
            addr,
        });
    }
    for stage in system::STAGES {
        anyhow::ensure!(
            endpoints.iter().any(|e| e.service == stage),
            "--nats-url needs --scrape {stage}=HOST:PORT: losses and decision latency are read from the services"
        );
    }
    Ok(Some(endpoints))
}

/// Everything that needs the running system: deployment, observers, warm-up, ramps.
async fn drive(
    args: &Args,
    system: &System,
    samples: &Samples,
    deadline: tokio::time::Instant,
    build_scene: &dyn Fn(f64) -> anyhow::Result<Arc<Scene>>,
    shape_for: &dyn Fn(&Scene) -> PassShape,
) -> anyhow::Result<Vec<crate::results::Ramp>> {
    let common = Common {
        nats: system.nats_config(),
        ..Default::default()
    };
    let registry = prometheus::Registry::new();
    let bus = Bus::connect(&common, "loadtest", &registry).await?;
    let live = Live::new()?;
    let stop = lfr_common::Shutdown::default();
    lfr_common::telemetry::serve(
        args.metrics_addr,
        live.registry.clone(),
        Default::default(),
        stop.clone(),
    )
    .await?;
    let cameras = args.most_cameras();
    let hours = (args.max_minutes / 60 + 1).max(1);
    let dep = deployment::start(&bus.jetstream, samples, cameras, hours).await?;
    let ramps = async {
        wait_verified(system, &dep.id).await?;
        let observer = Observer::start(&bus.client, cameras, &dep.id).await?;
        let sampler = {
            let watched = system.watched();
            (!watched.is_empty()).then(|| {
                let mut w = watched;
                w.push(usage::Watched {
                    service: "cameras".into(),
                    pid: std::process::id(),
                });
                Sampler::start(w)
            })
        };
        let mut ramps = Vec::new();
        for (i, &fps) in args.fps.iter().enumerate() {
            let scene = build_scene(fps)?;
            let bench = Bench {
                bus: &bus,
                system,
                scene: scene.clone(),
                observer: &observer,
                sampler: sampler.as_ref(),
                shape: shape_for(&scene),
                budget: args.budget,
                ttl: Duration::from_secs_f64(args.transient_ttl),
                live: &live,
            };
            if i == 0 {
                // Warm-up: models' first inferences, consumers, connections. Not reported.
                bench.step(1, fps, 4.0).await?;
            }
            let counts = if args.cameras.is_empty() {
                Counts::Search {
                    max: args.max_cameras,
                }
            } else {
                Counts::Fixed(args.cameras.clone())
            };
            ramps.push(ramp::run(&bench, fps, &counts, args.step_seconds, deadline).await?);
        }
        anyhow::Ok(ramps)
    }
    .await;
    dep.end().await;
    stop.trigger();
    ramps
}

/// Wait until the matcher holds the load test's list, verified.
async fn wait_verified(system: &System, deployment: &str) -> anyhow::Result<()> {
    let Some(addr) = system.endpoint("match") else {
        return Ok(());
    };
    for _ in 0..120 {
        if let Ok(s) = scrape::fetch(addr).await {
            if s.sum(
                "lfr_match_watchlist_verified",
                &[("deployment", deployment)],
            ) >= 1.0
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!(
        "the matcher did not load the load test's watch list ({} entries) within 60 s",
        IDENTITIES.len()
    )
}

/// The architecture's price at the lightest step: CPU per frame and median latency against the
/// baseline's.
fn overhead(b: &crate::results::Baseline, step: &StepResult) -> Option<Overhead> {
    let frames = step.sustained_fps * step.seconds;
    let pipeline_cores: f64 = step
        .usage
        .iter()
        .filter(|u| u.service != "cameras")
        .map(|u| u.cpu_cores)
        .sum();
    let decision = step.since_capture("match")?;
    if frames <= 0.0
        || b.cpu_seconds_per_frame <= 0.0
        || b.frame_latency.p50 <= 0.0
        || pipeline_cores <= 0.0
    {
        return None;
    }
    Some(Overhead {
        cpu_ratio: pipeline_cores * step.seconds / frames / b.cpu_seconds_per_frame,
        latency_ratio: decision.p50 / b.frame_latency.p50,
        cameras: step.cameras,
        fps: step.fps,
    })
}

/// `--context`: when detect makes the context crops (`[detect] context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ContextArg {
    OnRequest,
    WithFace,
}

impl ContextArg {
    /// The value of `detect.context` in lfr.toml.
    pub fn toml(self) -> &'static str {
        match self {
            ContextArg::OnRequest => "on_request",
            ContextArg::WithFace => "with_face",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ContextArg::OnRequest => "on request",
            ContextArg::WithFace => "with every face",
        }
    }
}
