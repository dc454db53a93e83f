//! lfr-detect: takes frames from FRAMES, finds faces, publishes aligned face chips with their
//! upper-torso context to FACES, and acknowledges the frame: a frame with no face leaves nothing.

use lfr_common::{config, service, telemetry, Shutdown};
use lfr_detect::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = service::config_path_from_args("detect", "frames in, faces out");
    let config: Config = config::load(path.as_deref())?;
    telemetry::init_logging(&config.common.log);
    let running = lfr_detect::start(config, Shutdown::on_signals()).await?;
    running.done.await?;
    Ok(())
}
