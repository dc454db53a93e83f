//! Service start-up shared by every binary: configuration from `--config`, logs, the telemetry
//! endpoints, the bus connection as the service's own identity, and the wait for the topology it
//! uses, in the order that makes failures clear.

use crate::bus::Bus;
use crate::config::Common;
use crate::telemetry::{self, Health};
use crate::topology;
use crate::Shutdown;
use prometheus::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What a running service holds on to.
pub struct Context {
    pub name: &'static str,
    pub registry: Registry,
    pub health: Health,
    pub shutdown: Shutdown,
    /// Where `/metrics` actually listens (the configured port may be 0 in tests).
    pub metrics_addr: SocketAddr,
    pub bus: Bus,
}

/// Serve telemetry, connect to the bus, and wait until every stream, bucket and consumer the
/// service uses exists as the contract says (`/readyz` answers 503 with what is missing meanwhile).
/// `/healthz` answers from the first moment; `/readyz` stays 503 until the service calls
/// `health.set_ready(true)`.
pub async fn start(
    name: &'static str,
    common: &Common,
    http_addr: SocketAddr,
    shutdown: Shutdown,
) -> anyhow::Result<Context> {
    let registry = telemetry::registry(name);
    let health = Health::default();
    let metrics_addr = telemetry::serve(
        http_addr,
        registry.clone(),
        health.clone(),
        shutdown.clone(),
    )
    .await?;
    let bus = tokio::select! {
        bus = Bus::connect(common, name, &registry) => bus?,
        _ = shutdown.requested() => anyhow::bail!("shut down before NATS was reached"),
    };
    health.watch_nats(bus.client.clone());
    wait_for_topology(&bus, &health, &shutdown).await?;
    Ok(Context {
        name,
        registry,
        health,
        shutdown,
        metrics_addr,
        bus,
    })
}

/// Return once what `bus`'s identity uses is in place; until then `/readyz` says what is missing.
/// `Err` only when shutdown is requested first.
pub async fn wait_for_topology(
    bus: &Bus,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let mut reported = String::new();
    loop {
        let problems = tokio::select! {
            p = bus.topology_problems() => p,
            _ = shutdown.requested() => anyhow::bail!("shut down while waiting for the topology"),
        };
        if problems.is_empty() {
            health.set_waiting(None);
            if !reported.is_empty() {
                tracing::info!("topology in place");
            }
            return Ok(());
        }
        let why = format!(
            "topology not as the contract says ({}); the administrator declares it with `lfr bus init`",
            problems.join("; ")
        );
        if why != reported {
            tracing::warn!(reason = %why, "not ready");
            reported = why.clone();
        }
        health.set_waiting(Some(why));
        tokio::select! {
            _ = tokio::time::sleep(topology::RECHECK) => {}
            _ = shutdown.requested() => anyhow::bail!("shut down while waiting for the topology"),
        }
    }
}

/// A started service: where its telemetry listens, and a task that ends when it has stopped.
pub struct Running {
    pub metrics_addr: SocketAddr,
    pub done: tokio::task::JoinHandle<()>,
}

/// The config file named on the command line (`--config PATH` or `-c PATH`), if any.
/// `--help` prints usage and exits.
pub fn config_path_from_args(service: &str, about: &str) -> Option<PathBuf> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" | "--config" => path = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!(
                    "lfr-{service}: {about}\n\nUsage: lfr-{service} [--config FILE]\n\n\
                     FILE (or LFR_CONFIG) is the lfr TOML configuration; any value can be\n\
                     overridden with LFR_SECTION__KEY environment variables (docs/configuration.md)."
                );
                std::process::exit(0);
            }
            other => {
                eprintln!("lfr-{service}: unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    path
}
