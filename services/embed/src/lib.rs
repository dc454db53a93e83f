//! # lfr-embed: faces in, templates out
//!
//! Consumes FACES through the shared `embed` consumer. The embedding model arrives with the vision
//! work (issue 3); until then this stage validates and acknowledges every face.

use lfr_common::config::Common;
use lfr_common::service::Running;
use lfr_common::stage::{self, HandleError, Handler, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::{streams, DetectedFace, Timestamp};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub embed: EmbedConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbedConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            http_addr: "127.0.0.1:9103".parse().unwrap(),
        }
    }
}

pub fn spec() -> StageSpec {
    StageSpec {
        name: "embed",
        stream: streams::FACES,
        durable: streams::consumers::EMBED,
        filter_subject: None,
        max_ack_pending: 64,
        ack_wait: Duration::from_secs(10),
    }
}

/// Acknowledges what it receives; the stage's real work replaces this.
pub struct EmbedStage;

impl Handler for EmbedStage {
    type Input = DetectedFace;

    async fn handle(&self, input: DetectedFace) -> Result<(), HandleError> {
        tracing::trace!(at = ?Self::captured_at(&input), "received");
        Ok(())
    }

    fn captured_at(input: &DetectedFace) -> Option<Timestamp> {
        Some(input.face.frame.captured_at)
    }
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    stage::start_service(
        "embed",
        &config.common,
        config.embed.http_addr,
        spec(),
        |_registry| Ok(EmbedStage),
        shutdown,
    )
    .await
}
