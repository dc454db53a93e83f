//! lfr-match: compares every probe template with the active watch list, raises a candidate alert on
//! ALERTS when a match is corroborated, and discards everything else at once.

use lfr_common::{config, service, telemetry, Shutdown};
use lfr_match::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = service::config_path_from_args("match", "templates against the watch list");
    let config: Config = config::load(path.as_deref())?;
    telemetry::init_logging(&config.common.log);
    let running = lfr_match::start(config, Shutdown::on_signals()).await?;
    running.done.await?;
    Ok(())
}
