//! lfr-dispatch: serves the operator review console and the officers' handheld feed; every
//! candidate alert waits for an operator's confirmation before any officer sees it.

use lfr_common::{config, service, telemetry, Shutdown};
use lfr_dispatch::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = service::config_path_from_args(
        "dispatch",
        "alerts to operators, confirmed alerts to officers",
    );
    let config: Config = config::load(path.as_deref())?;
    telemetry::init_logging(&config.common.log);
    let running = lfr_dispatch::start(config, Shutdown::on_signals()).await?;
    running.done.await?;
    Ok(())
}
