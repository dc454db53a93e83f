//! lfr: the operator's command line. `lfr up` runs the whole system on one box.

mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lfr",
    version,
    about = "Live facial recognition: operator command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service on this machine against a local NATS server, with a sample camera when no
    /// camera is configured. Stops cleanly on Ctrl-C or SIGTERM.
    Up(up::UpArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
    }
}
