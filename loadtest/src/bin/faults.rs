//! lfr-faults: the pipeline on a three-node NATS cluster under camera load while nodes, stages
//! and the whole bus are killed and brought back; every watch-listed pass made while it was up
//! must be alerted exactly once (docs/resilience.md).

use clap::Parser;
use lfr_loadtest::faults::{self, Fault, Profile};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Parser, Debug)]
#[command(name = "lfr-faults", about = "Fault harness of the lfr pipeline")]
struct Args {
    /// `short` (each fault once, a few minutes: what scripts/test.sh runs) or `soak`.
    #[arg(long, default_value = "short")]
    profile: String,
    /// Only these faults (default: all).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<Fault>,
    /// Where faults.md, faults.json and the services' logs go.
    #[arg(long, default_value = "loadtest/results/faults")]
    out: PathBuf,
    /// Longest a recovery may take before the run counts as failed, seconds.
    #[arg(long, default_value_t = 30.0)]
    recovery_limit: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    lfr_common::telemetry::init_logging(&Default::default());
    let mut profile = match args.profile.as_str() {
        "short" => Profile::short(),
        "soak" => Profile::soak(),
        other => anyhow::bail!("unknown profile {other}: short or soak"),
    };
    if !args.faults.is_empty() {
        profile.faults = args.faults.clone();
    }
    let bin_dir = lfr_loadtest::system::own_bin_dir();
    let mut outcome = faults::run(&profile, &bin_dir, &args.out).await?;
    outcome.profile = args.profile.clone();
    let report = faults::write(&outcome, &args.out)?;
    print!("{}", outcome.markdown());
    println!("{}", report.display());
    let failures = outcome.failures(Duration::from_secs_f64(args.recovery_limit));
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}
