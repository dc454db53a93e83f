//! The command line's connection to NATS: `--nats-url` (or `LFR_NATS__URL`) for every command that
//! needs one, then either a bus connection (which declares the stream topology, AUDIT included, so
//! commands can record what they do) or a plain read-only one, or a clear error within ten seconds.

use lfr_common::bus::Bus;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug, Clone)]
pub struct NatsArgs {
    /// NATS server of the lfr system.
    #[arg(
        long = "nats-url",
        env = "LFR_NATS__URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub url: String,
    /// NATS credentials file (`.creds`), where the server requires authentication.
    #[arg(
        long = "nats-credentials",
        env = "LFR_NATS__CREDENTIALS",
        global = true
    )]
    pub credentials: Option<std::path::PathBuf>,
}

impl NatsArgs {
    /// A bus connection, as the services have.
    pub async fn bus(&self) -> anyhow::Result<Bus> {
        let mut common = lfr_common::config::Common::default();
        common.nats.url = self.url.clone();
        common.nats.credentials = self.credentials.clone();
        let registry = prometheus::Registry::new();
        let connect = Bus::connect(&common, "cli", &registry);
        tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| anyhow::anyhow!("cannot reach NATS at {}", self.url))?
    }

    /// A plain connection that declares and changes nothing (for read-only commands).
    pub async fn jetstream(&self, name: &str) -> anyhow::Result<async_nats::jetstream::Context> {
        let url = &self.url;
        let mut options = async_nats::ConnectOptions::new().name(name);
        if let Some(creds) = &self.credentials {
            options = options
                .credentials_file(creds)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", creds.display()))?;
        }
        let connect = options.connect(url);
        let client = tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| anyhow::anyhow!("cannot reach NATS at {url}"))?
            .map_err(|e| anyhow::anyhow!("cannot connect to NATS at {url}: {e}"))?;
        Ok(async_nats::jetstream::new(client))
    }
}

/// A bus connection to `url` (for `lfr up`, which knows its own server).
pub async fn bus(url: &str) -> anyhow::Result<Bus> {
    NatsArgs {
        url: url.into(),
        credentials: None,
    }
    .bus()
    .await
}
