//! `lfr bus`: the administrator's side of the bus.
//!
//! - `init` declares every stream, bucket and stage consumer of the contract (the only step that
//!   may; services check and wait). `--watch` keeps doing it, so memory streams lost with a NATS
//!   restart come back within seconds: `lfr up` does this itself, the Helm chart runs it beside
//!   NATS, the compose stack as a service of its own.
//! - `credentials` makes one nkey per identity: a seed file per component (mode 0600, give each
//!   component its own only) and `nats-users.conf`, the server's authorization block (public
//!   keys and the matrix's permissions, nothing secret), to include in the server configuration.
//! - `tls` makes a throw-away CA and a server certificate (for one box or a test cluster).
//! - `permissions` prints the matrix: as NATS configuration, as JSON (what the Helm chart reads),
//!   or as the Markdown table of `docs/security.md`.

use crate::connect::NatsArgs;
use lfr_identity::Credentials;
use lfr_schemas::permissions::{authorization_block, Identity};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct BusArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    command: BusCommand,
}

#[derive(clap::Subcommand)]
enum BusCommand {
    /// Declare every stream, bucket and stage consumer of the contract.
    Init {
        /// Keep checking, and declare again whatever goes missing (e.g. after a NATS restart).
        #[arg(long)]
        watch: bool,
        /// Seconds between checks with --watch.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// lfr configuration whose `[bus]` section sets the limits (TTL, sizes).
        #[arg(long, short, env = "LFR_CONFIG")]
        config: Option<PathBuf>,
        /// Whose credentials `--nats-credentials` holds: the topology keeper's (`bus`, which may
        /// declare and nothing else) or the administrator's.
        #[arg(long = "as", default_value = "bus")]
        identity: String,
    },
    /// Generate one nkey per identity into DIR: `<identity>.nk` seeds and `nats-users.conf`.
    Credentials {
        #[arg(long)]
        out: PathBuf,
        /// Keep seeds already in DIR (only make the missing ones).
        #[arg(long)]
        keep: bool,
    },
    /// Generate a throw-away CA and a server certificate for the given hosts into DIR.
    Tls {
        #[arg(long)]
        out: PathBuf,
        /// DNS name or IP address of the server (repeat for several).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
    /// Print the permission matrix.
    Permissions {
        #[arg(long, value_enum, default_value_t = Format::Markdown)]
        format: Format,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// The NATS server's authorization block, with placeholder keys.
    Nats,
    /// Per identity: publish allow/deny, subscribe allow, allow_responses (for the Helm chart).
    Json,
    /// The operators' table.
    Markdown,
}

pub async fn run(args: BusArgs) -> anyhow::Result<()> {
    lfr_common::telemetry::init_logging(&Default::default());
    match args.command {
        BusCommand::Init {
            watch,
            interval,
            config,
            identity,
        } => {
            let identity = Identity::of(&identity)
                .filter(|i| matches!(i, Identity::Bus | Identity::Admin))
                .ok_or_else(|| anyhow::anyhow!("--as takes bus or admin"))?;
            let common: lfr_common::config::Common = lfr_common::config::load(config.as_deref())?;
            let limits = common.bus.topology_limits();
            let js = args.nats.jetstream_as("lfr-bus-init", identity).await?;
            lfr_common::topology::declare(&js, &limits).await?;
            println!("topology declared");
            if watch {
                keep_declared(js, limits, Duration::try_from_secs_f64(interval)?).await;
            }
            Ok(())
        }
        BusCommand::Credentials { out, keep } => {
            let mut identities = Identity::ALL.to_vec();
            if keep {
                if let Ok(existing) = Credentials::load(&out) {
                    identities.retain(|i| existing.public_key(*i).is_none());
                }
            }
            Credentials::generate(&out, &identities)?;
            let creds = Credentials::load(&out)?;
            std::fs::write(
                out.join("nats-users.conf"),
                authorization_block(&creds.users),
            )?;
            println!(
                "{} nkeys in {} (seeds mode 0600), server authorization in {}",
                creds.users.len(),
                out.display(),
                out.join("nats-users.conf").display()
            );
            Ok(())
        }
        BusCommand::Tls { out, hosts } => {
            let files = lfr_identity::tls::generate(&out, &hosts)?;
            println!(
                "CA {}, server certificate {}, key {}",
                files.ca.display(),
                files.cert.display(),
                files.key.display()
            );
            Ok(())
        }
        BusCommand::Permissions { format } => {
            print!("{}", permissions(format)?);
            Ok(())
        }
    }
}

/// Declare again whatever goes missing, until stopped.
pub async fn keep_declared(
    js: async_nats::jetstream::Context,
    limits: lfr_schemas::streams::TopologyLimits,
    every: Duration,
) {
    loop {
        match lfr_common::topology::repair(&js, &limits).await {
            Ok(repaired) if !repaired.is_empty() => {
                tracing::warn!(repaired = %repaired.join("; "), "topology declared again")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot declare the topology; will retry"),
        }
        tokio::time::sleep(every).await;
    }
}

fn permissions(format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Nats => authorization_block(
            &Identity::ALL
                .iter()
                .map(|i| (*i, format!("<public nkey of {}>", i.name())))
                .collect::<Vec<_>>(),
        ),
        Format::Json => {
            let map: serde_json::Map<String, serde_json::Value> = Identity::ALL
                .iter()
                .map(|i| Ok((i.name().to_string(), serde_json::to_value(i.permissions())?)))
                .collect::<anyhow::Result<_>>()?;
            serde_json::to_string_pretty(&map)? + "\n"
        }
        Format::Markdown => markdown(),
    })
}

/// The matrix in the domain's terms, one row per identity.
pub fn markdown() -> String {
    let mut out = String::from("| identity | may |\n|---|---|\n");
    for i in Identity::ALL {
        let grants: Vec<String> = i.grants().iter().map(|g| g.describe()).collect();
        out += &format!("| {} | {} |\n", i.name(), grants.join("; "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart renders the NATS users from this file: it must be what the contract says.
    #[test]
    fn the_charts_permission_file_is_the_contracts() {
        let committed = include_str!("../../../helm/lfr/files/nats-permissions.json");
        assert_eq!(
            committed,
            permissions(Format::Json).unwrap(),
            "helm/lfr/files/nats-permissions.json is stale: regenerate it with \
             `lfr bus permissions --format json > helm/lfr/files/nats-permissions.json`"
        );
    }

    /// docs/security.md shows the matrix: it must be the contract's.
    #[test]
    fn the_security_docs_show_the_contracts_matrix() {
        let docs = include_str!("../../../docs/security.md");
        assert!(
            docs.contains(&markdown()),
            "docs/security.md's permission table is stale: paste `lfr bus permissions`"
        );
    }
}
