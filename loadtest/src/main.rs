//! lfr-loadtest: ramps simulated cameras through the pipeline until the latency budget breaks,
//! and writes the report (docs: loadtest/README.md).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = lfr_loadtest::cli::Args::parse();
    lfr_common::telemetry::init_logging(&Default::default());
    let report = lfr_loadtest::cli::run(args).await?;
    println!("{}", report.display());
    Ok(())
}
