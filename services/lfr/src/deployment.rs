//! `lfr deployment`: the lifecycle of a deployment from the operator's terminal.
//!
//! ```text
//! lfr login --account sgt-12                                          # every step acts as an account
//! lfr deployment create   --id match-day --name "Match day" --location "North gate" \
//!                         --cameras gate-1,gate-2 --start 2026-11-28T12:00:00Z --end 2026-11-28T18:00:00Z \
//!                         --purpose "Locate wanted offenders attending the match"
//! lfr deployment govern   --id match-day --gold "ACC Smith" --silver "Supt Jones" --bronze "Insp Patel" \
//!                         --objectives "..." --intelligence-case INT/2026/0042 --signage "Signs at every gate"
//! lfr deployment enrol    --id match-day --folder ./custody-images   # manifest.toml beside the images
//! lfr deployment enrol    --id match-day --archive custody.tar.gz     # or the same as a tar archive
//! lfr login --account supt-17 && lfr deployment authorise --id match-day   # not the enroller
//! lfr login --account insp-4  && lfr deployment review --id match-day --digest <digest printed by enrol>
//! lfr deployment activate --id match-day
//! lfr deployment show     --id match-day
//! lfr deployment end      --id match-day                               # ends and wipes the watch list
//! ```
//!
//! Without `--threshold` a deployment matches at the embedder's calibrated 1-in-1,000 point from
//! the model manifest; a looser one needs `--threshold-override "<reason>"`, recorded with the
//! deployment and on AUDIT. Every change is recorded on the AUDIT stream with who did it (the
//! logged-in account, [`crate::login`]) and why. The steps themselves (gates,
//! audit events, erasure) live in [`lfr_watchlist::lifecycle`], shared with the console's HTTP API:
//! this module only turns arguments into calls and results into lines of text.

use lfr_vision::config::ModelsConfig;
use lfr_watchlist::deployment::{self, Governance, NewDeployment, ThresholdOverride};
use lfr_watchlist::lifecycle::{self, Lifecycle, RefusedEntry};
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
        /// Similarity at or above which a probe matches (default: the embedder's calibrated
        /// 1-in-1,000 point, from the model manifest).
        #[arg(long)]
        threshold: Option<f32>,
        /// Why a threshold looser than the calibrated point is needed (required for one).
        #[arg(long = "threshold-override")]
        threshold_override: Option<String>,
        /// A category's own threshold where it differs, e.g. `risk=0.7` (repeat or comma-separate).
        #[arg(long = "category-threshold", value_delimiter = ',', value_parser = parse_category_threshold)]
        category_thresholds: Vec<(String, f32)>,
        /// Minutes of set-up window before the start and after the end, in which only the blue
        /// watch list is matched (staff volunteers' walks) and nothing reaches officers.
        #[arg(long = "setup-minutes", default_value_t = 0)]
        setup_minutes: u64,
        /// The governance record now (or later, with `govern`).
        #[command(flatten)]
        governance: Box<GovernanceArgs>,
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
    },
    /// Record the deployment's governance (required before authorisation; replacing it voids
    /// an authorisation).
    Govern {
        #[arg(long)]
        id: String,
        #[command(flatten)]
        governance: Box<GovernanceArgs>,
    },
    /// Authorise the attached list, as the logged-in officer (superintendent or above, not the
    /// enroller).
    Authorise {
        #[arg(long)]
        id: String,
    },
    /// Record your review of the attached list (name the digest you reviewed); again every
    /// 48 hours while it runs, or matching pauses.
    Review {
        #[arg(long)]
        id: String,
        #[arg(long)]
        digest: String,
    },
    /// Go live, if every gate is met.
    Activate {
        #[arg(long)]
        id: String,
    },
    /// End the deployment and wipe its watch list.
    End {
        #[arg(long)]
        id: String,
    },
    /// Show a deployment (or all) with its verification state.
    Show {
        #[arg(long)]
        id: Option<String>,
    },
}

/// The governance record's fields, as `create` and `govern` take them.
#[derive(clap::Args)]
struct GovernanceArgs {
    /// Strategic commander (gold), e.g. "ACC Smith".
    #[arg(long)]
    gold: Option<String>,
    /// Tactical commander (silver).
    #[arg(long)]
    silver: Option<String>,
    /// Operational commander(s) (bronze).
    #[arg(long)]
    bronze: Option<String>,
    /// The operational objectives.
    #[arg(long)]
    objectives: Option<String>,
    /// The intelligence case reference the watch list is drawn from.
    #[arg(long = "intelligence-case")]
    intelligence_case: Option<String>,
    /// Signage and notices given to the public.
    #[arg(long)]
    signage: Option<String>,
}

