//! `lfr account`: console accounts from the terminal.
//!
//! ```text
//! lfr account create   --id supt-17 --role supervisor --rank superintendent   # prompts twice, no echo
//! lfr account create   --id op-3 --role operator --deployments match-day,fair --password-stdin < pw
//! lfr account list
//! lfr account assign   --id op-3 --deployments match-day
//! lfr account password --id op-3 --password-stdin < pw
//! lfr account rank     --id supt-17 --rank chief-superintendent     # promotions; --rank none clears
//! lfr account disable  --id op-3
//! lfr account enable   --id op-3
//! ```
//!
//! This is how the first supervisor account comes to exist ("first-run bootstrap"): there is
//! never a default account or password. Whoever can reach NATS can run it, so on a real system
//! that is the administrators' NATS credentials. Every change is recorded on the AUDIT stream
//! (`ConfigurationChange`, object `account/<id>`, actor `--by`). Passwords are never echoed,
//! printed or logged, and `list` never shows hashes. The rules (id format, password policy,
//! argon2id) live in [`lfr_dispatch::auth::accounts`], shared with the console.

use lfr_dispatch::auth::accounts::{audit_change, check_password};
use lfr_dispatch::auth::{Accounts, Role};
use lfr_watchlist::deployment::Rank;
use std::io::Read;

#[derive(clap::Args)]
pub struct AccountArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
    /// Who is making the change, as recorded on the audit event.
    #[arg(long, default_value = "cli", global = true)]
    by: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create an account (the password is prompted for twice, or read from stdin).
    Create {
        #[arg(long)]
        id: String,
        /// operator, officer, supervisor or auditor.
        #[arg(long)]
        role: Role,
        /// Deployment ids an operator or officer works on, comma-separated.
        #[arg(long, value_delimiter = ',')]
        deployments: Vec<String>,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// The person's police rank (superintendent or above may authorise deployments).
        #[arg(long)]
        rank: Option<Rank>,
    },
    /// Record a person's rank (`none` clears it).
    Rank {
        #[arg(long)]
        id: String,
        #[arg(long, value_parser = parse_rank)]
        rank: OptionalRank,
    },
    /// List accounts (never their password hashes).
    List,
    /// Replace the deployments an account works on.
    Assign {
        #[arg(long)]
        id: String,
        /// Comma-separated; `--deployments ""` assigns none.
        #[arg(long, value_delimiter = ',', num_args = 0.., required = true)]
        deployments: Vec<String>,
    },
    /// Set a new password.
    Password {
        #[arg(long)]
        id: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Refuse the account's logins; its open sessions stop at their next request.
    Disable {
        #[arg(long)]
        id: String,
    },
    /// Allow a disabled account to log in again.
    Enable {
        #[arg(long)]
        id: String,
    },
}

/// The audit role of whoever runs the CLI: account administration is a supervisor's job.
const ROLE: &str = "supervisor";

pub async fn run(args: AccountArgs) -> anyhow::Result<()> {
    let bus = args.nats.bus().await?;
    let js = &bus.jetstream;
    let accounts = Accounts::open(js).await?;
    let by = args.by.as_str();
    match args.command {
        Command::Create {
            id,
            role,
            deployments,
            password_stdin,
            rank,
        } => {
            // Refuse a taken id before asking for a password.
            if accounts.get(&id).await?.is_some() {
                anyhow::bail!("account {id} already exists");
            }
            let password = read_password(password_stdin)?;
            let mut account = accounts.create(&id, role, &password, deployments).await?;
            if rank.is_some() {
                account = accounts.set_rank(&id, rank).await?;
            }
            let assigned = list_or_none(&account.deployments);
            let ranked = rank.map(|r| format!(", rank {r}")).unwrap_or_default();
            audit_change(
                js,
                by,
                ROLE,
                &id,
                &format!("account created: role {role}{ranked}, deployments {assigned}"),
            )
            .await?;
            println!("created {role} account {id} (deployments: {assigned})");
            if !role.sees_all_deployments() && account.deployments.is_empty() {
                println!(
                    "note: {id} sees no deployment until one is assigned (lfr account assign)"
                );
            }
        }
        Command::List => {
            let all = accounts.list().await?;
            println!(
                "{:<24} {:<11} {:<21} {:<9} {:<21} DEPLOYMENTS",
                "ID", "ROLE", "RANK", "STATUS", "CREATED"
            );
            for a in all {
                let deployments = if a.role.sees_all_deployments() {
                    "(all)".to_string()
                } else {
                    list_or_none(&a.deployments)
                };
                println!(
                    "{:<24} {:<11} {:<21} {:<9} {:<21} {}",
                    a.id,
                    a.role.as_str(),
                    a.rank.map(|r| r.as_str()).unwrap_or("-"),
                    if a.disabled { "disabled" } else { "active" },
                    lfr_watchlist::time::format_utc(a.created_at),
                    deployments
                );
            }
        }
        Command::Assign { id, deployments } => {
            let deployments = deployments.into_iter().filter(|d| !d.is_empty()).collect();
            let account = accounts.assign(&id, deployments).await?;
            let assigned = list_or_none(&account.deployments);
            audit_change(
                js,
                by,
                ROLE,
                &id,
                &format!("deployments assigned: {assigned}"),
            )
            .await?;
            println!("account {id} now works on: {assigned}");
        }
        Command::Password { id, password_stdin } => {
            if accounts.get(&id).await?.is_none() {
                anyhow::bail!("no account {id}");
            }
            let password = read_password(password_stdin)?;
            accounts.set_password(&id, &password).await?;
            audit_change(js, by, ROLE, &id, "password changed").await?;
            println!("password of {id} changed");
        }
        Command::Rank { id, rank } => {
            accounts.set_rank(&id, rank.0).await?;
            let named = rank
                .0
                .map(|r| r.to_string())
                .unwrap_or_else(|| "none".into());
            audit_change(js, by, ROLE, &id, &format!("rank recorded: {named}")).await?;
            println!("account {id} now has rank {named}");
        }
        Command::Disable { id } => {
            accounts.disable(&id).await?;
            audit_change(js, by, ROLE, &id, "account disabled").await?;
            println!("account {id} disabled");
        }
        Command::Enable { id } => {
            accounts.enable(&id).await?;
            audit_change(js, by, ROLE, &id, "account enabled").await?;
            println!("account {id} enabled");
        }
    }
    let _ = bus.client.flush().await;
    Ok(())
}

/// The new password: the first line of stdin, or typed twice at the terminal without echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut input)
            .map_err(|e| anyhow::anyhow!("cannot read the password from stdin: {e}"))?;
        let line = input.lines().next().unwrap_or("").to_string();
        check_password(&line)?;
        return Ok(line);
    }
    let no_tty = |e: std::io::Error| {
        anyhow::anyhow!("cannot prompt for a password ({e}): pass it with --password-stdin")
    };
    let first = rpassword::prompt_password("New password: ").map_err(no_tty)?;
    check_password(&first)?;
    let second = rpassword::prompt_password("Again: ").map_err(no_tty)?;
    anyhow::ensure!(first == second, "the two passwords differ; nothing changed");
    Ok(first)
}

/// A rank, or `none`.
#[derive(Clone, Copy)]
struct OptionalRank(Option<Rank>);

fn parse_rank(s: &str) -> Result<OptionalRank, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(OptionalRank(None));
    }
    s.parse().map(|r| OptionalRank(Some(r)))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(",")
    }
}
