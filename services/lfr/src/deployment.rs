//! `lfr deployment`: the lifecycle of a deployment from the operator's terminal.
//!
//! ```text
//! lfr deployment create   --id match-day --name "Match day" --location "North gate" \
//!                         --cameras gate-1,gate-2 --start 2026-11-28T12:00:00Z --end 2026-11-28T18:00:00Z \
//!                         --purpose "Locate wanted offenders attending the match"
//! lfr deployment enrol    --id match-day --folder ./custody-images   # manifest.toml beside the images
//! lfr deployment enrol    --id match-day --archive custody.tar.gz     # or the same as a tar archive
//! lfr deployment authorise --id match-day --officer supt-17
//! lfr deployment review   --id match-day --reviewer insp-4 --digest <digest printed by enrol>
//! lfr deployment activate --id match-day
//! lfr deployment show     --id match-day
//! lfr deployment end      --id match-day --by supt-17                # ends and wipes the watch list
//! ```
//!
//! Every change is recorded on the AUDIT stream with who did it and why. The steps themselves (gates,
//! audit events, erasure) live in [`lfr_watchlist::lifecycle`], shared with the console's HTTP API:
//! this module only turns arguments into calls and results into lines of text.

use lfr_vision::config::ModelsConfig;
use lfr_watchlist::deployment::{self, NewDeployment};
use lfr_watchlist::lifecycle::{self, Actor, Lifecycle, RefusedEntry};
use lfr_watchlist::time::parse_utc;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DeploymentArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create a draft deployment.
    Create {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        location: String,
        /// Camera ids, comma-separated.
        #[arg(long, value_delimiter = ',')]
        cameras: Vec<String>,
        /// Start, UTC, as 2026-11-28T12:00:00Z.
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        #[arg(long)]
        purpose: String,
        /// Similarity at or above which a probe matches (calibrate with `lfr eval`).
        #[arg(long, default_value_t = 0.6)]
        threshold: f32,
        /// A category's own threshold where it differs, e.g. `risk=0.7` (repeat or comma-separate).
        #[arg(long = "category-threshold", value_delimiter = ',', value_parser = parse_category_threshold)]
        category_thresholds: Vec<(String, f32)>,
        /// Minutes of set-up window before the start and after the end, in which only the blue
        /// watch list is matched (staff volunteers' walks) and nothing reaches officers.
        #[arg(long = "setup-minutes", default_value_t = 0)]
        setup_minutes: u64,
    },
    /// Enrol the images of a folder (with its manifest.toml) as the deployment's watch list.
    Enrol {
        #[arg(long)]
        id: String,
        /// Folder of images with their manifest.toml.
        #[arg(long, required_unless_present = "archive", conflicts_with = "archive")]
        folder: Option<PathBuf>,
        /// The same as a tar archive (plain or gzip), as the console's API takes it.
        #[arg(long)]
        archive: Option<PathBuf>,
        /// Account id of the person enrolling.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Record the authorising officer's authorisation.
    Authorise {
        #[arg(long)]
        id: String,
        #[arg(long)]
        officer: String,
    },
    /// Record the review of the attached list (name the digest you reviewed).
    Review {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reviewer: String,
        #[arg(long)]
        digest: String,
    },
    /// Go live, if every gate is met.
    Activate {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// End the deployment and wipe its watch list.
    End {
        #[arg(long)]
        id: String,
        #[arg(long)]
        by: String,
    },
    /// Show a deployment (or all) with its verification state.
    Show {
        #[arg(long)]
        id: Option<String>,
    },
}

pub async fn run(args: DeploymentArgs) -> anyhow::Result<()> {
    let bus = args.nats.bus().await?;
    let lifecycle = Lifecycle::open(&bus.jetstream, ModelsConfig::default()).await?;
    let supervisor = |id: &str| Actor::new(id, "supervisor");
    match args.command {
        Command::Create {
            id,
            name,
            location,
            cameras,
            start,
            end,
            purpose,
            threshold,
            category_thresholds,
            setup_minutes,
        } => {
            let new = NewDeployment {
                id,
                name,
                location,
                cameras,
                starts_at: parse_utc(&start)?,
                ends_at: parse_utc(&end)?,
                purpose,
                default_threshold: threshold,
                thresholds: deployment::category_thresholds(category_thresholds)?,
                setup_window_secs: setup_minutes.saturating_mul(60),
            };
            let deployment = lifecycle.create(new, &supervisor("cli")).await?;
            println!("created deployment {} (draft)", deployment.id);
        }
        Command::Enrol {
            id,
            folder,
            archive,
            by,
        } => {
            let enrolled = match (folder, archive) {
                (Some(folder), _) => lifecycle.enrol(&id, &folder, &supervisor(&by)).await,
                (None, Some(archive)) => {
                    let bytes = std::fs::read(&archive)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", archive.display()))?;
                    lifecycle
                        .enrol_archive(&id, bytes.into(), &supervisor(&by))
                        .await
                }
                (None, None) => anyhow::bail!("name a --folder or an --archive"),
            };
            let enrolled = match enrolled {
                Ok(enrolled) => enrolled,
                Err(lifecycle::Error::NothingEnrolled { refused }) => {
                    print_refused(&refused);
                    anyhow::bail!("no image could be enrolled: nothing attached");
                }
                Err(e) => return Err(e.into()),
            };
            print_refused(&enrolled.refused);
            let attached = &enrolled.attached;
            println!(
                "enrolled {} entries ({} subjects), refused {}; digest {}",
                attached.entries,
                attached.subjects,
                enrolled.refused.len(),
                attached.digest
            );
        }
        Command::Authorise { id, officer } => {
            lifecycle
                .authorise(&id, &Actor::new(&officer, "authorising-officer"))
                .await?;
            println!("deployment {id} authorised by {officer}");
        }
        Command::Review {
            id,
            reviewer,
            digest,
        } => {
            lifecycle
                .review(&id, &supervisor(&reviewer), &digest)
                .await?;
            println!("watch list {digest} of {id} reviewed by {reviewer}");
        }
        Command::Activate { id, by } => {
            lifecycle.activate(&id, &supervisor(&by)).await?;
            println!("deployment {id} is active");
        }
        Command::End { id, by } => {
            let wiped = lifecycle.end(&id, &supervisor(&by)).await?;
            println!("deployment {id} ended; {}", serde_json::to_string(&wiped)?);
        }
        Command::Show { id } => {
            let views = match id {
                Some(id) => vec![lifecycle.show(&id).await?],
                None => {
                    let mut views = Vec::new();
                    for d in lifecycle.list().await? {
                        views.push(lifecycle.view(d).await?);
                    }
                    views
                }
            };
            for view in views {
                println!("{}", serde_json::to_string_pretty(&view.deployment)?);
                println!("verification: {}", verification_line(&view.verification));
            }
        }
    }
    Ok(())
}

fn print_refused(refused: &[RefusedEntry]) {
    for r in refused {
        println!("REFUSED {} ({}): {}", r.reference, r.image, r.reason);
    }
}

/// `Verified { replicas: 2 }` or `Unverified("why")`, as `show` has always printed it.
fn verification_line(v: &lifecycle::Verification) -> String {
    match v {
        lifecycle::Verification::Verified { replicas } => {
            format!("Verified {{ replicas: {replicas} }}")
        }
        lifecycle::Verification::Unverified { reason } => format!("Unverified({reason:?})"),
    }
}

/// `risk=0.7` to a category name and a threshold.
fn parse_category_threshold(s: &str) -> Result<(String, f32), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not CATEGORY=THRESHOLD, e.g. risk=0.7"))?;
    let value = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    Ok((name.trim().to_string(), value))
}