impl GovernanceArgs {
    /// The record, if any field was given (blank fields are refused at authorisation).
    fn record(self) -> Option<Governance> {
        let any = [
            &self.gold,
            &self.silver,
            &self.bronze,
            &self.objectives,
            &self.intelligence_case,
            &self.signage,
        ]
        .iter()
        .any(|f| f.is_some());
        any.then(|| Governance {
            gold: self.gold.unwrap_or_default(),
            silver: self.silver.unwrap_or_default(),
            bronze: self.bronze.unwrap_or_default(),
            objectives: self.objectives.unwrap_or_default(),
            intelligence_case: self.intelligence_case.unwrap_or_default(),
            signage: self.signage.unwrap_or_default(),
        })
    }
}

pub async fn run(args: DeploymentArgs) -> anyhow::Result<()> {
    let bus = args.nats.bus().await?;
    let lifecycle = Lifecycle::open(&bus.jetstream, ModelsConfig::default()).await?;
    if let Command::Show { id } = args.command {
        return show(&lifecycle, id).await;
    }
    let me = crate::login::signed_in(&bus.jetstream).await?;
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
            threshold_override,
            category_thresholds,
            setup_minutes,
            governance,
        } => {
            let threshold = match threshold {
                Some(t) => t,
                None => lifecycle.calibrated_threshold()?,
            };
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
                governance: governance.record(),
                threshold_override: threshold_override.map(|reason| ThresholdOverride {
                    calibrated: 0.0,
                    reason,
                    by: String::new(),
                }),
            };
            let deployment = lifecycle.create(new, &me).await?;
            println!(
                "created deployment {} (draft), threshold {}{}",
                deployment.id,
                deployment.default_threshold,
                match &deployment.threshold_override {
                    Some(o) => format!(" (below the calibrated {}, by override)", o.calibrated),
                    None => String::new(),
                }
            );
        }
        Command::Govern { id, governance } => {
            let governance = governance
                .record()
                .ok_or_else(|| anyhow::anyhow!("give the governance record's fields"))?;
            lifecycle.govern(&id, governance, &me).await?;
            println!("governance of {id} recorded (any earlier authorisation is void)");
        }
        Command::Enrol {
            id,
            folder,
            archive,
        } => {
            let enrolled = match (folder, archive) {
                (Some(folder), _) => lifecycle.enrol(&id, &folder, &me).await,
                (None, Some(archive)) => {
                    let bytes = std::fs::read(&archive)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", archive.display()))?;
                    lifecycle.enrol_archive(&id, bytes.into(), &me).await
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
        Command::Authorise { id } => {
            let d = lifecycle.authorise(&id, &me).await?;
            let digest = d.authorisation.map(|a| a.digest).unwrap_or_default();
            println!("deployment {id} (list {digest}) authorised by {}", me.id);
        }
        Command::Review { id, digest } => {
            let d = lifecycle.review(&id, &me, &digest).await?;
            let lapses = d
                .review_lapses_at()
                .map(lfr_watchlist::time::format_utc)
                .unwrap_or_default();
            println!(
                "watch list {digest} of {id} reviewed by {}; the review stands until {lapses}",
                me.id
            );
        }
        Command::Activate { id } => {
            lifecycle.activate(&id, &me).await?;
            println!("deployment {id} is active");
        }
        Command::End { id } => {
            let wiped = lifecycle.end(&id, &me).await?;
            println!("deployment {id} ended; {}", serde_json::to_string(&wiped)?);
        }
        Command::Show { .. } => unreachable!("answered above"),
    }
    Ok(())
}

/// `show`: reading needs no login (nothing is changed or recorded).
async fn show(lifecycle: &Lifecycle, id: Option<String>) -> anyhow::Result<()> {
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
        if let Some(deployment::Pause::ReviewLapsed { since }) =
            view.deployment.paused(lfr_schemas::Timestamp::now())
        {
            println!(
                "PAUSED: the review lapsed at {}; nothing is captured or matched until the list \
                 is reviewed again",
                lfr_watchlist::time::format_utc(since)
            );
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
