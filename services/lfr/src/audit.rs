//! `lfr audit`: check and read the audit log (the AUDIT stream's hash chain).
//!
//! ```text
//! lfr audit verify                                   # exit 0 intact, 1 broken, 2 could not check
//! lfr audit verify --anchor 1234:<hash>              # ... and still passing through that point
//! lfr audit verify --from 5678                       # only what follows an investigated break
//! lfr audit query --deployment match-day --action disclosure --since 2026-11-28T12:00:00Z
//! lfr audit query --actor op-17 --object 'alert/*' --json
//! ```
//!
//! Both are read-only: they connect without declaring streams and record nothing (reading the log
//! is not itself logged). See `docs/audit.md`.

use lfr_common::audit::{self, Anchor, AuditFilter, ChainReport, ObjectMatch, StoredEvent};
use lfr_schemas::AuditAction;
use lfr_watchlist::time::{format_utc, parse_utc};
use std::io::Write;

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check the whole hash chain; print the first broken link. Exit status 0 when intact, 1 when
    /// broken, 2 when the check could not be made.
    Verify {
        /// A point printed by an earlier verify (`SEQ:HASH`) that the chain must still pass
        /// through: catches events cut from the end, or a log rewritten up to there.
        #[arg(long)]
        anchor: Option<Anchor>,
        /// Start at this stream sequence (its link backwards is not checked): to check what
        /// follows a break that has been investigated.
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Print the events that match every filter given, oldest first, one per line.
    Query {
        /// A deployment id; `system` for events of no deployment (logins, accounts).
        #[arg(long)]
        deployment: Option<String>,
        /// Account id or service name.
        #[arg(long)]
        actor: Option<String>,
        /// Object acted on, exactly; end it with `*` for a prefix (`alert/*`).
        #[arg(long)]
        object: Option<String>,
        /// collection, alteration, consultation, disclosure, combination, erasure, login,
        /// configuration_change.
        #[arg(long, value_parser = parse_action)]
        action: Option<AuditAction>,
        /// At or after, UTC, as 2026-11-28T12:00:00Z.
        #[arg(long, value_parser = parse_utc)]
        since: Option<lfr_schemas::Timestamp>,
        /// Before (exclusive), UTC.
        #[arg(long, value_parser = parse_utc)]
        until: Option<lfr_schemas::Timestamp>,
        /// One JSON object per line, with every field, the stream sequence and the chain hashes.
        #[arg(long)]
        json: bool,
    },
}

fn parse_action(s: &str) -> Result<AuditAction, String> {
    AuditAction::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.name()).collect();
        format!("unknown action {s:?}; one of {}", names.join(", "))
    })
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        Command::Verify { anchor, from } => {
            let report = match args.nats.jetstream("lfr-audit").await {
                Ok(js) => audit::verify_from(&js, from, anchor.as_ref()).await,
                Err(e) => Err(e),
            };
            let code = match report {
                Ok(report @ ChainReport::Intact { .. }) => {
                    println!("{report}");
                    if let Some(a) = report.anchor() {
                        println!("anchor {a}");
                    }
                    0
                }
                Ok(report) => {
                    println!("{report}");
                    1
                }
                Err(e) => {
                    eprintln!("error: cannot verify the audit log: {e:#}");
                    2
                }
            };
            std::io::stdout().flush()?;
            std::process::exit(code)
        }
        Command::Query {
            deployment,
            actor,
            object,
            action,
            since,
            until,
            json,
        } => {
            let filter = AuditFilter {
                deployment,
                actor,
                object: object.as_deref().map(ObjectMatch::parse),
                action,
                since,
                until,
            };
            let js = args.nats.jetstream("lfr-audit").await?;
            let result = audit::query(&js, &filter).await?;
            let mut out = std::io::stdout().lock();
            for e in &result.events {
                if json {
                    writeln!(out, "{}", as_json(e))?;
                } else {
                    writeln!(out, "{}", line(e))?;
                }
            }
            out.flush()?;
            if !result.undecodable.is_empty() {
                eprintln!(
                    "warning: {} message(s) on AUDIT could not be read (sequences {:?}); run \
                     `lfr audit verify`",
                    result.undecodable.len(),
                    result.undecodable
                );
            }
            Ok(())
        }
    }
}

/// A plain connection: no stream is declared or changed, nothing is recorded.
/// `time seq action actor/role deployment object recipients justification`.
fn line(s: &StoredEvent) -> String {
    let e = &s.event;
    let recipients = if e.recipients.is_empty() {
        "none".to_string()
    } else {
        e.recipients.join(",")
    };
    format!(
        "{} seq={} {} {}/{} deployment={} object={} recipients={} justification={:?}",
        format_utc(e.at),
        s.seq,
        e.action,
        e.actor,
        e.role,
        e.deployment
            .as_deref()
            .unwrap_or(lfr_schemas::subjects::SYSTEM),
        e.object,
        recipients,
        e.justification
    )
}

fn as_json(s: &StoredEvent) -> serde_json::Value {
    let e = &s.event;
    serde_json::json!({
        "seq": s.seq,
        "time": format_utc(e.at),
        "at_ns": e.at.0,
        "event_id": e.event_id,
        "action": e.action.name(),
        "actor": e.actor,
        "role": e.role,
        "deployment": e.deployment,
        "object": e.object,
        "justification": e.justification,
        "recipients": e.recipients,
        "digest": e.digest,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}
