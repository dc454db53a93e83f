//! # lfr-match: templates against the deployment's watch list
//!
//! Consumes EMBEDDINGS through the shared `match` consumer. Watch lists and matching arrive with
//! issue 4; until then this stage validates and acknowledges every embedding, so a template that
//! does not match (today: all of them) is discarded right after it is read.
//!
//! [`index`] is the watch-list search (faiss) the matcher will use.

pub mod index;

use lfr_common::config::Common;
use lfr_common::service::Running;
use lfr_common::stage::{self, HandleError, Handler, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::{streams, Embedding, Timestamp};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MatchConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            http_addr: "127.0.0.1:9104".parse().unwrap(),
        }
    }
}

pub fn spec() -> StageSpec {
    StageSpec {
        name: "match",
        stream: streams::EMBEDDINGS,
        durable: streams::consumers::MATCH,
        filter_subject: None,
        max_ack_pending: 64,
        ack_wait: Duration::from_secs(10),
        max_batch: 1,
        max_wait: Duration::ZERO,
    }
}

/// Acknowledges what it receives; the stage's real work replaces this.
pub struct MatchStage;

impl Handler for MatchStage {
    type Input = Embedding;

    async fn handle(&self, input: Embedding) -> Result<(), HandleError> {
        tracing::trace!(at = ?Self::captured_at(&input), "received");
        Ok(())
    }

    fn captured_at(input: &Embedding) -> Option<Timestamp> {
        Some(input.face.frame.captured_at)
    }
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    stage::start_service(
        "match",
        &config.common,
        config.matcher.http_addr,
        spec(),
        |_ctx| Ok(MatchStage),
        shutdown,
    )
    .await
}
