//! Service start-up shared by every binary: configuration from `--config`, logs, the telemetry
//! endpoints, and the bus connection, in the order that makes failures clear.

use crate::bus::Bus;
use crate::config::Common;
use crate::telemetry::{self, Health};
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

/// Serve telemetry, then connect to the bus and declare the topology. `/healthz` answers from the
/// first moment; `/readyz` stays 503 until the service calls `health.set_ready(true)`.
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
    Ok(Context {
        name,
        registry,
        health,
        shutdown,
        metrics_addr,
        bus,
    })
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
