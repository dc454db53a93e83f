//! Telemetry: structured logs, a Prometheus registry per service, and the three HTTP endpoints an
//! orchestrator and a scraper need.
//!
//! - `/metrics`: the service's registry in Prometheus text format. Every metric is named
//!   `lfr_<what>_<unit>` and carries a constant `service` label; no label ever holds face data,
//!   identities or watch-list names.
//! - `/healthz`: the process is alive (200 while the HTTP task runs).
//! - `/readyz`: the service can do its job: connected to NATS and past its own start-up checks
//!   (503 with the reason otherwise), so Kubernetes sends no work to a replica that cannot take it.
//!
//! Log lines go to standard output, and are dropped once it is gone: after Ctrl-C on
//! `scripts/run.sh | tee log` the reader dies first, and a service must still stop. The stock
//! writer would report the failed write on stderr, and `eprintln!` panics when stderr is closed
//! too: the task that logged (the signal handler's, say) dies mid-shutdown.

use crate::config::{LogConfig, LogFormat};
use crate::Shutdown;
use axum::{extract::State, http::StatusCode, routing::get, Router};
use prometheus::{Encoder, Registry, TextEncoder};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Install the global log subscriber. Safe to call more than once (tests start several services
/// in one process): later calls keep the first subscriber.
pub fn init_logging(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogOut)
        .log_internal_errors(false);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Set once standard output has no reader: later lines are not even tried.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Standard output for log lines: a line that cannot be written is dropped, never an error (so
/// never a report on stderr), and a closed pipe stops all further writes.
struct LogOut;

impl Write for LogOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    /// One locked write per line, so lines of different threads never interleave.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if STDOUT_GONE.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Err(e) = io::stdout().lock().write_all(buf) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                STDOUT_GONE.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stdout().flush();
        Ok(())
    }
}

/// A registry whose metrics are all prefixed `lfr_` and labelled with the service name.
pub fn registry(service: &str) -> Registry {
    let labels = HashMap::from([("service".to_string(), service.to_string())]);
    Registry::new_custom(Some("lfr".into()), Some(labels)).expect("static registry settings")
}

/// What `/readyz` reports. Services flip `ready` once start-up is done; a NATS client, when set,
/// must also be connected.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    nats: Arc<std::sync::OnceLock<async_nats::Client>>,
    /// What the service waits for, when something outside it is missing (the topology).
    waiting: Arc<std::sync::Mutex<Option<String>>>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Not ready because of `why` until called with `None`.
    pub fn set_waiting(&self, why: Option<String>) {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    pub fn watch_nats(&self, client: async_nats::Client) {
        let _ = self.nats.set(client);
    }

    /// `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if let Some(client) = self.nats.get() {
            let state = client.connection_state();
            if state != async_nats::connection::State::Connected {
                return Err(format!("NATS {state}"));
            }
        }
        if let Some(why) = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(why);
        }
        if !self.ready.load(Ordering::Relaxed) {
            return Err("starting".into());
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Endpoints {
    registry: Registry,
    health: Health,
}

/// Serve `/metrics`, `/healthz` and `/readyz` on `addr` until shutdown. Returns the bound address
/// (useful with port 0 in tests).
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: Health,
    shutdown: Shutdown,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Endpoints { registry, health });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.requested().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    Ok(bound)
}

async fn metrics(State(s): State<Endpoints>) -> (StatusCode, String) {
    let mut out = Vec::new();
    match TextEncoder::new().encode(&s.registry.gather(), &mut out) {
        Ok(()) => (StatusCode::OK, String::from_utf8_lossy(&out).into_owned()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn readyz(State(s): State<Endpoints>) -> (StatusCode, String) {
    match s.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Histogram buckets for latencies from sub-millisecond bus hops to multi-second backlogs.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
