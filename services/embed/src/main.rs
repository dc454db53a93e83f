//! lfr-embed: takes aligned faces from FACES, computes their templates, and publishes them to
//! EMBEDDINGS with what the matcher and an alert need.

use lfr_common::{config, service, telemetry, Shutdown};
use lfr_embed::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = service::config_path_from_args("embed", "faces in, templates out");
    let config: Config = config::load(path.as_deref())?;
    telemetry::init_logging(&config.common.log);
    let running = lfr_embed::start(config, Shutdown::on_signals()).await?;
    running.done.await?;
    Ok(())
}
