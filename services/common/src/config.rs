//! Configuration: built-in defaults, then a TOML file, then environment variables.
//!
//! The file is named by `--config` or `LFR_CONFIG`; it holds every service's section so one file
//! describes a whole deployment. Any value can be overridden from the environment with `LFR_` and
//! the path in upper case joined by `__`, e.g. `LFR_NATS__URL=nats://10.0.0.5:4222` or
//! `LFR_INGEST__HTTP_ADDR=0.0.0.0:9101`. See `docs/configuration.md`.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Load a service's configuration. `T::default()` supplies every value not given elsewhere.
pub fn load<T>(file: Option<&Path>) -> anyhow::Result<T>
where
    T: DeserializeOwned + Serialize + Default,
{
    let file: Option<PathBuf> = file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("LFR_CONFIG").map(PathBuf::from));
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = &file {
        anyhow::ensure!(
            path.exists(),
            "config file {} does not exist",
            path.display()
        );
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed("LFR_").split("__").ignore(&["config"]));
    figment.extract().map_err(|e| {
        anyhow::anyhow!(
            "invalid configuration{}: {e}",
            file.map(|p| format!(" in {}", p.display()))
                .unwrap_or_default()
        )
    })
}

/// A configured count of workers, where `0` means one per core this process may use (its CPU
/// limit in a container).
pub fn workers(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Sections shared by every service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Common {
    pub nats: NatsConfig,
    pub bus: BusConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsConfig {
    /// Comma-separated server URLs; `tls://` requires TLS.
    pub url: String,
    /// This component's own credentials (a Kubernetes secret mounted into its pods only): a file
    /// holding its nkey seed (`SU...`, what `lfr bus credentials` writes), or a `.creds` file (JWT
    /// and seed) for a server run in operator mode.
    pub credentials: Option<PathBuf>,
    /// PEM file of the certificate authority that signed the server's certificate. Given, TLS is
    /// required even with `nats://` URLs.
    pub ca: Option<PathBuf>,
    /// How long a JetStream publish waits for the server's acknowledgement.
    #[serde(with = "secs")]
    pub ack_timeout: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            credentials: None,
            ca: None,
            ack_timeout: Duration::from_secs(2),
        }
    }
}

/// Limits of the bus topology; see `lfr_schemas::streams`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BusConfig {
    /// Age limit of FRAMES, FACES and EMBEDDINGS, and the TTL of every message on them: what is
    /// not processed by then is gone.
    #[serde(with = "secs")]
    pub transient_ttl: Duration,
    /// Memory cap of each transient stream in bytes (discard oldest beyond).
    pub transient_max_bytes: i64,
    /// Age limit of the console sessions bucket: no session outlives it (`dispatch.auth.
    /// session_ttl` must not exceed it).
    #[serde(with = "secs")]
    pub sessions_max_age: Duration,
    /// Copies of every record stream and bucket on distinct NATS servers: 1 on one server, 3 on
    /// a three-node cluster (survives one node). Transient streams always keep one.
    pub replicas: usize,
    /// How old a frame may be when detect or embed takes it; older ones are dropped unprocessed
    /// and counted (`lfr_stage_shed_total`), so past capacity latency stays near this instead of
    /// climbing to `transient_ttl`. At most `transient_ttl`.
    #[serde(with = "secs")]
    pub latency_budget: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        let limits = lfr_schemas::streams::TopologyLimits::default();
        BusConfig {
            transient_ttl: limits.transient_max_age,
            transient_max_bytes: limits.transient_max_bytes,
            sessions_max_age: limits.session_max_age,
            replicas: limits.replicas,
            latency_budget: Duration::from_secs(2),
        }
    }
}

impl BusConfig {
    /// The topology these limits describe: what `lfr bus init` declares and services check.
    pub fn topology_limits(&self) -> lfr_schemas::streams::TopologyLimits {
        lfr_schemas::streams::TopologyLimits {
            transient_max_age: self.transient_ttl,
            transient_max_bytes: self.transient_max_bytes,
            session_max_age: self.sessions_max_age,
            replicas: self.replicas,
            ..Default::default()
        }
    }

    /// Refuse limits that contradict each other.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.latency_budget <= self.transient_ttl,
            "bus.latency_budget ({:?}) exceeds bus.transient_ttl ({:?}): frames would expire first",
            self.latency_budget,
            self.transient_ttl
        );
        anyhow::ensure!(
            (1..=5).contains(&self.replicas),
            "bus.replicas must be 1 to 5 (JetStream's limit), not {}",
            self.replicas
        );
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `json` for machines (the default in containers) or `pretty` for a terminal.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info,lfr_ingest=debug`. `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Durations in configuration are written as (possibly fractional) seconds.
pub mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}
