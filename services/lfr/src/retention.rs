//! `lfr retention`: what alert data is held, why, and until when; erasure on demand; releasing a
//! legal hold.
//!
//! ```text
//! lfr retention report [--json]          # per deployment: held, legal holds, next erasure, overdue
//! lfr retention purge                    # ask the purge service for a pass now
//! lfr retention release --alert ID --case CASE-REF --by sup-1
//! ```
//!
//! A release names the case the data was kept for and is recorded on ALERTS and AUDIT; the
//! alert's ordinary retention then applies (if it is already older, the next pass erases it).

use lfr_alerts::feed;
use lfr_common::audit::Audit;
use lfr_purge::report;
use lfr_schemas::{streams, subjects, AuditAction, HoldReleased, Timestamp};
use std::time::Duration;

#[derive(clap::Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Per deployment: alerts held, under legal hold, overdue, and when each will be erased.
    Report {
        /// Retention period the purge service applies, in days.
        #[arg(long, default_value_t = 30.0)]
        retention_days: f64,
        #[arg(long)]
        json: bool,
    },
    /// Ask the purge service to run a pass now, and print what it did.
    Purge,
    /// Release the legal hold an arrest placed on an alert.
    Release {
        #[arg(long)]
        alert: String,
        /// The force's case reference the data was held for.
        #[arg(long = "case")]
        case_reference: String,
        /// Account id of the supervisor releasing it.
        #[arg(long)]
        by: String,
    },
}

pub async fn run(args: RetentionArgs) -> anyhow::Result<()> {
    let bus = args.nats.bus().await?;
    let js = &bus.jetstream;
    match args.command {
        Command::Report {
            retention_days,
            json,
        } => {
            let book = feed::snapshot(js).await?;
            let retention = Duration::from_secs_f64(retention_days * 86_400.0);
            let policy = lfr_purge::policy::Policy {
                retention,
                grace: Duration::from_secs(2 * 3600),
            };
            let report = report::build(&book, &policy, Timestamp::now());
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
        }
        Command::Purge => {
            let reply = tokio::time::timeout(
                Duration::from_secs(120),
                bus.client.request(lfr_purge::RUN_SUBJECT, "".into()),
            )
            .await
            .map_err(|_| anyhow::anyhow!("the purge service did not finish a pass in 2 minutes"))?
            .map_err(|e| anyhow::anyhow!("no purge service answered: {e}"))?;
            let summary: lfr_purge::PassSummary = serde_json::from_slice(&reply.payload)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Command::Release {
            alert,
            case_reference,
            by,
        } => {
            anyhow::ensure!(
                !case_reference.trim().is_empty(),
                "a case reference is required"
            );
            let book = feed::snapshot(js).await?;
            let entry = book
                .get(&alert)
                .ok_or_else(|| anyhow::anyhow!("no alert {alert} is held"))?;
            anyhow::ensure!(
                entry.on_legal_hold(),
                "alert {alert} is not under legal hold"
            );
            let deployment = entry.alert.deployment.clone();
            let release = HoldReleased {
                alert_id: alert.clone(),
                deployment: deployment.clone(),
                actor: by.clone(),
                case_reference: case_reference.clone(),
                released_at: Timestamp::now(),
            };
            bus.publish_record(
                streams::ALERTS,
                subjects::hold_releases(&deployment),
                &format!("{alert}.release"),
                &release,
            )
            .await?
            .acknowledged()
            .await?;
            Audit {
                actor: &by,
                role: "supervisor",
            }
            .record(
                js,
                AuditAction::Alteration,
                Some(&deployment),
                format!("alert/{alert}"),
                &format!("legal hold released (case {case_reference}): ordinary retention applies"),
                vec![],
                None,
            )
            .await?;
            println!("legal hold on {alert} released (case {case_reference})");
        }
    }
    Ok(())
}

fn print_report(report: &report::Report) {
    println!(
        "retention {} days; {} deployments with alert data",
        report.retention_days,
        report.deployments.len()
    );
    for d in &report.deployments {
        println!(
            "\n{}: {} alerts, {} under legal hold, {} overdue, next erasure {}",
            d.deployment,
            d.alerts,
            d.legal_holds,
            d.overdue,
            d.next_erasure.map_or("none".into(), utc)
        );
        for i in &d.items {
            println!(
                "  {}  {:<10} {:<9} {:<17} {:<22} erase after {}{}",
                i.alert_id,
                i.category,
                i.state,
                i.outcome.unwrap_or("-"),
                i.held_for,
                i.erase_after.map_or("(held)".into(), utc),
                if i.overdue { "  OVERDUE" } else { "" }
            );
        }
    }
}

/// `YYYY-MM-DD` of a timestamp (UTC).
fn utc(t: Timestamp) -> String {
    lfr_watchlist::time::format_utc(t)[..10].to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_print_as_utc_days() {
        assert_eq!(super::utc(lfr_schemas::Timestamp(0)), "1970-01-01");
        assert_eq!(
            super::utc(lfr_schemas::Timestamp(1_795_867_200 * 1_000_000_000)),
            "2026-11-28"
        );
    }
}
