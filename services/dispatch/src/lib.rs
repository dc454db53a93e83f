//! # lfr-dispatch: candidate alerts to operators, confirmed alerts to officers
//!
//! Consumes candidate alerts from ALERTS through the `dispatch` consumer. The review console and
//! handheld feed arrive with issue 5; until then this stage validates and acknowledges alerts.
//!
//! It also serves the web console's HTTP API on `console_addr`: for now the deployments API
//! ([`lfr_watchlist::api`]: create, enrol, authorise, review, activate, end, show). Until accounts
//! and sessions arrive, the API accepts one bearer token (`api_token`, a secret supplied through
//! `LFR_DISPATCH__API_TOKEN`) and acts as the supervisor `api-token`; with no token configured,
//! every API request is refused.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use lfr_common::config::Common;
use lfr_common::service;
use lfr_common::stage::{self, HandleError, Handler, OneByOne, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::{streams, CandidateAlert, Timestamp};
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::lifecycle::{Actor, Lifecycle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    /// The models enrolment runs with (watch lists uploaded through the API).
    pub models: ModelsConfig,
    pub dispatch: DispatchConfig,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatchConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
    /// Where the console's HTTP API (`/api/...`) listens.
    pub console_addr: SocketAddr,
    /// Bearer token the API accepts (a secret: supply it with `LFR_DISPATCH__API_TOKEN`, never in
    /// a committed file). None: every API request is refused with 401.
    pub api_token: Option<String>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            http_addr: "127.0.0.1:9105".parse().unwrap(),
            console_addr: "127.0.0.1:8080".parse().unwrap(),
            api_token: None,
        }
    }
}

/// The token never appears in a debug print of the configuration.
impl std::fmt::Debug for DispatchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchConfig")
            .field("http_addr", &self.http_addr)
            .field("console_addr", &self.console_addr)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .finish()
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

/// A started dispatch service: where its telemetry and its console listen, and a task that ends
/// when both the stage and the console have stopped.
pub struct Running {
    pub metrics_addr: SocketAddr,
    /// Where the console's API actually listens (the configured port may be 0 in tests).
    pub console_addr: SocketAddr,
    pub done: tokio::task::JoinHandle<()>,
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let ctx = service::start(
        "dispatch",
        &config.common,
        config.dispatch.http_addr,
        shutdown,
    )
    .await?;
    let lifecycle = Lifecycle::open(&ctx.bus.jetstream, config.models.clone()).await?;
    let (console_addr, console) = serve_console(
        config.dispatch.console_addr,
        config.dispatch.api_token.as_deref(),
        lifecycle,
        ctx.shutdown.clone(),
    )
    .await?;
    let metrics_addr = ctx.metrics_addr;
    let done = tokio::spawn(async move {
        let ran = stage::run(
            &ctx.bus,
            spec(),
            OneByOne(DispatchStage),
            &ctx.registry,
            &ctx.health,
            &ctx.shutdown,
        )
        .await;
        if let Err(e) = ran {
            tracing::error!(service = "dispatch", error = %e, "stage failed");
        }
        let _ = console.await;
        let _ = ctx.bus.client.flush().await;
    });
    Ok(Running {
        metrics_addr,
        console_addr,
        done,
    })
}

/// The account the API token acts as, until the console's accounts arrive.
pub fn token_actor() -> Actor {
    Actor::new("api-token", "supervisor")
}

/// Serve the console's API on `addr` until shutdown; returns the bound address and the server task.
pub async fn serve_console(
    addr: SocketAddr,
    api_token: Option<&str>,
    lifecycle: Lifecycle,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for the console on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let token = TokenCheck::new(api_token);
    if token.expected.is_none() {
        tracing::warn!(%bound, "no dispatch.api_token configured: every console API request is refused");
    }
    let app = lfr_watchlist::api::router(lifecycle)
        .layer(middleware::from_fn_with_state(token, authenticate));
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.requested().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "console API stopped");
        }
    });
    tracing::info!(%bound, "serving the console API");
    Ok((bound, task))
}

/// The configured token, kept only as its sha256: comparing fixed-length digests in constant time
/// reveals neither the token's bytes nor its length through timing.
#[derive(Clone)]
struct TokenCheck {
    expected: Option<Arc<[u8; 32]>>,
}

impl TokenCheck {
    fn new(token: Option<&str>) -> TokenCheck {
        TokenCheck {
            // An empty token would let `Authorization: Bearer ` in: treat it as none.
            expected: token
                .filter(|t| !t.is_empty())
                .map(|t| Arc::new(Sha256::digest(t.as_bytes()).into())),
        }
    }

    fn accepts(&self, presented: &str) -> bool {
        let Some(expected) = &self.expected else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(expected.as_ref()).into()
    }
}

/// `Authorization: Bearer <token>` with the configured token: the request acts as
/// [`token_actor`]. Anything else: 401.
async fn authenticate(State(token): State<TokenCheck>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, credentials) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| credentials.trim())
        });
    match presented {
        Some(p) if token.accepts(p) => {
            req.extensions_mut().insert(token_actor());
            next.run(req).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({ "error": "authentication required" })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::TokenCheck;

    #[test]
    fn only_the_configured_token_is_accepted() {
        let check = TokenCheck::new(Some("s3cret"));
        assert!(check.accepts("s3cret"));
        assert!(!check.accepts("s3cre"));
        assert!(!check.accepts(""));
        assert!(!TokenCheck::new(None).accepts(""));
        assert!(!TokenCheck::new(Some("")).accepts(""));
    }

    #[test]
    fn the_token_is_not_printed_with_the_configuration() {
        let config = super::DispatchConfig {
            api_token: Some("s3cret".into()),
            ..Default::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
