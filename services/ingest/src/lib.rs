//! # lfr-ingest: cameras in, frames on the bus
//!
//! A camera is captured only while a live, verified deployment covers it: the coverage is read
//! from the deployment records ([`lfr_watchlist::coverage`]) and every camera thread opens and
//! closes its source by it. Outside a deployment, ingest reads nothing from any camera.
//!
//! Each configured camera gets a capture thread ([`camera`]) that samples its source to the
//! configured rate and encodes JPEG, a drop-oldest hand-over queue ([`queue`]), and an async
//! [`publisher`] that puts frames on `lfr.frames.<camera>` with a short TTL. Cameras fail, end and
//! recover independently; the bus pushing back costs the oldest frames, counted, never memory.

pub mod camera;
pub mod config;
pub mod encode;
pub mod metrics;
pub mod publisher;
pub mod queue;
pub mod sampler;
pub mod source;

use camera::Camera;
use config::Config;
use lfr_common::service::{self, Running};
use lfr_common::Shutdown;
use lfr_schemas::Timestamp;
use metrics::IngestMetrics;
use publisher::Publisher;
use queue::DropOldest;
use std::sync::Arc;

/// Start every camera; returns once the bus is connected and publishing can begin.
pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    config.validate()?;
    let ctx = service::start("ingest", &config.common, config.ingest.http_addr, shutdown).await?;
    let metrics = IngestMetrics::new(&ctx.registry)?;
    let epoch = Timestamp::now();
    let coverage = lfr_watchlist::coverage::watch(
        ctx.bus.jetstream.clone(),
        config.ingest.coverage_refresh,
        ctx.shutdown.clone(),
    );
    let mut tasks = Vec::new();
    for cam in &config.ingest.cameras {
        metrics.register_camera(&cam.id);
        let queue = Arc::new(DropOldest::new(config.ingest.queue_capacity));
        let camera = Camera {
            config: cam.clone(),
            coverage: coverage.clone(),
            jpeg_quality: config.ingest.jpeg_quality,
            initial_backoff: config.ingest.initial_backoff,
            max_backoff: config.ingest.max_backoff,
            timeouts: source::Timeouts {
                open: config.ingest.open_timeout,
                read: config.ingest.read_timeout,
            },
            epoch,
            queue: queue.clone(),
            metrics: metrics.clone(),
            shutdown: ctx.shutdown.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("camera-{}", cam.id))
            .spawn(move || camera.run())?;
        let publisher = Publisher {
            camera: cam.id.clone(),
            bus: ctx.bus.clone(),
            queue,
            max_in_flight: config.ingest.max_in_flight,
            metrics: metrics.clone(),
            shutdown: ctx.shutdown.clone(),
        };
        tasks.push((thread, tokio::spawn(publisher.run())));
    }
    if config.ingest.cameras.is_empty() {
        tracing::warn!("no cameras configured");
    }
    ctx.health.set_ready(true);
    let shutdown = ctx.shutdown.clone();
    let done = tokio::spawn(async move {
        shutdown.requested().await;
        for (thread, publisher) in tasks {
            let _ = publisher.await;
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        ctx.bus.flush_before_exit().await;
        tracing::info!("ingest stopped");
    });
    Ok(Running {
        metrics_addr: ctx.metrics_addr,
        done,
    })
}
