//! lfr: the operator's command line. `lfr up` runs the whole system on one box.

mod access;
mod account;
mod audit;
mod bus;
mod connect;
mod deployment;
mod eval;
mod login;
mod retention;
mod up;
mod vault;

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
    /// The bus: declare the topology (`init`), make credentials and certificates, show who may
    /// do what (`permissions`).
    Bus(bus::BusArgs),
    /// Run every service on this machine against a local NATS server, with a sample camera when no
    /// camera is configured. Stops cleanly on Ctrl-C or SIGTERM.
    Up(up::UpArgs),
    /// Measure open-set identification accuracy on labelled photos (one folder per person) and the
    /// threshold for a target false-alert rate; writes report.md, report.json and det.svg.
    Eval(eval::run::EvalArgs),
    /// Log in as your console account: every command that records who acted acts as it.
    Login(login::LoginArgs),
    /// End the command line's session.
    Logout(login::LogoutArgs),
    /// Create, enrol, authorise, review, activate, show and end deployments.
    Deployment(deployment::DeploymentArgs),
    /// Create, list, assign, disable and set passwords of console accounts (the first
    /// supervisor is created this way: there is no default account).
    Account(account::AccountArgs),
    /// Verify the audit log's hash chain, and query it (read-only).
    Audit(audit::AuditArgs),
    /// What alert data is held, why and until when; erase on demand; release a legal hold.
    Retention(retention::RetentionArgs),
    /// A data subject's right of access: register a request, find the alerts in its scope that
    /// show the requester, and export them with every other face blurred (recorded against the
    /// request and on AUDIT).
    Access(access::AccessArgs),
    /// The master key: rotate it (every data key re-wrapped, the old copies securely erased).
    Vault(vault::VaultArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
        Command::Bus(args) => bus::run(args).await,
        Command::Login(args) => login::login(args).await,
        Command::Logout(args) => login::logout(args).await,
        Command::Deployment(args) => deployment::run(args).await,
        Command::Account(args) => account::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Retention(args) => retention::run(args).await,
        Command::Access(args) => access::run(args).await,
        Command::Vault(args) => vault::run(args).await,
        Command::Eval(args) => {
            lfr_common::telemetry::init_logging(&Default::default());
            tokio::task::spawn_blocking(move || eval::run::run(args)).await?
        }
    }
}
