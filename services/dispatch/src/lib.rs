//! # lfr-dispatch: candidate alerts to operators, confirmed alerts to officers
//!
//! No officer acts on a machine's say-so. Dispatch reads ALERTS into its [`book`] ([`feed`]),
//! serves the review console ([`console`]: operators confirm or reject each candidate alert;
//! officers' handheld feed shows confirmed alerts and takes outcomes; supervisors and auditors
//! oversee), escalates alerts nobody reviewed in time, and records on AUDIT every view
//! (consultation), every delivery to an officer (disclosure), every decision and outcome.
//!
//! The same listener serves the deployments JSON API ([`lfr_watchlist::api`]) to supervisors
//! (their console session) and to automation (a bearer token, `LFR_DISPATCH__API_TOKEN`).
//! People log in with accounts made by `lfr account` ([`auth`]); there is no default account.
//!
//! The alerts' images are sealed on ALERTS; the console opens them with the master key
//! (`LFR_MASTER_KEY`, [`lfr_vault`]) and refuses to start without it.

pub mod accuracy;
pub mod auth;
pub mod console;
pub mod metrics;
pub mod reviews;

use auth::{guard, Auth, Role};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use console::Console;
use lfr_alerts::{feed, Book};
use lfr_common::config::{secs, Common};
use lfr_common::service;
use lfr_common::Shutdown;
use lfr_schemas::Timestamp;
use lfr_vault::{MasterKey, Vault};
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::lifecycle::{Actor, Lifecycle};
use metrics::DispatchMetrics;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    /// The models enrolment runs with (watch lists uploaded through the API).
    pub models: ModelsConfig,
    pub dispatch: DispatchConfig,
    /// The master key that opens the alerts' sealed images (docs/encryption.md). A secret: give
    /// it as `LFR_MASTER_KEY` (base64 of 32 bytes), never in a file; never serialised. None: read
    /// `LFR_MASTER_KEY` at start, and refuse to start without it.
    #[serde(skip_serializing)]
    pub master_key: Option<MasterKey>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatchConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
    /// Where the console (pages, `/events`, and the deployments API `/api/...`) listens.
    pub console_addr: SocketAddr,
    /// Bearer token the API accepts (a secret: supply it with `LFR_DISPATCH__API_TOKEN`, never in
    /// a committed file). None: every API request is refused with 401.
    pub api_token: Option<String>,
    /// An alert waiting longer than this for an operator is escalated (flagged and counted).
    #[serde(with = "secs")]
    pub review_deadline: Duration,
    /// A blue-list walk test counts as alerted when a blue alert on its camera saw a face within
    /// this long after the walk started; as missed once it has passed ([`accuracy`]).
    #[serde(with = "secs")]
    pub walk_window: Duration,
    /// Console accounts, sessions and login throttling (`[dispatch.auth]`).
    pub auth: auth::AuthConfig,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            http_addr: "127.0.0.1:9105".parse().unwrap(),
            console_addr: "127.0.0.1:8080".parse().unwrap(),
            api_token: None,
            review_deadline: Duration::from_secs(60),
            walk_window: Duration::from_secs(120),
            auth: auth::AuthConfig::default(),
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
            .field("review_deadline", &self.review_deadline)
            .field("walk_window", &self.walk_window)
            .field("auth", &self.auth)
            .finish()
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
    let settings = config.dispatch.clone();
    settings
        .auth
        .check_console_addr(settings.console_addr)
        .map_err(|e| anyhow::anyhow!("lfr-dispatch refuses to start: {e}"))?;
    let master = MasterKey::configured(config.master_key.clone())
        .map_err(|e| anyhow::anyhow!("lfr-dispatch refuses to start: {e}"))?;
    let ctx = service::start("dispatch", &config.common, settings.http_addr, shutdown).await?;
    let js = ctx.bus.jetstream.clone();
    let vault = Vault::open(&js, master).await?;
    let metrics = DispatchMetrics::new(&ctx.registry)?.with_walk_window(settings.walk_window);
    let lifecycle = Lifecycle::open(&js, config.models.clone()).await?;
    let auth = Auth::new(&js, settings.auth.clone(), &ctx.registry).await?;

    let book = Book::default();
    let (caught_up, mut caught_up_rx) = watch::channel(false);
    let feed = tokio::spawn(feed::run(
        js.clone(),
        book.clone(),
        feed::FeedMetrics::new(&ctx.registry)?,
        caught_up,
        ctx.shutdown.clone(),
    ));
    let health = ctx.health.clone();
    tokio::spawn(async move {
        if caught_up_rx.wait_for(|c| *c).await.is_ok() {
            health.set_ready(true);
        }
    });
    let reviews = tokio::spawn(reviews::watch(
        lifecycle.clone(),
        reviews::ReviewGauges::new(&ctx.registry)?,
        ctx.shutdown.clone(),
    ));
    let escalation = tokio::spawn(escalate(
        book.clone(),
        metrics.clone(),
        settings.review_deadline,
        ctx.shutdown.clone(),
    ));

    let accuracy = tokio::spawn(accuracy::run(
        metrics.accuracy.clone(),
        book.clone(),
        lifecycle.clone(),
        ctx.shutdown.clone(),
    ));

    let console = Console::new(book, ctx.bus.clone(), lifecycle.clone(), vault, metrics);
    let api = ApiAuth {
        token: TokenCheck::new(settings.api_token.as_deref()),
        sessions: auth.clone(),
    };
    let secure = auth.config().cookie_secure;
    let app = console::router(console, auth).merge(
        lfr_watchlist::api::router(lifecycle)
            .layer(middleware::from_fn_with_state(api, authenticate)),
    );
    let app = auth::strict_transport_security(app, secure);
    let (console_addr, server) = serve(settings.console_addr, app, ctx.shutdown.clone()).await?;
    let metrics_addr = ctx.metrics_addr;
    let done = tokio::spawn(async move {
        // Requests in hand finish; an operator's live stream (/events) never would, so whatever
        // is still open CONSOLE_GRACE after shutdown is cut (the page's browser reconnects).
        let console = server.abort_handle();
        if ctx
            .shutdown
            .finish_within(CONSOLE_GRACE, server)
            .await
            .is_none()
        {
            console.abort();
            tracing::info!("console connections still open at shutdown closed");
        }
        // Each returns at shutdown, unless a read of a store gone with NATS holds it: bounded.
        for task in [feed, escalation, reviews, accuracy] {
            let stuck = task.abort_handle();
            if tokio::time::timeout(CONSOLE_GRACE, task).await.is_err() {
                stuck.abort();
            }
        }
        ctx.bus.flush_before_exit().await;
    });
    Ok(Running {
        metrics_addr,
        console_addr,
        done,
    })
}

