//! `lfr audit`: check and read the audit log (the AUDIT stream's hash chain).
//!
//! ```text
//! lfr audit verify --anchor-key <purge's public key>  # exit 0 intact, 1 broken, 2 could not check
//! lfr audit verify --anchor-file kept.json           # ... also through an anchor an auditor kept
//! lfr audit verify --anchor 1234:<hash>              # ... and through a point written down by hand
//! lfr audit verify --from 5678                       # only what follows an investigated break
//! lfr audit anchors export --out anchor.json         # the latest signed anchor, to keep offline
//! lfr audit anchors key --file audit-anchor.key      # make the verifier's key; print its public key
//! lfr audit query --deployment match-day --action disclosure --since 2026-11-28T12:00:00Z
//! lfr audit query --actor op-17 --object 'alert/*' --json
//! ```
//!
//! All are read-only: they connect without declaring streams and record nothing (reading the log
//! is not itself logged). `verify` checks the chain against the latest signed anchor in the
//! anchors bucket (`lfr_common::anchor`), trusting only the keys given with `--anchor-key`
//! (`LFR_AUDIT_ANCHOR_KEYS`, comma-separated) or, when none is given, the key in a file passed
//! with `--anchor-file` (the auditor kept it). See `docs/audit.md` and `docs/security.md`.

use lfr_common::anchor::{self, AnchorKey, Latest, PublicKey, SignedAnchor, Verdict};
use lfr_common::audit::{self, Anchor, AuditFilter, ChainReport, ObjectMatch, StoredEvent};
use lfr_schemas::AuditAction;
use lfr_watchlist::time::{format_utc, parse_utc};
use std::io::Write;
use std::path::PathBuf;

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
        /// A signed anchor kept offline (`lfr audit anchors export`) that the chain must still
        /// pass through. Repeatable.
        #[arg(long)]
        anchor_file: Vec<PathBuf>,
        /// The public key(s) anchors must be signed with: the purge service's (printed in its
        /// log and by `lfr audit anchors key`), and earlier ones after a rotation.
        #[arg(long, env = "LFR_AUDIT_ANCHOR_KEYS", value_delimiter = ',')]
        anchor_key: Vec<PublicKey>,
    },
    /// The signed anchors kept outside the log.
    Anchors {
        #[command(subcommand)]
        command: AnchorsCommand,
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

#[derive(clap::Subcommand)]
enum AnchorsCommand {
    /// Write the latest signed anchor (JSON, with its signature and public key), for an auditor
    /// to keep where nobody with access to the system can change it.
    Export {
        /// File to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Refuse an anchor not signed by one of these keys.
        #[arg(long, env = "LFR_AUDIT_ANCHOR_KEYS", value_delimiter = ',')]
        anchor_key: Vec<PublicKey>,
    },
    /// The verifier's signing key in FILE, made there (mode 0600) if missing: prints its public
    /// key, what verifiers are given. Works offline; for provisioning the purge service.
    Key {
        #[arg(long)]
        file: PathBuf,
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
        Command::Verify {
            anchor,
            from,
            anchor_file,
            anchor_key,
        } => {
            let check = Check {
                manual: anchor,
                from,
                files: anchor_file,
                trusted: anchor_key,
            };
            let verdict = match args.nats.jetstream("lfr-audit").await {
                Ok(js) => check.run(&js).await,
                Err(e) => Err(e),
            };
            let code = match verdict {
                Ok(verdict) => {
                    println!("{verdict}");
                    for a in &verdict.checked {
                        println!(
                            "signed anchor: sequence {}, checked at {}, key {}",
                            a.seq,
                            format_utc(a.at),
                            a.key
                        );
                    }
                    if verdict.is_intact() {
                        if let Some(a) = verdict.chain.anchor() {
                            println!("anchor {a}");
                        }
                        0
                    } else {
                        1
                    }
                }
                Err(e) => {
                    eprintln!("error: cannot verify the audit log: {e:#}");
                    2
                }
            };
            std::io::stdout().flush()?;
            std::process::exit(code)
        }
        Command::Anchors {
            command: AnchorsCommand::Key { file },
        } => {
            let (key, created) = AnchorKey::load_or_create(&file)?;
            if created {
                eprintln!(
                    "created {} (mode 0600): give it to the purge service only",
                    file.display()
                );
            }
            println!("{}", key.public());
            Ok(())
        }
        Command::Anchors {
            command: AnchorsCommand::Export { out, anchor_key },
        } => {
            let js = args.nats.jetstream("lfr-audit").await?;
            let latest = match anchor::latest(&js).await? {
                Latest::Found(a) => a,
                Latest::Empty => anyhow::bail!("nothing has been anchored yet"),
                Latest::Problem(p) => anyhow::bail!("{p}"),
            };
            if anchor_key.is_empty() {
                eprintln!(
                    "warning: no --anchor-key given: the signature was not checked against a key \
                     you trust (the anchor names key {})",
                    latest.key
                );
            } else if let Err(p) = latest.verify(&anchor_key) {
                anyhow::bail!("{p}");
            }
            let json = latest.to_json() + "\n";
            match out {
                Some(path) => {
                    std::fs::write(&path, json)?;
                    eprintln!(
                        "wrote the anchor of sequence {} to {}",
                        latest.seq,
                        path.display()
                    );
                }
                None => print!("{json}"),
            }
            Ok(())
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

/// What `lfr audit verify` checks the chain against.
struct Check {
    manual: Option<Anchor>,
    from: u64,
    files: Vec<PathBuf>,
    trusted: Vec<PublicKey>,
}

impl Check {
    async fn run(mut self, js: &async_nats::jetstream::Context) -> anyhow::Result<Verdict> {
        let mut anchors = Vec::new();
        for path in &self.files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let kept = SignedAnchor::from_json(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            anchors.push(kept);
        }
        if self.trusted.is_empty() {
            // An anchor the auditor kept is trusted with its own key: they hold the copy.
            for a in &anchors {
                self.trusted.push(a.key.parse()?);
            }
        }
        let mut problems = Vec::new();
        match anchor::latest(js).await? {
            Latest::Empty => {}
            Latest::Found(a) => anchors.push(a),
            Latest::Problem(p) => problems.push(p),
        }
        anyhow::ensure!(
            anchors.is_empty() || !self.trusted.is_empty(),
            "the log has signed anchors, but no key to trust them with: give the purge service's \
             public key with --anchor-key (or LFR_AUDIT_ANCHOR_KEYS), or a kept --anchor-file"
        );
        let mut verdict = anchor::check(js, &anchors, &self.trusted, self.from).await?;
        problems.append(&mut verdict.problems);
        verdict.problems = problems;
        if let Some(manual) = &self.manual {
            let report = audit::verify_from(js, self.from, Some(manual)).await?;
            // The earlier of the two breaks is the one to report.
            let earlier = match (&report, &verdict.chain) {
                (ChainReport::Broken { seq: a, .. }, ChainReport::Broken { seq: b, .. }) => a < b,
                (ChainReport::Broken { .. }, ChainReport::Intact { .. }) => true,
                _ => false,
            };
            if earlier {
                verdict.chain = report;
            }
        }
        Ok(verdict)
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
