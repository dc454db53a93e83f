//! `lfr retention`: what alert data is held, why, and until when; erasure on demand; holds for
//! a complaint, an access request or an investigation, their review and release.
//!
//! ```text
//! lfr retention report [--json]          # per deployment: held, holds, next erasure, overdue; every hold
//! lfr retention purge                    # ask the purge service for a pass now
//! lfr login --account sup-1                                # holds and releases act as an account
//! lfr retention hold (--alert ID | --deployment D) --reason complaint|access-request|investigation --case REF
//! lfr retention holds [--due-review] [--json]   # standing holds, with reason, case and age
//! lfr retention release (--alert ID | --deployment D) --case REF
//! ```
//!
//! A hold keeps an alert, or every alert of a deployment (present and future), whatever its age,
//! until released. Placing a hold that already stands records its **review**: holds are listed
//! for review once they have stood `--review-days` (90 by default, the purge service's
//! `hold_review`) without one. A release names the alert or deployment and the case; for an alert
//! with no hold of that case it releases the legal hold of an arrest. Each is recorded on ALERTS
//! and AUDIT (through [`lfr_alerts::holds`]); the alert's ordinary retention then applies (if it
//! is already older, the next pass erases it) unless another hold does.
//!
//! Placing and releasing are a supervisor's steps, taken as the logged-in account
//! ([`crate::login::supervisor`]): the hold and its audit event name that account, never a name
//! typed on the command line. `report` and `holds` only read, and `purge` only asks for the pass
//! the service would make anyway: they need no login.

use lfr_alerts::feed;
use lfr_alerts::holds::{self, HoldRequest, Released, Target};
use lfr_common::audit::Audit;
use lfr_purge::report;
use lfr_schemas::{HoldReason, Timestamp};
use lfr_watchlist::lifecycle::Actor;
use std::time::Duration;

#[derive(clap::Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
    #[command(subcommand)]
    command: Command,
}

/// What a hold names: one alert or a whole deployment.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// An alert (by id).
    #[arg(long)]
    alert: Option<String>,
    /// A whole deployment: every alert of it, present and future.
    #[arg(long)]
    deployment: Option<String>,
}

impl TargetArgs {
    fn target(self) -> Target {
        match (self.alert, self.deployment) {
            (Some(alert), _) => Target::Alert(alert),
            (None, Some(deployment)) => Target::Deployment(deployment),
            (None, None) => unreachable!("clap requires one"),
        }
    }
}

/// The periods the purge service applies (its `[purge]` configuration).
#[derive(clap::Args)]
struct PeriodArgs {
    /// Retention period the purge service applies, in days.
    #[arg(long, default_value_t = 30.0)]
    retention_days: f64,
    /// Review period of holds the purge service applies (`hold_review`), in days.
    #[arg(long, default_value_t = 90.0)]
    review_days: f64,
}

impl PeriodArgs {
    fn policy(&self) -> lfr_purge::policy::Policy {
        lfr_purge::policy::Policy {
            retention: Duration::from_secs_f64(self.retention_days * 86_400.0),
            grace: Duration::from_secs(2 * 3600),
            review: Duration::from_secs_f64(self.review_days * 86_400.0),
        }
    }
}

#[derive(clap::Subcommand)]
enum Command {
    /// Per deployment: alerts held, under a hold, overdue, and when each will be erased; every
    /// standing hold, with those due for review.
    Report {
        #[command(flatten)]
        periods: PeriodArgs,
        #[arg(long)]
        json: bool,
    },
    /// Ask the purge service to run a pass now, and print what it did.
    Purge,
    /// Hold an alert, or a whole deployment, for a case: kept until released. Placing a hold
    /// that stands again records its review.
    Hold {
        #[command(flatten)]
        target: TargetArgs,
        /// complaint, access-request or investigation.
        #[arg(long, value_parser = parse_reason)]
        reason: HoldReason,
        /// The force's case reference.
        #[arg(long = "case")]
        case_reference: String,
    },
    /// Standing holds: reason, case reference, age, last review.
    Holds {
        /// Only those that have stood the review period without review.
        #[arg(long)]
        due_review: bool,
        #[command(flatten)]
        periods: PeriodArgs,
        #[arg(long)]
        json: bool,
    },
    /// Release the hold naming an alert or deployment and a case; for an alert with no hold of
    /// that case, the legal hold an arrest placed on it.
    Release {
        #[command(flatten)]
        target: TargetArgs,
        /// The case reference of the hold (for an arrest: the case the data was held for).
        #[arg(long = "case")]
        case_reference: String,
    },
}

