//! # lfr-detect: frames in, faces out
//!
//! Consumes FRAMES through the shared `detect` consumer. The face detector arrives with the vision
//! work (issue 3); until then this stage validates and acknowledges every frame, so frames leave
//! the bus as soon as they are taken and nothing is left behind.

use lfr_common::config::Common;
use lfr_common::service::Running;
use lfr_common::stage::{self, HandleError, Handler, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::{streams, Frame, Timestamp};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub detect: DetectConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            http_addr: "127.0.0.1:9102".parse().unwrap(),
        }
    }
}

pub fn spec() -> StageSpec {
    StageSpec {
        name: "detect",
        stream: streams::FRAMES,
        durable: streams::consumers::DETECT,
        filter_subject: None,
        max_ack_pending: 64,
        ack_wait: Duration::from_secs(10),
    }
}

/// Acknowledges what it receives; the stage's real work replaces this.
pub struct DetectStage;

impl Handler for DetectStage {
    type Input = Frame;

    async fn handle(&self, input: Frame) -> Result<(), HandleError> {
        tracing::trace!(at = ?Self::captured_at(&input), "received");
        Ok(())
    }

    fn captured_at(input: &Frame) -> Option<Timestamp> {
        Some(input.source.captured_at)
    }
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    stage::start_service(
        "detect",
        &config.common,
        config.detect.http_addr,
        spec(),
        |_registry| Ok(DetectStage),
        shutdown,
    )
    .await
}