/// How long the console's open requests and the background tasks get to finish at shutdown.
const CONSOLE_GRACE: Duration = Duration::from_secs(2);

/// Every second, escalate alerts that waited past the review deadline.
async fn escalate(book: Book, metrics: DispatchMetrics, deadline: Duration, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tick.tick() => {}
        }
        let escalated = book.escalate(Timestamp::now(), deadline);
        if escalated > 0 {
            metrics.escalated.inc_by(escalated as u64);
            tracing::warn!(escalated, "alerts not reviewed within the deadline");
        }
        metrics.pending.set(book.pending() as i64);
    }
}

/// Serve the console on `addr` until shutdown; returns the bound address and the server task.
async fn serve(
    addr: SocketAddr,
    app: axum::Router,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for the console on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.requested().await })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "console stopped");
        }
    });
    tracing::info!(%bound, "serving the console");
    Ok((bound, task))
}

/// Who the shared API token acts as: no one person, so it may prepare deployments (create,
/// govern, enrol, end) but never authorise, review or activate one (the lifecycle refuses, 403).
pub fn token_actor() -> Actor {
    Actor::shared_token("api-token", "supervisor")
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

/// Who may use the deployments API.
#[derive(Clone)]
struct ApiAuth {
    token: TokenCheck,
    sessions: Auth,
}

/// `Authorization: Bearer <token>` with the configured token acts as [`token_actor`]; otherwise a
/// supervisor's console session acts as that supervisor (writes only from the console's own
/// origin). Anything else: 401, or 403 for a session of another role.
async fn authenticate(State(api): State<ApiAuth>, mut req: Request, next: Next) -> Response {
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
    if let Some(p) = presented {
        if api.token.accepts(p) {
            req.extensions_mut().insert(token_actor());
            return next.run(req).await;
        }
    } else if let Some(token) = api.sessions.session_token(req.headers()) {
        let reads = matches!(*req.method(), Method::GET | Method::HEAD);
        if let Ok(Some(session)) = api.sessions.sessions.get(&token).await {
            if session.role != Role::Supervisor {
                return api_error(StatusCode::FORBIDDEN, "only supervisors manage deployments");
            }
            if !reads && !guard::same_origin(req.headers()) {
                return api_error(StatusCode::FORBIDDEN, "cross-site request refused");
            }
            req.extensions_mut().insert(session.actor());
            return next.run(req).await;
        }
    }
    let mut response = api_error(StatusCode::UNAUTHORIZED, "authentication required");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
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
