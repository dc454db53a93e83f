//! lfr-ingest: reads every configured camera (RTSP, V4L2, video file or image folder), samples it to
//! the configured frame rate, and publishes JPEG frames to `lfr.frames.<camera>`, where they expire
//! within seconds unless the detector takes them.

use lfr_common::{config, service, telemetry, Shutdown};
use lfr_ingest::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = service::config_path_from_args("ingest", "cameras in, frames on the bus");
    let config: Config = config::load(path.as_deref())?;
    telemetry::init_logging(&config.common.log);
    let running = lfr_ingest::start(config, Shutdown::on_signals()).await?;
    running.done.await?;
    Ok(())
}
