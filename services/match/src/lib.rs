//! # lfr-match: probe templates against the deployment's watch list
//!
//! Consumes EMBEDDINGS through the shared `match` consumer. For every probe template:
//!
//! 1. find the active deployments watching its camera ([`watchlists`]: lists are loaded from the
//!    deployments store, verified against the authorised digest, and dropped when a deployment ends);
//! 2. search each verified list with faiss ([`index`]) and apply the deployment's threshold for the
//!    entry's category;
//! 3. let the deployment's tracker decide whether the match is corroborated ([`corroborate`]: k of
//!    n frames of one track, or one very high score; one alert per person passing);
//! 4. publish a corroborated match as a candidate alert on ALERTS ([`matcher`]), its images (probe
//!    chip, context crop, watch-list image) sealed under the deployment's data key ([`lfr_vault`]);
//!    the context crop is asked of the detect replica that found the face ([`context`]): only a
//!    face that alerts ever has one made.
//!
//! A probe that matches nothing is acknowledged and forgotten at once: it never leaves memory.
//! The service refuses to start without the master key (`LFR_MASTER_KEY`): alerts are kept on
//! disk, and never in clear.

pub mod alerted;
pub mod context;
pub mod corroborate;
pub mod index;
pub mod matcher;
pub mod metrics;
pub mod watchlists;

use corroborate::Rule;
use index::IndexKind;
use lfr_common::config::{secs, Common};
use lfr_common::service::Running;
use lfr_common::stage::{self, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::streams;
use lfr_vault::{MasterKey, Vault};
use lfr_watchlist::store::Store;
use matcher::MatchStage;
use metrics::MatchMetrics;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use watchlists::{Loader, Watchlists};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// The master key that wraps the deployments' data keys (docs/encryption.md). A secret: give
    /// it as `LFR_MASTER_KEY` (base64 of 32 bytes), never in a file; never serialised. None: read
    /// `LFR_MASTER_KEY` at start, and refuse to start without it.
    #[serde(skip_serializing)]
    pub master_key: Option<MasterKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MatchConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
    /// This replica's name in watch-list load reports (default: host name and process id).
    pub replica: Option<String>,
    /// faiss index: `"Flat"` (exact, the default) or a faiss factory string such as
    /// `"HNSW32,Flat"` for lists of hundreds of thousands.
    pub index: String,
    /// How often the deployments store is read even when no change was announced (and load
    /// reports renewed; they expire after a minute).
    #[serde(with = "secs")]
    pub refresh: Duration,
    pub corroboration: Rule,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            http_addr: "127.0.0.1:9104".parse().unwrap(),
            replica: None,
            index: "Flat".into(),
            refresh: Duration::from_secs(10),
            corroboration: Rule::default(),
        }
    }
}

impl MatchConfig {
    fn index_kind(&self) -> IndexKind {
        match self.index.as_str() {
            "Flat" | "flat" | "" => IndexKind::Flat,
            other => IndexKind::Factory(other.into()),
        }
    }

    fn replica_name(&self) -> String {
        self.replica.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "match".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

pub fn spec() -> StageSpec {
    StageSpec {
        name: "match",
        stream: streams::EMBEDDINGS,
        durable: streams::consumers::MATCH,
        max_batch: 1,
        max_wait: Duration::ZERO,
        shed_at: None,
    }
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let settings = config.matcher.clone();
    settings.corroboration.validate()?;
    let settings_realert = settings.corroboration.realert_after;
    // Alerts are retained on disk: without the key to seal them, raise none at all.
    let master = MasterKey::configured(config.master_key.clone())
        .map_err(|e| anyhow::anyhow!("lfr-match refuses to start: {e}"))?;
    tracing::info!(master_key = %master.fingerprint(), "alert images are sealed under the deployments' data keys");
    stage::start_service(
        "match",
        &config.common,
        settings.http_addr,
        spec(),
        move |ctx| {
            let metrics = MatchMetrics::new(&ctx.registry)?;
            let lists = Watchlists::default();
            let (loaded, loaded_rx) = tokio::sync::watch::channel(false);
            let js = ctx.bus.jetstream.clone();
            let vault = Vault::new(&js, master);
            let images = Arc::new(OnceLock::new());
            let loader_images = images.clone();
            let ledger = Arc::new(OnceLock::new());
            let opened_ledger = ledger.clone();
            let loader_lists = lists.clone();
            let loader_metrics = metrics.clone();
            let stop = ctx.shutdown.clone();
            tokio::spawn(async move {
                let store = loop {
                    match Store::open(&js).await {
                        Ok(store) => {
                            match alerted::Ledger::open(&js).await {
                                Ok(l) => {
                                    let _ = opened_ledger.set(l);
                                }
                                Err(e) => tracing::warn!(error = %e, "alert ledger unavailable: a takeover may repeat an alert"),
                            }
                            let _ = loader_images.set(store.clone());
                            break store;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "deployments store unavailable; retrying");
                            tokio::select! {
                                _ = stop.requested() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                };
                Loader {
                    store,
                    lists: loader_lists,
                    replica: settings.replica_name(),
                    index: settings.index_kind(),
                    rule: settings.corroboration.clone(),
                    refresh: settings.refresh,
                    metrics: loader_metrics,
                }
                .run(loaded, stop)
                .await
            });
            Ok(MatchStage {
                lists,
                vault,
                images,
                bus: ctx.bus.clone(),
                metrics,
                loaded: loaded_rx,
                ledger,
                realert_after: settings_realert,
                prefetch: Default::default(),
            })
        },
        shutdown,
    )
    .await
}
