//! # lfr-dispatch: candidate alerts to operators, confirmed alerts to officers
//!
//! Consumes candidate alerts from ALERTS through the `dispatch` consumer. The review console and
//! handheld feed arrive with issue 5; until then this stage validates and acknowledges alerts.

use lfr_common::config::Common;
use lfr_common::service::Running;
use lfr_common::stage::{self, HandleError, Handler, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::{streams, CandidateAlert, Timestamp};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub dispatch: DispatchConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatchConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            http_addr: "127.0.0.1:9105".parse().unwrap(),
        }
    }
}

pub fn spec() -> StageSpec {
    StageSpec {
        name: "dispatch",
        stream: streams::ALERTS,
        durable: streams::consumers::DISPATCH,
        filter_subject: Some("lfr.alerts.*.candidate"),
        max_ack_pending: 64,
        ack_wait: Duration::from_secs(10),
        max_batch: 1,
        max_wait: Duration::ZERO,
    }
}

/// Acknowledges what it receives; the stage's real work replaces this.
pub struct DispatchStage;

impl Handler for DispatchStage {
    type Input = CandidateAlert;

    async fn handle(&self, input: CandidateAlert) -> Result<(), HandleError> {
        tracing::trace!(at = ?Self::captured_at(&input), "received");
        Ok(())
    }

    fn captured_at(input: &CandidateAlert) -> Option<Timestamp> {
        Some(input.probe.frame.captured_at)
    }
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    stage::start_service(
        "dispatch",
        &config.common,
        config.dispatch.http_addr,
        spec(),
        |_ctx| Ok(DispatchStage),
        shutdown,
    )
    .await
}