fn parse_reason(s: &str) -> Result<HoldReason, String> {
    HoldReason::parse(s).ok_or_else(|| {
        let names: Vec<&str> = HoldReason::ALL.iter().map(|r| r.as_str()).collect();
        format!("no hold reason {s:?}: {}", names.join(", "))
    })
}

/// The logged-in account, as the hold and its audit event name it.
fn audit(me: &Actor) -> Audit<'_> {
    Audit {
        actor: &me.id,
        role: &me.role,
    }
}

pub async fn run(args: RetentionArgs) -> anyhow::Result<()> {
    let bus = args.nats.bus().await?;
    let js = &bus.jetstream;
    match args.command {
        Command::Report { periods, json } => {
            let book = feed::snapshot(js).await?;
            let report = report::build(&book, &periods.policy(), Timestamp::now());
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
        Command::Hold {
            target,
            reason,
            case_reference,
        } => {
            let me = crate::login::supervisor(js, "lfr retention hold").await?;
            let target = target.target();
            let book = feed::snapshot(js).await?;
            if let Target::Deployment(id) = &target {
                // A hold on a deployment nobody created is a typing mistake, not a hold.
                let known = lfr_watchlist::store::Store::open(js).await?.get(id).await?;
                anyhow::ensure!(
                    known.is_some() || book.all().iter().any(|e| &e.alert.deployment == id),
                    "no deployment {id}"
                );
            }
            let placed = holds::place(
                &bus,
                &book,
                HoldRequest {
                    target: target.clone(),
                    reason,
                    case_reference: &case_reference,
                    by: audit(&me),
                    at: Timestamp::now(),
                },
            )
            .await?;
            let case = &placed.hold.case_reference;
            if placed.renewed {
                println!("hold on {target} for case {case} reviewed and kept (renewed)");
            } else {
                println!(
                    "{target} held ({}, case {case}): kept until released",
                    reason.as_str()
                );
            }
        }
        Command::Holds {
            due_review,
            periods,
            json,
        } => {
            let book = feed::snapshot(js).await?;
            let report = report::build(&book, &periods.policy(), Timestamp::now());
            let holds: Vec<&report::HoldItem> = report
                .holds
                .iter()
                .filter(|h| !due_review || h.due_review)
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&holds)?);
            } else {
                print_holds(&report, &holds);
            }
        }
        Command::Release {
            target,
            case_reference,
        } => {
            let me = crate::login::supervisor(js, "lfr retention release").await?;
            let target = target.target();
            let book = feed::snapshot(js).await?;
            let released = holds::release(
                &bus,
                &book,
                &target,
                &case_reference,
                audit(&me),
                Timestamp::now(),
            )
            .await?;
            match released {
                Released::Hold { hold, lifted } => println!(
                    "hold on {target} released ({}, case {})",
                    hold.reason().as_str(),
                    lifted.case_reference
                ),
                Released::Arrest(r) => println!(
                    "legal hold on {} released (case {})",
                    r.alert_id, r.case_reference
                ),
            }
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
            "\n{}: {} alerts, {} under hold, {} overdue, next erasure {}",
            d.deployment,
            d.alerts,
            d.legal_holds,
            d.overdue,
            d.next_erasure.map_or("none".into(), utc)
        );
        for i in &d.items {
            let corrected = if i.corrected_outcomes.is_empty() {
                String::new()
            } else {
                format!(" (corrected from {})", i.corrected_outcomes.join(", "))
            };
            println!(
                "  {}  {:<10} {:<9} {:<17} {:<22} erase after {}{}{corrected}",
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
    println!();
    let all: Vec<&report::HoldItem> = report.holds.iter().collect();
    print_holds(report, &all);
}

fn print_holds(report: &report::Report, holds: &[&report::HoldItem]) {
    println!(
        "holds: {} standing, {} due for review (not reviewed for {} days)",
        report.holds.len(),
        report.holds_due_review,
        report.review_days
    );
    for h in holds {
        println!(
            "  {:<16} {:<26} {:<15} {:<18} placed {} by {}, {:.0} days, reviewed {:.0} days ago, {} alerts{}",
            h.deployment,
            h.alert_id
                .as_deref()
                .map_or("(whole deployment)".into(), |a| format!("alert {a}")),
            h.reason,
            h.case_reference.as_deref().unwrap_or("-"),
            utc(h.placed_at),
            h.placed_by,
            h.age_days.floor(),
            h.days_since_review.floor(),
            h.alerts,
            if h.due_review { "  REVIEW DUE" } else { "" }
        );
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
