//! lfr-purge: erases retained alert data when its retention period ends (unless an outcome put it
//! under legal hold), wipes ended deployments' watch lists, and records every erasure.

use lfr_common::{config, service, telemetry, Shutdown};
use lfr_purge::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = service::config_path_from_args("purge", "retention enforcement");
    let config: Config = config::load(path.as_deref())?;
    telemetry::init_logging(&config.common.log);
    let running = lfr_purge::start(config, Shutdown::on_signals()).await?;
    running.done.await?;
    Ok(())
}
