//! The command line's connection to NATS: one bus connection (which declares the stream topology,
//! AUDIT included, so commands can record what they do), or a clear error within ten seconds.

use lfr_common::bus::Bus;
use std::time::Duration;

pub async fn bus(nats_url: &str) -> anyhow::Result<Bus> {
    let mut common = lfr_common::config::Common::default();
    common.nats.url = nats_url.into();
    let registry = prometheus::Registry::new();
    let connect = Bus::connect(&common, "cli", &registry);
    tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach NATS at {nats_url}"))?
}
