//! The command line's connection to NATS: `--nats-url` (or `LFR_NATS__URL`), the administrator's
//! credentials and the CA for every command that needs one, then either a bus connection (so
//! commands can record what they do on AUDIT) or a plain JetStream one, or a clear error within
//! ten seconds. The command line connects as the administrator identity; it declares nothing
//! unless asked to (`lfr bus init`).

use lfr_common::bus::Bus;
use lfr_common::config::NatsConfig;
use lfr_common::redact;
use lfr_schemas::permissions::Identity;
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
    /// The administrator's NATS credentials: an nkey seed file (`lfr bus credentials` writes
    /// `admin.nk`) or a `.creds` file.
    #[arg(
        long = "nats-credentials",
        env = "LFR_NATS__CREDENTIALS",
        global = true
    )]
    pub credentials: Option<std::path::PathBuf>,
    /// CA certificate (PEM) that signed the NATS server's certificate; TLS is then required.
    #[arg(long = "nats-ca", env = "LFR_NATS__CA", global = true)]
    pub ca: Option<std::path::PathBuf>,
}

impl NatsArgs {
    /// A bus connection, as the services have.
    pub async fn bus(&self) -> anyhow::Result<Bus> {
        let common = lfr_common::config::Common {
            nats: self.config(),
            ..Default::default()
        };
        let registry = prometheus::Registry::new();
        let connect = Bus::connect(&common, "cli", &registry);
        tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| anyhow::anyhow!("cannot reach NATS at {}", redact::url(&self.url)))?
    }

    /// A plain JetStream connection as the administrator.
    pub async fn jetstream(&self, name: &str) -> anyhow::Result<async_nats::jetstream::Context> {
        self.jetstream_as(name, Identity::Admin).await
    }

    /// A plain JetStream connection as `identity` (whose credentials these arguments hold).
    pub async fn jetstream_as(
        &self,
        name: &str,
        identity: Identity,
    ) -> anyhow::Result<async_nats::jetstream::Context> {
        let url = redact::url(&self.url);
        let options = lfr_common::bus::connect_options(&self.config(), identity)
            .await?
            .name(name);
        let connect = options.connect(lfr_common::bus::server_addrs(&self.url)?);
        let client = tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| anyhow::anyhow!("cannot reach NATS at {url}"))?
            .map_err(|e| anyhow::anyhow!("cannot connect to NATS at {url}: {e}"))?;
        Ok(async_nats::jetstream::new(client))
    }

    /// The connection settings these arguments describe.
    pub fn config(&self) -> NatsConfig {
        NatsConfig {
            url: self.url.clone(),
            credentials: self.credentials.clone(),
            ca: self.ca.clone(),
            ..Default::default()
        }
    }

    /// The arguments that reach a server with these settings.
    pub fn from_config(nats: &NatsConfig) -> NatsArgs {
        NatsArgs {
            url: nats.url.clone(),
            credentials: nats.credentials.clone(),
            ca: nats.ca.clone(),
        }
    }
}
