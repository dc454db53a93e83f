//! # lfr-purge: retention enforcement
//!
//! Erases alert data past its retention period unless it is under legal hold, wipes the watch lists
//! of ended deployments, and records every erasure. Retention rules arrive with issue 6; until then
//! the service runs its schedule and reports each (empty) pass, so the schedule itself is observable.

use lfr_common::config::{secs, Common};
use lfr_common::service::{self, Running};
use lfr_common::Shutdown;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub purge: PurgeConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PurgeConfig {
    pub http_addr: SocketAddr,
    /// Time between purge passes.
    #[serde(with = "secs")]
    pub interval: Duration,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        PurgeConfig {
            http_addr: "127.0.0.1:9106".parse().unwrap(),
            interval: Duration::from_secs(3600),
        }
    }
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let ctx = service::start("purge", &config.common, config.purge.http_addr, shutdown).await?;
    let passes = IntCounter::new("purge_passes_total", "Purge passes completed")?;
    ctx.registry.register(Box::new(passes.clone()))?;
    ctx.health.set_ready(true);
    let metrics_addr = ctx.metrics_addr;
    let done = tokio::spawn(async move {
        let mut schedule = tokio::time::interval(config.purge.interval);
        loop {
            tokio::select! {
                _ = schedule.tick() => {
                    passes.inc();
                    tracing::info!("purge pass: nothing is retained yet");
                }
                _ = ctx.shutdown.requested() => break,
            }
        }
    });
    Ok(Running { metrics_addr, done })
}
