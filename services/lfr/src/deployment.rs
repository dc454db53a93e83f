//! `lfr deployment`: the lifecycle of a deployment from the operator's terminal.
//!
//! ```text
//! lfr deployment create   --id match-day --name "Match day" --location "North gate" \
//!                         --cameras gate-1,gate-2 --start 2026-11-28T12:00:00Z --end 2026-11-28T18:00:00Z \
//!                         --purpose "Locate wanted offenders attending the match"
//! lfr deployment enrol    --id match-day --folder ./custody-images   # manifest.toml beside the images
//! lfr deployment authorise --id match-day --officer supt-17
//! lfr deployment review   --id match-day --reviewer insp-4 --digest <digest printed by enrol>
//! lfr deployment activate --id match-day
//! lfr deployment show     --id match-day
//! lfr deployment end      --id match-day --by supt-17                # ends and wipes the watch list
//! ```
//!
//! Every change is recorded on the AUDIT stream with who did it and why.

use lfr_common::audit::Audit;
use lfr_schemas::{AuditAction, Timestamp};
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::deployment::{Deployment, NewDeployment};
use lfr_watchlist::enrol::Enroller;
use lfr_watchlist::list::sha256_hex;
use lfr_watchlist::store::Store;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DeploymentArgs {
    /// NATS server holding the deployments.
    #[arg(
        long,
        env = "LFR_NATS__URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    nats_url: String,
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
    },
    /// Enrol the images of a folder (with its manifest.toml) as the deployment's watch list.
    Enrol {
        #[arg(long)]
        id: String,
        #[arg(long)]
        folder: PathBuf,
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
    let mut common = lfr_common::config::Common::default();
    common.nats.url = args.nats_url.clone();
    // Connecting through the bus declares the stream topology, AUDIT included.
    let registry = prometheus::Registry::new();
    let connect = lfr_common::bus::Bus::connect(&common, "cli", &registry);
    let bus = tokio::time::timeout(std::time::Duration::from_secs(10), connect)
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach NATS at {}", args.nats_url))??;
    let js = bus.jetstream.clone();
    let store = Store::open(&js).await?;
    let cli = |actor: &'static str| Audit {
        actor,
        role: "supervisor",
    };
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
        } => {
            let deployment = Deployment::create(NewDeployment {
                id,
                name,
                location,
                cameras,
                starts_at: parse_utc(&start)?,
                ends_at: parse_utc(&end)?,
                purpose,
                default_threshold: threshold,
            })?;
            store.create(&deployment).await?;
            cli("cli")
                .record(
                    &js,
                    AuditAction::ConfigurationChange,
                    Some(&deployment.id),
                    format!("deployment/{}", deployment.id),
                    "deployment created",
                    vec![],
                    None,
                )
                .await?;
            println!("created deployment {} (draft)", deployment.id);
        }
        Command::Enrol { id, folder, by } => {
            anyhow::ensure!(store.get(&id).await?.is_some(), "no deployment {id}");
            let mut enroller = Enroller::load(&ModelsConfig::default())?;
            let enrolment = tokio::task::block_in_place(|| enroller.enrol(&folder, &id))?;
            for r in &enrolment.refused {
                println!(
                    "REFUSED {} ({}): {}",
                    r.reference,
                    r.image.display(),
                    r.reason
                );
            }
            anyhow::ensure!(
                !enrolment.list.entries.is_empty(),
                "no image could be enrolled: nothing attached"
            );
            let images: Vec<(String, Vec<u8>)> = std::fs::read_dir(&folder)?
                .flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .map(|bytes| (sha256_hex(&bytes), bytes))
                .filter(|(sha, _)| {
                    enrolment
                        .list
                        .entries
                        .iter()
                        .any(|e| &e.image_sha256 == sha)
                })
                .collect();
            let attached = store.put_watchlist(&enrolment.list, &images).await?;
            store.update(&id, |d| d.attach(attached.clone())).await?;
            Audit {
                actor: &by,
                role: "supervisor",
            }
            .record(
                &js,
                AuditAction::Collection,
                Some(&id),
                format!("watchlist/{id}"),
                "watch list enrolled for the deployment",
                vec![],
                Some(attached.digest.clone()),
            )
            .await?;
            println!(
                "enrolled {} entries ({} subjects), refused {}; digest {}",
                attached.entries,
                attached.subjects,
                enrolment.refused.len(),
                attached.digest
            );
        }
        Command::Authorise { id, officer } => {
            store
                .update(&id, |d| d.authorise(&officer, Timestamp::now()))
                .await?;
            Audit {
                actor: &officer,
                role: "authorising-officer",
            }
            .record(
                &js,
                AuditAction::Alteration,
                Some(&id),
                format!("deployment/{id}"),
                "deployment authorised",
                vec![],
                None,
            )
            .await?;
            println!("deployment {id} authorised by {officer}");
        }
        Command::Review {
            id,
            reviewer,
            digest,
        } => {
            store
                .update(&id, |d| d.review(&reviewer, &digest, Timestamp::now()))
                .await?;
            Audit {
                actor: &reviewer,
                role: "supervisor",
            }
            .record(
                &js,
                AuditAction::Consultation,
                Some(&id),
                format!("watchlist/{id}"),
                "watch list reviewed before deployment",
                vec![],
                Some(digest.clone()),
            )
            .await?;
            println!("watch list {digest} of {id} reviewed by {reviewer}");
        }
        Command::Activate { id, by } => {
            store.update(&id, |d| d.activate(Timestamp::now())).await?;
            Audit {
                actor: &by,
                role: "supervisor",
            }
            .record(
                &js,
                AuditAction::Alteration,
                Some(&id),
                format!("deployment/{id}"),
                "deployment activated",
                vec![],
                None,
            )
            .await?;
            println!("deployment {id} is active");
        }
        Command::End { id, by } => {
            store.update(&id, |d| d.end(Timestamp::now())).await?;
            let wiped = store.wipe(&id).await?;
            Audit {
                actor: &by,
                role: "supervisor",
            }
            .record(
                &js,
                AuditAction::Erasure,
                Some(&id),
                format!("watchlist/{id}"),
                &format!(
                    "deployment ended: {} messages ({} bytes) securely erased, images {}",
                    wiped.messages_erased,
                    wiped.bytes_erased,
                    wiped.image_sha256s.join(",")
                ),
                vec![],
                wiped.list_digest.clone(),
            )
            .await?;
            println!("deployment {id} ended; {}", serde_json::to_string(&wiped)?);
        }
        Command::Show { id } => {
            let deployments = match id {
                Some(id) => vec![store
                    .get(&id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no deployment {id}"))?],
                None => store.all().await?,
            };
            for d in deployments {
                let verification = store.verification(&d).await?;
                println!("{}", serde_json::to_string_pretty(&d)?);
                println!("verification: {verification:?}");
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) to a timestamp.
pub fn parse_utc(s: &str) -> anyhow::Result<Timestamp> {
    let bad = || anyhow::anyhow!("{s:?} is not a UTC time like 2026-11-28T12:00:00Z");
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().map_err(|_| bad());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    anyhow::ensure!(secs >= 0, "{s} is before 1970");
    Ok(Timestamp(secs as u64 * 1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::parse_utc;

    #[test]
    fn utc_times_parse_and_nonsense_does_not() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z").unwrap().0, 0);
        assert_eq!(
            parse_utc("2026-11-28T12:00:00Z").unwrap().0 / 1_000_000_000,
            1_795_867_200
        );
        for bad in [
            "2026-11-28 12:00:00",
            "2026-13-01T00:00:00Z",
            "tomorrow",
            "2026-11-28T12:00:00+01:00",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad}");
        }
    }
}
